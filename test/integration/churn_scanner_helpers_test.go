//go:build integration

package integration

// How TestSoakChurn and TestKillAnywhere run the nvmlmock ds01-scan: plain,
// under strace held at every write, flush and rename, or killed by strace on
// entering a chosen call; always through scanner.command.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// newChurnScanner is the nvmlmock ds01-scan on private directories: the
// state directory holds nothing but what the scanner writes there.
func newChurnScanner(t *testing.T) *scanner {
	t.Helper()
	s := newGPUScanner(t)
	s.events = filepath.Join(t.TempDir(), "events.jsonl")
	s.mock = filepath.Join(t.TempDir(), "nvml.json")
	return s
}

// churnRun is one run of the scanner.
type churnRun struct {
	start, end time.Time
	// killed: the SIGKILL found the scanner still running.
	killed bool
	// err is a failure other than the kill: a non-zero exit, a timeout.
	err error
	out string
	// events are the lines the run appended to the log; problems the ones
	// that were not whole events.
	events   []event
	problems []eventProblem
	// inv is the inventory on disk after the run; loadErr why there is none.
	inv     *inventory.Inventory
	loadErr error
}

// churnStretched lists the calls strace holds the scanner at in a stretched
// run: every write to a file or socket, every flush, rename, unlink and
// truncation. On a fast disk the steps of a save are microseconds apart and
// a timed kill almost never lands between them; held churnStretch at each,
// they are as likely a place to die as any other.
const (
	churnStretched = "write,pwrite64,writev,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,ftruncate"
	churnStretch   = "20ms"
)

// churnStraceWorks returns strace's path when it is installed and may trace
// here.
func churnStraceWorks() (string, bool) {
	path, err := exec.LookPath("strace")
	if err != nil {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = exec.CommandContext(ctx, path, "-f", "-qq", "-o", "/dev/null", "-e", "inject=write:delay_enter=1ms", "true").Run()
	return path, err == nil
}

// churnPlan says how to run the scanner and how it is to die.
type churnPlan struct {
	// kill, when >= 0, is how long after the start the scanner gets SIGKILL.
	kill time.Duration
	// strace, when set, runs the scanner under strace with straceArgs; a
	// timed SIGKILL then goes to the scanner, not strace.
	strace     string
	straceArgs []string
}

// churnClean is a run left to finish.
var churnClean = churnPlan{kill: -1}

// churnStretchedPlan is a run held at every call of churnStretched and
// killed after kill.
func churnStretchedPlan(strace string, kill time.Duration) churnPlan {
	return churnPlan{kill: kill, strace: strace, straceArgs: []string{"--seccomp-bpf", "-e", "trace=" + churnStretched,
		"-e", "inject=" + churnStretched + ":delay_enter=" + churnStretch}}
}

// churnAtCall is a run that strace kills on entering the when-th call (per
// thread) of calls that touches one of paths: before that call takes effect.
// (Without --seccomp-bpf: with it, strace 6.1 does not inject into calls
// filtered by -P.)
func churnAtCall(strace, calls string, when int, paths ...string) churnPlan {
	args := []string{"-e", "trace=" + calls, "-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", calls, when)}
	for _, p := range paths {
		args = append(args, "-P", p)
	}
	return churnPlan{kill: -1, strace: strace, straceArgs: args}
}

// runPlan runs one scan as plan says and reads what it appended to log.
func (s *scanner) runPlan(plan churnPlan, log *eventLog) churnRun {
	var o scanOpts
	if plan.strace != "" {
		o.prefix = append(append([]string{plan.strace, "-f", "-qq", "-o", "/dev/null"}, plan.straceArgs...), "--")
	}
	p := s.command(o)
	var r churnRun
	if err := p.start(); err != nil {
		r.start, r.end, r.err = p.began, time.Now(), err
		return r
	}
	if plan.kill >= 0 {
		target := p.cmd.Process
		if plan.strace != "" {
			var err error
			if target, err = churnTracee(p.cmd.Process.Pid, s.bin); err != nil {
				p.cmd.Process.Kill()
				p.wait()
				r.start, r.end, r.err = p.began, time.Now(), err
				return r
			}
			defer target.Release()
		}
		time.Sleep(plan.kill)
		// A scanner that has exited ignores this: the handle is a pidfd,
		// so a reused PID is never hit.
		_ = target.Signal(syscall.SIGKILL)
	}
	res := p.wait()
	r.start, r.end, r.out = res.start, res.end, res.output()
	switch {
	case res.timedOut:
		r.err = fmt.Errorf("scan ran past %v and was killed", scanTimeout)
	case (plan.kill >= 0 || plan.strace != "") && res.signal == syscall.SIGKILL:
		// strace dies of the signal that killed the scanner.
		r.killed = true
	case !res.ok() && plan.strace != "" && churnStraceTrouble(r.out):
		// strace itself lost hold of the scanner (PTRACE_LISTEN EIO when a
		// SIGKILL races the scanner's exit, under load) and exited 1: a
		// tracer failure, not the scanner's. Its fate is read from what it
		// said; the inventory and log checks still judge what it left.
		switch {
		case strings.Contains(r.out, `msg="scan complete"`):
		case plan.kill >= 0:
			r.killed = true
		default:
			r.err = fmt.Errorf("strace: %s", res.status())
		}
	case !res.ok():
		r.err = fmt.Errorf("ds01-scan: %s", res.status())
	}
	var rerr error
	if r.events, r.problems, rerr = log.next(); rerr != nil {
		r.problems = append(r.problems, eventProblem{text: "read event log: " + rerr.Error()})
	}
	r.inv, r.loadErr = inventory.Load(s.state)
	return r
}

// churnStraceTrouble reports whether strace complained about itself and the
// scanner reported no failure of its own.
func churnStraceTrouble(out string) bool {
	trouble := false
	for line := range strings.Lines(out) {
		switch {
		case strings.HasPrefix(line, "ds01-scan: "):
			return false
		case strings.Contains(line, "strace: "):
			trouble = true
		}
	}
	return trouble
}

// churnTracee returns the process in which strace (pid) runs bin, once it
// runs there. strace forks short-lived children of its own at startup to
// probe the kernel, so the child is known by its executable.
func churnTracee(pid int, bin string) (*os.Process, error) {
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return nil, err
	}
	path := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("strace's children: %w", err)
		}
		for _, f := range strings.Fields(string(data)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %q", path, data)
			}
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", child)); err == nil && exe == want {
				return os.FindProcess(child)
			}
		}
	}
	return nil, fmt.Errorf("strace did not start %s within 10s", bin)
}

// tempFiles lists the state directory's leftovers of an interrupted save, and
// anything there that should not be.
func (s *scanner) tempFiles() (temps, strays []string, err error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case name == "workload-inventory.json" || name == ".scan.lock":
		case strings.HasPrefix(name, ".workload-inventory.json.tmp-") && e.Type().IsRegular():
			temps = append(temps, name)
		default:
			strays = append(strays, name)
		}
	}
	return temps, strays, nil
}
