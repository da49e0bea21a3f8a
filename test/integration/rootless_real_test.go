//go:build integration

package integration

import (
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

// rootlessEngine is a real rootless Docker engine of a useradd user.
type rootlessEngine struct {
	user   testUser
	socket string
	env    []string
}

// startRootlessEngine runs dockerd-rootless.sh as a new user, the way a
// user kept out of the docker group runs their own engine, on
// /run/user/<uid>/docker.sock, and stops it at cleanup.
func startRootlessEngine(t *testing.T, name string) *rootlessEngine {
	t.Helper()
	script := "/usr/share/docker.io/contrib/dockerd-rootless.sh"
	_, err := os.Stat(script)
	mustHave(t, err == nil, "dockerd-rootless.sh (docker.io) not installed")
	for _, bin := range []string{"rootlesskit", "newuidmap", "newgidmap"} {
		_, err := exec.LookPath(bin)
		mustHave(t, err == nil, bin+" not installed (rootlesskit, uidmap)")
	}
	u := newUser(t, name)
	subuid, _ := os.ReadFile("/etc/subuid")
	mustHave(t, strings.Contains(string(subuid), "\n"+u.name+":") || strings.HasPrefix(string(subuid), u.name+":"),
		"useradd gave "+u.name+" no /etc/subuid range")

	run := filepath.Join("/run/user", strconv.Itoa(u.uid))
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(run, u.uid, u.gid)
	t.Cleanup(func() { os.RemoveAll(run) })
	e := &rootlessEngine{user: u, socket: filepath.Join(run, "docker.sock"), env: []string{
		"HOME=" + u.home, "USER=" + u.name, "XDG_RUNTIME_DIR=" + run,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DOCKER_HOST=unix://" + filepath.Join(run, "docker.sock"),
	}}

	logFile, err := os.Create(filepath.Join(t.TempDir(), "dockerd-rootless.log"))
	if err != nil {
		t.Fatal(err)
	}
	// The default network needs /dev/net/tun, which only root may open
	// here: the engine shares the host's network and runs no bridge.
	cmd := exec.Command(script, "--bridge=none", "--iptables=false", "--ip6tables=false")
	cmd.Env = append(e.env, "DOCKERD_ROOTLESS_ROOTLESSKIT_NET=host", "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=none")
	cmd.Dir = u.home
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = u.credential()
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		// The engine's helpers run under the user: none may outlive it.
		exec.Command("pkill", "-KILL", "-u", u.name).Run()
	})
	for deadline := time.Now().Add(60 * time.Second); ; {
		if _, err := e.docker("info", "--format", "{{.ID}}"); err == nil {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			log, _ := os.ReadFile(logFile.Name())
			mustHave(t, false, "the rootless engine did not start within 60 s:\n"+clipTail(log))
		}
		time.Sleep(300 * time.Millisecond)
	}
	return e
}

// docker runs the docker CLI against the user's engine, as the user.
func (e *rootlessEngine) docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = e.env
	cmd.Dir = e.user.home
	cmd.SysProcAttr = e.user.credential()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestScanRootlessDockerEngine: a real rootless engine's container, which
// the system engine does not list and which runs without a cgroup of its
// own on this host, is in the inventory as its owner's, with its engine;
// its GPU process is placed on it by PID namespace, not taken for a host
// process; the engine stopping takes its containers with it.
func TestScanRootlessDockerEngine(t *testing.T) {
	e := startRootlessEngine(t, "ds01it-rootless")

	load := exec.Command("docker", "load")
	load.Env, load.Dir, load.SysProcAttr = e.env, e.user.home, e.user.credential()
	loadTestImage(t, load)
	id, err := e.docker("run", "-d", "--network", "none", "--name", "rootless-train", env.image, "sleep", "1234")
	if err != nil {
		t.Fatalf("docker run on the rootless engine: %v: %s", err, id)
	}
	id = lastLine(id)
	pidText, err := e.docker("inspect", "--format", "{{.State.Pid}}", id)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(pidText)
	t.Logf("rootless container %s: init pid %d, cgroup %s", id[:12], pid, cgroupOf(pid))

	g := newGPUScanner(t)
	g.report(t, mockNVML{Processes: []mockProcess{{GPU: 3, PID: pid, MemoryBytes: 3 << 30, Kind: "compute"}}})
	g.scan(t)
	inv := g.scan(t)
	src := inventory.EngineSource(e.socket)
	if st := inv.Sources[src]; !st.OK {
		t.Fatalf("source %s = %+v; want answered", src, st)
	}
	c := mustFind(t, inv, id)
	if c.User != e.user.name || c.UserSource != "rootless_engine_owner" || c.Name != "rootless-train" || c.Status != "running" {
		t.Errorf("rootless container %+v; want %s's (rootless_engine_owner), running", *c, e.user.name)
	}
	if c.Launcher == nil || *c.Launcher != (inventory.Launcher{Name: "docker", Engine: e.socket}) {
		t.Errorf("launcher %+v; want docker via %s", c.Launcher, e.socket)
	}
	if len(c.GPUProcesses) != 1 || c.GPUProcesses[0].PID != pid || c.GPUProcesses[0].GPU != "3" || c.GPUAccess != inventory.AccessUndeclared {
		t.Errorf("GPU processes %+v, access %s; want pid %d on GPU 3, undeclared", c.GPUProcesses, c.GPUAccess, pid)
	}
	if p := findProcess(inv, pid); p != nil {
		t.Errorf("the rootless container's process is also a host process: %+v", *p)
	}
	if r := workloads(t, g.state, "--user", e.user.name, "--format", "{{.Type}} {{.Launcher}} {{.GPUs}}"); strings.TrimSpace(string(r.stdout)) != "raw-docker docker via "+e.socket+" 3 (undeclared)" {
		t.Errorf("ds01-workloads --user %s: %q", e.user.name, r.stdout)
	}

	// The user's engine goes (the user logged out): its containers go too.
	if out, err := e.docker("rm", "-f", id); err != nil {
		t.Fatalf("docker rm: %v: %s", err, out)
	}
	os.Remove(e.socket)
	inv = g.scan(t)
	if find(inv, id) != nil {
		t.Errorf("the container of an engine no longer there is still in the inventory")
	}
	if got := g.eventsFor(t, id); len(got) != 2 || got[1] != inventory.EventContainerExited {
		t.Errorf("events of the rootless container %v; want discovered, then exited", got)
	}
}
