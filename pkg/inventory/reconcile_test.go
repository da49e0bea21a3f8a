package inventory

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
)

// allOK is an observation in which every source answered.
func allOK(cs []Container, ps []HostProcess) Observation {
	return Observation{
		Sources: map[string]SourceStatus{
			SourceDocker: {OK: true}, SourceNVML: {OK: true}, SourceProcfs: {OK: true},
		},
		Containers:        cs,
		ProcessesObserved: true,
		Processes:         ps,
	}
}

// dockerDown is an observation in which Docker failed and the GPU sources
// answered with ps.
func dockerDown(ps []HostProcess) Observation {
	obs := allOK(nil, ps)
	obs.Sources[SourceDocker] = SourceStatus{Error: "list containers: Cannot connect to the Docker daemon"}
	return obs
}

// transitionTypes lists the types of ts in order.
func transitionTypes(ts []Transition) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.Type)
	}
	return out
}

// byType returns the transitions of type typ.
func byType(ts []Transition, typ string) []Transition {
	var out []Transition
	for _, t := range ts {
		if t.Type == typ {
			out = append(out, t)
		}
	}
	return out
}

func containerIDs(cs []Container) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func processKeys(ps []HostProcess) []ProcessKey {
	out := make([]ProcessKey, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Key())
	}
	return out
}

func TestReconcileFirstScan(t *testing.T) {
	// Out of key order on purpose: the inventory is sorted, the events
	// follow the observation.
	obs := allOK([]Container{container(3, "running", TypeRawDocker), container(1, "exited", TypeDS01Managed), container(2, "created", TypeDevcontainer)}, nil)
	next, ts := Reconcile(nil, obs, t0)

	if next.SchemaVersion != SchemaVersion {
		t.Errorf("SchemaVersion = %d, want %d", next.SchemaVersion, SchemaVersion)
	}
	if got, want := containerIDs(next.Containers), []string{cid(1), cid(2), cid(3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("containers = %v, want %v in key order", got, want)
	}
	for _, c := range next.Containers {
		if !c.DetectedAt.Equal(t0) || !c.LastSeen.Equal(t0) || c.Stale {
			t.Errorf("container %s: detected_at %v, last_seen %v, stale %v; want %v, %v, false", c.Name, c.DetectedAt, c.LastSeen, c.Stale, t0, t0)
		}
	}
	if got := transitionTypes(ts); !reflect.DeepEqual(got, []string{EventContainerDiscovered, EventContainerDiscovered, EventContainerDiscovered}) {
		t.Fatalf("transitions = %v, want three %s", got, EventContainerDiscovered)
	}
	seen := map[string]bool{}
	for _, tr := range ts {
		seen[tr.Container.ID] = true
		if !tr.Container.DetectedAt.Equal(t0) {
			t.Errorf("discovered %s carries detected_at %v, want %v", tr.Container.Name, tr.Container.DetectedAt, t0)
		}
	}
	if len(seen) != 3 {
		t.Errorf("discovered events cover %d distinct containers, want 3", len(seen))
	}
	for _, name := range []string{SourceDocker, SourceNVML, SourceProcfs} {
		st := next.Sources[name]
		if !st.OK || st.LastSuccess == nil || !st.LastSuccess.Equal(t0) {
			t.Errorf("source %s = %+v, want OK with last_success %v", name, st, t0)
		}
	}
}

func TestReconcileUnchanged(t *testing.T) {
	cs := []Container{container(1, "running", TypeRawDocker), container(2, "exited", TypeDockerCompose)}
	ps := []HostProcess{process(100, 1)}
	first, _ := Reconcile(nil, allOK(cs, ps), scanAt(0))
	second, ts := Reconcile(first, allOK(cs, ps), scanAt(1))
	third, ts3 := Reconcile(second, allOK(cs, ps), scanAt(2))

	if len(ts3) != 0 {
		t.Errorf("unchanged scan gave transitions %v, want none", transitionTypes(ts3))
	}
	if got := transitionTypes(ts); !reflect.DeepEqual(got, []string{EventHostProcessDiscovered}) {
		t.Errorf("second scan transitions = %v, want only the host process confirmed", got)
	}
	for _, c := range third.Containers {
		if !c.DetectedAt.Equal(scanAt(0)) {
			t.Errorf("container %s detected_at = %v, want the first sighting %v", c.Name, c.DetectedAt, scanAt(0))
		}
		if !c.LastSeen.Equal(scanAt(2)) {
			t.Errorf("container %s last_seen = %v, want %v", c.Name, c.LastSeen, scanAt(2))
		}
	}
	if len(third.HostProcesses) != 1 || !third.HostProcesses[0].DetectedAt.Equal(scanAt(0)) {
		t.Errorf("host processes = %+v, want pid 100 detected at %v", third.HostProcesses, scanAt(0))
	}
}

func TestReconcileContainerTransitions(t *testing.T) {
	tests := []struct {
		name     string
		prev     []Container
		now      []Container
		want     []string
		wantFrom string
		wantTo   string
	}{
		{
			name: "status running to exited",
			prev: []Container{container(1, "running", TypeRawDocker), container(2, "running", TypeRawDocker)},
			now:  []Container{container(1, "exited", TypeRawDocker), container(2, "running", TypeRawDocker)},
			want: []string{EventContainerStatusChanged}, wantFrom: "running", wantTo: "exited",
		},
		{
			name: "type unknown to raw-docker",
			prev: []Container{container(1, "running", TypeUnknown)},
			now:  []Container{container(1, "running", TypeRawDocker)},
			want: []string{EventContainerClassification}, wantFrom: TypeUnknown, wantTo: TypeRawDocker,
		},
		{
			name: "type and status both change",
			prev: []Container{container(1, "created", TypeUnknown)},
			now:  []Container{container(1, "running", TypeDevcontainer)},
			want: []string{EventContainerClassification, EventContainerStatusChanged},
		},
		{
			name: "container gone",
			prev: []Container{container(1, "running", TypeRawDocker), container(2, "exited", TypeDockerCompose)},
			now:  []Container{container(1, "running", TypeRawDocker)},
			want: []string{EventContainerExited},
		},
		{
			name: "new container beside old ones",
			prev: []Container{container(1, "running", TypeRawDocker)},
			now:  []Container{container(1, "running", TypeRawDocker), container(9, "created", TypeDS01Managed)},
			want: []string{EventContainerDiscovered},
		},
		{
			name: "everything gone while docker answers",
			prev: []Container{container(1, "running", TypeRawDocker), container(2, "exited", TypeRawDocker)},
			now:  nil,
			want: []string{EventContainerExited, EventContainerExited},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev, _ := Reconcile(nil, allOK(tc.prev, nil), scanAt(0))
			next, ts := Reconcile(prev, allOK(tc.now, nil), scanAt(1))
			if got := transitionTypes(ts); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("transitions = %v, want %v", got, tc.want)
			}
			if tc.wantFrom != "" && (ts[0].From != tc.wantFrom || ts[0].To != tc.wantTo) {
				t.Errorf("from/to = %q/%q, want %q/%q", ts[0].From, ts[0].To, tc.wantFrom, tc.wantTo)
			}
			if len(next.Containers) != len(tc.now) {
				t.Errorf("next holds %d containers, want %d", len(next.Containers), len(tc.now))
			}
		})
	}
}

