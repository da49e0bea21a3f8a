package detect

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeContainerList(t *testing.T) {
	const one = `{"Id":"abc","Names":["/a"],"Image":"busybox","ImageID":"sha256:x","Command":"sh","Created":5,` +
		`"Ports":[],"Labels":{"k":"v"},"State":"running","Status":"Up","HostConfig":{"NetworkMode":"default"},` +
		`"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}},"Mounts":[{"Type":"bind","Source":"/x"}]}`
	want := ListedContainer{ID: "abc", Names: []string{"/a"}, Image: "busybox", Command: "sh", Created: 5, State: "running", Labels: map[string]string{"k": "v"}}
	tests := []struct {
		name, in string
		want     []ListedContainer
		err      string
	}{
		{"one, every other field skipped", "[" + one + "]", []ListedContainer{want}, ""},
		{"two, with white space", " [\n" + one + " ,\n" + one + "]\n", []ListedContainer{want, want}, ""},
		{"empty", "[]", nil, ""},
		{"null", "null", nil, ""},
		{"an object", `{"message":"x"}`, nil, "want an array"},
		{"cut short", "[" + one, nil, "decode container list"},
		{"a wrong type", `[{"Id":5}]`, nil, "container 0"},
		{"nothing", "", nil, "decode container list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeContainerList(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// fakeEngine is an engine of API version 1.41 on a Unix socket, serving
// its ping and mux; pings counts the pings it answered.
func fakeEngine(t *testing.T, mux *http.ServeMux) (e *Engine, sock string, pings *atomic.Int32) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	pings = new(atomic.Int32)
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		pings.Add(1)
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	e, err = NewEngine(EngineConfig{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, sock, pings
}

// listEngine is a fakeEngine whose list call is list.
func listEngine(t *testing.T, list func(w http.ResponseWriter, r *http.Request)) *Engine {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.41/containers/json", list)
	e, _, _ := fakeEngine(t, mux)
	return e
}

// TestEngineListContainers: the list is asked for at the version the
// engine settled on, with every container, and an error answer is worded
// as the engine worded it.
func TestEngineListContainers(t *testing.T) {
	e := listEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("all") != "1" {
			http.Error(w, `{"message":"not all"}`, http.StatusBadRequest)
			return
		}
		w.Write([]byte(`[{"Id":"abc","Names":["/a"],"State":"exited"}]`))
	})
	got, err := e.ListContainers(context.Background())
	if err != nil || len(got) != 1 || got[0].ID != "abc" || got[0].State != "exited" {
		t.Fatalf("got %+v, %v", got, err)
	}

	e = listEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("{\"message\":\"disk on fire\\n\\u001b[31m\"}"))
	})
	_, err = e.ListContainers(context.Background())
	if err == nil || !strings.Contains(err.Error(), "engine answered 500: disk on fire") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want the engine's message on one line", err)
	}
}

// TestEngineCalls: the version is settled by one ping and reused by every
// call after it; an inspect of a container the engine lacks wraps
// ErrNoSuchContainer; the default runtime is read from the info answer.
func TestEngineCalls(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.41/containers/json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[]")) })
	mux.HandleFunc("/v1.41/containers/"+id+"/json", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Id":"` + id + `","Name":"/a","State":{"Status":"running","Pid":7},"Config":{"User":"1000"}}`))
	})
	mux.HandleFunc("/v1.41/containers/gone/json", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"No such container: gone"}`, http.StatusNotFound)
	})
	mux.HandleFunc("/v1.41/info", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"DefaultRuntime":"nvidia","Runtimes":{"nvidia":{}}}`))
	})
	e, _, pings := fakeEngine(t, mux)
	ctx := context.Background()
	if _, err := e.ListContainers(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := e.ContainerInspect(ctx, id)
	if err != nil || r.ID != id || r.State == nil || r.State.Pid != 7 || r.Config == nil || r.Config.User != "1000" {
		t.Fatalf("inspect: %+v, %v", r, err)
	}
	if _, err := e.ContainerInspect(ctx, "gone"); !errors.Is(err, ErrNoSuchContainer) {
		t.Errorf("inspect of a removed container: %v; want ErrNoSuchContainer", err)
	}
	if rt, err := e.DefaultRuntime(ctx); err != nil || rt != "nvidia" {
		t.Errorf("default runtime %q, %v; want nvidia", rt, err)
	}
	if n := pings.Load(); n != 1 {
		t.Errorf("%d pings for four calls; want 1", n)
	}
}

