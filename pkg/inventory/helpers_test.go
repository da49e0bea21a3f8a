package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// t0 is the time of a first scan in these tests; later scans add multiples
// of scanInterval.
var t0 = time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)

const scanInterval = 30 * time.Second

// scanAt returns the time of the n-th scan after t0.
func scanAt(n int) time.Time { return t0.Add(time.Duration(n) * scanInterval) }

// cid returns a well-formed 64-hex container ID built from n.
func cid(n int) string { return fmt.Sprintf("%064x", n) }

func ptr[T any](v T) *T { return &v }

// container returns a container as the Docker source would report it: no
// scanner-set fields (DetectedAt, LastSeen, Stale) filled in.
func container(n int, status, typ string) Container {
	return Container{
		ID:             cid(n),
		Name:           fmt.Sprintf("ctr-%d", n),
		Image:          "pytorch/pytorch:2.5",
		Command:        "python train.py",
		Type:           typ,
		Status:         status,
		CreatedAt:      t0.Add(-24 * time.Hour),
		User:           "alice",
		UserSource:     "ds01.user",
		GPU:            GPUAccess{Declared: true, Channels: []string{ChannelDeviceRequest}, Devices: []string{"0"}},
		DetectedLabels: map[string]string{"ds01.detected": "true", "ds01.detected.user": "alice"},
	}
}

// process returns a host GPU process as the procfs/NVML sources report it.
func process(pid int, ticks uint64) HostProcess {
	return HostProcess{
		PID: pid, StartTicks: ticks, Type: TypeHostProcess,
		Command: fmt.Sprintf("python job-%d.py", pid), User: "bob", UserSource: "uid",
		StartedAt: t0.Add(-time.Hour), GPUs: []string{"1"}, GPUMemoryBytes: ptr(uint64(1 << 30)),
	}
}

// sampleInventory has every field set, so that a round trip that drops one
// shows up.
func sampleInventory() *Inventory {
	last := t0.Add(-time.Minute)
	exited := container(2, "exited", TypeDockerCompose)
	exited.ExitCode = ptr(137)
	exited.InspectError = ""
	running := container(1, "running", TypeDS01Managed)
	running.StartedAt = ptr(t0.Add(-time.Hour))
	running.DetectedAt = t0.Add(-2 * time.Hour)
	running.LastSeen = t0
	running.PID = 4242
	running.GPUProcesses = []GPUProcess{{PID: 4300, GPU: "0", MemoryBytes: ptr(uint64(2 << 30))}, {PID: 4301, GPU: "0:1"}}
	running.CPUPercent = ptr(153.5)
	running.MemoryBytes = ptr(uint64(8 << 30))
	running.CPUUsageNS = 123456789
	running.CPUSampledAt = ptr(t0)
	running.Labels = map[string]string{"ds01.managed": "true", "ds01.user": "alice"}
	running.GPUAccess, running.GPUsUndeclared = AccessUndeclared, []string{"0:1"}
	unknown := container(3, "running", TypeUnknown)
	unknown.InspectError = "inspect: context deadline exceeded"
	unknown.Stale = true
	host := process(5000, 777)
	host.DetectedAt, host.LastSeen = t0.Add(-time.Minute), t0
	host.GPUMemory = map[string]uint64{"1": 1 << 30}
	pending := process(6000, 888)
	pending.Type = TypeSystem
	pending.DetectedAt, pending.LastSeen = t0, t0
	return &Inventory{
		SchemaVersion: SchemaVersion,
		Scan:          ScanInfo{ID: "20260130T143000Z-0a1b2c3d", Time: t0, DurationMS: 812, Host: "gpu01", Version: "v0.1.0"},
		Sources: map[string]SourceStatus{
			SourceDocker: {OK: true, LastSuccess: ptr(t0)},
			SourceNVML:   {OK: false, Error: "nvml: driver/library version mismatch", LastSuccess: &last},
			SourceProcfs: {OK: false, Error: "never answered"},
		},
		Containers:       []Container{running, exited, unknown},
		HostProcesses:    []HostProcess{host},
		PendingProcesses: []HostProcess{pending},
		Outbox: &Outbox{LogInode: 1234, LogOffset: 56789, LogMark: "0123456789abcdef", Events: []PendingEvent{
			mustPending(Transition{Type: EventContainerDiscovered, Container: &running}.NewEvent("20260130T143000Z-0a1b2c3d", "", 1, t0)),
		}},
	}
}

// mustPending encodes e for an outbox, or panics: e is the test's own.
func mustPending(e Event) PendingEvent {
	p, err := NewPendingEvent(e)
	if err != nil {
		panic(err)
	}
	return p
}

// mustMarshal encodes v or fails the test.
func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// writeFile writes data to name in dir and returns the full path.
func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantCorrupt checks that err is a *CorruptError for path whose message names
// the path and contains want.
func wantCorrupt(t *testing.T, err error, path, want string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want *CorruptError", err, err)
	}
	if ce.Path != path {
		t.Errorf("CorruptError.Path = %q, want %q", ce.Path, path)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) {
		t.Errorf("error %q does not name the file %q", msg, path)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}
