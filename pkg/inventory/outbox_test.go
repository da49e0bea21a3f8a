package inventory

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// outboxEvents returns n pending discovery events of scan "S", numbered
// from 1.
func outboxEvents(n int) []PendingEvent {
	out := make([]PendingEvent, n)
	for i := range out {
		c := container(i+1, "running", TypeRawDocker)
		out[i] = mustPending(Transition{Type: EventContainerDiscovered, Container: &c}.NewEvent("S", "B", i+1, t0))
	}
	return out
}

// outboxAt records where the log at path ends now, as a scan does before
// it saves.
func outboxAt(t *testing.T, path string, events []PendingEvent) *Outbox {
	t.Helper()
	ob, err := LogEnd(path)
	if err != nil {
		t.Fatal(err)
	}
	ob.Events = events
	return ob
}

func appendRaw(t *testing.T, path string, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

func lineOf(e PendingEvent) string { return e.Line + "\n" }

func wantUnlogged(t *testing.T, path string, ob *Outbox, want []PendingEvent) {
	t.Helper()
	got, err := Unlogged(path, ob)
	if err != nil {
		t.Fatalf("Unlogged: %v", err)
	}
	var g, w []string
	for _, e := range got {
		g = append(g, e.ID)
	}
	for _, e := range want {
		w = append(w, e.ID)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("unlogged %v, want %v", g, w)
	}
}

// TestUnloggedAppend: the events after where the log ended at the save are
// found, once each, and only in whole lines; a torn line, or one a kill
// kept out, is unlogged, in order.
func TestUnloggedAppend(t *testing.T) {
	ev := outboxEvents(4)
	tests := []struct {
		name     string
		appended string
		want     []PendingEvent
	}{
		{"killed before the append", "", ev},
		{"all appended", lineOf(ev[0]) + lineOf(ev[1]) + lineOf(ev[2]) + lineOf(ev[3]), nil},
		{"killed mid-append, a torn last line", lineOf(ev[0]) + lineOf(ev[1]) + ev[2].Line[:100], ev[2:]},
		{"torn exactly before the newline", lineOf(ev[0]) + ev[1].Line, ev[1:]},
		{"another writer between ours", lineOf(ev[0]) + `{"event_type":"other","source":"ds01-cli"}` + "\n" + lineOf(ev[1]), ev[2:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			appendRaw(t, path, "{\"event_type\":\"older\"}\n")
			ob := outboxAt(t, path, ev)
			appendRaw(t, path, tc.appended)
			wantUnlogged(t, path, ob, tc.want)
		})
	}
}

// TestUnloggedIgnoresBeforeTheSave: an event named in the log before the
// save (a line that quotes it, or a repeat of a forged ID) is no proof that
// this save's event was appended: only what follows the save's end counts.
func TestUnloggedIgnoresBeforeTheSave(t *testing.T) {
	ev := outboxEvents(1)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	appendRaw(t, path, lineOf(ev[0]))
	wantUnlogged(t, path, outboxAt(t, path, ev), ev)
}

// TestUnloggedRotated: a log rotated between the save and the append, or
// after the append and before the next scan, whichever way logrotate does
// it, holds each event in one of the two files; only what the copytruncate
// window swallowed (copied before the append, truncated after) is unlogged.
func TestUnloggedRotated(t *testing.T) {
	ev := outboxEvents(2)
	rename := func(t *testing.T, path, to string) {
		if err := os.Rename(path, to); err != nil {
			t.Fatal(err)
		}
	}
	copyTruncate := func(t *testing.T, path, to string, compress bool) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if compress {
			var b bytes.Buffer
			z := gzip.NewWriter(&b)
			z.Write(data)
			z.Close()
			data, to = b.Bytes(), to+".gz"
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		events func(t *testing.T, path, rotated string)
		want   []PendingEvent
	}{
		{"renamed after the append", func(t *testing.T, path, rotated string) {
			appendRaw(t, path, lineOf(ev[0])+lineOf(ev[1]))
			rename(t, path, rotated)
			appendRaw(t, path, "{\"event_type\":\"newer\"}\n")
		}, nil},
		{"renamed mid-append", func(t *testing.T, path, rotated string) {
			appendRaw(t, path, lineOf(ev[0]))
			rename(t, path, rotated)
			appendRaw(t, path, lineOf(ev[1]))
		}, nil},
		{"copytruncated after the append", func(t *testing.T, path, rotated string) {
			appendRaw(t, path, lineOf(ev[0])+lineOf(ev[1]))
			copyTruncate(t, path, rotated, false)
		}, nil},
		{"copytruncated and compressed after the append", func(t *testing.T, path, rotated string) {
			appendRaw(t, path, lineOf(ev[0])+lineOf(ev[1]))
			copyTruncate(t, path, rotated, true)
		}, nil},
		{"copytruncated before the append", func(t *testing.T, path, rotated string) {
			copyTruncate(t, path, rotated, false)
			appendRaw(t, path, lineOf(ev[0])+lineOf(ev[1]))
		}, nil},
		{"appended inside the copytruncate window", func(t *testing.T, path, rotated string) {
			data, _ := os.ReadFile(path)
			appendRaw(t, path, lineOf(ev[0]))
			os.WriteFile(rotated, data, 0o644)
			os.Truncate(path, 0)
			appendRaw(t, path, lineOf(ev[1]))
		}, ev[:1]},
		{"removed and never recreated", func(t *testing.T, path, rotated string) {
			appendRaw(t, path, lineOf(ev[0]))
			os.Remove(path)
		}, ev},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.jsonl")
			appendRaw(t, filepath.Join(dir, "events.jsonl-20261101"), lineOf(ev[0]))
			appendRaw(t, path, strings.Repeat("{\"event_type\":\"older\"}\n", 50))
			ob := outboxAt(t, path, ev)
			tc.events(t, path, filepath.Join(dir, "events.jsonl-20261202"))
			wantUnlogged(t, path, ob, tc.want)
		})
	}
}

