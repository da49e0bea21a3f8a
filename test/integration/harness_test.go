//go:build integration

// Package integration runs the real ds01-scan binary against a real, private
// Docker engine started by hack/with-engine.sh, with containers made by the
// real tools that make them on a lab server (docker, docker-compose, the
// devcontainer CLI) and real users made with useradd.
//
// Every command the suite runs of its own (the scanner, ds01-workloads,
// docker) goes through proc: its output captured, its time taken, and a
// timeout, so that nothing a test hands a binary can hang the run.
package integration

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// env is what hack/with-engine.sh and hack/test.sh hand the suite.
var env struct {
	dockerHost   string
	engineDir    string
	image        string
	bin          string
	devcontainer string
}

func TestMain(m *testing.M) {
	env.dockerHost = os.Getenv("DS01_TEST_DOCKER_HOST")
	env.engineDir = os.Getenv("DS01_TEST_ENGINE_DIR")
	env.image = os.Getenv("DS01_TEST_IMAGE")
	env.bin = os.Getenv("DS01_TEST_BIN")
	env.devcontainer = os.Getenv("DS01_TEST_DEVCONTAINER")
	if env.dockerHost == "" || env.image == "" || env.bin == "" {
		fmt.Fprintln(os.Stderr, "!!! integration suite NOT RUN: no private engine (run it through `make test`)")
		if os.Getenv("CI") == "true" {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mustHave fails under CI, and skips loudly elsewhere, when a part is missing.
func mustHave(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run: %s (CI=true)", what)
	}
	t.Skipf("!!! SKIPPED: %s", what)
}

// ---- Commands ---------------------------------------------------------------

// proc is one run of a command: its output captured, killed if it outlives
// its timeout.
type proc struct {
	cmd            *exec.Cmd
	ctx            context.Context
	cancel         context.CancelFunc
	timeout        time.Duration
	stdout, stderr bytes.Buffer
	began          time.Time
}

// newProc builds argv, with extraEnv added to the test's environment.
func newProc(timeout time.Duration, extraEnv []string, argv ...string) *proc {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	p := &proc{ctx: ctx, cancel: cancel, timeout: timeout}
	p.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), extraEnv...)
	// A child that keeps the output open (strace's, docker's) must not
	// hold Wait past the kill.
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	return p
}

// start starts the command. After an error there is nothing to wait for.
func (p *proc) start() error {
	p.began = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.cancel()
		return err
	}
	return nil
}

// wait waits for the started command to end and says how it ended.
func (p *proc) wait() runResult {
	err := p.cmd.Wait()
	r := runResult{
		stdout: p.stdout.Bytes(), stderr: p.stderr.Bytes(), start: p.began, end: time.Now(),
		code: -1, timedOut: p.ctx.Err() != nil, timeout: p.timeout,
	}
	p.cancel()
	if st := p.cmd.ProcessState; st != nil {
		r.code = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		r.err = err
	}
	return r
}

// run starts the command and waits for it.
func (p *proc) run() runResult {
	if err := p.start(); err != nil {
		return runResult{start: p.began, end: time.Now(), code: -1, timeout: p.timeout, err: err}
	}
	return p.wait()
}

// runResult is how one run of a command ended, and what it printed.
type runResult struct {
	stdout, stderr []byte
	start, end     time.Time
	// code is the exit status: -1 when a signal ended the process, or when
	// it never ran.
	code int
	// signal is the signal that ended the process, if one did.
	signal syscall.Signal
	// timedOut: it outlived its timeout and was killed.
	timedOut bool
	timeout  time.Duration
	// err is why there is no exit status to go by: the command could not
	// start, or its output stayed open past the kill.
	err error
}

func (r runResult) took() time.Duration { return r.end.Sub(r.start) }

// ok reports whether the command ran to its end and exited 0.
func (r runResult) ok() bool { return r.err == nil && !r.timedOut && r.code == 0 }

// output is what the command printed: stdout, then stderr.
func (r runResult) output() string {
	out := string(r.stdout)
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out + string(r.stderr)
}

// status says how the command ended, as exec's errors do.
func (r runResult) status() string {
	switch {
	case r.timedOut:
		return fmt.Sprintf("still running after %v: killed", r.timeout)
	case r.err != nil:
		return r.err.Error()
	case r.signal != 0:
		return "signal: " + r.signal.String()
	}
	return fmt.Sprintf("exit status %d", r.code)
}

