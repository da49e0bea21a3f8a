package detect

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/ds01-project/ds01/pkg/inventory"
)

const nvmlGiB = uint64(1) << 30

// newMockServer returns go-nvml's DGX A100 mock server (8 GPUs) with the
// calls Observe makes that the mock leaves unset (and would panic on)
// assigned: persistence mode on, empty process lists, no utilisation
// samples. Each test then overrides what it is about.
func newMockServer(t *testing.T) *server.Server {
	t.Helper()
	s := dgxa100.New()
	for i := range s.Devices {
		prepareMockDevice(mockDevice(s, i))
	}
	return s
}

func prepareMockDevice(d *server.Device) {
	d.GetMemoryInfo_v2Func = memoryV2Of(d)
	d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = mockProcs(nil)
	d.GetGraphicsRunningProcessesFunc = mockProcs(nil)
	d.GetMPSComputeRunningProcessesFunc = mockProcs(nil)
	d.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return nil, nvml.ERROR_NOT_FOUND
	}
	d.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
	d.GetAccountingPidsFunc = func() ([]int, nvml.Return) { return nil, nvml.SUCCESS }
}

// memoryV2Of answers the v2 memory call as d answers the first, with
// nothing reserved: a test that breaks the first breaks both.
func memoryV2Of(d *server.Device) func() (nvml.Memory_v2, nvml.Return) {
	return func() (nvml.Memory_v2, nvml.Return) {
		m, ret := d.GetMemoryInfo()
		return nvml.Memory_v2{Total: m.Total, Used: m.Used, Free: m.Free}, ret
	}
}

func mockDevice(s *server.Server, i int) *server.Device { return s.Devices[i].(*server.Device) }

// mockProcs is a process-list function returning infos.
func mockProcs(infos []nvml.ProcessInfo) func() ([]nvml.ProcessInfo, nvml.Return) {
	return func() ([]nvml.ProcessInfo, nvml.Return) { return infos, nvml.SUCCESS }
}

func mockFailing(ret nvml.Return) func() ([]nvml.ProcessInfo, nvml.Return) {
	return func() ([]nvml.ProcessInfo, nvml.Return) { return nil, ret }
}

func nvmlU64(v uint64) *uint64 { return &v }

func observeMock(t *testing.T, s *server.Server, last map[string]inventory.GPUDevice) NVMLReading {
	t.Helper()
	obs, err := NewNVML(s, nil).Observe(last)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return obs
}

func findNVMLGPU(t *testing.T, obs NVMLReading, id string) inventory.GPUDevice {
	t.Helper()
	for _, g := range obs.GPUs {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("no GPU %q in %+v", id, obs.GPUs)
	return inventory.GPUDevice{}
}

func nvmlGPUIDs(obs NVMLReading) []string {
	var ids []string
	for _, g := range obs.GPUs {
		ids = append(ids, g.ID)
	}
	return ids
}

func TestObserveDevices(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *server.Server)
		check func(t *testing.T, s *server.Server, obs NVMLReading)
	}{
		{
			name: "every GPU with identity, memory and persistence",
			check: func(t *testing.T, s *server.Server, obs NVMLReading) {
				if want := []string{"0", "1", "2", "3", "4", "5", "6", "7"}; !reflect.DeepEqual(nvmlGPUIDs(obs), want) {
					t.Fatalf("GPU IDs %v, want %v", nvmlGPUIDs(obs), want)
				}
				d := mockDevice(s, 5)
				on := true
				minor := d.Minor
				want := inventory.GPUDevice{
					ID: "5", Index: 5, UUID: d.UUID, Name: "Mock NVIDIA A100-SXM4-40GB", MinorNumber: &minor,
					MemoryTotalBytes: nvmlU64(40 * nvmlGiB), MemoryUsedBytes: nvmlU64(0), MemoryReservedBytes: nvmlU64(0), PersistenceMode: &on,
					AccountingMode: &on,
				}
				if got := findNVMLGPU(t, obs, "5"); !reflect.DeepEqual(got, want) {
					t.Errorf("GPU 5:\n got %+v\nwant %+v", got, want)
				}
				if len(obs.Samples) != 0 {
					t.Errorf("samples %+v, want none", obs.Samples)
				}
			},
		},
		{
			name: "persistence off and not supported",
			setup: func(s *server.Server) {
				mockDevice(s, 0).GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_DISABLED, nvml.SUCCESS }
				mockDevice(s, 1).GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, s *server.Server, obs NVMLReading) {
				if g := findNVMLGPU(t, obs, "0"); g.PersistenceMode == nil || *g.PersistenceMode || g.Error != "" {
					t.Errorf("GPU 0 persistence %v error %q, want false and no error", g.PersistenceMode, g.Error)
				}
				if g := findNVMLGPU(t, obs, "1"); g.PersistenceMode != nil || g.Error != "" {
					t.Errorf("GPU 1 persistence %v error %q, want nil and no error", g.PersistenceMode, g.Error)
				}
			},
		},
		{
			name: "MIG mode not supported is a GPU without MIG",
			setup: func(s *server.Server) {
				mockDevice(s, 2).GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, s *server.Server, obs NVMLReading) {
				if g := findNVMLGPU(t, obs, "2"); g.MIGEnabled || g.Error != "" || g.UUID != mockDevice(s, 2).UUID {
					t.Errorf("GPU 2 %+v, want a plain GPU without error", g)
				}
			},
		},
		{
			name: "failed calls are recorded and the rest is read",
			setup: func(s *server.Server) {
				d := mockDevice(s, 3)
				d.GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
				d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_TIMEOUT }
				d.GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 77, UsedGpuMemory: nvmlGiB}})
			},
			check: func(t *testing.T, s *server.Server, obs NVMLReading) {
				g := findNVMLGPU(t, obs, "3")
				if g.Lost || g.UUID != mockDevice(s, 3).UUID || g.MemoryTotalBytes != nil || g.PersistenceMode == nil {
					t.Errorf("GPU 3 %+v, want read apart from name and memory", g)
				}
				for _, want := range []string{"read name: ERROR_UNKNOWN", "read memory: ERROR_TIMEOUT"} {
					if !strings.Contains(g.Error, want) {
						t.Errorf("GPU 3 error %q, want it to contain %q", g.Error, want)
					}
				}
				if len(obs.Samples) != 1 || obs.Samples[0].PID != 77 {
					t.Errorf("samples %+v, want PID 77", obs.Samples)
				}
			},
		},
		{
			name: "a nil handle with SUCCESS is an error, not a panic",
			setup: func(s *server.Server) {
				byIndex := s.DeviceGetHandleByIndexFunc
				s.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
					if i == 4 {
						return nil, nvml.SUCCESS
					}
					return byIndex(i)
				}
			},
			check: func(t *testing.T, s *server.Server, obs NVMLReading) {
				if g := findNVMLGPU(t, obs, "4"); g.Error == "" || g.UUID != "" {
					t.Errorf("GPU 4 %+v, want listed with an error", g)
				}
				if len(obs.GPUs) != 8 {
					t.Errorf("%d GPUs, want 8", len(obs.GPUs))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMockServer(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			tc.check(t, s, observeMock(t, s, nil))
		})
	}
}

