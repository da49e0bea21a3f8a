//go:build integration

package integration

// The one reader of the event log. It reads from an offset, whole or as the
// scans append (eventLog), and reports every line that is not a whole event
// as a problem with its offset instead of failing: the kill tests allow a
// torn line where a writer died, and every other caller takes any problem
// as a failure (allEvents).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// event is one line of the event log: its envelope, and the details the
// checks read.
type event struct {
	Timestamp     string
	EventType     string
	Source        string
	SchemaVersion string
	// User is nil when the line has none.
	User *string
	// Details holds every detail, numbers as json.Number.
	Details map[string]any

	ScanID     string
	BaseScanID string // "" when absent: the scan had no previous inventory
	// ContainerID is details.container_id_full.
	ContainerID string
	PID         int
	StartTicks  uint64
	From, To    string
	Changed     string
	Status      string
	// SourceName is details.source: the detection source that a source
	// event is about.
	SourceName string
	Command    string
	Runtime    string
	line       string
}

// eventStamp is the timestamp every event carries: UTC, microseconds.
var eventStamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// eventProblem is a line of the event log that is not a whole event.
type eventProblem struct {
	// offset is where the line starts in the log, size its length with
	// its newline, if any.
	offset int64
	size   int
	// torn: the last line of the log, without its newline.
	torn bool
	text string
}

// readEvents reads path from offset on. Every line must be one whole JSON
// event, valid UTF-8, under inventory.MaxEventLine with its newline, and the
// file must end with a newline; each violation is one problem. A missing
// file holds no events. next is the offset of the end of the file.
func readEvents(path string, offset int64) (evs []event, next int64, problems []eventProblem, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, offset, nil, nil
	}
	if err != nil {
		return nil, offset, nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, offset, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, offset, nil, err
	}
	next = offset + int64(len(data))
	at := offset
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		p := eventProblem{offset: at, size: len(line)}
		at += int64(len(line))
		switch {
		case len(line) == 0:
			continue
		case line[len(line)-1] != '\n':
			p.torn, p.text = true, fmt.Sprintf("torn line at byte %d (no newline at the end of the log): %q", p.offset, clipLine(line))
			problems = append(problems, p)
			continue
		case len(line) >= inventory.MaxEventLine:
			p.text = fmt.Sprintf("line at byte %d of %d bytes, not under %d: %q", p.offset, len(line), inventory.MaxEventLine, clipLine(line))
			problems = append(problems, p)
		}
		if !utf8.Valid(line) {
			p.text = fmt.Sprintf("line at byte %d is not valid UTF-8: %q", p.offset, clipLine(line))
			problems = append(problems, p)
		}
		e, perr := parseEvent(line)
		if perr != nil {
			p.text = fmt.Sprintf("line at byte %d: %v: %q", p.offset, perr, clipLine(line))
			problems = append(problems, p)
			continue
		}
		evs = append(evs, e)
	}
	return evs, next, problems, nil
}

func clipLine(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// parseEvent decodes one line: one JSON object with ds01-scan's envelope, a
// details object and a scan_id.
func parseEvent(line []byte) (event, error) {
	if !json.Valid(line) {
		return event{}, errors.New("not one JSON value")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return event{}, fmt.Errorf("not a JSON object: %v", err)
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	e := event{
		Timestamp: str(m, "timestamp"), EventType: str(m, "event_type"), Source: str(m, "source"),
		SchemaVersion: str(m, "schema_version"), line: strings.TrimSpace(string(line)),
	}
	if !eventStamp.MatchString(e.Timestamp) || e.Source != inventory.EventSource ||
		e.SchemaVersion != inventory.EventSchemaVersion || e.EventType == "" {
		return e, errors.New("bad envelope")
	}
	switch u := m["user"].(type) {
	case nil:
	case string:
		e.User = &u
	default:
		return e, fmt.Errorf("user %v is not a string", u)
	}
	d, ok := m["details"].(map[string]any)
	if !ok {
		return e, errors.New("no details object")
	}
	e.Details = d
	e.ScanID, e.BaseScanID = str(d, "scan_id"), str(d, "base_scan_id")
	if e.ScanID == "" {
		return e, errors.New("no details.scan_id")
	}
	// container_id is the lab's 12-character form; the checks key
	// containers by the full ID beside it.
	e.ContainerID, e.From, e.To, e.Changed = str(d, "container_id_full"), str(d, "from"), str(d, "to"), str(d, "changed")
	if short := str(d, "container_id"); short != "" && (len(short) != 12 || !strings.HasPrefix(e.ContainerID, short)) {
		return e, fmt.Errorf("details.container_id %q is not the 12-character form of container_id_full %q", short, e.ContainerID)
	}
	e.Status, e.SourceName, e.Command, e.Runtime = str(d, "status"), str(d, "source"), str(d, "cmdline"), str(d, "runtime")
	if n, ok := d["pid"].(json.Number); ok {
		pid, err := strconv.Atoi(n.String())
		if err != nil {
			return e, fmt.Errorf("details.pid %s", n)
		}
		e.PID = pid
	}
	if n, ok := d["start_ticks"].(json.Number); ok {
		ticks, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil {
			return e, fmt.Errorf("details.start_ticks %s", n)
		}
		e.StartTicks = ticks
	}
	return e, nil
}

// eventLog reads the event log as the scans append to it.
type eventLog struct {
	path   string
	offset int64
	// tornAt is where the log's unfinished last line starts; -1 if none.
	tornAt int64
}

func newEventLog(path string) *eventLog { return &eventLog{path: path, tornAt: -1} }

// next reads what was appended since the last call. A writer that finds the
// log torn starts its first event on a fresh line: that newline ends the
// torn line and is no part of what it appended.
func (l *eventLog) next() (evs []event, problems []eventProblem, err error) {
	skip := int64(0)
	if l.tornAt >= 0 {
		if b, err := readAt(l.path, l.offset, 1); err == nil && len(b) == 1 && b[0] == '\n' {
			skip = 1
		}
	}
	evs, next, problems, err := readEvents(l.path, l.offset+skip)
	if err != nil {
		return nil, nil, err
	}
	if next > l.offset {
		l.tornAt = -1
	}
	l.offset = next
	for _, p := range problems {
		if p.torn {
			l.tornAt = p.offset
		}
	}
	return evs, problems, nil
}

func readAt(path string, offset int64, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.ReadAt(b, offset)
	if err == io.EOF {
		err = nil
	}
	return b[:k], err
}

// allEvents returns every event in the scanner's log. The log must exist;
// each line of it that is not a whole event fails the test (which goes on,
// without that line).
func (s *scanner) allEvents(t *testing.T) []event {
	t.Helper()
	if _, err := os.Stat(s.events); err != nil {
		t.Fatalf("read event log: %v", err)
	}
	evs, _, problems, err := readEvents(s.events, 0)
	if err != nil {
		t.Fatalf("read event log: %v", err)
	}
	for _, p := range problems {
		t.Errorf("event log %s: %s", s.events, p.text)
	}
	return evs
}
