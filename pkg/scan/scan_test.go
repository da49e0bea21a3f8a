package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/moby/moby/api/types/container"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// fakeDocker is an engine listing one running container, dockerID, whose
// main process is the fake tree's pid 101. hang makes every call wait for
// its context, as a frozen engine does.
type fakeDocker struct {
	hang bool
	// id is the container it lists, dockerID when empty.
	id       string
	calls    atomic.Int32
	inspects atomic.Int32
}

func (f *fakeDocker) wait(ctx context.Context) error {
	f.calls.Add(1)
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeDocker) ListContainers(ctx context.Context) ([]detect.ListedContainer, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	id := f.id
	if id == "" {
		id = dockerID
	}
	return []detect.ListedContainer{{
		ID: id, Names: []string{"/train"}, Image: "busybox", State: string(container.StateRunning),
		Labels: map[string]string{"ds01.user": "alice"}, Created: 1_700_000_000,
	}}, nil
}

func (f *fakeDocker) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	f.inspects.Add(1)
	if err := f.wait(ctx); err != nil {
		return container.InspectResponse{}, err
	}
	return container.InspectResponse{
		ID: id, Name: "/train", Created: "2023-11-14T22:13:20Z",
		State:  &container.State{Status: container.StateRunning, Running: true, Pid: 101, StartedAt: "2023-11-14T22:13:21Z"},
		Config: &container.Config{Labels: map[string]string{"ds01.user": "alice"}},
	}, nil
}

func (f *fakeDocker) DefaultRuntime(ctx context.Context) (string, error) {
	return "", f.wait(ctx)
}

// mockGPUs is go-nvml's DGX A100 with pid 101 (in the container) on GPU 0
// and pid 100 (a host process) on GPU 2.
func mockGPUs() *server.Server {
	s := dgxa100.New()
	// A driver before R510: no v2 memory call.
	s.LookupSymbolFunc = func(string) error { return errors.New("undefined symbol") }
	for i := range s.Devices {
		d := s.Devices[i].(*server.Device)
		var procs []nvml.ProcessInfo
		switch i {
		case 0:
			procs = []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 1 << 30}}
		case 2:
			procs = []nvml.ProcessInfo{{Pid: 100, UsedGpuMemory: 2 << 30}}
		}
		d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
		d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return procs, nvml.SUCCESS }
		d.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
		d.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
		d.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		d.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
		d.GetAccountingPidsFunc = func() ([]int, nvml.Return) { return nil, nvml.SUCCESS }
	}
	return s
}

// hungNVML is an NVML whose Init never returns, as a wedged driver's.
type hungNVML struct {
	nvml.Interface
	release chan struct{}
}

func (h hungNVML) Init() nvml.Return { <-h.release; return nvml.ERROR_UNKNOWN }

func newTestScanner(t *testing.T, docker detect.DockerAPI, lib nvml.Interface, budgets Budgets) *Scanner {
	t.Helper()
	procfs := detect.NewProcfs(fakeProc)
	return New(Deps{
		Docker: docker, NVML: func() (nvml.Interface, error) { return lib, nil }, Procfs: procfs,
		Users: attribution.NewUsers(""), Clock: func() time.Time { return time.Now().UTC() },
		Log: slog.New(slog.DiscardHandler), Host: "gpu-07", Version: "test", Budgets: budgets,
		Ptrace: func() (bool, error) { return true, nil },
	})
}

