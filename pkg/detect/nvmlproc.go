package detect

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Process lists whose layout the driver and go-nvml disagree on.
//
// go-nvml reads every process list as nvmlProcessInfo_v2_t: 24 bytes an
// entry (pid, 4 bytes of padding, usedGpuMemory, gpuInstanceId,
// computeInstanceId). Driver 535.54 (CUDA 12.2) writes 32-byte entries
// behind the same symbols, the same fields followed by
// usedGpuCcProtectedMemory (go-nvml issue #75; nvitop #75, #93). The first
// entry reads right; the others are read from the wrong offsets, so the
// list holds zeros, instance IDs where PIDs should be, and the low word of
// a memory figure read as a PID, which can be a real, unrelated process.
//
// A list is recognised as misaligned from what the device allows: every
// entry of a list read right carries instance IDs valid for the device
// (0xFFFFFFFF or 0 on a GPU without MIG, the MIG device's own on a MIG
// device) and no more memory than the device has. When an entry does not,
// the bytes the driver wrote are read again at the 32-byte stride; if every
// entry then has a valid PID, valid instance IDs and memory within the
// device's, that is the list. If neither layout adds up, no entry of the
// list is believed: the device says why and the /proc descriptor scan
// still sees its processes.

// Entry strides of the two layouts NVML has written behind the _v3
// process-list symbols.
const (
	nvmlEntryV2  = 24 // nvmlProcessInfo_v2_t, what go-nvml reads
	nvmlEntry535 = 32 // driver 535.54: v2 and then usedGpuCcProtectedMemory
)

// nvml.ProcessInfo must be nvmlProcessInfo_v2_t byte for byte: the bytes
// behind a list are read as that. This fails to compile otherwise.
var _ = [1]struct{}{}[unsafe.Sizeof(nvml.ProcessInfo{})-nvmlEntryV2]

// nvmlNoInstance is NVML's "no instance" GPU or compute instance ID.
const nvmlNoInstance = ^uint32(0)

// nvmlProcessBounds is what a device allows in its process lists.
type nvmlProcessBounds struct {
	memoryTotal *uint64
	// mig is true for a MIG device; gpuInstance is its GPU instance ID,
	// nil when it could not be read.
	mig         bool
	gpuInstance *int
}

func nvmlBoundsOf(r *nvmlDeviceRead) nvmlProcessBounds {
	return nvmlProcessBounds{memoryTotal: r.dev.MemoryTotalBytes, mig: r.dev.Parent != "", gpuInstance: r.dev.GPUInstanceID}
}

// badInstances says why p's instance IDs cannot be this device's, or "".
func (b nvmlProcessBounds) badInstances(p nvml.ProcessInfo) string {
	if !b.mig {
		for _, id := range []uint32{p.GpuInstanceId, p.ComputeInstanceId} {
			if id != nvmlNoInstance && id != 0 {
				return fmt.Sprintf("instance ID %#x on a GPU without MIG", id)
			}
		}
		return ""
	}
	gi := p.GpuInstanceId
	switch {
	case gi == nvmlNoInstance:
	case b.gpuInstance != nil && int64(gi) != int64(*b.gpuInstance):
		return fmt.Sprintf("GPU instance ID %#x on MIG device of GPU instance %d", gi, *b.gpuInstance)
	case gi >= nvmlMaxMIGDevices:
		return fmt.Sprintf("GPU instance ID %#x", gi)
	}
	// NVML may list a GPU instance's processes on each of its compute
	// instances, so the compute instance ID is only bounded.
	if ci := p.ComputeInstanceId; ci != nvmlNoInstance && ci >= nvmlMaxMIGDevices {
		return fmt.Sprintf("compute instance ID %#x", ci)
	}
	return ""
}

// tooMuchMemory says whether used is more than the device has.
func (b nvmlProcessBounds) tooMuchMemory(used uint64) bool {
	return used != nvmlValueNotAvailable && b.memoryTotal != nil && used > *b.memoryTotal
}

// nvmlListCheck is what checkProcessList made of one list.
type nvmlListCheck struct {
	// entries are the list to use: as go-nvml read it, re-read at the
	// 32-byte stride, or nil when dropped.
	entries []nvml.ProcessInfo
	// realigned is true when entries were re-read at the 32-byte stride.
	realigned bool
	// dropped says why no entry is believed; "" when entries are used.
	dropped string
}

