//go:build integration

package integration

// The event log's faults, one test each: the real scanner killed at each
// step between its save and its append, the log rotated between the two,
// written by another tool at the same moment, missing, unwritable or full,
// and the outbox corrupt. After each, the log replayed from nothing gives
// the inventory, and every event is there exactly once.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// outboxWorld is a scanner and the containers a test changes between its
// scans.
type outboxWorld struct {
	t      *testing.T
	s      *scanner
	strace string
	// foreign is how many lines another tool appended to the log.
	foreign int
}

// outboxOtherTool is the source of the lines another ds01 tool writes.
const outboxOtherTool = "ds01-cli"

func newOutboxWorld(t *testing.T) *outboxWorld {
	t.Helper()
	strace, ok := churnStraceWorks()
	mustHave(t, ok, "strace missing or not permitted: the kills and faults are injected at the scanner's calls")
	return &outboxWorld{t: t, s: newScanner(t), strace: strace}
}

// settled runs two clean scans: the second finds the first's events in the
// log, so the inventory's outbox is empty and the log holds everything.
func (w *outboxWorld) settled() *inventory.Inventory {
	w.t.Helper()
	w.s.scan(w.t)
	inv := w.s.scan(w.t)
	if inv.Outbox != nil {
		w.t.Fatalf("a scan without events saved an outbox of %d events", len(inv.Outbox.Events))
	}
	return inv
}

// changes makes n transitions: n containers created.
func (w *outboxWorld) changes(n int) []string {
	w.t.Helper()
	var ids []string
	for range n {
		ids = append(ids, container(w.t, "run", "-d", "--init", env.image, "sleep", "600"))
	}
	return ids
}

// under runs one scan under strace with args (the faults it injects), and
// returns how it ended.
func (w *outboxWorld) under(o scanOpts, args ...string) runResult {
	w.t.Helper()
	o.prefix = append(append([]string{w.strace, "-f", "-qq", "-o", "/dev/null"}, args...), "--")
	return w.s.command(o).run()
}

// killedAt runs a scan that strace SIGKILLs on entering the when-th of
// calls on path, and checks it died.
func (w *outboxWorld) killedAt(calls, path string, when int) {
	w.t.Helper()
	r := w.under(scanOpts{}, "-e", "trace="+calls, "-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", calls, when), "-P", path)
	if r.signal.String() != "killed" {
		w.t.Fatalf("the scan was to be killed at %s of %s, but ended otherwise:\n%s", calls, path, r)
	}
}

func (w *outboxWorld) logBytes() []byte {
	w.t.Helper()
	data, err := os.ReadFile(w.s.events)
	if err != nil {
		w.t.Fatal(err)
	}
	return data
}

func (w *outboxWorld) load() *inventory.Inventory {
	w.t.Helper()
	inv, err := inventory.Load(w.s.state)
	if err != nil {
		w.t.Fatal(err)
	}
	return inv
}

// agree checks the log against the inventory on disk: the replay gives its
// containers and host processes, no event follows from a state the log
// never had, no event_id repeats, each of ids was discovered exactly once,
// and no line is other than a whole event but fragments torn ones. It
// returns the replay.
func (w *outboxWorld) agree(fragments int, ids ...string) *inventory.Replayed {
	w.t.Helper()
	f, err := os.Open(w.s.events)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	r, err := inventory.Replay(f)
	if err != nil {
		w.t.Fatal(err)
	}
	d := r.Compare(w.load())
	for _, x := range d.Phantom {
		w.t.Errorf("phantom: the log says %s exists; the inventory does not hold it", x)
	}
	for _, x := range d.Lost {
		w.t.Errorf("lost: the inventory holds %s; the log never said so", x)
	}
	for _, x := range d.WrongStatus {
		w.t.Errorf("wrong status: %s", x)
	}
	for _, x := range r.Inconsistent {
		w.t.Errorf("inconsistent: %s", x)
	}
	if r.Repeats > 0 {
		w.t.Errorf("%d events logged twice (same event_id)", r.Repeats)
	}
	evs, problems := w.events()
	var bad []eventProblem
	foreign := 0
	for _, p := range problems {
		if strings.Contains(p.text, `\"source\":\"`+outboxOtherTool+`\"`) {
			foreign++
		} else {
			bad = append(bad, p)
		}
	}
	if len(bad) != fragments || r.Unparsable != fragments {
		w.t.Errorf("lines that are not whole events: %d (replay skipped %d), want %d torn fragments: %+v", len(bad), r.Unparsable, fragments, bad[:min(len(bad), 5)])
	}
	if foreign != w.foreign {
		w.t.Errorf("the other tool wrote %d lines, the log holds %d of them", w.foreign, foreign)
	}
	for _, id := range ids {
		var types []string
		for _, e := range evs {
			if e.ContainerID == id {
				types = append(types, e.EventType)
			}
		}
		if len(types) != 1 || types[0] != inventory.EventContainerDiscovered {
			w.t.Errorf("container %s: events %v, want one discovery", inventory.ShortID(id), types)
		}
	}
	if w.t.Failed() {
		w.t.Logf("event log:\n%s", clipTail(w.logBytes()))
	}
	return r
}