func TestReconcileRemovedCarriesLastKnown(t *testing.T) {
	gone := container(2, "running", TypeDockerCompose)
	gone.Name, gone.User = "compose-web-1", "carol"
	prev, _ := Reconcile(nil, allOK([]Container{container(1, "running", TypeRawDocker), gone}, nil), scanAt(0))
	_, ts := Reconcile(prev, allOK([]Container{container(1, "running", TypeRawDocker)}, nil), scanAt(1))
	removed := byType(ts, EventContainerExited)
	if len(removed) != 1 {
		t.Fatalf("removed transitions = %d, want 1 (all: %v)", len(removed), transitionTypes(ts))
	}
	c := removed[0].Container
	if c == nil || c.ID != cid(2) || c.Name != "compose-web-1" || c.User != "carol" || c.Status != "running" || !c.DetectedAt.Equal(scanAt(0)) {
		t.Errorf("removed container = %+v, want the last known state of %s", c, cid(2))
	}
}

func TestReconcileDockerDown(t *testing.T) {
	cs := []Container{container(1, "running", TypeRawDocker), container(2, "exited", TypeDS01Managed)}
	up, _ := Reconcile(nil, allOK(cs, nil), scanAt(0))

	down, ts := Reconcile(up, dockerDown(nil), scanAt(1))
	if got := transitionTypes(ts); !reflect.DeepEqual(got, []string{EventSourceUnavailable}) {
		t.Fatalf("first failing scan transitions = %v, want exactly one %s", got, EventSourceUnavailable)
	}
	if ts[0].Source != SourceDocker || ts[0].Error == "" {
		t.Errorf("source_unavailable = %+v, want source docker with its error", ts[0])
	}
	if got := containerIDs(down.Containers); !reflect.DeepEqual(got, containerIDs(up.Containers)) {
		t.Errorf("containers while docker is down = %v, want the previous %v", got, containerIDs(up.Containers))
	}
	for _, c := range down.Containers {
		if !c.Stale {
			t.Errorf("container %s not marked stale while docker is down", c.Name)
		}
		if !c.LastSeen.Equal(scanAt(0)) {
			t.Errorf("container %s last_seen = %v, want the last time docker answered %v", c.Name, c.LastSeen, scanAt(0))
		}
	}
	st := down.Sources[SourceDocker]
	if st.OK || st.Error == "" || st.LastSuccess == nil || !st.LastSuccess.Equal(scanAt(0)) {
		t.Errorf("docker source status = %+v, want failed with last_success %v", st, scanAt(0))
	}

	still, ts := Reconcile(down, dockerDown(nil), scanAt(2))
	if len(ts) != 0 {
		t.Errorf("still-down scan transitions = %v, want none", transitionTypes(ts))
	}
	if len(still.Containers) != 2 || !still.Containers[0].Stale {
		t.Errorf("still-down scan containers = %+v, want both kept stale", still.Containers)
	}
	if ls := still.Sources[SourceDocker].LastSuccess; ls == nil || !ls.Equal(scanAt(0)) {
		t.Errorf("still-down last_success = %v, want %v", ls, scanAt(0))
	}

	// The Docker source carries unchanged containers forward from the
	// previous inventory, stale flag and all: Reconcile must clear it.
	back, ts := Reconcile(still, allOK(still.Containers, nil), scanAt(3))
	if got := transitionTypes(ts); !reflect.DeepEqual(got, []string{EventSourceRecovered}) {
		t.Fatalf("recovery transitions = %v, want exactly one %s", got, EventSourceRecovered)
	}
	if ts[0].Source != SourceDocker {
		t.Errorf("source_recovered names %q, want docker", ts[0].Source)
	}
	for _, c := range back.Containers {
		if c.Stale || !c.DetectedAt.Equal(scanAt(0)) || !c.LastSeen.Equal(scanAt(3)) {
			t.Errorf("container %s after recovery: stale %v, detected_at %v, last_seen %v", c.Name, c.Stale, c.DetectedAt, c.LastSeen)
		}
	}
	if st := back.Sources[SourceDocker]; !st.OK || st.Error != "" || st.LastSuccess == nil || !st.LastSuccess.Equal(scanAt(3)) {
		t.Errorf("docker source after recovery = %+v", st)
	}
}

