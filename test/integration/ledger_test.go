//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

const gib = uint64(1) << 30

// ledgerDriver is a two-GPU driver whose minor numbers are not its indices
// (GPU 0 is /dev/nvidia1, GPU 1 is /dev/nvidia0) and whose GPU 1 holds
// 20 GiB that no process it lists holds.
func ledgerDriver(procs ...mockProcess) mockNVML {
	two := 2
	return mockNVML{GPUs: &two, MinorNumbers: []int{1, 0}, Unlisted: map[string]uint64{"1": 20 * gib}, Processes: procs}
}

func mainPID(t *testing.T, id string) int {
	t.Helper()
	pid, err := strconv.Atoi(docker(t, "inspect", "-f", "{{.State.Pid}}", id))
	if err != nil || pid <= 0 {
		t.Fatalf("container %s has no main process: %d %v", id[:12], pid, err)
	}
	return pid
}

// ledgerJSON is the part of --json this test reads.
type ledgerJSON struct {
	GPUs []struct {
		ID                  string   `json:"id"`
		MinorNumber         *int     `json:"minor_number"`
		MemoryUsed          *uint64  `json:"memory_used_bytes"`
		MemoryAttributed    *uint64  `json:"memory_attributed_bytes"`
		MemoryUnattributed  *uint64  `json:"memory_unattributed_bytes"`
		UnattributedFlagged bool     `json:"memory_unattributed_flagged"`
		UsedBy              []string `json:"used_by"`
	} `json:"gpus"`
	Workloads []struct {
		ID             string   `json:"id"`
		GPUAccess      string   `json:"gpu_access"`
		GPUsDeclared   []string `json:"gpus_declared"`
		GPUsUndeclared []string `json:"gpus_undeclared"`
	} `json:"workloads"`
}