func TestObserveProcesses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *server.Server)
		// want lists the samples; GPUUUID is filled in from the mock.
		want    []GPUSample
		unknown map[string]int    // GPU ID → UnknownProcesses
		errs    map[string]string // GPU ID → part of Error
	}{
		{
			name: "compute, graphics and MPS on plain GPUs",
			setup: func(s *server.Server) {
				mockDevice(s, 0).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{
					{Pid: 1234, UsedGpuMemory: 4 * nvmlGiB}, {Pid: 1235, UsedGpuMemory: nvmlGiB},
				})
				mockDevice(s, 0).GetGraphicsRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 900, UsedGpuMemory: 64 << 20}})
				mockDevice(s, 6).GetMPSComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 4321, UsedGpuMemory: 2 * nvmlGiB}})
			},
			want: []GPUSample{
				{PID: 1234, GPU: "0", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(4 * nvmlGiB)},
				{PID: 1235, GPU: "0", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(nvmlGiB)},
				{PID: 900, GPU: "0", Kind: inventory.KindGraphics, MemoryBytes: nvmlU64(64 << 20)},
				{PID: 4321, GPU: "6", Kind: inventory.KindMPS, MemoryBytes: nvmlU64(2 * nvmlGiB)},
			},
		},
		{
			name: "memory not available or beyond the device is nil",
			setup: func(s *server.Server) {
				mockDevice(s, 1).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{
					{Pid: 10, UsedGpuMemory: ^uint64(0)}, {Pid: 11, UsedGpuMemory: 41 * nvmlGiB}, {Pid: 12, UsedGpuMemory: 0},
				})
			},
			want: []GPUSample{
				{PID: 10, GPU: "1", Kind: inventory.KindCompute},
				{PID: 11, GPU: "1", Kind: inventory.KindCompute},
				{PID: 12, GPU: "1", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(0)},
			},
		},
		{
			name: "invalid PIDs are unknown processes, not samples",
			setup: func(s *server.Server) {
				mockDevice(s, 2).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{
					{Pid: 0, UsedGpuMemory: nvmlGiB}, {Pid: 4294967295, UsedGpuMemory: nvmlGiB}, {Pid: 55, UsedGpuMemory: nvmlGiB},
				})
				mockDevice(s, 2).GetGraphicsRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 0, UsedGpuMemory: ^uint64(0)}})
				mockDevice(s, 3).GetMPSComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 5_000_000}})
			},
			want:    []GPUSample{{PID: 55, GPU: "2", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(nvmlGiB)}},
			unknown: map[string]int{"2": 3, "3": 1},
		},
		{
			name: "duplicates in one list merge, the same PID in two lists does not",
			setup: func(s *server.Server) {
				mockDevice(s, 4).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{
					{Pid: 7, UsedGpuMemory: ^uint64(0)}, {Pid: 7, UsedGpuMemory: 2 * nvmlGiB}, {Pid: 7, UsedGpuMemory: nvmlGiB},
				})
				mockDevice(s, 4).GetGraphicsRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 7, UsedGpuMemory: 2 * nvmlGiB}})
				mockDevice(s, 5).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 7, UsedGpuMemory: nvmlGiB}})
			},
			want: []GPUSample{
				{PID: 7, GPU: "4", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(2 * nvmlGiB)},
				{PID: 7, GPU: "4", Kind: inventory.KindGraphics, MemoryBytes: nvmlU64(2 * nvmlGiB)},
				{PID: 7, GPU: "5", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(nvmlGiB)},
			},
		},
		{
			name: "a list NOT_SUPPORTED is empty, not an error",
			setup: func(s *server.Server) {
				mockDevice(s, 0).GetGraphicsRunningProcessesFunc = mockFailing(nvml.ERROR_NOT_SUPPORTED)
				mockDevice(s, 0).GetMPSComputeRunningProcessesFunc = mockFailing(nvml.ERROR_NOT_SUPPORTED)
				mockDevice(s, 0).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 3, UsedGpuMemory: nvmlGiB}})
			},
			want: []GPUSample{{PID: 3, GPU: "0", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(nvmlGiB)}},
			errs: map[string]string{"0": ""},
		},
		{
			name: "another list error is recorded and the other lists read",
			setup: func(s *server.Server) {
				mockDevice(s, 0).GetComputeRunningProcessesFunc = mockFailing(nvml.ERROR_UNKNOWN)
				mockDevice(s, 0).GetGraphicsRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 8, UsedGpuMemory: nvmlGiB}})
			},
			want: []GPUSample{{PID: 8, GPU: "0", Kind: inventory.KindGraphics, MemoryBytes: nvmlU64(nvmlGiB)}},
			errs: map[string]string{"0": "list compute processes: ERROR_UNKNOWN"},
		},
		{
			name: "an oversized list is cut",
			setup: func(s *server.Server) {
				infos := make([]nvml.ProcessInfo, nvmlMaxList+10)
				for i := range infos {
					infos[i] = nvml.ProcessInfo{Pid: 0}
				}
				infos[0].Pid = 9
				mockDevice(s, 7).GetComputeRunningProcessesFunc = mockProcs(infos)
			},
			want:    []GPUSample{{PID: 9, GPU: "7", Kind: inventory.KindCompute, MemoryBytes: nvmlU64(0)}},
			unknown: map[string]int{"7": nvmlMaxList - 1},
			errs:    map[string]string{"7": "cut to"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMockServer(t)
			tc.setup(s)
			obs := observeMock(t, s, nil)
			want := make([]GPUSample, len(tc.want))
			for i, w := range tc.want {
				w.GPUUUID = findNVMLGPU(t, obs, w.GPU).UUID
				if w.GPUUUID == "" {
					t.Fatalf("GPU %s has no UUID", w.GPU)
				}
				want[i] = w
			}
			if !reflect.DeepEqual(obs.Samples, want) {
				t.Errorf("samples:\n got %s\nwant %s", fmtGPUSamples(obs.Samples), fmtGPUSamples(want))
			}
			for _, g := range obs.GPUs {
				if g.UnknownProcesses != tc.unknown[g.ID] {
					t.Errorf("GPU %s unknown processes %d, want %d", g.ID, g.UnknownProcesses, tc.unknown[g.ID])
				}
				want, ok := tc.errs[g.ID]
				switch {
				case !ok || want == "":
					if g.Error != "" {
						t.Errorf("GPU %s error %q, want none", g.ID, g.Error)
					}
				case !strings.Contains(g.Error, want):
					t.Errorf("GPU %s error %q, want it to contain %q", g.ID, g.Error, want)
				}
				if g.Lost {
					t.Errorf("GPU %s lost", g.ID)
				}
			}
		})
	}
}

