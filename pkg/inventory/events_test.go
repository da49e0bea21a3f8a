package inventory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

const testScanID, testBaseScanID = "20260130T143000Z-0a1b2c3d", "20260130T142930Z-99887766"

var timestampPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

func TestFormatTimestamp(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	ist := time.FixedZone("IST", 5*3600+30*60)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"non-UTC with nanoseconds", time.Date(2026, 1, 30, 15, 30, 0, 123456789, cet), "2026-01-30T14:30:00.123456Z"},
		{"truncated, not rounded", time.Date(2026, 1, 30, 14, 30, 0, 999999999, time.UTC), "2026-01-30T14:30:00.999999Z"},
		{"whole second keeps six digits", time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC), "2026-01-30T14:30:00.000000Z"},
		{"trailing zeros kept", time.Date(2026, 1, 30, 14, 30, 0, 100000000, time.UTC), "2026-01-30T14:30:00.100000Z"},
		{"half-hour zone crosses midnight", time.Date(2026, 1, 1, 3, 0, 0, 1000, ist), "2025-12-31T21:30:00.000001Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FormatTimestamp(tc.in)
			if got != tc.want {
				t.Errorf("FormatTimestamp(%v) = %q, want %q", tc.in, got, tc.want)
			}
			if !timestampPattern.MatchString(got) {
				t.Errorf("FormatTimestamp(%v) = %q, not six fractional digits and a Z", tc.in, got)
			}
		})
	}
	if got := FormatTimestamp(time.Now()); !timestampPattern.MatchString(got) {
		t.Errorf("FormatTimestamp(time.Now()) = %q, not six fractional digits and a Z", got)
	}
}

// TestAppendTimestampMatchesLayout: the timestamp writer writes what
// AppendFormat writes with its layout, at the edges of every field and of
// the years it writes itself, and beyond them.
func TestAppendTimestampMatchesLayout(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 2, 28, 9, 5, 7, 1000, time.FixedZone("", -(9*3600+59))), time.Date(2026, 1, 30, 14, 30, 0, 999, time.UTC),
	}
	for i := range 2000 {
		times = append(times, time.Unix(int64(i)*7919*86400+int64(i)*3607, int64(i)*499979%1e9))
	}
	for _, tc := range times {
		want := string(tc.UTC().AppendFormat([]byte("x"), timestampLayout))
		if got := string(appendTimestamp([]byte("x"), tc)); got != want {
			t.Errorf("appendTimestamp(%v) = %q, want %q", tc, got, want)
		}
	}
}

// topLevelKeys returns the keys of the JSON object in line, in order.
func topLevelKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line does not start an object: %q (%v)", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// decodeLine checks that line is exactly one newline-terminated JSON object
// and returns it, numbers as json.Number.
func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one newline-terminated line: %q", abbreviate(line))
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("line is not a JSON object: %v: %q", err, abbreviate(line))
	}
	return m
}

func abbreviate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func TestEncodeEventEnvelope(t *testing.T) {
	e := Transition{Type: EventContainerDiscovered, Container: ptr(container(1, "running", TypeRawDocker))}.NewEvent(testScanID, testBaseScanID, 1, t0)
	line, err := EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"timestamp", "event_type", "user", "source", "details", "schema_version"}
	if got := topLevelKeys(t, line); !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	m := decodeLine(t, line)
	for k, v := range map[string]any{
		"timestamp": "2026-01-30T14:30:00.000000Z", "event_type": EventContainerDiscovered,
		"user": "alice", "source": "ds01-scan", "schema_version": "1",
	} {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if _, truncated := m["details"].(map[string]any)["truncated"]; truncated {
		t.Errorf("a small event was marked truncated: %s", line)
	}
}

