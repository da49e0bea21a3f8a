package inventory

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Outbox holds the events of saved scans until a later scan has found them
// in the event log. A scan saves its inventory with its events here, then
// appends them; the next scan looks for them in the log and appends those a
// crash, a full disk or an unwritable log kept out. So the events of a scan
// reach the log if and only if its inventory was saved, each once.
type Outbox struct {
	// LogInode and LogOffset are where the event log ended when the
	// inventory was saved (0 and 0 when there was no log): the events
	// were appended there, to that file or, once rotated, to its copy.
	LogInode  uint64 `json:"log_inode"`
	LogOffset int64  `json:"log_offset"`
	// LogMark fingerprints the bytes before LogOffset, so that a log
	// truncated and grown again is not taken for the same log.
	LogMark string `json:"log_mark"`
	// Events are encoded event lines, oldest first.
	Events []PendingEvent `json:"events"`
}

// PendingEvent is one event line waiting to be found in the log.
type PendingEvent struct {
	ID string `json:"event_id"`
	// Line is the event as EncodeEvent wrote it, without the newline.
	Line string `json:"line"`
}

// MaxOutboxBytes caps the lines an outbox keeps: past it, the oldest are
// dropped (and counted), so that a log that stays unwritable cannot grow
// the inventory past what Load accepts.
const MaxOutboxBytes = 32 << 20

// NewPendingEvent encodes e for an outbox.
func NewPendingEvent(e Event) (PendingEvent, error) {
	line, err := EncodeEvent(e)
	if err != nil {
		return PendingEvent{}, err
	}
	id, _ := e.Details["event_id"].(string)
	if id == "" {
		return PendingEvent{}, fmt.Errorf("encode event %s: no event_id", e.EventType)
	}
	return PendingEvent{ID: id, Line: string(line[:len(line)-1])}, nil
}

// CapOutbox keeps the newest events whose lines fit in MaxOutboxBytes and
// says how many older ones it dropped.
func CapOutbox(events []PendingEvent) ([]PendingEvent, int) {
	size := 0
	for i := len(events) - 1; i >= 0; i-- {
		size += len(events[i].Line) + 1
		if size > MaxOutboxBytes {
			return events[i+1:], i + 1
		}
	}
	return events, 0
}

// validate checks what appending a line relies on: one line, short enough
// for one write, shaped as a ds01-scan event that names its own event_id.
// It does not parse the JSON (every reader of a large inventory would pay
// for it): only a writer of the state directory can change a line, and
// such a writer can already forge the inventory the events come from.
func (p PendingEvent) validate() error {
	switch {
	case p.ID == "":
		return errors.New("no event_id")
	case len(p.Line)+1 >= MaxEventLine:
		return fmt.Errorf("event %s: line of %d bytes", p.ID, len(p.Line))
	case strings.ContainsAny(p.Line, "\n\r"):
		return fmt.Errorf("event %s: line holds a line break", p.ID)
	case !strings.HasPrefix(p.Line, "{") || !strings.HasSuffix(p.Line, "}"):
		return fmt.Errorf("event %s: line is not a JSON object", p.ID)
	case !strings.Contains(p.Line, `"source":"`+EventSource+`"`):
		return fmt.Errorf("event %s: line is not an event of %s", p.ID, EventSource)
	case !strings.Contains(p.Line, `"event_id":"`+p.ID+`"`):
		return fmt.Errorf("event %s: line names another event", p.ID)
	}
	return nil
}

// eventIDOf returns details.event_id of a line, or "" when it names none.
func eventIDOf(line []byte) string {
	var e struct {
		Details struct {
			EventID string `json:"event_id"`
		} `json:"details"`
	}
	if json.Unmarshal(line, &e) != nil {
		return ""
	}
	return e.Details.EventID
}

// LogEnd returns an empty outbox that records where the event log at path
// ends now, which is where the events of an outbox saved now will be
// appended: inode 0 and offset 0 for a missing log.
func LogEnd(path string) (*Outbox, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &Outbox{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat event log %s: %w", path, err)
	}
	mark, err := markAt(f, st.Size())
	if err != nil {
		return nil, err
	}
	return &Outbox{LogInode: inodeOf(st), LogOffset: st.Size(), LogMark: mark}, nil
}

// markLen is how many bytes before the log's end its mark covers.
const markLen = 256

// markAt fingerprints the markLen bytes of f before offset: a log copied
// and truncated, then grown past the offset again, has other bytes there.
func markAt(f *os.File, offset int64) (string, error) {
	start := max(0, offset-markLen)
	buf := make([]byte, offset-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return "", fmt.Errorf("read event log %s: %w", f.Name(), err)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:8]), nil
}