func fmtGPUSamples(ss []GPUSample) string {
	var b strings.Builder
	for _, s := range ss {
		mem, sm := "nil", "nil"
		if s.MemoryBytes != nil {
			mem = fmt.Sprint(*s.MemoryBytes)
		}
		if s.SMUtil != nil {
			sm = fmt.Sprint(*s.SMUtil)
		}
		fmt.Fprintf(&b, "\n  {pid %d gpu %s uuid %s %s mem %s sm %s}", s.PID, s.GPU, s.GPUUUID, s.Kind, mem, sm)
	}
	return b.String()
}

// mockMIGInstance is one MIG device a test puts on a GPU.
type mockMIGInstance struct {
	slot, gi, ci int
	procs        []nvml.ProcessInfo
}

// enableMockMIG puts GPU index of s in MIG mode with the instances given,
// built from the mock's own device type, and returns their mocks. The
// parent's process lists return the aggregate, as NVML's do for root.
func enableMockMIG(s *server.Server, index int, instances ...mockMIGInstance) []*server.Device {
	parent := mockDevice(s, index)
	parent.MigMode = nvml.DEVICE_MIG_ENABLE
	var all []nvml.ProcessInfo
	handles := map[int]*server.Device{}
	var devs []*server.Device
	for _, in := range instances {
		d := dgxa100.NewDevice(index)
		prepareMockDevice(d)
		d.UUID = fmt.Sprintf("MIG-%08d-0000-0000-0000-%012d", index, in.slot)
		d.MemoryInfo = nvml.Memory{Total: 5 * nvmlGiB, Used: nvmlGiB}
		d.GetNameFunc = func() (string, nvml.Return) { return "NVIDIA A100-SXM4-40GB MIG 1g.5gb", nvml.SUCCESS }
		d.GetPersistenceModeFunc = nil // never asked of a MIG device
		d.GetMigModeFunc = nil
		gi, ci := in.gi, in.ci
		d.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return gi, nvml.SUCCESS }
		d.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return ci, nvml.SUCCESS }
		// NVML gives a MIG process its instance IDs; the parent lists
		// every instance's.
		procs := make([]nvml.ProcessInfo, len(in.procs))
		for i, p := range in.procs {
			p.GpuInstanceId, p.ComputeInstanceId = uint32(gi), uint32(ci)
			procs[i] = p
		}
		d.GetComputeRunningProcessesFunc = mockProcs(procs)
		all = append(all, procs...)
		handles[in.slot] = d
		devs = append(devs, d)
	}
	parent.GetComputeRunningProcessesFunc = mockProcs(all)
	parent.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	parent.GetMigDeviceHandleByIndexFunc = func(slot int) (nvml.Device, nvml.Return) {
		if d, ok := handles[slot]; ok {
			return d, nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	return devs
}

func TestObserveMIG(t *testing.T) {
	twoInstances := func(s *server.Server) []*server.Device {
		return enableMockMIG(s, 1,
			mockMIGInstance{slot: 0, gi: 3, ci: 0, procs: []nvml.ProcessInfo{{Pid: 300, UsedGpuMemory: nvmlGiB}, {Pid: 0}}},
			mockMIGInstance{slot: 4, gi: 5, ci: 0, procs: []nvml.ProcessInfo{{Pid: 500, UsedGpuMemory: 2 * nvmlGiB}}},
		)
	}
	tests := []struct {
		name  string
		setup func(s *server.Server) []*server.Device
		check func(t *testing.T, s *server.Server, migs []*server.Device, obs NVMLReading)
	}{
		{
			name:  "two instances with their processes, parent not listing them again",
			setup: twoInstances,
			check: func(t *testing.T, s *server.Server, migs []*server.Device, obs NVMLReading) {
				if want := []string{"0", "1", "1:0", "1:4", "2", "3", "4", "5", "6", "7"}; !reflect.DeepEqual(nvmlGPUIDs(obs), want) {
					t.Fatalf("GPU IDs %v, want %v", nvmlGPUIDs(obs), want)
				}
				parent := findNVMLGPU(t, obs, "1")
				if !parent.MIGEnabled || parent.Parent != "" || parent.UUID != mockDevice(s, 1).UUID || parent.Error != "" {
					t.Errorf("parent %+v, want a MIG-enabled GPU", parent)
				}
				gi, ci := 3, 0
				want := inventory.GPUDevice{
					ID: "1:0", Index: 1, UUID: migs[0].UUID, Name: "NVIDIA A100-SXM4-40GB MIG 1g.5gb", Parent: "1",
					GPUInstanceID: &gi, ComputeInstanceID: &ci,
					MemoryTotalBytes: nvmlU64(5 * nvmlGiB), MemoryUsedBytes: nvmlU64(nvmlGiB), MemoryReservedBytes: nvmlU64(0), UnknownProcesses: 1,
				}
				if got := findNVMLGPU(t, obs, "1:0"); !reflect.DeepEqual(got, want) {
					t.Errorf("MIG 1:0:\n got %+v\nwant %+v", got, want)
				}
				if g := findNVMLGPU(t, obs, "1:4"); g.GPUInstanceID == nil || *g.GPUInstanceID != 5 || g.Parent != "1" || g.UUID != migs[1].UUID {
					t.Errorf("MIG 1:4 %+v", g)
				}
				wantSamples := []GPUSample{
					{PID: 300, GPU: "1:0", GPUUUID: migs[0].UUID, Kind: inventory.KindCompute, MemoryBytes: nvmlU64(nvmlGiB)},
					{PID: 500, GPU: "1:4", GPUUUID: migs[1].UUID, Kind: inventory.KindCompute, MemoryBytes: nvmlU64(2 * nvmlGiB)},
				}
				if !reflect.DeepEqual(obs.Samples, wantSamples) {
					t.Errorf("samples:\n got %s\nwant %s", fmtGPUSamples(obs.Samples), fmtGPUSamples(wantSamples))
				}
				p := mockDevice(s, 1)
				if n := len(p.GetComputeRunningProcessesCalls()) + len(p.GetProcessUtilizationCalls()); n != 0 {
					t.Errorf("parent asked for %d process lists or samples, want none", n)
				}
				for _, m := range migs {
					if n := len(m.GetProcessUtilizationCalls()); n != 0 {
						t.Errorf("MIG device %s asked for utilisation %d times, want never", m.UUID, n)
					}
				}
				if n := len(p.GetMigDeviceHandleByIndexCalls()); n != 7 {
					t.Errorf("%d MIG slots asked, want 7", n)
				}
			},
		},
		{
			name: "a slot that fails is recorded on the parent, the others read",
			setup: func(s *server.Server) []*server.Device {
				migs := twoInstances(s)
				p := mockDevice(s, 1)
				byIndex := p.GetMigDeviceHandleByIndexFunc
				p.GetMigDeviceHandleByIndexFunc = func(slot int) (nvml.Device, nvml.Return) {
					if slot == 2 {
						return nil, nvml.ERROR_UNKNOWN
					}
					return byIndex(slot)
				}
				return migs
			},
			check: func(t *testing.T, s *server.Server, migs []*server.Device, obs NVMLReading) {
				if g := findNVMLGPU(t, obs, "1"); g.Lost || !strings.Contains(g.Error, "get MIG device 2: ERROR_UNKNOWN") {
					t.Errorf("parent %+v, want the slot's error", g)
				}
				findNVMLGPU(t, obs, "1:0")
				findNVMLGPU(t, obs, "1:4")
				if len(obs.Samples) != 2 {
					t.Errorf("samples %s, want two", fmtGPUSamples(obs.Samples))
				}
			},
		},
		{
			name: "a lost MIG device marks its GPU lost, other GPUs read",
			setup: func(s *server.Server) []*server.Device {
				migs := twoInstances(s)
				migs[0].GetComputeRunningProcessesFunc = mockFailing(nvml.ERROR_GPU_IS_LOST)
				mockDevice(s, 2).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 22, UsedGpuMemory: nvmlGiB}})
				return migs
			},
			check: func(t *testing.T, s *server.Server, migs []*server.Device, obs NVMLReading) {
				if g := findNVMLGPU(t, obs, "1"); !g.Lost || !strings.Contains(g.Error, "ERROR_GPU_IS_LOST") {
					t.Errorf("parent %+v, want lost", g)
				}
				if g := findNVMLGPU(t, obs, "1:0"); !g.Lost {
					t.Errorf("MIG 1:0 %+v, want lost", g)
				}
				if want := []string{"0", "1", "1:0", "2", "3", "4", "5", "6", "7"}; !reflect.DeepEqual(nvmlGPUIDs(obs), want) {
					t.Errorf("GPU IDs %v, want %v (no slot read after the loss)", nvmlGPUIDs(obs), want)
				}
				if len(obs.Samples) != 1 || obs.Samples[0].PID != 22 {
					t.Errorf("samples %s, want PID 22 on GPU 2", fmtGPUSamples(obs.Samples))
				}
			},
		},
		{
			name: "an instance whose GPU instance ID cannot be read keeps its index",
			setup: func(s *server.Server) []*server.Device {
				migs := twoInstances(s)
				migs[1].GetGpuInstanceIdFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
				return migs
			},
			check: func(t *testing.T, s *server.Server, migs []*server.Device, obs NVMLReading) {
				g := findNVMLGPU(t, obs, "1:4")
				if g.GPUInstanceID != nil || g.UUID != migs[1].UUID || !strings.Contains(g.Error, "read GPU instance ID") {
					t.Errorf("MIG in slot 4 %+v", g)
				}
				if len(obs.Samples) != 2 || obs.Samples[1].GPU != "1:4" {
					t.Errorf("samples %s, want PID 500 on 1:4", fmtGPUSamples(obs.Samples))
				}
			},
		},
		{
			name: "two compute instances of one GPU instance are two devices",
			setup: func(s *server.Server) []*server.Device {
				return enableMockMIG(s, 1,
					mockMIGInstance{slot: 0, gi: 3, ci: 0, procs: []nvml.ProcessInfo{{Pid: 300, UsedGpuMemory: nvmlGiB}}},
					mockMIGInstance{slot: 1, gi: 3, ci: 1, procs: []nvml.ProcessInfo{{Pid: 301, UsedGpuMemory: nvmlGiB}}},
				)
			},
			check: func(t *testing.T, s *server.Server, migs []*server.Device, obs NVMLReading) {
				a, b := findNVMLGPU(t, obs, "1:0"), findNVMLGPU(t, obs, "1:1")
				if *a.GPUInstanceID != 3 || *b.GPUInstanceID != 3 || *a.ComputeInstanceID != 0 || *b.ComputeInstanceID != 1 {
					t.Errorf("instances %+v and %+v, want GPU instance 3 with compute instances 0 and 1", a, b)
				}
				if len(obs.Samples) != 2 || obs.Samples[0].GPU != "1:0" || obs.Samples[1].GPU != "1:1" {
					t.Errorf("samples %s, want PID 300 on 1:0 and 301 on 1:1", fmtGPUSamples(obs.Samples))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMockServer(t)
			migs := tc.setup(s)
			tc.check(t, s, migs, observeMock(t, s, nil))
		})
	}
}

