package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ds01-project/ds01/pkg/inventory"
)

func u64(n uint64) *uint64 { return &n }

func metricsInventory(extra int) *inventory.Inventory {
	at := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	inv := &inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		Scan:          inventory.ScanInfo{ID: "s", Time: at, DurationMS: 250},
		Sources: map[string]inventory.SourceStatus{
			"docker": {OK: true}, "nvml": {OK: true, Warning: "GPU 3 unread"}, "procfs": {Error: "denied"},
		},
		Containers: []inventory.Container{
			{ID: strings.Repeat("a", 64), Name: "evil\"name\\with\nnewline\xff", Type: "raw-docker", Status: "running", User: "alice",
				GPU:          inventory.GPUAccess{Declared: true, Devices: []string{"0"}},
				GPUProcesses: []inventory.GPUProcess{{PID: 10, GPU: "0", MemoryBytes: u64(4 << 30)}, {PID: 11, GPU: "0", MemoryBytes: u64(1 << 30)}}},
			{ID: strings.Repeat("b", 64), Name: "sneaky", Type: "raw-docker", Status: "running", User: "bob",
				GPUProcesses: []inventory.GPUProcess{{PID: 12, GPU: "1:2", MemoryBytes: u64(2 << 30)}}},
			{ID: strings.Repeat("c", 64), Name: "sitting", Type: "ds01-managed", Status: "running", User: "carol",
				GPU: inventory.GPUAccess{Declared: true, Devices: []string{"3"}}},
			{ID: strings.Repeat("d", 64), Name: "done", Type: "docker-compose", Status: "exited", User: "carol",
				GPU: inventory.GPUAccess{Declared: true, Devices: []string{"all"}}},
		},
		HostProcesses: []inventory.HostProcess{
			{PID: 4242, Type: "host-process", Command: "python train.py", User: "dave", GPUs: []string{"2"}, GPUMemoryBytes: u64(8 << 30)},
		},
		GPUs: []inventory.GPUDevice{
			{ID: "0", UUID: "GPU-0"}, {ID: "1", UUID: "GPU-1", MIGEnabled: true},
			{ID: "1:2", UUID: "MIG-12", Parent: "1"}, {ID: "1:3", UUID: "MIG-13", Parent: "1"},
			{ID: "2", UUID: "GPU-2"}, {ID: "3", UUID: "GPU-3"}, {ID: "4", UUID: "GPU-4", Name: "NVIDIA \"H100\"\n"},
		},
	}
	for i := range extra {
		inv.HostProcesses = append(inv.HostProcesses, inventory.HostProcess{
			PID: 10000 + i, Type: "host-process", Command: "job", User: fmt.Sprintf("u%d", i%7), GPUs: []string{"0", "1"}})
	}
	return inv
}

func parseMetrics(t *testing.T, data []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, data)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestRenderMetrics: the textfile parses as the exposition format, hostile
// names included, and says who holds which GPU with how much memory.
func TestRenderMetrics(t *testing.T) {
	dir := t.TempDir()
	if err := writeTextfile(dir, metricsInventory(0)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, textfileName))
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	fams := parseMetrics(t, data)
	mem := map[string]float64{}
	for _, m := range fams["ds01_gpu_workload_memory_bytes"].GetMetric() {
		l := labels(m)
		mem[l["user"]+"/"+l["gpu"]] = m.GetGauge().GetValue()
		if l["user"] == "alice" && l["name"] != "evil\"name\\with\nnewline\uFFFD" {
			t.Errorf("hostile name came back as %q", l["name"])
		}
	}
	want := map[string]float64{"alice/0": 5 << 30, "bob/1:2": 2 << 30, "carol/3": 0, "dave/2": 8 << 30}
	if fmt.Sprint(mem) != fmt.Sprint(want) {
		t.Errorf("per-GPU memory %v, want %v", mem, want)
	}
	und := fams["ds01_gpu_undeclared_workload"].GetMetric()
	if len(und) != 1 || labels(und[0])["user"] != "bob" {
		t.Errorf("undeclared %v, want bob's container only", und)
	}
	idle := fams["ds01_gpu_idle_workload"].GetMetric()
	if len(idle) != 1 || labels(idle[0])["user"] != "carol" {
		t.Errorf("idle %v, want carol's running container only", idle)
	}
	up := map[string]float64{}
	for _, m := range fams["ds01_source_up"].GetMetric() {
		up[labels(m)["source"]] = m.GetGauge().GetValue()
	}
	if up["docker"] != 1 || up["nvml"] != 1 || up["procfs"] != 0 {
		t.Errorf("source_up %v", up)
	}
	onGPU := map[string]float64{}
	for _, m := range fams["ds01_gpu_workloads"].GetMetric() {
		onGPU[labels(m)["gpu"]] = m.GetGauge().GetValue()
	}
	// alice on 0, bob on MIG 1:2 (so on GPU 1 too), dave's process on 2,
	// carol sitting on 3; carol's exited container holds nothing; 4 is free.
	if want := map[string]float64{"0": 1, "1": 1, "1:2": 1, "1:3": 0, "2": 1, "3": 1, "4": 0}; !maps.Equal(onGPU, want) {
		t.Errorf("gpu_workloads %v, want %v", onGPU, want)
	}
	blind := map[string]float64{}
	for _, m := range fams["ds01_source_blind_spot"].GetMetric() {
		blind[labels(m)["source"]] = m.GetGauge().GetValue()
	}
	if len(blind) != 3 || blind["docker"] != 0 || blind["nvml"] != 1 || blind["procfs"] != 0 {
		t.Errorf("source_blind_spot %v, want 1 for nvml only", blind)
	}
	if v := fams["ds01_scan_duration_seconds"].GetMetric()[0].GetGauge().GetValue(); v != 0.25 {
		t.Errorf("scan duration %v, want 0.25", v)
	}
}

// TestRenderMetricsCardinalityCap: per-workload series stop at the cap and
// what was left out is counted.
func TestRenderMetricsCardinalityCap(t *testing.T) {
	var b strings.Builder
	if err := renderMetrics(&b, metricsInventory(maxWorkloadSeries)); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, []byte(b.String()))
	if n := len(fams["ds01_gpu_workload_memory_bytes"].GetMetric()); n != maxWorkloadSeries {
		t.Errorf("%d per-workload series, want the cap %d", n, maxWorkloadSeries)
	}
	// 4 series from the base inventory, 2 per extra process.
	wantDropped := float64(4 + 2*maxWorkloadSeries - maxWorkloadSeries)
	if v := fams["ds01_workload_series_dropped"].GetMetric()[0].GetGauge().GetValue(); v != wantDropped {
		t.Errorf("dropped %v, want %v", v, wantDropped)
	}
	if n := len(fams["ds01_workloads"].GetMetric()); n > 20 {
		t.Errorf("%d ds01_workloads series: the count by type and user should stay small", n)
	}
}
