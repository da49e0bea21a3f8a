//go:build gpu

package detect

// Tests against a real GPU and driver: go test -tags gpu -run RealGPU -v ./pkg/detect
// They start CUDA processes with PyTorch (python3 -c "import torch"), as
// this user and, when run as root, as a throwaway non-root user too.

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// gpuAllocMiB are what the test's CUDA processes allocate, each its own
// amount so that each can be told by its memory: the differences between
// their NVML figures must be the differences between these (the CUDA
// context each also holds is the same size for the same libraries).
var gpuAllocMiB = []uint64{256, 512, 1024}

// gpuAllocTolerance is how far a difference may stray: PyTorch's caching
// allocator rounds to 2 MiB blocks.
const gpuAllocTolerance = 8 << 20

// gpuTestUser is the non-root user the test makes with useradd when root.
const gpuTestUser = "ds01gputest"

// cudaChild allocates argv[2] MiB on cuda:0, says "ready <uuid>", then
// either sleeps or keeps the SMs busy so that utilisation has a sample.
const cudaChild = `
import sys, time, torch
x = torch.empty(int(sys.argv[2])*256*1024, dtype=torch.float32, device='cuda')
x.fill_(1.0)
torch.cuda.synchronize()
p = torch.cuda.get_device_properties(0)
print("ready", getattr(p, "uuid", ""), flush=True)
busy = sys.argv[1] == "busy"
end = time.time() + 600
while time.time() < end:
    if busy:
        x.mul_(1.0000001)
        torch.cuda.synchronize()
    else:
        time.sleep(1)
`

// realNVML returns the system's NVML, or skips the test when it cannot
// initialise (no GPU, no driver, version mismatch), saying why.
func realNVML(t *testing.T) nvml.Interface {
	t.Helper()
	lib := nvml.New()
	start := time.Now()
	ret := lib.Init()
	initTime := time.Since(start)
	if ret != nvml.SUCCESS {
		t.Skipf("NVML cannot initialise here, skipping the GPU tests: %v", nvmlInitError(ret))
	}
	if ret := lib.Shutdown(); ret != nvml.SUCCESS {
		t.Errorf("Shutdown after the timing Init: %v", ret)
	}
	t.Logf("nvml Init alone: %.1f ms", gpuMS(initTime))
	return lib
}

func gpuMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cudaCommand is python3 running script as cred's user (this user when
// nil), with cuda:0 being NVML's GPU 0.
func cudaCommand(cred *syscall.Credential, args ...string) *exec.Cmd {
	cmd := exec.Command("python3", args...)
	cmd.Env = append(os.Environ(), "CUDA_DEVICE_ORDER=PCI_BUS_ID", "HOME="+os.TempDir())
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// startCUDAChild starts cudaChild (as cred's user when cred is set) and
// waits for it to hold its memory. It returns ok false, saying why, when
// that user cannot run PyTorch with CUDA.
func startCUDAChild(t *testing.T, mode string, allocMiB uint64, cred *syscall.Credential) (pid int, torchUUID string, ok bool) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Log("python3 not found: cannot start a CUDA process")
		return 0, "", false
	}
	if out, err := cudaCommand(cred, "-c", "import torch; assert torch.cuda.is_available()").CombinedOutput(); err != nil {
		t.Logf("PyTorch with CUDA not usable (credential %+v): %v\n%s", cred, err, out)
		return 0, "", false
	}
	cmd := cudaCommand(cred, "-c", cudaChild, mode, strconv.FormatUint(allocMiB, 10))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "ready" {
			t.Fatalf("CUDA child did not start: %q", line)
		}
		if len(f) > 1 {
			torchUUID = f[1]
		}
	case <-time.After(120 * time.Second):
		t.Fatal("CUDA child not ready after 120 s")
	}
	return cmd.Process.Pid, torchUUID, true
}

// nonRootCredential makes gpuTestUser (removing it after the test) and
// returns its credential, or nil when not root.
func nonRootCredential(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	if _, err := user.Lookup(gpuTestUser); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", gpuTestUser).CombinedOutput(); err != nil {
			t.Logf("useradd %s failed, testing as root only: %v\n%s", gpuTestUser, err, out)
			return nil
		}
		t.Cleanup(func() { _ = exec.Command("userdel", gpuTestUser).Run() })
	}
	u, err := user.Lookup(gpuTestUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// smiApp is one row of nvidia-smi --query-compute-apps.
type smiApp struct {
	pid     int
	usedMiB uint64
	uuid    string
}

// querySMI runs nvidia-smi's compute-apps query, or returns ok false when
// nvidia-smi is missing.
func querySMI(t *testing.T) (apps []smiApp, took time.Duration, ok bool) {
	t.Helper()
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		return nil, 0, false
	}
	start := time.Now()
	out, err := exec.Command("nvidia-smi", "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits").Output()
	took = time.Since(start)
	if err != nil {
		t.Errorf("nvidia-smi: %v", err)
		return nil, took, false
	}
	r := csv.NewReader(strings.NewReader(string(out)))
	r.TrimLeadingSpace = true
	rows, err := r.ReadAll()
	if err != nil {
		t.Errorf("parse nvidia-smi output %q: %v", out, err)
		return nil, took, false
	}
	for _, row := range rows {
		if len(row) != 3 {
			continue
		}
		pid, _ := strconv.Atoi(row[0])
		mib, _ := strconv.ParseUint(row[1], 10, 64)
		apps = append(apps, smiApp{pid: pid, usedMiB: mib, uuid: row[2]})
	}
	return apps, took, true
}

