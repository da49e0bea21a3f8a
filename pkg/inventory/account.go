package inventory

import "slices"

// DefaultUnattributedThreshold is the GPU memory held by no visible process
// above which a GPU is flagged: 1 GiB. An idle GPU is not at zero: through
// NVML's first memory call (drivers without the v2 call) "used" includes
// what the driver reserves for itself and ECC, a few hundred MiB on an A100
// or H100, and every CUDA context holds some memory that its process's own
// figure does not show. A leaked context of a killed job, a process in
// another PID namespace or the clients of an MPS server hold gigabytes.
const DefaultUnattributedThreshold uint64 = 1 << 30

// GPUAccount is the ledger's page for one GPU or MIG instance: its memory
// against what the listed processes hold, and the workloads on it.
type GPUAccount struct {
	Device *GPUDevice
	// AttributedBytes is the GPU memory the processes NVML lists on the
	// device hold; nil when one of them has no figure or NVML did not
	// answer on the last scan. A process seen only holding the device
	// node holds no memory NVML knows of.
	AttributedBytes *uint64
	// UnattributedBytes is used memory, less what the driver reserves,
	// minus attributed: memory held by no visible process. nil where
	// either is unknown.
	UnattributedBytes *uint64
	// DeclaredBy and UsedBy are the IDs of the workloads (Workload.ID) up
	// and declaring the device, and with a process on it; never nil. A workload on a
	// MIG instance is on its GPU too; one with "all" declares every device.
	DeclaredBy, UsedBy []string
}

// Flagged reports memory held by no visible process above threshold.
func (a *GPUAccount) Flagged(threshold uint64) bool {
	return a.UnattributedBytes != nil && *a.UnattributedBytes > threshold
}

// Free reports a device no workload declares or uses.
func (a *GPUAccount) Free() bool { return len(a.DeclaredBy) == 0 && len(a.UsedBy) == 0 }

// Holders are the workloads that declare or use the device, each once.
func (a *GPUAccount) Holders() []string {
	out := slices.Concat(a.DeclaredBy, a.UsedBy)
	slices.Sort(out)
	return slices.Compact(out)
}

// GPULedger returns the account of every GPU and MIG instance in
// inv.GPUs, in their order. workloads are inv.Workloads().
func (inv *Inventory) GPULedger(workloads []Workload) []GPUAccount {
	gpus := NewGPUIndex(inv.GPUs)
	mem := inv.listedMemory(gpus)
	nvmlOK := inv.Sources[SourceNVML].OK
	out := make([]GPUAccount, len(inv.GPUs))
	for i := range inv.GPUs {
		d := &inv.GPUs[i]
		a := GPUAccount{Device: d, DeclaredBy: []string{}, UsedBy: []string{}}
		held := mem[d.ID]
		for _, g := range inv.GPUs {
			if g.Parent == d.ID {
				held = held.add(mem[g.ID])
			}
		}
		if nvmlOK && !held.unknown {
			a.AttributedBytes = &held.bytes
			if d.MemoryUsedBytes != nil {
				// What the driver reserves counts in used but is no
				// process's: it comes off first.
				used := *d.MemoryUsedBytes
				if d.MemoryReservedBytes != nil {
					used -= min(*d.MemoryReservedBytes, used)
				}
				u := used - min(held.bytes, used)
				a.UnattributedBytes = &u
			}
		}
		for _, w := range workloads {
			if !w.HasGPU || !w.GPUObserved && !IsUp(w.Status) {
				continue
			}
			if IsUp(w.Status) && overlapsAny(w.GPUsDeclared, d.ID) {
				a.DeclaredBy = append(a.DeclaredBy, w.ID)
			}
			if overlapsAny(w.GPUsUsed, d.ID) {
				a.UsedBy = append(a.UsedBy, w.ID)
			}
		}
		out[i] = a
	}
	return out
}

func overlapsAny(names []string, id string) bool {
	return slices.ContainsFunc(names, func(g string) bool { return GPUsOverlap(g, id) })
}

// memorySum is memory added up, unknown once one term is.
type memorySum struct {
	bytes   uint64
	unknown bool
}

func (m memorySum) add(o memorySum) memorySum {
	return memorySum{bytes: m.bytes + o.bytes, unknown: m.unknown || o.unknown}
}

func (m memorySum) plus(b *uint64) memorySum {
	if b == nil {
		return memorySum{bytes: m.bytes, unknown: true}
	}
	return memorySum{bytes: m.bytes + *b, unknown: m.unknown}
}

// listedMemory adds up, per device ID, the memory of the processes NVML
// lists there: containers', host and system processes', and pending ones
// (seen once: visible, even if not yet workloads).
func (inv *Inventory) listedMemory(gpus GPUIndex) map[string]memorySum {
	m := map[string]memorySum{}
	for _, c := range inv.Containers {
		for _, p := range c.GPUProcesses {
			if p.Kind != KindDevice && p.GPU != "" {
				g := gpus.ID(p.GPU)
				m[g] = m[g].plus(p.MemoryBytes)
			}
		}
	}
	for _, ps := range [][]HostProcess{inv.HostProcesses, inv.PendingProcesses} {
		for _, p := range ps {
			if slices.Equal(p.Kinds, []string{KindDevice}) {
				continue
			}
			for _, raw := range p.GPUs {
				g := gpus.ID(raw)
				m[g] = m[g].plus(p.memoryOn(raw))
			}
		}
	}
	return m
}

// memoryOn is the process's memory on GPU g: from GPUMemory, or its whole
// figure when it is on one GPU only; nil when unknown.
func (p *HostProcess) memoryOn(g string) *uint64 {
	if b, ok := p.GPUMemory[g]; ok {
		return &b
	}
	if len(p.GPUs) == 1 && len(p.GPUMemory) == 0 {
		return p.GPUMemoryBytes
	}
	return nil
}
