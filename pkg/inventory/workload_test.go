package inventory

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestWorkloadsExcludesPending(t *testing.T) {
	inv := sampleInventory()
	second := process(5001, 1)
	inv.HostProcesses = append(inv.HostProcesses, second)
	for _, pid := range []int{6001, 6002} {
		inv.PendingProcesses = append(inv.PendingProcesses, process(pid, 1))
	}
	ws := inv.Workloads()
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	want := []string{cid(1), cid(2), cid(3), "5000", "5001"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("workload IDs = %v, want containers then confirmed processes %v (pending ones left out)", ids, want)
	}
	for _, w := range ws {
		for _, p := range inv.PendingProcesses {
			if w.ID == strconv.Itoa(p.PID) {
				t.Errorf("pending process %s is a workload", w.ID)
			}
		}
	}
	if got := (&Inventory{}).Workloads(); got == nil || len(got) != 0 {
		t.Errorf("empty inventory Workloads() = %#v, want an empty non-nil slice", got)
	}
}

func TestContainerWorkloadGPUIdle(t *testing.T) {
	observed := []GPUProcess{{PID: 10, GPU: "0", MemoryBytes: ptr(uint64(1 << 30))}}
	declared := GPUAccess{Declared: true, Channels: []string{ChannelDeviceRequest}, Devices: []string{"0"}}
	tests := []struct {
		name         string
		status       string
		gpu          GPUAccess
		procs        []GPUProcess
		wantIdle     bool
		wantHasGPU   bool
		wantObserved bool
	}{
		{"running, declared, unused", "running", declared, nil, true, true, false},
		{"running, declared some GPU, unused", "running", GPUAccess{Declared: true}, nil, true, true, false},
		{"running, declared, in use", "running", declared, observed, false, true, true},
		{"exited, declared", "exited", declared, nil, false, true, false},
		{"paused, declared", "paused", declared, nil, false, true, false},
		{"created, declared", "created", declared, nil, false, true, false},
		{"running, undeclared, in use", "running", GPUAccess{}, observed, false, true, true},
		{"running, no GPU at all", "running", GPUAccess{}, nil, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := container(1, tc.status, TypeRawDocker)
			c.GPU, c.GPUProcesses = tc.gpu, tc.procs
			w := containerWorkload(c)
			if w.GPUIdle != tc.wantIdle || w.HasGPU != tc.wantHasGPU || w.GPUObserved != tc.wantObserved || w.GPUDeclared != tc.gpu.Declared {
				t.Errorf("idle %v, has_gpu %v, observed %v, declared %v; want %v, %v, %v, %v",
					w.GPUIdle, w.HasGPU, w.GPUObserved, w.GPUDeclared, tc.wantIdle, tc.wantHasGPU, tc.wantObserved, tc.gpu.Declared)
			}
		})
	}
}

func TestContainerWorkloadGPUs(t *testing.T) {
	gib := uint64(1 << 30)
	tests := []struct {
		name     string
		declared []string
		procs    []GPUProcess
		wantGPUs []string
		wantMem  *uint64
	}{
		{"declared only", []string{"1", "0"}, nil, []string{"0", "1"}, nil},
		{"observed only", nil, []GPUProcess{{PID: 1, GPU: "2", MemoryBytes: ptr(gib)}}, []string{"2"}, ptr(gib)},
		{"merged and de-duplicated", []string{"1", "0"}, []GPUProcess{{PID: 1, GPU: "0", MemoryBytes: ptr(gib)}, {PID: 2, GPU: "3:1", MemoryBytes: ptr(2 * gib)}, {PID: 3, GPU: "0"}},
			[]string{"0", "1", "3:1"}, ptr(3 * gib)},
		{"all absorbs observed", []string{"all"}, []GPUProcess{{PID: 1, GPU: "0"}, {PID: 2, GPU: "GPU-8a1c"}}, []string{"all"}, nil},
		{"all absorbs declared", []string{"2", "all", "0"}, nil, []string{"all"}, nil},
		{"empty names dropped", []string{""}, []GPUProcess{{PID: 1, GPU: ""}}, []string{}, nil},
		{"nothing", nil, nil, []string{}, nil},
		{"known zero memory is not unknown", nil, []GPUProcess{{PID: 1, GPU: "0", MemoryBytes: ptr(uint64(0))}}, []string{"0"}, ptr(uint64(0))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := container(1, "running", TypeRawDocker)
			c.GPU = GPUAccess{Declared: len(tc.declared) > 0, Devices: tc.declared}
			c.GPUProcesses = tc.procs
			w := containerWorkload(c)
			if w.GPUs == nil || !reflect.DeepEqual(w.GPUs, tc.wantGPUs) {
				t.Errorf("GPUs = %#v, want %#v", w.GPUs, tc.wantGPUs)
			}
			if !reflect.DeepEqual(w.GPUMemoryBytes, tc.wantMem) {
				t.Errorf("GPU memory = %v, want %v", deref(w.GPUMemoryBytes), deref(tc.wantMem))
			}
			// The declared devices must not be modified by the merge.
			if len(tc.declared) > 1 && c.GPU.Devices[0] != tc.declared[0] {
				t.Errorf("Workload reordered the container's declared devices: %v", c.GPU.Devices)
			}
		})
	}
}

