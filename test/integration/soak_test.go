//go:build integration

package integration

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// churnLoop runs the scanner in the background every period, as the timer
// does, recording each run's start and end.
type churnLoop struct {
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once
	runs  []churnRun
	log   *eventLog
}

func (s *scanner) startLoop(period time.Duration) *churnLoop {
	l := &churnLoop{stopc: make(chan struct{}), done: make(chan struct{}), log: newEventLog(s.events)}
	go func() {
		defer close(l.done)
		for {
			r := s.runPlan(churnClean, l.log)
			l.runs = append(l.runs, r)
			select {
			case <-l.stopc:
				return
			case <-time.After(time.Until(r.start.Add(period))):
			}
		}
	}()
	return l
}

// stop ends the loop once the scan in progress has finished (never killing
// it) and returns every run; false if the loop did not end in time.
func (l *churnLoop) stop() ([]churnRun, bool) {
	l.once.Do(func() { close(l.stopc) })
	select {
	case <-l.done:
		return l.runs, true
	case <-time.After(scanTimeout + 10*time.Second):
		return nil, false
	}
}

// soakScan is one scan of the soak: the inventory it started from and the
// one it saved.
type soakScan struct {
	run        churnRun
	base, snap *churnSnap
}

// TestSoakChurn: while a seeded driver creates, starts, stops and removes
// containers of every origin at random on the private engine, and puts host
// processes on mock GPUs and takes them off, ds01-scan runs every second.
// Ground truth is judged against each scan's window (from before its start
// to after its exit), and only where it is certain:
//
//   - each scan's events are exactly the transitions between the inventory
//     it started from and the one it saved, with its scan_id and base_scan_id;
//   - a container that existed throughout a scan is in that scan's inventory,
//     of its origin's type, in the state it held throughout (if it did); one
//     that did not exist at all during a scan is not there;
//   - a host process on a GPU throughout a scan is pending or a workload;
//     throughout two consecutive scans, a workload; off the GPUs throughout
//     a scan, in neither list;
//   - per container: one discovered event if it existed throughout any scan
//     (at most one in any case), one removed event once removed if it was
//     ever discovered, none while it exists; status changes chain (each
//     "from" is the state last logged), and every change between two certain
//     observations has its event;
//   - per host process: one discovered and one exited event if it was on a
//     GPU throughout two consecutive scans (all are killed before the final
//     scan), at most one of each in any case, in that order; none if at most
//     one scan can have seen it (the transient filter);
//   - no event about a container ID or PID that never existed;
//   - every event line is whole JSON under 4096 bytes;
//   - the final inventory holds exactly `docker ps -a`: IDs and states;
//   - replayed from nothing (inventory.Replay), the whole log gives exactly
//     the final inventory's containers, each with its status, and host
//     processes; every event follows from those before it; no event_id
//     comes twice.
//
// DS01_SOAK_SEED, DS01_SOAK_DURATION (default 1m) and DS01_SOAK_CONTAINERS
// (default 40) set it; the figures go to t.Log and DS01_SOAK_REPORT.
func TestSoakChurn(t *testing.T) {
	s := newChurnScanner(t)
	seed := churnSeed(t)
	duration := churnEnvDuration(t, "DS01_SOAK_DURATION", time.Minute)
	maxMade := churnEnvInt(t, "DS01_SOAK_CONTAINERS", 40)
	churnFitDeadline(t, duration+3*time.Minute)
	t.Logf("seed=%d duration=%v containers≤%d (DS01_SOAK_SEED=%d replays the driver's choices; timing differs)", seed, duration, maxMade, seed)
	w := newChurnWorld(t, "ds01soak", rand.New(rand.NewPCG(seed, 0x50a4)), s.mock)
	t.Cleanup(func() {
		if t.Failed() {
			w.dumpLog(300)
		}
	})
	tl := &churnTally{t: t}

	loop := s.startLoop(time.Second)
	t.Cleanup(func() { loop.stop() })
	for end := time.Now().Add(duration); time.Now().Before(end); {
		w.step(maxMade, 14)
		time.Sleep(time.Duration(50+w.rng.IntN(450)) * time.Millisecond)
	}
	runs, ok := loop.stop()
	if !ok {
		t.Fatalf("the scan loop did not stop within %v", scanTimeout+10*time.Second)
	}
	w.dropAllProcs()
	runs = append(runs, s.runPlan(churnClean, loop.log))

	var scans []soakScan
	var all []event
	var cur *churnSnap
	torn := 0
	for i, r := range runs {
		all = append(all, r.events...)
		for _, p := range r.problems {
			torn++
			tl.errorf("event log after scan %d: %s", i, p.text)
		}
		sc := soakScan{run: r, base: cur}
		switch {
		case r.err != nil:
			tl.errorf("scan %d: %v\n%s", i, r.err, r.out)
		case r.loadErr != nil:
			tl.errorf("scan %d: %v", i, r.loadErr)
		case cur != nil && r.inv.Scan.ID == cur.ID:
			tl.errorf("scan %d exited 0 but saved no inventory", i)
		default:
			sc.snap = churnSnapOf(r.inv)
			cur = sc.snap
		}
		scans = append(scans, sc)
	}
	if cur == nil {
		t.Fatal("no scan saved an inventory")
	}
	scanIndex := map[string]int{}
	for i, sc := range scans {
		if sc.snap != nil {
			scanIndex[sc.snap.ID] = i
		}
	}

	for i, sc := range scans {
		soakCheckEvents(tl, i, sc)
		soakCheckTruth(tl, w, scans, i)
	}

	// Per workload, over the whole log.
	bySubject := map[string][]event{}
	logged := 0
	for _, e := range all {
		subject := churnTransOf(e).Subject
		bySubject[subject] = append(bySubject[subject], e)
		if w.subjects[subject] {
			logged++
		}
	}
	expected := 0
	for _, c := range w.containers {
		expected += soakCheckContainer(tl, c, scans, scanIndex, bySubject[churnContainerSubject(c.id)])
	}
	for _, p := range w.procs {
		expected += soakCheckProc(tl, p, scans, bySubject[churnProcSubject(p.key)])
	}
	churnCheckSubjects(tl, w, all)
	churnCheckFinal(tl, w, cur)
	torn += churnCheckWholeLog(tl, s.events, len(all), nil)
	replayed := churnCheckReplay(tl, s, 0)

	churnReport(t, fmt.Sprintf("soak: seed=%d scans=%d containers_churned=%d host_processes=%d transitions_expected=%d transitions_logged=%d "+
		"phantom=%d lost=%d wrong_status=%d duplicates=%d inconsistent=%d false=%d torn=%d",
		seed, len(scans), len(w.containers), len(w.procs), expected, logged,
		tl.phantoms, tl.lost, replayed.wrongStatus, replayed.duplicates, replayed.inconsistent, tl.spurious, torn))
}

