//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// mockProcess is one process the mock NVML reports (the file format of
// detect.NVMLFromMockFile).
type mockProcess struct {
	GPU         int    `json:"gpu"`
	PID         int    `json:"pid"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Kind        string `json:"kind"`
}

type mockNVML struct {
	Processes []mockProcess `json:"processes"`
	InitError string        `json:"init_error,omitempty"`
	// GPUs is how many GPUs the driver lists (8 when nil); MinorNumbers
	// their /dev/nvidiaN, by index; Unlisted memory used on a GPU that no
	// process listed holds, by GPU.
	GPUs         *int              `json:"gpus,omitempty"`
	MinorNumbers []int             `json:"minor_numbers,omitempty"`
	Unlisted     map[string]uint64 `json:"unlisted_memory_bytes,omitempty"`
	// AccountingOff are GPUs whose accounting mode is off; Accounting the
	// ended processes the others' records hold.
	AccountingOff []int            `json:"accounting_off,omitempty"`
	Accounting    []mockAccounting `json:"accounting,omitempty"`
}

// mockAccounting is one ended process in a GPU's accounting records.
type mockAccounting struct {
	GPU            int       `json:"gpu"`
	PID            int       `json:"pid"`
	StartedAt      time.Time `json:"started_at"`
	DurationMS     uint64    `json:"duration_ms"`
	MaxMemoryBytes uint64    `json:"max_memory_bytes"`
	GPUUtil        uint32    `json:"gpu_util"`
}

// newGPUScanner is the ds01-scan built with -tags nvmlmock, whose NVML is
// go-nvml's mock server reporting what its mock file says (report).
func newGPUScanner(t *testing.T) *scanner {
	t.Helper()
	bin := filepath.Join(env.bin, "ds01-scan-nvmlmock")
	_, err := os.Stat(bin)
	mustHave(t, err == nil, "bin/ds01-scan-nvmlmock not built (make test builds it)")
	s := newScanner(t)
	s.bin, s.mock = bin, filepath.Join(s.dir, "nvml.json")
	return s
}

// report makes the mock NVML report m from the next scan on.
func (s *scanner) report(t *testing.T, m mockNVML) {
	t.Helper()
	data, _ := json.Marshal(m)
	if err := os.WriteFile(s.mock, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostEvents returns the types of the events about one host process, in
// order.
func (s *scanner) hostEvents(t *testing.T, pid int) []string {
	t.Helper()
	var types []string
	for _, e := range s.allEvents(t) {
		if e.PID == pid {
			types = append(types, e.EventType)
		}
	}
	return types
}

func findProcess(inv *inventory.Inventory, pid int) *inventory.HostProcess {
	for i := range inv.HostProcesses {
		if inv.HostProcesses[i].PID == pid {
			return &inv.HostProcesses[i]
		}
	}
	return nil
}

// TestScanGPUProcessInContainer: NVML reports the host PID of a container's
// process on GPU 0 → the container shows observed use of GPU 0 with its
// memory, flagged undeclared since it declared no GPU; when the process
// leaves the GPU, so does the container's use.
func TestScanGPUProcessInContainer(t *testing.T) {
	id := container(t, "run", "-d", env.image, "sleep", "600")
	pid, _ := strconv.Atoi(docker(t, "inspect", "-f", "{{.State.Pid}}", id))
	g := newGPUScanner(t)
	g.report(t, mockNVML{Processes: []mockProcess{{GPU: 0, PID: pid, MemoryBytes: 4 << 30, Kind: "compute"}}})
	inv := g.scan(t)
	if !inv.Sources["nvml"].OK {
		t.Fatalf("nvml source: %+v", inv.Sources["nvml"])
	}
	c := mustFind(t, inv, id)
	if len(c.GPUProcesses) != 1 || c.GPUProcesses[0].PID != pid || c.GPUProcesses[0].GPU != "0" ||
		c.GPUProcesses[0].MemoryBytes == nil || *c.GPUProcesses[0].MemoryBytes != 4<<30 {
		t.Fatalf("container GPU processes %+v, want pid %d on GPU 0 with 4 GiB", c.GPUProcesses, pid)
	}
	if c.GPUProcesses[0].NSPID != 1 {
		t.Errorf("ns_pid %d, want 1 (the container's init)", c.GPUProcesses[0].NSPID)
	}
	if c.GPUAccess != inventory.AccessUndeclared {
		t.Errorf("gpu_access %q, want undeclared", c.GPUAccess)
	}
	var w inventory.Workload
	for _, wl := range inv.Workloads() {
		if wl.ID == id {
			w = wl
		}
	}
	if !w.GPUObserved || !reflect.DeepEqual(w.GPUs, []string{"0"}) || w.GPUMemoryBytes == nil {
		t.Errorf("workload view %+v", w)
	}
	if findProcess(inv, pid) != nil {
		t.Errorf("a container's process is listed as a host process")
	}

	g.report(t, mockNVML{})
	inv = g.scan(t)
	if c := mustFind(t, inv, id); len(c.GPUProcesses) != 0 || c.GPUAccess != inventory.AccessNone {
		t.Errorf("after the process left the GPU: processes %+v access %q", c.GPUProcesses, c.GPUAccess)
	}
}

// TestScanHostGPUProcess: a GPU process of a fresh non-root user on the host
// becomes a host-process workload of that user on the second scan (not the
// first), with its command line; killed, it leaves with one exited event.
func TestScanHostGPUProcess(t *testing.T) {
	u := newUser(t, "ds01it-dave")
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = u.credential()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	g := newGPUScanner(t)
	g.report(t, mockNVML{Processes: []mockProcess{{GPU: 1, PID: pid, MemoryBytes: 1 << 30, Kind: "compute"}}})
	inv := g.scan(t)
	if findProcess(inv, pid) != nil {
		t.Fatalf("host process listed on its first sighting: it must wait for the second scan")
	}
	inv = g.scan(t)
	p := findProcess(inv, pid)
	if p == nil {
		t.Fatalf("host GPU process %d not in the inventory after two scans", pid)
	}
	if p.Type != "host-process" || p.User != u.name || p.UserSource != "process_uid" || p.Command != "sleep 600" ||
		!reflect.DeepEqual(p.GPUs, []string{"1"}) || p.GPUMemoryBytes == nil || *p.GPUMemoryBytes != 1<<30 {
		t.Errorf("host process %+v", *p)
	}
	if got := g.hostEvents(t, pid); !reflect.DeepEqual(got, []string{inventory.EventHostProcessDiscovered}) {
		t.Errorf("events %v, want one discovered", got)
	}

	cmd.Process.Kill()
	cmd.Wait()
	inv = g.scan(t)
	if findProcess(inv, pid) != nil {
		t.Errorf("killed process still in the inventory")
	}
	g.scan(t)
	want := []string{inventory.EventHostProcessDiscovered, inventory.EventHostProcessExited}
	if got := g.hostEvents(t, pid); !reflect.DeepEqual(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestScanNVMLUnavailable: NVML failing to initialise makes its source
// unavailable with the reason; the scan completes and Docker data is whole.
func TestScanNVMLUnavailable(t *testing.T) {
	id := container(t, "create", env.image)
	g := newGPUScanner(t)
	g.report(t, mockNVML{InitError: "DRIVER_NOT_LOADED"})
	inv := g.scan(t)
	st := inv.Sources["nvml"]
	if st.OK || !strings.Contains(strings.ToLower(st.Error), "driver") {
		t.Errorf("nvml source %+v, want unavailable naming the driver", st)
	}
	if !inv.Sources["docker"].OK || find(inv, id) == nil {
		t.Errorf("docker data missing while only NVML failed")
	}
}

// TestScanWithoutGPU: the production binary on a machine without an NVIDIA
// driver reports NVML unavailable with NVML's reason, and exits 0.
func TestScanWithoutGPU(t *testing.T) {
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		t.Skip("this machine has an NVIDIA driver")
	}
	s := newScanner(t)
	inv := s.scan(t)
	if st := inv.Sources["nvml"]; st.OK || st.Error == "" {
		t.Errorf("nvml source %+v, want unavailable with a reason", st)
	}
}

// inCgroup moves pid into the cgroup at path under each hierarchy
// (/sys/fs/cgroup/<name>; the v1 pids one when none is given), the shape
// another runtime would give it, and undoes it at cleanup.
func inCgroup(t *testing.T, pid int, path string, hierarchies ...string) {
	t.Helper()
	if len(hierarchies) == 0 {
		hierarchies = []string{"pids"}
	}
	for _, h := range hierarchies {
		root := filepath.Join("/sys/fs/cgroup", h)
		dir := filepath.Join(root, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			mustHave(t, false, "cannot create a cgroup under "+root+": "+err.Error())
		}
		t.Cleanup(func() {
			// A cgroup can be removed only when empty: move the process back.
			os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
			for d := dir; d != root; d = filepath.Dir(d) {
				os.Remove(d)
			}
		})
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatalf("move %d into %s of %s: %v", pid, path, h, err)
		}
	}
}

// TestScanOtherRuntimeContainer: a GPU process in a podman- or
// Kubernetes-shaped cgroup, unknown to Docker, is recorded as an unknown
// container of that runtime with its GPU use.
func TestScanOtherRuntimeContainer(t *testing.T) {
	const id = "5d4c3b2a19088f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d0"
	for _, tc := range []struct {
		name, path, runtime string
		launcher            inventory.Launcher
	}{
		{"podman", "machine.slice/libpod-" + id + ".scope", "podman", inventory.Launcher{Name: "podman"}},
		{"kubernetes", "kubepods/besteffort/pod0a1b2c3d-1111-2222-3333-444455556666/" + id, "kubernetes",
			inventory.Launcher{Name: "kubernetes", Pod: "0a1b2c3d-1111-2222-3333-444455556666"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid := sleeper(t, nil)
			inCgroup(t, pid, tc.path)
			g := newGPUScanner(t)
			g.report(t, mockNVML{Processes: []mockProcess{{GPU: 2, PID: pid, MemoryBytes: 2 << 30, Kind: "compute"}}})
			inv := g.scan(t)
			c := mustFind(t, inv, id)
			if c.Type != "unknown" || c.Runtime != tc.runtime || len(c.GPUProcesses) != 1 || c.GPUProcesses[0].GPU != "2" {
				t.Errorf("container %+v, want unknown of runtime %s using GPU 2", *c, tc.runtime)
			}
			if c.Launcher == nil || *c.Launcher != tc.launcher {
				t.Errorf("launcher %+v, want %+v", c.Launcher, tc.launcher)
			}
			if findProcess(inv, pid) != nil {
				t.Errorf("process in a container cgroup listed as a host process")
			}
		})
	}
}

// TestScanDeviceHolderOnly: a process holding /dev/nvidia* open that NVML
// does not list is still found, by the /proc fd scan, marked as seen only
// that way and without a memory figure.
// heldDevice is the GPU node holdDevice's processes hold: GPU 6.
const heldDevice = "/dev/nvidia6"

// holdDevice starts a process, as u when not nil, that holds /dev/nvidia6
// open and nothing NVML would list, and returns its PID.
func holdDevice(t *testing.T, u *testUser) int {
	t.Helper()
	// Without a driver, opening a node of NVIDIA's major fails (ENXIO); the
	// scan matches the path a descriptor points at, so a node with
	// /dev/null's numbers under an NVIDIA name stands in.
	if _, err := os.Stat(heldDevice); err != nil {
		if err := syscall.Mknod(heldDevice, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Fatalf("mknod %s: %v", heldDevice, err)
		}
		t.Cleanup(func() { os.Remove(heldDevice) })
	}
	return startAs(t, u, "sh", "-c", "exec 3<"+heldDevice+"; exec sleep 600")
}

// TestScanWithoutPtraceWarns: a scanner without CAP_SYS_PTRACE cannot read
// another user's descriptors. It must say so in the inventory (and
// ds01-workloads must pass it on), not report a clean procfs source; with
// the capability the same process is found and there is no warning.
func TestScanWithoutPtraceWarns(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	mustHave(t, err == nil, "setpriv (util-linux) not installed")
	u := newUser(t, "ds01it-erin")
	pid := holdDevice(t, &u)
	g := newGPUScanner(t)
	g.report(t, mockNVML{})

	inv, _ := g.mustScan(t, scanOpts{prefix: []string{setpriv, "--bounding-set=-sys_ptrace", "--"}})
	procfs := inv.Sources["procfs"]
	if !procfs.OK || !strings.Contains(procfs.Warning, "CAP_SYS_PTRACE") || !strings.Contains(procfs.Warning, "permission denied") {
		t.Errorf("procfs source without CAP_SYS_PTRACE: %+v, want ok with a warning naming the capability", procfs)
	}
	if r := workloads(t, g.state); r.code != 0 || !strings.Contains(r.output(), "warning: source procfs has a blind spot: could not read open files of") {
		t.Errorf("ds01-workloads does not pass the warning on (%s):\n%s", r.status(), r.output())
	}

	g.scan(t)
	inv = g.scan(t)
	if w := inv.Sources["procfs"].Warning; w != "" {
		t.Errorf("warning with CAP_SYS_PTRACE: %q", w)
	}
	if findProcess(inv, pid) == nil {
		t.Errorf("with CAP_SYS_PTRACE, %s's process holding /dev/nvidia6 is not found", u.name)
	}
}

func TestScanDeviceHolderOnly(t *testing.T) {
	pid := holdDevice(t, nil)
	g := newGPUScanner(t)
	g.report(t, mockNVML{})
	g.scan(t)
	inv := g.scan(t)
	if !inv.Sources["procfs"].OK {
		t.Fatalf("procfs source: %+v", inv.Sources["procfs"])
	}
	p := findProcess(inv, pid)
	if p == nil {
		t.Fatalf("process holding %s not found", heldDevice)
	}
	if !reflect.DeepEqual(p.Kinds, []string{"device"}) || p.GPUMemoryBytes != nil || !reflect.DeepEqual(p.GPUs, []string{"6"}) {
		t.Errorf("device-only process %+v, want kinds [device], GPU 6, no memory", *p)
	}
}