func (r runResult) String() string {
	return fmt.Sprintf("%s after %s\nstdout: %q\nstderr: %q", r.status(), r.took().Round(time.Millisecond), clipTail(r.stdout), clipTail(r.stderr))
}

// clipTail keeps the end of a long output, where a failure says why.
func clipTail(b []byte) string {
	const keep = 4000
	if len(b) > keep {
		return "…" + string(b[len(b)-keep:])
	}
	return string(b)
}

// mustHaveRun fails the test when r did not run to its end: a command that
// could not start, or that was still running at its timeout (blocked?).
func mustHaveRun(t *testing.T, what string, r runResult) runResult {
	t.Helper()
	switch {
	case r.timedOut:
		t.Fatalf("%s: still running after %v (blocked?)\n%s", what, r.timeout, r)
	case r.err != nil:
		t.Fatalf("%s: %v\n%s", what, r.err, r)
	}
	return r
}

// ---- Docker -----------------------------------------------------------------

// dockerTimeout bounds one docker CLI call: a hung engine fails the call,
// not the whole run.
const dockerTimeout = 90 * time.Second

// dockerErr runs the docker CLI against the private engine and returns its
// stdout, trimmed.
func dockerErr(args ...string) (string, error) {
	r := newProc(dockerTimeout, []string{"DOCKER_HOST=" + env.dockerHost}, append([]string{"docker"}, args...)...).run()
	if !r.ok() {
		return "", fmt.Errorf("docker %s: %s: %s", strings.Join(args, " "), r.status(), strings.TrimSpace(string(r.stderr)))
	}
	return strings.TrimSpace(string(r.stdout)), nil
}

// docker is dockerErr failing the test on an error.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// container creates a container with docker and removes it at cleanup.
func container(t *testing.T, verb string, args ...string) string {
	t.Helper()
	id := docker(t, append([]string{verb}, args...)...)
	id = lastLine(id)
	if !inventory.ValidContainerID(id) {
		t.Fatalf("docker %s printed %q, not a container ID", verb, id)
	}
	t.Cleanup(func() { dockerErr("rm", "-f", id) })
	return id
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// ---- Users ------------------------------------------------------------------

// testUser is a real user made with useradd, with a home directory.
type testUser struct {
	name     string
	uid, gid int
	home     string
}

// newUser makes the user afresh (removing one left by an earlier run) and
// removes it at cleanup.
func newUser(t *testing.T, name string) testUser {
	t.Helper()
	exec.Command("userdel", "-r", name).Run()
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", "-r", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return testUser{name: name, uid: uid, gid: gid, home: u.HomeDir}
}

// ownedDir makes a directory under the user's home, owned by the user.
func (u testUser) ownedDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(u.home, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// credential makes a process started with it run as the user, in the
// user's group.
func (u testUser) credential() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}}
}