func TestContainerWorkloadDoesNotModifyDevices(t *testing.T) {
	devs := make([]string, 2, 8) // spare capacity: an append would write into it
	devs[0], devs[1] = "1", "0"
	backing := devs[:8]
	c := container(1, "running", TypeRawDocker)
	c.GPU.Devices = devs
	c.GPUProcesses = []GPUProcess{{PID: 1, GPU: "5"}, {PID: 2, GPU: "6"}}
	_ = containerWorkload(c)
	if !reflect.DeepEqual(backing[:2], []string{"1", "0"}) || backing[2] != "" || backing[3] != "" {
		t.Errorf("Workload wrote into the container's device slice: %q", backing)
	}
}

func deref(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestProcessWorkload(t *testing.T) {
	p := process(4242, 1)
	p.DetectedAt = t0
	p.Stale = true
	w := processWorkload(p)
	want := Workload{
		Type: TypeHostProcess, ID: "4242", Name: p.Command, User: "bob", UserSource: "uid", Status: "running",
		Command: p.Command, CreatedAt: ptr(p.StartedAt), DetectedAt: t0, HasGPU: true, GPUObserved: true,
		GPUs: []string{"1"}, GPUMemoryBytes: p.GPUMemoryBytes, Stale: true,
		GPUsDeclared: []string{}, GPUsUsed: []string{"1"}, GPUsUndeclared: []string{},
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("Workload() =\n %+v\nwant\n %+v", w, want)
	}
}

func TestWorkloadJSONNulls(t *testing.T) {
	bare := container(1, "created", TypeUnknown)
	bare.CreatedAt = time.Time{}
	bare.GPU = GPUAccess{}
	full := container(2, "running", TypeRawDocker)
	full.CPUPercent, full.MemoryBytes = ptr(0.0), ptr(uint64(0))
	full.GPUProcesses = []GPUProcess{{PID: 1, GPU: "0", MemoryBytes: ptr(uint64(0))}}
	unknownMem := process(10, 1)
	unknownMem.GPUMemoryBytes = nil
	noStart := process(11, 1)
	noStart.StartedAt = time.Time{}

	tests := []struct {
		name     string
		w        Workload
		wantNull []string
		wantSet  []string
	}{
		{"container with no facts", containerWorkload(bare), []string{"cpu_percent", "memory_bytes", "gpu_memory_bytes", "created_at"}, []string{"gpus"}},
		{"container with zero-valued facts", containerWorkload(full), nil, []string{"cpu_percent", "memory_bytes", "gpu_memory_bytes", "created_at", "gpus"}},
		{"process with unknown memory", processWorkload(unknownMem), []string{"gpu_memory_bytes", "cpu_percent", "memory_bytes"}, []string{"created_at", "gpus"}},
		{"process with unknown start", processWorkload(noStart), []string{"created_at"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.w)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.wantNull {
				if v, ok := m[k]; !ok || !bytes.Equal(v, []byte("null")) {
					t.Errorf("%s = %s (present %v), want null", k, v, ok)
				}
			}
			for _, k := range tc.wantSet {
				if v, ok := m[k]; !ok || bytes.Equal(v, []byte("null")) {
					t.Errorf("%s = %s (present %v), want a value", k, v, ok)
				}
			}
		})
	}
}

// TestWorkloadsIdleNeedsGPUSource: "idle" says no process uses the declared
// GPU; without a GPU source that answered, nobody knows that.
func TestWorkloadsIdleNeedsGPUSource(t *testing.T) {
	c := container(1, "running", TypeRawDocker)
	c.GPU = GPUAccess{Declared: true, Channels: []string{ChannelDevice}, Devices: []string{"0"}}
	for _, tc := range []struct {
		name    string
		sources map[string]SourceStatus
		want    bool
	}{
		{"no GPU source", map[string]SourceStatus{SourceDocker: {OK: true}}, false},
		{"nvml down", map[string]SourceStatus{SourceNVML: {Error: "driver not loaded"}}, false},
		{"nvml answered", map[string]SourceStatus{SourceNVML: {OK: true}}, true},
		{"procfs answered", map[string]SourceStatus{SourceProcfs: {OK: true}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := &Inventory{SchemaVersion: SchemaVersion, Sources: tc.sources, Containers: []Container{c}}
			if got := inv.Workloads()[0].GPUIdle; got != tc.want {
				t.Errorf("GPUIdle = %v, want %v", got, tc.want)
			}
		})
	}
}

// containerWorkload is c's Workload in an inventory whose GPU sources
// answered.
func containerWorkload(c Container) Workload {
	inv := Inventory{Containers: []Container{c}, Sources: map[string]SourceStatus{SourceNVML: {OK: true}}}
	return inv.Workloads()[0]
}

func processWorkload(p HostProcess) Workload {
	inv := Inventory{HostProcesses: []HostProcess{p}, Sources: map[string]SourceStatus{SourceNVML: {OK: true}}}
	return inv.Workloads()[0]
}
