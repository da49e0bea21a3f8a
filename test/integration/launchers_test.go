//go:build integration

package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// The launchers a real host gives that this machine cannot run (or not in
// that shape): Slurm steps on cgroup v2 and under a multi-slurmd node,
// registered nspawn machines, LXC payloads, JupyterHub's spawner units and
// kernels, Apptainer's process tree, slurmstepd without a cgroup of its own.
// Each is made for real in its shape: real processes, placed in the cgroups
// the launcher would make, under parents whose titles and owners are the
// launcher's, then scanned by the real scanner with NVML reporting them.

// spawnUnder starts a parent process titled title (what its
// /proc/<pid>/cmdline reads, as Apptainer and slurmstepd set theirs), run
// from an executable named comm, which starts argv as its child and waits.
// The parent runs as parent, the child as child (nil: as the test). It
// returns the child's PID.
func spawnUnder(t *testing.T, comm, title string, parent *testUser, child *testUser, env []string, argv ...string) int {
	t.Helper()
	perl, err := exec.LookPath("perl")
	mustHave(t, err == nil, "perl not installed")
	// Not t.TempDir: the user the parent runs as must reach it.
	dir, err := os.MkdirTemp("", "ds01-launcher-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, comm)
	data, err := os.ReadFile(perl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if child != nil {
		argv = append([]string{"setpriv", "--reuid=" + strconv.Itoa(child.uid), "--regid=" + strconv.Itoa(child.gid), "--clear-groups", "--"}, argv...)
	}
	// $0 rewrites the process's argument area: its command line reads the
	// title alone. The child's PID comes back on stdout.
	script := `$0 = shift; my $p = fork; if (!$p) { exec @ARGV or exit 127 } $| = 1; print "$p\n"; waitpid($p, 0)`
	cmd := exec.Command(exe, append([]string{"-e", script, title}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	if parent != nil {
		cmd.SysProcAttr = parent.credential()
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%s did not start its child: %v", title, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("%s: child PID %q", title, line)
	}
	// The child outlives a killed parent.
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// sleeper starts sleep as u (nil: as the test) and returns its PID.
func sleeper(t *testing.T, u *testUser) int {
	t.Helper()
	return startAs(t, u, "sleep", "600")
}

// TestScanLauncherShapes: each launcher's shape gives the launcher, with
// what names it there, on the host workload and its discovery event; a
// process that only claims to be a launcher's is not taken for one, and of
// an Apptainer job's environment only the image path is kept.
func TestScanLauncherShapes(t *testing.T) {
	u := newUser(t, "ds01it-lena")
	const secret = "s3cret-token-value"
	type tc struct {
		name string
		pid  int
		want *inventory.Launcher
	}
	var cases []tc
	add := func(name string, pid int, want *inventory.Launcher) { cases = append(cases, tc{name, pid, want}) }

	pid := sleeper(t, &u)
	inCgroup(t, pid, "slurm_node7/uid_"+strconv.Itoa(u.uid)+"/job_42/step_0/task_0", "pids", "freezer")
	add("slurm v1, multi-slurmd", pid, &inventory.Launcher{Name: "slurm", Job: "42", Step: "0"})

	pid = sleeper(t, &u)
	inCgroup(t, pid, "system.slice/slurmstepd.scope/job_43/step_2/user/task_0", "unified", "systemd")
	add("slurm v2", pid, &inventory.Launcher{Name: "slurm", Job: "43", Step: "2"})

	pid = spawnUnder(t, "slurmstepd", "slurmstepd: [55.0]", nil, &u, nil, "sleep", "600")
	add("slurm without a cgroup: slurmstepd (root) above", pid, &inventory.Launcher{Name: "slurm", Job: "55", Step: "0"})

	pid = spawnUnder(t, "slurmstepd", "slurmstepd: [66.0]", &u, nil, nil, "sleep", "600")
	add("trap: the user's own process titled slurmstepd", pid, nil)

	pid = sleeper(t, nil)
	inCgroup(t, pid, "lxc.payload.shape-web/.lxc", "unified", "systemd")
	inCgroup(t, pid, "lxc.payload.shape-web", "pids")
	add("lxc attached process", pid, &inventory.Launcher{Name: "lxc", Machine: "shape-web"})

	pid = sleeper(t, nil)
	inCgroup(t, pid, `machine.slice/machine-shape\x2dbox.scope/payload/system.slice/train.service`, "unified", "systemd")
	add("nspawn machine", pid, &inventory.Launcher{Name: "nspawn", Machine: "shape-box"})

	pid = sleeper(t, nil)
	inCgroup(t, pid, `machine.slice/machine-shape\x2dbox.scope/supervisor`, "unified", "systemd")
	add("trap: nspawn's supervisor", pid, nil)

	pid = sleeper(t, &u)
	inCgroup(t, pid, "system.slice/jupyter-"+u.name+"-singleuser.service", "unified", "systemd")
	add("jupyterhub systemd spawner", pid, &inventory.Launcher{Name: "jupyterhub", Unit: "jupyter-" + u.name + "-singleuser.service"})

	pid = spawnUnder(t, "python3", "/opt/jh/bin/python3 /opt/jh/bin/jupyterhub-singleuser --port=4711", &u, nil, nil,
		"sleep", "600")
	add("jupyterhub kernel under the single-user server", pid, &inventory.Launcher{Name: "jupyterhub"})

	pid = spawnUnder(t, "starter", "Apptainer runtime parent", &u, nil,
		[]string{"APPTAINER_CONTAINER=/scratch/lena/pytorch.sif", "API_TOKEN=" + secret}, "sleep", "600")
	add("apptainer", pid, &inventory.Launcher{Name: "apptainer", Image: "/scratch/lena/pytorch.sif"})

	pid = spawnUnder(t, "starter", "Apptainer instance: "+u.name+" [train]", &u, nil,
		[]string{"APPTAINER_CONTAINER=/scratch/lena/serve.sif"}, "sleep", "600")
	add("apptainer instance", pid, &inventory.Launcher{Name: "apptainer", Image: "/scratch/lena/serve.sif", Machine: "train"})

	pid = sleeper(t, nil)
	inCgroup(t, pid, "system.slice/shape-train.service", "unified", "systemd")
	add("system service", pid, &inventory.Launcher{Name: "systemd", Unit: "shape-train.service"})

	var procs []mockProcess
	for _, c := range cases {
		procs = append(procs, mockProcess{GPU: 1, PID: c.pid, MemoryBytes: 1 << 30, Kind: "compute"})
	}
	g := newGPUScanner(t)
	g.report(t, mockNVML{Processes: procs})
	g.scan(t)
	inv := g.scan(t)
	for _, c := range cases {
		p := findProcess(inv, c.pid)
		if p == nil {
			t.Errorf("%s: process %d not in the inventory", c.name, c.pid)
			continue
		}
		if !reflect.DeepEqual(p.Launcher, c.want) {
			t.Errorf("%s: launcher %+v; want %+v (cgroup %s)", c.name, p.Launcher, c.want, cgroupOf(c.pid))
		}
		if c.want != nil && (c.want.Name == "slurm" || c.want.Name == "apptainer") {
			if p.User != u.name {
				t.Errorf("%s: user %q; want %s", c.name, p.User, u.name)
			}
		}
	}

	data, err := os.ReadFile(g.state)
	if err != nil {
		t.Fatal(err)
	}
	events, err := os.ReadFile(g.events)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"inventory": data, "event log": events} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the %s holds an environment value of the Apptainer job", name)
		}
	}
	if !strings.Contains(string(events), `"launcher":{"name":"apptainer","image":"/scratch/lena/pytorch.sif"}`) {
		t.Errorf("no discovery event carries the Apptainer job's launcher")
	}

	r := workloads(t, g.state, "--launcher", "slurm", "--format", "{{.ID}} {{.Launcher}}")
	var want []string
	for _, c := range cases {
		if c.want != nil && c.want.Name == "slurm" {
			want = append(want, strconv.Itoa(c.pid)+" "+c.want.String())
		}
	}
	got := strings.Split(strings.TrimSpace(string(r.stdout)), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if r.code != 0 || !slices.Equal(got, want) {
		t.Errorf("ds01-workloads --launcher slurm (%s): %q; want %q", r.status(), got, want)
	}
}

// cgroupOf is a process's cgroup file, for a failure's message.
func cgroupOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "; ")
}
