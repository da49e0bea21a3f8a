package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The lab's earlier scanner, detect-workloads.py, kept its inventory at the
// same path in another shape: containers and host processes in objects keyed
// by 12-character container ID and by PID, an origin instead of a type,
// has_gpu, and no schema_version. ds01-scan takes it over on its first scan
// (Migrate) rather than treating it as corrupt, so that the lab's history
// goes on: no container announced twice, first sightings kept.

// LegacySource is what ds01 calls that scanner: the source of its events,
// and the user source of a user taken from its inventory.
const LegacySource = "detect-workloads"

// Legacy is an inventory written by detect-workloads.py.
type Legacy struct {
	LastScan   time.Time
	Containers map[string]LegacyContainer
	// HostProcesses are the processes it had announced; Pending those it
	// had seen once.
	HostProcesses map[int]LegacyProcess
	Pending       map[int]LegacyProcess
}

// LegacyContainer is one container of a Legacy inventory.
type LegacyContainer struct {
	// ID is the 12-character ID.
	ID, Name, Origin, User, Status, Image string
	HasGPU                                bool
	GPUDevices                            []string
	DetectedAt                            time.Time
}

// LegacyProcess is one host GPU process of a Legacy inventory.
type LegacyProcess struct {
	PID                    int
	User, Cmdline, GPUUUID string
	GPUMemoryMB            int
	DetectedAt             time.Time
}

// LegacyFormatError is Load's error for a file in the earlier scanner's
// format: not corrupt, but not yet ds01's. ds01-scan migrates it.
type LegacyFormatError struct {
	Path   string
	Legacy *Legacy
}

// Error says what the file is and what takes it over.
func (e *LegacyFormatError) Error() string {
	return fmt.Sprintf("inventory %s was written by %s.py (%d containers); ds01-scan takes it over on its next scan",
		e.Path, LegacySource, len(e.Legacy.Containers))
}

// legacyFile is the earlier scanner's JSON, as it writes it.
type legacyFile struct {
	SchemaVersion *json.RawMessage `json:"schema_version"`
	LastScan      string           `json:"last_scan"`
	Containers    map[string]struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		Origin     string   `json:"origin"`
		User       string   `json:"user"`
		HasGPU     bool     `json:"has_gpu"`
		GPUDevices []string `json:"gpu_devices"`
		Status     string   `json:"status"`
		Image      string   `json:"image"`
		DetectedAt string   `json:"detected_at"`
	} `json:"containers"`
	HostProcesses map[string]legacyProcessFile `json:"host_processes"`
	Pending       map[string]legacyProcessFile `json:"_pending_processes"`
}

type legacyProcessFile struct {
	PID         int    `json:"pid"`
	User        string `json:"user"`
	Cmdline     string `json:"cmdline"`
	GPUMemoryMB int    `json:"gpu_memory_mb"`
	GPUUUID     string `json:"gpu_uuid"`
	DetectedAt  string `json:"detected_at"`
}

// parseLegacy reads data as the earlier scanner's inventory; an error says
// it is not one. Its keys must be what that scanner writes (12 hex digits,
// a PID), its times ISO 8601 as Python writes them.
func parseLegacy(data string) (*Legacy, error) {
	var f legacyFile
	dec := json.NewDecoder(bytes.NewReader([]byte(data)))
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if f.SchemaVersion != nil || f.Containers == nil {
		return nil, errors.New("not the earlier scanner's format")
	}
	out := &Legacy{Containers: make(map[string]LegacyContainer, len(f.Containers))}
	var err error
	if out.LastScan, err = legacyTime(f.LastScan); err != nil {
		return nil, fmt.Errorf("last_scan: %w", err)
	}
	for key, c := range f.Containers {
		if len(key) != 12 || !isLowerHex(key) || c.ID != "" && c.ID != key {
			return nil, fmt.Errorf("containers: key %q is not a 12-digit container ID", Truncate(key, 32))
		}
		at, err := legacyTime(c.DetectedAt)
		if err != nil {
			return nil, fmt.Errorf("containers[%s].detected_at: %w", key, err)
		}
		out.Containers[key] = LegacyContainer{ID: key, Name: c.Name, Origin: c.Origin, User: c.User, Status: c.Status,
			Image: c.Image, HasGPU: c.HasGPU, GPUDevices: c.GPUDevices, DetectedAt: at}
	}
	if out.HostProcesses, err = legacyProcesses("host_processes", f.HostProcesses); err != nil {
		return nil, err
	}
	if out.Pending, err = legacyProcesses("_pending_processes", f.Pending); err != nil {
		return nil, err
	}
	return out, nil
}

func legacyProcesses(section string, in map[string]legacyProcessFile) (map[int]LegacyProcess, error) {
	out := make(map[int]LegacyProcess, len(in))
	for key, p := range in {
		pid, err := strconv.Atoi(key)
		if err != nil || pid <= 0 || p.PID != 0 && p.PID != pid {
			return nil, fmt.Errorf("%s: key %q is not a PID", section, Truncate(key, 32))
		}
		at, err := legacyTime(p.DetectedAt)
		if err != nil {
			return nil, fmt.Errorf("%s[%d].detected_at: %w", section, pid, err)
		}
		out[pid] = LegacyProcess{PID: pid, User: p.User, Cmdline: p.Cmdline, GPUUUID: p.GPUUUID, GPUMemoryMB: p.GPUMemoryMB, DetectedAt: at}
	}
	return out, nil
}

// legacyTime parses a time as Python's isoformat writes it, with a Z for
// UTC ("" is the zero time: a pending process has none).
func legacyTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q", Truncate(s, 40))
	}
	return t.UTC(), nil
}

