//go:build integration

package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// sourceEvents returns the source transitions logged for one source.
func (s *scanner) sourceEvents(t *testing.T, source string) []string {
	t.Helper()
	var out []string
	for _, e := range s.allEvents(t) {
		if e.SourceName == source && strings.HasPrefix(e.EventType, "detection.source_") {
			out = append(out, e.EventType)
		}
	}
	return out
}

// countType counts events of one type.
func (s *scanner) countType(t *testing.T, typ string) int {
	t.Helper()
	n := 0
	for _, e := range s.allEvents(t) {
		if e.EventType == typ {
			n++
		}
	}
	return n
}

func dockerdPID(t *testing.T) int {
	t.Helper()
	mustHave(t, env.engineDir != "", "DS01_TEST_ENGINE_DIR unset")
	data, err := os.ReadFile(filepath.Join(env.engineDir, "docker.pid"))
	if err != nil {
		t.Fatalf("read dockerd pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestOutageDockerPaused: a frozen engine (SIGSTOP: connections open, no
// answer) costs the scan its per-call timeout, not its life: the scan ends
// inside its budget, keeps every container stale, logs no removal, and the
// outage gives one unavailable and one recovered event.
func TestOutageDockerPaused(t *testing.T) {
	id := container(t, "run", "-d", "--init", env.image, "sleep", "600")
	s := newScanner(t)
	s.scan(t)

	pid := dockerdPID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)

	budget := 8 * time.Second
	frozen := scanOpts{args: []string{"--timeout", budget.String()}}
	inv, r := s.mustScan(t, frozen)
	if took := r.took(); took > budget+2*time.Second {
		t.Errorf("scan against a frozen engine took %v, budget %v", took, budget)
	}
	if inv.Sources["docker"].OK {
		t.Fatalf("docker source ok while the engine is frozen")
	}
	if c := mustFind(t, inv, id); !c.Stale || c.Status != "running" {
		t.Errorf("container during the freeze: stale=%v status=%q, want stale and still running", c.Stale, c.Status)
	}
	if out := workloads(t, s.state).output(); !strings.Contains(out, "docker") || !strings.Contains(strings.ToLower(out), "down") {
		t.Errorf("ds01-workloads does not warn that docker is down:\n%s", out)
	}
	s.mustScan(t, frozen)
	resume()
	inv = s.scan(t)
	if c := mustFind(t, inv, id); c.Stale {
		t.Errorf("container still stale after the engine resumed")
	}
	if got, want := s.sourceEvents(t, "docker"), []string{inventory.EventSourceUnavailable, inventory.EventSourceRecovered}; !reflect.DeepEqual(got, want) {
		t.Errorf("docker source events %v, want %v", got, want)
	}
	if got := s.eventsFor(t, id); !reflect.DeepEqual(got, []string{discovered}) {
		t.Errorf("container events %v, want only the first discovered", got)
	}
}

// TestOutageDockerGarbage: an engine address that answers HTTP with errors
// or garbage is a source failure, not a world without containers.
func TestOutageDockerGarbage(t *testing.T) {
	id := container(t, "create", env.image)
	s := newScanner(t)
	s.scan(t)

	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"500 on every call", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"message":"internal error"}`, http.StatusInternalServerError)
		}},
		{"garbage JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Api-Version", "1.41")
			w.Write([]byte(`[{"Id": 12, "Names": "not a list"`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "bad.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: tc.handler}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
			inv, _ := s.mustScan(t, scanOpts{host: "unix://" + sock})
			if inv.Sources["docker"].OK {
				t.Errorf("docker source ok on a garbage answer")
			}
			if c := mustFind(t, inv, id); !c.Stale {
				t.Errorf("container not kept stale")
			}
		})
	}
	s.scan(t)
	if n := s.countType(t, inventory.EventContainerExited); n != 0 {
		t.Errorf("%d removed events from a garbage-answering engine", n)
	}
	if got := s.sourceEvents(t, "docker"); !reflect.DeepEqual(got, []string{inventory.EventSourceUnavailable, inventory.EventSourceRecovered}) {
		t.Errorf("docker source events %v, want one outage", got)
	}
}

// TestOutageGPUSources: NVML failing to initialise, and one GPU lost, keep
// the host processes they last saw (stale), with no false exits; each
// outage is one unavailable and one recovered event.
func TestOutageGPUSources(t *testing.T) {
	u := newUser(t, "ds01it-erin")
	var pids []int
	for range 2 {
		cmd := exec.Command("sleep", "600")
		cmd.SysProcAttr = u.credential()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, cmd.Process.Pid)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	both := mockNVML{Processes: []mockProcess{
		{GPU: 0, PID: pids[0], MemoryBytes: 1 << 30, Kind: "compute"},
		{GPU: 1, PID: pids[1], MemoryBytes: 1 << 30, Kind: "compute"},
	}}
	g := newGPUScanner(t)
	g.report(t, both)
	g.scan(t)
	g.scan(t)

	// NVML down: what it last saw stays, stale, with no false exits, even
	// where the /proc scan cannot see the process (these hold no device).
	g.report(t, mockNVML{InitError: "LIB_RM_VERSION_MISMATCH"})
	inv := g.scan(t)
	if st := inv.Sources["nvml"]; st.OK || !strings.Contains(strings.ToLower(st.Error), "mismatch") {
		t.Errorf("nvml source %+v, want the version mismatch named", st)
	}
	for _, pid := range pids {
		if p := findProcess(inv, pid); p == nil || !p.Stale {
			t.Errorf("process %d while NVML is down: %+v, want kept and stale", pid, p)
		}
	}
	g.report(t, both)
	inv = g.scan(t)
	for _, pid := range pids {
		if findProcess(inv, pid) == nil {
			t.Errorf("process %d missing after NVML recovered", pid)
		}
	}

	// GPU 1 lost: its process is not listed, but must not exit.
	lost := both
	lost.Processes = both.Processes[:1]
	writeLost(t, g, lost, 1)
	inv = g.scan(t)
	if p := findProcess(inv, pids[1]); p == nil || !p.Stale {
		t.Errorf("process on the lost GPU: %+v, want kept and stale", p)
	}
	if p := findProcess(inv, pids[0]); p == nil || p.Stale {
		t.Errorf("process on a healthy GPU: %+v, want present and fresh", p)
	}
	g.report(t, both)
	g.scan(t)
	if got := g.sourceEvents(t, "nvml"); !reflect.DeepEqual(got, []string{inventory.EventSourceUnavailable, inventory.EventSourceRecovered}) {
		t.Errorf("nvml source events %v, want one outage", got)
	}
	for _, pid := range pids {
		if got := g.hostEvents(t, pid); !reflect.DeepEqual(got, []string{inventory.EventHostProcessDiscovered}) {
			t.Errorf("process %d events %v, want one discovered and nothing else", pid, got)
		}
	}
}

// writeLost writes a mock file in which the GPU at index lostGPU answers
// GPU_IS_LOST.
func writeLost(t *testing.T, g *scanner, m mockNVML, lostGPU int) {
	t.Helper()
	type withLost struct {
		mockNVML
		Lost []int `json:"lost"`
	}
	data, err := json.Marshal(withLost{m, []int{lostGPU}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.mock, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentScans: scans started together never interleave: each
// change is logged once, the log holds whole lines, the inventory parses.
func TestConcurrentScans(t *testing.T) {
	ids := []string{
		container(t, "create", env.image),
		container(t, "run", "-d", "--init", env.image, "sleep", "600"),
	}
	s := newScanner(t)
	var wg sync.WaitGroup
	failed := make(chan runResult, 6)
	for range 6 {
		wg.Go(func() {
			if r := s.command(scanOpts{}).run(); !r.ok() {
				failed <- r
			}
		})
	}
	wg.Wait()
	close(failed)
	for r := range failed {
		t.Errorf("concurrent scan failed: %s", r)
	}
	if _, err := inventory.Load(s.state); err != nil {
		t.Fatalf("inventory after concurrent scans: %v", err)
	}
	for _, id := range ids {
		if got := s.eventsFor(t, id); !reflect.DeepEqual(got, []string{discovered}) {
			t.Errorf("container %s: events %v, want exactly one discovered", id[:12], got)
		}
	}
}

// TestScanTimeoutKeepsInventory: a scan whose budget runs out against a
// frozen engine still leaves every container of the previous inventory in
// place, and writes no removal.
func TestScanTimeoutKeepsInventory(t *testing.T) {
	id := container(t, "create", env.image)
	s := newScanner(t)
	before := s.scan(t)
	pid := dockerdPID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	after, r := s.mustScan(t, scanOpts{args: []string{"--timeout", "1s"}})
	syscall.Kill(pid, syscall.SIGCONT)
	if took := r.took(); took > 4*time.Second {
		t.Errorf("a 1 s budget took %v", took)
	}
	if len(after.Containers) != len(before.Containers) || find(after, id) == nil {
		t.Errorf("containers %d → %d after a timed-out scan", len(before.Containers), len(after.Containers))
	}
	if n := s.countType(t, inventory.EventContainerExited); n != 0 {
		t.Errorf("%d removed events from a timed-out scan", n)
	}
}
