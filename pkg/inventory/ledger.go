package inventory

import (
	"slices"
	"strings"
)

// The GPU ledger decides, once for every output (the table and its
// filters, --json, the events, the metrics and so the alerts), what a
// workload declared, what it uses, what it uses outside what it declared,
// and whether it sits idle.

// GPU access states of a container (Container.GPUAccess, Workload.GPUAccess).
const (
	AccessNone       = "none"       // no GPU declared, none used
	AccessDeclared   = "declared"   // declared, no GPU process seen
	AccessInUse      = "in-use"     // declared and used, inside what was declared
	AccessUndeclared = "undeclared" // used outside what was declared (or with nothing declared)
)

// Access is the ledger's verdict on one container.
type Access struct {
	// Declared are the GPUs the container declared, each resolved to its
	// ID where the GPU list can ("all", "0", "0:1"); a UUID or device node
	// that names no known GPU stays as declared. Empty while access was
	// declared without naming a GPU.
	Declared []string
	// Used are the GPUs its processes are on.
	Used []string
	// Undeclared are the GPUs it uses outside the declared set: every GPU
	// used when nothing was declared. A GPU is listed only where that can
	// be told: a declaration that names no GPU, or one in terms the GPU
	// list cannot resolve, hides nothing and accuses nothing.
	Undeclared []string
	// Idle is true for a running container that declared GPU access and
	// has no process on a GPU, as seen by a GPU source that answered.
	Idle bool
	// State is one of the Access constants.
	State string
}

// DecideAccess is the ledger's rule. decl is what the container declared,
// procs its processes seen on GPUs, running whether it is running,
// observed whether a GPU process source (NVML or the /proc device scan)
// answered, so that no process means none, and gpus the machine's GPUs.
func DecideAccess(decl GPUAccess, procs []GPUProcess, running, observed bool, gpus GPUIndex) Access {
	var a Access
	for _, d := range decl.Devices {
		a.Declared = append(a.Declared, gpus.ID(d))
	}
	a.Declared = normaliseGPUs(a.Declared)
	for _, p := range procs {
		if p.GPU != "" {
			a.Used = append(a.Used, gpus.ID(p.GPU))
		}
	}
	a.Used = normaliseGPUs(a.Used)
	for _, g := range a.Used {
		if !decl.Declared || outside(a.Declared, g, gpus) {
			a.Undeclared = append(a.Undeclared, g)
		}
	}
	switch {
	case len(a.Undeclared) > 0:
		a.State = AccessUndeclared
	case decl.Declared && len(a.Used) > 0:
		a.State = AccessInUse
	case decl.Declared:
		a.State = AccessDeclared
	default:
		a.State = AccessNone
	}
	a.Idle = decl.Declared && len(a.Used) == 0 && running && observed
	return a
}

// outside reports whether GPU g is known to lie outside every declared
// GPU. A declared GPU covers g when they share hardware: a whole GPU its
// MIG instances, and a MIG instance the GPU the /proc device scan names
// for it. A declared name g cannot be compared with leaves g inside.
func outside(declared []string, g string, gpus GPUIndex) bool {
	if len(declared) == 0 {
		return false // declared, which GPU unknown
	}
	for _, d := range declared {
		if d == "all" || !comparable(d, g, gpus) || GPUsOverlap(d, g) {
			return false
		}
	}
	return true
}

// comparable reports whether declared name d and used name g can be told
// apart: both IDs, both UUIDs, both device nodes, both capability devices;
// or d a UUID or node that the GPU list would have resolved if it named a
// GPU here.
func comparable(d, g string, gpus GPUIndex) bool {
	kd, kg := nameKind(d), nameKind(g)
	switch {
	case kd == kindOther || kg == kindOther:
		return false
	case kd == kg:
		return true
	case kd == kindUUID:
		return gpus.uuids
	case kd == kindNode:
		return gpus.nodes
	case kd == kindCap:
		return gpus.caps
	}
	return false
}

// The kinds of name a GPU goes by.
const (
	kindID    = iota // "0", "0:1"
	kindUUID         // "GPU-…", "MIG-…"
	kindNode         // "/dev/nvidia3"
	kindCap          // "/dev/nvidia-caps/nvidia-cap13"
	kindOther        // a CDI or allocator name no rule knows
)

func nameKind(name string) int {
	switch {
	case IsGPUUUID(name):
		return kindUUID
	case IsDeviceNode(name):
		return kindNode
	case IsCapNode(name):
		return kindCap
	case isGPUID(name):
		return kindID
	}
	return kindOther
}

// isGPUID reports an ID as ds01 numbers devices: "<index>" or
// "<index>:<MIG device index>".
func isGPUID(s string) bool {
	gpu, mig, isMIG := strings.Cut(s, ":")
	return isDigits(gpu) && (!isMIG || isDigits(mig))
}

func isDigits(s string) bool {
	return s != "" && !slices.ContainsFunc([]byte(s), func(b byte) bool { return b < '0' || b > '9' })
}

// ContainerAccess is the ledger's verdict on one of the inventory's
// containers, against its GPU list and sources.
func (inv *Inventory) ContainerAccess(c *Container, gpus GPUIndex) Access {
	return c.access(inv.GPUProcessesObserved(), gpus)
}

// access is the ledger's verdict on c, observed saying whether a GPU
// process source answered.
func (c *Container) access(observed bool, gpus GPUIndex) Access {
	return DecideAccess(c.GPU, c.GPUProcesses, c.Status == "running", observed, gpus)
}

// judge records the ledger's verdict on c: its state and the GPUs it uses
// outside what it declared.
func (c *Container) judge(observed bool, gpus GPUIndex) {
	a := c.access(observed, gpus)
	c.GPUAccess, c.GPUsUndeclared = a.State, a.Undeclared
}
