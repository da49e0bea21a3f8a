//go:build integration

package integration

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// podmanArgs make rootful Podman 4.3 run here: crun refuses a hybrid
// cgroup tree, and there is no systemd to manage cgroups or keep events.
var podmanArgs = []string{"--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs", "--events-backend=file"}

// podman runs podman with podmanArgs, failing the test unless it exits 0.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", append(append([]string{}, podmanArgs...), args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestScanRealPodmanContainer: a real rootful Podman container, which the
// Docker engine does not list, whose process is on a GPU, is an unknown
// container of runtime podman, its launcher podman, with that GPU use; its
// process is no host process, and conmon above it does not make it one.
func TestScanRealPodmanContainer(t *testing.T) {
	_, err := exec.LookPath("podman")
	mustHave(t, err == nil, "podman not installed")
	_, err = exec.LookPath("runc")
	mustHave(t, err == nil, "runc not installed")

	loadTestImage(t, exec.Command("podman", append(append([]string{}, podmanArgs...), "load")...))
	const name = "ds01it-podman"
	exec.Command("podman", append(append([]string{}, podmanArgs...), "rm", "-f", "-t", "0", name)...).Run()
	id := lastLine(podman(t, "run", "-d", "--name", name, "--network", "none",
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", env.image, "sleep", "600"))
	t.Cleanup(func() {
		exec.Command("podman", append(append([]string{}, podmanArgs...), "rm", "-f", "-t", "0", name)...).Run()
	})
	pid, err := strconv.Atoi(podman(t, "inspect", "--format", "{{.State.Pid}}", id))
	if err != nil || pid <= 0 {
		t.Fatalf("podman inspect: pid %d, %v", pid, err)
	}
	t.Logf("podman container %s: pid %d, cgroup %s", id[:12], pid, cgroupOf(pid))

	g := newGPUScanner(t)
	g.report(t, mockNVML{Processes: []mockProcess{{GPU: 4, PID: pid, MemoryBytes: 5 << 30, Kind: "compute"}}})
	inv := g.scan(t)
	c := mustFind(t, inv, id)
	if c.Type != inventory.TypeUnknown || c.Runtime != "podman" || c.Launcher == nil || *c.Launcher != (inventory.Launcher{Name: "podman"}) {
		t.Errorf("podman container %+v, launcher %+v; want unknown, runtime podman, launcher podman", *c, c.Launcher)
	}
	if len(c.GPUProcesses) != 1 || c.GPUProcesses[0].PID != pid || c.GPUProcesses[0].GPU != "4" || c.GPUAccess != inventory.AccessUndeclared {
		t.Errorf("GPU processes %+v, access %s; want pid %d on GPU 4, undeclared", c.GPUProcesses, c.GPUAccess, pid)
	}
	g.scan(t)
	if p := findProcess(g.scan(t), pid); p != nil {
		t.Errorf("the podman container's process is a host process: %+v", *p)
	}
}