// Migrated counts what Migrate took over.
type Migrated struct {
	// Containers were in the old inventory and are still there.
	Containers int `json:"containers"`
	// Gone were in it and no longer exist: each gets its exit.
	Gone int `json:"containers_gone"`
	// HostProcesses the old scanner had announced and that still run;
	// Promoted those it had seen once, announced now.
	HostProcesses int `json:"host_processes"`
	Promoted      int `json:"pending_promoted"`
	// Exited are announced processes that no longer run.
	Exited int `json:"host_processes_exited"`
}

// Migrate takes the earlier scanner's inventory over into a first scan's
// result (next and its transitions, Reconcile(nil, …)): a container it knew
// is no discovery but keeps its first sighting (and its user, where ds01
// attributes none), and a status it had logged differently changes now; a
// container it knew that is gone exits; a process it had announced is a
// workload at once, one it had seen once is announced now, one gone exits.
// The first scan's observation must be whole (Docker and the GPU process
// sources answered): a missing container then proves it gone.
func Migrate(old *Legacy, next *Inventory, ts []Transition) ([]Transition, Migrated) {
	var m Migrated
	var out []Transition
	known := make(map[string]bool, len(next.Containers))
	for i := range next.Containers {
		c := &next.Containers[i]
		short := ShortID(c.ID)
		known[short] = true
		o, ok := old.Containers[short]
		if !ok {
			continue
		}
		m.Containers++
		if !o.DetectedAt.IsZero() {
			c.DetectedAt = o.DetectedAt
		}
		if c.User == "unknown" && o.User != "" && o.User != "unknown" {
			c.User, c.UserSource = o.User, LegacySource
		}
		if o.Status != "" && o.Status != c.Status {
			out = append(out, Transition{Type: EventContainerStatusChanged, Container: c, From: o.Status, To: c.Status})
		}
	}
	for _, t := range ts {
		if t.Type == EventContainerDiscovered && t.Container != nil && old.Containers[ShortID(t.Container.ID)].ID != "" {
			continue // announced by the earlier scanner
		}
		out = append(out, t)
	}
	for _, short := range slices.Sorted(maps.Keys(old.Containers)) {
		if known[short] {
			continue
		}
		o := old.Containers[short]
		m.Gone++
		typ, ok := TypeNamed(o.Origin)
		if !ok {
			typ = TypeUnknown
		}
		gone := Container{ID: short, Name: o.Name, Image: o.Image, Type: typ, Status: o.Status, User: o.User,
			UserSource: LegacySource, DetectedAt: o.DetectedAt, GPU: GPUAccess{Declared: o.HasGPU, Devices: o.GPUDevices}}
		out = append(out, Transition{Type: EventContainerExited, Container: &gone})
	}

	// A first scan holds every process pending.
	announcedStill := make(map[int]bool, len(old.HostProcesses))
	var pending []HostProcess
	for _, p := range next.PendingProcesses {
		announced, wasAnnounced := old.HostProcesses[p.PID]
		seen, wasSeen := old.Pending[p.PID]
		switch {
		case wasAnnounced && sameProcess(p, announced, announced.DetectedAt):
			m.HostProcesses++
			if !announced.DetectedAt.IsZero() {
				p.DetectedAt = announced.DetectedAt
			}
			next.HostProcesses = append(next.HostProcesses, p)
			announcedStill[p.PID] = true
		case wasSeen && sameProcess(p, seen, old.LastScan):
			m.Promoted++
			next.HostProcesses = append(next.HostProcesses, p)
			promoted := next.HostProcesses[len(next.HostProcesses)-1]
			out = append(out, Transition{Type: EventHostProcessDiscovered, Process: &promoted})
		default:
			pending = append(pending, p)
		}
	}
	next.PendingProcesses = pending
	sortProcs(next.HostProcesses)
	for _, pid := range slices.Sorted(maps.Keys(old.HostProcesses)) {
		o := old.HostProcesses[pid]
		if announcedStill[pid] {
			continue
		}
		m.Exited++
		gone := HostProcess{PID: pid, Type: TypeHostProcess, Command: o.Cmdline, User: o.User, UserSource: LegacySource, DetectedAt: o.DetectedAt}
		out = append(out, Transition{Type: EventHostProcessExited, Process: &gone, GPUUUID: o.GPUUUID})
	}
	setGPUUUIDs(out, next.GPUs)
	return out, m
}

// sameProcess reports whether p is the process the earlier scanner
// recorded as o, by then (when it first saw it, or its last scan): the same
// command line, and started before then, so that a PID reused since by
// another run of the same command is not taken for it. A process whose
// start is unknown, or an old record without a time, is judged by the
// command line alone.
func sameProcess(p HostProcess, o LegacyProcess, by time.Time) bool {
	if !by.IsZero() && !p.StartedAt.IsZero() && p.StartedAt.After(by) {
		return false
	}
	return sameCommand(o.Cmdline, p.Command)
}

// sameCommand compares a command line the earlier scanner recorded (Python:
// arguments split at NUL, empty ones dropped, joined by spaces, invalid
// UTF-8 replaced) with ds01's (every byte kept, cut at MaxCommand bytes):
// words compared after making both valid UTF-8, up to the shorter where one
// was cut.
func sameCommand(recorded, now string) bool {
	a := strings.Fields(strings.ToValidUTF8(recorded, "\uFFFD"))
	b := strings.Fields(strings.ToValidUTF8(now, "\uFFFD"))
	if len(now) >= maxRecordedCommand && len(b) > 0 {
		b = b[:len(b)-1] // the last word may be cut
		if len(a) > len(b) {
			a = a[:len(b)]
		}
	}
	return slices.Equal(a, b)
}

// maxRecordedCommand is where ds01 cuts a command line (detect.MaxCommand).
const maxRecordedCommand = 4096
