package inventory

import (
	"reflect"
	"testing"
)

func TestGPULedgerHolders(t *testing.T) {
	gpus := []GPUDevice{
		{ID: "0", UUID: "GPU-aaa"}, {ID: "1", UUID: "GPU-bbb"},
		{ID: "2", UUID: "GPU-ccc", MIGEnabled: true},
		{ID: "2:1", UUID: "MIG-ddd", Parent: "2"}, {ID: "2:2", UUID: "MIG-eee", Parent: "2"},
	}
	declared := func(n int, status string, devices ...string) Container {
		c := container(n, status, TypeRawDocker)
		c.GPU = GPUAccess{Declared: true, Channels: []string{ChannelDeviceRequest}, Devices: devices}
		return c
	}
	tests := []struct {
		name       string
		containers []Container
		procs      []HostProcess
		want       map[string]int
	}{
		{"nothing: every device free", nil, nil, map[string]int{"0": 0, "1": 0, "2": 0, "2:1": 0, "2:2": 0}},
		{
			"by index, by UUID, and a MIG instance with its GPU",
			[]Container{declared(1, "running", "0"), declared(2, "paused", "GPU-bbb"), declared(3, "running", "MIG-ddd")},
			nil,
			map[string]int{"0": 1, "1": 1, "2": 1, "2:1": 1, "2:2": 0},
		},
		{
			"a whole MIG GPU holds its instances; all holds everything",
			[]Container{declared(1, "running", "2"), declared(2, "running", "all")},
			nil,
			map[string]int{"0": 1, "1": 1, "2": 2, "2:1": 2, "2:2": 2},
		},
		{
			"stopped containers hold nothing; a process does",
			[]Container{declared(1, "exited", "0"), declared(2, "created", "1")},
			[]HostProcess{process(500, 1)},
			map[string]int{"0": 0, "1": 1, "2": 0, "2:1": 0, "2:2": 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := &Inventory{GPUs: gpus, Containers: tc.containers, HostProcesses: tc.procs,
				Sources: map[string]SourceStatus{SourceNVML: {OK: true}}}
			got := map[string]int{}
			for _, a := range inv.GPULedger(inv.Workloads()) {
				got[a.Device.ID] = len(a.Holders())
				if a.Free() != (len(a.Holders()) == 0) {
					t.Errorf("%s: Free %v with holders %v", a.Device.ID, a.Free(), a.Holders())
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("holders per device = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGPULedgerMemory: each device's used memory against what its listed
// processes hold, and the memory held by no visible process.
func TestGPULedgerMemory(t *testing.T) {
	const gib = uint64(1 << 30)
	gpus := []GPUDevice{
		{ID: "0", UUID: "GPU-aaa", MinorNumber: ptr(1), MemoryUsedBytes: ptr(21 * gib)}, // 1 GiB listed, 20 orphaned
		{ID: "1", UUID: "GPU-bbb", MinorNumber: ptr(0), MemoryUsedBytes: ptr(6 * gib)},  // container 4 + pending 2
		{ID: "2", UUID: "GPU-ccc", MIGEnabled: true, MemoryUsedBytes: ptr(3 * gib)},     // its instances'
		{ID: "2:1", UUID: "MIG-ddd", Parent: "2", MemoryUsedBytes: ptr(3 * gib)},        // 1 listed, 2 orphaned
		{ID: "2:2", UUID: "MIG-eee", Parent: "2", MemoryUsedBytes: ptr(uint64(0))},      // free
		{ID: "3", UUID: "GPU-fff", MemoryUsedBytes: ptr(4 * gib)},                       // a process without a figure
		{ID: "4", UUID: "GPU-ggg"},                                                               // used unknown
		{ID: "5", UUID: "GPU-hhh", MemoryUsedBytes: ptr(gib / 2)},                                // less used than listed
		{ID: "6", UUID: "GPU-iii", MemoryUsedBytes: ptr(5 * gib), MemoryReservedBytes: ptr(gib)}, // 1 reserved, 1 listed
	}
	onGPU := func(n int, ps ...GPUProcess) Container {
		c := container(n, "running", TypeRawDocker)
		c.GPU = GPUAccess{}
		c.GPUProcesses = ps
		return c
	}
	multi := process(600, 1)
	multi.GPUs, multi.GPUMemory, multi.GPUMemoryBytes = []string{"/dev/nvidia1", "2:1"}, map[string]uint64{"/dev/nvidia1": gib, "2:1": gib}, ptr(2*gib)
	holder := process(601, 1)
	holder.GPUs, holder.Kinds, holder.GPUMemoryBytes = []string{"0"}, []string{KindDevice}, nil
	pending := process(602, 1) // on GPU 1, 1 GiB
	pending.GPUMemoryBytes = ptr(2 * gib)
	inv := &Inventory{
		GPUs:    gpus,
		Sources: map[string]SourceStatus{SourceNVML: {OK: true}},
		Containers: []Container{
			onGPU(1, GPUProcess{PID: 10, GPU: "1", MemoryBytes: ptr(4 * gib)}),
			onGPU(2, GPUProcess{PID: 11, GPU: "3", Kind: KindCompute}),
			onGPU(3, GPUProcess{PID: 12, GPU: "5", MemoryBytes: ptr(gib)}),
			onGPU(4, GPUProcess{PID: 13, GPU: "6", MemoryBytes: ptr(gib)}),
		},
		HostProcesses:    []HostProcess{multi, holder},
		PendingProcesses: []HostProcess{pending},
	}
	type figures struct{ attributed, unattributed any }
	want := map[string]figures{
		"0": {gib, 20 * gib}, "1": {6 * gib, uint64(0)}, "2": {gib, 2 * gib}, "2:1": {gib, 2 * gib},
		"2:2": {uint64(0), uint64(0)}, "3": {nil, nil}, "4": {uint64(0), nil}, "5": {gib, uint64(0)}, "6": {gib, 3 * gib},
	}
	got := map[string]figures{}
	for _, a := range inv.GPULedger(inv.Workloads()) {
		got[a.Device.ID] = figures{deref(a.AttributedBytes), deref(a.UnattributedBytes)}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ledger (attributed, unattributed) =\n %v\nwant\n %v", got, want)
	}
	flagged := []string{}
	for _, a := range inv.GPULedger(inv.Workloads()) {
		if a.Flagged(DefaultUnattributedThreshold) {
			flagged = append(flagged, a.Device.ID)
		}
	}
	if !reflect.DeepEqual(flagged, []string{"0", "2", "2:1", "6"}) {
		t.Errorf("flagged %v, want 0, 2, 2:1 and 6", flagged)
	}

	inv.Sources[SourceNVML] = SourceStatus{Error: "driver not loaded"}
	for _, a := range inv.GPULedger(inv.Workloads()) {
		if a.AttributedBytes != nil || a.UnattributedBytes != nil {
			t.Errorf("NVML down: %s attributed %v unattributed %v, want both unknown", a.Device.ID, deref(a.AttributedBytes), deref(a.UnattributedBytes))
		}
	}
}

func TestGPUCovers(t *testing.T) {
	for _, tc := range []struct {
		held, g string
		want    bool
	}{
		{"0", "0", true}, {"all", "3", true}, {"all", "3:1", true}, {"2", "2:1", true}, {"2:1", "2", false},
		{"2:1", "2:2", false}, {"1", "10", false}, {"1", "10:1", false}, {"1", "1:0", true}, {"0", "1", false},
	} {
		if got := GPUCovers(tc.held, tc.g); got != tc.want {
			t.Errorf("GPUCovers(%q, %q) = %v, want %v", tc.held, tc.g, got, tc.want)
		}
	}
}
