package scan

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// The rules that put what the sources saw together. Each is a pure function
// of the facts handed to it: no Docker, no NVML, no /proc.

// firstUserUID is where login accounts start (UID_MIN in login.defs).
const firstUserUID = 1000

// GPUProcess is one process on a GPU as the GPU sources and /proc together
// saw it: which GPUs, with what memory, and who and where the process is.
type GPUProcess struct {
	Use  *detect.GPUUse
	Info detect.ProcessInfo
	// Launcher is what started a process outside any container, as
	// detect.ProcessLauncher told it; nil where it could not be told.
	Launcher *inventory.Launcher
}

// Placed is where the GPU processes of one scan belong.
type Placed struct {
	// Containers are the containers Docker listed, each with its GPU
	// processes, then the containers of other runtimes seen only through
	// a GPU process's cgroup.
	Containers []inventory.Container
	// Processes are the GPU processes outside any container.
	Processes []inventory.HostProcess
}

// Place puts each GPU process where it belongs: on the container Docker
// listed that its cgroup names; on an unknown container of another runtime
// (podman, containerd, Kubernetes) when Docker does not list it; or, outside
// any container, as a host process (or a system one). While Docker is down
// (dockerOK false) which containers exist is unknown, so a process in a
// container is not placed at all: the last inventory's containers stand,
// stale, with their last known GPU use. owner attributes a process that is
// not in a container Docker knows.
//
// containers is not modified; a container in the result gets its own
// GPUProcesses.
func Place(containers []inventory.Container, dockerOK bool, procs []GPUProcess, owner func(detect.ProcessInfo) attribution.Result) Placed {
	out := Placed{Containers: make([]inventory.Container, len(containers), len(containers)+1)}
	copy(out.Containers, containers)
	byID := make(map[string]int, len(containers))
	for i := range out.Containers {
		out.Containers[i].GPUProcesses = nil
		byID[out.Containers[i].ID] = i
	}
	for _, p := range procs {
		if p.Info.ContainerID == "" {
			out.Processes = append(out.Processes, hostProcess(p, owner(p.Info)))
			continue
		}
		if !dockerOK {
			continue
		}
		i, listed := byID[p.Info.ContainerID]
		if !listed {
			out.Containers = append(out.Containers, unknownContainer(p.Info, owner(p.Info)))
			i = len(out.Containers) - 1
			byID[p.Info.ContainerID] = i
		}
		c := &out.Containers[i]
		for _, gpu := range p.Use.GPUs() {
			c.GPUProcesses = append(c.GPUProcesses, inventory.GPUProcess{
				PID: p.Info.PID, NSPID: p.Info.NSPID, GPU: gpu, MemoryBytes: p.Use.Memory[gpu],
				Kind: firstKind(p.Use), Command: p.Info.Cmdline,
			})
		}
	}
	return out
}

// hostProcess records a GPU process outside any container. A name is easy
// to borrow: only system accounts' processes may be hidden as system ones,
// and a user's own gnome-shell stays theirs.
func hostProcess(p GPUProcess, r attribution.Result) inventory.HostProcess {
	typ := inventory.TypeHostProcess
	if detect.IsSystemProcess(p.Info.Comm, p.Info.Cmdline) && p.Info.UID < firstUserUID {
		typ = inventory.TypeSystem
	}
	return inventory.HostProcess{
		PID: p.Info.PID, StartTicks: p.Info.StartTicks, Type: typ, Command: p.Info.Cmdline,
		User: r.User, UserSource: r.Source, StartedAt: p.Info.StartedAt,
		GPUs: p.Use.GPUs(), GPUMemoryBytes: p.Use.TotalMemory(), GPUMemory: p.Use.KnownMemory(),
		Kinds: p.Use.Kinds, SMUtilPercent: p.Use.SMUtil, Launcher: p.Launcher,
	}
}

