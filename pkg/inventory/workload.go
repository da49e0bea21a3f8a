package inventory

import (
	"slices"
	"strconv"
	"time"
)

// Workload is the flat view of one container or host process that both
// ds01 binaries and importing tools use. Absent facts are nil and encode as
// JSON null, never as zero.
type Workload struct {
	// Type is the workload type: an origin for containers, TypeHostProcess
	// or TypeSystem for processes.
	Type string `json:"type"`
	// ID is the full container ID, or the PID for a process.
	ID string `json:"id"`
	// Name is the container name, or the command line for a process.
	Name       string `json:"name"`
	User       string `json:"user"`
	UserSource string `json:"user_source"`
	// Status is Docker's state for containers and "running" for processes.
	Status  string `json:"status"`
	Image   string `json:"image"`
	Command string `json:"command"`
	// CreatedAt is the container's creation or the process's start.
	CreatedAt  *time.Time `json:"created_at"`
	DetectedAt time.Time  `json:"detected_at"`
	// HasGPU is true when the workload declared or uses a GPU.
	HasGPU bool `json:"has_gpu"`
	// GPUDeclared is true when a container declared GPU access.
	GPUDeclared bool `json:"gpu_declared"`
	// GPUObserved is true when a process of the workload is on a GPU.
	GPUObserved bool `json:"gpu_observed"`
	// GPUIdle is true for a running container that declared GPUs and has
	// no process on one, as seen by a GPU source that answered.
	GPUIdle bool `json:"gpu_idle"`
	// GPUs are the GPUs the workload declared or uses: "0", "1:2" (MIG),
	// "all", or a UUID or device node ("/dev/nvidia3") that names no GPU
	// the inventory knows.
	GPUs []string `json:"gpus"`
	// GPUAccess is the ledger's state for a container (an Access
	// constant); empty for a process, which declares nothing.
	GPUAccess string `json:"gpu_access"`
	// GPUsDeclared, GPUsUsed and GPUsUndeclared are the ledger's lists:
	// what a container declared, what the workload uses, and what a
	// container uses outside what it declared.
	GPUsDeclared   []string `json:"gpus_declared"`
	GPUsUsed       []string `json:"gpus_used"`
	GPUsUndeclared []string `json:"gpus_undeclared"`
	// GPUMemoryBytes is the GPU memory in use; nil when unknown.
	GPUMemoryBytes *uint64  `json:"gpu_memory_bytes"`
	CPUPercent     *float64 `json:"cpu_percent"`
	MemoryBytes    *uint64  `json:"memory_bytes"`
	// Stale is true when the data is from an earlier scan because its
	// source was down.
	Stale          bool              `json:"stale"`
	DetectedLabels map[string]string `json:"detected_labels"`
	// Launcher is what started the workload; nil where it cannot be told.
	Launcher *Launcher `json:"launcher"`
}

// Workloads returns every container and host process (not pending ones) as
// a Workload: the containers first, in the order of inv.Containers, then the
// host processes in theirs.
func (inv *Inventory) Workloads() []Workload {
	out := make([]Workload, 0, len(inv.Containers)+len(inv.HostProcesses))
	gpus := NewGPUIndex(inv.GPUs)
	for i := range inv.Containers {
		c := &inv.Containers[i]
		out = append(out, c.workload(inv.ContainerAccess(c, gpus)))
	}
	for i := range inv.HostProcesses {
		out = append(out, inv.HostProcesses[i].workload(gpus))
	}
	return out
}

// GPUProcessesObserved reports whether a GPU process source (NVML or the
// /proc device scan) answered on the last scan, so that the absence of GPU
// processes means something.
func (inv *Inventory) GPUProcessesObserved() bool {
	return inv.Sources[SourceNVML].OK || inv.Sources[SourceProcfs].OK
}

// workload returns the container's flat view, with the ledger's verdict a.
func (c *Container) workload(a Access) Workload {
	w := Workload{
		Type: c.Type, ID: c.ID, Name: c.Name, User: c.User, UserSource: c.UserSource,
		Status: c.Status, Image: c.Image, Command: c.Command, DetectedAt: c.DetectedAt,
		GPUDeclared: c.GPU.Declared, GPUObserved: len(c.GPUProcesses) > 0, GPUIdle: a.Idle,
		GPUAccess: a.State, GPUsDeclared: nonNil(a.Declared), GPUsUsed: nonNil(a.Used),
		GPUsUndeclared: nonNil(a.Undeclared),
		CPUPercent:     c.CPUPercent, MemoryBytes: c.MemoryBytes, Stale: c.Stale,
		DetectedLabels: c.DetectedLabels, Launcher: c.Launcher,
	}
	if !c.CreatedAt.IsZero() {
		t := c.CreatedAt
		w.CreatedAt = &t
	}
	w.HasGPU = w.GPUDeclared || w.GPUObserved
	w.GPUs = normaliseGPUs(append(slices.Clone(a.Declared), a.Used...))
	var mem uint64
	memKnown := false
	for _, p := range c.GPUProcesses {
		if p.MemoryBytes != nil {
			mem += *p.MemoryBytes
			memKnown = true
		}
	}
	if memKnown {
		w.GPUMemoryBytes = &mem
	}
	return w
}

// workload returns the process's flat view, its GPUs resolved through gpus.
func (p *HostProcess) workload(gpus GPUIndex) Workload {
	used := make([]string, len(p.GPUs))
	for i, g := range p.GPUs {
		used[i] = gpus.ID(g)
	}
	used = normaliseGPUs(used)
	w := Workload{
		Type: p.Type, ID: strconv.Itoa(p.PID), Name: p.Command, User: p.User, UserSource: p.UserSource,
		Status: "running", Command: p.Command, DetectedAt: p.DetectedAt,
		HasGPU: true, GPUObserved: true, GPUs: used, GPUMemoryBytes: p.GPUMemoryBytes,
		GPUsDeclared: []string{}, GPUsUsed: used, GPUsUndeclared: []string{},
		Stale: p.Stale, Launcher: p.Launcher,
	}
	if !p.StartedAt.IsZero() {
		t := p.StartedAt
		w.CreatedAt = &t
	}
	return w
}

// normaliseGPUs sorts and de-duplicates GPU names; "all" stands alone.
func normaliseGPUs(in []string) []string {
	out := make([]string, 0, len(in))
	for _, g := range in {
		if g == "all" {
			return []string{"all"}
		}
		if g != "" {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