// soakCheckEvents: a scan's events are exactly the transitions between the
// inventory it started from and the one it saved.
func soakCheckEvents(tl *churnTally, i int, sc soakScan) {
	tl.t.Helper()
	if sc.snap == nil {
		for _, e := range sc.run.events {
			tl.phantom("scan %d saved no inventory but logged %s", i, e.line)
		}
		return
	}
	var got []churnTrans
	for _, e := range sc.run.events {
		if e.ScanID != sc.snap.ID || e.BaseScanID != sc.base.id() {
			tl.falsely("scan %d (%s, base %q) logged an event with scan_id %s base_scan_id %q", i, sc.snap.ID, sc.base.id(), e.ScanID, e.BaseScanID)
		}
		got = append(got, churnTransOf(e))
	}
	have, want := churnBagOf(got), churnBagOf(churnDiff(sc.base, sc.snap))
	for _, x := range want.minus(have) {
		tl.lose("scan %d: the inventory records %s but the log does not", i, x)
	}
	for _, x := range have.minus(want) {
		tl.phantom("scan %d: the log says %s but the inventory does not change so", i, x)
	}
}

// soakCheckTruth compares scan i's inventory with what surely held
// throughout its window.
func soakCheckTruth(tl *churnTally, w *churnWorld, scans []soakScan, i int) {
	tl.t.Helper()
	sc := scans[i]
	if sc.snap == nil {
		return
	}
	s, e := sc.run.start, sc.run.end
	window := fmt.Sprintf("scan %d [%s,%s]", i, churnClock(s), churnClock(e))
	if sc.snap.DockerOK {
		for _, c := range w.containers {
			got, in := sc.snap.Containers[c.id]
			switch {
			case c.existsOver(s, e) && !in:
				tl.lose("%s: container missing from the inventory: %s", window, c.history())
			case c.existsOver(s, e):
				if st, ok := c.stableOver(s, e); ok && got.Status != st {
					tl.falsely("%s: container recorded %s, but it was %s throughout: %s", window, got.Status, st, c.history())
				}
				if got.Type != c.wantType || got.Access != c.wantAccess {
					tl.falsely("%s: container recorded as %s with GPU access %s, want %s and %s: %s", window, got.Type, got.Access, c.wantType, c.wantAccess, c.history())
				}
			case in && c.absentOver(s, e):
				tl.falsely("%s: the inventory holds a container that did not exist: %s", window, c.history())
			}
		}
		for id, c := range sc.snap.Containers {
			if !w.existed(id) && !c.foreign() {
				tl.falsely("%s: the inventory holds container %s, which never existed", window, inventory.ShortID(id))
			}
		}
	}
	if !sc.snap.NVMLOK {
		return
	}
	var prev *soakScan
	if i > 0 && scans[i-1].snap != nil && scans[i-1].snap == sc.base && sc.base.NVMLOK {
		prev = &scans[i-1]
	}
	for _, p := range w.procs {
		_, known := sc.snap.Hosts[p.key]
		_, pending := sc.snap.Pending[p.key]
		switch {
		case p.onOver(s, e) && !known && !pending:
			tl.lose("%s: host process on a GPU throughout the scan is neither pending nor a workload: %s", window, p.history())
		case p.onOver(s, e) && !known && prev != nil && p.onOver(prev.run.start, prev.run.end):
			tl.lose("%s: host process on a GPU throughout two scans is not a workload: %s", window, p.history())
		case (known || pending) && p.offOver(s, e):
			tl.falsely("%s: host process off the GPUs throughout the scan is listed: %s", window, p.history())
		}
	}
	for _, m := range []map[inventory.ProcessKey]string{sc.snap.Hosts, sc.snap.Pending} {
		for k := range m {
			if k.PID == churnGhostPID {
				tl.falsely("%s: the inventory lists PID %d, which cannot exist", window, k.PID)
			}
		}
	}
}