func TestScanPlacesEverySourcesFindings(t *testing.T) {
	s := newTestScanner(t, &fakeDocker{}, mockGPUs(), Budgets{})
	next, transitions := s.Scan(context.Background(), nil)

	for _, name := range []string{inventory.SourceDocker, inventory.SourceNVML, inventory.SourceProcfs} {
		if st := next.Sources[name]; !st.OK || st.LastSuccess == nil || st.DurationMS < 0 {
			t.Errorf("source %s = %+v; want answered", name, st)
		}
	}
	if next.Scan.Host != "gpu-07" || next.Scan.Version != "test" || next.Scan.ID == "" || next.Scan.Time.IsZero() {
		t.Errorf("scan info = %+v", next.Scan)
	}
	if len(next.Containers) != 1 {
		t.Fatalf("containers = %d; want 1", len(next.Containers))
	}
	c := next.Containers[0]
	if c.User != "alice" || c.UserSource != attribution.SourceLabelUser || c.DetectedLabels[detect.LabelDetectedUser] != "alice" {
		t.Errorf("container attributed to %q (%s), detected labels %v", c.User, c.UserSource, c.DetectedLabels)
	}
	if len(c.GPUProcesses) != 1 || c.GPUProcesses[0].PID != 101 || c.GPUProcesses[0].GPU != "0" || c.GPUProcesses[0].NSPID != 7 ||
		c.GPUAccess != inventory.AccessUndeclared {
		t.Errorf("container GPU use = %v, access %s; want pid 101 on GPU 0, undeclared", gpuProcs(c.GPUProcesses), c.GPUAccess)
	}
	// A host process is pending on its first sighting.
	if len(next.HostProcesses) != 0 || len(next.PendingProcesses) != 1 || next.PendingProcesses[0].PID != 100 ||
		next.PendingProcesses[0].GPUs[0] != "2" {
		t.Errorf("host %v pending %v; want pid 100 on GPU 2 pending", next.HostProcesses, next.PendingProcesses)
	}
	if len(next.GPUs) != 8 {
		t.Errorf("GPUs = %d; want the mock's 8", len(next.GPUs))
	}
	if len(transitions) != 1 || transitions[0].Type != inventory.EventContainerDiscovered {
		t.Errorf("transitions = %+v; want one discovery", transitions)
	}

	// The second scan: the host process enters, nothing else changes, and
	// the container is not inspected again.
	again, transitions := s.Scan(context.Background(), next)
	if len(again.HostProcesses) != 1 || len(transitions) != 1 || transitions[0].Type != inventory.EventHostProcessDiscovered {
		t.Errorf("second scan: host processes %v, transitions %+v", again.HostProcesses, transitions)
	}
}

// TestObserveHungDockerCostsItsOwnBudget: a frozen engine fails the Docker
// source at its budget while NVML and /proc answer, and their GPU use is
// placed on host processes still.
func TestObserveHungDockerCostsItsOwnBudget(t *testing.T) {
	const budget = 300 * time.Millisecond
	s := newTestScanner(t, &fakeDocker{hang: true}, mockGPUs(), Budgets{Docker: budget, DockerCall: time.Hour})
	var logged strings.Builder
	s.log = slog.New(slog.NewTextHandler(&logged, nil))
	began := time.Now()
	obs := s.Observe(context.Background(), nil)
	took := time.Since(began)

	d := obs.Sources[inventory.SourceDocker]
	if d.OK || !strings.Contains(d.Error, "deadline exceeded") {
		t.Errorf("docker source = %+v; want failed at its deadline", d)
	}
	// Admins find an outage in the journal with grep.
	if !strings.Contains(logged.String(), `level=WARN msg="docker source unavailable" source=docker`) {
		t.Errorf("the log does not say the docker source is unavailable:\n%s", logged.String())
	}
	if d.DurationMS < budget.Milliseconds() {
		t.Errorf("docker took %d ms by its record; its budget is %v", d.DurationMS, budget)
	}
	if took < budget {
		t.Errorf("Observe returned after %v, before the Docker budget of %v ran out", took, budget)
	}
	for _, name := range []string{inventory.SourceNVML, inventory.SourceProcfs} {
		if st := obs.Sources[name]; !st.OK || st.DurationMS >= budget.Milliseconds() {
			t.Errorf("source %s = %+v; want answered without waiting for Docker", name, st)
		}
	}
	if len(obs.Containers) != 0 || len(obs.Processes) != 1 || obs.Processes[0].PID != 100 {
		t.Errorf("containers %v, processes %v; want none (Docker down) and host pid 100", obs.Containers, obs.Processes)
	}
}

