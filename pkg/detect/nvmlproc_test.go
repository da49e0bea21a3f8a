package detect

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// rawProcess is one process as a driver writes it.
type rawProcess struct {
	pid    uint32
	mem    uint64
	gi, ci uint32
}

var noInstance = rawProcess{gi: nvmlNoInstance, ci: nvmlNoInstance}

// driverBytes lays procs out at stride bytes each, in the host's byte
// order, as a driver writes them: the v2 fields, then (stride 32 and over)
// usedGpuCcProtectedMemory = cc, then (stride 40) 8 bytes of fill.
func driverBytes(stride int, cc uint64, procs ...rawProcess) []byte {
	raw := make([]byte, stride*len(procs))
	for i, p := range procs {
		e := raw[i*stride:]
		binary.NativeEndian.PutUint32(e[0:], p.pid)
		binary.NativeEndian.PutUint64(e[8:], p.mem)
		binary.NativeEndian.PutUint32(e[16:], p.gi)
		binary.NativeEndian.PutUint32(e[20:], p.ci)
		if stride >= 32 {
			binary.NativeEndian.PutUint64(e[24:], cc)
		}
		if stride >= 40 {
			binary.NativeEndian.PutUint64(e[32:], 0x0123456789abcdef)
		}
	}
	return raw
}

// goNVMLList is what go-nvml returns when the driver wrote raw, saying n
// processes, into a buffer of room entries: the first n 24-byte entries of
// that buffer. room < n stands for a future go-nvml that copies.
func goNVMLList(raw []byte, n, room int) []nvml.ProcessInfo {
	buf := make([]nvml.ProcessInfo, max(n, room))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*nvmlEntryV2), raw)
	if room < n {
		return buf[:n:n]
	}
	return buf[:n]
}

func withMem(p rawProcess, pid uint32, mem uint64) rawProcess {
	p.pid, p.mem = pid, mem
	return p
}