func TestObserveRealGPU(t *testing.T) {
	lib := realNVML(t)
	n := NewNVML(lib, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))

	// The idle baseline, before any process of the test: what each GPU
	// shows used with nothing of ours on it, the figure the default
	// --unattributed-threshold must stay above.
	idle, err := n.Observe(nil)
	if err != nil {
		t.Fatalf("Observe before the CUDA processes: %v", err)
	}
	logLedger(t, "idle baseline", idle)

	type child struct {
		name, torchUUID string
		pid             int
		allocMiB        uint64
	}
	var children []child
	start := func(name, mode string, alloc uint64, cred *syscall.Credential) bool {
		pid, tu, ok := startCUDAChild(t, mode, alloc, cred)
		if ok {
			children = append(children, child{name, tu, pid, alloc})
		}
		return ok
	}
	if !start(fmt.Sprintf("uid %d, sleeping, %d MiB", os.Geteuid(), gpuAllocMiB[0]), "sleep", gpuAllocMiB[0], nil) {
		t.Skip("cannot start a CUDA process: see above")
	}
	start(fmt.Sprintf("uid %d, busy, %d MiB", os.Geteuid(), gpuAllocMiB[1]), "busy", gpuAllocMiB[1], nil)
	if cred := nonRootCredential(t); cred != nil {
		if !start(fmt.Sprintf("%s (uid %d), sleeping, %d MiB", gpuTestUser, cred.Uid, gpuAllocMiB[2]), "sleep", gpuAllocMiB[2], cred) {
			t.Errorf("as root, but the CUDA process as %s could not start: see above", gpuTestUser)
		}
	}

	var obs NVMLReading
	memory := map[int]uint64{}
	last := map[string]inventory.GPUDevice{}
	for round := 1; round <= 3; round++ {
		start := time.Now()
		var err error
		obs, err = n.Observe(last)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("Observe round %d: %v", round, err)
		}
		t.Logf("Observe round %d (Init, read, Shutdown): %.1f ms, %d devices, %d samples", round, gpuMS(took), len(obs.GPUs), len(obs.Samples))
		for _, g := range obs.GPUs {
			last[g.UUID] = g
		}
		time.Sleep(time.Second)
	}

	for _, g := range obs.GPUs {
		pm := "unknown"
		if g.PersistenceMode != nil {
			pm = strconv.FormatBool(*g.PersistenceMode)
		}
		t.Logf("GPU %s %s %q MIG %v persistence mode %s memory %v/%v lost %v unknown processes %d error %q",
			g.ID, g.UUID, g.Name, g.MIGEnabled, pm, gpuDeref(g.MemoryUsedBytes), gpuDeref(g.MemoryTotalBytes), g.Lost, g.UnknownProcesses, g.Error)
		if g.Lost || g.Error != "" {
			t.Errorf("GPU %s: lost %v error %q", g.ID, g.Lost, g.Error)
		}
	}
	for _, s := range obs.Samples {
		t.Logf("sample pid %d gpu %s %s %s memory %v sm %v", s.PID, s.GPU, s.GPUUUID, s.Kind, gpuDeref(s.MemoryBytes), gpuDeref(s.SMUtil))
	}

	uuids := map[string]bool{}
	for _, g := range obs.GPUs {
		uuids[g.UUID] = true
	}
	for _, c := range children {
		var found *GPUSample
		for i := range obs.Samples {
			if obs.Samples[i].PID == c.pid && obs.Samples[i].Kind == "compute" {
				found = &obs.Samples[i]
			}
		}
		if found == nil {
			t.Errorf("child %s (pid %d) not among the samples; if every sample PID is foreign, NVML reports another PID namespace's PIDs (in a container?)", c.name, c.pid)
			continue
		}
		if !uuids[found.GPUUUID] {
			t.Errorf("child %s on GPU UUID %q, which is not a listed device", c.name, found.GPUUUID)
		}
		if len(obs.GPUs) > 0 && !obs.GPUs[0].MIGEnabled && os.Getenv("CUDA_VISIBLE_DEVICES") == "" && found.GPUUUID != obs.GPUs[0].UUID {
			t.Errorf("child %s on %s, want GPU 0 (%s)", c.name, found.GPUUUID, obs.GPUs[0].UUID)
		}
		if c.torchUUID != "" && !strings.Contains(found.GPUUUID, strings.TrimPrefix(strings.TrimPrefix(c.torchUUID, "GPU-"), "MIG-")) {
			t.Logf("torch names the child's device %q, NVML %q", c.torchUUID, found.GPUUUID)
		}
		if found.MemoryBytes == nil || *found.MemoryBytes < c.allocMiB<<20 {
			t.Errorf("child %s memory %v, want at least %d MiB", c.name, gpuDeref(found.MemoryBytes), c.allocMiB)
		} else {
			memory[c.pid] = *found.MemoryBytes
		}
		t.Logf("child %s: pid %d on %s (%s), memory %v bytes, SM %v %%", c.name, c.pid, found.GPU, found.GPUUUID, gpuDeref(found.MemoryBytes), gpuDeref(found.SMUtil))
	}
	// Each process's figure is its allocation plus one CUDA context: the
	// differences must be the allocations' differences, entry by entry, or
	// NVML's list is misread (go-nvml #75).
	for i := 1; i < len(children); i++ {
		a, b := children[0], children[i]
		ma, oka := memory[a.pid]
		mb, okb := memory[b.pid]
		if !oka || !okb {
			continue
		}
		got, want := int64(mb)-int64(ma), int64(b.allocMiB-a.allocMiB)<<20
		if d := got - want; d > gpuAllocTolerance || d < -gpuAllocTolerance {
			t.Errorf("child %s holds %d bytes more than %s, want %d (±%d)", b.name, got, a.name, want, gpuAllocTolerance)
		}
	}
	logLedger(t, "with the test's processes", obs)
	// With every process on the GPU listed, what no process holds is the
	// driver's share: it must stay under the default threshold, or the
	// default flags every busy GPU.
	if u, ok := unattributedOn(obs, "0"); ok && u > inventory.DefaultUnattributedThreshold {
		t.Errorf("GPU 0 with only listed processes: %d bytes held by no visible process, above the default threshold %d", u, inventory.DefaultUnattributedThreshold)
	}

	apps, took, ok := querySMI(t)
	if !ok {
		t.Log("nvidia-smi not found: no comparison")
		return
	}
	t.Logf("nvidia-smi --query-compute-apps: %.1f ms, %d apps", gpuMS(took), len(apps))
	for _, c := range children {
		var app *smiApp
		for i := range apps {
			if apps[i].pid == c.pid {
				app = &apps[i]
			}
		}
		if app == nil {
			t.Errorf("nvidia-smi does not list child %s (pid %d): %+v", c.name, c.pid, apps)
			continue
		}
		for _, s := range obs.Samples {
			if s.PID != c.pid || s.Kind != "compute" {
				continue
			}
			if s.GPUUUID != app.uuid {
				t.Errorf("child %s: nvidia-smi says %s, Observe %s", c.name, app.uuid, s.GPUUUID)
			}
			if s.MemoryBytes != nil && *s.MemoryBytes>>20 != app.usedMiB {
				t.Logf("child %s: nvidia-smi %d MiB, Observe %d MiB (read at different times)", c.name, app.usedMiB, *s.MemoryBytes>>20)
			}
		}
	}
}