// TestObserveHungNVMLIsAbandoned: NVML's cgo calls cannot be interrupted;
// a driver that never answers is abandoned at the NVML budget, the other
// sources answer, and the /proc device scan alone still places GPU users.
func TestObserveHungNVMLIsAbandoned(t *testing.T) {
	const budget = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	s := newTestScanner(t, &fakeDocker{}, hungNVML{release: release}, Budgets{NVML: budget})
	prev := &inventory.Inventory{GPUs: []inventory.GPUDevice{{ID: "0"}, {ID: "1"}}}
	obs := s.Observe(context.Background(), prev)

	nv := obs.Sources[inventory.SourceNVML]
	if nv.OK || !strings.Contains(nv.Error, "timed out") || nv.DurationMS < budget.Milliseconds() {
		t.Errorf("nvml source = %+v; want timed out at its budget", nv)
	}
	if !obs.Sources[inventory.SourceDocker].OK || !obs.Sources[inventory.SourceProcfs].OK {
		t.Errorf("sources = %+v; want docker and procfs answered", obs.Sources)
	}
	if !obs.ProcessesObserved {
		t.Error("the /proc scan answered, yet processes are not taken as observed")
	}
	if strings.Join(obs.UnreadGPUs, ",") != "0,1" {
		t.Errorf("unread GPUs = %v; want every GPU NVML last reported", obs.UnreadGPUs)
	}
	if len(obs.Containers) != 1 || len(obs.Containers[0].GPUProcesses) != 0 {
		t.Errorf("containers = %+v; want the listed one, no GPU process (no fake holder)", obs.Containers)
	}
}

// TestObserveSourcePanicCostsThatSource: a source that panics is down with
// the reason; the scan goes on.
func TestObserveSourcePanicCostsThatSource(t *testing.T) {
	s := newTestScanner(t, &fakeDocker{}, nil, Budgets{})
	s.nvml = func() (nvml.Interface, error) { panic("broken binding") }
	obs := s.Observe(context.Background(), nil)
	if nv := obs.Sources[inventory.SourceNVML]; nv.OK || !strings.Contains(nv.Error, "broken binding") {
		t.Errorf("nvml source = %+v; want down naming the panic", nv)
	}
	if !obs.Sources[inventory.SourceDocker].OK || len(obs.Containers) != 1 {
		t.Errorf("docker source = %+v with %d containers; want answered", obs.Sources[inventory.SourceDocker], len(obs.Containers))
	}
}

// TestObserveNoGPUSource: with neither GPU source answering, no process is
// taken as gone and none is placed.
func TestObserveNoGPUSource(t *testing.T) {
	s := newTestScanner(t, &fakeDocker{}, nil, Budgets{})
	s.nvml = func() (nvml.Interface, error) { return nil, nvml.ERROR_LIBRARY_NOT_FOUND }
	s.procfs = detect.NewProcfs(t.TempDir() + "/missing")
	obs := s.Observe(context.Background(), nil)
	if obs.ProcessesObserved || obs.Sources[inventory.SourceNVML].OK || obs.Sources[inventory.SourceProcfs].OK {
		t.Errorf("sources = %+v, processes observed %v; want both GPU sources down", obs.Sources, obs.ProcessesObserved)
	}
	if len(obs.Processes) != 0 || len(obs.Containers) != 1 {
		t.Errorf("processes %v containers %d", obs.Processes, len(obs.Containers))
	}
}

// manyContainers is an engine listing n created containers; a steady scan
// inspects none of them.
type manyContainers struct {
	fakeDocker
	items []detect.ListedContainer
}

func (m *manyContainers) ListContainers(context.Context) ([]detect.ListedContainer, error) {
	return m.items, nil
}

// ContainerInspect describes a container as the list does (created, not
// running), so that the next scan carries it forward instead of inspecting
// it again.
func (m *manyContainers) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	m.inspects.Add(1)
	return container.InspectResponse{
		ID: id, Name: "/c", Created: "2023-11-14T22:13:20Z",
		State:  &container.State{Status: container.StateCreated},
		Config: &container.Config{Labels: map[string]string{"com.docker.compose.project": "p"}},
	}, nil
}

// BenchmarkScanSteady is the scanner's own share of a steady scan of 1,000
// containers (the engine's list answer already decoded, nothing new to
// inspect): observe, place, reconcile.
func BenchmarkScanSteady(b *testing.B) {
	m := &manyContainers{}
	for i := range 1000 {
		m.items = append(m.items, detect.ListedContainer{
			ID: fmt.Sprintf("%064x", i+1), Names: []string{fmt.Sprintf("/c%d", i)}, Image: "busybox",
			State: string(container.StateCreated), Labels: map[string]string{"com.docker.compose.project": "p"}, Created: 1_700_000_000,
		})
	}
	procfs := detect.NewProcfs(fakeProc)
	s := New(Deps{
		Docker: m, NVML: func() (nvml.Interface, error) { return mockGPUs(), nil }, Procfs: procfs,
		Users: attribution.NewUsers(""), Clock: func() time.Time { return time.Now().UTC() },
		Log: slog.New(slog.DiscardHandler), Ptrace: func() (bool, error) { return true, nil },
	})
	prev, _ := s.Scan(context.Background(), nil)
	cold := m.inspects.Load()
	for b.Loop() {
		next, _ := s.Scan(context.Background(), prev)
		if len(next.Containers) != 1001 { // and the fake /proc's container of another runtime
			b.Fatalf("%d containers", len(next.Containers))
		}
	}
	if n := m.inspects.Load() - cold; n != 0 {
		b.Fatalf("steady scans inspected %d times; want none", n)
	}
}

