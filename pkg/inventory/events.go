package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"
)

// MaxEventLine is the size every event line stays under, newline included,
// so that one write(2) with O_APPEND is atomic for the log's readers.
const MaxEventLine = 4096

// EventSchemaVersion is the envelope version shared with the rest of ds01.
const EventSchemaVersion = "1"

// EventSource is the "source" of every event ds01-scan writes.
const EventSource = "ds01-scan"

// Event is one line of the ds01 event log. The field names and their order
// are shared with the lab's other ds01 tools and must not change.
type Event struct {
	// Timestamp is UTC with a Z, at most microsecond precision.
	Timestamp string `json:"timestamp"`
	EventType string `json:"event_type"`
	// User is the workload's user ("unknown" included); omitted from
	// events about no workload.
	User          string         `json:"user,omitempty"`
	Source        string         `json:"source"`
	Details       map[string]any `json:"details"`
	SchemaVersion string         `json:"schema_version"`
}

// FormatTimestamp renders t as the event log wants it: UTC, a Z, and exactly
// six fractional digits (microseconds). Python 3.8–3.10's fromisoformat, which
// the lab's consumers use, accepts three or six digits and nothing else.
func FormatTimestamp(t time.Time) string {
	return string(appendTimestamp(nil, t))
}

// timestampLayout is FormatTimestamp's; Format cuts the fraction, never
// rounds it.
const timestampLayout = "2006-01-02T15:04:05.000000Z"

// appendTimestamp appends t in timestampLayout. Every time the inventory
// and the events hold is written by it, so it writes the digits itself
// rather than have AppendFormat parse the layout each time (a fifth of
// encoding an inventory); a year of other than four digits, which only a
// forged time has, goes to AppendFormat.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timestampLayout)
	}
	hour, minute, second := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), second, 2)
	b = appendDigits(append(b, '.'), t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends v, which is not negative, as n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	b = append(b, "000000"[:n]...)
	for i := len(b) - 1; v > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// EventLog appends events to a JSONL file. It is not safe for concurrent use;
// ds01-scan holds the scan lock while writing.
type EventLog struct {
	f    *os.File
	path string
	// torn is true when the file does not end in a newline: a writer was
	// killed mid-line. The next event starts on a fresh line, so the torn
	// one cannot swallow it.
	torn bool
}

// OpenEventLog opens path for appending, creating it if absent: 0664 with
// group gid where gid >= 0 (the lab's permissions manifest keeps the log
// root:docker 0664, for its other ds01 tools to append as users), else
// 0644. It refuses a symbolic link or anything but a regular file: the
// directory may be writable by a group the scanner does not trust.
func OpenEventLog(path string, gid int) (*EventLog, error) {
	const flags = os.O_RDWR | os.O_APPEND | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// A new log's mode is set whatever the umask: other ds01 tools
		// read it, and write it as the group. An existing one keeps the
		// owner and mode it was found with.
		f, err = os.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o644)
		switch {
		case err == nil:
			if cerr := shareLog(f, gid); cerr != nil {
				// Not left behind half made: an existing log keeps
				// the owner and mode it has, and this one would
				// keep the wrong ones.
				f.Close()
				os.Remove(path)
				return nil, fmt.Errorf("event log %s: %w", path, cerr)
			}
		case errors.Is(err, fs.ErrExist):
			// Another writer created it first.
			f, err = os.OpenFile(path, flags, 0)
		}
	}
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("open event log %s: refusing a symbolic link", path)
		}
		return nil, fmt.Errorf("open event log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat event log %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open event log %s: not a regular file", path)
	}
	return &EventLog{f: f, path: path, torn: endsTorn(f, st.Size())}, nil
}

// shareLog gives a log just created its group and mode.
func shareLog(f *os.File, gid int) error {
	mode := os.FileMode(0o644)
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return fmt.Errorf("chown to group %d: %w", gid, err)
		}
		mode = 0o664
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// endsTorn reports whether the log's last line lacks its newline. Another
// writer's append may be in flight (its bytes not all visible yet: a write
// that crosses a page shows its first page first, and its writer may be
// preempted between the two), so a missing newline counts only once the
// size has held still for tornSettle. A log that keeps growing for
// tornPatience is being written, not torn.
func endsTorn(f *os.File, size int64) bool {
	last := make([]byte, 1)
	still := time.Duration(0)
	for waited := time.Duration(0); waited < tornPatience; waited += tornPoll {
		if size == 0 {
			return false
		}
		if _, err := f.ReadAt(last, size-1); err != nil || last[0] == '\n' {
			return false
		}
		if still >= tornSettle {
			return true
		}
		time.Sleep(tornPoll)
		st, err := f.Stat()
		if err != nil {
			return false
		}
		if st.Size() == size {
			still += tornPoll
		} else {
			size, still = st.Size(), 0
		}
	}
	return false
}

// How endsTorn tells a torn last line from one being written: the size
// must hold still for tornSettle, looked at every tornPoll, within
// tornPatience. Only a log whose last byte is not a newline pays it.
const (
	tornPoll     = 5 * time.Millisecond
	tornSettle   = 25 * time.Millisecond
	tornPatience = 250 * time.Millisecond
)