func gpuDeref[T any](p *T) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// unattributedOn is what GPU id shows used, less what the driver reserves,
// that the processes NVML lists there do not hold; ok false when a figure
// is missing.
func unattributedOn(obs NVMLReading, id string) (uint64, bool) {
	for _, g := range obs.GPUs {
		if g.ID != id || g.MemoryUsedBytes == nil {
			continue
		}
		used := *g.MemoryUsedBytes
		if g.MemoryReservedBytes != nil {
			used -= min(used, *g.MemoryReservedBytes)
		}
		var held uint64
		for _, s := range obs.Samples {
			if s.GPU == id && s.MemoryBytes != nil {
				held += *s.MemoryBytes
			}
		}
		return used - min(used, held), true
	}
	return 0, false
}

// logLedger logs each GPU's memory as the ledger sees it: used, reserved,
// held by listed processes, and held by none.
func logLedger(t *testing.T, when string, obs NVMLReading) {
	t.Helper()
	for _, g := range obs.GPUs {
		u, ok := unattributedOn(obs, g.ID)
		t.Logf("%s: GPU %s used %v reserved %v total %v, held by no listed process %v (known %v)",
			when, g.ID, gpuDeref(g.MemoryUsedBytes), gpuDeref(g.MemoryReservedBytes), gpuDeref(g.MemoryTotalBytes), u, ok)
	}
}