func TestObserveLostGPU(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(d *server.Device, s *server.Server)
		wantUUID bool
		wantErr  string
	}{
		{
			name: "GPU_IS_LOST from GetUUID",
			setup: func(d *server.Device, _ *server.Server) {
				d.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
			},
			wantErr: "read UUID: ERROR_GPU_IS_LOST",
		},
		{
			name: "GPU_IS_LOST from the process list",
			setup: func(d *server.Device, _ *server.Server) {
				d.GetComputeRunningProcessesFunc = mockFailing(nvml.ERROR_GPU_IS_LOST)
			},
			wantUUID: true,
			wantErr:  "list compute processes: ERROR_GPU_IS_LOST",
		},
		{
			name: "RESET_REQUIRED from memory",
			setup: func(d *server.Device, _ *server.Server) {
				d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_RESET_REQUIRED }
			},
			wantUUID: true,
			wantErr:  "read memory: ERROR_RESET_REQUIRED",
		},
		{
			name: "GPU_IS_LOST from the handle",
			setup: func(_ *server.Device, s *server.Server) {
				byIndex := s.DeviceGetHandleByIndexFunc
				s.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
					if i == 2 {
						return nil, nvml.ERROR_GPU_IS_LOST
					}
					return byIndex(i)
				}
			},
			wantErr: "get device handle: ERROR_GPU_IS_LOST",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMockServer(t)
			for _, i := range []int{1, 2, 3} {
				mockDevice(s, i).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: uint32(100 + i), UsedGpuMemory: nvmlGiB}})
			}
			lost := mockDevice(s, 2)
			tc.setup(lost, s)
			obs := observeMock(t, s, nil)

			if len(obs.GPUs) != 8 {
				t.Fatalf("%d GPUs, want all 8 listed", len(obs.GPUs))
			}
			g := findNVMLGPU(t, obs, "2")
			if !g.Lost || g.Index != 2 || !strings.Contains(g.Error, tc.wantErr) {
				t.Errorf("GPU 2 %+v, want lost with %q", g, tc.wantErr)
			}
			if tc.wantUUID != (g.UUID == lost.UUID) {
				t.Errorf("GPU 2 UUID %q, want known: %v", g.UUID, tc.wantUUID)
			}
			if n := len(lost.GetProcessUtilizationCalls()); n != 0 {
				t.Errorf("lost GPU asked for utilisation %d times", n)
			}
			var pids []int
			for _, smp := range obs.Samples {
				pids = append(pids, smp.PID)
			}
			if want := []int{101, 103}; !reflect.DeepEqual(pids, want) {
				t.Errorf("sample PIDs %v, want %v (the other GPUs read)", pids, want)
			}
			for _, o := range obs.GPUs {
				if o.ID != "2" && (o.Lost || o.Error != "") {
					t.Errorf("GPU %s %+v, want unaffected", o.ID, o)
				}
			}
		})
	}
}