// Append writes e as one line with one write. Details too large for
// MaxEventLine are cut down and marked "truncated": true.
func (l *EventLog) Append(e Event) error {
	line, err := EncodeEvent(e)
	if err != nil {
		return err
	}
	return l.appendLine(line)
}

// appendLine writes one newline-terminated line with one write, on a fresh
// line of its own.
func (l *EventLog) appendLine(line []byte) error {
	if l.torn {
		line = append([]byte{'\n'}, line...)
	}
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("append to event log %s: %w", l.path, err)
	}
	l.torn = false
	return nil
}

// tornEventID returns the event_id of the log's torn last line when that
// line is a whole JSON event but its newline; "" otherwise.
func (l *EventLog) tornEventID() string {
	if !l.torn {
		return ""
	}
	st, err := l.f.Stat()
	if err != nil {
		return ""
	}
	start := max(0, st.Size()-MaxEventLine)
	tail := make([]byte, st.Size()-start)
	if _, err := l.f.ReadAt(tail, start); err != nil {
		return ""
	}
	i := bytes.LastIndexByte(tail, '\n')
	if i < 0 && start > 0 {
		return "" // longer than any event
	}
	if line := tail[i+1:]; json.Valid(line) {
		return eventIDOf(line)
	}
	return ""
}

// Sync flushes appended events to stable storage.
func (l *EventLog) Sync() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync event log %s: %w", l.path, err)
	}
	return nil
}

// Close closes the log.
func (l *EventLog) Close() error { return l.f.Close() }

// essentialDetails are kept when an event must be cut to its bones.
var essentialDetails = []string{"event_id", "container_id", "container_id_full", "name", "container", "origin", "has_gpu", "type", "status",
	"old_status", "new_status", "pid", "start_ticks", "source", "scan_id", "base_scan_id", "from", "to"}

// EncodeEvent returns e as one newline-terminated JSON line shorter than
// MaxEventLine, truncating details when needed.
func EncodeEvent(e Event) ([]byte, error) {
	line, err := marshalLine(e)
	if err != nil {
		return nil, err
	}
	if len(line) < MaxEventLine {
		return line, nil
	}
	e.User = Truncate(e.User, 64)
	for _, limit := range []int{512, 128, 32} {
		e.Details = shrinkDetails(e.Details, limit)
		if line, err = marshalLine(e); err != nil || len(line) < MaxEventLine {
			return line, err
		}
	}
	// Last resort: the essential details only, cut harder until it fits.
	for _, limit := range []int{128, 16} {
		small := map[string]any{"truncated": true}
		for _, k := range essentialDetails {
			if v, ok := e.Details[k]; ok {
				small[k] = shrinkValue(v, limit)
			}
		}
		e.Details = small
		if line, err = marshalLine(e); err != nil || len(line) < MaxEventLine {
			return line, err
		}
	}
	return nil, fmt.Errorf("encode event %s: cannot fit in %d bytes", e.EventType, MaxEventLine)
}

func marshalLine(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.EventType, err)
	}
	return append(b, '\n'), nil
}

// shrinkDetails cuts every string in details (and in nested maps and lists)
// to limit bytes, and lists to limit/8 items.
func shrinkDetails(details map[string]any, limit int) map[string]any {
	out := make(map[string]any, len(details)+1)
	for k, v := range details {
		if s, ok := v.(string); ok && len(s) <= 128 && slices.Contains(essentialDetails, k) {
			out[k] = s // keys and states are short; an ID must stay whole
			continue
		}
		out[Truncate(k, 64)] = shrinkValue(v, limit)
	}
	out["truncated"] = true
	return out
}

