package inventory

import (
	"strconv"
	"strings"
)

// GPUIndex resolves the names a workload can give a GPU to the IDs ds01
// names GPUs by ("0", "0:1"), from an inventory's GPU list: a UUID ("GPU-…",
// "MIG-…") and a device node ("/dev/nvidia3", by the GPU's minor number,
// which need not be its index). A container can declare a GPU any of these
// ways, and the /proc device scan sees only device nodes; this is the one
// mapping between them.
type GPUIndex struct {
	ids   map[string]string
	known map[string]bool
	// uuids, nodes and caps are true when every device of the list has a
	// UUID, every whole GPU a minor number, and every MIG instance its
	// capability devices: a name of that kind that does not resolve then
	// names no GPU of this machine.
	uuids, nodes, caps bool
}

// NewGPUIndex indexes devices by UUID and by device node.
func NewGPUIndex(devices []GPUDevice) GPUIndex {
	idx := GPUIndex{
		ids:   make(map[string]string, 2*len(devices)),
		known: make(map[string]bool, len(devices)),
		uuids: len(devices) > 0, nodes: len(devices) > 0, caps: len(devices) > 0,
	}
	for _, d := range devices {
		idx.known[d.ID] = true
		if d.UUID != "" {
			idx.ids[d.UUID] = d.ID
		} else {
			idx.uuids = false
		}
		for _, c := range d.CapMinors {
			idx.ids[CapNode(c)] = d.ID
		}
		switch {
		case d.Parent != "":
			idx.caps = idx.caps && len(d.CapMinors) > 0
		case d.MinorNumber != nil:
			idx.ids[DeviceNode(*d.MinorNumber)] = d.ID
		default:
			idx.nodes = false
		}
	}
	return idx
}

// DeviceNode is the device node of the GPU with minor number n:
// /dev/nvidia<n>. Where no GPU list says which GPU that is, ds01 records
// and shows the node itself, never index n.
func DeviceNode(minor int) string { return devNvidia + strconv.Itoa(minor) }

// CapNode is the MIG capability device with minor number n:
// /dev/nvidia-caps/nvidia-cap<n>. It names a MIG instance where the
// driver's table says which, and stays as it is where not.
func CapNode(minor int) string { return devNvidiaCap + strconv.Itoa(minor) }

const (
	devNvidia    = "/dev/nvidia"
	devNvidiaCap = "/dev/nvidia-caps/nvidia-cap"
)

// ID returns the ID for a GPU name: the name itself unless it is a UUID or
// device node the list resolves.
func (idx GPUIndex) ID(name string) string {
	if id, ok := idx.ids[name]; ok {
		return id
	}
	return name
}

// Known reports whether id is a device of the list.
func (idx GPUIndex) Known(id string) bool { return idx.known[id] }

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

// IsDeviceNode reports whether a GPU name is a GPU's device node left
// unresolved (/dev/nvidiaN) rather than an ID.
func IsDeviceNode(name string) bool {
	n, ok := strings.CutPrefix(name, devNvidia)
	return ok && isDigits(n)
}

// IsCapNode reports whether a GPU name is a MIG capability device left
// unresolved (/dev/nvidia-caps/nvidia-capN).
func IsCapNode(name string) bool {
	n, ok := strings.CutPrefix(name, devNvidiaCap)
	return ok && isDigits(n)
}

// IsUp reports a container state in which it holds what it was given, as
// docker ps counts up: running, paused or restarting.
func IsUp(status string) bool {
	return status == "running" || status == "paused" || status == "restarting"
}