// TestScanReinspectsNodesReadAsIndices: a container recorded before
// /dev/nvidiaN was read by minor number (its --device recorded as index N)
// is inspected again, once, and recorded as it is now; an unchanged one is
// not.
func TestScanReinspectsNodesReadAsIndices(t *testing.T) {
	docker := &fakeDocker{}
	s := newTestScanner(t, docker, mockGPUs(), DefaultBudgets)
	inv, _ := s.Scan(context.Background(), nil)
	before := docker.inspects.Load()
	inv, _ = s.Scan(context.Background(), inv)
	if n := docker.inspects.Load() - before; n != 0 {
		t.Fatalf("a steady scan inspected %d times", n)
	}
	inv.Containers[0].GPU = inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelDevice}, Devices: []string{"0"}}
	before = docker.inspects.Load()
	inv, _ = s.Scan(context.Background(), inv)
	if n := docker.inspects.Load() - before; n != 1 {
		t.Errorf("an old --device record: %d inspects, want 1", n)
	}
	if g := inv.Containers[0].GPU; g.Declared {
		t.Errorf("re-inspected, the container is recorded as declaring %+v; the engine says it declares nothing", g)
	}
}

// TestScanLoadingListsWhileLoading: the engine is asked for its list
// before the previous inventory has been read, and the scan that waited for
// it is the steady scan Scan makes with it.
func TestScanLoadingListsWhileLoading(t *testing.T) {
	docker := &fakeDocker{}
	s := newTestScanner(t, docker, mockGPUs(), DefaultBudgets)
	first, _ := s.Scan(context.Background(), nil)
	asked, inspects := docker.calls.Load(), docker.inspects.Load()
	release := make(chan struct{})
	timedOut := false
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for docker.calls.Load() == asked && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		timedOut = docker.calls.Load() == asked
		close(release)
	}()
	next, transitions := s.ScanLoading(context.Background(), func() *inventory.Inventory { <-release; return first })
	if timedOut {
		t.Fatal("the engine was not asked until the previous inventory was read")
	}
	if n := docker.inspects.Load() - inspects; n != 0 {
		t.Errorf("after the load: %d inspects, want none", n)
	}
	_, want := s.Scan(context.Background(), first)
	if !slices.EqualFunc(transitions, want, func(a, b inventory.Transition) bool { return a.Type == b.Type }) {
		t.Errorf("transitions %+v, want Scan's %+v", transitions, want)
	}
	if len(next.Containers) != len(first.Containers) || next.Containers[0].DetectedAt != first.Containers[0].DetectedAt {
		t.Errorf("containers %+v, want the first scan's carried forward", next.Containers)
	}
}

