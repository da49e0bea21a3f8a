package inventory

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Fuzz targets for what the inventory package takes from outside: the
// inventory file (a group-writable directory means anyone may have written
// it), event details built from container labels and names, and strings on
// their way to a terminal. CI runs each for a few seconds; the seeds below
// and any crasher under testdata/fuzz run with every plain `go test`.

// fuzzInventorySeeds are inventory documents of every shape Parse meets: a
// real one, the forms a crash or a hostile user leaves, and the edges of
// the JSON types.
func fuzzInventorySeeds(t interface{ Fatal(...any) }) [][]byte {
	full, err := json.Marshal(sampleInventory())
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(sampleInventory(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	return [][]byte{
		full,
		indented,
		full[:len(full)/2],
		[]byte(`{"schema_version":1}`),
		[]byte(`{"schema_version":1,"containers":null,"host_processes":[],"pending_processes":[]}`),
		[]byte(`{"schema_version":2}`),
		[]byte(`{"schema_version":"1"}`),
		[]byte(`[]`),
		[]byte(`null`),
		[]byte(``),
		[]byte(`{"schema_version":1,"containers":{"a":1}}`),
		[]byte(`{"schema_version":1,"containers":[{"id":"` + id + `","type":"raw-docker","status":"running",` +
			`"name":"\u001b[2Jx\nforged","command":"sh -c 'sleep 1' \ud800","labels":{"ds01.user":"\u001b]0;t\u0007"},` +
			`"created_at":"2026-01-30T14:30:00.123456789+05:30","cpu_percent":-0,"memory_bytes":18446744073709551615,` +
			`"gpu":{"declared":true,"devices":["all","0"]},"gpu_processes":[{"pid":1,"gpu":"0:1","memory_bytes":null}],` +
			`"detected_labels":{}}]}`),
		[]byte(`{"schema_version":1,"containers":[{"id":"` + id + `","type":"raw-docker"},{"id":"` + id + `","type":"raw-docker"}]}`),
		[]byte(`{"schema_version":1,"host_processes":[{"pid":4242,"start_ticks":1,"type":"host-process","command":"python \xff\xfe",` +
			`"gpus":["1","1",""],"started_at":"0001-01-01T00:00:00Z"}]}`),
		[]byte(`{"schema_version":1,"pending_processes":[{"pid":-1,"type":"system"}]}`),
		[]byte(`{"schema_version":1,"Schema_Version":1,"CONTAINERS":[],"sources":{"nvml":{"ok":true,"last_success":null}}}`),
		[]byte(`{"schema_version":1} trailing`),
		[]byte(`{"schema_version":1,"scan":{"time":"9999-12-31T23:59:59.999999999-23:59"}}`),
	}
}

// FuzzParse: Parse never panics, and whatever it accepts survives a
// round trip — json.Marshal of the result is accepted too, and from there
// another round trip gives the same workloads and the same bytes (the first
// writes every time in UTC with six fractional digits) — so a file the
// scanner saves is one it can load.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzInventorySeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err != nil {
			if inv != nil {
				t.Fatalf("Parse returned an inventory with error %v", err)
			}
			return
		}
		if err := inv.Validate(); err != nil {
			t.Fatalf("Parse accepted a document that fails Validate: %v", err)
		}
		again, err := json.Marshal(inv)
		if err != nil {
			t.Fatalf("accepted inventory does not re-encode: %v", err)
		}
		inv2, err := Parse(again)
		if err != nil {
			t.Fatalf("Parse accepted %q but refuses its re-encoding %q: %v", data, again, err)
		}
		third, err := json.Marshal(inv2)
		if err != nil {
			t.Fatalf("re-encoded inventory does not encode again: %v", err)
		}
		inv3, err := Parse(third)
		if err != nil {
			t.Fatalf("Parse refuses the second re-encoding %q: %v", third, err)
		}
		if !bytes.Equal(again, third) {
			t.Fatalf("a second round trip changed the file:\nfirst  %s\nsecond %s", again, third)
		}
		if w2, w3 := inv2.Workloads(), inv3.Workloads(); !reflect.DeepEqual(w2, w3) {
			t.Fatalf("workloads differ after a round trip:\nfirst  %+v\nsecond %+v", w2, w3)
		}
	})
}

// fuzzEventTypes are the event types the scanner writes; an event type is
// a constant of the program, never input.
var fuzzEventTypes = []string{
	EventContainerDiscovered, EventContainerStatusChanged, EventContainerExited,
	EventContainerClassification, EventHostProcessDiscovered, EventHostProcessExited,
	EventSourceUnavailable, EventSourceRecovered, EventInventoryReset,
}