// TestLedgerSwappedMinorsAndOrphanedMemory runs the real ds01-scan over a
// driver whose minor numbers differ from its indices and whose GPU 1 holds
// memory no process lists, with real containers on the private engine:
//   - given --device /dev/nvidia1 (NVML's GPU 0) and running on GPU 0, a
//     container is declared and in use: no false alarm on GPU 0, no false
//     "declared" on GPU 1;
//   - declared GPU 0 (--runtime=nvidia, NVIDIA_VISIBLE_DEVICES=0) and then
//     also on GPU 1, a container is undeclared on GPU 1 in the table, the
//     --undeclared filter, --json, the event log and the metric; back on
//     GPU 0 alone, one more event says so;
//   - a container first seen outside what it declared says so in its
//     discovery event;
//   - the orphaned 20 GiB shows in --json, under the table and as a metric.
func TestLedgerSwappedMinorsAndOrphanedMemory(t *testing.T) {
	gpuNode(t, 0)
	gpuNode(t, 1)
	byDevice := container(t, "run", "-d", "--device", "/dev/nvidia1", env.image, "sleep", "600")
	spill := container(t, "run", "-d", "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=0", env.image, "sleep", "600")
	devicePID, spillPID := mainPID(t, byDevice), mainPID(t, spill)
	g := newGPUScanner(t)
	prom := filepath.Join(g.dir, "prom")
	if err := os.Mkdir(prom, 0o755); err != nil {
		t.Fatal(err)
	}
	scan := func(m mockNVML) *inventory.Inventory {
		t.Helper()
		g.report(t, m)
		inv, _ := g.mustScan(t, scanOpts{args: []string{"--textfile-dir", prom}})
		if !inv.Sources["nvml"].OK {
			t.Fatalf("nvml source: %+v", inv.Sources["nvml"])
		}
		return inv
	}
	onDevice := mockProcess{GPU: 0, PID: devicePID, MemoryBytes: gib, Kind: "compute"}
	spillOn0 := mockProcess{GPU: 0, PID: spillPID, MemoryBytes: 2 * gib, Kind: "compute"}

	// Scan 1: each on GPU 0 alone.
	inv := scan(ledgerDriver(onDevice, spillOn0))
	if minor := inv.GPUs[0].MinorNumber; minor == nil || *minor != 1 {
		t.Fatalf("GPU 0's minor number %v, want 1 (the mock driver's)", minor)
	}
	d := mustFind(t, inv, byDevice)
	if !reflect.DeepEqual(d.GPU.Devices, []string{"/dev/nvidia1"}) || d.GPUAccess != inventory.AccessInUse || len(d.GPUsUndeclared) != 0 {
		t.Errorf("--device /dev/nvidia1 on GPU 0: devices %v access %q outside %v, want /dev/nvidia1, in-use, none",
			d.GPU.Devices, d.GPUAccess, d.GPUsUndeclared)
	}
	if s := mustFind(t, inv, spill); s.GPUAccess != inventory.AccessInUse {
		t.Errorf("declared GPU 0, on GPU 0: access %q, want in-use", s.GPUAccess)
	}

	// Scan 2: the second also on GPU 1; a third container, first seen now,
	// declared GPU 1 and runs on GPU 0.
	late := container(t, "run", "-d", "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=1", env.image, "sleep", "600")
	spillOn1 := mockProcess{GPU: 1, PID: spillPID, MemoryBytes: 4 * gib, Kind: "compute"}
	lateOn0 := mockProcess{GPU: 0, PID: mainPID(t, late), MemoryBytes: gib, Kind: "compute"}
	inv = scan(ledgerDriver(onDevice, spillOn0, spillOn1, lateOn0))
	if s := mustFind(t, inv, spill); s.GPUAccess != inventory.AccessUndeclared || !reflect.DeepEqual(s.GPUsUndeclared, []string{"1"}) {
		t.Errorf("declared GPU 0, on GPUs 0 and 1: access %q outside %v, want undeclared on 1", s.GPUAccess, s.GPUsUndeclared)
	}
	if d := mustFind(t, inv, byDevice); d.GPUAccess != inventory.AccessInUse {
		t.Errorf("the --device container turned %q when another container spilled onto GPU 1", d.GPUAccess)
	}

	// The table and the filter.
	short := func(id string) string { return id[:12] }
	table := workloads(t, g.state, "--format", "{{.ID}} {{.GPUs}}")
	for id, want := range map[string]string{byDevice: "0", spill: "0,1 (undeclared: 1)", late: "0,1 (undeclared: 0)"} {
		if !strings.Contains(table.output(), short(id)+" "+want+"\n") {
			t.Errorf("GPU(S) of %s is not %q:\n%s", short(id), want, table.output())
		}
	}
	und := workloads(t, g.state, "--undeclared", "-q")
	if got := strings.Fields(string(und.stdout)); len(got) != 2 || !strings.Contains(string(und.stdout), short(spill)) || !strings.Contains(string(und.stdout), short(late)) {
		t.Errorf("--undeclared lists %v, want %s and %s", got, short(spill), short(late))
	}
	plain := workloads(t, g.state)
	// The mock driver reserves 512 MiB on each GPU, counted in used.
	if want := "warning: GPU 1: 20.0GiB of 24.5GiB used is held by no visible process"; !strings.Contains(plain.output(), want) {
		t.Errorf("the table does not warn %q:\n%s", want, plain.output())
	}

	// --json: the workloads' verdicts and the GPUs' ledger.
	var doc ledgerJSON
	if err := json.Unmarshal(workloads(t, g.state, "--json").stdout, &doc); err != nil {
		t.Fatal(err)
	}
	for _, w := range doc.Workloads {
		switch w.ID {
		case spill:
			if w.GPUAccess != "undeclared" || !reflect.DeepEqual(w.GPUsUndeclared, []string{"1"}) {
				t.Errorf("--json of the spilling container: %+v", w)
			}
		case byDevice:
			if w.GPUAccess != "in-use" || !reflect.DeepEqual(w.GPUsDeclared, []string{"0"}) || len(w.GPUsUndeclared) != 0 {
				t.Errorf("--json of the --device container: %+v, want GPU 0 declared and in use", w)
			}
		}
	}
	if len(doc.GPUs) != 2 {
		t.Fatalf("--json gpus: %d pages, want 2", len(doc.GPUs))
	}
	g0, g1 := doc.GPUs[0], doc.GPUs[1]
	if g0.MemoryUnattributed == nil || *g0.MemoryUnattributed != 0 || g0.UnattributedFlagged {
		t.Errorf("GPU 0 (4 GiB used, all listed): unattributed %v flagged %v, want 0", g0.MemoryUnattributed, g0.UnattributedFlagged)
	}
	if g1.MemoryUnattributed == nil || *g1.MemoryUnattributed != 20*gib || !g1.UnattributedFlagged ||
		g1.MemoryAttributed == nil || *g1.MemoryAttributed != 4*gib {
		t.Errorf("GPU 1 (24 GiB used, 4 listed): attributed %v unattributed %v flagged %v, want 4 GiB, 20 GiB, flagged",
			g1.MemoryAttributed, g1.MemoryUnattributed, g1.UnattributedFlagged)
	}

	// The metrics.
	text, err := os.ReadFile(filepath.Join(prom, "ds01.prom"))
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`ds01_gpu_undeclared_workload\{[^}]*id="` + short(spill) + `"[^}]*gpus="1"[^}]*\} 1\n`,
		`ds01_gpu_undeclared_workload\{[^}]*id="` + short(late) + `"[^}]*gpus="0"[^}]*\} 1\n`,
		`ds01_gpu_memory_unattributed_bytes\{gpu="1",uuid="[^"]+"\} 2\.147483648e\+10\n`,
		`ds01_gpu_memory_unattributed_bytes\{gpu="0",uuid="[^"]+"\} 0\n`,
	} {
		if !regexp.MustCompile(re).Match(text) {
			t.Errorf("ds01.prom has no line matching %s:\n%s", re, text)
		}
	}
	if regexp.MustCompile(`ds01_gpu_undeclared_workload\{[^}]*id="` + short(byDevice) + `"`).Match(text) {
		t.Errorf("ds01.prom calls the --device container undeclared:\n%s", text)
	}

	// Scan 3: back on GPU 0 alone.
	inv = scan(ledgerDriver(onDevice, spillOn0))
	if s := mustFind(t, inv, spill); s.GPUAccess != inventory.AccessInUse || len(s.GPUsUndeclared) != 0 {
		t.Errorf("back on GPU 0: access %q outside %v, want in-use", s.GPUAccess, s.GPUsUndeclared)
	}

	// The events: one change each way, naming the GPU outside; the late
	// container's discovery says it was outside from the first.
	var changes []event
	var lateDiscovered *event
	for _, e := range g.allEvents(t) {
		switch {
		case e.ContainerID == spill && e.EventType == inventory.EventContainerClassification && e.Changed == "gpu_access":
			changes = append(changes, e)
		case e.ContainerID == byDevice && e.EventType == inventory.EventContainerClassification:
			t.Errorf("the --device container got a classification change: %+v", e)
		case e.ContainerID == late && e.EventType == inventory.EventContainerDiscovered:
			lateDiscovered = &e
		}
	}
	if len(changes) != 2 || changes[0].From != "in-use" || changes[0].To != "undeclared" || changes[1].From != "undeclared" || changes[1].To != "in-use" {
		t.Fatalf("gpu_access changes of the spilling container: %+v, want in-use → undeclared → in-use", changes)
	}
	if got := changes[0].Details["gpus_undeclared"]; !reflect.DeepEqual(got, []any{"1"}) {
		t.Errorf("the change names GPUs %v outside, want [1]", got)
	}
	if lateDiscovered == nil || lateDiscovered.Details["gpu_access"] != "undeclared" || !reflect.DeepEqual(lateDiscovered.Details["gpus_undeclared"], []any{"0"}) {
		t.Errorf("the late container's discovery: %+v, want undeclared on GPU 0", lateDiscovered)
	}
}
