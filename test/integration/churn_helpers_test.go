//go:build integration

package integration

// What TestSoakChurn and TestKillAnywhere share: the settings they read from
// the environment, their figures, an event log reader that insists on whole
// lines, and inventory snapshots with the transitions one snapshot implies
// over another. The driver and the scanner runner are in
// churn_driver_helpers_test.go and churn_scanner_helpers_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

const (
	// churnScanTimeout bounds one scanner run: its own budget is 20 s.
	churnScanTimeout = 60 * time.Second
	// churnDockerTimeout bounds one docker CLI call of the driver.
	churnDockerTimeout = 90 * time.Second
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

// churnTally counts lost and false transitions and other failures, printing
// the first few of them one by one.
type churnTally struct {
	t        *testing.T
	lost     int
	spurious int
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

// churnDocker runs the docker CLI against the private engine, bounded in
// time.
func churnDocker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), churnDockerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+env.dockerHost)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// churnEngineContainers returns every container on the engine: full ID →
// state, as `docker ps -a` says.
func churnEngineContainers() (map[string]string, error) {
	out, err := churnDocker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}")
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

// churnEvent is the part of one event line the checks read.
type churnEvent struct {
	Type        string
	ScanID      string
	BaseScanID  string // "" when absent: the scan had no previous inventory
	ContainerID string
	PID         int
	StartTicks  uint64
	From, To    string
	Changed     string
	Status      string
	Source      string
	Command     string
	Runtime     string
	line        string
}

var churnStamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// churnProblem is a line of the event log that is not a whole event.
type churnProblem struct {
	// offset is where the line starts in the log, size its length with
	// its newline, if any.
	offset int64
	size   int
	// torn: the last line of the log, without its newline.
	torn bool
	text string
}

// churnLog reads the event log as the scans append to it.
type churnLog struct {
	path   string
	offset int64
	// tornAt is where the log's unfinished last line starts; -1 if none.
	tornAt int64
}

func newChurnLog(path string) *churnLog { return &churnLog{path: path, tornAt: -1} }

