//go:build nvmlmock

package detect

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/ds01-project/ds01/pkg/inventory"
)

func writeMockFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nvml.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func nvmlU32(v uint32) *uint32 { return &v }

func observeMockFile(t *testing.T, content string) (NVMLReading, error) {
	t.Helper()
	lib, err := NVMLFromMockFile(writeMockFile(t, content))
	if err != nil {
		t.Fatalf("NVMLFromMockFile: %v", err)
	}
	return NewNVML(lib, nil).Observe(nil)
}

func TestNVMLFromMockFileProcesses(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		wantGPUs int
		want     []GPUSample
		unknown  map[string]int
	}{
		{
			name: "the integration suite's format",
			file: `{"processes":[{"gpu":0,"pid":1234,"memory_bytes":4294967296,"kind":"compute"}]}`,
			want: []GPUSample{{PID: 1234, GPU: "0", GPUUUID: "GPU-d5010000-0000-4000-8000-000000000000",
				Kind: inventory.KindCompute, MemoryBytes: nvmlU64(4 * nvmlGiB)}},
			wantGPUs: 8,
		},
		{
			name: "kinds, absent memory and invalid PIDs",
			file: `{"gpus": 4, "processes": [
				{"gpu": 3, "pid": 10, "memory_bytes": 1073741824, "kind": "graphics"},
				{"gpu": "3", "pid": 11, "kind": "mps"},
				{"gpu": 2, "pid": 12},
				{"gpu": 2, "pid": 0, "memory_bytes": 5},
				{"gpu": 2, "pid": 4294967295}
			]}`,
			want: []GPUSample{
				{PID: 12, GPU: "2", GPUUUID: "GPU-d5010000-0000-4000-8000-000000000002", Kind: inventory.KindCompute},
				{PID: 10, GPU: "3", GPUUUID: "GPU-d5010000-0000-4000-8000-000000000003", Kind: inventory.KindGraphics, MemoryBytes: nvmlU64(nvmlGiB)},
				{PID: 11, GPU: "3", GPUUUID: "GPU-d5010000-0000-4000-8000-000000000003", Kind: inventory.KindMPS},
			},
			unknown:  map[string]int{"2": 2},
			wantGPUs: 4,
		},
		{
			name: "utilisation",
			file: `{"gpus": 1, "processes": [{"gpu": 0, "pid": 5, "memory_bytes": 1024, "sm_util": 37}]}`,
			want: []GPUSample{{PID: 5, GPU: "0", GPUUUID: "GPU-d5010000-0000-4000-8000-000000000000",
				Kind: inventory.KindCompute, MemoryBytes: nvmlU64(1024), SMUtil: nvmlU32(37)}},
			wantGPUs: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs, err := observeMockFile(t, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(obs.Samples, tc.want) {
				t.Errorf("samples:\n got %s\nwant %s", fmtGPUSamples(obs.Samples), fmtGPUSamples(tc.want))
			}
			if len(obs.GPUs) != tc.wantGPUs {
				t.Errorf("%d GPUs, want %d", len(obs.GPUs), tc.wantGPUs)
			}
			for _, g := range obs.GPUs {
				if g.UnknownProcesses != tc.unknown[g.ID] || g.Error != "" || g.PersistenceMode == nil || !*g.PersistenceMode {
					t.Errorf("GPU %+v, want %d unknown processes, persistence on, no error", g, tc.unknown[g.ID])
				}
			}
		})
	}
}

func TestNVMLFromMockFileStableUUIDs(t *testing.T) {
	file := `{"gpus": 2, "mig": {"1": [{"gi": 1}]}}`
	first, err := observeMockFile(t, file)
	if err != nil {
		t.Fatal(err)
	}
	second, err := observeMockFile(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.GPUs, second.GPUs) || first.GPUs[0].UUID == first.GPUs[1].UUID {
		t.Errorf("two reads differ or share UUIDs:\n%+v\n%+v", first.GPUs, second.GPUs)
	}
}

