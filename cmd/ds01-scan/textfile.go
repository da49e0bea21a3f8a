package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// textfileName is the file node_exporter's textfile collector reads; it
// reads only *.prom, so the temporary file ends otherwise.
const textfileName = "ds01.prom"

// maxWorkloadSeries caps the per-workload series: a server with thousands of
// stopped containers or a runaway job launcher must not flood Prometheus.
// What is cut is counted in ds01_workload_series_dropped.
const maxWorkloadSeries = 2000

// writeTextfile writes the metrics of inv to dir/ds01.prom atomically.
func writeTextfile(dir string, inv *inventory.Inventory) error {
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
	if err := renderMetrics(f, inv); err != nil {
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

// metric is one family being written.
type metric struct {
	name, help, typ string
	samples         []sample
}

type sample struct {
	labels [][2]string
	value  float64
}

// renderMetrics writes inv in the Prometheus text exposition format.
func renderMetrics(w io.Writer, inv *inventory.Inventory) error {
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
	counts := map[[2]string]int{}
	perGPU := metric{name: "ds01_gpu_workload_memory_bytes", typ: "gauge",
		help: "GPU memory of a workload on one GPU (0 when declared but unused or unknown); one series per workload and GPU."}
	undeclared := metric{name: "ds01_gpu_undeclared_workload", typ: "gauge",
		help: "1 for a container using a GPU it never declared."}
	idle := metric{name: "ds01_gpu_idle_workload", typ: "gauge",
		help: "1 for a running container that declared GPUs and has no GPU process."}
	dropped := 0
	for _, wl := range workloads {
		counts[[2]string{wl.Type, wl.User}]++
		if !wl.HasGPU || wl.Status != "running" {
			continue
		}
		id := wl.ID
		if wl.Type != inventory.TypeHostProcess && wl.Type != inventory.TypeSystem {
			id = inventory.ShortID(wl.ID)
		}
		base := [][2]string{{"type", wl.Type}, {"user", wl.User}, {"name", capLabel(wl.Name)}, {"id", id}}
		mem := memByContainer[wl.ID]
		if wl.Type == inventory.TypeHostProcess || wl.Type == inventory.TypeSystem {
			mem = processMemory(wl)
		}
		for _, gpu := range wl.GPUs {
			if len(perGPU.samples) >= maxWorkloadSeries {
				dropped++
				continue
			}
			perGPU.samples = append(perGPU.samples, sample{append(base[:4:4], [2]string{"gpu", gpu}), float64(mem[gpu])})
		}
		if wl.GPUObserved && !wl.GPUDeclared && wl.Type != inventory.TypeHostProcess && wl.Type != inventory.TypeSystem {
			undeclared.samples = append(undeclared.samples, sample{base, 1})
		}
		if wl.GPUIdle {
			idle.samples = append(idle.samples, sample{base, 1})
		}
	}
	byType := metric{name: "ds01_workloads", typ: "gauge", help: "Workloads by type and user (stopped containers included)."}
	for _, k := range sortedPairs(counts) {
		byType.samples = append(byType.samples, sample{[][2]string{{"type", k[0]}, {"user", k[1]}}, float64(counts[k])})
	}
	up := metric{name: "ds01_source_up", typ: "gauge", help: "1 when the source answered on the last scan."}
	blind := metric{name: "ds01_source_blind_spot", typ: "gauge", help: "1 when the source answered but could not see everything (see its warning in the inventory)."}
	names := make([]string, 0, len(inv.Sources))
	for n := range inv.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := 0.0
		if inv.Sources[n].OK {
			v = 1
		}
		up.samples = append(up.samples, sample{[][2]string{{"source", n}}, v})
		v = 0
		if inv.Sources[n].Warning != "" {
			v = 1
		}
		blind.samples = append(blind.samples, sample{[][2]string{{"source", n}}, v})
	}
	onGPU := metric{name: "ds01_gpu_workloads", typ: "gauge",
		help: "Workloads that hold or use the GPU or MIG instance (up, or with a process on it); 0: free."}
	holders := inventory.GPUWorkloads(inv.GPUs, workloads)
	for _, d := range inv.GPUs {
		onGPU.samples = append(onGPU.samples, sample{[][2]string{{"gpu", d.ID}, {"uuid", d.UUID}, {"name", capLabel(d.Name)}}, float64(holders[d.ID])})
	}
	families := []metric{
		byType, perGPU, onGPU, undeclared, idle, up, blind,
		{name: "ds01_workload_series_dropped", typ: "gauge", help: "Per-workload series left out by the cap of " + strconv.Itoa(maxWorkloadSeries) + ".",
			samples: []sample{{value: float64(dropped)}}},
		{name: "ds01_scan_duration_seconds", typ: "gauge", help: "How long the last scan took.",
			samples: []sample{{value: float64(inv.Scan.DurationMS) / 1000}}},
		{name: "ds01_last_scan_timestamp_seconds", typ: "gauge", help: "When the last successful scan ran (Unix time).",
			samples: []sample{{value: float64(inv.Scan.Time.Unix())}}},
	}
	var b strings.Builder
	for _, m := range families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for _, s := range m.samples {
			b.WriteString(m.name)
			if len(s.labels) > 0 {
				b.WriteByte('{')
				for i, l := range s.labels {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "%s=\"%s\"", l[0], escapeLabel(l[1]))
				}
				b.WriteByte('}')
			}
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(s.value, 'g', -1, 64))
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// processMemory returns a host process's memory per GPU; NVML's total is
// per GPU only when the process is on one.
func processMemory(wl inventory.Workload) map[string]uint64 {
	if wl.GPUMemoryBytes != nil && len(wl.GPUs) == 1 {
		return map[string]uint64{wl.GPUs[0]: *wl.GPUMemoryBytes}
	}
	return nil
}

// escapeLabel escapes a label value per the text exposition format, which
// also requires valid UTF-8.
func escapeLabel(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// capLabel keeps a label value short: names and command lines can be huge.
func capLabel(s string) string {
	if len(s) <= 128 {
		return s
	}
	return strings.ToValidUTF8(s[:128], "") + "…"
}

func sortedPairs(m map[[2]string]int) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	return keys
}