func TestEncodeEventUserOmitted(t *testing.T) {
	tests := []struct {
		name     string
		user     string
		wantUser any // nil: key absent
	}{
		{"empty", "", nil},
		// A workload's event carries its user, unknown included, as the
		// lab's writer keeps it; only an empty one is left out.
		{"unknown", "unknown", "unknown"},
		{"named", "alice", "alice"},
		{"uid without a name", "uid:1234", "uid:1234"},
		{"root", "root", "root"},
	}
	for _, tc := range tests {
		for _, kind := range []string{"container", "process"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				tr := Transition{Type: EventContainerDiscovered, Container: ptr(container(1, "running", TypeRawDocker))}
				tr.Container.User = tc.user
				if kind == "process" {
					tr = Transition{Type: EventHostProcessDiscovered, Process: ptr(process(10, 1))}
					tr.Process.User = tc.user
				}
				line, err := EncodeEvent(tr.NewEvent(testScanID, "", 1, t0))
				if err != nil {
					t.Fatal(err)
				}
				m := decodeLine(t, line)
				got, present := m["user"]
				if tc.wantUser == nil && present {
					t.Errorf("user key present as %#v, want it absent: %s", got, line)
				}
				if tc.wantUser != nil && got != tc.wantUser {
					t.Errorf("user = %#v, want %#v", got, tc.wantUser)
				}
			})
		}
	}
	// Source events concern no user at all.
	line, err := EncodeEvent(Transition{Type: EventSourceUnavailable, Source: SourceNVML, Error: "x"}.NewEvent(testScanID, "", 1, t0))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(line, []byte(`"user"`)) {
		t.Errorf("source event has a user key: %s", line)
	}
}

func TestEncodeEventTruncates(t *testing.T) {
	mib := 1 << 20
	labels := func(n int, value string) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("ds01.detected.k%03d", i)] = fmt.Sprintf("%s-%03d", value, i)
		}
		return m
	}
	big := container(0xabcdef, "exited", TypeDevcontainer)
	big.Name = strings.Repeat("n", mib)
	big.DetectedLabels = labels(100, "v")

	hostile := container(0xfedcba, "running", TypeRawDocker)
	hostile.Name = strings.Repeat("\x1b", mib)
	hostile.Image = strings.Repeat("\x1b[0m\xff", mib/8)
	hostile.User = strings.Repeat("\x1b", 4096)
	hostile.UserSource = strings.Repeat("\x00", 4096)
	hostile.DetectedLabels = labels(100, strings.Repeat("\x1b", 4096))
	hostile.GPU.Devices = strings.Split(strings.Repeat(strings.Repeat("\x1b", 100)+",", 1000), ",")
	hostile.GPU.Channels = hostile.GPU.Devices

	// A container may carry its own ds01.detected=true labels, which are
	// honoured and copied whole; "<" is legal in a label value and is six
	// bytes once JSON-escaped.
	forged := container(0x5eed, "running", TypeRawDocker)
	forged.DetectedLabels = labels(20, strings.Repeat("<", 200))
	forged.DetectedLabels["ds01.detected"] = "true"

	cmdProc := process(4242, 9007199254740993)
	cmdProc.Command = strings.Repeat("\x1b]0;pwned\x07", mib/10)

	tests := []struct {
		name string
		tr   Transition
		keep map[string]string // details that must survive whole
	}{
		{"1 MiB name and 100 detected labels", Transition{Type: EventContainerDiscovered, Container: &big},
			map[string]string{"container_id": big.ID[:12], "container_id_full": big.ID, "type": TypeDevcontainer, "status": "exited"}},
		{"escape-heavy strings everywhere", Transition{Type: EventContainerStatusChanged, Container: &hostile, From: "created", To: "running"},
			map[string]string{"container_id": hostile.ID[:12], "container_id_full": hostile.ID, "from": "created", "to": "running"}},
		{"forged detected labels full of HTML-escaped bytes", Transition{Type: EventContainerDiscovered, Container: &forged},
			map[string]string{"container_id": forged.ID[:12], "container_id_full": forged.ID, "type": TypeRawDocker, "status": "running"}},
		{"1 MiB process command", Transition{Type: EventHostProcessDiscovered, Process: &cmdProc},
			map[string]string{"pid": "4242", "start_ticks": "9007199254740993", "type": TypeHostProcess}},
		{"1 MiB source error", Transition{Type: EventSourceUnavailable, Source: SourceDocker, Error: strings.Repeat("e", mib)},
			map[string]string{"source": SourceDocker}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line, err := EncodeEvent(tc.tr.NewEvent(testScanID, testBaseScanID, 1, t0))
			if err != nil {
				t.Fatalf("EncodeEvent: %v", err)
			}
			if len(line) >= MaxEventLine {
				t.Fatalf("line is %d bytes, want < %d", len(line), MaxEventLine)
			}
			if !utf8.Valid(line) || bytes.IndexByte(line, 0x1b) >= 0 {
				t.Errorf("line is not clean UTF-8 without raw ESC: %q", abbreviate(line))
			}
			m := decodeLine(t, line)
			if m["event_type"] != tc.tr.Type || m["schema_version"] != "1" || m["source"] != EventSource {
				t.Errorf("envelope damaged: %q", abbreviate(line))
			}
			d, _ := m["details"].(map[string]any)
			if d["truncated"] != true {
				t.Errorf("details.truncated = %#v, want true", d["truncated"])
			}
			keep := map[string]string{"scan_id": testScanID, "base_scan_id": testBaseScanID}
			for k, v := range tc.keep {
				keep[k] = v
			}
			for k, want := range keep {
				if got := fmt.Sprint(d[k]); got != want {
					t.Errorf("details.%s = %q, want %q kept whole", k, got, want)
				}
			}
		})
	}
}

