package detect

import (
	"slices"
	"sort"
	"strconv"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// GPUUse is what the GPU sources together say about one process.
type GPUUse struct {
	PID int
	// Memory maps each GPU the process is on to its memory there (nil:
	// unknown).
	Memory map[string]*uint64
	// Kinds are how it was seen, sorted: compute, graphics, mps, device.
	Kinds []string
	// SMUtil is the highest per-process SM utilisation sampled, if any.
	SMUtil *uint32
}

// GPUs returns the GPUs of the use, sorted.
func (u *GPUUse) GPUs() []string {
	out := make([]string, 0, len(u.Memory))
	for g := range u.Memory {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// TotalMemory sums the known memory over every GPU; nil when none is known.
func (u *GPUUse) TotalMemory() *uint64 {
	var sum uint64
	known := false
	for _, m := range u.Memory {
		if m != nil {
			sum += *m
			known = true
		}
	}
	if !known {
		return nil
	}
	return &sum
}

// KnownMemory maps each GPU with a known memory figure to it; nil when
// none is known.
func (u *GPUUse) KnownMemory() map[string]uint64 {
	var out map[string]uint64
	for g, m := range u.Memory {
		if m != nil {
			if out == nil {
				out = make(map[string]uint64, len(u.Memory))
			}
			out[g] = *m
		}
	}
	return out
}

// MergeGPUUse joins NVML's samples and the /proc device holders by PID. A
// process both list keeps NVML's memory figures; a process only the device
// scan saw is of kind "device" with no memory figure. A holder of a device
// that names no GPU ("" from nvidia-caps) adds no GPU but still counts as a
// GPU process. Holders name devices by /dev/nvidiaN minor number; gpus
// turns those into GPU IDs where a GPU list said which is which, else the
// device node stands ("/dev/nvidia3"), never guessed to be index N. The
// result is sorted by PID.
func MergeGPUUse(samples []GPUSample, holders map[int][]string, gpus inventory.GPUIndex) []*GPUUse {
	byPID := map[int]*GPUUse{}
	get := func(pid int) *GPUUse {
		u := byPID[pid]
		if u == nil {
			u = &GPUUse{PID: pid, Memory: map[string]*uint64{}}
			byPID[pid] = u
		}
		return u
	}
	for _, s := range samples {
		if s.PID <= 0 {
			continue
		}
		u := get(s.PID)
		// The same process in the compute and graphics lists reports the
		// same allocation twice: keep the larger, do not add.
		if old, ok := u.Memory[s.GPU]; !ok || old == nil || s.MemoryBytes != nil && *s.MemoryBytes > *old {
			u.Memory[s.GPU] = s.MemoryBytes
		}
		u.Kinds = addKind(u.Kinds, s.Kind)
		if s.SMUtil != nil && (u.SMUtil == nil || *s.SMUtil > *u.SMUtil) {
			v := *s.SMUtil
			u.SMUtil = &v
		}
	}
	for pid, devs := range holders {
		if pid <= 0 {
			continue
		}
		_, listed := byPID[pid]
		u := get(pid)
		for _, d := range devs {
			if minor, err := strconv.Atoi(d); err == nil {
				d = gpus.ID(inventory.DeviceNode(minor))
			}
			if _, ok := u.Memory[d]; !ok && d != "" && !listed {
				u.Memory[d] = nil
			}
		}
		if !listed {
			u.Kinds = addKind(u.Kinds, inventory.KindDevice)
		}
	}
	out := make([]*GPUUse, 0, len(byPID))
	for _, u := range byPID {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

func addKind(kinds []string, k string) []string {
	if k == "" || slices.Contains(kinds, k) {
		return kinds
	}
	kinds = append(kinds, k)
	sort.Strings(kinds)
	return kinds
}