// unknownContainer records a container that Docker does not list but a GPU
// process's cgroup names: another runtime's.
func unknownContainer(info detect.ProcessInfo, r attribution.Result) inventory.Container {
	return inventory.Container{
		ID: info.ContainerID, Name: info.Runtime + "-" + inventory.ShortID(info.ContainerID),
		Type: inventory.TypeUnknown, Status: "running", Runtime: info.Runtime,
		CreatedAt: info.StartedAt, User: r.User, UserSource: r.Source,
		Launcher: detect.ContainerLauncher(info.Runtime, info.Cgroup),
	}
}

// firstKind names how a process was seen, for one-line display.
func firstKind(u *detect.GPUUse) string {
	if len(u.Kinds) == 0 {
		return ""
	}
	return u.Kinds[0]
}

// KnownGPUs are the GPUs whose minor numbers name /dev/nvidiaN: NVML's
// answer when it gave one, else the last inventory's. Minor numbers are
// fixed until reboot, so the last mapping serves while NVML is down.
func KnownGPUs(nvmlOK bool, observed []inventory.GPUDevice, prev *inventory.Inventory) []inventory.GPUDevice {
	if !nvmlOK && prev != nil {
		return prev.GPUs
	}
	return observed
}

// UnreadGPUs are the devices whose processes this scan could not list, so
// that processes last seen there are kept, stale, rather than taken for
// exited. With NVML down that is every GPU it last reported: the /proc scan
// alone cannot tell that those processes left. With NVML up it is each
// device that was lost or failed to answer.
func UnreadGPUs(nvmlOK bool, observed []inventory.GPUDevice, prev *inventory.Inventory) []string {
	var out []string
	if !nvmlOK {
		if prev != nil {
			for _, g := range prev.GPUs {
				out = append(out, g.ID)
			}
		}
		return out
	}
	for _, g := range observed {
		if g.Lost || g.Error != "" {
			out = append(out, g.ID)
		}
	}
	return out
}

// LastGPUs maps each GPU's UUID to the device as the last scan recorded
// it: NVML is asked only for utilisation samples and accounting records
// newer than it saw.
func LastGPUs(prev *inventory.Inventory) map[string]inventory.GPUDevice {
	m := map[string]inventory.GPUDevice{}
	if prev != nil {
		for _, g := range prev.GPUs {
			m[g.UUID] = g
		}
	}
	return m
}

// BriefProcesses are the processes NVML's accounting shows ended since the
// last scan that no scan saw running: started after the last scan began,
// and not among its GPU processes (it may have listed one that started
// just after it began). Without a last scan nothing can be told.
func BriefProcesses(records []detect.AccountingRecord, prev *inventory.Inventory) []inventory.BriefProcess {
	if prev == nil || prev.Scan.Time.IsZero() || len(records) == 0 {
		return nil
	}
	seen := map[int]bool{}
	for _, p := range prev.HostProcesses {
		seen[p.PID] = true
	}
	for _, p := range prev.PendingProcesses {
		seen[p.PID] = true
	}
	for _, c := range prev.Containers {
		for _, p := range c.GPUProcesses {
			seen[p.PID] = true
		}
	}
	var out []inventory.BriefProcess
	for _, r := range records {
		if !r.StartedAt.After(prev.Scan.Time) || seen[r.PID] {
			continue
		}
		out = append(out, inventory.BriefProcess{
			GPU: r.GPU, GPUUUID: r.UUID, PID: r.PID, StartedAt: r.StartedAt, Duration: r.Duration,
			MaxMemoryBytes: r.MaxMemoryBytes, GPUUtilPercent: r.GPUUtilPercent, User: attribution.Unknown,
		})
	}
	return out
}

// ScanWarning judges a /proc device scan that could not read some
// processes' descriptors (err, wrapping fs.ErrPermission). Without
// CAP_SYS_PTRACE (ptrace false) that is every other user's process: a blind
// spot the inventory must show, and the returned warning says so. With it,
// the few left are closed even to root (a sandbox's init) and not worth a
// warning: the result is empty.
func ScanWarning(err error, ptrace bool) string {
	if err == nil || ptrace || !errors.Is(err, fs.ErrPermission) {
		return ""
	}
	return fmt.Sprintf("could not %v: ds01-scan lacks CAP_SYS_PTRACE, so a process that holds a GPU "+
		"device without NVML listing it goes unseen (the ds01-scan.service unit grants it)", err)
}