// FuzzEncodeEvent: whatever strings the details hold (names, images,
// commands and labels come from containers anyone can create), the line is
// one valid-UTF-8 JSON object under MaxEventLine, ending in its only
// newline, and its envelope is intact.
func FuzzEncodeEvent(f *testing.F) {
	id := strings.Repeat("0123456789abcdef", 4)
	f.Add(uint8(0), "alice", id, "alice-train", "pytorch/pytorch:2.5", "python train.py", "ds01.detected.user", "alice", uint16(1))
	f.Add(uint8(1), "", id, "vsc-bob-thesis", "mcr.microsoft.com/devcontainers/python:3", "sleep infinity", "ds01.detected", "true", uint16(0))
	f.Add(uint8(4), "uid:1234", "4242", "", "", "python eval.py --split test\x00", "", "", uint16(3))
	f.Add(uint8(2), "\x1b[2J\x1b]0;title\x07", "\xff\xfe"+id, "x\nforged row", "<img>&", strings.Repeat("\x01", 5000), strings.Repeat("k", 200), strings.Repeat("\u202e", 400), uint16(500))
	f.Add(uint8(7), strings.Repeat("é", 3000), strings.Repeat("\"", 128), strings.Repeat("\\", 4000), strings.Repeat("\x7f", 128), strings.Repeat("a", 5000), "ds01.detected.note", strings.Repeat("\u2028", 1024), uint16(64))
	f.Fuzz(func(t *testing.T, typ uint8, user, cid, name, image, command, labelKey, labelValue string, n uint16) {
		// n scales the lists and maps: a container may carry many labels.
		n %= 300
		labels := make(map[string]string, n)
		gpus := make([]string, 0, n)
		nested := make(map[string]any, n)
		for i := range int(n) {
			suffix := "." + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			labels[labelKey+suffix] = labelValue
			gpus = append(gpus, labelValue+suffix)
			nested[labelKey+suffix] = labelValue
		}
		e := Event{
			Timestamp: "2026-01-30T14:30:00.000000Z",
			EventType: fuzzEventTypes[int(typ)%len(fuzzEventTypes)],
			User:      user,
			Source:    EventSource,
			Details: map[string]any{
				"scan_id":            "20260130T143000Z-" + cid,
				"base_scan_id":       cid,
				"container_id":       cid,
				"container_id_short": ShortID(cid),
				"name":               name,
				"type":               image,
				"image":              image,
				"status":             name,
				"command":            command,
				"from":               labelValue,
				"to":                 labelKey,
				"pid":                int(n),
				"gpu_declared":       n%2 == 0,
				"gpus":               gpus,
				"detected_labels":    labels,
				"extra":              nested,
				labelKey:             labelValue,
			},
			SchemaVersion: EventSchemaVersion,
		}
		line, err := EncodeEvent(e)
		if err != nil {
			t.Fatalf("EncodeEvent: %v", err)
		}
		if len(line) >= MaxEventLine {
			t.Fatalf("line of %d bytes, want < %d", len(line), MaxEventLine)
		}
		if !utf8.Valid(line) {
			t.Fatalf("line is not valid UTF-8")
		}
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line does not end in its only newline: %q", line)
		}
		var got struct {
			Timestamp     string         `json:"timestamp"`
			EventType     string         `json:"event_type"`
			Source        string         `json:"source"`
			Details       map[string]any `json:"details"`
			SchemaVersion string         `json:"schema_version"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line is not JSON: %v: %q", err, line)
		}
		if got.EventType != e.EventType || got.Timestamp != e.Timestamp || got.Source != EventSource ||
			got.SchemaVersion != EventSchemaVersion || got.Details == nil {
			t.Fatalf("envelope damaged: %+v", got)
		}
	})
}

// FuzzSafeText: what SafeText returns is valid UTF-8 with no control
// character (no ESC, BEL, newline, C1) and no bidirectional override, it
// is a fixed point, and text that was already safe comes back unchanged.
func FuzzSafeText(f *testing.F) {
	for _, s := range []string{
		"", "alice-train", "python train.py --lr 3e-4", "vsc-bob-thesis-4f2a", "日本語の名前",
		"\x1b[2J", "\x1b]0;title\x07", "a\nb\rc\td", "\xff\xfe\xfd", "\xc3", "\u202eevil\u202c",
		"\u0085\u009b31m", "\\x1b", "\u2028\u2029", "\x00\x7f", string(utf8.RuneError),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := SafeText(s)
		if !utf8.ValidString(out) {
			t.Fatalf("SafeText(%q) = %q: invalid UTF-8", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || isBidiControl(r) {
				t.Fatalf("SafeText(%q) = %q: holds %U", s, out, r)
			}
		}
		if again := SafeText(out); again != out {
			t.Fatalf("SafeText is not a fixed point: %q then %q", out, again)
		}
		safe := utf8.ValidString(s)
		for _, r := range s {
			if unicode.IsControl(r) || isBidiControl(r) {
				safe = false
			}
		}
		if safe && out != s {
			t.Fatalf("SafeText(%q) = %q: changed safe text", s, out)
		}
	})
}
