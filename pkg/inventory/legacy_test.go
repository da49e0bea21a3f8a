package inventory

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// legacyDoc is an inventory as detect-workloads.py writes it (json.dump,
// indent 2): containers by 12-character ID, processes by PID.
func legacyDoc(containers, hosts, pending string) string {
	return `{
  "last_scan": "2026-01-30T14:29:30.123456Z",
  "containers": {` + containers + `},
  "host_processes": {` + hosts + `},
  "_pending_processes": {` + pending + `}
}`
}

func legacyContainer(short, name, origin, user, status string) string {
	return `"` + short + `": {"id": "` + short + `", "name": "` + name + `", "origin": "` + origin + `", "user": "` + user +
		`", "has_gpu": true, "gpu_devices": ["0"], "status": "` + status + `", "image": "pytorch/pytorch:2.5", "detected_at": "2026-01-29T10:00:00.5Z"}`
}

func legacyProcess(pid, cmdline string, detected bool) string {
	at := ""
	if detected {
		at = `, "detected_at": "2026-01-30T12:00:00.000001Z"`
	}
	return `"` + pid + `": {"pid": ` + pid + `, "user": "carol", "cmdline": "` + cmdline + `", "gpu_memory_mb": 512, "gpu_uuid": "GPU-1"` + at + `}`
}

