//go:build integration

// Package integration runs the real ds01-scan binary against a real, private
// Docker engine started by hack/with-engine.sh, with containers made by the
// real tools that make them on a lab server (docker, docker-compose, the
// devcontainer CLI) and real users made with useradd.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// env is what hack/with-engine.sh and hack/test.sh hand the suite.
var env struct {
	dockerHost   string
	engineDir    string
	image        string
	bin          string
	devcontainer string
}

func TestMain(m *testing.M) {
	env.dockerHost = os.Getenv("DS01_TEST_DOCKER_HOST")
	env.engineDir = os.Getenv("DS01_TEST_ENGINE_DIR")
	env.image = os.Getenv("DS01_TEST_IMAGE")
	env.bin = os.Getenv("DS01_TEST_BIN")
	env.devcontainer = os.Getenv("DS01_TEST_DEVCONTAINER")
	if env.dockerHost == "" || env.image == "" || env.bin == "" {
		fmt.Fprintln(os.Stderr, "!!! integration suite NOT RUN: no private engine (run it through `make test`)")
		if os.Getenv("CI") == "true" {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mustHave fails under CI, and skips loudly elsewhere, when a part is missing.
func mustHave(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run: %s (CI=true)", what)
	}
	t.Skipf("!!! SKIPPED: %s", what)
}

// docker runs the docker CLI against the private engine.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerErr(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func dockerErr(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.dockerHost)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// container creates a container with docker and removes it at cleanup.
func container(t *testing.T, verb string, args ...string) string {
	t.Helper()
	id := docker(t, append([]string{verb}, args...)...)
	id = lastLine(id)
	if !inventory.ValidContainerID(id) {
		t.Fatalf("docker %s printed %q, not a container ID", verb, id)
	}
	t.Cleanup(func() { dockerErr("rm", "-f", id) })
	return id
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// testUser is a real user made with useradd, with a home directory.
type testUser struct {
	name string
	uid  int
	home string
}

func newUser(t *testing.T, name string) testUser {
	t.Helper()
	exec.Command("userdel", "-r", name).Run()
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", "-r", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	return testUser{name: name, uid: uid, home: u.HomeDir}
}

// ownedDir makes a directory under the user's home, owned by the user.
func (u testUser) ownedDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(u.home, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, u.uid, u.uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scanner runs ds01-scan with a private state directory and event log.
type scanner struct {
	dir    string
	events string
	state  string
}

func newScanner(t *testing.T) *scanner {
	dir := t.TempDir()
	return &scanner{dir: dir, events: filepath.Join(dir, "events.jsonl"), state: filepath.Join(dir, "workload-inventory.json")}
}

// scan runs one scan and returns the inventory it wrote.
func (s *scanner) scan(t *testing.T) *inventory.Inventory {
	t.Helper()
	cmd := exec.Command(filepath.Join(env.bin, "ds01-scan"), "--state-dir", s.dir, "--events-file", s.events,
		"--docker-host", env.dockerHost)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ds01-scan: %v\n%s", err, out)
	}
	inv, err := inventory.Load(s.state)
	if err != nil {
		t.Fatalf("load inventory after scan: %v\nscanner said:\n%s", err, out)
	}
	return inv
}

type event struct {
	Timestamp     string         `json:"timestamp"`
	EventType     string         `json:"event_type"`
	User          *string        `json:"user"`
	Source        string         `json:"source"`
	Details       map[string]any `json:"details"`
	SchemaVersion string         `json:"schema_version"`
}

// events returns every event in the log, failing on any line that is not a
// whole JSON object.
func (s *scanner) allEvents(t *testing.T) []event {
	t.Helper()
	data, err := os.ReadFile(s.events)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 8192), 8192)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event log line is not JSON: %v: %q", err, sc.Text())
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read event log: %v", err)
	}
	return out
}

// eventsFor returns the types of the events about one container, in order.
func (s *scanner) eventsFor(t *testing.T, id string) []string {
	t.Helper()
	var types []string
	for _, e := range s.allEvents(t) {
		if e.Details["container_id"] == id {
			types = append(types, e.EventType)
		}
	}
	return types
}

func find(inv *inventory.Inventory, id string) *inventory.Container {
	for i := range inv.Containers {
		if inv.Containers[i].ID == id {
			return &inv.Containers[i]
		}
	}
	return nil
}

func mustFind(t *testing.T, inv *inventory.Inventory, id string) *inventory.Container {
	t.Helper()
	c := find(inv, id)
	if c == nil {
		t.Fatalf("container %s not in the inventory", id[:12])
	}
	return c
}
