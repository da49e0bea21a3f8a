package inventory

import "strings"

// GPUIndex resolves GPU UUIDs to the IDs ds01 names GPUs by ("0", "0:1"),
// from an inventory's GPU list. A workload can name a GPU either way: a
// container that declared a UUID, a process NVML saw on an index.
type GPUIndex map[string]string

// NewGPUIndex indexes devices by UUID.
func NewGPUIndex(devices []GPUDevice) GPUIndex {
	idx := make(GPUIndex, len(devices))
	for _, d := range devices {
		if d.UUID != "" {
			idx[d.UUID] = d.ID
		}
	}
	return idx
}

// ID returns the ID for a GPU name: the name itself unless it is a known
// UUID.
func (idx GPUIndex) ID(name string) string {
	if id, ok := idx[name]; ok {
		return id
	}
	return name
}

// GPUCovers reports whether access to GPU held includes GPU g: the same
// device, "all", or a whole GPU and one of its MIG instances ("2" covers
// "2:1").
func GPUCovers(held, g string) bool {
	return held == g || held == "all" || strings.HasPrefix(g, held+":")
}

// GPUsOverlap reports whether two GPU IDs share hardware: one covers the
// other. A MIG instance and its GPU overlap; two instances of one GPU do not.
func GPUsOverlap(a, b string) bool { return GPUCovers(a, b) || GPUCovers(b, a) }

// IsGPUUUID reports whether a GPU name is a UUID rather than an ID.
func IsGPUUUID(name string) bool {
	return strings.HasPrefix(name, "GPU-") || strings.HasPrefix(name, "MIG-")
}

// GPUWorkloads counts, for each of devices (GPUs and MIG instances, by
// ID), the workloads on it: those that declared or use it (a workload on a
// MIG instance counts for its GPU too, one with "all" for every device) and
// are up or have a process on a GPU. A device at 0 is free. workloads are
// an inventory's Workloads, devices its GPUs.
func GPUWorkloads(devices []GPUDevice, workloads []Workload) map[string]int {
	idx := NewGPUIndex(devices)
	counts := make(map[string]int, len(devices))
	for _, d := range devices {
		counts[d.ID] = 0
	}
	for _, w := range workloads {
		if !w.HasGPU || !w.GPUObserved && !IsUp(w.Status) {
			continue
		}
		for _, d := range devices {
			for _, g := range w.GPUs {
				if GPUsOverlap(idx.ID(g), d.ID) {
					counts[d.ID]++
					break
				}
			}
		}
	}
	return counts
}

// IsUp reports a container state in which it holds what it was given, as
// docker ps counts up: running, paused or restarting.
func IsUp(status string) bool {
	return status == "running" || status == "paused" || status == "restarting"
}