// next reads what was appended since the last call. A writer that finds the
// log torn starts its first event on a fresh line: that newline ends the
// torn line and is no part of what it appended.
func (l *churnLog) next() (evs []churnEvent, problems []churnProblem, err error) {
	skip := int64(0)
	if l.tornAt >= 0 {
		if b, err := churnReadAt(l.path, l.offset, 1); err == nil && len(b) == 1 && b[0] == '\n' {
			skip = 1
		}
	}
	evs, next, problems, err := churnReadEvents(l.path, l.offset+skip)
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

func churnReadAt(path string, offset int64, n int) ([]byte, error) {
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

// churnReadEvents reads path from offset on. Every line must be one whole
// JSON event, under inventory.MaxEventLine with its newline, and the file
// must end with a newline; each violation is one problem. next is the
// offset of the end of the file.
func churnReadEvents(path string, offset int64) (evs []churnEvent, next int64, problems []churnProblem, err error) {
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
		p := churnProblem{offset: at, size: len(line)}
		at += int64(len(line))
		switch {
		case len(line) == 0:
			continue
		case line[len(line)-1] != '\n':
			p.torn, p.text = true, fmt.Sprintf("torn line at byte %d (no newline at the end of the log): %q", p.offset, churnClip(line))
			problems = append(problems, p)
			continue
		case len(line) >= inventory.MaxEventLine:
			p.text = fmt.Sprintf("line at byte %d of %d bytes, not under %d: %q", p.offset, len(line), inventory.MaxEventLine, churnClip(line))
			problems = append(problems, p)
		}
		e, perr := churnParseEvent(line)
		if perr != nil {
			p.text = fmt.Sprintf("line at byte %d: %v: %q", p.offset, perr, churnClip(line))
			problems = append(problems, p)
			continue
		}
		evs = append(evs, e)
	}
	return evs, next, problems, nil
}

func churnClip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func churnParseEvent(line []byte) (churnEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return churnEvent{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return churnEvent{}, errors.New("more than one JSON value on the line")
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	e := churnEvent{Type: str(m, "event_type"), line: strings.TrimSpace(string(line))}
	if !churnStamp.MatchString(str(m, "timestamp")) || str(m, "source") != inventory.EventSource ||
		str(m, "schema_version") != inventory.EventSchemaVersion || e.Type == "" {
		return e, errors.New("bad envelope")
	}
	d, ok := m["details"].(map[string]any)
	if !ok {
		return e, errors.New("no details object")
	}
	e.ScanID, e.BaseScanID = str(d, "scan_id"), str(d, "base_scan_id")
	if e.ScanID == "" {
		return e, errors.New("no details.scan_id")
	}
	e.ContainerID, e.From, e.To, e.Changed = str(d, "container_id"), str(d, "from"), str(d, "to"), str(d, "changed")
	e.Status, e.Source, e.Command, e.Runtime = str(d, "status"), str(d, "source"), str(d, "command"), str(d, "runtime")
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

// churnCheckWholeLog reads the event log from its start, line by line, as
// its consumers do, and fails on every line that is not a whole event but
// one of the torn lines allowed (offset → size without the newline): the
// unfinished line of a writer killed mid-append, which must stand alone on
// its line. Read run by run, a torn line that the next writer continued
// hides: the next run's first event starts right after it, on the same
// line, and a line reader loses both. want is how many events the runs
// appended.
func churnCheckWholeLog(tl *churnTally, path string, want int, torn map[int64]int) (bad int) {
	tl.t.Helper()
	evs, _, problems, err := churnReadEvents(path, 0)
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

// ---- Snapshots and transitions ---------------------------------------------

type churnCont struct{ Status, Type, Access, Runtime string }

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
		s.Containers[c.ID] = churnCont{Status: c.Status, Type: c.Type, Access: c.GPUAccess, Runtime: c.Runtime}
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
func churnTransOf(e churnEvent) churnTrans {
	switch e.Type {
	case inventory.EventContainerDiscovered, inventory.EventContainerRemoved:
		return churnTrans{Kind: e.Type, Subject: churnContainerSubject(e.ContainerID)}
	case inventory.EventContainerStatusChanged:
		return churnTrans{Kind: e.Type, Subject: churnContainerSubject(e.ContainerID), From: e.From, To: e.To}
	case inventory.EventContainerClassification:
		return churnTrans{Kind: e.Type + ":" + e.Changed, Subject: churnContainerSubject(e.ContainerID), From: e.From, To: e.To}
	case inventory.EventHostProcessDiscovered, inventory.EventHostProcessExited:
		return churnTrans{Kind: e.Type, Subject: churnProcSubject(inventory.ProcessKey{PID: e.PID, StartTicks: e.StartTicks})}
	case inventory.EventSourceUnavailable, inventory.EventSourceRecovered:
		return churnTrans{Kind: e.Type, Subject: "source " + e.Source}
	}
	return churnTrans{Kind: e.Type, Subject: "scan " + e.ScanID}
}

// churnDiff is every transition the DESIGN's reconcile rules make between
// two saved inventories: a container new to next is discovered, one gone is
// removed, a changed status or type is one event each, and so is a container
// turning to undeclared GPU use; a host process in next's workloads but not
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
		if c.Access == inventory.AccessUndeclared && p.Access != inventory.AccessUndeclared {
			out = append(out, churnTrans{Kind: inventory.EventContainerClassification + ":gpu_access", Subject: subject, From: p.Access, To: c.Access})
		}
		if p.Status != c.Status {
			out = append(out, churnTrans{Kind: inventory.EventContainerStatusChanged, Subject: subject, From: p.Status, To: c.Status})
		}
	}
	for id := range prev.Containers {
		if _, ok := next.Containers[id]; !ok {
			out = append(out, churnTrans{Kind: inventory.EventContainerRemoved, Subject: churnContainerSubject(id)})
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
