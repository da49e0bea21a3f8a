//go:build integration

package integration

// What TestSoakChurn and TestKillAnywhere share: the settings they read from
// the environment, their figures, a check of the whole event log, and
// inventory snapshots with the transitions one snapshot implies
// over another. The driver and the scanner runner are in
// churn_driver_helpers_test.go and churn_scanner_helpers_test.go.

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

const (
	// churnGhostPID is listed by the mock NVML on every scan but can never
	// exist: Linux PIDs stop at PID_MAX_LIMIT, 2^22. No event may name it.
	churnGhostPID = 1<<22 + 17
	// churnProcArg makes the driver's host GPU processes recognisable in
	// events: "sleep 3601".
	churnProcArg = "3601"
	// churnMaxMessages caps the failures printed one by one.
	churnMaxMessages = 40
)

// churnSeed returns DS01_SOAK_SEED, or a seed from the clock.
func churnSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("DS01_SOAK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DS01_SOAK_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

func churnEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func churnEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration (90s, 5m)", name, s)
	}
	return d
}

// churnFitDeadline fails at once when the test cannot finish before go
// test's -timeout, rather than being killed halfway without its figures.
func churnFitDeadline(t *testing.T, need time.Duration) {
	t.Helper()
	if dl, ok := t.Deadline(); ok && time.Until(dl) < need {
		t.Fatalf("this run needs about %v but go test's -timeout leaves %v: raise -timeout",
			need.Round(time.Second), time.Until(dl).Round(time.Second))
	}
}

// churnReport logs a figures line and appends it to DS01_SOAK_REPORT.
func churnReport(t *testing.T, line string) {
	t.Helper()
	t.Log(line)
	path := os.Getenv("DS01_SOAK_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Errorf("DS01_SOAK_REPORT: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Errorf("DS01_SOAK_REPORT: %v", err)
	}
}

// churnTally counts lost and false transitions, phantom events and other
// failures, printing the first few of them one by one.
type churnTally struct {
	t        *testing.T
	lost     int
	spurious int
	phantoms int
	printed  int
}

func (c *churnTally) errorf(format string, args ...any) {
	c.t.Helper()
	c.printed++
	switch {
	case c.printed <= churnMaxMessages:
		c.t.Errorf(format, args...)
	case c.printed == churnMaxMessages+1:
		c.t.Errorf("… further failures are counted, not shown")
	}
}

// lose records a transition that happened (or that the inventory recorded)
// and is missing from the event log, or a workload missing from an inventory.
func (c *churnTally) lose(format string, args ...any) {
	c.t.Helper()
	c.lost++
	c.errorf("LOST: "+format, args...)
}

// falsely records an event or an inventory entry that the truth does not
// allow.
func (c *churnTally) falsely(format string, args ...any) {
	c.t.Helper()
	c.spurious++
	c.errorf("FALSE: "+format, args...)
}

// phantom records an event that no saved inventory accounts for: of a scan
// whose inventory was never saved, or beyond the transitions of its scan;
// or, the log replayed, a workload that the inventory does not hold.
func (c *churnTally) phantom(format string, args ...any) {
	c.t.Helper()
	c.phantoms++
	c.errorf("PHANTOM: "+format, args...)
}

// churnEngineContainers returns every container on the engine: full ID →
// state, as `docker ps -a` says.
func churnEngineContainers() (map[string]string, error) {
	out, err := dockerErr("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.Lines(out) {
		id, state, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			return nil, fmt.Errorf("docker ps printed %q", line)
		}
		m[id] = state
	}
	return m, nil
}

