//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

func engine(t *testing.T, verb string) {
	t.Helper()
	mustHave(t, env.engineDir != "", "DS01_TEST_ENGINE_DIR unset: cannot stop and start the engine")
	out, err := exec.Command("bash", "../../hack/engine.sh", verb, env.engineDir).CombinedOutput()
	if err != nil {
		t.Fatalf("engine.sh %s: %v\n%s", verb, err, out)
	}
}

// TestScanEngineDownKeepsContainers stops the engine between two scans: the
// containers stay, marked stale, with no removed events; when the engine is
// back, no container is discovered a second time.
func TestScanEngineDownKeepsContainers(t *testing.T) {
	running := container(t, "run", "-d", env.image, "sleep", "600")
	created := container(t, "create", env.image)
	s := newScanner(t)
	s.scan(t)

	engine(t, "stop")
	stopped := true
	t.Cleanup(func() {
		if stopped {
			engine(t, "start")
		}
	})
	inv := s.scan(t)
	if inv.Sources["docker"].OK || inv.Sources["docker"].Error == "" || inv.Sources["docker"].LastSuccess == nil {
		t.Errorf("docker source while the engine is down: %+v", inv.Sources["docker"])
	}
	for _, id := range []string{running, created} {
		c := mustFind(t, inv, id)
		if !c.Stale {
			t.Errorf("container %s not marked stale while the engine is down", id[:12])
		}
	}
	s.scan(t) // still down: no second source_unavailable

	engine(t, "start")
	stopped = false
	inv = s.scan(t)
	if !inv.Sources["docker"].OK {
		t.Fatalf("docker source after restart: %+v", inv.Sources["docker"])
	}
	for _, id := range []string{running, created} {
		if c := mustFind(t, inv, id); c.Stale {
			t.Errorf("container %s still stale after the engine came back", id[:12])
		}
	}
	// The engine stopped the running container on shutdown: one real change.
	if got, want := s.eventsFor(t, running), []string{discovered, statusChanged}; !reflect.DeepEqual(got, want) {
		t.Errorf("running container: events %v, want %v", got, want)
	}
	if got, want := s.eventsFor(t, created), []string{discovered}; !reflect.DeepEqual(got, want) {
		t.Errorf("created container: events %v, want %v", got, want)
	}
	var sourceEvents []string
	for _, e := range s.allEvents(t) {
		if e.Details["source"] == "docker" {
			sourceEvents = append(sourceEvents, e.EventType)
		}
	}
	if want := []string{inventory.EventSourceUnavailable, inventory.EventSourceRecovered}; !reflect.DeepEqual(sourceEvents, want) {
		t.Errorf("source events %v, want %v", sourceEvents, want)
	}
}

// TestScanCorruptInventory: a corrupt inventory is moved aside, the scan
// starts afresh, and says so in an event.
func TestScanCorruptInventory(t *testing.T) {
	s := newScanner(t)
	os.WriteFile(s.state, []byte(`{"schema_version": 1, "containers": [{"id": "tru`), 0o644)
	inv := s.scan(t)
	if inv.Scan.ID == "" {
		t.Fatal("no scan ID in the fresh inventory")
	}
	moved, _ := filepath.Glob(s.state + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("corrupt file not moved aside: %v", moved)
	}
	var reset bool
	for _, e := range s.allEvents(t) {
		reset = reset || e.EventType == inventory.EventInventoryReset
	}
	if !reset {
		t.Error("no inventory_reset event")
	}
}

// TestScanLockHeld: a second scan waits for the lock, then gives up with
// exit 0 and writes nothing.
func TestScanLockHeld(t *testing.T) {
	s := newScanner(t)
	lock := filepath.Join(s.dir, "held.lock")
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r := s.run(t, scanOpts{args: []string{"--lock-file", lock}})
	if r.code != 0 {
		t.Fatalf("scan with the lock held: %s (want exit 0)\n%s", r.status(), r.output())
	}
	if !strings.Contains(r.output(), "another scan") {
		t.Errorf("no message about the held lock: %s", r.output())
	}
	if _, err := os.Stat(s.state); !os.IsNotExist(err) {
		t.Errorf("inventory written while the lock was held")
	}
}

// TestScanExitCodes: usage errors exit 2; a non-root user is told clearly.
func TestScanExitCodes(t *testing.T) {
	bin := filepath.Join(env.bin, "ds01-scan")
	bare := &scanner{bin: bin}
	if r := bare.run(t, scanOpts{args: []string{"--no-such-flag"}}); r.code != 2 {
		t.Errorf("unknown flag: %s, want exit 2", r.status())
	}
	u := newUser(t, "ds01it-carol")
	// A copy in a world-readable directory: the checkout may not be.
	dir, err := os.MkdirTemp("", "ds01-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ds01-scan"), data, 0o755)
	copied := &scanner{bin: filepath.Join(dir, "ds01-scan")}
	r := copied.run(t, scanOpts{as: &u})
	out := r.output()
	if r.code != 1 || !strings.Contains(out, "must run as root") {
		t.Errorf("non-root run: %s %s, want exit 1 saying it must run as root", r.status(), out)
	}
	if strings.Contains(out, "goroutine") {
		t.Errorf("stack trace printed: %s", out)
	}
}
