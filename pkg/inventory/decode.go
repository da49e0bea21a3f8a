package inventory

import (
	"github.com/ds01-project/ds01/internal/jsondec"
)

// The inventory's schema for its own JSON decoder (internal/jsondec): one
// function per struct, each setting the fields its object holds; a null
// object leaves the struct as it is. Every reader of the inventory pays
// its decoding, and the query tool pays it on every command: encoding/json
// takes several times longer. FuzzDecodeMatchesEncodingJSON holds this
// schema to what encoding/json decodes into the same structs.

// maxDecodedBytes caps the memory the lists and maps of one inventory take
// once decoded, whatever their number: the file size cap alone would let
// 60 MiB of "{}," become 20 million empty containers. The largest
// inventory a scanner writes, at the file size cap, needs a fraction of it.
const maxDecodedBytes = 512 << 20

// decodeInventory decodes data into inv, which should be fresh.
func decodeInventory(data string, inv *Inventory) error {
	return decodeWithBudget(data, inv, maxDecodedBytes)
}

// decodeWithBudget decodes data into inv with budget bytes for its lists
// and maps.
func decodeWithBudget(data string, inv *Inventory, budget int) error {
	return jsondec.Decode(data, budget, "an inventory", func(d *jsondec.Decoder) { decodeInventoryObject(d, inv) })
}

var inventoryKeys = jsondec.NewKeys("schema_version", "scan", "sources", "containers", "host_processes", "pending_processes", "gpus", "outbox")

func decodeInventoryObject(d *jsondec.Decoder, inv *Inventory) {
	d.Object(inventoryKeys, func(key string) {
		switch key {
		case "schema_version":
			d.Int(&inv.SchemaVersion)
		case "scan":
			decodeScanInfo(d, &inv.Scan)
		case "sources":
			inv.Sources = jsondec.Map(d, decodeSourceStatus)
		case "containers":
			inv.Containers = jsondec.Slice(d, decodeContainer)
		case "host_processes":
			inv.HostProcesses = jsondec.Slice(d, decodeHostProcess)
		case "pending_processes":
			inv.PendingProcesses = jsondec.Slice(d, decodeHostProcess)
		case "gpus":
			inv.GPUs = jsondec.Slice(d, decodeGpuDevice)
		case "outbox":
			jsondec.Ptr(d, &inv.Outbox, decodeOutbox)
		}
	})
}

var outboxKeys = jsondec.NewKeys("log_inode", "log_offset", "log_mark", "events")

func decodeOutbox(d *jsondec.Decoder, o *Outbox) {
	d.Object(outboxKeys, func(key string) {
		switch key {
		case "log_inode":
			d.Uint64(&o.LogInode)
		case "log_offset":
			d.Int64(&o.LogOffset)
		case "log_mark":
			d.String(&o.LogMark)
		case "events":
			o.Events = jsondec.Slice(d, decodePendingEvent)
		}
	})
}

var pendingEventKeys = jsondec.NewKeys("event_id", "line")

func decodePendingEvent(d *jsondec.Decoder, p *PendingEvent) {
	d.Object(pendingEventKeys, func(key string) {
		switch key {
		case "event_id":
			d.String(&p.ID)
		case "line":
			d.String(&p.Line)
		}
	})
}

var scanKeys = jsondec.NewKeys("id", "time", "duration_ms", "host", "version")

func decodeScanInfo(d *jsondec.Decoder, s *ScanInfo) {
	d.Object(scanKeys, func(key string) {
		switch key {
		case "id":
			d.String(&s.ID)
		case "time":
			d.Time(&s.Time)
		case "duration_ms":
			d.Int64(&s.DurationMS)
		case "host":
			d.String(&s.Host)
		case "version":
			d.String(&s.Version)
		}
	})
}

var sourceKeys = jsondec.NewKeys("ok", "error", "last_success", "warning", "duration_ms")

func decodeSourceStatus(d *jsondec.Decoder, s *SourceStatus) {
	d.Object(sourceKeys, func(key string) {
		switch key {
		case "ok":
			d.Bool(&s.OK)
		case "error":
			d.String(&s.Error)
		case "last_success":
			jsondec.Ptr(d, &s.LastSuccess, (*jsondec.Decoder).Time)
		case "warning":
			d.String(&s.Warning)
		case "duration_ms":
			d.Int64(&s.DurationMS)
		}
	})
}