// churnStartTicks reads field 22 of /proc/<pid>/stat: with the PID, the key
// ds01-scan gives a host process.
func churnStartTicks(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// ---- Events -----------------------------------------------------------------

// churnCheckWholeLog reads the event log from its start, line by line, as
// its consumers do, and fails on every line that is not a whole event but
// one of the torn lines allowed (offset → size without the newline): the
// unfinished line of a writer killed mid-append, which must stand alone on
// its line (the next scan that saves appends that event again, whole).
// Read run by run, a torn line that the next writer continued hides: the
// next run's first event starts right after it, on the same line, and a
// line reader loses both. want is how many events the runs appended.
func churnCheckWholeLog(tl *churnTally, path string, want int, torn map[int64]int) (bad int) {
	tl.t.Helper()
	evs, _, problems, err := readEvents(path, 0)
	if err != nil {
		tl.t.Fatal(err)
	}
	for _, p := range problems {
		if size, ok := torn[p.offset]; ok && (p.size == size+1 || p.torn && p.size == size) {
			continue
		}
		bad++
		tl.errorf("the event log read whole, as its consumers read it: %s", p.text)
	}
	if len(evs) < want {
		tl.lose("%d of the %d events the scans appended cannot be read from the log line by line", want-len(evs), want)
	}
	return bad
}

// churnEventID returns an event's details.event_id, "" when it has none.
func churnEventID(e event) string {
	id, _ := e.Details["event_id"].(string)
	return id
}

// churnReplayFigures are what churnCheckReplay finds besides phantoms and
// losses, which it counts in the tally.
type churnReplayFigures struct{ wrongStatus, duplicates, inconsistent int }

// churnCheckReplay replays the whole event log from nothing, as a consumer
// would (inventory.Replay), and compares it with the inventory on disk:
// what the log says exists must be what the inventory holds (a phantom or
// a loss otherwise), each container with its status; every event must
// follow from those before it; no event_id may come twice, nor an event
// lack one. torn is how many torn lines the log holds, which a reader
// skips as lines that do not parse.
func churnCheckReplay(tl *churnTally, s *scanner, torn int) churnReplayFigures {
	tl.t.Helper()
	var fig churnReplayFigures
	inv, err := inventory.Load(s.state)
	if err != nil {
		tl.t.Fatalf("load the final inventory: %v", err)
	}
	f, err := os.Open(s.events)
	if err != nil {
		tl.t.Fatal(err)
	}
	defer f.Close()
	r, err := inventory.Replay(f)
	if err != nil {
		tl.t.Fatalf("replay the event log: %v", err)
	}
	d := r.Compare(inv)
	for _, p := range d.Phantom {
		tl.phantom("the log replayed holds %s, which the final inventory does not", p)
	}
	for _, l := range d.Lost {
		tl.lose("the final inventory holds %s, which the log replayed does not", l)
	}
	for _, w := range d.WrongStatus {
		fig.wrongStatus++
		tl.errorf("WRONG STATUS: the log replayed and the final inventory disagree: %s", w)
	}
	for _, x := range r.Inconsistent {
		fig.inconsistent++
		tl.errorf("INCONSISTENT: the log replayed from its start: %s", x)
	}
	// Repeats counted from the whole lines, as the harness reads them, and
	// held against what Replay dropped.
	evs, _, _, err := readEvents(s.events, 0)
	if err != nil {
		tl.t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		switch id := churnEventID(e); {
		case id == "":
			tl.errorf("event without details.event_id: %s", e.line)
		case seen[id]:
			fig.duplicates++
			tl.errorf("DUPLICATE: event_id %s comes again: %s", id, e.line)
		default:
			seen[id] = true
		}
	}
	if r.Repeats != fig.duplicates {
		tl.errorf("inventory.Replay dropped %d repeated events; the log holds %d", r.Repeats, fig.duplicates)
	}
	if r.Unparsable != torn {
		tl.errorf("inventory.Replay skipped %d lines that do not parse; the log holds %d torn lines", r.Unparsable, torn)
	}
	return fig
}

// ---- Snapshots and transitions ---------------------------------------------

type churnCont struct{ Status, Type, Access, Runtime, Undeclared string }

// foreign reports whether the inventory knows the container only through a
// GPU process's cgroup: another runtime's, or another engine's (on a shared
// machine, a device holder in a container outside the test). The test
// judges only what its own engine lists.
func (c churnCont) foreign() bool { return c.Type == inventory.TypeUnknown && c.Runtime != "" }

// churnSnap is what the checks read of one saved inventory.
type churnSnap struct {
	ID               string
	DockerOK, NVMLOK bool
	Sources          map[string]bool
	Containers       map[string]churnCont
	Hosts, Pending   map[inventory.ProcessKey]string // → command
}

func churnSnapOf(inv *inventory.Inventory) *churnSnap {
	s := &churnSnap{
		ID: inv.Scan.ID, Sources: map[string]bool{}, Containers: map[string]churnCont{},
		Hosts: map[inventory.ProcessKey]string{}, Pending: map[inventory.ProcessKey]string{},
	}
	for name, st := range inv.Sources {
		s.Sources[name] = st.OK
	}
	s.DockerOK, s.NVMLOK = s.Sources[inventory.SourceDocker], s.Sources[inventory.SourceNVML]
	for _, c := range inv.Containers {
		s.Containers[c.ID] = churnCont{Status: c.Status, Type: c.Type, Access: c.GPUAccess, Runtime: c.Runtime,
			Undeclared: strings.Join(c.GPUsUndeclared, ",")}
	}
	for _, p := range inv.HostProcesses {
		s.Hosts[p.Key()] = p.Command
	}
	for _, p := range inv.PendingProcesses {
		s.Pending[p.Key()] = p.Command
	}
	return s
}

func (s *churnSnap) id() string {
	if s == nil {
		return ""
	}
	return s.ID
}

// churnTrans is one transition, as the event log states it or as two
// snapshots imply it.
type churnTrans struct{ Kind, Subject, From, To string }

func (x churnTrans) String() string {
	s := strings.TrimPrefix(x.Kind, "detection.") + " " + churnShort(x.Subject)
	if x.From != "" || x.To != "" {
		s += " " + x.From + "→" + x.To
	}
	return s
}

func churnContainerSubject(id string) string { return "container " + id }

func churnProcSubject(k inventory.ProcessKey) string {
	return fmt.Sprintf("process %d/%d", k.PID, k.StartTicks)
}

func churnShort(subject string) string {
	if id, ok := strings.CutPrefix(subject, "container "); ok {
		return "container " + inventory.ShortID(id)
	}
	return subject
}

// churnTransOf is the transition an event states.
func churnTransOf(e event) churnTrans {
	switch e.EventType {
	case inventory.EventContainerDiscovered, inventory.EventContainerExited:
		return churnTrans{Kind: e.EventType, Subject: churnContainerSubject(e.ContainerID)}
	case inventory.EventContainerStatusChanged:
		return churnTrans{Kind: e.EventType, Subject: churnContainerSubject(e.ContainerID), From: e.From, To: e.To}
	case inventory.EventContainerClassification:
		return churnTrans{Kind: e.EventType + ":" + e.Changed, Subject: churnContainerSubject(e.ContainerID), From: e.From, To: e.To}
	case inventory.EventHostProcessDiscovered, inventory.EventHostProcessExited:
		return churnTrans{Kind: e.EventType, Subject: churnProcSubject(inventory.ProcessKey{PID: e.PID, StartTicks: e.StartTicks})}
	case inventory.EventSourceUnavailable, inventory.EventSourceRecovered:
		return churnTrans{Kind: e.EventType, Subject: "source " + e.SourceName}
	}
	return churnTrans{Kind: e.EventType, Subject: "scan " + e.ScanID}
}

// churnDiff is every transition the DESIGN's reconcile rules make between
// two saved inventories: a container new to next is discovered, one gone is
// removed, a changed status or type is one event each, and so is a container
// starting or stopping GPU use outside what it declared (or moving to other
// such GPUs); a host process in next's workloads but not
// prev's is discovered, and the reverse has exited; a source going down or
// coming back is one event.
func churnDiff(prev, next *churnSnap) []churnTrans {
	if prev == nil {
		prev = &churnSnap{}
	}
	var out []churnTrans
	for name, ok := range next.Sources {
		old, known := prev.Sources[name]
		switch {
		case ok && known && !old:
			out = append(out, churnTrans{Kind: inventory.EventSourceRecovered, Subject: "source " + name})
		case !ok && (!known || old):
			out = append(out, churnTrans{Kind: inventory.EventSourceUnavailable, Subject: "source " + name})
		}
	}
	for id, c := range next.Containers {
		subject := churnContainerSubject(id)
		p, ok := prev.Containers[id]
		if !ok {
			out = append(out, churnTrans{Kind: inventory.EventContainerDiscovered, Subject: subject})
			continue
		}
		if p.Type != c.Type {
			out = append(out, churnTrans{Kind: inventory.EventContainerClassification + ":type", Subject: subject, From: p.Type, To: c.Type})
		}
		wasU, isU := p.Access == inventory.AccessUndeclared, c.Access == inventory.AccessUndeclared
		if wasU != isU || isU && p.Undeclared != c.Undeclared {
			out = append(out, churnTrans{Kind: inventory.EventContainerClassification + ":gpu_access", Subject: subject, From: p.Access, To: c.Access})
		}
		if p.Status != c.Status {
			out = append(out, churnTrans{Kind: inventory.EventContainerStatusChanged, Subject: subject, From: p.Status, To: c.Status})
		}
	}
	for id := range prev.Containers {
		if _, ok := next.Containers[id]; !ok {
			out = append(out, churnTrans{Kind: inventory.EventContainerExited, Subject: churnContainerSubject(id)})
		}
	}
	for k := range next.Hosts {
		if _, ok := prev.Hosts[k]; !ok {
			out = append(out, churnTrans{Kind: inventory.EventHostProcessDiscovered, Subject: churnProcSubject(k)})
		}
	}
	for k := range prev.Hosts {
		if _, ok := next.Hosts[k]; !ok {
			out = append(out, churnTrans{Kind: inventory.EventHostProcessExited, Subject: churnProcSubject(k)})
		}
	}
	return out
}

// churnBag is a multiset of transitions.
type churnBag map[churnTrans]int

func churnBagOf(ts []churnTrans) churnBag {
	b := churnBag{}
	for _, x := range ts {
		b[x]++
	}
	return b
}

// minus returns what b holds beyond other, sorted for stable messages.
func (b churnBag) minus(other churnBag) []churnTrans {
	var out []churnTrans
	for x, n := range b {
		for range n - other[x] {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
