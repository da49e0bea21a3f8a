//go:build integration

package integration

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// The launchers run for real here: a one-node Slurm cluster, an LXC
// container, a systemd-nspawn container. Each starts a process, the mock
// NVML puts it on a GPU, and the scanner must name what started it from
// what the launcher itself left in /proc: cgroups and the processes above.

// launcherTimeout bounds one command of a launcher's own tools: a daemon
// that hangs fails the test, not the run.
const launcherTimeout = 90 * time.Second

// mustHaveTools skips (fails under CI) unless every tool is on PATH.
func mustHaveTools(t *testing.T, pkgs string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		_, err := exec.LookPath(tool)
		mustHave(t, err == nil, tool+" not installed ("+pkgs+")")
	}
}

// runTool runs a launcher's command to its end, failing the test unless it
// exits 0, and returns its stdout, trimmed.
func runTool(t *testing.T, extraEnv []string, argv ...string) string {
	t.Helper()
	r := mustHaveRun(t, strings.Join(argv, " "), newProc(launcherTimeout, extraEnv, argv...).run())
	if r.code != 0 {
		t.Fatalf("%s:\n%s", strings.Join(argv, " "), r)
	}
	return strings.TrimSpace(string(r.stdout))
}

// stopGrace is how long a tool gets to end once what it started is stopped.
const stopGrace = 30 * time.Second

// startTool starts a command that runs until cleanup (srun, lxc-attach,
// systemd-nspawn in the foreground); stop ends what it started, and cleanup
// then waits for the command itself.
func startTool(t *testing.T, extraEnv []string, stop func(), argv ...string) {
	t.Helper()
	p := newProc(10*time.Minute, extraEnv, argv...)
	if err := p.start(); err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	t.Cleanup(func() {
		stop()
		done := make(chan runResult, 1)
		go func() { done <- p.wait() }()
		select {
		case <-done:
		case <-time.After(stopGrace):
			// Stopped before what it started was found: end the tool itself.
			p.cmd.Process.Kill()
			<-done
		}
	})
}

// uniqueSleep is a sleep duration no other process on the machine runs
// with, by which a test finds its own process wherever a launcher put it.
func uniqueSleep() string {
	return strconv.FormatInt(1_000_000+time.Now().UnixNano()%1_000_000, 10)
}

