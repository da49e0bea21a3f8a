package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/moby/moby/client"
)

// ListedContainer is a container as the engine's list call describes it:
// the fields a scan keeps of it (the Engine API's names), and no more.
type ListedContainer struct {
	ID      string            `json:"Id"`
	Names   []string          `json:"Names"`
	Image   string            `json:"Image"`
	Command string            `json:"Command"`
	Created int64             `json:"Created"`
	State   string            `json:"State"`
	Labels  map[string]string `json:"Labels"`
}

// Engine is the Docker engine as a scan reads it: the moby client for
// everything but the list, which it asks for itself and decodes one
// container at a time into ListedContainer.
//
// The list is the one call every scan makes, and the largest answer (about
// 700 bytes a container). The moby client reads it whole and decodes every
// field of every container, networks and mounts included, into memory
// first touched for the purpose: at 1,000 containers that is 4 MB and twice
// the time of decoding, as the answer streams in, the seven fields a scan
// keeps.
type Engine struct {
	*client.Client
	http *http.Client
}

// NewEngine reads the engine c talks to, over c's own connection (its
// dialer: a Unix socket, TCP, TLS).
func NewEngine(c *client.Client) *Engine {
	dial := c.Dialer()
	return &Engine{Client: c, http: &http.Client{
		Transport: &http.Transport{
			DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			DisableCompression: true,
			MaxIdleConns:       1,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Close closes both connections.
func (e *Engine) Close() error {
	e.http.CloseIdleConnections()
	return e.Client.Close()
}

// maxErrorBody bounds what is read of an engine's error answer.
const maxErrorBody = 64 << 10

// ListContainers lists every container, running or not, after settling
// the API version with the engine (the moby client's negotiation, which
// its later calls reuse).
func (e *Engine) ListContainers(ctx context.Context) ([]ListedContainer, error) {
	if _, err := e.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return nil, err
	}
	url := "http://" + client.DummyHost + "/v" + strings.TrimPrefix(e.ClientVersion(), "v") + "/containers/json?all=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, engineError(resp)
	}
	return DecodeContainerList(resp.Body)
}

// engineError is an error answer as the engine words it: {"message": …}.
func engineError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("engine answered %d: %s", resp.StatusCode, oneLine(msg))
}

// DecodeContainerList decodes the engine's list answer (a JSON array of
// containers) one container at a time: what it holds in memory is the
// containers decoded and one more, never the whole answer.
func DecodeContainerList(r io.Reader) ([]ListedContainer, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("decode container list: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		if tok == nil {
			// The engine writes null for an empty list on some versions.
			return nil, nil
		}
		return nil, errors.New("decode container list: not an array")
	}
	var out []ListedContainer
	for dec.More() {
		var c ListedContainer
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("decode container list: container %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("decode container list: %w", err)
	}
	return out, nil
}
