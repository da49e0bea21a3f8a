package detect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/moby/moby/api/types/container"

	"github.com/ds01-project/ds01/internal/jsondec"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// The Engine API versions a scan speaks: it asks for the engine's own
// version, or MaxAPIVersion where the engine is newer, and refuses an engine
// older than MinAPIVersion (the fields it reads are all there by 1.40).
const (
	MinAPIVersion = "1.40"
	MaxAPIVersion = "1.56"
)

// DefaultDockerHost is the system engine's address when DOCKER_HOST is unset.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// ErrNoSuchContainer is an inspect of a container the engine does not have
// (any more): it was removed between the list and the inspect.
var ErrNoSuchContainer = errors.New("no such container")

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

// EngineConfig is where an engine is and how to reach it.
type EngineConfig struct {
	// Host is the engine's address: unix:///path or tcp://host:port.
	Host string
	// TLS, when set, is used on a tcp address (https).
	TLS *tls.Config
	// APIVersion, when set, is asked for as is, without settling it with
	// the engine first.
	APIVersion string
	// Dial, when set, connects in place of dialling Host (a user's engine:
	// a socket whose owner is checked).
	Dial func(ctx context.Context) (net.Conn, error)
}

// EngineConfigFromEnv is the engine at host, or the environment's where
// host is "": DOCKER_HOST, DOCKER_API_VERSION, and TLS from DOCKER_CERT_PATH
// (its ca.pem, cert.pem and key.pem; the server's certificate is checked
// when DOCKER_TLS_VERIFY is set), as the docker CLI reads them.
func EngineConfigFromEnv(host string) (EngineConfig, error) {
	cfg := EngineConfig{Host: host}
	if cfg.Host == "" {
		cfg.Host = os.Getenv("DOCKER_HOST")
	}
	if cfg.Host == "" {
		cfg.Host = DefaultDockerHost
	}
	if v := strings.TrimPrefix(strings.TrimSpace(os.Getenv("DOCKER_API_VERSION")), "v"); v != "" {
		if _, _, ok := parseAPIVersion(v); !ok {
			return cfg, fmt.Errorf("DOCKER_API_VERSION=%q is not an API version (major.minor)", v)
		}
		cfg.APIVersion = v
	}
	if dir := os.Getenv("DOCKER_CERT_PATH"); dir != "" {
		tc, err := tlsFromDir(dir, os.Getenv("DOCKER_TLS_VERIFY") != "")
		if err != nil {
			return cfg, fmt.Errorf("configure TLS from DOCKER_CERT_PATH=%s: %w", dir, err)
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// tlsFromDir is a client's TLS settings from a docker certificate folder.
func tlsFromDir(dir string, verify bool) (*tls.Config, error) {
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, "ca.pem"))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: !verify, // as the docker CLI does where DOCKER_TLS_VERIFY is unset
	}, nil
}

// Engine is one Docker engine as a scan reads it, over its HTTP API: the
// version settled once, the container list decoded as it streams in, an
// inspect per container, the engine's default runtime.
//
// The list is the one call every scan makes, and the largest answer (about
// 700 bytes a container): it is decoded one container at a time into
// ListedContainer, the seven fields a scan keeps, never held whole.
type Engine struct {
	host string // as configured, for messages
	base string // scheme and authority of every request
	http *http.Client

	mu      sync.Mutex
	version string // "" until settled
}

// NewEngine is a client of the engine cfg describes; it connects on its
// first call.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	proto, addr, ok := strings.Cut(cfg.Host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("docker host %q: want unix:///path or tcp://host:port", cfg.Host)
	}
	tr := &http.Transport{DisableCompression: true, MaxIdleConns: 1} // no proxy: the engine is named
	e := &Engine{host: cfg.Host, version: cfg.APIVersion}
	switch proto {
	case "unix":
		e.base = "http://docker"
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", addr) }
	case "tcp":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("docker host %q: %w", cfg.Host, err)
		}
		e.base = "http://" + addr
		if cfg.TLS != nil {
			e.base = "https://" + addr
			tr.TLSClientConfig = cfg.TLS
		}
	default:
		return nil, fmt.Errorf("docker host %q: protocol %q not supported (unix or tcp)", cfg.Host, proto)
	}
	if cfg.Dial != nil {
		dial := cfg.Dial
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	}
	e.http = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// Close closes the idle connection.