func TestObserveUtilisation(t *testing.T) {
	now := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	nowMicros := uint64(now.UnixMicro())
	const last = uint64(1_700_000_000_000_000)
	type sample = nvml.ProcessUtilizationSample
	tests := []struct {
		name     string
		last     uint64 // previous LastSampleTimestamp of GPU 0
		samples  []sample
		ret      nvml.Return
		wantSM   map[int]uint32 // PID → SMUtil; absent means nil
		wantLast uint64
		wantAsk  uint64 // lastSeenTimestamp passed to NVML
		wantErr  string
	}{
		{
			name:     "NOT_SUPPORTED leaves SMUtil nil and the timestamp alone",
			last:     last,
			ret:      nvml.ERROR_NOT_SUPPORTED,
			wantLast: last, wantAsk: last,
		},
		{
			name:     "no samples (NOT_FOUND) leaves SMUtil nil and the timestamp alone",
			last:     last,
			ret:      nvml.ERROR_NOT_FOUND,
			wantLast: last, wantAsk: last,
		},
		{
			name:     "an empty answer from the size probe is no samples",
			last:     last,
			ret:      nvml.ERROR_INSUFFICIENT_SIZE,
			samples:  []sample{},
			wantLast: last, wantAsk: last,
		},
		{
			name: "old, repeated, over 100 and future samples dropped; newest kept",
			last: last,
			samples: []sample{
				{Pid: 100, TimeStamp: last - 5, SmUtil: 50},
				{Pid: 101, TimeStamp: last, SmUtil: 40},
				{Pid: 102, TimeStamp: last + 10, SmUtil: 101},
				{Pid: 103, TimeStamp: last + 30, SmUtil: 30},
				{Pid: 103, TimeStamp: last + 20, SmUtil: 70},
				{Pid: 104, TimeStamp: last + 50, SmUtil: 0},
				{Pid: 105, TimeStamp: nowMicros + uint64(2*time.Hour/time.Microsecond), SmUtil: 90},
				{Pid: 0, TimeStamp: last + 60, SmUtil: 10},
			},
			wantSM:   map[int]uint32{103: 30, 104: 0},
			wantLast: last + 50, wantAsk: last,
		},
		{
			name:     "first scan asks for everything",
			samples:  []sample{{Pid: 100, TimeStamp: last, SmUtil: 12}},
			wantSM:   map[int]uint32{100: 12},
			wantLast: last,
		},
		{
			name:     "a last seen timestamp in the future is forgotten",
			last:     nowMicros + uint64(48*time.Hour/time.Microsecond),
			samples:  []sample{{Pid: 101, TimeStamp: last, SmUtil: 12}},
			wantSM:   map[int]uint32{101: 12},
			wantLast: last,
		},
		{
			name:     "another error is recorded",
			last:     last,
			ret:      nvml.ERROR_UNKNOWN,
			wantLast: last, wantAsk: last,
			wantErr: "read process utilisation: ERROR_UNKNOWN",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMockServer(t)
			d := mockDevice(s, 0)
			var infos []nvml.ProcessInfo
			for pid := uint32(100); pid <= 105; pid++ {
				infos = append(infos, nvml.ProcessInfo{Pid: pid, UsedGpuMemory: nvmlGiB})
			}
			d.GetComputeRunningProcessesFunc = mockProcs(infos)
			d.GetGraphicsRunningProcessesFunc = mockProcs(infos[3:4])
			d.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
				return tc.samples, tc.ret
			}
			n := NewNVML(s, nil)
			n.now = func() time.Time { return now }
			obs, err := n.Observe(map[string]inventory.GPUDevice{d.UUID: {LastSampleTimestamp: tc.last}, "GPU-gone": {LastSampleTimestamp: 42}})
			if err != nil {
				t.Fatal(err)
			}
			if calls := d.GetProcessUtilizationCalls(); len(calls) != 1 || calls[0].V != tc.wantAsk {
				t.Errorf("utilisation calls %+v, want one with %d", calls, tc.wantAsk)
			}
			g := findNVMLGPU(t, obs, "0")
			if g.LastSampleTimestamp != tc.wantLast {
				t.Errorf("LastSampleTimestamp %d, want %d", g.LastSampleTimestamp, tc.wantLast)
			}
			if tc.wantErr == "" && g.Error != "" || !strings.Contains(g.Error, tc.wantErr) {
				t.Errorf("error %q, want %q", g.Error, tc.wantErr)
			}
			for _, smp := range obs.Samples {
				want, ok := tc.wantSM[smp.PID]
				switch {
				case !ok && smp.SMUtil != nil:
					t.Errorf("PID %d %s SMUtil %d, want nil", smp.PID, smp.Kind, *smp.SMUtil)
				case ok && (smp.SMUtil == nil || *smp.SMUtil != want):
					t.Errorf("PID %d %s SMUtil %v, want %d", smp.PID, smp.Kind, smp.SMUtil, want)
				}
			}
			if len(obs.Samples) != 7 {
				t.Errorf("%d samples, want 7", len(obs.Samples))
			}
			if other := findNVMLGPU(t, obs, "1"); other.LastSampleTimestamp != 0 {
				t.Errorf("GPU 1 LastSampleTimestamp %d, want 0", other.LastSampleTimestamp)
			}
		})
	}
}

