package detect

import (
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Names DeclaredGPU looks for.
const (
	runtimeNvidia       = "nvidia"
	driverNvidia        = "nvidia"
	driverCDI           = "cdi"
	capabilityGPU       = "gpu"
	envVisibleDevices   = "NVIDIA_VISIBLE_DEVICES"
	cdiGPUPrefix        = "nvidia.com/gpu="
	devNvidiaPrefix     = "/dev/nvidia"
	labelGPUUUID        = "ds01.gpu.uuid"
	labelGPUUUIDs       = "ds01.gpu.uuids"
	labelGPUSlots       = "ds01.gpu.slots"
	deviceAll           = "all"
	maxDeviceStringSize = 128
)

// channelOrder is the order channels are reported in, so that the same
// container always yields the same GPUAccess.
var channelOrder = []string{
	inventory.ChannelDeviceRequest,
	inventory.ChannelRuntime,
	inventory.ChannelCDI,
	inventory.ChannelDevice,
	inventory.ChannelBindMount,
	inventory.ChannelPrivileged,
	inventory.ChannelAllocatorLabel,
}

// DeclaredGPU returns the GPU access a container declared when it was
// created, read from its inspect data. defaultRuntime is the daemon's
// default runtime (docker info's DefaultRuntime), which applies when the
// container names none.
//
// Every channel that grants access is recorded, not only the first: a
// container started with --gpus and also labelled by the allocator should
// show both, so that a disagreement between them can be seen. Devices are
// the union over all channels, deduplicated and sorted; "all" absorbs the
// rest. Declared with no Devices means "some GPU, which one is unknown".
//
// Only NVIDIA_VISIBLE_DEVICES is read from the environment; no other
// environment value leaves this function.
func DeclaredGPU(c *container.InspectResponse, defaultRuntime string) inventory.GPUAccess {
	var d gpuDecl
	if c == nil {
		return d.result()
	}
	var (
		env    []string
		labels map[string]string
	)
	if c.Config != nil {
		env = c.Config.Env
		labels = c.Config.Labels
	}
	if hc := c.HostConfig; hc != nil {
		d.deviceRequests(hc.DeviceRequests)
		d.devices(hc.Devices)
		for _, b := range hc.Binds {
			// A bind is "src:dst[:opts]"; a src without a leading "/"
			// is a named volume, never a device node.
			src, _, _ := strings.Cut(b, ":")
			if strings.HasPrefix(src, "/") {
				d.bindSource(src)
			}
		}
		for _, m := range hc.Mounts {
			if m.Type == mount.TypeBind {
				d.bindSource(m.Source)
			}
		}
		if hc.Privileged {
			d.add(inventory.ChannelPrivileged, deviceAll)
		}
	}
	// The engine lists -v and --mount binds again here, and on some
	// engines only here; duplicates collapse in gpuDecl.
	for _, m := range c.Mounts {
		if m.Type == mount.TypeBind {
			d.bindSource(m.Source)
		}
	}
	runtime := ""
	if c.HostConfig != nil {
		runtime = c.HostConfig.Runtime
	}
	if runtime == "" {
		runtime = defaultRuntime
	}
	// The nvidia runtime acts on NVIDIA_VISIBLE_DEVICES; under any other
	// runtime the variable is inert (CUDA base images set it to "all"
	// for every container built on them).
	if runtime == runtimeNvidia {
		d.visibleDevices(env)
	}
	d.allocatorLabels(labels)
	return d.result()
}

// gpuDecl accumulates channels and devices; zero value ready to use.
type gpuDecl struct {
	channels map[string]bool
	devs     map[string]bool
}

// add records a channel and the devices it names, dropping junk device
// strings (the channel still counts: access was declared, the device just
// cannot be told).
func (d *gpuDecl) add(channel string, devices ...string) {
	if d.channels == nil {
		d.channels = make(map[string]bool)
		d.devs = make(map[string]bool)
	}
	d.channels[channel] = true
	for _, dev := range devices {
		dev = strings.TrimSpace(dev)
		if dev != "" && validDevice(dev) {
			d.devs[dev] = true
		}
	}
}

func (d *gpuDecl) result() inventory.GPUAccess {
	var out inventory.GPUAccess
	for _, ch := range channelOrder {
		if d.channels[ch] {
			out.Channels = append(out.Channels, ch)
		}
	}
	out.Declared = len(out.Channels) > 0
	if d.devs[deviceAll] {
		out.Devices = []string{deviceAll}
		return out
	}
	for dev := range d.devs {
		out.Devices = append(out.Devices, dev)
	}
	slices.SortFunc(out.Devices, compareDevices)
	return out
}

// deviceRequests reads --gpus (driver nvidia or capability gpu) and CDI
// device requests (driver cdi, Docker 25 and later).
func (d *gpuDecl) deviceRequests(reqs []container.DeviceRequest) {
	for _, r := range reqs {
		if r.Driver == driverCDI {
			for _, id := range r.DeviceIDs {
				if dev, ok := strings.CutPrefix(id, cdiGPUPrefix); ok {
					d.add(inventory.ChannelCDI, dev)
				}
			}
			continue
		}
		if r.Driver != driverNvidia && !hasCapability(r.Capabilities, capabilityGPU) {
			continue
		}
		// The engine joins DeviceIDs with "," into NVIDIA_VISIBLE_DEVICES,
		// so an ID sent through the API as "0,2" means two GPUs.
		var ids []string
		for _, id := range r.DeviceIDs {
			ids = append(ids, strings.Split(id, ",")...)
		}
		switch {
		case len(ids) > 0:
			d.add(inventory.ChannelDeviceRequest, ids...)
		case r.Count < 0:
			d.add(inventory.ChannelDeviceRequest, deviceAll)
		case r.Count > 0:
			// The engine's nvidia driver picks indices 0..n-1, but another
			// driver answering "gpu" may not: declared, devices unknown.
			d.add(inventory.ChannelDeviceRequest)
		default:
			// Count 0 and no IDs: the engine sets NVIDIA_VISIBLE_DEVICES=void,
			// which grants no GPU.
		}
	}
}

func hasCapability(sets [][]string, want string) bool {
	for _, set := range sets {
		if slices.Contains(set, want) {
			return true
		}
	}
	return false
}

// devices reads --device entries: CDI names and /dev/nvidia* nodes.
func (d *gpuDecl) devices(devs []container.DeviceMapping) {
	for _, m := range devs {
		if dev, ok := strings.CutPrefix(m.PathOnHost, cdiGPUPrefix); ok {
			d.add(inventory.ChannelCDI, dev)
			continue
		}
		if ok, dev := nvidiaDevicePath(m.PathOnHost); ok {
			d.add(inventory.ChannelDevice, dev)
		}
	}
}

func (d *gpuDecl) bindSource(src string) {
	if ok, dev := nvidiaDevicePath(src); ok {
		d.add(inventory.ChannelBindMount, dev)
	}
}

// nvidiaDevicePath reports whether a host path gives GPU access and, where
// it can be told, which GPU: /dev/nvidia<N> is the GPU whose minor number
// is N, recorded as that node (inventory.DeviceNode) for the GPU ledger to
// resolve against the GPU list, since N need not be the GPU's index;
// /dev/nvidia-caps/nvidia-capN likewise names a MIG instance through the
// driver's table (inventory.CapNode); the control nodes (nvidiactl,
// nvidia-uvm, the nvidia-caps directory) are needed for any GPU but name
// none; the whole /dev holds every GPU.
func nvidiaDevicePath(p string) (ok bool, device string) {
	if !strings.HasPrefix(p, "/") {
		return false, ""
	}
	p = path.Clean(p)
	if p == "/dev" {
		return true, deviceAll
	}
	rest, ok := strings.CutPrefix(p, devNvidiaPrefix)
	if !ok {
		return false, ""
	}
	if minor, err := strconv.Atoi(rest); err == nil && isDigits(rest) {
		return true, inventory.DeviceNode(minor)
	}
	if c, ok := strings.CutPrefix(rest, "-caps/nvidia-cap"); ok && isDigits(c) {
		if minor, err := strconv.Atoi(c); err == nil {
			return true, inventory.CapNode(minor)
		}
	}
	return true, ""
}

// nodesReadAsIndices reports a declaration recorded before /dev/nvidiaN was
// read as the GPU of minor number N: device nodes and bind mounts its only
// channels that name a GPU, and a plain index among its devices. Such a
// container is inspected again, once, to be recorded as it is now. Where
// another channel could have named the index too, it cannot be told and
// stays.
func nodesReadAsIndices(g inventory.GPUAccess) bool {
	for _, ch := range g.Channels {
		if ch != inventory.ChannelDevice && ch != inventory.ChannelBindMount && ch != inventory.ChannelPrivileged {
			return false
		}
	}
	return slices.ContainsFunc(g.Devices, isDigits)
}

// visibleDevices reads NVIDIA_VISIBLE_DEVICES; the last assignment wins, as
// it does in the container. "", "void" and "none" grant no GPU.
func (d *gpuDecl) visibleDevices(env []string) {
	val, found := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == envVisibleDevices {
			val, found = v, true
		}
	}
	if !found || val == "" || val == "void" || val == "none" {
		return
	}
	d.add(inventory.ChannelRuntime, strings.Split(val, ",")...)
}