var gpuDeviceKeys = jsondec.NewKeys("id", "index", "uuid", "name", "minor_number", "parent", "gpu_instance_id",
	"compute_instance_id", "cap_minors", "mig_enabled", "memory_total_bytes", "memory_used_bytes", "memory_reserved_bytes", "persistence_mode",
	"lost", "error", "unknown_processes", "last_sample_timestamp",
	"accounting_mode", "last_accounting_timestamp", "brief_processes")

func decodeGpuDevice(d *jsondec.Decoder, g *GPUDevice) {
	d.Object(gpuDeviceKeys, func(key string) {
		switch key {
		case "id":
			d.String(&g.ID)
		case "index":
			d.Int(&g.Index)
		case "uuid":
			d.String(&g.UUID)
		case "name":
			d.String(&g.Name)
		case "minor_number":
			jsondec.Ptr(d, &g.MinorNumber, (*jsondec.Decoder).Int)
		case "parent":
			d.String(&g.Parent)
		case "gpu_instance_id":
			jsondec.Ptr(d, &g.GPUInstanceID, (*jsondec.Decoder).Int)
		case "compute_instance_id":
			jsondec.Ptr(d, &g.ComputeInstanceID, (*jsondec.Decoder).Int)
		case "cap_minors":
			g.CapMinors = jsondec.Slice(d, (*jsondec.Decoder).Int)
		case "mig_enabled":
			d.Bool(&g.MIGEnabled)
		case "memory_total_bytes":
			jsondec.Ptr(d, &g.MemoryTotalBytes, (*jsondec.Decoder).Uint64)
		case "memory_used_bytes":
			jsondec.Ptr(d, &g.MemoryUsedBytes, (*jsondec.Decoder).Uint64)
		case "memory_reserved_bytes":
			jsondec.Ptr(d, &g.MemoryReservedBytes, (*jsondec.Decoder).Uint64)
		case "persistence_mode":
			jsondec.Ptr(d, &g.PersistenceMode, (*jsondec.Decoder).Bool)
		case "lost":
			d.Bool(&g.Lost)
		case "error":
			d.String(&g.Error)
		case "unknown_processes":
			d.Int(&g.UnknownProcesses)
		case "last_sample_timestamp":
			d.Uint64(&g.LastSampleTimestamp)
		case "accounting_mode":
			jsondec.Ptr(d, &g.AccountingMode, (*jsondec.Decoder).Bool)
		case "last_accounting_timestamp":
			d.Uint64(&g.LastAccountingTimestamp)
		case "brief_processes":
			d.Uint64(&g.BriefProcesses)
		}
	})
}

var gpuAccessKeys = jsondec.NewKeys("declared", "channels", "devices")

func decodeGpuAccess(d *jsondec.Decoder, g *GPUAccess) {
	d.Object(gpuAccessKeys, func(key string) {
		switch key {
		case "declared":
			d.Bool(&g.Declared)
		case "channels":
			g.Channels = jsondec.Slice(d, (*jsondec.Decoder).String)
		case "devices":
			g.Devices = jsondec.Slice(d, (*jsondec.Decoder).String)
		}
	})
}

var gpuProcessKeys = jsondec.NewKeys("pid", "gpu", "memory_bytes", "ns_pid", "kind", "command")

func decodeGpuProcess(d *jsondec.Decoder, p *GPUProcess) {
	d.Object(gpuProcessKeys, func(key string) {
		switch key {
		case "pid":
			d.Int(&p.PID)
		case "gpu":
			d.String(&p.GPU)
		case "memory_bytes":
			jsondec.Ptr(d, &p.MemoryBytes, (*jsondec.Decoder).Uint64)
		case "ns_pid":
			d.Int(&p.NSPID)
		case "kind":
			d.String(&p.Kind)
		case "command":
			d.String(&p.Command)
		}
	})
}

var containerKeys = jsondec.NewKeys("id", "name", "image", "command", "type", "status", "exit_code", "created_at",
	"started_at", "detected_at", "last_seen", "stale", "pid", "user", "user_source", "gpu", "gpu_processes",
	"gpu_access", "gpus_undeclared", "runtime", "cpu_percent", "memory_bytes", "cpu_usage_ns", "cpu_sampled_at", "labels",
	"detected_labels", "inspect_error", "launcher")