func TestObserveInitError(t *testing.T) {
	tests := []struct {
		ret  nvml.Return
		want string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, "NVML library not found (no NVIDIA driver installed?)"},
		{nvml.ERROR_DRIVER_NOT_LOADED, "NVIDIA kernel driver not loaded"},
		{nvml.ERROR_LIB_RM_VERSION_MISMATCH, "driver/library version mismatch: the driver was upgraded without a reboot"},
		{nvml.ERROR_NO_PERMISSION, "no permission"},
		{nvml.ERROR_UNKNOWN, "NVML initialisation failed"},
	}
	for _, tc := range tests {
		t.Run(tc.ret.Error(), func(t *testing.T) {
			s := newMockServer(t)
			s.InitFunc = func() nvml.Return { return tc.ret }
			obs, err := NewNVML(s, nil).Observe(nil)
			if err == nil {
				t.Fatalf("no error, observation %+v", obs)
			}
			if !errors.Is(err, tc.ret) {
				t.Errorf("errors.Is(%v, %v) is false", err, tc.ret)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if len(obs.GPUs)+len(obs.Samples) != 0 {
				t.Errorf("observation %+v, want empty", obs)
			}
			if n := len(s.DeviceGetCountCalls()); n != 0 {
				t.Errorf("devices counted %d times after a failed Init", n)
			}
		})
	}
}

