package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// This file writes ds01.prom, the inventory as Prometheus gauges for
// node_exporter's textfile collector: workloads by type and user, each GPU
// workload's memory per GPU, who holds each GPU, and how each source fared.
// The families are built as client_model values and expfmt encodes them.

// textfileName is the file node_exporter's textfile collector reads; it
// reads only *.prom, so the temporary file ends otherwise.
const textfileName = "ds01.prom"

// maxWorkloadSeries caps the per-workload series: a server with thousands of
// stopped containers or a runaway job launcher must not flood Prometheus.
// What is cut is counted in ds01_workload_series_dropped.
const maxWorkloadSeries = 2000

// maxLabelBytes caps a label value: container names and command lines can
// be huge, and Prometheus keeps every byte of every series' labels.
const maxLabelBytes = 128

// writeTextfile writes the metrics of inv to dir/ds01.prom atomically;
// unlogged is how many of its events the event log refused.
func writeTextfile(dir string, inv *inventory.Inventory, unlogged int) error {
	f, err := os.CreateTemp(dir, "."+textfileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("textfile: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("textfile: %w", err)
	}
	if err := renderMetrics(f, inv, unlogged); err != nil {
		f.Close()
		return fmt.Errorf("textfile: write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("textfile: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, textfileName)); err != nil {
		return fmt.Errorf("textfile: %w", err)
	}
	return nil
}

// renderMetrics writes inv in the Prometheus text exposition format.
func renderMetrics(w io.Writer, inv *inventory.Inventory, unlogged int) error {
	workloads := inv.Workloads()
	memByContainer := make(map[string]map[string]uint64, len(inv.Containers))
	for _, c := range inv.Containers {
		for _, p := range c.GPUProcesses {
			if p.MemoryBytes == nil {
				continue
			}
			if memByContainer[c.ID] == nil {
				memByContainer[c.ID] = map[string]uint64{}
			}
			memByContainer[c.ID][p.GPU] += *p.MemoryBytes
		}
	}
	// Counted by the label values as written: two users that labelValue
	// makes alike are one series, not two with the same labels.
	counts := map[[2]string]int{}
	perGPU := gauge("ds01_gpu_workload_memory_bytes",
		"GPU memory of a workload on one GPU (0 when declared but unused or unknown); one series per workload and GPU.")
	undeclared := gauge("ds01_gpu_undeclared_workload",
		"1 for a container using GPUs outside what it declared (or with none declared); gpus names them.")
	idle := gauge("ds01_gpu_idle_workload", "1 for a running container that declared GPUs and has no GPU process.")
	dropped := 0
	for _, wl := range workloads {
		counts[[2]string{labelValue(wl.Type), labelValue(wl.User)}]++
		if !wl.HasGPU || wl.Status != "running" {
			continue
		}
		process := inventory.IsProcessType(wl.Type)
		id, mem := inventory.ShortID(wl.ID), memByContainer[wl.ID]
		if process {
			id, mem = wl.ID, processMemory(wl)
		}
		base := []*dto.LabelPair{label("type", wl.Type), label("user", wl.User), label("name", wl.Name), label("id", id)}
		for _, gpu := range wl.GPUs {
			if len(perGPU.Metric) >= maxWorkloadSeries {
				dropped++
				continue
			}
			addGauge(perGPU, float64(mem[gpu]), append(base[:4:4], label("gpu", gpu))...)
		}
		if wl.GPUAccess == inventory.AccessUndeclared {
			addGauge(undeclared, 1, append(base[:4:4], label("gpus", strings.Join(wl.GPUsUndeclared, ",")))...)
		}
		if wl.GPUIdle {
			addGauge(idle, 1, base...)
		}
	}
	byType := gauge("ds01_workloads", "Workloads by type and user (stopped containers included).")
	for _, k := range slices.SortedFunc(maps.Keys(counts), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		addGauge(byType, float64(counts[k]), label("type", k[0]), label("user", k[1]))
	}
	onGPU := gauge("ds01_gpu_workloads",
		"Workloads that declare or use the GPU or MIG instance (up, or with a process on it), users naming their users; 0: free.")
	unattributed := gauge("ds01_gpu_memory_unattributed_bytes",
		"GPU memory in use that no listed process holds (a leaked context, another PID namespace, MPS clients).")
	brief := counter("ds01_gpu_brief_processes_total",
		"GPU processes that started and ended between two scans, seen only in NVML's accounting records.")
	for _, g := range inv.GPUs {
		if g.AccountingMode != nil && *g.AccountingMode {
			v := float64(g.BriefProcesses)
			brief.Metric = append(brief.Metric, &dto.Metric{Label: []*dto.LabelPair{label("gpu", g.ID), label("uuid", g.UUID)},
				Counter: &dto.Counter{Value: &v}})
		}
	}
	userOf := make(map[string]string, len(workloads))
	for _, wl := range workloads {
		userOf[wl.ID] = wl.User
	}
	for _, a := range inv.GPULedger(workloads) {
		d, holders := a.Device, a.Holders()
		users := make([]string, len(holders))
		for i, id := range holders {
			users[i] = userOf[id]
		}
		slices.Sort(users)
		addGauge(onGPU, float64(len(holders)), label("gpu", d.ID), label("uuid", d.UUID), label("name", d.Name),
			label("users", strings.Join(slices.Compact(users), ",")))
		if a.UnattributedBytes != nil {
			addGauge(unattributed, float64(*a.UnattributedBytes), label("gpu", d.ID), label("uuid", d.UUID))
		}
	}
	up := gauge("ds01_source_up", "1 when the source answered on the last scan.")
	blind := gauge("ds01_source_blind_spot",
		"1 when the source answered but could not see everything (see its warning in the inventory).")
	took := gauge("ds01_source_duration_seconds",
		"How long the source took on the last scan (a source that hangs shows its budget here).")
	for _, name := range slices.Sorted(maps.Keys(inv.Sources)) {
		st, source := inv.Sources[name], label("source", name)
		addGauge(up, oneIf(st.OK), source)
		addGauge(blind, oneIf(st.Warning != ""), source)
		addGauge(took, float64(st.DurationMS)/1000, source)
	}
	droppedSeries := gauge("ds01_workload_series_dropped",
		"Per-workload series left out by the cap of "+strconv.Itoa(maxWorkloadSeries)+".")
	addGauge(droppedSeries, float64(dropped))
	scanDuration := gauge("ds01_scan_duration_seconds", "How long the last scan took.")
	addGauge(scanDuration, float64(inv.Scan.DurationMS)/1000)
	lastScan := gauge("ds01_last_scan_timestamp_seconds", "When the last successful scan ran (Unix time).")
	addGauge(lastScan, float64(inv.Scan.Time.Unix()))

	waiting := gauge("ds01_events_unlogged",
		"Events saved with the inventory that the event log refused: they wait there for the next scan.")
	addGauge(waiting, float64(unlogged))

	b := bufio.NewWriter(w)
	for _, f := range []*dto.MetricFamily{
		byType, perGPU, onGPU, unattributed, brief, undeclared, idle, up, blind, took, droppedSeries, scanDuration, lastScan, waiting,
	} {
		// expfmt refuses a family without series; its HELP and TYPE
		// alone would tell Prometheus nothing.
		if len(f.Metric) == 0 {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(b, f); err != nil {
			return err
		}
	}
	return b.Flush()
}

// counter returns an empty counter family.
func counter(name, help string) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_COUNTER.Enum()}
}

// gauge returns an empty gauge family.
func gauge(name, help string) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}
}

// addGauge adds one series to f.
func addGauge(f *dto.MetricFamily, v float64, labels ...*dto.LabelPair) {
	f.Metric = append(f.Metric, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: &v}})
}

// label returns a label pair with its value made fit by labelValue.
func label(name, value string) *dto.LabelPair {
	value = labelValue(value)
	return &dto.LabelPair{Name: &name, Value: &value}
}

// labelValue makes s fit for a label value: valid UTF-8, which the
// exposition format requires and expfmt neither checks nor repairs, and at
// most maxLabelBytes.
func labelValue(s string) string {
	return inventory.Truncate(strings.ToValidUTF8(s, "\uFFFD"), maxLabelBytes)
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// processMemory returns a host process's memory per GPU; NVML's total is
// per GPU only when the process is on one.
func processMemory(wl inventory.Workload) map[string]uint64 {
	if wl.GPUMemoryBytes != nil && len(wl.GPUs) == 1 {
		return map[string]uint64{wl.GPUs[0]: *wl.GPUMemoryBytes}
	}
	return nil
}
