//go:build integration

package integration

// The driver of TestSoakChurn and TestKillAnywhere: it creates, starts,
// stops and removes containers of every origin on the private engine and
// puts host processes on mock GPUs and takes them off, at random, keeping
// the ground truth of what it did with timestamps.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// churnPhase is one state of a container and the driver operation that led to
// it: called at begin, returned at end.
type churnPhase struct {
	state      string
	begin, end time.Time
}

// churnContainer is a container the driver made, with its whole history.
type churnContainer struct {
	id, name, origin, wantType, wantAccess string
	// gpu: made with --gpus all on an engine without the NVIDIA hook, so it
	// can be created but never started.
	gpu                bool
	hist               []churnPhase
	gone               bool
	goneBegin, goneEnd time.Time
}

func (c *churnContainer) state() string {
	if c.gone {
		return "removed"
	}
	return c.hist[len(c.hist)-1].state
}

// existsOver reports whether the container surely existed from s to e: made
// before s, and not yet being removed at e.
func (c *churnContainer) existsOver(s, e time.Time) bool {
	return !c.hist[0].end.After(s) && (!c.gone || !e.After(c.goneBegin))
}

// absentOver reports whether the container surely did not exist from s to e.
func (c *churnContainer) absentOver(s, e time.Time) bool {
	return e.Before(c.hist[0].begin) || (c.gone && s.After(c.goneEnd))
}

// stableOver returns the state the container surely held from s to e.
func (c *churnContainer) stableOver(s, e time.Time) (string, bool) {
	for i, p := range c.hist {
		if p.end.After(s) {
			return "", false
		}
		var next time.Time
		switch {
		case i+1 < len(c.hist):
			next = c.hist[i+1].begin
		case c.gone:
			next = c.goneBegin
		default:
			return p.state, true
		}
		if !e.After(next) {
			return p.state, true
		}
	}
	return "", false
}

func (c *churnContainer) history() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s):", inventory.ShortID(c.id), c.name, c.origin)
	for _, p := range c.hist {
		fmt.Fprintf(&b, " %s@[%s,%s]", p.state, churnClock(p.begin), churnClock(p.end))
	}
	if c.gone {
		fmt.Fprintf(&b, " removed@[%s,%s]", churnClock(c.goneBegin), churnClock(c.goneEnd))
	}
	return b.String()
}

func churnClock(t time.Time) string { return t.Format("15:04:05.000000") }

// churnProc is a host process the driver put on a mock GPU.
type churnProc struct {
	cmd *exec.Cmd
	key inventory.ProcessKey
	gpu int
	// The mock NVML file that first listed it was renamed into place
	// between onBegin and onEnd; the one that dropped it between offBegin
	// and offEnd, before the process was killed.
	onBegin, onEnd   time.Time
	off              bool
	offBegin, offEnd time.Time
}

// onOver reports whether the process was surely on a GPU from s to e.
func (p *churnProc) onOver(s, e time.Time) bool {
	return !p.onEnd.After(s) && (!p.off || !e.After(p.offBegin))
}

// offOver reports whether the process was surely on no GPU from s to e.
func (p *churnProc) offOver(s, e time.Time) bool {
	return e.Before(p.onBegin) || (p.off && s.After(p.offEnd))
}

func (p *churnProc) history() string {
	s := fmt.Sprintf("pid %d ticks %d on GPU %d@[%s,%s]", p.key.PID, p.key.StartTicks, p.gpu, churnClock(p.onBegin), churnClock(p.onEnd))
	if p.off {
		s += fmt.Sprintf(" off@[%s,%s]", churnClock(p.offBegin), churnClock(p.offEnd))
	}
	return s
}

type churnOrigin struct{ name, typ string }

// churnOrigins are the origins the driver makes, each as a lab would.
var churnOrigins = []churnOrigin{
	{"raw", inventory.TypeRawDocker},
	{"ds01", inventory.TypeDS01Managed},
	{"compose", inventory.TypeDockerCompose},
	{"devcontainer", inventory.TypeDevcontainer},
	{"gpus", inventory.TypeRawDocker},
}

// churnWorld is the driver: it changes the engine and the mock GPUs at
// random and keeps the ground truth, with timestamps, of what it did.
type churnWorld struct {
	t          *testing.T
	rng        *rand.Rand
	prefix     string
	user       testUser
	mock       string
	composeDir string
	devDir     string
	containers []*churnContainer
	byID       map[string]*churnContainer
	procs      []*churnProc
	// subjects are the transition subjects of what the driver made.
	subjects map[string]bool
	// preexisting holds the containers the engine had before the driver
	// started: ID → state.
	preexisting map[string]string
	log         []string
}

