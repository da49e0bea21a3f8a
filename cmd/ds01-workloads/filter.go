package main

import (
	"slices"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// filter selects the workloads to print. Every condition given must hold.
type filter struct {
	// all shows what is hidden by default: stopped containers and system
	// processes.
	all                       bool
	user                      string
	types, gpus               []string
	gpuOnly, idle, undeclared bool
}

// apply returns the rows the filter keeps, and how many more --all would
// add.
func (f filter) apply(rows []row, gpus gpuIndex) (kept []row, hidden int) {
	kept = make([]row, 0, len(rows))
	for _, r := range rows {
		switch {
		case !f.matches(r, gpus):
		case !f.all && f.hiddenByDefault(r.w):
			hidden++
		default:
			kept = append(kept, r)
		}
	}
	return kept, hidden
}

// hiddenByDefault is what docker ps hides without -a, plus the system
// processes (nvidia-persistenced, Xorg, DCGM) that are always on a GPU and
// rarely the question. Paused and restarting containers are up, as in
// docker ps; an unknown container is shown whatever its state, since it is
// the one most worth a look.
func (f filter) hiddenByDefault(w *inventory.Workload) bool {
	switch w.Type {
	case inventory.TypeSystem:
		return !slices.Contains(f.types, inventory.TypeSystem)
	case inventory.TypeHostProcess, inventory.TypeUnknown:
		return false
	}
	switch w.Status {
	case "running", "paused", "restarting":
		return false
	}
	return true
}

func (f filter) matches(r row, gpus gpuIndex) bool {
	w := r.w
	switch {
	case f.user != "" && w.User != f.user,
		len(f.types) > 0 && !slices.Contains(f.types, w.Type),
		f.gpuOnly && !w.HasGPU,
		f.idle && !w.GPUIdle,
		f.undeclared && !r.Undeclared():
		return false
	}
	if len(f.gpus) == 0 {
		return true
	}
	for _, held := range w.GPUs {
		for _, want := range f.gpus {
			if covers(gpus.id(held), gpus.id(want)) || covers(gpus.id(want), gpus.id(held)) {
				return true
			}
		}
	}
	return false
}

// gpuIndex resolves GPU UUIDs to the IDs ds01 names GPUs by ("0", "0:1"),
// from the GPU list of the inventory. A workload can name a GPU either way:
// a container that declared a UUID, a process NVML saw on an index.
type gpuIndex map[string]string

func newGPUIndex(devices []inventory.GPUDevice) gpuIndex {
	idx := make(gpuIndex, len(devices))
	for _, d := range devices {
		if d.UUID != "" {
			idx[d.UUID] = d.ID
		}
	}
	return idx
}

// id returns the ID for a GPU name: itself unless it is a known UUID.
func (idx gpuIndex) id(name string) string {
	if id, ok := idx[name]; ok {
		return id
	}
	return name
}

// covers reports whether access to GPU held includes GPU g: the same
// device, "all", or a whole GPU and one of its MIG instances ("2" covers
// "2:1").
func covers(held, g string) bool {
	return held == g || held == "all" || strings.HasPrefix(g, held+":")
}

// isUUID reports whether a GPU name is a UUID rather than an ID.
func isUUID(name string) bool {
	return strings.HasPrefix(name, "GPU-") || strings.HasPrefix(name, "MIG-")
}

// outsideDeclared returns the GPUs a container was seen on that its declared
// GPUs do not cover. It returns nothing when the answer is unknown: access
// declared without saying which GPU, or a declared UUID the inventory's GPU
// list cannot resolve.
func outsideDeclared(c *inventory.Container, gpus gpuIndex) []string {
	if !c.GPU.Declared || len(c.GPU.Devices) == 0 {
		return nil
	}
	declared := make([]string, len(c.GPU.Devices))
	for i, d := range c.GPU.Devices {
		if declared[i] = gpus.id(d); isUUID(declared[i]) {
			return nil
		}
	}
	var out []string
	for _, p := range c.GPUProcesses {
		g := gpus.id(p.GPU)
		if g == "" || isUUID(g) || slices.Contains(out, g) {
			continue
		}
		if !slices.ContainsFunc(declared, func(d string) bool { return covers(d, g) }) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}