// allocatorLabels reads the lab allocator's labels. ds01.gpu.allocated is a
// timestamp and deliberately not read.
func (d *gpuDecl) allocatorLabels(labels map[string]string) {
	var devs []string
	for _, key := range []string{labelGPUUUID, labelGPUUUIDs, labelGPUSlots} {
		for _, v := range strings.Split(labels[key], ",") {
			if v = strings.TrimSpace(v); v != "" {
				devs = append(devs, v)
			}
		}
	}
	if len(devs) > 0 {
		d.add(inventory.ChannelAllocatorLabel, devs...)
	}
}

// validDevice rejects strings no GPU identifier looks like, so that a
// hostile label or env value cannot carry terminal escapes or bulk into the
// inventory.
func validDevice(s string) bool {
	if len(s) > maxDeviceStringSize || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		// Device names are ASCII in practice; anything unprintable (controls,
		// bidi overrides) is junk or an attack on whoever displays it.
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareDevices orders plain indices numerically ("2" before "10") and
// ahead of everything else, device nodes likewise among themselves, and
// the rest as strings.
func compareDevices(a, b string) int {
	if na, ok := strings.CutPrefix(a, devNvidiaPrefix); ok {
		if nb, ok := strings.CutPrefix(b, devNvidiaPrefix); ok && isDigits(na) && isDigits(nb) {
			a, b = na, nb
		}
	}
	da, db := isDigits(a), isDigits(b)
	switch {
	case da && db:
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	case da:
		return -1
	case db:
		return 1
	}
	return strings.Compare(a, b)
}