// newChurnWorld makes the driver's user and folders, records what the engine
// holds already, writes an empty mock NVML file, and removes every container
// and process it makes at cleanup.
func newChurnWorld(t *testing.T, prefix string, rng *rand.Rand, mock string) *churnWorld {
	t.Helper()
	w := &churnWorld{
		t: t, rng: rng, prefix: fmt.Sprintf("%s-%d", prefix, os.Getpid()), mock: mock,
		byID: map[string]*churnContainer{}, subjects: map[string]bool{},
	}
	// Unique per run: another run of the suite may be using the machine.
	w.user = newUser(t, w.prefix)
	w.composeDir = w.user.ownedDir(t, "stack")
	w.devDir = w.user.ownedDir(t, "project")
	before, err := churnEngineContainers()
	if err != nil {
		t.Fatal(err)
	}
	w.preexisting = before
	t.Cleanup(w.cleanup)
	if err := w.writeMock(); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *churnWorld) cleanup() {
	for _, p := range w.procs {
		if !p.off {
			p.off = true
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	}
	// By name as well as by ID: a create that failed may still have made
	// its container.
	ids := []string{"rm", "-f"}
	if out, err := dockerErr("ps", "-aq", "--no-trunc", "--filter", "name=^"+w.prefix+"-"); err == nil {
		ids = append(ids, strings.Fields(out)...)
	}
	for _, c := range w.containers {
		if !c.gone && !slices.Contains(ids, c.id) {
			ids = append(ids, c.id)
		}
	}
	if len(ids) > 2 {
		if _, err := dockerErr(ids...); err != nil {
			w.t.Errorf("cleanup: %v", err)
		}
	}
}

func (w *churnWorld) logf(begin time.Time, format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("%s +%4dms %s", churnClock(begin), time.Since(begin).Milliseconds(), fmt.Sprintf(format, args...)))
}

// mine reports whether the driver made the container.
func (w *churnWorld) mine(id string) bool { return w.byID[id] != nil }

// existed reports whether the container was made by the driver or was on the
// engine before it started.
func (w *churnWorld) existed(id string) bool {
	_, before := w.preexisting[id]
	return before || w.mine(id)
}

// expect returns the inventory that a scan against base must save while the
// world stands still as it is now: every container of the engine in its
// state (the driver's of the type and GPU access their origin gives), and
// the driver's processes on a GPU, pending on their first sighting.
func (w *churnWorld) expect(base *churnSnap) *churnSnap {
	s := &churnSnap{
		DockerOK: true, NVMLOK: true,
		Sources:    map[string]bool{inventory.SourceDocker: true, inventory.SourceNVML: true, inventory.SourceProcfs: true},
		Containers: map[string]churnCont{},
		Hosts:      map[inventory.ProcessKey]string{}, Pending: map[inventory.ProcessKey]string{},
	}
	for _, c := range w.live() {
		s.Containers[c.id] = churnCont{Status: c.state(), Type: c.wantType, Access: c.wantAccess}
	}
	for id, state := range w.preexisting {
		s.Containers[id] = churnCont{Status: state}
		if base != nil {
			if bc, ok := base.Containers[id]; ok {
				s.Containers[id] = bc
			}
		}
	}
	for _, p := range w.onGPU() {
		seen := false
		if base != nil {
			_, known := base.Hosts[p.key]
			_, pending := base.Pending[p.key]
			seen = known || pending
		}
		if seen {
			s.Hosts[p.key] = "sleep " + churnProcArg
		} else {
			s.Pending[p.key] = "sleep " + churnProcArg
		}
	}
	return s
}

func (w *churnWorld) live() []*churnContainer {
	var out []*churnContainer
	for _, c := range w.containers {
		if !c.gone {
			out = append(out, c)
		}
	}
	return out
}

func (w *churnWorld) onGPU() []*churnProc {
	var out []*churnProc
	for _, p := range w.procs {
		if !p.off {
			out = append(out, p)
		}
	}
	return out
}