func decodeContainer(d *jsondec.Decoder, c *Container) {
	d.Object(containerKeys, func(key string) {
		switch key {
		case "id":
			d.String(&c.ID)
		case "name":
			d.String(&c.Name)
		case "image":
			d.String(&c.Image)
		case "command":
			d.String(&c.Command)
		case "type":
			d.String(&c.Type)
		case "status":
			d.String(&c.Status)
		case "exit_code":
			jsondec.Ptr(d, &c.ExitCode, (*jsondec.Decoder).Int)
		case "created_at":
			d.Time(&c.CreatedAt)
		case "started_at":
			jsondec.Ptr(d, &c.StartedAt, (*jsondec.Decoder).Time)
		case "detected_at":
			d.Time(&c.DetectedAt)
		case "last_seen":
			d.Time(&c.LastSeen)
		case "stale":
			d.Bool(&c.Stale)
		case "pid":
			d.Int(&c.PID)
		case "user":
			d.String(&c.User)
		case "user_source":
			d.String(&c.UserSource)
		case "gpu":
			decodeGpuAccess(d, &c.GPU)
		case "gpu_processes":
			c.GPUProcesses = jsondec.Slice(d, decodeGpuProcess)
		case "gpu_access":
			d.String(&c.GPUAccess)
		case "gpus_undeclared":
			c.GPUsUndeclared = jsondec.Slice(d, (*jsondec.Decoder).String)
		case "runtime":
			d.String(&c.Runtime)
		case "launcher":
			jsondec.Ptr(d, &c.Launcher, decodeLauncher)
		case "cpu_percent":
			jsondec.Ptr(d, &c.CPUPercent, (*jsondec.Decoder).Float64)
		case "memory_bytes":
			jsondec.Ptr(d, &c.MemoryBytes, (*jsondec.Decoder).Uint64)
		case "cpu_usage_ns":
			d.Uint64(&c.CPUUsageNS)
		case "cpu_sampled_at":
			jsondec.Ptr(d, &c.CPUSampledAt, (*jsondec.Decoder).Time)
		case "labels":
			c.Labels = jsondec.Map(d, (*jsondec.Decoder).String)
		case "detected_labels":
			c.DetectedLabels = jsondec.Map(d, (*jsondec.Decoder).String)
		case "inspect_error":
			d.String(&c.InspectError)
		}
	})
}

var hostProcessKeys = jsondec.NewKeys("pid", "start_ticks", "type", "command", "user", "user_source", "started_at",
	"detected_at", "last_seen", "stale", "gpus", "gpu_memory_bytes", "gpu_memory", "kinds", "sm_util_percent",
	"launcher")

func decodeHostProcess(d *jsondec.Decoder, p *HostProcess) {
	d.Object(hostProcessKeys, func(key string) {
		switch key {
		case "pid":
			d.Int(&p.PID)
		case "start_ticks":
			d.Uint64(&p.StartTicks)
		case "type":
			d.String(&p.Type)
		case "command":
			d.String(&p.Command)
		case "user":
			d.String(&p.User)
		case "user_source":
			d.String(&p.UserSource)
		case "started_at":
			d.Time(&p.StartedAt)
		case "detected_at":
			d.Time(&p.DetectedAt)
		case "last_seen":
			d.Time(&p.LastSeen)
		case "stale":
			d.Bool(&p.Stale)
		case "gpus":
			p.GPUs = jsondec.Slice(d, (*jsondec.Decoder).String)
		case "gpu_memory":
			p.GPUMemory = jsondec.Map(d, (*jsondec.Decoder).Uint64)
		case "gpu_memory_bytes":
			jsondec.Ptr(d, &p.GPUMemoryBytes, (*jsondec.Decoder).Uint64)
		case "kinds":
			p.Kinds = jsondec.Slice(d, (*jsondec.Decoder).String)
		case "sm_util_percent":
			jsondec.Ptr(d, &p.SMUtilPercent, (*jsondec.Decoder).Uint32)
		case "launcher":
			jsondec.Ptr(d, &p.Launcher, decodeLauncher)
		}
	})
}

var launcherKeys = jsondec.NewKeys("name", "job", "step", "image", "machine", "pod", "unit", "engine")

func decodeLauncher(d *jsondec.Decoder, l *Launcher) {
	d.Object(launcherKeys, func(key string) {
		switch key {
		case "name":
			d.String(&l.Name)
		case "job":
			d.String(&l.Job)
		case "step":
			d.String(&l.Step)
		case "image":
			d.String(&l.Image)
		case "machine":
			d.String(&l.Machine)
		case "pod":
			d.String(&l.Pod)
		case "unit":
			d.String(&l.Unit)
		case "engine":
			d.String(&l.Engine)
		}
	})
}
