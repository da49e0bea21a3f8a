package scan

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

func TestVerifyNVMLSamples(t *testing.T) {
	listed := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	startedAt := func(at time.Time) *detect.ProcessInfo { return &detect.ProcessInfo{StartedAt: at} }
	before := startedAt(listed.Add(-time.Hour))
	sample := func(pid int, kind string) detect.GPUSample {
		return detect.GPUSample{PID: pid, GPU: "0", Kind: kind}
	}
	holding := ListedProcess{Info: before, DescriptorsRead: true, HoldsGPU: true}
	tests := []struct {
		name    string
		samples []detect.GPUSample
		// unlisted leaves the time of the list unknown.
		unlisted bool
		procs    map[int]ListedProcess
		keep     []int // indexes into samples
		warning  string
	}{
		{
			name:    "running, started before, holding a GPU",
			samples: []detect.GPUSample{sample(100, inventory.KindCompute), sample(100, inventory.KindGraphics)},
			procs:   map[int]ListedProcess{100: holding},
			keep:    []int{0, 1},
		},
		{
			name:    "not running",
			samples: []detect.GPUSample{sample(100, inventory.KindCompute), sample(4242, inventory.KindCompute)},
			procs:   map[int]ListedProcess{100: holding, 4242: {Gone: true}},
			keep:    []int{0},
			warning: "dropped 1 processes NVML listed that /proc does not bear out: PID 4242 is not running",
		},
		{
			name:    "started after the list",
			samples: []detect.GPUSample{sample(300, inventory.KindCompute)},
			procs:   map[int]ListedProcess{300: {Info: startedAt(listed.Add(time.Minute)), DescriptorsRead: true, HoldsGPU: true}},
			warning: "PID 300 started at 2024-05-01T12:01:00Z, after the list was taken",
		},
		{
			name:    "started within the slack of /proc's clock",
			samples: []detect.GPUSample{sample(300, inventory.KindCompute)},
			procs:   map[int]ListedProcess{300: {Info: startedAt(listed.Add(time.Second)), DescriptorsRead: true, HoldsGPU: true}},
			keep:    []int{0},
		},
		{
			name:     "start not checked without a list time",
			samples:  []detect.GPUSample{sample(300, inventory.KindCompute)},
			unlisted: true,
			procs:    map[int]ListedProcess{300: {Info: startedAt(listed.Add(time.Minute)), DescriptorsRead: true, HoldsGPU: true}},
			keep:     []int{0},
		},
		{
			name: "descriptors read, no GPU device held; MPS is let be",
			samples: []detect.GPUSample{
				sample(1, inventory.KindCompute), sample(1, inventory.KindGraphics), sample(7, inventory.KindMPS),
			},
			procs: map[int]ListedProcess{
				1: {Info: before, DescriptorsRead: true}, 7: {Info: before, DescriptorsRead: true},
			},
			keep:    []int{2},
			warning: "dropped 1 processes NVML listed that /proc does not bear out: PID 1 holds no GPU device open",
		},
		{
			name:    "descriptors unread or process unreadable: kept",
			samples: []detect.GPUSample{sample(5, inventory.KindCompute), sample(6, inventory.KindCompute), sample(8, inventory.KindCompute)},
			procs:   map[int]ListedProcess{5: {Info: before}, 6: {}},
			keep:    []int{0, 1, 2},
		},
		{
			name: "at most five named",
			samples: []detect.GPUSample{
				sample(11, inventory.KindCompute), sample(12, inventory.KindCompute), sample(13, inventory.KindCompute),
				sample(14, inventory.KindCompute), sample(15, inventory.KindCompute), sample(16, inventory.KindCompute),
				sample(17, inventory.KindCompute),
			},
			procs: map[int]ListedProcess{
				11: {Gone: true}, 12: {Gone: true}, 13: {Gone: true}, 14: {Gone: true}, 15: {Gone: true}, 16: {Gone: true}, 17: {Gone: true},
			},
			warning: "dropped 7 processes NVML listed that /proc does not bear out: PID 11 is not running; PID 12 is not running; " +
				"PID 13 is not running; PID 14 is not running; PID 15 is not running and 2 more",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := listed
			if tc.unlisted {
				at = time.Time{}
			}
			got, warning := VerifyNVMLSamples(tc.samples, at, tc.procs)
			var want []detect.GPUSample
			for _, i := range tc.keep {
				want = append(want, tc.samples[i])
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("kept %+v; want %+v", got, want)
			}
			if tc.warning == "" && warning != "" || !strings.Contains(warning, tc.warning) {
				t.Errorf("warning %q; want %q", warning, tc.warning)
			}
		})
	}
}

// TestObserveDropsNVMLPIDsProcDoesNotBearOut runs a scan over a copy of the
// fake /proc tree with descriptors: NVML lists 100 (holding /dev/nvidia2),
// 103 (running, holding nothing), 4242 (not running) and, from a list in
// no layout, nothing on GPU 5.
func TestObserveDropsNVMLPIDsProcDoesNotBearOut(t *testing.T) {
	root := filepath.Join(t.TempDir(), "proc")
	if err := os.CopyFS(root, os.DirFS(fakeProc)); err != nil {
		t.Fatal(err)
	}
	for pid, target := range map[string]string{"100": "/dev/nvidia2", "103": "/dev/null"} {
		fd := filepath.Join(root, pid, "fd")
		if err := os.Mkdir(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(fd, "3")); err != nil {
			t.Fatal(err)
		}
	}
	lib := mockGPUs()
	for i, procs := range map[int][]nvml.ProcessInfo{
		2: {{Pid: 100, UsedGpuMemory: 2 << 30}, {Pid: 103, UsedGpuMemory: 1 << 30}, {Pid: 4242, UsedGpuMemory: 1 << 30}},
		5: {{Pid: 104, UsedGpuMemory: 1 << 30, GpuInstanceId: 4104}},
	} {
		lib.Devices[i].(*server.Device).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			return procs, nvml.SUCCESS
		}
	}
	s := New(Deps{
		Docker: &fakeDocker{}, NVML: func() (nvml.Interface, error) { return lib, nil }, Procfs: detect.NewProcfs(root),
		Users: attribution.NewUsers(""), Clock: func() time.Time { return time.Now().UTC() },
		Log: slog.New(slog.DiscardHandler), Host: "gpu-07", Version: "test",
		Ptrace: func() (bool, error) { return true, nil },
	})
	obs := s.Observe(context.Background(), nil)

	nv := obs.Sources[inventory.SourceNVML]
	for _, want := range []string{
		"GPU 5: compute process list not believed",
		"dropped 2 processes NVML listed that /proc does not bear out: PID 103 holds no GPU device open; PID 4242 is not running",
	} {
		if !nv.OK || !strings.Contains(nv.Warning, want) {
			t.Errorf("nvml source %+v; want answered, the warning saying %q", nv, want)
		}
	}
	var pids []int
	for _, p := range obs.Processes {
		pids = append(pids, p.PID)
	}
	for _, c := range obs.Containers {
		for _, p := range c.GPUProcesses {
			pids = append(pids, p.PID)
		}
	}
	if want := []int{100, 101}; !reflect.DeepEqual(pids, want) {
		t.Errorf("GPU processes %v; want %v", pids, want)
	}
}