func inodeOf(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

// Unlogged returns the events of ob not yet in the event log at path, in
// order: those a crash or a failed append kept out. It looks only where
// the events can be: in the log from where it ended at the save, or, when
// the log was rotated since, in its head and in the rotated copy
// (<path>-* or <path>.*, gzip or not). An event is logged when a whole line
// (newline-terminated) names its event_id; a torn one is not.
func Unlogged(path string, ob *Outbox) ([]PendingEvent, error) {
	if ob == nil || len(ob.Events) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(ob.Events))
	window := int64(1 << 20)
	for _, e := range ob.Events {
		want[e.ID] = true
		window += int64(len(e.Line)) + 1
	}
	found := map[string]bool{}
	search := func(r io.Reader) error {
		return findEventIDs(r, want, found)
	}
	if !sameLog(path, ob) {
		// Rotated (renamed, or copied and truncated): appended after the
		// rotation, the events are at the head of the log; before it, in
		// the copy, after where the log ended.
		if err := readLogAt(path, 0, window, search); err != nil {
			return nil, err
		}
		if len(found) < len(want) {
			// A rotated copy that cannot be read (a broken gzip) holds
			// nothing found: its events are appended again, with their
			// event_id, rather than lost.
			if rotated := rotatedCopy(path, ob.LogInode); rotated != "" {
				_ = readLogAt(rotated, ob.LogOffset, window, search)
			}
		}
	} else if err := readLogAt(path, ob.LogOffset, window, search); err != nil {
		// Not rotated: the events follow where the log ended.
		return nil, err
	}
	var out []PendingEvent
	for _, e := range ob.Events {
		if !found[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// sameLog reports whether the log at path is the one ob's events were
// appended to, not rotated since: same file, at least as long, the same
// bytes before where it ended.
func sameLog(path string, ob *Outbox) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || inodeOf(st) != ob.LogInode || st.Size() < ob.LogOffset {
		return false
	}
	mark, err := markAt(f, ob.LogOffset)
	return err == nil && mark == ob.LogMark
}

// readLogAt hands search the bytes of the log at path from offset, at most
// window of them; a gzip file is read decompressed.
func readLogAt(path string, offset, window int64, search func(io.Reader) error) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open event log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat event log %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("read event log %s: not a regular file", path)
	}
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("read rotated event log %s: %w", path, err)
		}
		defer z.Close()
		if _, err := io.CopyN(io.Discard, z, offset); err != nil {
			return nil // shorter than where the log ended: not there
		}
		r = z
	} else if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("seek event log %s: %w", path, err)
	}
	return search(io.LimitReader(r, window))
}

// findEventIDs marks in found the wanted event IDs that whole lines of r
// name. A partial first line (the read began mid-line) names none of ours:
// the log ended on a line boundary, or on a torn line, when they followed.
func findEventIDs(r io.Reader, want, found map[string]bool) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read event log: %w", err)
	}
	marker := []byte(`"event_id":"`)
	for len(data) > 0 {
		line, rest, whole := bytes.Cut(data, []byte{'\n'})
		data = rest
		if !whole || !bytes.Contains(line, marker) {
			continue
		}
		if id := eventIDOf(line); want[id] {
			found[id] = true
		}
	}
	return nil
}

// rotatedCopy returns the rotated log most likely to hold what was appended
// to the log at path up to its rotation: the sibling whose inode the log
// had (a rename), else the newest sibling named <base>-* or <base>.*
// (a copy, perhaps compressed). "" when there is none.
func rotatedCopy(path string, inode uint64) string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	newest, newestTime := "", int64(0)
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, base)
		if !ok || rest == "" || (rest[0] != '-' && rest[0] != '.') || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if inode != 0 && inodeOf(info) == inode && !strings.HasSuffix(name, ".gz") {
			return filepath.Join(dir, name)
		}
		if t := info.ModTime().UnixNano(); newest == "" || t > newestTime {
			newest, newestTime = filepath.Join(dir, name), t
		}
	}
	return newest
}

// AppendLines appends event lines to the log at path, each with one write,
// then fsyncs it; a log it creates gets group gid, as OpenEventLog says.
func AppendLines(path string, gid int, events []PendingEvent) error {
	if len(events) == 0 {
		return nil
	}
	l, err := OpenEventLog(path, gid)
	if err != nil {
		return err
	}
	defer l.Close()
	// A kill can cut a line just before its newline: the event is whole,
	// and Unlogged, which counts only ended lines, hands it back. The
	// newline that ends the torn line makes it whole, so it is not written
	// again.
	if id := l.tornEventID(); id != "" {
		if i := slices.IndexFunc(events, func(e PendingEvent) bool { return e.ID == id }); i >= 0 {
			events = slices.Delete(slices.Clone(events), i, i+1)
			if len(events) == 0 {
				if err := l.appendLine(nil); err != nil { // the newline alone
					return err
				}
			}
		}
	}
	for _, e := range events {
		if err := l.appendLine(append([]byte(e.Line), '\n')); err != nil {
			return err
		}
	}
	return l.Sync()
}