func TestEncodeEventStaysUnderLimit(t *testing.T) {
	// Events built by hand rather than by NewEvent: EncodeEvent promises a
	// line under MaxEventLine for any event, and Append's atomicity rests
	// on that promise.
	escaped := strings.Repeat("<", 128) // 768 bytes once JSON-escaped
	allEssential := map[string]any{}
	for _, k := range essentialDetails {
		allEssential[k] = escaped
	}
	manyKeys := map[string]any{"container_id": cid(1)}
	for i := range 5000 {
		manyKeys[fmt.Sprintf("k%04d", i)] = i
	}
	nested := map[string]any{"container_id": cid(1), "inner": map[string]any{"deeper": map[string]any{"s": strings.Repeat("\x1b", 1<<16)}}}
	tests := []struct {
		name    string
		user    string
		details map[string]any
	}{
		{"1 MiB user", strings.Repeat("\x1b", 1<<20), map[string]any{"container_id": cid(1)}},
		{"5000 small details", "", manyKeys},
		{"deeply nested big string", "", nested},
		{"every essential detail 128 escaped bytes", "alice", allEssential},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := Event{Timestamp: FormatTimestamp(t0), EventType: EventContainerDiscovered, User: tc.user,
				Source: EventSource, Details: tc.details, SchemaVersion: EventSchemaVersion}
			line, err := EncodeEvent(e)
			if err != nil {
				t.Fatalf("EncodeEvent: %v", err)
			}
			if len(line) >= MaxEventLine {
				t.Fatalf("line is %d bytes, want < %d", len(line), MaxEventLine)
			}
			m := decodeLine(t, line)
			if d := m["details"].(map[string]any); d["truncated"] != true {
				t.Errorf("details.truncated = %#v, want true", d["truncated"])
			}
		})
	}
}