// TestEngineUnreachable: an engine that is not there is named in the
// error, with the reason, and no URL of the scanner's own making.
func TestEngineUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	e, err := NewEngine(EngineConfig{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ListContainers(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot connect to the Docker engine at unix://"+sock) ||
		!strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), "http://") {
		t.Fatalf("error %q, want the engine's address and the reason", err)
	}
}

// TestEngineFrozen: an engine that accepts and never answers runs out of
// time, and the error says so rather than that it could not be reached.
func TestEngineFrozen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "frozen.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	e, err := NewEngine(EngineConfig{Host: "unix://" + sock, APIVersion: "1.41"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = e.ListContainers(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "cannot connect") ||
		!strings.Contains(err.Error(), "the Docker engine at unix://"+sock) {
		t.Fatalf("error %q, want the engine named and its deadline passed", err)
	}
}

// TestEngineDial: a configured dialer replaces the address's own (a user's
// engine, reached only through the owner check).
func TestEngineDial(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.41/containers/json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[{"Id":"x"}]`)) })
	_, sock, _ := fakeEngine(t, mux)
	var dials atomic.Int32
	e, err := NewEngine(EngineConfig{Host: "unix:///nowhere.sock", Dial: func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got, err := e.ListContainers(context.Background()); err != nil || len(got) != 1 || dials.Load() == 0 {
		t.Fatalf("list through the dialer: %+v, %v, %d dials", got, err, dials.Load())
	}
}

func TestNegotiateAPIVersion(t *testing.T) {
	tests := []struct{ engine, want, err string }{
		{"1.41", "1.41", ""},
		{"1.40", "1.40", ""},
		{MaxAPIVersion, MaxAPIVersion, ""},
		{"1.99", MaxAPIVersion, ""},
		{"2.0", MaxAPIVersion, ""},
		{"1.39", "", "older than 1.40"},
		{"", "", "names no API version"},
		{"1.4x", "", "not major.minor"},
		{"1", "", "not major.minor"},
		{"1.41\x1b[31m", "", "not major.minor"},
	}
	for _, tc := range tests {
		got, err := NegotiateAPIVersion(tc.engine)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.ContainsRune(err.Error(), 0x1b) {
				t.Errorf("NegotiateAPIVersion(%q) = %q, %v; want an error naming %q", tc.engine, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NegotiateAPIVersion(%q) = %q, %v; want %q", tc.engine, got, err, tc.want)
		}
	}
}

func TestNewEngineHosts(t *testing.T) {
	for _, h := range []string{"unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "tcp://[::1]:2376"} {
		if _, err := NewEngine(EngineConfig{Host: h}); err != nil {
			t.Errorf("NewEngine(%q): %v", h, err)
		}
	}
	for _, h := range []string{"", "/var/run/docker.sock", "unix://", "ssh://me@host", "tcp://host", "npipe:////./pipe/docker_engine"} {
		if _, err := NewEngine(EngineConfig{Host: h}); err == nil {
			t.Errorf("NewEngine(%q): no error; want one", h)
		}
	}
}

// TestEngineConfigFromEnv: the environment is read as the docker CLI reads
// it, and a certificate folder that cannot be used is an error naming it.
func TestEngineConfigFromEnv(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	cfg, err := EngineConfigFromEnv("")
	if err != nil || cfg.Host != DefaultDockerHost || cfg.TLS != nil || cfg.APIVersion != "" {
		t.Fatalf("empty environment: %+v, %v", cfg, err)
	}
	t.Setenv("DOCKER_HOST", "tcp://10.0.0.1:2376")
	t.Setenv("DOCKER_API_VERSION", "v1.43")
	if cfg, err = EngineConfigFromEnv(""); err != nil || cfg.Host != "tcp://10.0.0.1:2376" || cfg.APIVersion != "1.43" {
		t.Fatalf("environment: %+v, %v", cfg, err)
	}
	if cfg, err = EngineConfigFromEnv("unix:///other.sock"); err != nil || cfg.Host != "unix:///other.sock" {
		t.Fatalf("a host given: %+v, %v", cfg, err)
	}
	t.Setenv("DOCKER_API_VERSION", "latest")
	if _, err = EngineConfigFromEnv(""); err == nil || !strings.Contains(err.Error(), "DOCKER_API_VERSION") {
		t.Fatalf("a bad DOCKER_API_VERSION: %v", err)
	}
	t.Setenv("DOCKER_API_VERSION", "")
	dir := t.TempDir()
	t.Setenv("DOCKER_CERT_PATH", dir)
	if _, err = EngineConfigFromEnv(""); err == nil || !strings.Contains(err.Error(), "DOCKER_CERT_PATH="+dir) {
		t.Fatalf("an empty certificate folder: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not a certificate"), 0o600)
	if _, err = EngineConfigFromEnv(""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a ca.pem that is no certificate: %v", err)
	}
}

// TestEngineTLS: with DOCKER_CERT_PATH and DOCKER_TLS_VERIFY, the engine is
// reached over https, its certificate checked against ca.pem and the
// client's own (cert.pem, key.pem) shown to it.
func TestEngineTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scanner"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_ping":
			w.Header().Set("Api-Version", "1.41")
		case "/v1.41/containers/json":
			w.Write([]byte(`[{"Id":"tls"}]`))
		default:
			http.NotFound(w, r)
		}
	}))
	clients := x509.NewCertPool()
	clients.AddCert(clientCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	pemFile := func(name, kind string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pemFile("ca.pem", "CERTIFICATE", srv.Certificate().Raw)
	pemFile("cert.pem", "CERTIFICATE", der)
	pemFile("key.pem", "EC PRIVATE KEY", keyDER)
	t.Setenv("DOCKER_HOST", "tcp://"+srv.Listener.Addr().String())
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", dir)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	cfg, err := EngineConfigFromEnv("")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got, err := e.ListContainers(context.Background()); err != nil || len(got) != 1 || got[0].ID != "tls" {
		t.Fatalf("list over TLS: %+v, %v", got, err)
	}

	// Another CA in ca.pem: the engine's certificate is refused.
	pemFile("ca.pem", "CERTIFICATE", der)
	if cfg, err = EngineConfigFromEnv(""); err != nil {
		t.Fatal(err)
	}
	if e, err = NewEngine(cfg); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.ListContainers(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("list from an engine ca.pem does not vouch for: %v; want a certificate error", err)
	}
}

// listAnswer is an engine's list answer of n containers as the engine
// writes it (API 1.41), every field it sends included.
func listAnswer(n int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		id := fmt.Sprintf("%064x", i+1)
		fmt.Fprintf(&b, `{"Id":"%s","Names":["/c-%d"],"Image":"ds01-test/busybox:latest","ImageID":"sha256:%s",`+
			`"Command":"sleep 3600","Created":%d,"Ports":[],"Labels":{"com.docker.compose.project":"bench",`+
			`"com.docker.compose.project.working_dir":"/tmp","ds01.user":"bench"},"State":"exited",`+
			`"Status":"Exited (0) 2 hours ago","HostConfig":{"NetworkMode":"default"},"NetworkSettings":{"Networks":`+
			`{"bridge":{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"%s","EndpointID":"","Gateway":"",`+
			`"IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,`+
			`"MacAddress":"","DriverOpts":null}}},"Mounts":[]}`, id, i, id, 1764600000+i, id)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// FuzzDecodeContainerListMatchesEncodingJSON: the list decoder decodes
// what encoding/json decodes into the same structs, and refuses what it
// refuses (but a key twice in one object, which it alone refuses).
func FuzzDecodeContainerListMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		string(listAnswer(2)), "[]", "null", "[null]", "[{}]", `[{"id":"x","NAMES":["/a"],"labels":{"k":"v"}}]`,
		`[{"Id":"a\u00e9\ud800","Labels":{"k":null},"Names":null,"Created":-5}]`, `[{"Created":1e3}]`,
		`[{"Created":9223372036854775808}]`, `[{"Labels":{"k":"v","k":"w"}}]`, `{"message":"x"}`, `[{"Id":5}]`, "[{", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeContainerList(bytes.NewReader(data))
		if err != nil && strings.Contains(err.Error(), "appears twice") {
			return
		}
		var want []ListedContainer
		stdErr := json.Unmarshal(data, &want)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("decoder error %v, encoding/json error %v", err, stdErr)
		}
		if len(want) == 0 {
			want = nil
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded differently:\ndecoder       %+v\nencoding/json %+v", got, want)
		}
	})
}

// BenchmarkDecodeContainerList is decoding the engine's answer for 1,000
// containers, against encoding/json decoding it one container at a time as
// the scan did before.
func BenchmarkDecodeContainerList(b *testing.B) {
	data := listAnswer(1000)
	b.Run("decoder", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := DecodeContainerList(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(data))
			if _, err := dec.Token(); err != nil {
				b.Fatal(err)
			}
			for dec.More() {
				var c ListedContainer
				if err := dec.Decode(&c); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