// waitForSleep returns the PID of the one process running `sleep secs`
// (by any path), waiting for the launcher to start it.
func waitForSleep(t *testing.T, secs string) int {
	t.Helper()
	deadline := time.Now().Add(launcherTimeout)
	for {
		var found []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				continue
			}
			argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
			if len(argv) == 2 && filepath.Base(argv[0]) == "sleep" && argv[1] == secs {
				found = append(found, pid)
			}
		}
		switch {
		case len(found) == 1:
			return found[0]
		case len(found) > 1:
			t.Fatalf("%d processes run sleep %s: %v", len(found), secs, found)
		case time.Now().After(deadline):
			t.Fatalf("no process ran sleep %s within %v", secs, launcherTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describeProcess is what the launcher rules read of pid: its cgroups and
// the processes above it, nearest first, each with its uid, up to the test
// itself where it started them.
func describeProcess(pid int) string {
	var b strings.Builder
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	fmt.Fprintf(&b, "/proc/%d/cgroup:\n%s", pid, cg)
	for p, n := pid, 0; p > 1 && n < 16; n++ {
		if p == os.Getpid() {
			fmt.Fprintf(&b, "  %d (this test)\n", p)
			break
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			break
		}
		var uid, ppid string
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
				uid = f[1]
			} else if len(f) >= 2 && f[0] == "PPid:" {
				ppid = f[1]
			}
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		fmt.Fprintf(&b, "  %d uid=%s comm=%q cmdline=%q\n", p, uid, strings.TrimSpace(string(comm)),
			strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
		p, _ = strconv.Atoi(ppid)
	}
	return b.String()
}

// scanOnGPU has the mock NVML report pid on GPU 2 and returns the host
// workload the second scan makes of it (the first only notes it).
func scanOnGPU(t *testing.T, pid int) *inventory.HostProcess {
	t.Helper()
	t.Logf("what the scanner sees:\n%s", describeProcess(pid))
	g := newGPUScanner(t)
	g.report(t, mockNVML{Processes: []mockProcess{{GPU: 2, PID: pid, MemoryBytes: 2 << 30, Kind: "compute"}}})
	g.scan(t)
	p := findProcess(g.scan(t), pid)
	if p == nil {
		t.Fatalf("process %d on GPU 2 is not a host workload after two scans", pid)
	}
	return p
}

func checkLauncher(t *testing.T, p *inventory.HostProcess, want inventory.Launcher) {
	t.Helper()
	if p.Launcher == nil || *p.Launcher != want {
		t.Errorf("launcher %+v, want %+v\n%s", p.Launcher, want, describeProcess(p.PID))
	}
}

// ---- Slurm ------------------------------------------------------------------

// startSlurm starts the one-node cluster of hack/slurm.sh and stops it at
// cleanup, returning its SLURM_CONF. Its directory is the same on every
// run, so that a run killed before its cleanup leaves nothing the next
// cannot stop.
func startSlurm(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs("../../hack/slurm.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "ds01-it-slurm")
	t.Cleanup(func() {
		if r := newProc(launcherTimeout, nil, "bash", script, "stop", dir).run(); !r.ok() {
			t.Errorf("hack/slurm.sh stop:\n%s", r)
			return
		}
		os.RemoveAll(dir)
	})
	r := mustHaveRun(t, "hack/slurm.sh start", newProc(launcherTimeout, nil, "bash", script, "start", dir).run())
	if r.code != 0 {
		t.Fatalf("hack/slurm.sh start:\n%s", r)
	}
	return lastLine(string(r.stdout))
}

// TestLauncherRealSlurm: a step started by srun, and a batch script started
// by sbatch, each as a fresh user, are slurm workloads with the job's ID
// and the step (0, batch), and the job's user.
func TestLauncherRealSlurm(t *testing.T) {
	mustHaveTools(t, "slurm-wlm, munge", "munged", "mungekey", "slurmctld", "slurmd", "srun", "sbatch", "squeue", "scancel", "sinfo")
	// Made before the cluster, removed after it: userdel refuses a user
	// whose job still runs.
	u := newUser(t, "ds01it-slurm")
	slurmEnv := []string{"SLURM_CONF=" + startSlurm(t)}

	t.Run("srun", func(t *testing.T) {
		secs := uniqueSleep()
		const name = "ds01it-srun"
		startTool(t, slurmEnv, func() { newProc(launcherTimeout, slurmEnv, "scancel", "--name="+name).run() },
			"srun", "--uid="+u.name, "--gid="+u.name, "--chdir=/", "--job-name="+name, "--quiet", "sleep", secs)
		pid := waitForSleep(t, secs)
		job := runTool(t, slurmEnv, "squeue", "--noheader", "--name="+name, "--format=%i")
		if !validJobID(job) {
			t.Fatalf("squeue lists job %q for %s", job, name)
		}
		p := scanOnGPU(t, pid)
		checkLauncher(t, p, inventory.Launcher{Name: inventory.LauncherSlurm, Job: job, Step: "0"})
		if p.User != u.name {
			t.Errorf("user %q (from %s), want %s", p.User, p.UserSource, u.name)
		}
	})

	t.Run("sbatch", func(t *testing.T) {
		secs := uniqueSleep()
		out := runTool(t, slurmEnv, "sbatch", "--parsable", "--uid="+u.name, "--gid="+u.name, "--chdir=/",
			"--output=/dev/null", "--job-name=ds01it-sbatch", "--wrap", "exec sleep "+secs)
		job, _, _ := strings.Cut(out, ";")
		if !validJobID(job) {
			t.Fatalf("sbatch --parsable printed %q, not a job ID", out)
		}
		t.Cleanup(func() { newProc(launcherTimeout, slurmEnv, "scancel", job).run() })
		p := scanOnGPU(t, waitForSleep(t, secs))
		checkLauncher(t, p, inventory.Launcher{Name: inventory.LauncherSlurm, Job: job, Step: "batch"})
		if p.User != u.name {
			t.Errorf("user %q (from %s), want %s", p.User, p.UserSource, u.name)
		}
	})
}

func validJobID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0
}

// ---- LXC --------------------------------------------------------------------

// TestLauncherRealLXC: a process lxc-attach starts in a running busybox
// container, and the container's init, are lxc workloads named by the
// container.
func TestLauncherRealLXC(t *testing.T) {
	mustHaveTools(t, "lxc", "lxc-create", "lxc-start", "lxc-attach", "lxc-info", "lxc-stop", "lxc-destroy", "busybox")
	_, err := os.Stat("/usr/share/lxc/templates/lxc-busybox")
	mustHave(t, err == nil, "the busybox template not installed (lxc-templates)")

	const name = "ds01it-lxc"
	// One lxcpath on every run, so that a container a killed run left is
	// found and removed: its cgroups are named by the container alone.
	lxcpath := filepath.Join(os.TempDir(), "ds01-it-lxc")
	remove := func() {
		newProc(launcherTimeout, nil, "lxc-stop", "-P", lxcpath, "-n", name, "--kill").run()
		newProc(launcherTimeout, nil, "lxc-destroy", "-P", lxcpath, "-n", name).run()
		os.RemoveAll(lxcpath)
		// lxc-start parks its monitor in lxc.pivot while it sets up the
		// container's cgroups, and leaves it behind; gone once empty.
		pivots, _ := filepath.Glob("/sys/fs/cgroup/*/lxc.pivot")
		for _, dir := range append(pivots, "/sys/fs/cgroup/lxc.pivot") {
			os.Remove(dir)
		}
	}
	remove()
	t.Cleanup(remove)
	if err := os.MkdirAll(lxcpath, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(lxcpath, "ds01it.conf")
	// No network (there is no bridge here), and no AppArmor profile to load.
	if err := os.WriteFile(conf, []byte("lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, nil, "lxc-create", "-P", lxcpath, "-n", name, "-t", "busybox", "-f", conf)
	runTool(t, nil, "lxc-start", "-P", lxcpath, "-n", name, "-d")
	want := inventory.Launcher{Name: inventory.LauncherLXC, Machine: name}

	t.Run("attach", func(t *testing.T) {
		secs := uniqueSleep()
		var pid int
		startTool(t, nil, func() { killPID(pid) }, "lxc-attach", "-P", lxcpath, "-n", name, "--", "sleep", secs)
		pid = waitForSleep(t, secs)
		checkLauncher(t, scanOnGPU(t, pid), want)
	})

	t.Run("init", func(t *testing.T) {
		initPID, err := strconv.Atoi(runTool(t, nil, "lxc-info", "-P", lxcpath, "-n", name, "--pid", "--no-humanize"))
		if err != nil {
			t.Fatalf("lxc-info --pid: %v", err)
		}
		checkLauncher(t, scanOnGPU(t, initPID), want)
	})
}

// killPID kills pid, which a test started, when it has one.
func killPID(pid int) {
	if pid > 0 {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
}

// ---- systemd-nspawn ---------------------------------------------------------

// TestLauncherRealNspawn: the command systemd-nspawn runs in a directory
// holding only a static busybox is an nspawn workload named by the
// directory, as nspawn names the machine. With no systemd as PID 1 it
// registers no machine, so no machine.slice names it: only nspawn above it
// does.
func TestLauncherRealNspawn(t *testing.T) {
	mustHaveTools(t, "systemd-container, busybox-static", "systemd-nspawn", "busybox")
	busybox, _ := exec.LookPath("busybox")
	mustHave(t, isStatic(busybox), busybox+" is not statically linked (busybox-static)")

	const machine = "ds01it-nspawn"
	rootfs := filepath.Join(t.TempDir(), machine)
	// nspawn takes a directory for an OS tree only with a /usr and an
	// os-release.
	for _, d := range []string{"bin", "etc", "usr"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string][]byte{"bin/busybox": data, "etc/os-release": []byte("ID=busybox\n")} {
		if err := os.WriteFile(filepath.Join(rootfs, path), content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sleep")); err != nil {
		t.Fatal(err)
	}

	secs := uniqueSleep()
	var pid int
	var cgroups []string
	t.Cleanup(func() {
		// nspawn leaves the cgroups it split its own into, payload and
		// supervisor: removed once nspawn has ended (cleanups run last
		// first).
		for _, dir := range cgroups {
			os.Remove(dir)
			os.Remove(filepath.Join(filepath.Dir(dir), "supervisor"))
		}
	})
	// The payload is PID 1 of its namespace, which no signal but KILL ends.
	startTool(t, nil, func() { killPID(pid) },
		"systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "-D", rootfs, "/bin/sleep", secs)
	pid = waitForSleep(t, secs)
	cgroups = systemdCgroupDirs(pid)
	checkLauncher(t, scanOnGPU(t, pid), inventory.Launcher{Name: inventory.LauncherNspawn, Machine: machine})
}

// isStatic reports an executable without a program interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// systemdCgroupDirs are pid's cgroup directories in the trees systemd
// arranges, the unified one and name=systemd, below their roots.
func systemdCgroupDirs(pid int) []string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || f[2] == "/" {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			dirs = append(dirs, filepath.Join(unifiedRoot(), f[2]))
		case f[1] == "name=systemd":
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup/systemd", f[2]))
		}
	}
	return dirs
}

// unifiedRoot is where the unified hierarchy is mounted: beside the v1
// controllers on a hybrid host, at the top on a v2-only one.
func unifiedRoot() string {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}