// TestLoadLegacy: Load tells the earlier scanner's file from a corrupt one
// and returns what it holds; a file that only looks like it is corrupt.
func TestLoadLegacy(t *testing.T) {
	a, b := rid(1), rid(2)
	doc := legacyDoc(legacyContainer(a[:12], "x", "compose", "alice", "running")+","+legacyContainer(b[:12], "y", "raw-docker", "unknown", "exited"),
		legacyProcess("4242", "python a.py", true), legacyProcess("5151", "python b.py", false))
	path := writeFile(t, t.TempDir(), inventoryName, []byte(doc), 0o644)
	_, err := Load(path)
	var lf *LegacyFormatError
	if !errors.As(err, &lf) {
		t.Fatalf("Load: %v, want a LegacyFormatError", err)
	}
	l := lf.Legacy
	if len(l.Containers) != 2 || l.Containers[a[:12]].Origin != "compose" || !l.Containers[a[:12]].HasGPU ||
		l.Containers[a[:12]].DetectedAt != time.Date(2026, 1, 29, 10, 0, 0, 5e8, time.UTC) {
		t.Errorf("containers: %+v", l.Containers)
	}
	if p := l.HostProcesses[4242]; p.Cmdline != "python a.py" || p.GPUMemoryMB != 512 || p.DetectedAt.IsZero() {
		t.Errorf("host process: %+v", p)
	}
	if p := l.Pending[5151]; p.Cmdline != "python b.py" || !p.DetectedAt.IsZero() {
		t.Errorf("pending process: %+v", p)
	}
	if !strings.Contains(err.Error(), "detect-workloads.py") {
		t.Errorf("error %q does not name the earlier scanner", err)
	}

	for name, bad := range map[string]string{
		"a short key that is not hex": legacyDoc(legacyContainer("zzzzzzzzzzzz", "x", "compose", "a", "running"), "", ""),
		"a full ID as key":            legacyDoc(legacyContainer(a, "x", "compose", "a", "running"), "", ""),
		"a PID that is not one":       legacyDoc("", legacyProcess("-3", "x", true), ""),
		"a time Python never wrote":   strings.Replace(legacyDoc("", "", ""), "2026-01-30T14:29:30.123456Z", "yesterday", 1),
		"containers a list":           `{"last_scan": null, "containers": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), inventoryName, []byte(bad), 0o644)
			_, err := Load(path)
			var corrupt *CorruptError
			if !errors.As(err, &corrupt) {
				t.Errorf("Load: %v, want a CorruptError", err)
			}
		})
	}
}

// TestMigrate: the containers the earlier scanner knew are no discovery and
// keep their first sighting, their user where ds01 has none, and change
// status where it had logged another; those gone exit under their short
// ID; processes it had announced are workloads at once, those it had seen
// once announced now, those gone (or whose PID another program took) exit.
func TestMigrate(t *testing.T) {
	kept, changed, fresh, gone := rcontainer(1, "running", TypeDockerCompose), rcontainer(2, "exited", TypeRawDocker),
		rcontainer(3, "running", TypeDevcontainer), rid(4)
	changed.User = "unknown"
	announced, seen, reused, newer, restarted := process(100, 1), process(200, 2), process(300, 3), process(400, 4), process(500, 5)
	reused.Command = "python other.py"
	// The same command, but started after the old scanner saw its PID: a
	// PID reused by another run.
	restarted.StartedAt = t0
	old := &Legacy{
		Containers: map[string]LegacyContainer{
			ShortID(kept.ID):    {ID: ShortID(kept.ID), Name: "x", Origin: "compose", User: "alice", Status: "running", DetectedAt: t0.Add(-48 * time.Hour)},
			ShortID(changed.ID): {ID: ShortID(changed.ID), Name: "y", Origin: "raw-docker", User: "bob", Status: "running", DetectedAt: t0.Add(-time.Hour)},
			ShortID(gone):       {ID: ShortID(gone), Name: "z", Origin: "compose", User: "carol", Status: "exited", HasGPU: true},
		},
		HostProcesses: map[int]LegacyProcess{
			100: {PID: 100, Cmdline: announced.Command, DetectedAt: t0.Add(-time.Hour)},
			300: {PID: 300, Cmdline: "python train.py"},
			999: {PID: 999, Cmdline: "python gone.py", User: "dave", GPUUUID: "GPU-9"},
			500: {PID: 500, Cmdline: restarted.Command, DetectedAt: t0.Add(-time.Hour)},
		},
		Pending: map[int]LegacyProcess{200: {PID: 200, Cmdline: seen.Command}},
	}
	next, ts := Reconcile(nil, allOK([]Container{kept, changed, fresh}, []HostProcess{announced, seen, reused, newer, restarted}), t0)
	ts, m := Migrate(old, next, ts)

	if m != (Migrated{Containers: 2, Gone: 1, HostProcesses: 1, Promoted: 1, Exited: 3}) {
		t.Errorf("counts %+v", m)
	}
	var got []string
	for _, tr := range ts {
		switch {
		case tr.Container != nil:
			got = append(got, tr.Type+" "+ShortID(tr.Container.ID))
		case tr.Process != nil:
			got = append(got, tr.Type+" "+tr.Process.Command)
		}
	}
	want := []string{
		EventContainerStatusChanged + " " + ShortID(changed.ID),
		EventContainerDiscovered + " " + ShortID(fresh.ID),
		EventContainerExited + " " + ShortID(gone),
		EventHostProcessDiscovered + " " + seen.Command,
		EventHostProcessExited + " python train.py",
		EventHostProcessExited + " " + restarted.Command,
		EventHostProcessExited + " python gone.py",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	byID := map[string]Container{}
	for _, c := range next.Containers {
		byID[c.ID] = c
	}
	if c := byID[kept.ID]; !c.DetectedAt.Equal(t0.Add(-48*time.Hour)) || c.User != "alice" {
		t.Errorf("kept container: detected %v user %s", c.DetectedAt, c.User)
	}
	if c := byID[changed.ID]; c.User != "bob" || c.UserSource != LegacySource {
		t.Errorf("unattributed container: user %s (%s), want bob from %s", c.User, c.UserSource, LegacySource)
	}
	var hosts, pending []int
	for _, p := range next.HostProcesses {
		hosts = append(hosts, p.PID)
	}
	for _, p := range next.PendingProcesses {
		pending = append(pending, p.PID)
	}
	if len(hosts) != 2 || hosts[0] != 100 || hosts[1] != 200 || len(pending) != 3 || pending[0] != 300 || pending[1] != 400 || pending[2] != 500 {
		t.Errorf("host processes %v, pending %v; want 100 200 and 300 400 500", hosts, pending)
	}
	if err := next.Validate(); err != nil {
		t.Errorf("migrated inventory invalid: %v", err)
	}

	// The log that results, after the earlier scanner's own, replays to
	// the migrated inventory.
	var log strings.Builder
	for _, c := range []Container{kept, changed} {
		o := old.Containers[ShortID(c.ID)]
		log.WriteString(`{"event_type":"detection.container_discovered","source":"detect-workloads","details":{"container_id":"` + o.ID + `"}}` + "\n")
	}
	log.WriteString(`{"event_type":"detection.container_discovered","source":"detect-workloads","details":{"container_id":"` + ShortID(gone) + `"}}` + "\n")
	for _, pid := range []string{"100", "300", "500", "999"} {
		log.WriteString(`{"event_type":"detection.host_gpu_process_discovered","source":"detect-workloads","details":{"pid":` + pid + `}}` + "\n")
	}
	log.WriteString(mustLine(MigratedEvent("S1", "kept", m, t0)))
	for i, tr := range ts {
		log.WriteString(mustLine(tr.NewEvent("S1", "", i+2, t0)))
	}
	r := replay(t, log.String())
	if d := r.Compare(next); !d.Agree() || len(r.Inconsistent) > 0 {
		t.Errorf("replay after the migration: %+v, inconsistent %v", d, r.Inconsistent)
	}
	// The process it had announced exits later, named by ds01 with its
	// start time: the replay finds it by its PID.
	log.WriteString(mustLine(Transition{Type: EventHostProcessExited, Process: &announced}.NewEvent("S2", "S1", 1, t0)))
	r = replay(t, log.String())
	if len(r.Inconsistent) > 0 || r.HostProcesses[ProcessKey{PID: 100}] || r.HostProcesses[announced.Key()] {
		t.Errorf("the exit of a process the earlier scanner announced: inconsistent %v, state %v", r.Inconsistent, r.HostProcesses)
	}
}

func mustLine(e Event) string {
	line, err := EncodeEvent(e)
	if err != nil {
		panic(err)
	}
	return string(line)
}

// TestKeepAside: the kept name survives the next Save; the file stays.
func TestKeepAside(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, inventoryName, []byte(legacyDoc("", "", "")), 0o644)
	kept, err := KeepAside(path, LegacySource, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, inventoryName+".detect-workloads-20260130T143000.000000Z"); kept != want {
		t.Errorf("kept as %s, want %s", kept, want)
	}
	if err := Save(path, sampleInventory()); err != nil {
		t.Fatal(err)
	}
	var lf *LegacyFormatError
	if _, err := Load(kept); !errors.As(err, &lf) {
		t.Errorf("the kept file does not load as the earlier scanner's: %v", err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("the saved inventory: %v", err)
	}
}

// TestSameCommand: the earlier scanner's command line (Python: empty
// arguments dropped, invalid UTF-8 replaced) is ds01's (every byte, cut at
// 4096) for the same process, and not another's.
func TestSameCommand(t *testing.T) {
	long := "python train.py " + strings.Repeat("--flag=value ", 400)
	for _, tc := range []struct {
		recorded, now string
		same          bool
	}{
		{"python a.py", "python a.py", true},
		{"python a.py --x", "python  a.py --x ", true},
		{"python caf\ufffd.py", "python caf\xe9.py", true},
		{strings.TrimSpace(long), long[:maxRecordedCommand], true},
		{"python a.py", "python b.py", false},
		{"python a.py", "python a.py --resume", false},
	} {
		if got := sameCommand(tc.recorded, tc.now); got != tc.same {
			t.Errorf("sameCommand(%.40q, %.40q) = %v, want %v", tc.recorded, tc.now, got, tc.same)
		}
	}
}

// TestKeepAsideOnce: kept twice (a scan that failed to save after keeping
// it), the file has one second name, not two.
func TestKeepAsideOnce(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, inventoryName, []byte(legacyDoc("", "", "")), 0o644)
	first, err := KeepAside(path, LegacySource, t0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := KeepAside(path, LegacySource, t0.Add(30*time.Second))
	if err != nil || second != first {
		t.Errorf("kept again as %q (%v), want the first name %q", second, err, first)
	}
	if names, _ := filepath.Glob(path + ".*"); len(names) != 1 {
		t.Errorf("second names: %v", names)
	}
}