// create makes a container of origin o, started (docker run) or not.
func (w *churnWorld) create(o churnOrigin, run bool) *churnContainer {
	w.t.Helper()
	name := fmt.Sprintf("%s-%d", w.prefix, len(w.containers))
	args := []string{"create"}
	if run && o.name != "gpus" {
		args = []string{"run", "-d"}
	}
	args = append(args, "--init", "--name", name)
	switch o.name {
	case "ds01":
		args = append(args, "--label", "ds01.managed=true", "--label", "ds01.user="+w.user.name)
	case "compose":
		args = append(args, "--label", "com.docker.compose.project="+w.prefix, "--label", "com.docker.compose.service=svc"+strconv.Itoa(len(w.containers)),
			"--label", "com.docker.compose.project.working_dir="+w.composeDir)
	case "devcontainer":
		args = append(args, "--label", "devcontainer.local_folder="+w.devDir)
	case "gpus":
		args = append(args, "--gpus", "all")
	}
	args = append(args, env.image, "sleep", "3600")
	begin := time.Now()
	out, err := dockerErr(args...)
	end := time.Now()
	if err != nil {
		w.t.Fatalf("driver: %v", err)
	}
	id := lastLine(out)
	if !inventory.ValidContainerID(id) {
		w.t.Fatalf("driver: docker %s printed %q, not a container ID", args[0], id)
	}
	state := "created"
	if args[0] == "run" {
		state = "running"
	}
	c := &churnContainer{id: id, name: name, origin: o.name, wantType: o.typ, wantAccess: inventory.AccessNone, gpu: o.name == "gpus",
		hist: []churnPhase{{state: state, begin: begin, end: end}}}
	if c.gpu {
		c.wantAccess = inventory.AccessDeclared
	}
	w.containers = append(w.containers, c)
	w.byID[id] = c
	w.subjects[churnContainerSubject(id)] = true
	w.logf(begin, "%s %s %s (%s) → %s", args[0], inventory.ShortID(id), name, o.name, state)
	return c
}

// change runs docker verb on c and records the state it leads to.
func (w *churnWorld) change(c *churnContainer, state string, verb ...string) {
	w.t.Helper()
	begin := time.Now()
	_, err := dockerErr(append(verb, c.id)...)
	end := time.Now()
	if err != nil {
		w.t.Fatalf("driver: %v\n%s", err, c.history())
	}
	if state == "removed" {
		c.gone, c.goneBegin, c.goneEnd = true, begin, end
	} else {
		c.hist = append(c.hist, churnPhase{state: state, begin: begin, end: end})
	}
	w.logf(begin, "%s %s → %s", verb[0], inventory.ShortID(c.id), state)
}

// addProc starts a host process of the driver's user and lists it on a mock
// GPU.
func (w *churnWorld) addProc() {
	w.t.Helper()
	cmd := exec.Command("sleep", churnProcArg)
	cmd.SysProcAttr = w.user.credential()
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("driver: start a host process: %v", err)
	}
	ticks, err := churnStartTicks(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		w.t.Fatalf("driver: %v", err)
	}
	p := &churnProc{cmd: cmd, key: inventory.ProcessKey{PID: cmd.Process.Pid, StartTicks: ticks}, gpu: w.rng.IntN(8)}
	w.procs = append(w.procs, p)
	w.subjects[churnProcSubject(p.key)] = true
	p.onBegin = time.Now()
	if err := w.writeMock(); err != nil {
		w.t.Fatal(err)
	}
	p.onEnd = time.Now()
	w.logf(p.onBegin, "gpu+ pid %d/%d on GPU %d", p.key.PID, p.key.StartTicks, p.gpu)
}

// dropProc takes the process off the mock GPUs, then kills it.
func (w *churnWorld) dropProc(p *churnProc) {
	w.t.Helper()
	p.off, p.offBegin = true, time.Now()
	if err := w.writeMock(); err != nil {
		w.t.Fatal(err)
	}
	p.offEnd = time.Now()
	p.cmd.Process.Kill()
	p.cmd.Wait()
	w.logf(p.offBegin, "gpu- pid %d/%d", p.key.PID, p.key.StartTicks)
}

func (w *churnWorld) dropAllProcs() {
	for _, p := range w.onGPU() {
		w.dropProc(p)
	}
}

// writeMock replaces the mock NVML file atomically (temp file and rename):
// the ghost PID and every process on a GPU.
func (w *churnWorld) writeMock() error {
	type proc struct {
		GPU         int    `json:"gpu"`
		PID         int    `json:"pid"`
		MemoryBytes uint64 `json:"memory_bytes"`
		Kind        string `json:"kind"`
	}
	doc := struct {
		Processes []proc `json:"processes"`
	}{Processes: []proc{{GPU: 7, PID: churnGhostPID, MemoryBytes: 1 << 20, Kind: "compute"}}}
	for _, p := range w.onGPU() {
		doc.Processes = append(doc.Processes, proc{GPU: p.gpu, PID: p.key.PID, MemoryBytes: uint64(1+p.gpu) << 28, Kind: "compute"})
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", w.mock, len(w.log))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write mock NVML file: %w", err)
	}
	if err := os.Rename(tmp, w.mock); err != nil {
		return fmt.Errorf("rename mock NVML file: %w", err)
	}
	return nil
}