func TestEncodeEventHostileStrings(t *testing.T) {
	c := container(1, "running", TypeRawDocker)
	c.Name = "bad\xff\xfeutf8 \x1b[31mred\x1b[0m\nsecond line\r\u2028\u2029\x00\x7f"
	c.User = "eve\x1b]0;title\x07"
	c.DetectedLabels = map[string]string{"ds01.detected.user": "\x1b[2J\xc3"}
	line, err := EncodeEvent(Transition{Type: EventContainerDiscovered, Container: &c}.NewEvent(testScanID, "", 1, t0))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(bytes.TrimSuffix(line, []byte("\n"))) {
		t.Fatalf("invalid JSON: %q", line)
	}
	if !utf8.Valid(line) {
		t.Errorf("line is not valid UTF-8: %q", line)
	}
	for _, b := range []byte{0x1b, 0x07, 0x00, '\r'} {
		if bytes.IndexByte(line, b) >= 0 {
			t.Errorf("line holds raw byte %#x: %q", b, line)
		}
	}
	m := decodeLine(t, line)
	// The name survives as data: escaped, not lost.
	if name := m["details"].(map[string]any)["name"].(string); !strings.Contains(name, "\x1b[31mred") || !strings.Contains(name, "second line") {
		t.Errorf("name = %q, want the original text kept (escaped in JSON)", name)
	}
}

func TestOpenEventLogRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string) (check func(t *testing.T))
		want  string
	}{
		{"symlink to a file", func(t *testing.T, path string) func(t *testing.T) {
			target := writeFile(t, t.TempDir(), "passwd", []byte("root:x:0:0\n"), 0o600)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if got, _ := os.ReadFile(target); string(got) != "root:x:0:0\n" {
					t.Errorf("link target now holds %q", got)
				}
			}
		}, "symbolic link"},
		{"dangling symlink", func(t *testing.T, path string) func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "cron.d-evil")
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if _, err := os.Lstat(target); err == nil {
					t.Errorf("OpenEventLog created the link target %s", target)
				}
			}
		}, "symbolic link"},
		{"directory", func(t *testing.T, path string) func(t *testing.T) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ""},
		{"FIFO without a reader", func(t *testing.T, path string) func(t *testing.T) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ""},
		{"FIFO with a reader", func(t *testing.T, path string) func(t *testing.T) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return nil
		}, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			check := tc.setup(t, path)
			done := make(chan error, 1)
			go func() {
				l, err := OpenEventLog(path, -1)
				if err == nil {
					l.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("OpenEventLog blocked")
			}
			if err == nil {
				t.Fatalf("OpenEventLog(%s, -1) succeeded", tc.name)
			}
			if !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), filepath.Base(path)) {
				t.Errorf("error %q does not name the file", err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if check != nil {
				check(t)
			}
		})
	}
}

func testEvent(i int) Event {
	return Event{
		Timestamp: FormatTimestamp(t0), EventType: EventSourceRecovered, Source: EventSource,
		SchemaVersion: EventSchemaVersion, Details: map[string]any{"i": i},
	}
}

func TestEventLogAppend(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "": no file
		mode     os.FileMode
		wantMode os.FileMode
	}{
		{"file absent", "", 0, 0o644},
		{"existing lines kept", "{\"old\":1}\n{\"old\":2}\n", 0o640, 0o640},
		{"existing 0600 left as found", "{\"old\":1}\n", 0o600, 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.jsonl")
			if tc.existing != "" {
				writeFile(t, dir, "events.jsonl", []byte(tc.existing), tc.mode)
			}
			// Two opens, as two scans would.
			for round := range 2 {
				l, err := OpenEventLog(path, -1)
				if err != nil {
					t.Fatalf("OpenEventLog: %v", err)
				}
				for i := range 3 {
					if err := l.Append(testEvent(round*3 + i)); err != nil {
						t.Fatalf("Append: %v", err)
					}
				}
				if err := l.Sync(); err != nil {
					t.Fatalf("Sync: %v", err)
				}
				if err := l.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte(tc.existing)) {
				t.Fatalf("existing contents lost: file starts %q", abbreviate(data))
			}
			added := data[len(tc.existing):]
			lines := bytes.SplitAfter(added, []byte("\n"))
			if last := lines[len(lines)-1]; len(last) != 0 {
				t.Errorf("file does not end with a newline: trailing %q", last)
			}
			lines = lines[:len(lines)-1]
			if len(lines) != 6 {
				t.Fatalf("appended %d lines, want 6: %q", len(lines), added)
			}
			for i, line := range lines {
				m := decodeLine(t, line)
				if got := m["details"].(map[string]any)["i"]; fmt.Sprint(got) != fmt.Sprint(i) {
					t.Errorf("line %d holds event %v, want %d", i, got, i)
				}
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.wantMode {
				t.Errorf("mode = %v, want %v", st.Mode().Perm(), tc.wantMode)
			}
		})
	}
}