func (e *Engine) Close() error {
	e.http.CloseIdleConnections()
	return nil
}

// maxErrorBody bounds what is read of an engine's error answer.
const maxErrorBody = 64 << 10

// ListContainers lists every container, running or not.
func (e *Engine) ListContainers(ctx context.Context) ([]ListedContainer, error) {
	var list []ListedContainer
	err := e.get(ctx, "/containers/json?all=1", func(body io.Reader) (err error) {
		list, err = DecodeContainerList(body)
		return err
	})
	return list, err
}

// ContainerInspect is the engine's description of one container; the
// error wraps ErrNoSuchContainer when the engine has none by that ID.
func (e *Engine) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	var r container.InspectResponse
	err := e.get(ctx, "/containers/"+url.PathEscape(id)+"/json", func(body io.Reader) error {
		if err := json.NewDecoder(body).Decode(&r); err != nil {
			return fmt.Errorf("decode inspect of %s: %w", inventory.ShortID(id), err)
		}
		return nil
	})
	if ee := (*EngineError)(nil); errors.As(err, &ee) && ee.Status == http.StatusNotFound {
		return r, fmt.Errorf("%w: %s", ErrNoSuchContainer, inventory.ShortID(id))
	}
	return r, err
}

// DefaultRuntime is the runtime the engine gives a container that names
// none (docker info's DefaultRuntime).
func (e *Engine) DefaultRuntime(ctx context.Context) (string, error) {
	var info struct {
		DefaultRuntime string `json:"DefaultRuntime"`
	}
	err := e.get(ctx, "/info", func(body io.Reader) error {
		if err := json.NewDecoder(body).Decode(&info); err != nil {
			return fmt.Errorf("decode engine info: %w", err)
		}
		return nil
	})
	return info.DefaultRuntime, err
}

// get asks for path at the settled API version, settling it first, and
// hands a 200 answer's body to read; any other answer is an *EngineError.
func (e *Engine) get(ctx context.Context, path string, read func(io.Reader) error) error {
	v, err := e.apiVersion(ctx)
	if err != nil {
		return err
	}
	resp, err := e.do(ctx, "/v"+v+path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return engineError(resp)
	}
	return read(resp.Body)
}

// do sends one GET. Its error names the engine, and says "cannot
// connect" only where no connection was made: an engine that accepts and
// then does not answer ran out of time, which is another thing to fix.
func (e *Engine) do(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return nil, fmt.Errorf("cannot connect to the Docker engine at %s: %w", e.host, err)
		}
		return nil, fmt.Errorf("the Docker engine at %s: %w", e.host, err)
	}
	return resp, nil
}

// apiVersion is the version every call asks for: the configured one, or
// the engine's (its ping's API-Version) where it is not newer than
// MaxAPIVersion, asked once.
func (e *Engine) apiVersion(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.version != "" {
		return e.version, nil
	}
	resp, err := e.do(ctx, "/_ping")
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	v, err := NegotiateAPIVersion(resp.Header.Get("Api-Version"))
	if err != nil {
		return "", fmt.Errorf("engine at %s: %w", e.host, err)
	}
	e.version = v
	return v, nil
}

// NegotiateAPIVersion is the version to ask an engine that speaks engine
// at most: engine itself, or MaxAPIVersion where it is newer. An engine
// older than MinAPIVersion, or one that names no version, is refused.
func NegotiateAPIVersion(engine string) (string, error) {
	if engine == "" {
		return "", errors.New("the engine's ping names no API version")
	}
	maj, mnr, ok := parseAPIVersion(engine)
	if !ok {
		return "", fmt.Errorf("the engine's API version %q is not major.minor", oneLine(engine))
	}
	minMaj, minMnr, _ := parseAPIVersion(MinAPIVersion)
	maxMaj, maxMnr, _ := parseAPIVersion(MaxAPIVersion)
	switch {
	case maj < minMaj || maj == minMaj && mnr < minMnr:
		return "", fmt.Errorf("the engine's API version %s is older than %s, the oldest supported", engine, MinAPIVersion)
	case maj > maxMaj || maj == maxMaj && mnr > maxMnr:
		return MaxAPIVersion, nil
	}
	return strconv.Itoa(maj) + "." + strconv.Itoa(mnr), nil
}