func TestReconcileSourceDownFirstScan(t *testing.T) {
	next, ts := Reconcile(nil, dockerDown(nil), t0)
	if got := transitionTypes(ts); !reflect.DeepEqual(got, []string{EventSourceUnavailable}) {
		t.Fatalf("transitions = %v, want one %s", got, EventSourceUnavailable)
	}
	if st := next.Sources[SourceDocker]; st.OK || st.LastSuccess != nil {
		t.Errorf("docker status = %+v, want failed and never successful", st)
	}
}

// TestReconcileSourceWarning: a blind spot is reported while it lasts, and
// a source that answers with one is up: no transition either way.
func TestReconcileSourceWarning(t *testing.T) {
	prev, _ := Reconcile(nil, allOK(nil, nil), scanAt(0))
	obs := allOK(nil, nil)
	obs.Sources[SourceProcfs] = SourceStatus{OK: true, Warning: "could not read open files of 3 processes"}
	next, ts := Reconcile(prev, obs, scanAt(1))
	if st := next.Sources[SourceProcfs]; !st.OK || st.Warning != "could not read open files of 3 processes" || st.LastSuccess == nil {
		t.Errorf("procfs status = %+v, want ok with the warning", st)
	}
	if len(ts) != 0 {
		t.Errorf("transitions = %v, want none", transitionTypes(ts))
	}
	next, _ = Reconcile(next, allOK(nil, nil), scanAt(2))
	if st := next.Sources[SourceProcfs]; st.Warning != "" {
		t.Errorf("warning %q kept once the source saw everything", st.Warning)
	}
}

func TestReconcileSourceNotAttemptedKept(t *testing.T) {
	prev, _ := Reconcile(nil, allOK(nil, nil), scanAt(0))
	obs := allOK(nil, nil)
	delete(obs.Sources, SourceNVML)
	next, ts := Reconcile(prev, obs, scanAt(1))
	if len(ts) != 0 {
		t.Errorf("transitions = %v, want none", transitionTypes(ts))
	}
	if !reflect.DeepEqual(next.Sources[SourceNVML], prev.Sources[SourceNVML]) {
		t.Errorf("nvml status = %+v, want the previous %+v", next.Sources[SourceNVML], prev.Sources[SourceNVML])
	}
}

func TestReconcileAttributionKept(t *testing.T) {
	tests := []struct {
		name      string
		prevUser  string
		inspect   string
		wantUser  string
		wantFrom  string
		wantLabel string
	}{
		{"decided once, kept", "alice", "", "alice", "ds01.user", "alice"},
		{"previous inspect failed, re-attributed", "unknown", "inspect: timeout", "bob", "compose_working_dir", "bob"},
		{"no previous user, taken", "", "", "bob", "compose_working_dir", "bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := container(1, "running", TypeRawDocker)
			old.User, old.InspectError = tc.prevUser, tc.inspect
			old.DetectedLabels = map[string]string{"ds01.detected.user": tc.prevUser}
			prev, _ := Reconcile(nil, allOK([]Container{old}, nil), scanAt(0))

			seen := container(1, "running", TypeRawDocker)
			seen.User, seen.UserSource = "bob", "compose_working_dir"
			seen.DetectedLabels = map[string]string{"ds01.detected.user": "bob"}
			next, _ := Reconcile(prev, allOK([]Container{seen}, nil), scanAt(1))

			c := next.Containers[0]
			if c.User != tc.wantUser || c.UserSource != tc.wantFrom || c.DetectedLabels["ds01.detected.user"] != tc.wantLabel {
				t.Errorf("attribution = %q from %q, label %q; want %q from %q, label %q",
					c.User, c.UserSource, c.DetectedLabels["ds01.detected.user"], tc.wantUser, tc.wantFrom, tc.wantLabel)
			}
		})
	}
}