// events reads the whole log, and the lines that are not whole events.
func (w *outboxWorld) events() ([]event, []eventProblem) {
	w.t.Helper()
	evs, _, problems, err := readEvents(w.s.events, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	return evs, problems
}

// scanIDsIn returns the scan_id of each whole event in the log, in order.
func (w *outboxWorld) scanIDsIn() []string {
	w.t.Helper()
	evs, _ := w.events()
	return scanIDsOf(evs)
}

func scanIDsOf(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ScanID)
	}
	return out
}

func countOf(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// TestEventsKilledBeforeTheSave: a scan killed at its inventory's rename
// leaves neither its inventory nor any event: the next scan logs the
// changes, once.
func TestEventsKilledBeforeTheSave(t *testing.T) {
	w := newOutboxWorld(t)
	before := w.settled()
	logBefore := w.logBytes()
	ids := w.changes(2)
	w.killedAt("rename,renameat,renameat2", w.s.state, 1)
	if got := w.load(); got.Scan.ID != before.Scan.ID {
		t.Fatalf("the killed scan's inventory %s was saved", got.Scan.ID)
	}
	if after := w.logBytes(); !bytes.Equal(after, logBefore) {
		t.Errorf("a scan killed before its save appended:\n%s", after[len(logBefore):])
	}
	w.s.scan(t)
	w.agree(0, ids...)
}

// TestEventsKilledAfterTheSave: a scan killed after its rename (at the
// state directory's fsync), before it opened the log, leaves its events in
// the saved inventory's outbox; the next scan appends them, under the
// killed scan's own scan_id, before its own.
func TestEventsKilledAfterTheSave(t *testing.T) {
	w := newOutboxWorld(t)
	w.settled()
	logBefore := w.logBytes()
	ids := w.changes(2)
	w.killedAt("fsync,fdatasync", w.s.dir, 1)
	saved := w.load()
	if saved.Outbox == nil || len(saved.Outbox.Events) != 2 {
		t.Fatalf("the saved inventory's outbox: %+v, want the 2 discoveries", saved.Outbox)
	}
	if after := w.logBytes(); !bytes.Equal(after, logBefore) {
		t.Errorf("the scan appended before its save completed:\n%s", after[len(logBefore):])
	}
	w.changes(1)
	next := w.s.scan(t)
	scans := w.scanIDsIn()
	if n := countOf(scans, saved.Scan.ID); n != 2 {
		t.Errorf("%d events of the killed scan %s in the log, want its 2", n, saved.Scan.ID)
	}
	if n := countOf(scans, next.Scan.ID); n != 1 {
		t.Errorf("%d events of the next scan, want its own 1", n)
	}
	w.agree(0, ids...)
}

// TestEventsKilledMidAppend: a scan killed between two of its lines, whose
// last line the kernel cut at a page boundary (as TestKillEventAppend
// shows it can), leaves a torn line; the next scan appends the torn event
// and the rest whole, each on a line of its own, and readers skip the
// fragment.
func TestEventsKilledMidAppend(t *testing.T) {
	w := newOutboxWorld(t)
	w.settled()
	ids := w.changes(3)
	w.killedAt("write,writev,pwrite64", w.s.events, 2)
	saved := w.load()
	if saved.Outbox == nil || len(saved.Outbox.Events) != 3 {
		t.Fatalf("the saved inventory's outbox: %+v, want the 3 discoveries", saved.Outbox)
	}
	// What a cut at a page boundary leaves of the second line.
	f, err := os.OpenFile(w.s.events, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(saved.Outbox.Events[1].Line[:200])
	f.Close()

	w.s.scan(t)
	if n := countOf(w.scanIDsIn(), saved.Scan.ID); n != 3 {
		t.Errorf("%d whole events of the killed scan, want 3", n)
	}
	w.agree(1, ids...)
	if _, problems := w.events(); len(problems) == 1 && problems[0].size != 201 {
		t.Errorf("the fragment is not alone on its line: %+v", problems[0])
	}
}

// TestEventsKilledAfterTheAppend: a scan killed at the log's fsync, its
// lines written, is not repeated by the next scan.
func TestEventsKilledAfterTheAppend(t *testing.T) {
	w := newOutboxWorld(t)
	w.settled()
	ids := w.changes(2)
	w.killedAt("fsync,fdatasync", w.s.events, 1)
	saved := w.load()
	w.s.scan(t)
	if n := countOf(w.scanIDsIn(), saved.Scan.ID); n != 2 {
		t.Errorf("%d events of the killed scan, want its 2, once", n)
	}
	w.agree(0, ids...)
}

// TestEventsLogRotated: the log rotated between a scan's save and its
// append (held there by strace), by rename or by copytruncate, and
// copytruncated and compressed after the append, as the lab's logrotate
// does: each event is in the log or its rotated copy, once, and the next
// scan repeats none.
func TestEventsLogRotated(t *testing.T) {
	rename := func(t *testing.T, log, to string) {
		if err := os.Rename(log, to); err != nil {
			t.Fatal(err)
		}
	}
	copyTruncate := func(t *testing.T, log, to string) {
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		z := gzip.NewWriter(&b)
		z.Write(data)
		z.Close()
		if err := os.WriteFile(to+".gz", b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(log, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name           string
		between, after func(t *testing.T, log, to string)
	}{
		{"renamed between save and append", rename, nil},
		{"copytruncated between save and append", copyTruncate, nil},
		{"copytruncated after the append", nil, copyTruncate},
		{"renamed after the append", nil, rename},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOutboxWorld(t)
			before := w.settled()
			ids := w.changes(2)
			rotated := w.s.events + "-20261202"
			var r runResult
			if tc.between != nil {
				// Held 3 s after the state directory's fsync: saved, not
				// yet appended.
				p := w.s.command(scanOpts{prefix: []string{w.strace, "-f", "-qq", "-o", "/dev/null",
					"-e", "trace=fsync,fdatasync", "-e", "inject=fsync,fdatasync:delay_exit=3s", "-P", w.s.dir, "--"}})
				if err := p.start(); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 20*time.Second, "the scan's save", func() bool {
					inv, err := inventory.Load(w.s.state)
					return err == nil && inv.Scan.ID != before.Scan.ID
				})
				tc.between(t, w.s.events, rotated)
				r = p.wait()
			} else {
				r = w.s.run(t, scanOpts{})
				tc.after(t, w.s.events, rotated)
			}
			if !r.ok() {
				t.Fatalf("the scan failed:\n%s", r)
			}
			saved := w.load()
			w.s.scan(t)
			// Each event once, in the log and its rotated copy together.
			current, problems := w.events()
			if len(problems) > 0 {
				t.Errorf("the log holds lines that are not whole events: %+v", problems)
			}
			all := append(rotatedEvents(t, rotated), current...)
			if n := countOf(scanIDsOf(all), saved.Scan.ID); n != 2 {
				t.Errorf("%d events of scan %s in the log and its rotated copy, want 2", n, saved.Scan.ID)
			}
			for _, id := range ids {
				n := 0
				for _, e := range all {
					if e.ContainerID == id {
						n++
					}
				}
				if n != 1 {
					t.Errorf("container %s: %d events across the rotation, want its discovery once", inventory.ShortID(id), n)
				}
			}
		})
	}
}

// rotatedEvents reads the rotated copy at path, or path.gz.
func rotatedEvents(t *testing.T, path string) []event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		raw, gerr := os.ReadFile(path + ".gz")
		if gerr != nil {
			t.Fatalf("no rotated log: %v; %v", err, gerr)
		}
		z, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(z)
		data = b.Bytes()
	}
	tmp := filepath.Join(t.TempDir(), "rotated.jsonl")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	evs, _, problems, err := readEvents(tmp, 0)
	if err != nil || len(problems) > 0 {
		t.Fatalf("rotated log: %v %v", err, problems)
	}
	return evs
}