// TestObserveShutdown counts Shutdown on every path: once after every
// successful Init, never after a failed one (NVML answers UNINITIALIZED).
func TestObserveShutdown(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(s *server.Server)
		wantErr   error // nil: the source answered
		wantCalls int
		check     func(t *testing.T, obs NVMLReading)
	}{
		{name: "success", wantCalls: 1},
		{
			name:      "init fails",
			setup:     func(s *server.Server) { s.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED } },
			wantErr:   nvml.ERROR_DRIVER_NOT_LOADED,
			wantCalls: 0,
		},
		{
			name:      "zero devices",
			setup:     func(s *server.Server) { s.Devices = nil },
			wantErr:   ErrNoGPUs,
			wantCalls: 1,
		},
		{
			name: "count fails",
			setup: func(s *server.Server) {
				s.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
			},
			wantErr:   nvml.ERROR_UNKNOWN,
			wantCalls: 1,
		},
		{
			name: "a lost GPU",
			setup: func(s *server.Server) {
				mockDevice(s, 0).GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
			},
			wantCalls: 1,
		},
		{
			name:      "shutdown fails",
			setup:     func(s *server.Server) { s.ShutdownFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN } },
			wantCalls: 1,
			check: func(t *testing.T, obs NVMLReading) {
				if len(obs.GPUs) != 8 {
					t.Errorf("%d GPUs, want 8: a failed shutdown is only logged", len(obs.GPUs))
				}
			},
		},
		{
			name: "a device call panics",
			setup: func(s *server.Server) {
				mockDevice(s, 3).GetPersistenceModeFunc = nil // the mock panics on an unset function
			},
			wantCalls: 1,
			check: func(t *testing.T, obs NVMLReading) {
				if len(obs.GPUs) != 8 || !strings.Contains(obs.GPUs[3].Error, "internal error") || obs.GPUs[4].UUID == "" {
					t.Errorf("GPUs %+v, want GPU 3 with the panic and the others read", obs.GPUs)
				}
			},
		},
		{
			name:      "init panics",
			setup:     func(s *server.Server) { s.InitFunc = nil },
			wantErr:   errors.New("internal error"),
			wantCalls: 0,
		},
		{
			name: "the count panics",
			setup: func(s *server.Server) {
				s.DeviceGetCountFunc = nil
			},
			wantErr:   errors.New("internal error"),
			wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newMockServer(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			obs, err := NewNVML(s, nil).Observe(nil)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantErr != nil && err == nil:
				t.Errorf("no error, want %v", tc.wantErr)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr) && !strings.Contains(err.Error(), tc.wantErr.Error()):
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if n := len(s.ShutdownCalls()); n != tc.wantCalls {
				t.Errorf("Shutdown called %d times, want %d", n, tc.wantCalls)
			}
			if tc.check != nil {
				tc.check(t, obs)
			}
		})
	}
}

func TestObserveDGXH100(t *testing.T) {
	s := dgxh100.New()
	for i := range s.Devices {
		prepareMockDevice(mockDevice(s, i))
	}
	mockDevice(s, 7).GetComputeRunningProcessesFunc = mockProcs([]nvml.ProcessInfo{{Pid: 4242, UsedGpuMemory: 70 * nvmlGiB}})
	obs := observeMock(t, s, nil)
	if len(obs.GPUs) != 8 || obs.GPUs[7].MemoryTotalBytes == nil || *obs.GPUs[7].MemoryTotalBytes != 80*nvmlGiB {
		t.Fatalf("GPUs %+v, want 8 H100s of 80 GiB", obs.GPUs)
	}
	want := []GPUSample{{PID: 4242, GPU: "7", GPUUUID: mockDevice(s, 7).UUID, Kind: inventory.KindCompute, MemoryBytes: nvmlU64(70 * nvmlGiB)}}
	if !reflect.DeepEqual(obs.Samples, want) {
		t.Errorf("samples %s, want %s", fmtGPUSamples(obs.Samples), fmtGPUSamples(want))
	}
}

func TestObserveLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newMockServer(t)
	mockDevice(s, 1).GetComputeRunningProcessesFunc = mockFailing(nvml.ERROR_GPU_IS_LOST)
	s.ShutdownFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }
	if _, err := NewNVML(s, log).Observe(nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var device, shutdown bool
	for _, l := range lines {
		if !strings.Contains(l, "source=nvml") {
			t.Errorf("log line without source=nvml: %s", l)
		}
		device = device || strings.Contains(l, "gpu=1") && strings.Contains(l, "lost=true")
		shutdown = shutdown || strings.Contains(l, "shutdown") && strings.Contains(l, "ERROR_UNKNOWN")
	}
	if !device || !shutdown {
		t.Errorf("logs lack the lost GPU (%v) or the failed shutdown (%v):\n%s", device, shutdown, buf.String())
	}
}