func TestNVMLFromMockFileMIG(t *testing.T) {
	obs, err := observeMockFile(t, `{"gpus": 2, "mig": {"1": [{"gi": 1, "ci": 0}, {"gi": 2, "profile": "3g.20gb", "memory_bytes": 21474836480}]},
		"processes": [{"gpu": "1:0", "pid": 100, "memory_bytes": 1073741824}, {"gpu": "1:1", "pid": 200, "kind": "mps"}, {"gpu": 0, "pid": 300}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0", "1", "1:0", "1:1"}; !reflect.DeepEqual(nvmlGPUIDs(obs), want) {
		t.Fatalf("GPU IDs %v, want %v", nvmlGPUIDs(obs), want)
	}
	// Used counts what the driver reserves, as NVML's v2 call does.
	if g := findNVMLGPU(t, obs, "1"); !g.MIGEnabled || g.MemoryUsedBytes == nil || *g.MemoryUsedBytes != nvmlGiB+mockReservedBytes {
		t.Errorf("GPU 1 %+v, want MIG enabled using 1 GiB and the reserved 512 MiB", g)
	}
	m := findNVMLGPU(t, obs, "1:1")
	if m.Parent != "1" || m.GPUInstanceID == nil || *m.GPUInstanceID != 2 || m.ComputeInstanceID == nil || *m.ComputeInstanceID != 0 ||
		m.Name != "Mock NVIDIA A100-SXM4-40GB MIG 3g.20gb" || *m.MemoryTotalBytes != 20*nvmlGiB || m.Error != "" || m.PersistenceMode != nil {
		t.Errorf("MIG 1:1 %+v", m)
	}
	var got []string
	for _, s := range obs.Samples {
		got = append(got, s.GPU+"/"+s.Kind)
	}
	if want := []string{"0/compute", "1:0/compute", "1:1/mps"}; !reflect.DeepEqual(got, want) {
		t.Errorf("samples %v, want %v", got, want)
	}
}

func TestNVMLFromMockFileUnavailable(t *testing.T) {
	tests := []struct {
		file string
		want error
	}{
		{`{"init_error": "DRIVER_NOT_LOADED"}`, nvml.ERROR_DRIVER_NOT_LOADED},
		{`{"init_error": "ERROR_LIB_RM_VERSION_MISMATCH"}`, nvml.ERROR_LIB_RM_VERSION_MISMATCH},
		{`{"init_error": "LIBRARY_NOT_FOUND"}`, nvml.ERROR_LIBRARY_NOT_FOUND},
		{`{"gpus": 0}`, ErrNoGPUs},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := observeMockFile(t, tc.file)
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNVMLFromMockFileLostAndServer(t *testing.T) {
	obs, err := observeMockFile(t, `{"server": "dgxh100", "gpus": 3, "lost": [1], "persistence_mode": false,
		"processes": [{"gpu": 1, "pid": 10}, {"gpu": 2, "pid": 20}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if g := findNVMLGPU(t, obs, "1"); !g.Lost || g.UUID != "" {
		t.Errorf("GPU 1 %+v, want lost", g)
	}
	g := findNVMLGPU(t, obs, "2")
	if g.Name != "NVIDIA H100 80GB HBM3" || g.PersistenceMode == nil || *g.PersistenceMode || g.Lost {
		t.Errorf("GPU 2 %+v, want an H100 with persistence off", g)
	}
	if len(obs.Samples) != 1 || obs.Samples[0].PID != 20 {
		t.Errorf("samples %s, want PID 20 only", fmtGPUSamples(obs.Samples))
	}
}

func TestNVMLFromMockFileInvalid(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"not JSON", `{"gpus": `, "parse"},
		{"unknown field", `{"gpu": 2}`, "unknown field"},
		{"unknown server", `{"server": "dgx1"}`, "unknown server"},
		{"too many GPUs", `{"gpus": 1000}`, "gpus 1000"},
		{"unknown init error", `{"init_error": "SOMETHING"}`, "unknown init_error"},
		{"process on a missing GPU", `{"gpus": 2, "processes": [{"gpu": 2, "pid": 1}]}`, `no device "2"`},
		{"process on a missing MIG instance", `{"gpus": 2, "mig": {"1": [{"gi": 1}]}, "processes": [{"gpu": "1:3", "pid": 1}]}`, `no device "1:3"`},
		{"process on a MIG parent", `{"gpus": 2, "mig": {"1": [{"gi": 1}]}, "processes": [{"gpu": 1, "pid": 1}]}`, "MIG mode"},
		{"bad kind", `{"processes": [{"gpu": 0, "pid": 1, "kind": "cuda"}]}`, "kind"},
		{"bad gpu", `{"processes": [{"gpu": true, "pid": 1}]}`, "gpu must be"},
		{"duplicate MIG instance", `{"mig": {"0": [{"gi": 1, "ci": 1}, {"gi": 1, "ci": 1}]}}`, "twice"},
		{"MIG on a missing GPU", `{"gpus": 1, "mig": {"4": [{"gi": 1}]}}`, "no GPU"},
		{"lost missing GPU", `{"gpus": 1, "lost": [1]}`, "no GPU 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib, err := NVMLFromMockFile(writeMockFile(t, tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NVMLFromMockFile = %v, %v; want an error saying %q", lib, err, tc.want)
			}
		})
	}
	if _, err := NVMLFromMockFile(filepath.Join(t.TempDir(), "absent.json")); err == nil {
		t.Error("a missing file gave no error")
	}
}