// waitFor polls cond until it holds, or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("waited %v for %s", d, what)
}

// TestEventsConcurrentWriter: another ds01 tool appending to the log all
// the while (as the lab's Python writers do: open, append a line, close)
// loses no line, and neither do the scans.
func TestEventsConcurrentWriter(t *testing.T) {
	w := newOutboxWorld(t)
	w.settled()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			f, err := os.OpenFile(w.s.events, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			line := fmt.Sprintf(`{"timestamp":%q,"event_type":"container.started","user":"alice","source":%q,"details":{"n":%d,"pad":%q},"schema_version":"1"}`+"\n",
				inventory.FormatTimestamp(time.Now()), outboxOtherTool, w.foreign, strings.Repeat("p", 300))
			if _, err := f.WriteString(line); err != nil {
				t.Error(err)
			}
			f.Close()
			w.foreign++
		}
	}()
	var ids []string
	for range 4 {
		ids = append(ids, w.changes(2)...)
		w.s.scan(t)
	}
	close(stop)
	wg.Wait()
	w.s.scan(t)
	w.agree(0, ids...)
	t.Logf("the other tool appended %d lines during the scans", w.foreign)
}

// TestEventsLogUnwritable: a log that cannot be written (a directory where
// it should be; a full disk, ENOSPC from strace) fails the scan with a
// clear error after the save: the events wait in the outbox, the textfile
// says how many, and the first scan that can write the log appends them.
func TestEventsLogUnwritable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(w *outboxWorld) runResult
		undo  func(w *outboxWorld)
		want  string
	}{
		{"not a file", func(w *outboxWorld) runResult {
			os.Rename(w.s.events, w.s.events+".kept")
			os.Mkdir(w.s.events, 0o755)
			return w.s.run(w.t, scanOpts{args: []string{"--textfile-dir", w.s.dir}})
		}, func(w *outboxWorld) {
			os.Remove(w.s.events)
			os.Rename(w.s.events+".kept", w.s.events)
		}, "open event log"},
		{"disk full", func(w *outboxWorld) runResult {
			return w.under(scanOpts{args: []string{"--textfile-dir", w.s.dir}},
				"-e", "trace=write", "-e", "inject=write:error=ENOSPC", "-P", w.s.events)
		}, func(*outboxWorld) {}, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newOutboxWorld(t)
			w.settled()
			ids := w.changes(2)
			r := tc.fault(w)
			if r.code != 1 || !strings.Contains(r.output(), tc.want) || !strings.Contains(r.output(), "events wait in the inventory") {
				t.Fatalf("want exit 1 naming %q and the waiting events:\n%s", tc.want, r)
			}
			if strings.Contains(r.output(), "goroutine ") {
				t.Errorf("a stack trace:\n%s", r)
			}
			saved := w.load()
			if saved.Outbox == nil || len(saved.Outbox.Events) != 2 {
				t.Fatalf("outbox %+v, want the 2 discoveries", saved.Outbox)
			}
			prom, err := os.ReadFile(filepath.Join(w.s.dir, "ds01.prom"))
			if err != nil || !strings.Contains(string(prom), "\nds01_events_unlogged 2\n") {
				t.Errorf("the textfile does not count 2 unlogged events (%v):\n%s", err, prom)
			}
			// Still failing: the next scan keeps them and adds its own.
			w.changes(1)
			if r := tc.fault(w); r.code != 1 {
				t.Fatalf("second faulty scan:\n%s", r)
			}
			if got := w.load().Outbox; got == nil || len(got.Events) != 3 {
				t.Fatalf("outbox after two failed appends: %+v, want 3 events", got)
			}
			tc.undo(w)
			if inv := w.s.scan(t); inv.Outbox == nil {
				t.Fatal("the scan that appended the waiting events saved no outbox for the next to check")
			}
			w.s.scan(t)
			if n := countOf(w.scanIDsIn(), saved.Scan.ID); n != 2 {
				t.Errorf("%d events of the first failed scan, want its 2", n)
			}
			w.agree(0, ids...)
		})
	}
}

