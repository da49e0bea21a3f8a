package detect

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/client"
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
		{"an object", `{"message":"x"}`, nil, "not an array"},
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

// fakeEngine serves the two calls ListContainers makes on a Unix socket.
func fakeEngine(t *testing.T, list func(w http.ResponseWriter, r *http.Request)) *Engine {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	})
	mux.HandleFunc("/v1.41/containers/json", list)
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(client.WithHost("unix://" + sock))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(c)
	t.Cleanup(func() { e.Close() })
	return e
}

// TestEngineListContainers: the list is asked for at the version the
// engine settled on, with every container, and an error answer is worded
// as the engine worded it.
func TestEngineListContainers(t *testing.T) {
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
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

	e = fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("{\"message\":\"disk on fire\\n\\u001b[31m\"}"))
	})
	_, err = e.ListContainers(context.Background())
	if err == nil || !strings.Contains(err.Error(), "engine answered 500: disk on fire") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want the engine's message on one line", err)
	}
}
