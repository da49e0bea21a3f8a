package main

// Tests of the built binary: how it is linked, what it imports, what it
// opens, and how it behaves for an unprivileged user and on a real terminal.

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// module is this module's import path.
const module = "github.com/ds01-project/ds01"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	// binDir holds the binary; TestMain removes it.
	binDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds ds01-workloads as the Makefile does (CGO_ENABLED=0), once,
// into a directory every user can read so that it can run as nobody.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "ds01-workloads-test"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(binDir, 0o755); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ds01-workloads")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// goList lists the packages the command links, with env added.
func goList(t *testing.T, env ...string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	return strings.Fields(string(out))
}

// TestBinaryIsStatic: the binary is built without cgo and needs no dynamic
// loader, and nothing it imports would link cgo even where cgo is on.
func TestBinaryIsStatic(t *testing.T) {
	bin := binary(t)
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\s+build\s+CGO_ENABLED=0$`).Match(out) {
		t.Errorf("go version -m does not say CGO_ENABLED=0:\n%s", out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	for _, pkg := range goList(t, "CGO_ENABLED=1") {
		if pkg == "runtime/cgo" {
			t.Errorf("with cgo enabled the command would link runtime/cgo: an import needs cgo")
		}
	}
}

// TestBinaryImports: the query tool links pkg/inventory and nothing else of
// this module (but internal/gctune and internal/jsondec, which import only
// the standard library): no Docker client, no NVML, no detection or
// attribution code.
func TestBinaryImports(t *testing.T) {
	forbidden := []string{"github.com/moby/", "github.com/docker/", "github.com/NVIDIA/", "go-nvml", module + "/pkg/detect", module + "/pkg/attribution"}
	deps := goList(t)
	for _, pkg := range deps {
		if strings.HasPrefix(pkg, module+"/") && pkg != module+"/cmd/ds01-workloads" && pkg != module+"/pkg/inventory" &&
			pkg != module+"/internal/gctune" && pkg != module+"/internal/jsondec" {
			t.Errorf("links %s: only pkg/inventory (and internal/gctune, internal/jsondec) of this module is allowed", pkg)
		}
		for _, f := range forbidden {
			if strings.Contains(pkg, f) {
				t.Errorf("links %s", pkg)
			}
		}
	}
	if !strings.Contains(strings.Join(deps, " "), module+"/pkg/inventory") {
		t.Errorf("go list -deps does not list pkg/inventory: %v", deps)
	}
}

// runtimeFiles are the files the Go runtime itself reads at start: the huge
// page size and the cgroup CPU limit (GOMAXPROCS).
var runtimeFiles = regexp.MustCompile(`^(/sys/kernel/mm/transparent_hugepage/|/proc/self/(cgroup|mountinfo)$|/sys/fs/cgroup/)`)

// TestBinaryOpensOnlyInventory runs the binary under strace: the only file
// it opens beyond what the Go runtime reads is the inventory, and it makes
// no socket, connects nowhere and runs nothing.
func TestBinaryOpensOnlyInventory(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("strace is not installed; CI must not skip this test (apt-get install strace)")
		}
		t.Skip("strace is not installed (apt-get install strace)")
	}
	bin := binary(t)
	inv, err := filepath.Abs(fixedInventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--inventory", inv, "--all", "--wide"},
		{"--inventory", inv, "--json"},
		{"--inventory", inv, "--concepts"},
	} {
		log := filepath.Join(t.TempDir(), "strace.log")
		cmd := exec.Command(strace, append([]string{"-f", "-qq", "-o", log,
			"-e", "trace=open,openat,openat2,creat,socket,connect,execve,execveat", bin}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("strace %s %v: %v\n%s", bin, args, err, out)
		}
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		calls := regexp.MustCompile(`(?m)^\d+\s+(\w+)\((?:AT_FDCWD, |\d+, )?"?([^",)]*)`).FindAllStringSubmatch(string(data), -1)
		opened, execs := 0, 0
		for _, c := range calls {
			switch call, path := c[1], c[2]; {
			case strings.HasPrefix(call, "exec"):
				if execs++; path != bin {
					t.Errorf("%v: runs %s", args, path)
				}
			case call == "socket" || call == "connect":
				t.Errorf("%v: %s(%s): the query tool talks to nothing", args, call, path)
			case path == inv:
				opened++
			case !runtimeFiles.MatchString(path):
				t.Errorf("%v: opens %s", args, path)
			}
		}
		if opened != 1 || execs != 1 {
			t.Errorf("%v: opened the inventory %d times and ran %d programs, want 1 and 1; strace:\n%s", args, opened, execs, data)
		}
	}
}

// TestBinaryUnreadableInventory runs the binary as nobody on an inventory
// only root can read: one line that says so, exit 1.
func TestBinaryUnreadableInventory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a command as another user")
	}
	bin := binary(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(fixedInventory)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "workload-inventory.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	run := func(path string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "--inventory", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	code, stdout, stderr := run(path)
	if code != exitFailed || stdout != "" || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, path) || !strings.Contains(stderr, "permission denied") {
		t.Errorf("as nobody: exit %d, stdout %q, stderr %q; want 1 and one line saying permission denied", code, stdout, stderr)
	}
	// The same user reads a world-readable copy: the test is about the mode.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(path); code != exitOK {
		t.Errorf("as nobody on a 0644 inventory: exit %d, stderr %q", code, stderr)
	}
}

// pty is a pseudo-terminal pair opened with /dev/ptmx, so that the tests
// need nothing beyond golang.org/x/sys.
type pty struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer
	seen          int // how much of out expect has consumed
	done          chan struct{}
}

func openPTY(t *testing.T, cols uint16) *pty {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n int
	conn, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if cerr := conn.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); cerr != nil || err != nil {
		t.Fatalf("unlock pty: %v %v", cerr, err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: cols}); err != nil {
		t.Fatal(err)
	}
	p := &pty{master: master, slave: slave, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EIO once the last process holding the terminal exits
			}
		}
	}()
	t.Cleanup(func() { master.Close(); slave.Close() })
	return p
}

// start runs the binary with the pty as its controlling terminal, in an
// environment of TERM=xterm and env.
func (p *pty) start(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	cmd.Env = append([]string{"TERM=xterm"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Only the child holds the terminal now, so the reader sees EIO when it
	// exits.
	p.slave.Close()
	return cmd
}

// expect waits until the terminal shows want after what was already seen.
func (p *pty) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		rest := p.out.String()[p.seen:]
		if i := strings.Index(rest, want); i >= 0 {
			p.seen += i + len(want)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the terminal never showed %q; it shows:\n%s", want, p.output())
}

func (p *pty) send(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait waits for the command to exit and returns its exit code.
func (p *pty) wait(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the command did not exit; the terminal shows:\n%s", p.output())
	}
	<-p.done
	return cmd.ProcessState.ExitCode()
}

// TestBinaryGuidedTerminal walks through --guided on a real pseudo-terminal:
// a question with a follow-up, its command and output, then Ctrl-D in the
// middle of the next question ends it cleanly.
func TestBinaryGuidedTerminal(t *testing.T) {
	inv, err := filepath.Abs(fixedInventory)
	if err != nil {
		t.Fatal(err)
	}
	p := openPTY(t, 200)
	cmd := p.start(t, nil, "--inventory", inv, "--guided")
	p.expect(t, "What do you want to know?")
	p.expect(t, "> ")
	p.send(t, "1\n")
	p.expect(t, "Which GPU? (this machine has: 0, 1, 2, 2:1, 2:2, 3) > ")
	p.send(t, "3\n")
	p.expect(t, "$ ds01-workloads --inventory "+inv+" --gpu 3")
	p.expect(t, "dave-scratch")
	p.expect(t, "frank-sweep-worker-1")
	p.expect(t, "What do you want to know?")
	p.send(t, "2\n")
	p.expect(t, "Which user?")
	p.send(t, "\x04") // Ctrl-D: end of input mid-dialogue
	if code := p.wait(t, cmd); code != exitOK {
		t.Errorf("exit %d after Ctrl-D, want 0; the terminal shows:\n%s", code, p.output())
	}
	if out := p.output(); strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
		t.Errorf("the terminal shows a crash:\n%s", out)
	}
}

// TestBinaryTerminalTable: on a terminal the table is in colour and NAME is
// cut to the terminal's width (TIOCGWINSZ); NO_COLOR turns colour off. The
// clock is real here, so the inventory is stale and AGE varies: the checks
// are on the shape, not on a golden file.
func TestBinaryTerminalTable(t *testing.T) {
	inv, err := filepath.Abs(fixedInventory)
	if err != nil {
		t.Fatal(err)
	}
	const cols = 90
	p := openPTY(t, cols)
	cmd := p.start(t, nil, "--inventory", inv)
	if code := p.wait(t, cmd); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, p.output())
	}
	out := p.output()
	if !strings.Contains(out, "\x1b[1mTYPE\x1b[0m") || !strings.Contains(out, "\x1b[31m3 (undeclared)\x1b[0m") {
		t.Errorf("no colour on a terminal:\n%q", out)
	}
	sgr := regexp.MustCompile("\x1b\\[[0-9;]*m")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sgr.ReplaceAllString(strings.TrimRight(sc.Text(), "\r"), "")
		if strings.Contains(line, "   running   ") && displayWidth(line) > cols {
			t.Errorf("a row of %d columns on a %d-column terminal: %q", displayWidth(line), cols, line)
		}
	}
	if !regexp.MustCompile(`   python eval\.py [^\n]*…`).MatchString(out) {
		t.Errorf("the command line was not cut to the terminal:\n%s", out)
	}

	p = openPTY(t, cols)
	cmd = p.start(t, []string{"NO_COLOR=1"}, "--inventory", inv)
	if code := p.wait(t, cmd); code != exitOK || strings.Contains(p.output(), "\x1b[") {
		t.Errorf("exit %d; with NO_COLOR set the terminal shows colour:\n%q", code, p.output())
	}
}