// TestEventsOutboxCorrupt: an inventory whose outbox was tampered with is
// corrupt like any other: moved aside, a reset logged, the containers
// discovered afresh; the log and the new inventory still agree.
func TestEventsOutboxCorrupt(t *testing.T) {
	w := newOutboxWorld(t)
	w.settled()
	w.changes(1)
	w.killedAt("fsync,fdatasync", w.s.dir, 1)
	data, err := os.ReadFile(w.s.state)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(data, []byte(`"line":"{`), []byte(`"line":"}{`), 1)
	if bytes.Equal(forged, data) {
		t.Fatal("no outbox line to corrupt")
	}
	if err := os.WriteFile(w.s.state, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	r := workloads(t, w.s.state)
	if r.code == 0 || !strings.Contains(r.output(), "outbox") {
		t.Errorf("ds01-workloads on the corrupt inventory: want a clear error naming the outbox:\n%s", r)
	}
	w.s.scan(t)
	moved, _ := filepath.Glob(w.s.state + ".corrupt-*")
	if len(moved) != 1 {
		t.Errorf("corrupt inventory moved aside as %v, want one file", moved)
	}
	if n := w.s.countType(t, inventory.EventInventoryReset); n != 1 {
		t.Errorf("%d reset events, want 1", n)
	}
	w.s.scan(t)
	w.agree(0)
}