// TestObserveMemoryV2: where the library has the v2 memory call its
// figures are used, reserved memory included; where it lacks the symbol the
// call is never made (go-nvml binds lazily: calling it would end the
// process) and the first call's figures serve.
func TestObserveMemoryV2(t *testing.T) {
	s := newMockServer(t)
	d := mockDevice(s, 0)
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: 40 * nvmlGiB, Reserved: nvmlGiB / 2, Used: 5 * nvmlGiB, Free: 35 * nvmlGiB}, nvml.SUCCESS
	}
	mockDevice(s, 1).GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_NOT_SUPPORTED }
	obs := observeMock(t, s, nil)
	g0, g1 := obs.GPUs[0], obs.GPUs[1]
	if g0.MemoryUsedBytes == nil || *g0.MemoryUsedBytes != 5*nvmlGiB || g0.MemoryReservedBytes == nil || *g0.MemoryReservedBytes != nvmlGiB/2 {
		t.Errorf("v2: used %v reserved %v, want 5 GiB and 512 MiB", g0.MemoryUsedBytes, g0.MemoryReservedBytes)
	}
	if g1.MemoryUsedBytes == nil || g1.MemoryReservedBytes != nil || g1.Error != "" {
		t.Errorf("v2 not supported on the device: used %v reserved %v error %q, want the first call's figures", g1.MemoryUsedBytes, g1.MemoryReservedBytes, g1.Error)
	}

	old := newMockServer(t)
	old.LookupSymbolFunc = func(string) error { return errors.New("undefined symbol: nvmlDeviceGetMemoryInfo_v2") }
	for i := range old.Devices {
		mockDevice(old, i).GetMemoryInfo_v2Func = nil // the mock panics if it is called
	}
	obs = observeMock(t, old, nil)
	if g := obs.GPUs[0]; g.Error != "" || g.MemoryUsedBytes == nil || g.MemoryReservedBytes != nil {
		t.Errorf("library without v2: %+v, want the first call's figures and no error", g)
	}
}

// TestObserveAccounting: with accounting mode on, the processes that ended
// after the last scan's newest record are read, the newest end kept for
// the next scan; running ones, invalid PIDs and records from the future are
// not; a GPU whose mode is off is named in a warning, one that cannot say is
// not, and a failing call costs the records, never the device.
func TestObserveAccounting(t *testing.T) {
	base := uint64(time.Date(2026, 1, 30, 14, 0, 0, 0, time.UTC).UnixMicro())
	stats := map[uint32]nvml.AccountingStats{
		100: {StartTime: base + 10e6, Time: 20_000, MaxMemoryUsage: 3 * nvmlGiB, GpuUtilization: 87}, // ended base+30 s
		101: {StartTime: base + 1e6, Time: 2_000, MaxMemoryUsage: nvmlGiB, GpuUtilization: 5},        // ended base+3 s: before the last
		102: {StartTime: base + 40e6, Time: 5_000, IsRunning: 1},                                     // still running
		103: {StartTime: base + 50e6, Time: 1_000, MaxMemoryUsage: 1 << 62, GpuUtilization: 300},     // memory and utilisation garbage
		104: {StartTime: uint64(time.Now().Add(48 * time.Hour).UnixMicro()), Time: 1},                // from the future
	}
	s := newMockServer(t)
	d := mockDevice(s, 1)
	d.GetAccountingPidsFunc = func() ([]int, nvml.Return) { return []int{100, 101, 102, 103, 104, 0, -1, 105}, nvml.SUCCESS }
	d.GetAccountingStatsFunc = func(pid uint32) (nvml.AccountingStats, nvml.Return) {
		st, ok := stats[pid]
		if !ok {
			return nvml.AccountingStats{}, nvml.ERROR_NOT_FOUND
		}
		return st, nvml.SUCCESS
	}
	off := mockDevice(s, 2)
	off.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_DISABLED, nvml.SUCCESS }
	unsupported := mockDevice(s, 3)
	unsupported.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	failing := mockDevice(s, 4)
	failing.GetAccountingPidsFunc = func() ([]int, nvml.Return) { return nil, nvml.ERROR_UNKNOWN }

	last := map[string]inventory.GPUDevice{d.UUID: {LastAccountingTimestamp: base + 5e6, BriefProcesses: 4}}
	obs := observeMock(t, s, last)
	start := func(us uint64) time.Time { return time.UnixMicro(int64(us)).UTC() }
	util := uint32(87)
	want := []AccountingRecord{
		{GPU: "1", UUID: d.UUID, PID: 100, StartedAt: start(base + 10e6), Duration: 20 * time.Second, MaxMemoryBytes: nvmlU64(3 * nvmlGiB), GPUUtilPercent: &util},
		{GPU: "1", UUID: d.UUID, PID: 103, StartedAt: start(base + 50e6), Duration: time.Second},
	}
	if !reflect.DeepEqual(obs.Accounting, want) {
		t.Errorf("accounting records:\n got %+v\nwant %+v", obs.Accounting, want)
	}
	g1 := findNVMLGPU(t, obs, "1")
	if g1.LastAccountingTimestamp != base+51e6 || g1.BriefProcesses != 4 || g1.Error != "" {
		t.Errorf("GPU 1: last accounting %d (want %d), brief %d (want the last scan's 4), error %q", g1.LastAccountingTimestamp, base+51e6, g1.BriefProcesses, g1.Error)
	}
	if g := findNVMLGPU(t, obs, "2"); g.AccountingMode == nil || *g.AccountingMode {
		t.Errorf("GPU 2 accounting mode %v; want off", g.AccountingMode)
	}
	if g := findNVMLGPU(t, obs, "3"); g.AccountingMode != nil {
		t.Errorf("GPU 3 accounting mode %v; want unknown", g.AccountingMode)
	}
	if g := findNVMLGPU(t, obs, "4"); g.Error != "" || g.Lost {
		t.Errorf("GPU 4, whose accounting list fails: error %q lost %v; want the device whole", g.Error, g.Lost)
	}
	if !slices.ContainsFunc(obs.Warnings, func(w string) bool {
		return strings.HasPrefix(w, "accounting mode is off on GPU 2:") && strings.Contains(w, "nvidia-smi -am 1")
	}) {
		t.Errorf("warnings %q; want one naming GPU 2 alone, with how to turn accounting on", obs.Warnings)
	}

	// The next scan reads only what ended since.
	again := observeMock(t, s, map[string]inventory.GPUDevice{d.UUID: g1})
	if len(again.Accounting) != 0 {
		t.Errorf("second read: %+v; want nothing new", again.Accounting)
	}
}
