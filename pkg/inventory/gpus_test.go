package inventory

import (
	"reflect"
	"testing"
)

func TestGPUWorkloads(t *testing.T) {
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
			if got := GPUWorkloads(inv.GPUs, inv.Workloads()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("GPUWorkloads = %v, want %v", got, tc.want)
			}
		})
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