// step makes one random change: create, start, stop or remove a container,
// or put a host process on a GPU or take one off. maxMade bounds the
// containers made in all; maxLive those alive at once.
func (w *churnWorld) step(maxMade, maxLive int) {
	w.t.Helper()
	live := w.live()
	var startable, running []*churnContainer
	for _, c := range live {
		switch s := c.state(); {
		case s == "running":
			running = append(running, c)
		case !c.gpu:
			startable = append(startable, c)
		}
	}
	type op struct {
		weight int
		do     func()
	}
	pick := func(cs []*churnContainer) *churnContainer { return cs[w.rng.IntN(len(cs))] }
	var ops []op
	if len(w.containers) < maxMade && len(live) < maxLive {
		ops = append(ops, op{4, func() { w.create(churnOrigins[w.rng.IntN(len(churnOrigins))], w.rng.IntN(3) > 0) }})
	}
	if len(startable) > 0 {
		ops = append(ops, op{2, func() { w.change(pick(startable), "running", "start") }})
	}
	if len(running) > 0 {
		ops = append(ops, op{2, func() { w.change(pick(running), "exited", "stop", "-t", "5") }})
	}
	if len(live) > 0 {
		weight := 2
		if len(live) >= maxLive-2 || len(w.containers) >= maxMade {
			weight = 4
		}
		ops = append(ops, op{weight, func() { w.change(pick(live), "removed", "rm", "-f") }})
	}
	if on := w.onGPU(); len(on) < 4 {
		ops = append(ops, op{1, w.addProc})
	}
	if on := w.onGPU(); len(on) > 0 {
		ops = append(ops, op{1, func() { w.dropProc(on[w.rng.IntN(len(on))]) }})
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := w.rng.IntN(total)
	for _, o := range ops {
		if n < o.weight {
			o.do()
			return
		}
		n -= o.weight
	}
}

// dumpLog prints the driver's log (its tail) for a failed test.
func (w *churnWorld) dumpLog(limit int) {
	w.t.Helper()
	lines := w.log
	if len(lines) > limit {
		w.t.Logf("driver log: %d earlier lines not shown", len(lines)-limit)
		lines = lines[len(lines)-limit:]
	}
	w.t.Logf("driver log:\n%s", strings.Join(lines, "\n"))
}

// churnCheckFinal checks that the final inventory holds exactly the engine's
// containers, each with the engine's state.
func churnCheckFinal(tl *churnTally, w *churnWorld, final *churnSnap) {
	tl.t.Helper()
	engine, err := churnEngineContainers()
	if err != nil {
		tl.t.Fatal(err)
	}
	for id, state := range engine {
		c, ok := final.Containers[id]
		switch {
		case !ok:
			tl.lose("final inventory lacks container %s (%s on the engine)", inventory.ShortID(id), state)
		case c.Status != state:
			tl.falsely("final inventory: container %s is %s, the engine says %s", inventory.ShortID(id), c.Status, state)
		}
	}
	for id, c := range final.Containers {
		if _, ok := engine[id]; !ok && !c.foreign() {
			hist := "not made by the driver"
			if c := w.byID[id]; c != nil {
				hist = c.history()
			}
			tl.falsely("final inventory holds container %s that the engine does not: %s", inventory.ShortID(id), hist)
		}
	}
}

// churnCheckSubjects fails on events about things that never existed: a
// container of the engine that neither the driver nor anyone before it
// made (one known through a process cgroup only is another runtime's or
// another engine's, and not judged), the ghost PID, or a process with the
// driver's command line but not the PID and start time of one the driver
// ran.
func churnCheckSubjects(tl *churnTally, w *churnWorld, evs []event) {
	tl.t.Helper()
	// PIDs wrap around: two of the driver's processes may share one, told
	// apart by their start time.
	keys := map[inventory.ProcessKey]bool{}
	for _, p := range w.procs {
		keys[p.key] = true
	}
	for _, e := range evs {
		k := inventory.ProcessKey{PID: e.PID, StartTicks: e.StartTicks}
		switch {
		case e.ContainerID != "" && !w.existed(e.ContainerID) && e.Runtime == "":
			tl.falsely("event about container %s that never existed: %s", inventory.ShortID(e.ContainerID), e.line)
		case e.PID == churnGhostPID:
			tl.falsely("event about PID %d, which cannot exist: %s", e.PID, e.line)
		case e.PID != 0 && !keys[k] && e.Command == "sleep "+churnProcArg:
			tl.falsely("event about process %d/%d that the driver never ran: %s", e.PID, e.StartTicks, e.line)
		}
	}
}