func TestReconcileHostProcesses(t *testing.T) {
	type scan struct {
		procs       []HostProcess
		unobserved  bool // no GPU process source answered
		wantHost    []ProcessKey
		wantPending []ProcessKey
		wantEvents  []string
	}
	k := func(pid int, ticks uint64) ProcessKey { return ProcessKey{PID: pid, StartTicks: ticks} }
	p := process
	tests := []struct {
		name  string
		scans []scan
	}{
		{"first sighting is pending only", []scan{
			{procs: []HostProcess{p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
		}},
		{"second sighting confirms", []scan{
			{procs: []HostProcess{p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
			{procs: []HostProcess{p(100, 1)}, wantHost: []ProcessKey{k(100, 1)}, wantEvents: []string{EventHostProcessDiscovered}},
			{procs: []HostProcess{p(100, 1)}, wantHost: []ProcessKey{k(100, 1)}},
		}},
		{"pending that vanished is dropped silently", []scan{
			{procs: []HostProcess{p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
			{},
			{},
		}},
		{"known process exits once", []scan{
			{procs: []HostProcess{p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
			{procs: []HostProcess{p(100, 1)}, wantHost: []ProcessKey{k(100, 1)}, wantEvents: []string{EventHostProcessDiscovered}},
			{wantEvents: []string{EventHostProcessExited}},
			{},
		}},
		{"reused pid never inherits", []scan{
			{procs: []HostProcess{p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
			{procs: []HostProcess{p(100, 1)}, wantHost: []ProcessKey{k(100, 1)}, wantEvents: []string{EventHostProcessDiscovered}},
			{procs: []HostProcess{p(100, 2)}, wantPending: []ProcessKey{k(100, 2)}, wantEvents: []string{EventHostProcessExited}},
			{procs: []HostProcess{p(100, 2)}, wantHost: []ProcessKey{k(100, 2)}, wantEvents: []string{EventHostProcessDiscovered}},
		}},
		{"reused pid while pending", []scan{
			{procs: []HostProcess{p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
			{procs: []HostProcess{p(100, 2)}, wantPending: []ProcessKey{k(100, 2)}},
		}},
		{"sources down keep processes stale", []scan{
			{procs: []HostProcess{p(100, 1), p(200, 5)}, wantPending: []ProcessKey{k(100, 1), k(200, 5)}},
			{procs: []HostProcess{p(100, 1)}, wantHost: []ProcessKey{k(100, 1)}, wantEvents: []string{EventHostProcessDiscovered}},
			{procs: []HostProcess{p(100, 1), p(300, 9)}, wantHost: []ProcessKey{k(100, 1)}, wantPending: []ProcessKey{k(300, 9)}},
			{unobserved: true, wantHost: []ProcessKey{k(100, 1)}, wantPending: []ProcessKey{k(300, 9)}},
			{unobserved: true, wantHost: []ProcessKey{k(100, 1)}, wantPending: []ProcessKey{k(300, 9)}},
			{procs: []HostProcess{p(100, 1), p(300, 9)}, wantHost: []ProcessKey{k(100, 1), k(300, 9)}, wantEvents: []string{EventHostProcessDiscovered}},
		}},
		{"same process listed twice in one scan", []scan{
			{procs: []HostProcess{p(100, 1), p(100, 1)}, wantPending: []ProcessKey{k(100, 1)}},
			{procs: []HostProcess{p(100, 1), p(100, 1)}, wantHost: []ProcessKey{k(100, 1)}, wantEvents: []string{EventHostProcessDiscovered}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var prev *Inventory
			for i, s := range tc.scans {
				obs := allOK(nil, s.procs)
				if s.unobserved {
					obs.ProcessesObserved = false
					obs.Sources[SourceNVML] = SourceStatus{Error: "nvml: driver not loaded"}
					obs.Sources[SourceProcfs] = SourceStatus{Error: "procfs: permission denied"}
				}
				next, ts := Reconcile(prev, obs, scanAt(i))
				var events []string
				for _, tr := range ts {
					if tr.Process != nil {
						events = append(events, tr.Type)
					}
				}
				if !reflect.DeepEqual(events, s.wantEvents) {
					t.Errorf("scan %d: process events = %v, want %v", i, events, s.wantEvents)
				}
				if got := processKeys(next.HostProcesses); !keysEqual(got, s.wantHost) {
					t.Errorf("scan %d: host processes = %v, want %v", i, got, s.wantHost)
				}
				if got := processKeys(next.PendingProcesses); !keysEqual(got, s.wantPending) {
					t.Errorf("scan %d: pending = %v, want %v", i, got, s.wantPending)
				}
				for _, hp := range next.HostProcesses {
					if hp.Stale != s.unobserved {
						t.Errorf("scan %d: pid %d stale = %v, want %v", i, hp.PID, hp.Stale, s.unobserved)
					}
				}
				prev = next
			}
		})
	}
}

func keysEqual(a, b []ProcessKey) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func TestReconcileHostProcessDetectedAt(t *testing.T) {
	first, _ := Reconcile(nil, allOK(nil, []HostProcess{process(100, 1)}), scanAt(0))
	if n := len(first.PendingProcesses); n != 1 || !first.PendingProcesses[0].DetectedAt.Equal(scanAt(0)) {
		t.Fatalf("pending after first sighting = %+v, want pid 100 detected at %v", first.PendingProcesses, scanAt(0))
	}
	if w := first.Workloads(); len(w) != 0 {
		t.Errorf("a pending process is a workload: %+v", w)
	}
	second, ts := Reconcile(first, allOK(nil, []HostProcess{process(100, 1)}), scanAt(1))
	if len(ts) != 1 || ts[0].Type != EventHostProcessDiscovered {
		t.Fatalf("transitions = %v, want one %s", transitionTypes(ts), EventHostProcessDiscovered)
	}
	got := ts[0].Process
	if got == nil || got.PID != 100 || got.StartTicks != 1 || !got.DetectedAt.Equal(scanAt(0)) || !got.LastSeen.Equal(scanAt(1)) {
		t.Errorf("discovered process = %+v, want pid 100 detected at the first sighting %v, last seen %v", got, scanAt(0), scanAt(1))
	}
	if len(second.PendingProcesses) != 0 {
		t.Errorf("pending after confirmation = %v, want none", processKeys(second.PendingProcesses))
	}
	if len(second.HostProcesses) != 1 || !second.HostProcesses[0].DetectedAt.Equal(scanAt(0)) {
		t.Errorf("host processes = %+v, want pid 100 detected at %v", second.HostProcesses, scanAt(0))
	}
}

func TestReconcileProcessExitedCarriesLastKnown(t *testing.T) {
	a, _ := Reconcile(nil, allOK(nil, []HostProcess{process(100, 1)}), scanAt(0))
	b, _ := Reconcile(a, allOK(nil, []HostProcess{process(100, 1)}), scanAt(1))
	_, ts := Reconcile(b, allOK(nil, []HostProcess{process(100, 7)}), scanAt(2))
	exited := byType(ts, EventHostProcessExited)
	if len(exited) != 1 {
		t.Fatalf("exited transitions = %d, want 1 (all %v)", len(exited), transitionTypes(ts))
	}
	p := exited[0].Process
	if p == nil || p.PID != 100 || p.StartTicks != 1 || p.User != "bob" || !p.DetectedAt.Equal(scanAt(0)) {
		t.Errorf("exited process = %+v, want the old pid 100 (start 1) as last known", p)
	}
}

func TestReconcileDoesNotMutateInputs(t *testing.T) {
	// prev is a real inventory with every section populated; the
	// observation changes every kind of thing against it.
	prev := sampleInventory()
	prev.Sources[SourceDocker] = SourceStatus{OK: true, LastSuccess: ptr(t0)}
	seenRunning := prev.Containers[0]
	seenRunning.Status = "exited"
	seenRunning.Type = TypeRawDocker
	seenRunning.User = "mallory"
	seenRunning.DetectedLabels = map[string]string{"ds01.detected.user": "mallory"}
	obs := allOK([]Container{container(9, "running", TypeRawDocker), seenRunning}, []HostProcess{prev.PendingProcesses[0], process(7000, 3)})

	tests := []struct {
		name string
		obs  Observation
	}{
		{"all sources up", obs},
		{"docker down", func() Observation {
			o := obs
			o.Sources = map[string]SourceStatus{SourceDocker: {Error: "down"}}
			return o
		}()},
		{"processes unobserved", func() Observation { o := obs; o.ProcessesObserved = false; return o }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prevBefore := mustMarshal(t, prev)
			obsBefore := mustMarshal(t, tc.obs)
			next, _ := Reconcile(prev, tc.obs, scanAt(5))
			if after := mustMarshal(t, prev); !bytes.Equal(after, prevBefore) {
				t.Errorf("Reconcile modified prev:\nbefore %s\nafter  %s", prevBefore, after)
			}
			if after := mustMarshal(t, tc.obs); !bytes.Equal(after, obsBefore) {
				t.Errorf("Reconcile modified the observation:\nbefore %s\nafter  %s", obsBefore, after)
			}
			if reflect.DeepEqual(mustMarshal(t, next), prevBefore) {
				t.Error("next equals prev: the comparison above proves nothing")
			}
		})
	}
}

func TestReconcileEmptySectionsNonNil(t *testing.T) {
	tests := []struct {
		name string
		prev *Inventory
		obs  Observation
	}{
		{"first scan, nothing seen", nil, allOK(nil, nil)},
		{"first scan, docker down", nil, dockerDown(nil)},
		{"first scan, nothing answered", nil, Observation{}},
		{"previous sections null", &Inventory{SchemaVersion: SchemaVersion}, Observation{}},
		{"everything went away", func() *Inventory {
			inv, _ := Reconcile(nil, allOK([]Container{container(1, "running", TypeRawDocker)}, []HostProcess{process(5, 5)}), t0)
			return inv
		}(), allOK(nil, nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, _ := Reconcile(tc.prev, tc.obs, scanAt(1))
			if next.Containers == nil || next.HostProcesses == nil || next.PendingProcesses == nil || next.Sources == nil {
				t.Fatalf("nil section: containers %v, host %v, pending %v, sources %v",
					next.Containers == nil, next.HostProcesses == nil, next.PendingProcesses == nil, next.Sources == nil)
			}
			if len(next.Containers)+len(next.HostProcesses)+len(next.PendingProcesses) != 0 {
				t.Errorf("sections not empty: %s", mustMarshal(t, next))
			}
			js := mustMarshal(t, next)
			for _, want := range []string{`"containers":[]`, `"host_processes":[]`, `"pending_processes":[]`} {
				if !bytes.Contains(js, []byte(want)) {
					t.Errorf("encoded inventory lacks %s: %s", want, js)
				}
			}
		})
	}
}

func TestReconcileTransitionPointersAfterSort(t *testing.T) {
	// IDs deliberately out of order, with every kind of container
	// transition, so that sorting the output would expose a transition
	// pointing into the slice being sorted.
	named := func(n int, status, typ string) Container {
		c := container(n, status, typ)
		c.Name = fmt.Sprintf("name-of-%d", n)
		c.Image = fmt.Sprintf("image-of-%d", n)
		return c
	}
	prev, _ := Reconcile(nil, allOK([]Container{named(50, "running", TypeRawDocker), named(40, "running", TypeUnknown), named(10, "running", TypeRawDocker), named(30, "exited", TypeRawDocker)},
		[]HostProcess{process(900, 1), process(300, 1), process(600, 1)}), scanAt(0))
	prev, _ = Reconcile(prev, allOK(prev.Containers, []HostProcess{process(900, 1), process(300, 1), process(600, 1)}), scanAt(1))

	obs := allOK([]Container{
		named(90, "created", TypeDS01Managed),   // discovered
		named(50, "exited", TypeRawDocker),      // status changed
		named(20, "running", TypeDevcontainer),  // discovered
		named(40, "running", TypeDockerCompose), // classification changed
		named(10, "running", TypeRawDocker),     // unchanged
		named(70, "paused", TypeRawDocker),      // discovered
		// 30 removed
	}, []HostProcess{process(600, 1), process(800, 1), process(100, 1)}) // 900 and 300 exited
	next, ts := Reconcile(prev, obs, scanAt(2))

	if !sort.SliceIsSorted(next.Containers, func(i, j int) bool { return next.Containers[i].ID < next.Containers[j].ID }) {
		t.Fatalf("containers not sorted: %v", containerIDs(next.Containers))
	}
	type want struct {
		typ string
		n   int
	}
	var got []want
	for _, tr := range ts {
		switch {
		case tr.Container != nil:
			var n int
			if _, err := fmt.Sscanf(tr.Container.Name, "name-of-%d", &n); err != nil {
				t.Fatalf("transition %s holds container %q: %v", tr.Type, tr.Container.Name, err)
			}
			if tr.Container.ID != cid(n) || tr.Container.Image != fmt.Sprintf("image-of-%d", n) {
				t.Errorf("%s transition mixes containers: id %s, name %s, image %s", tr.Type, tr.Container.ID[:12], tr.Container.Name, tr.Container.Image)
			}
			got = append(got, want{tr.Type, n})
		case tr.Process != nil:
			if tr.Process.Command != fmt.Sprintf("python job-%d.py", tr.Process.PID) {
				t.Errorf("%s transition mixes processes: pid %d, command %q", tr.Type, tr.Process.PID, tr.Process.Command)
			}
			got = append(got, want{tr.Type, tr.Process.PID})
		}
	}
	wantSet := []want{
		{EventContainerDiscovered, 90}, {EventContainerStatusChanged, 50}, {EventContainerDiscovered, 20},
		{EventContainerClassification, 40}, {EventContainerDiscovered, 70}, {EventContainerExited, 30},
		{EventHostProcessExited, 900}, {EventHostProcessExited, 300},
	}
	less := func(s []want) func(i, j int) bool {
		return func(i, j int) bool {
			if s[i].typ != s[j].typ {
				return s[i].typ < s[j].typ
			}
			return s[i].n < s[j].n
		}
	}
	sort.Slice(got, less(got))
	sort.Slice(wantSet, less(wantSet))
	if !reflect.DeepEqual(got, wantSet) {
		t.Errorf("transitions = %v, want %v", got, wantSet)
	}
	// The status change must carry the new state, not the old.
	for _, tr := range byType(ts, EventContainerStatusChanged) {
		if tr.Container.Status != "exited" || tr.From != "running" || tr.To != "exited" {
			t.Errorf("status change = %s→%s with container status %s", tr.From, tr.To, tr.Container.Status)
		}
	}
	// Changing next afterwards must not reach into the events' data.
	for i := range next.Containers {
		next.Containers[i].Name = "overwritten"
	}
	for _, tr := range ts {
		if tr.Container != nil && tr.Container.Name == "overwritten" {
			t.Errorf("%s transition aliases the inventory slice", tr.Type)
		}
	}
}

func TestReconcileOutputValidates(t *testing.T) {
	// Whatever the sources hand over, the next inventory must be one that
	// Load accepts: a rejected file is moved aside and every workload is
	// rediscovered, a burst of false events.
	tests := []struct {
		name string
		obs  Observation
	}{
		{"ordinary", allOK([]Container{container(1, "running", TypeRawDocker)}, []HostProcess{process(10, 1)})},
		{"engine lists a container twice", allOK([]Container{container(1, "running", TypeRawDocker), container(1, "running", TypeRawDocker)}, nil)},
		{"process listed twice", allOK(nil, []HostProcess{process(10, 1), process(10, 1)})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var prev *Inventory
			for i := range 3 {
				next, ts := Reconcile(prev, tc.obs, scanAt(i))
				if err := next.Validate(); err != nil {
					t.Fatalf("scan %d: Reconcile produced an inventory Load rejects: %v", i, err)
				}
				if i == 0 && len(byType(ts, EventContainerDiscovered)) > 1 {
					t.Errorf("scan %d: %d discovered events for one container", i, len(byType(ts, EventContainerDiscovered)))
				}
				prev = next
			}
		})
	}
}

// TestReconcileUndeclaredGPUUse: a container that starts using a GPU it never
// declared is flagged undeclared and gets one classification change; its GPU
// use comes and goes with its processes; without a GPU source, the last
// known use stands.
func TestReconcileUndeclaredGPUUse(t *testing.T) {
	plain := container(7, "running", TypeRawDocker)
	plain.GPU = GPUAccess{}
	using := plain
	using.GPUProcesses = []GPUProcess{{PID: 4242, GPU: "0", MemoryBytes: ptr(uint64(4 << 30))}}

	inv, _ := Reconcile(nil, allOK([]Container{plain}, nil), scanAt(0))
	if got := inv.Containers[0].GPUAccess; got != AccessNone {
		t.Fatalf("gpu_access = %q, want %q", got, AccessNone)
	}
	inv, ts := Reconcile(inv, allOK([]Container{using}, nil), scanAt(1))
	changes := byType(ts, EventContainerClassification)
	if len(changes) != 1 || changes[0].Field != "gpu_access" || changes[0].From != AccessNone || changes[0].To != AccessUndeclared {
		t.Fatalf("transitions %+v, want one gpu_access change none → undeclared", ts)
	}
	if got := inv.Containers[0].GPUAccess; got != AccessUndeclared {
		t.Errorf("gpu_access = %q, want %q", got, AccessUndeclared)
	}
	inv, ts = Reconcile(inv, allOK([]Container{using}, nil), scanAt(2))
	if len(ts) != 0 {
		t.Errorf("still undeclared: transitions %v, want none", transitionTypes(ts))
	}
	gpuDown := allOK([]Container{plain}, nil)
	gpuDown.ProcessesObserved = false
	gpuDown.Sources[SourceNVML] = SourceStatus{Error: "driver not loaded"}
	gpuDown.Sources[SourceProcfs] = SourceStatus{Error: "unreadable"}
	kept, _ := Reconcile(inv, gpuDown, scanAt(3))
	if c := kept.Containers[0]; len(c.GPUProcesses) != 1 || c.GPUAccess != AccessUndeclared {
		t.Errorf("GPU sources down: processes %v access %q, want the last known use kept", c.GPUProcesses, c.GPUAccess)
	}
	inv, ts = Reconcile(inv, allOK([]Container{plain}, nil), scanAt(4))
	changes = byType(ts, EventContainerClassification)
	if len(changes) != 1 || changes[0].From != AccessUndeclared || changes[0].To != AccessNone || inv.Containers[0].GPUAccess != AccessNone {
		t.Errorf("use ended: access %q transitions %+v, want one gpu_access change undeclared → none", inv.Containers[0].GPUAccess, changes)
	}
	declared := container(8, "running", TypeRawDocker)
	declared.GPUProcesses = using.GPUProcesses
	inv, _ = Reconcile(nil, allOK([]Container{declared}, nil), scanAt(0))
	if got := inv.Containers[0].GPUAccess; got != AccessInUse {
		t.Errorf("declared and used: gpu_access = %q, want %q", got, AccessInUse)
	}
}

// TestReconcileUseOutsideDeclared: a container that declared GPU 0 and then
// also runs on GPU 1 is undeclared on GPU 1, with one event naming it; a
// further GPU outside is another event, and going back inside a third.
func TestReconcileUseOutsideDeclared(t *testing.T) {
	c := container(9, "running", TypeRawDocker)
	c.GPU = GPUAccess{Declared: true, Channels: []string{ChannelRuntime}, Devices: []string{"0"}}
	on := func(gpus ...string) Container {
		d := c
		d.GPUProcesses = nil
		for i, g := range gpus {
			d.GPUProcesses = append(d.GPUProcesses, GPUProcess{PID: 100 + i, GPU: g})
		}
		return d
	}
	steps := []struct {
		gpus      []string
		want      string
		outside   []string
		wantEvent bool
	}{
		{[]string{"0"}, AccessInUse, nil, false},
		{[]string{"0", "1"}, AccessUndeclared, []string{"1"}, true},
		{[]string{"0", "1"}, AccessUndeclared, []string{"1"}, false},
		{[]string{"1", "2"}, AccessUndeclared, []string{"1", "2"}, true},
		{[]string{"0"}, AccessInUse, nil, true},
	}
	var inv *Inventory
	for i, st := range steps {
		var ts []Transition
		inv, ts = Reconcile(inv, allOK([]Container{on(st.gpus...)}, nil), scanAt(i))
		got := inv.Containers[0]
		if got.GPUAccess != st.want || !slices.Equal(got.GPUsUndeclared, st.outside) {
			t.Errorf("scan %d on %v: access %q outside %v, want %q %v", i, st.gpus, got.GPUAccess, got.GPUsUndeclared, st.want, st.outside)
		}
		changes := byType(ts, EventContainerClassification)
		if (len(changes) == 1) != st.wantEvent || len(changes) > 1 {
			t.Errorf("scan %d on %v: %d classification changes, want event %v", i, st.gpus, len(changes), st.wantEvent)
		}
		if st.wantEvent && len(changes) == 1 {
			e := changes[0].NewEvent("s", "", 1, scanAt(i))
			if got := e.Details["gpus_undeclared"]; !reflect.DeepEqual(got, nonNil(st.outside)) {
				t.Errorf("scan %d: event gpus_undeclared = %v, want %v", i, got, st.outside)
			}
		}
	}
}

// TestReconcileUnreadGPU: a GPU whose processes could not be listed (lost,
// or a failing call) proves no process left it: its host processes stay,
// stale, with no exited event, and containers keep their use there.
func TestReconcileUnreadGPU(t *testing.T) {
	onOne := process(100, 1) // GPU "1"
	other := process(200, 2)
	other.GPUs = []string{"0"}
	ctr := container(9, "running", TypeRawDocker)
	ctr.GPUProcesses = []GPUProcess{{PID: 300, GPU: "1"}, {PID: 301, GPU: "0"}}
	inv, _ := Reconcile(nil, allOK([]Container{ctr}, []HostProcess{onOne, other}), scanAt(0))
	inv, _ = Reconcile(inv, allOK([]Container{ctr}, []HostProcess{onOne, other}), scanAt(1))

	bare := ctr
	bare.GPUProcesses = nil
	obs := allOK([]Container{bare}, nil)
	obs.UnreadGPUs = []string{"1"}
	next, ts := Reconcile(inv, obs, scanAt(2))
	exited := byType(ts, EventHostProcessExited)
	if len(exited) != 1 || exited[0].Process.PID != 200 {
		t.Fatalf("exited %+v, want only pid 200 (its GPU was read)", exited)
	}
	if len(next.HostProcesses) != 1 || next.HostProcesses[0].PID != 100 || !next.HostProcesses[0].Stale {
		t.Errorf("host processes %+v, want pid 100 kept stale", next.HostProcesses)
	}
	if got := next.Containers[0].GPUProcesses; len(got) != 1 || got[0].PID != 300 {
		t.Errorf("container GPU processes %+v, want only the one on the unread GPU kept", got)
	}
}

// TestReconcileEngines: each engine's containers follow its own answer. A
// rootless engine that fails keeps its containers, stale, while the system
// engine's are reconciled; one that is no longer there loses them; a
// container of a down engine is not taken over by another engine listing
// its ID.
func TestReconcileEngines(t *testing.T) {
	const sock = "/run/user/1001/docker.sock"
	rootless := func(n int, status string) Container {
		c := container(n, status, TypeRawDocker)
		c.Launcher = &Launcher{Name: LauncherDocker, Engine: sock}
		return c
	}
	userSource := EngineSource(sock)
	ok := func(cs ...Container) Observation {
		o := allOK(cs, nil)
		o.Sources[userSource] = SourceStatus{OK: true}
		return o
	}
	first, _ := Reconcile(nil, ok(container(1, "running", TypeRawDocker), rootless(2, "running")), scanAt(0))
	if got := containerIDs(first.Containers); !reflect.DeepEqual(got, []string{cid(1), cid(2)}) {
		t.Fatalf("first scan containers %v", got)
	}

	down := allOK([]Container{container(1, "exited", TypeRawDocker), rootless(2, "exited")}, nil)
	down.Sources[userSource] = SourceStatus{Error: "connection refused"}
	next, ts := Reconcile(first, down, scanAt(1))
	if got := transitionTypes(ts); !slices.Contains(got, EventSourceUnavailable) || !slices.Contains(got, EventContainerStatusChanged) || len(got) != 2 {
		t.Errorf("transitions %v, want the user engine unavailable and the system container stopped", got)
	}
	for _, c := range next.Containers {
		switch c.ID {
		case cid(1):
			if c.Stale || c.Status != "exited" {
				t.Errorf("system container %+v, want exited and fresh", c)
			}
		case cid(2):
			if !c.Stale || c.Status != "running" || c.Launcher.Engine != sock {
				t.Errorf("down engine's container %+v, want running, stale, of %s", c, sock)
			}
		}
	}
	if len(next.Containers) != 2 {
		t.Errorf("containers %v, want 2: the system engine listing the down engine's ID takes nothing over", containerIDs(next.Containers))
	}

	gone, ts := Reconcile(next, allOK([]Container{container(1, "exited", TypeRawDocker)}, nil), scanAt(2))
	if got := containerIDs(gone.Containers); !reflect.DeepEqual(got, []string{cid(1)}) {
		t.Errorf("containers once the user engine is no longer there: %v, want only the system one", got)
	}
	if ex := byType(ts, EventContainerExited); len(ex) != 1 || ex[0].Container.ID != cid(2) {
		t.Errorf("exited transitions %+v, want the rootless container's", ex)
	}
}
