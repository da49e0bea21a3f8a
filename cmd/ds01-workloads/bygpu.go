package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// The per-GPU view (--by-gpu) and the warnings about GPU memory held by no
// visible process, both read from the GPU ledger.

// otherGPUsHeading heads the workloads on GPUs the ledger has no page for:
// access declared to an unnamed GPU, a device node or UUID no GPU of the
// machine resolves, or every GPU while NVML never answered.
const otherGPUsHeading = "GPUs the GPU list does not name"

// noGPUHeading heads the workloads kept that hold no GPU: without one, or
// stopped.
const noGPUHeading = "On no GPU"

// byGPU groups rows under a heading per GPU and MIG instance of ledger
// that one of them declares or uses, in the ledger's order, then those
// with a GPU on no page. free are the lines for the GPUs nobody holds.
func byGPU(rows []row, ledger []inventory.GPUAccount, threshold uint64) (groups []group, free []string) {
	placed := map[string]bool{}
	for i := range ledger {
		a := &ledger[i]
		if a.Free() {
			line := gpuHeading(a, threshold)
			if !a.Device.Lost {
				line += ": free"
			}
			free = append(free, line)
			continue
		}
		on := make(map[string]bool, len(a.DeclaredBy)+len(a.UsedBy))
		for _, id := range a.Holders() {
			on[id] = true
		}
		var g group
		for _, r := range rows {
			if on[r.w.ID] {
				g.rows = append(g.rows, r)
				placed[r.w.ID] = true
			}
		}
		if len(g.rows) > 0 {
			g.heading = gpuHeading(a, threshold)
			groups = append(groups, g)
		}
	}
	// Every row kept shows once at least: on no page, it is on a GPU the
	// list does not name, or on none.
	other, none := group{heading: otherGPUsHeading}, group{heading: noGPUHeading}
	for _, r := range rows {
		switch {
		case placed[r.w.ID]:
		case r.w.HasGPU && (r.w.GPUObserved || inventory.IsUp(r.w.Status)):
			other.rows = append(other.rows, r)
		default:
			none.rows = append(none.rows, r)
		}
	}
	for _, g := range []group{other, none} {
		if len(g.rows) > 0 {
			groups = append(groups, g)
		}
	}
	return groups, free
}

// gpuHeading names a GPU and its memory: "GPU 1  NVIDIA H100 80GB HBM3
// GPU-1b5e…  21.0GiB of 80.0GiB used, 20.0GiB held by no visible process".
func gpuHeading(a *inventory.GPUAccount, threshold uint64) string {
	d := a.Device
	parts := []string{"GPU " + safe(d.ID)}
	if d.Name != "" {
		parts = append(parts, safe(d.Name))
	}
	if d.UUID != "" {
		parts = append(parts, safe(shortUUID(d.UUID)))
	}
	var mem string
	switch {
	case d.Lost:
		mem = "lost: it needs a reset"
	case d.MemoryUsedBytes != nil && d.MemoryTotalBytes != nil:
		mem = bytesText(d.MemoryUsedBytes) + " of " + bytesText(d.MemoryTotalBytes) + " used"
	case d.MemoryUsedBytes != nil:
		mem = bytesText(d.MemoryUsedBytes) + " used"
	default:
		mem = "memory use unknown"
	}
	if a.Flagged(threshold) {
		mem += ", " + bytesText(a.UnattributedBytes) + " held by no visible process"
	}
	return strings.Join(append(parts, mem), "  ")
}

// shortUUID cuts a GPU UUID to its prefix and first four hex digits:
// "GPU-1b5e…".
func shortUUID(u string) string {
	const keep = len("GPU-") + 4
	if len(u) <= keep+1 {
		return u
	}
	return u[:keep] + "…"
}

// writeUnattributed warns, under the table, of each GPU with more memory
// held by no visible process than threshold.
func writeUnattributed(w *bufio.Writer, ledger []inventory.GPUAccount, threshold uint64) {
	for i := range ledger {
		a := &ledger[i]
		if !a.Flagged(threshold) {
			continue
		}
		used := "in use"
		if a.Device.MemoryUsedBytes != nil {
			used = "of " + bytesText(a.Device.MemoryUsedBytes) + " used"
		}
		fmt.Fprintf(w, "warning: GPU %s: %s %s is held by no visible process (see --concepts, UNATTRIBUTED MEMORY)\n",
			safe(a.Device.ID), bytesText(a.UnattributedBytes), used)
	}
}