// TestObserveUserEngines: each user's engine is a source of its own; its
// containers are its owner's whatever their labels say, and carry the
// engine, while those of an engine the admin named are attributed as the
// system engine's are; one that hangs costs its own budget and no other source's data;
// an ID a user's engine lists that the system engine lists too is the
// system engine's.
func TestObserveUserEngines(t *testing.T) {
	const (
		userID  = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
		good    = "/run/user/4242/docker.sock"
		hung    = "/run/user/4243/docker.sock"
		forger  = "/run/user/4244/docker.sock"
		admins  = "unix:///srv/docker2/docker.sock"
		adminID = "cd0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
		budget  = 300 * time.Millisecond
	)
	procfs := detect.NewProcfs(fakeProc)
	s := New(Deps{
		Docker: &fakeDocker{},
		OtherEngines: []OtherEngine{
			{Address: good, Owner: 4242, API: &fakeDocker{id: userID}},
			{Address: hung, Owner: 4243, API: &fakeDocker{hang: true}},
			{Address: forger, Owner: 4244, API: &fakeDocker{}},
			{Address: admins, Owner: -1, API: &fakeDocker{id: adminID}},
		},
		NVML: func() (nvml.Interface, error) { return mockGPUs(), nil }, Procfs: procfs,
		Users: attribution.NewUsers(""), Clock: func() time.Time { return time.Now().UTC() },
		Log: slog.New(slog.DiscardHandler), Budgets: Budgets{UserEngine: budget},
		Ptrace: func() (bool, error) { return true, nil },
	})
	next, _ := s.Scan(context.Background(), nil)
	for name, ok := range map[string]bool{
		inventory.SourceDocker: true, inventory.EngineSource(good): true,
		inventory.EngineSource(hung): false, inventory.EngineSource(forger): true, inventory.EngineSource(admins): true,
	} {
		st, seen := next.Sources[name]
		if !seen || st.OK != ok {
			t.Errorf("source %s = %+v (recorded %v); want ok %v", name, st, seen, ok)
		}
	}
	if st := next.Sources[inventory.EngineSource(hung)]; st.DurationMS > 5*budget.Milliseconds() {
		t.Errorf("the hung engine took %d ms; its budget is %v", st.DurationMS, budget)
	}
	if len(next.Containers) != 3 {
		t.Fatalf("containers %d; want the system one, the user one and the admin's other engine's", len(next.Containers))
	}
	for _, c := range next.Containers {
		switch c.ID {
		case dockerID:
			if c.User != "alice" || c.Launcher == nil || c.Launcher.Engine != "" {
				t.Errorf("system container %s (%s), launcher %+v; want alice's, of the system engine", c.User, c.UserSource, c.Launcher)
			}
		case userID:
			if c.User != "uid:4242" || c.UserSource != attribution.SourceEngineOwner || c.Launcher == nil ||
				*c.Launcher != (inventory.Launcher{Name: inventory.LauncherDocker, Engine: good}) {
				t.Errorf("user container %s (%s), launcher %+v; want the owner's, of %s", c.User, c.UserSource, c.Launcher, good)
			}
		case adminID:
			if c.User != "alice" || c.UserSource != attribution.SourceLabelUser || c.Launcher == nil || c.Launcher.Engine != admins {
				t.Errorf("the admin's other engine's container %s (%s), launcher %+v; want attributed by its label, of %s", c.User, c.UserSource, c.Launcher, admins)
			}
		}
	}
	// A steady scan keeps the user engine's container its owner's.
	again, _ := s.Scan(context.Background(), next)
	for _, c := range again.Containers {
		if c.ID == userID && (c.UserSource != attribution.SourceEngineOwner || c.Launcher.Engine != good) {
			t.Errorf("second scan: user container %s (%s), launcher %+v", c.User, c.UserSource, c.Launcher)
		}
	}
}

// TestStartAnsweredInTimeWaitedLate: sources are waited for in turn; one
// that answered within its budget is answered, though the scan reaches it
// only after its budget ran out, waiting for another. One that answers
// only after its budget is not.
func TestStartAnsweredInTimeWaitedLate(t *testing.T) {
	s := newTestScanner(t, &fakeDocker{}, mockGPUs(), Budgets{})
	slow := start(context.Background(), s, source{"slow", 300 * time.Millisecond, slog.LevelInfo},
		func(ctx context.Context) (int, string, error) { <-ctx.Done(); return 0, "", ctx.Err() })
	quick := start(context.Background(), s, source{"quick", 100 * time.Millisecond, slog.LevelInfo},
		func(context.Context) (int, string, error) { return 7, "", nil })
	late := start(context.Background(), s, source{"late", 100 * time.Millisecond, slog.LevelInfo},
		func(context.Context) (int, string, error) { time.Sleep(200 * time.Millisecond); return 8, "", nil })
	if o := slow(); o.status.OK {
		t.Errorf("slow source %+v; want timed out", o.status)
	}
	if o := quick(); !o.status.OK || o.value != 7 {
		t.Errorf("quick source %+v, %d; want answered 7", o.status, o.value)
	}
	if o := late(); o.status.OK || o.value != 0 || !strings.Contains(o.status.Error, "past its budget") {
		t.Errorf("late source %+v, %d; want refused as past its budget", o.status, o.value)
	}
}