// TestOpenEventLogCreateModeUnderUmask checks the documented 0644 holds when
// the scanner runs under a restrictive umask (a hardened systemd unit's
// UMask=0077): the log's readers are unprivileged tools. Not parallel: the
// umask is process-wide.
func TestOpenEventLogCreateModeUnderUmask(t *testing.T) {
	for _, mask := range []int{0o022, 0o027, 0o077} {
		t.Run(fmt.Sprintf("umask %04o", mask), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			path := filepath.Join(t.TempDir(), "events.jsonl")
			l, err := OpenEventLog(path, -1)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o644 {
				t.Errorf("new event log mode = %v under umask %04o, want -rw-r--r-- as documented", st.Mode().Perm(), mask)
			}
		})
	}
}

// TestOpenEventLogGroup: given a group, a new log is 0664 and the group's,
// whatever the umask, as the lab's permissions manifest keeps
// it for its other ds01 tools; an existing log keeps its owner and mode.
func TestOpenEventLogGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("giving a file another group needs root (CI=true)")
		}
		t.Skip("!!! SKIPPED: giving a file another group needs root")
	}
	g, err := user.LookupGroup("daemon") // a group every Debian has, root's own not
	if err != nil {
		t.Fatalf("no group daemon here: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	defer syscall.Umask(syscall.Umask(0o077))
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	l, err := OpenEventLog(path, gid)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if gid := fmt.Sprint(st.Sys().(*syscall.Stat_t).Gid); st.Mode().Perm() != 0o664 || gid != g.Gid {
		t.Errorf("new log: mode %v gid %s, want 0664 and group daemon (%s)", st.Mode().Perm(), gid, g.Gid)
	}
	existing := writeFile(t, dir, "old.jsonl", []byte("{}\n"), 0o600)
	l, err = OpenEventLog(existing, gid)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if st, _ := os.Stat(existing); st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Gid != 0 {
		t.Errorf("existing log changed: mode %v gid %d", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid)
	}
}

func TestEventLogConcurrentAppend(t *testing.T) {
	const writers, perWriter = 8, 200
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// A pad that puts a line just under the limit, so that interleaving
	// of non-atomic writes would show.
	probe, err := EncodeEvent(Event{Timestamp: FormatTimestamp(t0), EventType: EventSourceRecovered, Source: EventSource,
		SchemaVersion: EventSchemaVersion, Details: map[string]any{"g": 0, "i": 0, "pad": ""}})
	if err != nil {
		t.Fatal(err)
	}
	bigPad := MaxEventLine - 100 - len(probe)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Go(func() {
			l, err := OpenEventLog(path, -1)
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			for i := range perWriter {
				pad := strings.Repeat(string(rune('a'+g)), (i%3)*bigPad/2)
				e := Event{Timestamp: FormatTimestamp(t0), EventType: EventSourceRecovered, Source: EventSource,
					SchemaVersion: EventSchemaVersion, Details: map[string]any{"g": g, "i": i, "pad": pad}}
				if err := l.Append(e); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	seen := map[[2]int]bool{}
	longest := 0
	for n := 0; sc.Scan(); n++ {
		line := sc.Bytes()
		longest = max(longest, len(line)+1)
		var e struct {
			Details struct {
				G, I      *int
				Pad       string
				Truncated bool
			}
		}
		if err := json.Unmarshal(line, &e); err != nil || e.Details.G == nil || e.Details.I == nil {
			t.Fatalf("line %d is not a whole event (%v): %q", n, err, abbreviate(line))
		}
		if e.Details.Truncated || strings.Trim(e.Details.Pad, string(rune('a'+*e.Details.G))) != "" {
			t.Errorf("line %d: pad of writer %d damaged or truncated", n, *e.Details.G)
		}
		key := [2]int{*e.Details.G, *e.Details.I}
		if seen[key] {
			t.Errorf("event %v appears twice", key)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != writers*perWriter {
		t.Errorf("read %d distinct events, want %d", len(seen), writers*perWriter)
	}
	if longest < MaxEventLine-200 || longest >= MaxEventLine {
		t.Errorf("longest line %d bytes; the test wants some near but under %d", longest, MaxEventLine)
	}
}

func TestTransitionNewEvent(t *testing.T) {
	c := container(0xc0ffee, "exited", TypeDockerCompose)
	c.Name, c.Image, c.User, c.UserSource = "stack-web-1", "nginx:1.27", "alice", "compose_working_dir"
	c.ExitCode = ptr(137)
	c.GPU = GPUAccess{Declared: true, Channels: []string{ChannelDeviceRequest, ChannelCDI}, Devices: []string{"0", "1:2"}}
	c.DetectedLabels = map[string]string{"ds01.detected": "true", "ds01.detected.user": "alice", "ds01.detected.origin": TypeDockerCompose}
	c.GPUAccess = AccessDeclared
	bare := container(0xbeef, "running", TypeRawDocker)
	bare.GPU, bare.DetectedLabels = GPUAccess{}, nil
	p := process(4242, 987654)
	p.User, p.UserSource, p.Command = "bob", "loginuid", "python train.py --lr 3e-4"
	p.GPUs = []string{"0", "2"}
	p.GPUMemoryBytes = ptr(uint64(3 << 30))

	containerDetails := map[string]any{
		"container_id": c.ID[:12], "container_id_full": c.ID, "name": "stack-web-1", "container": "stack-web-1",
		"origin": "compose", "has_gpu": true, "type": TypeDockerCompose,
		"image": "nginx:1.27", "status": "exited", "gpu_declared": true, "gpu_channels": []any{"device_request", "cdi"},
		"gpus": []any{"0", "1:2"}, "gpu_access": AccessDeclared, "gpus_undeclared": []any{}, "user_source": "compose_working_dir", "exit_code": "137",
		"detected_labels": map[string]any{"ds01.detected": "true", "ds01.detected.user": "alice", "ds01.detected.origin": TypeDockerCompose},
	}
	with := func(base map[string]any, extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	processDetails := map[string]any{
		"pid": "4242", "start_ticks": "987654", "type": TypeHostProcess, "cmdline": "python train.py --lr 3e-4",
		"gpus": []any{"0", "2"}, "gpu_uuid": "GPU-6d1c", "gpu_memory_bytes": fmt.Sprint(uint64(3 << 30)), "gpu_memory_mb": "3072",
		"user_source": "loginuid",
	}
	tests := []struct {
		name     string
		tr       Transition
		base     string
		wantUser any
		want     map[string]any // every detail but scan_id, base_scan_id and event_id
	}{
		{"container discovered", Transition{Type: EventContainerDiscovered, Container: &c}, testBaseScanID, "alice", containerDetails},
		{"container status changed", Transition{Type: EventContainerStatusChanged, Container: &c, From: "running", To: "exited"}, testBaseScanID, "alice",
			with(containerDetails, map[string]any{"from": "running", "to": "exited", "old_status": "running", "new_status": "exited"})},
		{"container classification changed", Transition{Type: EventContainerClassification, Container: &c, Field: "type", From: TypeUnknown, To: TypeDockerCompose}, testBaseScanID, "alice",
			with(containerDetails, map[string]any{"changed": "type", "from": TypeUnknown, "to": TypeDockerCompose})},
		{"container exited (left the inventory)", Transition{Type: EventContainerExited, Container: &c}, testBaseScanID, "alice", containerDetails},
		{"container without GPU or labels, first scan", Transition{Type: EventContainerDiscovered, Container: &bare}, "", "alice", map[string]any{
			"container_id": bare.ID[:12], "container_id_full": bare.ID, "name": bare.Name, "container": bare.Name, "origin": TypeRawDocker,
			"has_gpu": false, "type": TypeRawDocker, "image": bare.Image,
			"status": "running", "gpu_declared": false, "gpu_channels": []any{}, "gpus": []any{}, "gpu_access": "", "gpus_undeclared": []any{}, "user_source": bare.UserSource,
			"detected_labels": nil,
		}},
		{"host process discovered", Transition{Type: EventHostProcessDiscovered, Process: &p, GPUUUID: "GPU-6d1c"}, testBaseScanID, "bob", processDetails},
		{"host process exited", Transition{Type: EventHostProcessExited, Process: &p, GPUUUID: "GPU-6d1c"}, testBaseScanID, "bob", processDetails},
		{"source unavailable", Transition{Type: EventSourceUnavailable, Source: SourceNVML, Error: "nvml: driver/library version mismatch"}, testBaseScanID, nil,
			map[string]any{"source": SourceNVML, "error": "nvml: driver/library version mismatch"}},
		{"source recovered", Transition{Type: EventSourceRecovered, Source: SourceNVML}, testBaseScanID, nil,
			map[string]any{"source": SourceNVML}},
	}
	now := time.Date(2026, 1, 30, 15, 30, 1, 234567891, time.FixedZone("CET", 3600))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.tr.NewEvent(testScanID, tc.base, 1, now)
			line, err := EncodeEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			m := decodeLine(t, line)
			if m["timestamp"] != "2026-01-30T14:30:01.234567Z" || m["event_type"] != tc.tr.Type ||
				m["source"] != EventSource || m["schema_version"] != EventSchemaVersion {
				t.Errorf("envelope = %s", line)
			}
			if m["user"] != tc.wantUser {
				t.Errorf("user = %#v, want %#v", m["user"], tc.wantUser)
			}
			want := with(tc.want, map[string]any{"scan_id": testScanID, "base_scan_id": tc.base, "event_id": testScanID + "-0001"})
			got := normaliseNumbers(m["details"]).(map[string]any)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("details mismatch\n got %s\nwant %s", sortedJSON(t, got), sortedJSON(t, want))
			}
		})
	}
}

// normaliseNumbers turns json.Numbers into their text, so that expected
// values can be written as strings and large integers compare exactly.
func normaliseNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case map[string]any:
		for k, e := range x {
			x[k] = normaliseNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normaliseNumbers(e)
		}
	}
	return v
}

func sortedJSON(t *testing.T, m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %s", k, mustMarshal(t, m[k]))
	}
	return b.String()
}

// TestEventLogAfterTornLine: a writer killed mid-line leaves a line without
// its newline; the next event must start on a line of its own.
func TestEventLogAfterTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("{\"whole\":1}\n{\"torn\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := OpenEventLog(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := l.Append(Event{Timestamp: FormatTimestamp(t0), EventType: EventSourceRecovered, Source: EventSource, SchemaVersion: EventSchemaVersion}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 4 || lines[1] != `{"torn":` {
		t.Fatalf("log lines %q, want the torn line alone, then two events", lines)
	}
	for _, l := range lines[2:] {
		if !json.Valid([]byte(l)) {
			t.Errorf("event line %q is not whole JSON", l)
		}
	}
}