// startAs starts argv as u (nil: as the test), kills it at cleanup, and
// returns its PID.
func startAs(t *testing.T, u *testUser, argv ...string) int {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if u != nil {
		cmd.SysProcAttr = u.credential()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// loadTestImage pipes the test image from the private engine into load
// (another engine's or runtime's load command), so that nothing reaches a
// registry.
func loadTestImage(t *testing.T, load *exec.Cmd) {
	t.Helper()
	save := exec.Command("docker", "-H", env.dockerHost, "save", env.image)
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := load.CombinedOutput()
	save.Wait()
	if err != nil {
		t.Fatalf("load the test image (%s): %v: %s", strings.Join(load.Args, " "), err, out)
	}
}

// ---- The scanner ------------------------------------------------------------

// scanTimeout bounds one run of the scanner: its own budget is 20 s, and
// nothing a test hands it may make it block.
const scanTimeout = 60 * time.Second

// scanner is a ds01-scan binary and the private files one test gives it.
type scanner struct {
	bin string
	// dir is the --state-dir, holding the inventory at state. A scanner
	// without one runs bare: no flags but a run's own, as an admin types it.
	dir, state string
	// events is the --events-file.
	events string
	// mock is the file the nvmlmock build's NVML reports from
	// (DS01_NVML_MOCK); "" for the production build.
	mock string
}

// newScanner is the production ds01-scan on a private state directory,
// which holds its event log too.
func newScanner(t *testing.T) *scanner {
	dir := t.TempDir()
	return &scanner{
		bin: filepath.Join(env.bin, "ds01-scan"), dir: dir,
		state: filepath.Join(dir, "workload-inventory.json"), events: filepath.Join(dir, "events.jsonl"),
	}
}

// scanOpts is how one run differs from a plain scan of the private engine.
type scanOpts struct {
	// host is the --docker-host; "" is the private engine.
	host string
	// args follow the scanner's own flags.
	args []string
	// env is added to the test's environment.
	env []string
	// prefix is a command the scanner runs under: setpriv … --, strace … --.
	prefix []string
	// as is the user it runs as; nil runs it as the test does (root).
	as *testUser
	// timeout is scanTimeout when 0.
	timeout time.Duration
}

// command builds the one command line every run of the scanner uses: the
// prefix, the binary, its state directory, event log and engine, then the
// run's flags; the mock NVML file in its environment when it has one.
func (s *scanner) command(o scanOpts) *proc {
	argv := append(slices.Clone(o.prefix), s.bin)
	if s.dir != "" {
		argv = append(argv, "--state-dir", s.dir, "--events-file", s.events, "--docker-host", cmp.Or(o.host, env.dockerHost))
	}
	argv = append(argv, o.args...)
	extraEnv := slices.Clone(o.env)
	if s.mock != "" {
		extraEnv = append(extraEnv, "DS01_NVML_MOCK="+s.mock)
	}
	p := newProc(cmp.Or(o.timeout, scanTimeout), extraEnv, argv...)
	if o.as != nil {
		p.cmd.SysProcAttr = o.as.credential()
	}
	return p
}

// run runs the scanner once, failing the test if it cannot start or is
// still running after its timeout: nothing may block it.
func (s *scanner) run(t *testing.T, o scanOpts) runResult {
	t.Helper()
	return mustHaveRun(t, filepath.Base(s.bin)+" "+strings.Join(o.args, " "), s.command(o).run())
}

// mustScan runs a scan that must exit 0 and leave an inventory that loads.
func (s *scanner) mustScan(t *testing.T, o scanOpts) (*inventory.Inventory, runResult) {
	t.Helper()
	r := s.run(t, o)
	if r.code != 0 {
		t.Fatalf("ds01-scan failed:\n%s", r)
	}
	inv, err := inventory.Load(s.state)
	if err != nil {
		t.Fatalf("load inventory after scan: %v\n%s", err, r)
	}
	return inv, r
}

// scan runs a plain scan that must succeed and returns the inventory it
// wrote.
func (s *scanner) scan(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, _ := s.mustScan(t, scanOpts{})
	return inv
}

// eventsFor returns the types of the events about one container, in order.
func (s *scanner) eventsFor(t *testing.T, id string) []string {
	t.Helper()
	var types []string
	for _, e := range s.allEvents(t) {
		if e.ContainerID == id {
			types = append(types, e.EventType)
		}
	}
	return types
}

// ---- The query tool ---------------------------------------------------------

// workloadsTimeout bounds one run of ds01-workloads, which must never block.
const workloadsTimeout = 10 * time.Second

// workloads runs ds01-workloads on the inventory at path, as on a terminal
// of the default width without colour settings, failing the test if it
// cannot start or is still running after workloadsTimeout.
func workloads(t *testing.T, path string, args ...string) runResult {
	t.Helper()
	argv := append([]string{filepath.Join(env.bin, "ds01-workloads"), "--inventory", path}, args...)
	r := newProc(workloadsTimeout, []string{"NO_COLOR=", "COLUMNS="}, argv...).run()
	return mustHaveRun(t, "ds01-workloads "+strings.Join(args, " "), r)
}

// ---- Inventories ------------------------------------------------------------

func find(inv *inventory.Inventory, id string) *inventory.Container {
	for i := range inv.Containers {
		if inv.Containers[i].ID == id {
			return &inv.Containers[i]
		}
	}
	return nil
}

func mustFind(t *testing.T, inv *inventory.Inventory, id string) *inventory.Container {
	t.Helper()
	c := find(inv, id)
	if c == nil {
		t.Fatalf("container %s not in the inventory", id[:12])
	}
	return c
}