func shrinkValue(v any, limit int) any {
	switch x := v.(type) {
	case string:
		return Truncate(x, limit)
	case []string:
		n := min(len(x), max(limit/8, 2))
		out := make([]string, n)
		for i := range n {
			out[i] = Truncate(x[i], limit)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, s := range x {
			if len(out) >= max(limit/8, 2) {
				break
			}
			out[Truncate(k, 64)] = Truncate(s, limit)
		}
		return out
	case map[string]any:
		return shrinkDetails(x, limit)
	}
	return v
}

// EventID names the seq-th event (from 1) that scan scanID writes. Scan IDs
// are unique, so event IDs are: a consumer drops a repeat by event_id alone.
func EventID(scanID string, seq int) string { return fmt.Sprintf("%s-%04d", scanID, seq) }

// NewEvent builds the event for t, the seq-th of its scan. scanID is the
// scan writing it; baseScanID the scan whose inventory it was computed
// against ("" on a first scan), so that an event repeated after a crash is
// recognisable by the same base_scan_id.
func (t Transition) NewEvent(scanID, baseScanID string, seq int, now time.Time) Event {
	d := map[string]any{"scan_id": scanID, "base_scan_id": baseScanID, "event_id": EventID(scanID, seq)}
	e := Event{Timestamp: FormatTimestamp(now), EventType: t.Type, Source: EventSource, Details: d, SchemaVersion: EventSchemaVersion}
	if t.From != "" || t.To != "" {
		d["from"], d["to"] = t.From, t.To
	}
	if t.Field != "" {
		d["changed"] = t.Field
	}
	switch {
	case t.Container != nil:
		c := t.Container
		// The lab's consumers pair a container's events by container_id,
		// in the 12-character form its earlier scanner and docker ps use.
		d["container_id"] = ShortID(c.ID)
		if ValidContainerID(c.ID) { // not one the earlier scanner knew by its short ID alone
			d["container_id_full"] = c.ID
		}
		d["name"] = c.Name
		d["container"] = c.Name
		d["origin"] = Origin(c.Type)
		d["has_gpu"] = c.GPU.Declared || c.GPUAccess == AccessInUse || c.GPUAccess == AccessUndeclared
		if t.Type == EventContainerStatusChanged {
			d["old_status"], d["new_status"] = t.From, t.To
		}
		d["type"] = c.Type
		d["image"] = c.Image
		d["status"] = c.Status
		d["gpu_declared"] = c.GPU.Declared
		d["gpu_channels"] = nonNil(c.GPU.Channels)
		d["gpus"] = nonNil(c.GPU.Devices)
		d["gpu_access"] = c.GPUAccess
		d["gpus_undeclared"] = nonNil(c.GPUsUndeclared)
		if c.Runtime != "" {
			d["runtime"] = c.Runtime
		}
		if c.Launcher != nil {
			d["launcher"] = c.Launcher
		}
		d["user_source"] = c.UserSource
		d["detected_labels"] = c.DetectedLabels
		if c.ExitCode != nil && c.Status == "exited" {
			d["exit_code"] = *c.ExitCode
		}
		e.User = c.User
	case t.Process != nil:
		p := t.Process
		d["pid"] = p.PID
		d["start_ticks"] = p.StartTicks
		d["type"] = p.Type
		d["cmdline"] = p.Command
		d["gpus"] = nonNil(p.GPUs)
		d["gpu_uuid"] = t.GPUUUID
		if p.GPUMemoryBytes != nil {
			d["gpu_memory_bytes"] = *p.GPUMemoryBytes
			d["gpu_memory_mb"] = *p.GPUMemoryBytes >> 20
		}
		d["user_source"] = p.UserSource
		if p.Launcher != nil {
			d["launcher"] = p.Launcher
		}
		e.User = p.User
	case t.Brief != nil:
		b := t.Brief
		d["gpu"] = b.GPU
		d["gpu_uuid"] = b.GPUUUID
		d["pid"] = b.PID
		d["started_at"] = FormatTimestamp(b.StartedAt)
		d["duration_ms"] = b.Duration.Milliseconds()
		if b.MaxMemoryBytes != nil {
			d["max_memory_bytes"] = *b.MaxMemoryBytes
			d["gpu_memory_mb"] = *b.MaxMemoryBytes >> 20
		}
		if b.GPUUtilPercent != nil {
			d["gpu_util_percent"] = *b.GPUUtilPercent
		}
		e.User = b.User
	case t.Source != "":
		d["source"] = t.Source
		if t.Error != "" {
			d["error"] = t.Error
		}
	}
	return e
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Origin is the lab's name for a container type: its earlier scanner wrote
// "compose" where ds01 says docker-compose; the others are the same.
func Origin(containerType string) string {
	if containerType == TypeDockerCompose {
		return "compose"
	}
	return containerType
}

// TypeNamed returns the workload type s names: a type, or the lab's
// origin name for one ("compose"), which its earlier tools took.
func TypeNamed(s string) (string, bool) {
	for _, t := range Types {
		if s == t || s == Origin(t) {
			return t, true
		}
	}
	return "", false
}

// ShortID returns the 12-character form of a container ID.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// MigratedEvent is the event saying scan scanID took over the earlier
// scanner's inventory, kept at keptAt: the first of its scan.
func MigratedEvent(scanID, keptAt string, m Migrated, now time.Time) Event {
	return Event{
		Timestamp: FormatTimestamp(now), EventType: EventInventoryMigrated, Source: EventSource, SchemaVersion: EventSchemaVersion,
		Details: map[string]any{"scan_id": scanID, "base_scan_id": "", "event_id": EventID(scanID, 1), "from": LegacySource,
			"kept_at": keptAt, "containers": m.Containers, "containers_gone": m.Gone, "host_processes": m.HostProcesses,
			"pending_promoted": m.Promoted, "host_processes_exited": m.Exited},
	}
}

// ResetEvent is the event saying the previous inventory was unreadable
// (reason) and scan scanID started afresh: the first of its scan.
func ResetEvent(scanID, reason string, now time.Time) Event {
	return Event{
		Timestamp: FormatTimestamp(now), EventType: EventInventoryReset, Source: EventSource, SchemaVersion: EventSchemaVersion,
		Details: map[string]any{"scan_id": scanID, "base_scan_id": "", "event_id": EventID(scanID, 1), "reason": reason},
	}
}