// parseAPIVersion splits "major.minor".
func parseAPIVersion(v string) (maj, mnr int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	if !found || !isDigits(a) || !isDigits(b) || len(a) > 4 || len(b) > 4 {
		return 0, 0, false
	}
	maj, _ = strconv.Atoi(a)
	mnr, _ = strconv.Atoi(b)
	return maj, mnr, true
}

// EngineError is an engine's answer other than 200, as the engine words
// it ({"message": …}, on one line).
type EngineError struct {
	Status  int
	Message string
}

func (e *EngineError) Error() string {
	return fmt.Sprintf("engine answered %d: %s", e.Status, e.Message)
}

// engineError reads resp's error answer.
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
	return &EngineError{Status: resp.StatusCode, Message: oneLine(msg)}
}

// maxListAnswer bounds the engine's list answer, read whole before it is
// decoded: 10,000 containers take about 10 MiB.
const maxListAnswer = 256 << 20

// listReadAhead is the room the list answer is first read into.
const listReadAhead = 1 << 20

// maxListDecoded caps the memory the decoded list's names and labels take.
const maxListDecoded = 512 << 20

// DecodeContainerList decodes the engine's list answer (a JSON array of
// containers), read whole and decoded in one pass by the decoder the
// inventory is read with (internal/jsondec), which checks the syntax as it
// goes: encoding/json took several times as long, most of it after the
// engine's last byte. Names and labels are cut from the answer, not
// copied.
func DecodeContainerList(r io.Reader) ([]ListedContainer, error) {
	// Room for a list of about 1,500 containers at once: grown from
	// bytes.Buffer's 512 bytes, the answer for 1,000 was copied eleven
	// times through 2 MB the process had never touched (a page fault a
	// page). Room it does not use, it never touches.
	var buf bytes.Buffer
	buf.Grow(listReadAhead)
	if _, err := buf.ReadFrom(io.LimitReader(r, maxListAnswer+1)); err != nil {
		return nil, fmt.Errorf("read container list: %w", err)
	}
	if buf.Len() > maxListAnswer {
		return nil, fmt.Errorf("read container list: more than %d MiB", maxListAnswer>>20)
	}
	data := buf.Bytes()
	// The buffer is never written again: it can be the string the
	// containers' strings are cut from.
	text := unsafe.String(unsafe.SliceData(data), len(data))
	var out []ListedContainer
	n := 0
	err := jsondec.Decode(text, maxListDecoded, "a container list", func(d *jsondec.Decoder) {
		out = jsondec.Slice(d, func(d *jsondec.Decoder, c *ListedContainer) {
			n++
			decodeListed(d, c)
		})
	})
	switch {
	case err != nil && n > 0:
		return nil, fmt.Errorf("decode container list: container %d: %w", n-1, err)
	case err != nil:
		return nil, fmt.Errorf("decode container list: %w", err)
	case len(out) == 0:
		// An empty list, or null (some engine versions' empty list).
		return nil, nil
	}
	return out, nil
}

var listedKeys = jsondec.NewKeys("Id", "Names", "Image", "Command", "Created", "State", "Labels")

// decodeListed is ListedContainer's schema; the engine's other fields are
// skipped.
func decodeListed(d *jsondec.Decoder, c *ListedContainer) {
	d.Object(listedKeys, func(key string) {
		switch key {
		case "Id":
			d.String(&c.ID)
		case "Names":
			c.Names = jsondec.Slice(d, (*jsondec.Decoder).String)
		case "Image":
			d.String(&c.Image)
		case "Command":
			d.String(&c.Command)
		case "Created":
			d.Int64(&c.Created)
		case "State":
			d.String(&c.State)
		case "Labels":
			c.Labels = jsondec.Map(d, (*jsondec.Decoder).String)
		}
	})
}