func TestCheckProcessList(t *testing.T) {
	total := 80 * nvmlGiB
	gpu := nvmlProcessBounds{memoryTotal: &total}
	gi := 3
	mig := nvmlProcessBounds{memoryTotal: &total, mig: true, gpuInstance: &gi}
	three := []rawProcess{
		withMem(noInstance, 4101, 2*nvmlGiB), withMem(noInstance, 4102, 512<<20), withMem(noInstance, 4103, 5*nvmlGiB+4096),
	}
	migProc := func(pid uint32, mem uint64) rawProcess { return rawProcess{pid: pid, mem: mem, gi: 3, ci: 1} }
	asInfos := func(procs ...rawProcess) []nvml.ProcessInfo {
		out := make([]nvml.ProcessInfo, len(procs))
		for i, p := range procs {
			out[i] = nvml.ProcessInfo{Pid: p.pid, UsedGpuMemory: p.mem, GpuInstanceId: p.gi, ComputeInstanceId: p.ci}
		}
		return out
	}
	tests := []struct {
		name      string
		bounds    nvmlProcessBounds
		list      []nvml.ProcessInfo
		want      []nvml.ProcessInfo // nil: dropped
		realigned bool
		dropped   string
	}{
		{
			name: "24-byte entries are read as they are", bounds: gpu,
			list: goNVMLList(driverBytes(24, 0, three...), 3, 6),
			want: asInfos(three...),
		},
		{
			name: "0 for the instance IDs of a GPU without MIG is fine", bounds: gpu,
			list: asInfos(withMem(rawProcess{}, 7, nvmlGiB), withMem(rawProcess{}, 8, nvmlGiB)),
			want: asInfos(withMem(rawProcess{}, 7, nvmlGiB), withMem(rawProcess{}, 8, nvmlGiB)),
		},
		{
			name: "driver 535.54's 32-byte entries are read again at their stride", bounds: gpu,
			list: goNVMLList(driverBytes(32, 0, three...), 3, 6),
			want: asInfos(three...), realigned: true,
		},
		{
			// Read at 24 bytes, the fourth entry's PID is the third's
			// memory's low word: a plausible PID, with valid instance IDs.
			name: "four 32-byte entries, one a memory word posing as a PID", bounds: gpu,
			list: goNVMLList(driverBytes(32, 0, append(three, withMem(noInstance, 4104, 3*nvmlGiB))...), 4, 8),
			want: asInfos(append(three, withMem(noInstance, 4104, 3*nvmlGiB))...), realigned: true,
		},
		{
			name: "one 32-byte entry reads the same in both layouts", bounds: gpu,
			list: goNVMLList(driverBytes(32, 0, three[0]), 1, 2),
			want: asInfos(three[0]),
		},
		{
			name: "32-byte entries on a MIG device", bounds: mig,
			list: goNVMLList(driverBytes(32, 0, migProc(501, nvmlGiB), migProc(502, 6*nvmlGiB), migProc(503, 0)), 3, 6),
			want: asInfos(migProc(501, nvmlGiB), migProc(502, 6*nvmlGiB), migProc(503, 0)), realigned: true,
		},
		{
			name: "32-byte entries whose tail go-nvml did not keep", bounds: gpu,
			list:    goNVMLList(driverBytes(32, 0, three...), 3, 0),
			dropped: "fit neither the 24-byte layout (entry 2 of 3: instance ID",
		},
		{
			name: "40-byte entries fit no layout", bounds: gpu,
			list:    goNVMLList(driverBytes(40, 0, three...), 3, 6),
			dropped: "its 3 entries fit neither",
		},
		{
			name: "32-byte entries with protected memory beyond the device fit no layout", bounds: gpu,
			list:    goNVMLList(driverBytes(32, 100*nvmlGiB, three...), 3, 6),
			dropped: "fit neither",
		},
		{
			name: "another MIG device's instance", bounds: mig,
			list:    asInfos(rawProcess{pid: 9, mem: nvmlGiB, gi: 5, ci: 0}),
			dropped: "GPU instance ID 0x5 on MIG device of GPU instance 3",
		},
		{
			name: "NVML's no-instance on a MIG device is fine", bounds: mig,
			list: asInfos(withMem(noInstance, 9, nvmlGiB)),
			want: asInfos(withMem(noInstance, 9, nvmlGiB)),
		},
		{
			name: "a MIG device whose GPU instance is unknown bounds the IDs", bounds: nvmlProcessBounds{mig: true},
			list:    asInfos(rawProcess{pid: 9, gi: 2, ci: 0}, rawProcess{pid: 10, gi: 4101, ci: 0}),
			dropped: "entry 2 of 2: GPU instance ID 0x1005",
		},
		{
			name: "invalid PIDs alone are left for the caller", bounds: gpu,
			list: asInfos(withMem(noInstance, 0, nvmlGiB), withMem(noInstance, 4294967295, nvmlValueNotAvailable)),
			want: asInfos(withMem(noInstance, 0, nvmlGiB), withMem(noInstance, 4294967295, nvmlValueNotAvailable)),
		},
		{
			name: "too much memory alone is one bad figure, not a shifted list", bounds: gpu,
			list: asInfos(withMem(noInstance, 11, 81*nvmlGiB), withMem(noInstance, 12, nvmlGiB)),
			want: asInfos(withMem(noInstance, 11, 81*nvmlGiB), withMem(noInstance, 12, nvmlGiB)),
		},
		{
			name: "an empty list", bounds: gpu,
			list: []nvml.ProcessInfo{},
			want: []nvml.ProcessInfo{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := checkProcessList(tc.list, tc.bounds)
			if !reflect.DeepEqual(got.entries, tc.want) || got.realigned != tc.realigned {
				t.Errorf("entries %+v (realigned %v)\nwant %+v (realigned %v)", got.entries, got.realigned, tc.want, tc.realigned)
			}
			if tc.dropped == "" && got.dropped != "" || !strings.Contains(got.dropped, tc.dropped) {
				t.Errorf("dropped %q; want it to contain %q", got.dropped, tc.dropped)
			}
		})
	}
}

// TestCheckProcessListNaiveRead holds the premise of the layout check: read
// at 24 bytes, a 32-byte list names processes that are not on the GPU.
func TestCheckProcessListNaiveRead(t *testing.T) {
	procs := []rawProcess{
		withMem(noInstance, 4101, 2*nvmlGiB), withMem(noInstance, 4102, nvmlGiB),
		withMem(noInstance, 4103, 4242), withMem(noInstance, 4104, nvmlGiB),
	}
	list := goNVMLList(driverBytes(32, 0, procs...), 4, 8)
	var pids []uint32
	for _, p := range list {
		pids = append(pids, p.Pid)
	}
	if want := []uint32{4101, 0, 4294967295, 4242}; !reflect.DeepEqual(pids, want) {
		t.Fatalf("PIDs read at 24 bytes = %v; want %v", pids, want)
	}
}
