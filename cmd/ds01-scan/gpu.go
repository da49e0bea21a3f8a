package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// firstUserUID is where login accounts start (UID_MIN in login.defs).
const firstUserUID = 1000

// withDeadline runs f and gives up when ctx ends first. NVML calls go through
// cgo and cannot be interrupted; a hung driver must not hold the scan past
// its budget, so the call is abandoned (the process exits soon after).
func withDeadline[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("timed out: %w", ctx.Err())
	}
}

// observeGPUs asks NVML and the /proc device scan which processes use a GPU,
// and places each one: on its container (one Docker lists, or an unknown
// container of another runtime), or as a host process.
func observeGPUs(ctx context.Context, cfg Config, log *slog.Logger, prev *inventory.Inventory, obs *inventory.Observation, attr *attribution.Attributor) {
	lastSample := map[string]uint64{}
	if prev != nil {
		for _, g := range prev.GPUs {
			lastSample[g.UUID] = g.LastSampleTimestamp
		}
	}
	var samples []detect.GPUSample
	nv, err := withDeadline(ctx, func() (detect.NVMLObservation, error) {
		lib, err := nvmlLibrary()
		if err != nil {
			return detect.NVMLObservation{}, err
		}
		return detect.NewNVML(lib, log).Observe(lastSample)
	})
	if err != nil {
		log.Info("nvml source unavailable", "source", inventory.SourceNVML, "err", err)
		obs.Sources[inventory.SourceNVML] = inventory.SourceResult{Error: err.Error()}
		// What NVML last saw stands, stale, until it answers again: the
		// /proc scan alone cannot tell that those processes left.
		if prev != nil {
			for _, g := range prev.GPUs {
				obs.UnreadGPUs = append(obs.UnreadGPUs, g.ID)
			}
		}
	} else {
		obs.Sources[inventory.SourceNVML] = inventory.SourceResult{OK: true}
		obs.GPUs, samples = nv.GPUs, nv.Samples
		for _, g := range nv.GPUs {
			if g.Lost || g.Error != "" {
				obs.UnreadGPUs = append(obs.UnreadGPUs, g.ID)
			}
		}
	}

	procfs := detect.NewProcfs(cfg.ProcRoot)
	holders, err := withDeadline(ctx, procfs.DeviceHolders)
	warning := ""
	if err != nil && holders != nil && errors.Is(err, fs.ErrPermission) {
		warning = unreadableWarning(err, log)
		err = nil
	}
	if err != nil {
		log.Warn("/proc device scan failed", "source", inventory.SourceProcfs, "err", err)
		obs.Sources[inventory.SourceProcfs] = inventory.SourceResult{Error: err.Error()}
	} else {
		obs.Sources[inventory.SourceProcfs] = inventory.SourceResult{OK: true, Warning: warning}
	}
	obs.ProcessesObserved = obs.Sources[inventory.SourceNVML].OK || obs.Sources[inventory.SourceProcfs].OK
	if !obs.ProcessesObserved {
		return
	}

	dockerOK := obs.Sources[inventory.SourceDocker].OK
	byID := make(map[string]int, len(obs.Containers))
	for i := range obs.Containers {
		byID[obs.Containers[i].ID] = i
	}
	// Minor numbers are fixed until reboot: the last inventory's mapping
	// serves while NVML is down.
	known := obs.GPUs
	if !obs.Sources[inventory.SourceNVML].OK && prev != nil {
		known = prev.GPUs
	}
	for _, use := range detect.MergeGPUUse(samples, holders, detect.GPUIDsByMinor(known)) {
		info, err := procfs.Process(use.PID)
		if err != nil {
			if !errors.Is(err, detect.ErrVanished) {
				log.Debug("cannot read GPU process", "source", inventory.SourceProcfs, "pid", use.PID, "err", err)
			}
			// Gone between the GPU listing and now: nothing to place.
			continue
		}
		if info.ContainerID == "" {
			obs.Processes = append(obs.Processes, hostProcess(info, use, attr))
			continue
		}
		if !dockerOK {
			// Which containers exist is unknown while Docker is down; the
			// last inventory's containers stand, stale, with their last
			// known GPU use.
			continue
		}
		i, known := byID[info.ContainerID]
		if !known {
			obs.Containers = append(obs.Containers, unknownContainer(info, attr))
			i = len(obs.Containers) - 1
			byID[info.ContainerID] = i
		}
		c := &obs.Containers[i]
		for _, gpu := range use.GPUs() {
			c.GPUProcesses = append(c.GPUProcesses, inventory.GPUProcess{
				PID: info.PID, NSPID: info.NSPID, GPU: gpu, MemoryBytes: use.Memory[gpu],
				Kind: kindOf(use), Command: info.Cmdline,
			})
		}
	}
}

func hostProcess(info detect.ProcessInfo, use *detect.GPUUse, attr *attribution.Attributor) inventory.HostProcess {
	r := attr.Process(info)
	typ := inventory.TypeHostProcess
	// A name is easy to borrow: only system accounts' processes may be
	// hidden as system ones. A user's own gnome-shell stays theirs.
	if detect.IsSystemProcess(info.Comm, info.Cmdline) && info.UID < firstUserUID {
		typ = inventory.TypeSystem
	}
	return inventory.HostProcess{
		PID: info.PID, StartTicks: info.StartTicks, Type: typ, Command: info.Cmdline,
		User: r.User, UserSource: r.Source, StartedAt: info.StartedAt,
		GPUs: use.GPUs(), GPUMemoryBytes: use.TotalMemory(), Kinds: use.Kinds, SMUtilPercent: use.SMUtil,
	}
}

// unknownContainer records a container that Docker does not list but a GPU
// process's cgroup names: another runtime (podman, containerd, Kubernetes).
func unknownContainer(info detect.ProcessInfo, attr *attribution.Attributor) inventory.Container {
	r := attr.Process(info)
	return inventory.Container{
		ID: info.ContainerID, Name: info.Runtime + "-" + inventory.ShortID(info.ContainerID),
		Type: inventory.TypeUnknown, Status: "running", Runtime: info.Runtime,
		CreatedAt: info.StartedAt, User: r.User, UserSource: r.Source,
	}
}

// kindOf names how a process was seen, for one-line display.
func kindOf(u *detect.GPUUse) string {
	if len(u.Kinds) == 0 {
		return ""
	}
	return u.Kinds[0]
}

// unreadableWarning judges a /proc device scan that could not read some
// processes' descriptors (err). Without CAP_SYS_PTRACE that is every other
// user's process, a blind spot the inventory must show: the returned
// warning. With it, the few left are closed even to root (a sandbox's
// init) and only worth a debug line.
func unreadableWarning(err error, log *slog.Logger) string {
	ptrace, cerr := detect.HasPtraceCapability()
	if cerr != nil || ptrace {
		log.Debug("/proc device scan skipped unreadable processes", "source", inventory.SourceProcfs, "err", err)
		return ""
	}
	warning := fmt.Sprintf("could not %v: ds01-scan lacks CAP_SYS_PTRACE, so a process that holds a GPU "+
		"device without NVML listing it goes unseen (the ds01-scan.service unit grants it)", err)
	log.Warn("/proc device scan is partly blind", "source", inventory.SourceProcfs, "err", err)
	return warning
}
