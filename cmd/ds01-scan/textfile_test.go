package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
			"docker": {OK: true, DurationMS: 120}, "nvml": {OK: true, Warning: "GPU 3 unread", DurationMS: 1500},
			"procfs": {Error: "denied", DurationMS: 30000},
		},
		Containers: []inventory.Container{
			{ID: strings.Repeat("a", 64), Name: "evil\"name\\with\nnewline\xff", Type: "raw-docker", Status: "running", User: "alice",
				GPU:          inventory.GPUAccess{Declared: true, Devices: []string{"0"}},
				GPUProcesses: []inventory.GPUProcess{{PID: 10, GPU: "0", MemoryBytes: u64(4 << 30)}, {PID: 11, GPU: "0", MemoryBytes: u64(1 << 30)}}},
			{ID: strings.Repeat("b", 64), Name: "sneaky", Type: "raw-docker", Status: "running", User: "bob",
				GPUProcesses: []inventory.GPUProcess{{PID: 12, GPU: "1:2", MemoryBytes: u64(2 << 30)}}},
			{ID: strings.Repeat("c", 64), Name: "sitting", Type: "ds01-managed", Status: "running", User: "carol",
				GPU: inventory.GPUAccess{Declared: true, Devices: []string{"3"}}},
			{ID: strings.Repeat("e", 64), Name: "spill", Type: "raw-docker", Status: "running", User: "erin",
				GPU:          inventory.GPUAccess{Declared: true, Devices: []string{"0"}},
				GPUProcesses: []inventory.GPUProcess{{PID: 13, GPU: "0", MemoryBytes: u64(1 << 30)}, {PID: 14, GPU: "2", MemoryBytes: u64(1 << 30)}}},
			{ID: strings.Repeat("d", 64), Name: "done", Type: "docker-compose", Status: "exited", User: "carol",
				GPU: inventory.GPUAccess{Declared: true, Devices: []string{"all"}}},
		},
		HostProcesses: []inventory.HostProcess{
			{PID: 4242, Type: "host-process", Command: "python train.py", User: "dave", GPUs: []string{"2"}, GPUMemoryBytes: u64(8 << 30)},
		},
		GPUs: []inventory.GPUDevice{
			{ID: "0", UUID: "GPU-0", MemoryUsedBytes: u64(26 << 30)}, {ID: "1", UUID: "GPU-1", MIGEnabled: true},
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
	if err := writeTextfile(dir, metricsInventory(0), 0); err != nil {
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
	want := map[string]float64{"alice/0": 5 << 30, "bob/1:2": 2 << 30, "carol/3": 0, "dave/2": 8 << 30, "erin/0": 1 << 30, "erin/2": 1 << 30}
	if fmt.Sprint(mem) != fmt.Sprint(want) {
		t.Errorf("per-GPU memory %v, want %v", mem, want)
	}
	// bob declared nothing; erin declared GPU 0 and also runs on GPU 2.
	und := map[string]string{}
	for _, m := range fams["ds01_gpu_undeclared_workload"].GetMetric() {
		und[labels(m)["user"]] = labels(m)["gpus"]
	}
	if want := map[string]string{"bob": "1:2", "erin": "2"}; fmt.Sprint(und) != fmt.Sprint(want) {
		t.Errorf("undeclared (user: gpus) %v, want %v", und, want)
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
		l := labels(m)
		onGPU[l["gpu"]] = m.GetGauge().GetValue()
		if l["gpu"] == "4" && l["name"] != "NVIDIA \"H100\"\n" {
			t.Errorf("GPU name came back as %q", l["name"])
		}
	}
	// alice and erin on 0, bob on MIG 1:2 (so on GPU 1 too), dave's process
	// and erin on 2, carol sitting on 3; carol's exited container holds
	// nothing; 4 is free.
	if want := map[string]float64{"0": 2, "1": 1, "1:2": 1, "1:3": 0, "2": 2, "3": 1, "4": 0}; !maps.Equal(onGPU, want) {
		t.Errorf("gpu_workloads %v, want %v", onGPU, want)
	}
	users := map[string]string{}
	for _, m := range fams["ds01_gpu_workloads"].GetMetric() {
		users[labels(m)["gpu"]] = labels(m)["users"]
	}
	if want := map[string]string{"0": "alice,erin", "1": "bob", "1:2": "bob", "1:3": "", "2": "dave,erin", "3": "carol", "4": ""}; !maps.Equal(users, want) {
		t.Errorf("gpu_workloads users %v, want %v", users, want)
	}
	// GPU 0 uses 26 GiB; alice's and erin's processes there hold 6.
	orphan := fams["ds01_gpu_memory_unattributed_bytes"].GetMetric()
	if len(orphan) != 1 || labels(orphan[0])["gpu"] != "0" || labels(orphan[0])["uuid"] != "GPU-0" || orphan[0].GetGauge().GetValue() != 20<<30 {
		t.Errorf("unattributed memory %v, want 20 GiB on GPU 0 alone (the others' use is unknown)", orphan)
	}
	blind := map[string]float64{}
	for _, m := range fams["ds01_source_blind_spot"].GetMetric() {
		blind[labels(m)["source"]] = m.GetGauge().GetValue()
	}
	if len(blind) != 3 || blind["docker"] != 0 || blind["nvml"] != 1 || blind["procfs"] != 0 {
		t.Errorf("source_blind_spot %v, want 1 for nvml only", blind)
	}
	took := map[string]float64{}
	for _, m := range fams["ds01_source_duration_seconds"].GetMetric() {
		took[labels(m)["source"]] = m.GetGauge().GetValue()
	}
	if want := map[string]float64{"docker": 0.12, "nvml": 1.5, "procfs": 30}; !maps.Equal(took, want) {
		t.Errorf("source_duration_seconds %v, want %v", took, want)
	}
	if v := fams["ds01_scan_duration_seconds"].GetMetric()[0].GetGauge().GetValue(); v != 0.25 {
		t.Errorf("scan duration %v, want 0.25", v)
	}
}

// hostileLabelValues are label values the exposition format must escape or
// repair, each with the value a parser must read back.
var hostileLabelValues = []struct{ name, in, want string }{
	{"plain", "train-7", "train-7"},
	{"quotes", `say "hi"`, `say "hi"`},
	{"backslashes", `C:\temp\`, `C:\temp\`},
	{"escape written out", `a\nb`, `a\nb`},
	{"newlines", "a\nb\n", "a\nb\n"},
	{"all three", "\"\\\n\\\"", "\"\\\n\\\""},
	{"invalid byte", "bad\xffname", "bad\uFFFDname"},
	{"truncated rune", "cut\xe2\x82", "cut\uFFFD"},
	{"surrogate", "\xed\xa0\x80x", "\uFFFDx"},
	{"long", strings.Repeat("x", 200), strings.Repeat("x", 125) + "…"},
	{"long, a rune at the cut", strings.Repeat("x", 124) + "é" + strings.Repeat("x", 200), strings.Repeat("x", 124) + "…"},
	{"long, repaired before the cut", "\xff" + strings.Repeat("x", 200), "\uFFFD" + strings.Repeat("x", 122) + "…"},
	{"long invalid", strings.Repeat("\xff", 300), "\uFFFD"},
}

// containerID returns the i-th of distinct container IDs, distinct in their
// short form too.
func containerID(i int) string { return strings.Repeat(fmt.Sprintf("%02x", i), 32) }

// hostileInventory is one running container per hostile label value, its
// name and user that value, using a GPU it never declared.
func hostileInventory() *inventory.Inventory {
	inv := &inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		Sources:       map[string]inventory.SourceStatus{"nvml": {OK: true}},
		GPUs:          []inventory.GPUDevice{{ID: "0", UUID: "GPU-0"}},
	}
	for i, tc := range hostileLabelValues {
		inv.Containers = append(inv.Containers, inventory.Container{
			ID: containerID(i), Name: tc.in, Type: "raw-docker", Status: "running", User: tc.in,
			GPUProcesses: []inventory.GPUProcess{{PID: 100 + i, GPU: "0", MemoryBytes: u64(uint64(i+1) << 20)}}})
	}
	return inv
}

// TestRenderMetricsLabelValues: label values come back through expfmt's
// parser as they were, quotes, backslashes and newlines included, except
// that invalid UTF-8 comes back as U+FFFD and a long value cut to
// maxLabelBytes, its ellipsis included.
func TestRenderMetricsLabelValues(t *testing.T) {
	var b strings.Builder
	if err := renderMetrics(&b, hostileInventory(), 0); err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(b.String()) {
		t.Fatalf("exposition is not valid UTF-8:\n%q", b.String())
	}
	fams := parseMetrics(t, []byte(b.String()))
	byID := map[string]map[string]string{}
	for _, m := range fams["ds01_gpu_workload_memory_bytes"].GetMetric() {
		l := labels(m)
		byID[l["id"]] = l
	}
	users := map[string]bool{}
	for _, m := range fams["ds01_workloads"].GetMetric() {
		users[labels(m)["user"]] = true
	}
	for i, tc := range hostileLabelValues {
		t.Run(tc.name, func(t *testing.T) {
			l := byID[inventory.ShortID(containerID(i))]
			if l == nil {
				t.Fatalf("no ds01_gpu_workload_memory_bytes series for the container")
			}
			for _, k := range []string{"name", "user"} {
				if l[k] != tc.want {
					t.Errorf("%s came back as %q, want %q", k, l[k], tc.want)
				}
				if len(l[k]) > maxLabelBytes {
					t.Errorf("%s is %d bytes, over the cap of %d", k, len(l[k]), maxLabelBytes)
				}
			}
			if !users[tc.want] {
				t.Errorf("no ds01_workloads series for user %q", tc.want)
			}
		})
	}
}

// TestRenderMetricsUsersAlike: users whose label values come out the same
// are one ds01_workloads series, not two a scrape would reject as
// duplicates.
func TestRenderMetricsUsersAlike(t *testing.T) {
	inv := &inventory.Inventory{SchemaVersion: inventory.SchemaVersion}
	for i, user := range []string{"x\xff", "x\xfe", "x\uFFFD"} {
		inv.Containers = append(inv.Containers, inventory.Container{
			ID: containerID(i), Name: "c", Type: "raw-docker", Status: "exited", User: user})
	}
	var b strings.Builder
	if err := renderMetrics(&b, inv, 0); err != nil {
		t.Fatal(err)
	}
	ms := parseMetrics(t, []byte(b.String()))["ds01_workloads"].GetMetric()
	if len(ms) != 1 || labels(ms[0])["user"] != "x\uFFFD" || ms[0].GetGauge().GetValue() != 3 {
		t.Errorf("ds01_workloads %v, want one series of 3 for user \"x\uFFFD\"", ms)
	}
}

// TestRenderMetricsPromtool: promtool, which checks what Prometheus and
// its linter expect, accepts the textfile, hostile values included.
func TestRenderMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus)")
	}
	for name, inv := range map[string]*inventory.Inventory{"sample": metricsInventory(0), "hostile": hostileInventory()} {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			if err := renderMetrics(&b, inv, 0); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(b.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s\n--- ds01.prom:\n%s", err, out, b.String())
			}
		})
	}
}

// TestRenderMetricsCardinalityCap: per-workload series stop at the cap and
// what was left out is counted.
func TestRenderMetricsCardinalityCap(t *testing.T) {
	var b strings.Builder
	if err := renderMetrics(&b, metricsInventory(maxWorkloadSeries), 0); err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, []byte(b.String()))
	if n := len(fams["ds01_gpu_workload_memory_bytes"].GetMetric()); n != maxWorkloadSeries {
		t.Errorf("%d per-workload series, want the cap %d", n, maxWorkloadSeries)
	}
	// 6 series from the base inventory, 2 per extra process.
	wantDropped := float64(6 + 2*maxWorkloadSeries - maxWorkloadSeries)
	if v := fams["ds01_workload_series_dropped"].GetMetric()[0].GetGauge().GetValue(); v != wantDropped {
		t.Errorf("dropped %v, want %v", v, wantDropped)
	}
	if n := len(fams["ds01_workloads"].GetMetric()); n > 20 {
		t.Errorf("%d ds01_workloads series: the count by type and user should stay small", n)
	}
}