// soakCheckContainer checks one container's events over the whole log and
// returns how many transitions the truth required of it.
func soakCheckContainer(tl *churnTally, c *churnContainer, scans []soakScan, scanIndex map[string]int, evs []event) int {
	tl.t.Helper()
	expected := 0
	covered := false
	for _, sc := range scans {
		if sc.snap != nil && sc.snap.DockerOK && c.existsOver(sc.run.start, sc.run.end) {
			covered = true
		}
	}
	count := map[string]int{}
	for _, e := range evs {
		count[e.EventType]++
	}
	disc, rem := count[discovered], count[removed]
	if covered {
		expected++
		if disc == 0 {
			tl.lose("container existed throughout a scan but was never discovered: %s", c.history())
		}
	}
	if disc > 1 {
		tl.falsely("container discovered %d times: %s", disc, c.history())
	}
	switch {
	case c.gone && (covered || disc > 0):
		expected++
		if rem == 0 {
			tl.lose("container discovered, then removed before the final scan, but no removed event: %s", c.history())
		}
	case !c.gone && rem > 0:
		tl.falsely("removed event for a container that still exists: %s", c.history())
	}
	if rem > 1 {
		tl.falsely("container removed %d times: %s", rem, c.history())
	}

	// The logged chain of states: each change starts where the last ended.
	status := ""
	for _, e := range evs {
		switch {
		case status == "removed":
			tl.falsely("event after the container's removal: %s", e.line)
		case e.EventType == discovered:
			status = e.Status
		case status == "":
			tl.falsely("event before the container's discovery: %s", e.line)
		case e.EventType == statusChanged:
			if e.From != status {
				tl.falsely("status change from %q, but the last logged status is %q: %s", e.From, status, e.line)
			}
			status = e.To
		case e.EventType == removed:
			status = "removed"
		}
	}

	// Every change between two certain observations has its event.
	last, lastAt := "", -1
	for i, sc := range scans {
		if sc.snap == nil || !sc.snap.DockerOK {
			continue
		}
		st, ok := c.stableOver(sc.run.start, sc.run.end)
		if !ok || !c.existsOver(sc.run.start, sc.run.end) {
			continue
		}
		if last != "" && st != last {
			expected++
			to := ""
			for _, e := range evs {
				if j, ok := scanIndex[e.ScanID]; ok && e.EventType == statusChanged && j > lastAt && j <= i {
					to = e.To
				}
			}
			if to != st {
				tl.lose("container went %s (scan %d) → %s (scan %d); the last status event between says %q: %s", last, lastAt, st, i, to, c.history())
			}
		}
		last, lastAt = st, i
	}
	return expected
}

// soakCheckProc checks one host process's events and returns how many
// transitions the truth required of it.
func soakCheckProc(tl *churnTally, p *churnProc, scans []soakScan, evs []event) int {
	tl.t.Helper()
	covered := false
	for i := 1; i < len(scans); i++ {
		a, b := scans[i-1], scans[i]
		if a.snap != nil && b.snap != nil && b.base == a.snap && a.snap.NVMLOK && b.snap.NVMLOK &&
			p.onOver(a.run.start, a.run.end) && p.onOver(b.run.start, b.run.end) {
			covered = true
		}
	}
	var types []string
	count := map[string]int{}
	for _, e := range evs {
		types = append(types, e.EventType)
		count[e.EventType]++
	}
	disc, exited := count[inventory.EventHostProcessDiscovered], count[inventory.EventHostProcessExited]
	expected := 0
	if covered {
		expected += 2
	}
	// A process that at most one scan can have seen on a GPU is transient:
	// it must never become a workload.
	seenBy := 0
	for _, sc := range scans {
		if !p.offOver(sc.run.start, sc.run.end) {
			seenBy++
		}
	}
	switch {
	case seenBy <= 1 && len(evs) > 0:
		tl.falsely("host process that at most one scan can have seen has events %v: %s", types, p.history())
	case covered && (disc == 0 || exited == 0):
		tl.lose("host process on a GPU throughout two scans, then killed: events %v, want discovered and exited: %s", types, p.history())
	case disc == 1 && exited == 0:
		expected++
		tl.lose("host process discovered, then killed before the final scan, but no exited event: %s", p.history())
	case disc > 1 || exited > 1 || len(evs) > disc+exited:
		tl.falsely("host process events %v, want at most one discovered and one exited: %s", types, p.history())
	case exited > disc || (len(types) == 2 && types[0] != inventory.EventHostProcessDiscovered):
		tl.falsely("host process events %v: exited without or before discovered: %s", types, p.history())
	}
	return expected
}
