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
	// GPUs are the GPUs the workload has: "0", "1:2" (MIG), "all", or a
	// UUID where only that is known.
	GPUs []string `json:"gpus"`
	// GPUMemoryBytes is the GPU memory in use; nil when unknown.
	GPUMemoryBytes *uint64  `json:"gpu_memory_bytes"`
	CPUPercent     *float64 `json:"cpu_percent"`
	MemoryBytes    *uint64  `json:"memory_bytes"`
	// Stale is true when the data is from an earlier scan because its
	// source was down.
	Stale          bool              `json:"stale"`
	DetectedLabels map[string]string `json:"detected_labels"`
}

// Workloads returns every container and host process (not pending ones) as
// a Workload: the containers first, in the order of inv.Containers, then the
// host processes in theirs.
func (inv *Inventory) Workloads() []Workload {
	out := make([]Workload, 0, len(inv.Containers)+len(inv.HostProcesses))
	gpuSeen := inv.GPUProcessesObserved()
	for i := range inv.Containers {
		w := inv.Containers[i].Workload()
		// Idle is a claim about GPU processes: without a GPU source that
		// answered, nobody knows.
		w.GPUIdle = w.GPUIdle && gpuSeen
		out = append(out, w)
	}
	for i := range inv.HostProcesses {
		out = append(out, inv.HostProcesses[i].Workload())
	}
	return out
}

// GPUProcessesObserved reports whether a GPU process source (NVML or the
// /proc device scan) answered on the last scan, so that the absence of GPU
// processes means something.
func (inv *Inventory) GPUProcessesObserved() bool {
	return inv.Sources[SourceNVML].OK || inv.Sources[SourceProcfs].OK
}

// Workload returns the container's flat view. GPUIdle assumes GPU processes
// were observed; Inventory.Workloads clears it when they were not.
func (c *Container) Workload() Workload {
	w := Workload{
		Type: c.Type, ID: c.ID, Name: c.Name, User: c.User, UserSource: c.UserSource,
		Status: c.Status, Image: c.Image, Command: c.Command, DetectedAt: c.DetectedAt,
		GPUDeclared: c.GPU.Declared, GPUObserved: len(c.GPUProcesses) > 0,
		CPUPercent: c.CPUPercent, MemoryBytes: c.MemoryBytes, Stale: c.Stale,
		DetectedLabels: c.DetectedLabels,
	}
	if !c.CreatedAt.IsZero() {
		t := c.CreatedAt
		w.CreatedAt = &t
	}
	w.HasGPU = w.GPUDeclared || w.GPUObserved
	w.GPUIdle = w.GPUDeclared && !w.GPUObserved && c.Status == "running"
	gpus := append([]string(nil), c.GPU.Devices...)
	var mem uint64
	memKnown := false
	for _, p := range c.GPUProcesses {
		gpus = append(gpus, p.GPU)
		if p.MemoryBytes != nil {
			mem += *p.MemoryBytes
			memKnown = true
		}
	}
	w.GPUs = normaliseGPUs(gpus)
	if memKnown {
		w.GPUMemoryBytes = &mem
	}
	return w
}

// Workload returns the process's flat view.
func (p *HostProcess) Workload() Workload {
	w := Workload{
		Type: p.Type, ID: strconv.Itoa(p.PID), Name: p.Command, User: p.User, UserSource: p.UserSource,
		Status: "running", Command: p.Command, DetectedAt: p.DetectedAt,
		HasGPU: true, GPUObserved: true, GPUs: normaliseGPUs(p.GPUs), GPUMemoryBytes: p.GPUMemoryBytes,
		Stale: p.Stale,
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
