package scan

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// A PID from NVML is a claim, not a fact: a driver and library that
// disagree on the layout of the process list (driver 535.54) turn memory
// figures and instance IDs into PIDs, some of them real processes, and a
// PID reused between the list and the scan's read of /proc names another
// process. Each PID NVML listed is held to what /proc says of it after the
// list was taken.

// nvmlStartSlack is how much later than NVML's list a process may seem to
// have started: /proc's start times are good to the second (the boot time
// is whole seconds).
const nvmlStartSlack = 2 * time.Second

// ListedProcess is what /proc says about one PID NVML listed, read after
// the list was taken.
type ListedProcess struct {
	// Gone is true when /proc has no such process.
	Gone bool
	// Info is the process; nil when it is gone or could not be read, and
	// then its start is not checked.
	Info *detect.ProcessInfo
	// DescriptorsRead is true when its open descriptors could be read;
	// HoldsGPU then says whether one of them is a GPU device
	// (/dev/nvidiaN or a MIG capability).
	DescriptorsRead, HoldsGPU bool
}

// VerifyNVMLSamples returns the samples whose PIDs /proc bears out, and a
// warning naming the PIDs it dropped ("" when none): a process that is not
// running, one that started after listedAt (the time NVML's lists were
// taken; zero: not checked), and one whose descriptors could be read and
// hold no GPU device. A PID missing from procs is not checked and kept.
//
// MPS samples are not held to the descriptor check: an MPS client reaches
// the GPU through the MPS server and need not hold its device.
//
// A process that opened its GPU after the descriptor scan looked at it is
// not dropped, as long as it holds the device when NVML lists it: the
// caller reads descriptors after the list (see listedProcesses).
func VerifyNVMLSamples(samples []detect.GPUSample, listedAt time.Time, procs map[int]ListedProcess) ([]detect.GPUSample, string) {
	var kept []detect.GPUSample
	var dropped []string
	said := map[int]bool{}
	for _, s := range samples {
		why := unverified(s, listedAt, procs)
		if why == "" {
			kept = append(kept, s)
			continue
		}
		if !said[s.PID] {
			said[s.PID] = true
			dropped = append(dropped, fmt.Sprintf("PID %d %s", s.PID, why))
		}
	}
	if len(dropped) == 0 {
		return kept, ""
	}
	const named = 5
	more := ""
	if len(dropped) > named {
		more = fmt.Sprintf(" and %d more", len(dropped)-named)
		dropped = dropped[:named]
	}
	return kept, fmt.Sprintf("dropped %d processes NVML listed that /proc does not bear out: %s%s",
		len(said), strings.Join(dropped, "; "), more)
}

// unverified says why /proc does not bear out sample s, or "".
func unverified(s detect.GPUSample, listedAt time.Time, procs map[int]ListedProcess) string {
	p, ok := procs[s.PID]
	switch {
	case !ok:
		return ""
	case p.Gone:
		return "is not running"
	case p.Info != nil && !listedAt.IsZero() && p.Info.StartedAt.After(listedAt.Add(nvmlStartSlack)):
		return fmt.Sprintf("started at %s, after the list was taken", p.Info.StartedAt.UTC().Format(time.RFC3339))
	case p.DescriptorsRead && !p.HoldsGPU && s.Kind != inventory.KindMPS:
		return "holds no GPU device open"
	}
	return ""
}

// verifyNVML drops from nv's samples the PIDs /proc does not bear out and
// adds to nv's warning what it dropped. It returns what /proc said of each
// PID, so that placing the processes does not read them again.
func (s *Scanner) verifyNVML(nv *outcome[detect.NVMLReading], holders map[int][]string) map[int]ListedProcess {
	if len(nv.value.Samples) == 0 {
		return nil
	}
	procs := s.listedProcesses(nv.value.Samples, holders)
	var warning string
	nv.value.Samples, warning = VerifyNVMLSamples(nv.value.Samples, nv.value.ListedAt, procs)
	if warning != "" {
		s.log.Warn("NVML process list does not match /proc", "source", inventory.SourceNVML, "warning", warning)
		nv.status.Warning = joinWarnings(nv.status.Warning, warning)
	}
	return procs
}

// listedProcesses reads from /proc each PID the samples name. A holder in
// the descriptor scan (holders) holds a GPU device without a second look;
// another process's descriptors are read now, after NVML's list.
//
// When the descriptor scan saw no GPU holder at all, descriptors are not
// read: on this machine no process's descriptors show its GPU use (a
// scanner whose /proc or /dev is not the host's, device nodes under other
// names, a mock NVML on a machine without GPUs), so holding none proves
// nothing.
func (s *Scanner) listedProcesses(samples []detect.GPUSample, holders map[int][]string) map[int]ListedProcess {
	out := make(map[int]ListedProcess, len(samples))
	descriptorsShowUse := len(holders) > 0
	for _, sample := range samples {
		pid := sample.PID
		if _, ok := out[pid]; ok {
			continue
		}
		var p ListedProcess
		info, err := s.procfs.Process(pid)
		switch {
		case errors.Is(err, detect.ErrVanished):
			p.Gone = true
		case err != nil:
			s.log.Debug("cannot read a process NVML listed", "source", inventory.SourceProcfs, "pid", pid, "err", err)
		default:
			p.Info = &info
		}
		if _, ok := holders[pid]; ok {
			p.DescriptorsRead, p.HoldsGPU = true, true
		} else if !p.Gone && descriptorsShowUse {
			if devs, err := s.procfs.GPUDevices(pid); err == nil {
				p.DescriptorsRead, p.HoldsGPU = true, len(devs) > 0
			}
		}
		out[pid] = p
	}
	return out
}

// joinWarnings joins the warnings that are not empty.
func joinWarnings(warnings ...string) string {
	var out []string
	for _, w := range warnings {
		if w != "" {
			out = append(out, w)
		}
	}
	return strings.Join(out, "; ")
}