// TestUnloggedNoLog: with no log at the save, the events are found where a
// later scan created it; Unlogged refuses to read through a symbolic link.
func TestUnloggedNoLog(t *testing.T) {
	ev := outboxEvents(2)
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	ob := outboxAt(t, path, ev)
	if ob.LogInode != 0 || ob.LogOffset != 0 {
		t.Fatalf("position of a missing log: %+v", ob)
	}
	wantUnlogged(t, path, ob, ev)
	if err := AppendLines(path, -1, ev); err != nil {
		t.Fatal(err)
	}
	wantUnlogged(t, path, ob, nil)

	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Unlogged(link, &Outbox{LogInode: 1, Events: ev}); err == nil {
		t.Error("Unlogged read through a symbolic link")
	}
}

// TestAppendLinesAfterTornLine: appended after a torn line, the first event
// starts a line of its own, so it counts as logged.
func TestAppendLinesAfterTornLine(t *testing.T) {
	ev := outboxEvents(2)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	appendRaw(t, path, ev[0].Line[:50])
	ob := outboxAt(t, path, ev)
	if err := AppendLines(path, -1, ev); err != nil {
		t.Fatal(err)
	}
	wantUnlogged(t, path, ob, nil)
	data, _ := os.ReadFile(path)
	if want := ev[0].Line[:50] + "\n" + lineOf(ev[0]) + lineOf(ev[1]); string(data) != want {
		t.Errorf("log:\n%s\nwant:\n%s", data, want)
	}
}

