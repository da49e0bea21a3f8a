//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// TestScanBriefGPUProcess: a process that started and ended on a GPU
// between two scans, which only NVML's accounting records hold, is one
// detection.gpu_process_brief event and one more on the GPU's counter, in
// the inventory and the textfile; the next scan, reading the same records,
// adds nothing; a process the last scan saw running is not brief; a GPU
// whose accounting is off is named in the nvml source's warning, and
// ds01-workloads passes it on.
func TestScanBriefGPUProcess(t *testing.T) {
	g := newGPUScanner(t)
	textfile := t.TempDir()
	opts := scanOpts{args: []string{"--textfile-dir", textfile}}
	seen := sleeper(t, nil)
	g.report(t, mockNVML{AccountingOff: []int{5}, Processes: []mockProcess{{GPU: 1, PID: seen, MemoryBytes: 1 << 30}}})
	first, _ := g.mustScan(t, opts)

	after := first.Scan.Time.Add(2 * time.Second)
	g.report(t, mockNVML{AccountingOff: []int{5}, Accounting: []mockAccounting{
		{GPU: 1, PID: 31337, StartedAt: after, DurationMS: 20_000, MaxMemoryBytes: 3 << 30, GPUUtil: 80},
		// Listed by the last scan: it saw this one.
		{GPU: 1, PID: seen, StartedAt: after, DurationMS: 1_000, MaxMemoryBytes: 1 << 30},
		// Ended before the last scan began.
		{GPU: 2, PID: 31338, StartedAt: first.Scan.Time.Add(-time.Minute), DurationMS: 5_000},
	}})
	inv, _ := g.mustScan(t, opts)
	var brief []event
	for _, e := range g.allEvents(t) {
		if e.EventType == inventory.EventGPUProcessBrief {
			brief = append(brief, e)
		}
	}
	if len(brief) != 1 {
		t.Fatalf("%d brief events; want 1 (pid 31337)", len(brief))
	}
	d := brief[0].Details
	if brief[0].PID != 31337 || d["gpu"] != "1" || d["duration_ms"] != json.Number("20000") || d["max_memory_bytes"] != json.Number("3221225472") ||
		d["gpu_util_percent"] != json.Number("80") || d["started_at"] != inventory.FormatTimestamp(after) || brief[0].User == nil || *brief[0].User != "unknown" {
		t.Errorf("brief event %+v", brief[0])
	}
	gpus := map[string]inventory.GPUDevice{}
	for _, gd := range inv.GPUs {
		gpus[gd.ID] = gd
	}
	if gpus["1"].BriefProcesses != 1 || gpus["2"].BriefProcesses != 0 || gpus["1"].LastAccountingTimestamp == 0 {
		t.Errorf("GPU 1 brief %d (last accounting %d), GPU 2 brief %d; want 1 and 0", gpus["1"].BriefProcesses, gpus["1"].LastAccountingTimestamp, gpus["2"].BriefProcesses)
	}
	nv := inv.Sources[inventory.SourceNVML]
	if !strings.Contains(nv.Warning, "accounting mode is off on GPU 5:") {
		t.Errorf("nvml source warning %q; want GPU 5's accounting named", nv.Warning)
	}
	prom, err := os.ReadFile(filepath.Join(textfile, "ds01.prom"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), `ds01_gpu_brief_processes_total{gpu="1",uuid="`+gpus["1"].UUID+`"} 1`) ||
		strings.Contains(string(prom), `ds01_gpu_brief_processes_total{gpu="5"`) {
		t.Errorf("textfile lacks GPU 1's brief counter at 1, or counts GPU 5, whose accounting is off:\n%s", prom)
	}
	if r := workloads(t, g.state); !strings.Contains(string(r.stderr), "accounting mode is off on GPU 5") {
		t.Errorf("ds01-workloads does not pass the accounting warning on:\n%s", r.output())
	}

	again, _ := g.mustScan(t, opts)
	n := 0
	for _, e := range g.allEvents(t) {
		if e.EventType == inventory.EventGPUProcessBrief {
			n++
		}
	}
	for _, gd := range again.GPUs {
		if gd.ID == "1" && gd.BriefProcesses != 1 {
			t.Errorf("third scan: GPU 1 counts %d brief processes; want still 1", gd.BriefProcesses)
		}
	}
	if n != 1 {
		t.Errorf("%d brief events after a scan that read the same records; want still 1", n)
	}
}