// checkProcessList checks a process list go-nvml read against the device
// (see the top of this file). Entries with an invalid PID but instance IDs
// and memory the device allows are left in, for the caller to count as
// unknown processes; so is an entry whose only fault is too much memory,
// when no other layout explains it: one bad figure is not a shifted list.
func checkProcessList(infos []nvml.ProcessInfo, b nvmlProcessBounds) nvmlListCheck {
	why := ""
	shifted := false
	for i, p := range infos {
		if bad := b.badInstances(p); bad != "" {
			why, shifted = fmt.Sprintf("entry %d of %d: %s", i+1, len(infos), bad), true
			break
		}
		if why == "" && b.tooMuchMemory(p.UsedGpuMemory) {
			why = fmt.Sprintf("entry %d of %d: %d bytes on a device of %d", i+1, len(infos), p.UsedGpuMemory, *b.memoryTotal)
		}
	}
	if why == "" {
		return nvmlListCheck{entries: infos}
	}
	raw := nvmlListBytes(infos)
	if again, ok := decodeProcessList(raw, nvmlEntry535, len(infos)); ok && b.addsUp(again, raw) {
		return nvmlListCheck{entries: again, realigned: true}
	}
	if !shifted {
		return nvmlListCheck{entries: infos}
	}
	what := fmt.Sprintf("its %d entries fit", len(infos))
	if len(infos) == 1 {
		what = "its one entry fits"
	}
	return nvmlListCheck{dropped: fmt.Sprintf("%s neither the %d-byte layout (%s) nor the %d-byte one of driver 535.54",
		what, nvmlEntryV2, why, nvmlEntry535)}
}

// addsUp says whether every entry of a list re-read at the 32-byte stride
// is a process of this device: a valid PID, valid instance IDs, memory and
// protected memory (the 32-byte layout's last field, where raw holds it)
// within the device's.
func (b nvmlProcessBounds) addsUp(entries []nvml.ProcessInfo, raw []byte) bool {
	for i, p := range entries {
		if !validNVMLPID(p.Pid) || b.badInstances(p) != "" || b.tooMuchMemory(p.UsedGpuMemory) {
			return false
		}
		if off := i*nvmlEntry535 + nvmlEntryV2; off+8 <= len(raw) && b.tooMuchMemory(binary.NativeEndian.Uint64(raw[off:])) {
			return false
		}
	}
	return true
}

// decodeProcessList reads n entries at stride bytes each from raw, with
// nvmlProcessInfo_v2_t's field offsets, in the host's byte order (the
// driver's). ok is false when raw is too short for n entries.
func decodeProcessList(raw []byte, stride, n int) (entries []nvml.ProcessInfo, ok bool) {
	if n <= 0 || (n-1)*stride+nvmlEntryV2 > len(raw) {
		return nil, false
	}
	entries = make([]nvml.ProcessInfo, n)
	for i := range entries {
		e := raw[i*stride:]
		entries[i] = nvml.ProcessInfo{
			Pid:               binary.NativeEndian.Uint32(e[0:]),
			UsedGpuMemory:     binary.NativeEndian.Uint64(e[8:]),
			GpuInstanceId:     binary.NativeEndian.Uint32(e[16:]),
			ComputeInstanceId: binary.NativeEndian.Uint32(e[20:]),
		}
	}
	return entries, true
}

// nvmlListBytes returns the bytes behind infos as the driver wrote them:
// the whole buffer go-nvml handed it, up to the slice's capacity.
//
// The bytes are read in place, not rebuilt from the fields: each 24-byte
// entry has 4 bytes of padding after its PID, and in a 32-byte list those
// bytes hold real fields (in every run of three entries, the second's
// compute instance ID and the high word of the third's memory). The
// capacity matters too: go-nvml makes its buffer twice the count the
// driver asked for and returns the first count entries of it, so the last
// quarter of a 32-byte list lies past the slice's length.
func nvmlListBytes(infos []nvml.ProcessInfo) []byte {
	if cap(infos) == 0 {
		return nil
	}
	all := infos[:cap(infos)]
	return unsafe.Slice((*byte)(unsafe.Pointer(&all[0])), len(all)*nvmlEntryV2)
}