// TestOutboxCorrupt: Load refuses an outbox whose lines cannot be appended
// as they stand, as it refuses any other corrupt section.
func TestOutboxCorrupt(t *testing.T) {
	ev := outboxEvents(2)
	tests := []struct {
		name string
		ob   Outbox
		want string
	}{
		{"no event_id", Outbox{Events: []PendingEvent{{Line: ev[0].Line}}}, "no event_id"},
		{"not JSON", Outbox{Events: []PendingEvent{{ID: ev[0].ID, Line: ev[0].Line[:40]}}}, "not a JSON object"},
		{"another tool's event", Outbox{Events: []PendingEvent{{ID: ev[0].ID, Line: strings.Replace(ev[0].Line, `"source":"ds01-scan"`, `"source":"ds01-cli"`, 1)}}}, "not an event of ds01-scan"},
		{"another event's line", Outbox{Events: []PendingEvent{{ID: ev[0].ID, Line: ev[1].Line}}}, "names another event"},
		{"a line break", Outbox{Events: []PendingEvent{{ID: ev[0].ID, Line: ev[0].Line + "\n" + ev[1].Line}}}, "line break"},
		{"too long", Outbox{Events: []PendingEvent{{ID: ev[0].ID, Line: ev[0].Line + strings.Repeat(" ", MaxEventLine)}}}, "bytes"},
		{"twice", Outbox{Events: []PendingEvent{ev[0], ev[0]}}, "duplicate event_id"},
		{"negative offset", Outbox{LogOffset: -1}, "log_offset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := sampleInventory()
			inv.Outbox = &tc.ob
			path := writeFile(t, t.TempDir(), inventoryName, mustMarshal(t, inv), 0o644)
			_, err := Load(path)
			wantCorrupt(t, err, path, tc.want)
		})
	}
}

// TestCapOutbox keeps the newest events within MaxOutboxBytes.
func TestCapOutbox(t *testing.T) {
	ev := outboxEvents(3)
	if got, dropped := CapOutbox(ev); len(got) != 3 || dropped != 0 {
		t.Errorf("small outbox: kept %d, dropped %d", len(got), dropped)
	}
	big := strings.Repeat("x", MaxOutboxBytes/2)
	many := []PendingEvent{{ID: "a", Line: big}, {ID: "b", Line: big}, {ID: "c", Line: "c"}}
	got, dropped := CapOutbox(many)
	if dropped != 1 || len(got) != 2 || got[0].ID != "b" {
		t.Errorf("kept %v, dropped %d; want b and c, 1 dropped", got, dropped)
	}
}

func ExampleUnlogged() {
	dir, _ := os.MkdirTemp("", "ds01-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "events.jsonl")
	e := Event{Timestamp: FormatTimestamp(t0), EventType: EventSourceRecovered, Source: EventSource, SchemaVersion: EventSchemaVersion,
		Details: map[string]any{"event_id": "S-0001", "scan_id": "S", "base_scan_id": "", "source": SourceDocker}}
	p, _ := NewPendingEvent(e)
	ob := &Outbox{Events: []PendingEvent{p}} // saved with the inventory
	before, _ := Unlogged(path, ob)
	_ = AppendLines(path, -1, ob.Events)
	after, _ := Unlogged(path, ob)
	fmt.Println(len(before), len(after))
	// Output: 1 0
}

// TestAppendLinesAfterWholeTornLine: a kill that cut a line just before
// its newline left the event whole; Unlogged hands it back (the line is not
// ended), and the append ends it rather than writing it again.
func TestAppendLinesAfterWholeTornLine(t *testing.T) {
	ev := outboxEvents(2)
	for _, tc := range []struct {
		name    string
		pending []PendingEvent
	}{
		{"more to append", ev},
		{"nothing else to append", ev[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			appendRaw(t, path, "{\"event_type\":\"older\"}\n")
			ob := outboxAt(t, path, tc.pending)
			appendRaw(t, path, ev[0].Line)
			unlogged, err := Unlogged(path, ob)
			if err != nil {
				t.Fatal(err)
			}
			if len(unlogged) != len(tc.pending) {
				t.Fatalf("unlogged %d, want all %d (the torn line is not ended)", len(unlogged), len(tc.pending))
			}
			if err := AppendLines(path, -1, unlogged); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			want := "{\"event_type\":\"older\"}\n" + lineOf(ev[0])
			if len(tc.pending) > 1 {
				want += lineOf(ev[1])
			}
			if string(data) != want {
				t.Errorf("log:\n%s\nwant:\n%s", data, want)
			}
			wantUnlogged(t, path, ob, nil)
		})
	}
}
