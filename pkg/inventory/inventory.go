// Package inventory is the public contract of the ds01 awareness layer: the
// schema of the workload inventory that ds01-scan writes, the functions that
// load and save it, the pure Reconcile step that turns the previous inventory
// and a new observation into the next inventory plus its transitions, and the
// writer of the JSONL event log.
//
// Other Go tools import this package to read the inventory; it links no
// Docker or NVML code.
package inventory

import "time"

// SchemaVersion is the version of the inventory file format this package
// reads and writes. It changes only when a field changes meaning or type;
// added fields keep the version.
const SchemaVersion = 1

// Workload types. Container types are origins; the last two are processes.
const (
	TypeDS01Managed   = "ds01-managed"
	TypeDevcontainer  = "devcontainer"
	TypeDockerCompose = "docker-compose"
	TypeRawDocker     = "raw-docker"
	TypeUnknown       = "unknown"
	TypeHostProcess   = "host-process"
	TypeSystem        = "system"
)

// Types lists every workload type, in the order the tools present them.
var Types = []string{
	TypeDS01Managed, TypeDevcontainer, TypeDockerCompose, TypeRawDocker,
	TypeUnknown, TypeHostProcess, TypeSystem,
}

// Source names as they appear in Inventory.Sources.
const (
	SourceDocker = "docker"
	SourceNVML   = "nvml"
	SourceProcfs = "procfs"
)

// Inventory is the whole file written by ds01-scan. Importers should use
// Workloads for a flat view rather than walking the sections themselves.
type Inventory struct {
	// SchemaVersion is SchemaVersion when written by this package.
	SchemaVersion int `json:"schema_version"`
	// Scan describes the scan that wrote the file.
	Scan ScanInfo `json:"scan"`
	// Sources maps a source name (SourceDocker, …) to how it fared.
	Sources map[string]SourceStatus `json:"sources"`
	// Containers holds every container known, running or not, keyed by ID.
	Containers []Container `json:"containers"`
	// HostProcesses holds GPU processes outside any known container that
	// were seen on at least two consecutive scans.
	HostProcesses []HostProcess `json:"host_processes"`
	// PendingProcesses holds GPU processes seen on one scan only. They are
	// scanner state, not workloads: a process enters HostProcesses only when
	// the next scan still sees it.
	PendingProcesses []HostProcess `json:"pending_processes"`
	// GPUs are the GPUs and MIG instances NVML reported on the last scan
	// it answered.
	GPUs []GPUDevice `json:"gpus,omitempty"`
	// Outbox holds the events of this scan (and of earlier ones a crash
	// or a failing log kept out) until the next scan finds them in the
	// event log. Scanner state.
	Outbox *Outbox `json:"outbox,omitempty"`
}

// GPUDevice is one GPU, or one MIG instance of a GPU, as NVML reports it.
type GPUDevice struct {
	// ID is how ds01 names the device: the index ("0") for a GPU, and
	// "<gpu>:<MIG device index>" ("0:1") for a MIG instance, numbered as
	// nvidia-smi -L, --gpus device= and NVIDIA_VISIBLE_DEVICES number them.
	ID string `json:"id"`
	// Index is the NVML index of the GPU (the parent's, for MIG).
	Index int    `json:"index"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	// MinorNumber is N of the GPU's /dev/nvidiaN, which need not equal
	// its index; nil for MIG instances.
	MinorNumber *int `json:"minor_number,omitempty"`
	// Parent is the ID of the GPU a MIG instance belongs to.
	Parent string `json:"parent,omitempty"`
	// GPUInstanceID and ComputeInstanceID identify a MIG instance.
	GPUInstanceID     *int `json:"gpu_instance_id,omitempty"`
	ComputeInstanceID *int `json:"compute_instance_id,omitempty"`
	// CapMinors are, for a MIG instance, the N of the capability devices
	// (/dev/nvidia-caps/nvidia-capN) that name it, from the driver's
	// mig-minors table.
	CapMinors []int `json:"cap_minors,omitempty"`
	// MIGEnabled is true on a GPU whose MIG mode is on.
	MIGEnabled       bool    `json:"mig_enabled"`
	MemoryTotalBytes *uint64 `json:"memory_total_bytes"`
	MemoryUsedBytes  *uint64 `json:"memory_used_bytes"`
	// MemoryReservedBytes is what the driver reserves for itself (and ECC),
	// counted in used; nil where the driver cannot say (before R510).
	MemoryReservedBytes *uint64 `json:"memory_reserved_bytes,omitempty"`
	// PersistenceMode is nil where the driver cannot say (MIG instances).
	// Without it, every NVML initialisation can take seconds per GPU.
	PersistenceMode *bool `json:"persistence_mode"`
	// Lost is true when the GPU answered GPU_IS_LOST or RESET_REQUIRED.
	Lost bool `json:"lost"`
	// Error is the last NVML error on this device, if any.
	Error string `json:"error,omitempty"`
	// UnknownProcesses counts processes NVML listed with an invalid PID
	// (0 or 4294967295, from a driver/library ABI mismatch), or in a list
	// in no layout the device allows (Error says which): they use the GPU
	// but cannot be attributed.
	UnknownProcesses int `json:"unknown_processes,omitempty"`
	// LastSampleTimestamp is the newest utilisation sample seen, so the
	// next scan asks only for newer ones. Scanner state.
	LastSampleTimestamp uint64 `json:"last_sample_timestamp,omitempty"`
	// AccountingMode is NVML's accounting mode (nvidia-smi -am): on, it
	// keeps a record of every process that ran on the GPU, so one that
	// starts and ends between two scans is still seen. Nil where the GPU
	// cannot say.
	AccountingMode *bool `json:"accounting_mode,omitempty"`
	// LastAccountingTimestamp is when the newest ended process the
	// accounting records held ended (µs since the epoch), so the next scan
	// reads only later ones. Scanner state.
	LastAccountingTimestamp uint64 `json:"last_accounting_timestamp,omitempty"`
	// BriefProcesses counts the processes seen on the GPU only through its
	// accounting records: started and ended between two scans.
	BriefProcesses uint64 `json:"brief_processes,omitempty"`
}

// BriefProcess is a GPU process that started and ended between two scans,
// known only from NVML's accounting records.
type BriefProcess struct {
	// GPU is the device ID; GPUUUID its UUID.
	GPU     string
	GPUUUID string
	PID     int
	// StartedAt and Duration are NVML's.
	StartedAt time.Time
	Duration  time.Duration
	// MaxMemoryBytes is the most GPU memory it held; nil when unknown.
	MaxMemoryBytes *uint64
	// GPUUtilPercent is its GPU utilisation over its life; nil when
	// unknown.
	GPUUtilPercent *uint32
	// User is whose it was: unknown, since it is gone before a scan can
	// read it.
	User string
}

// ScanInfo is metadata about one scan.
type ScanInfo struct {
	// ID identifies the scan; every event it wrote carries it.
	ID string `json:"id"`
	// Time is when the scan started (UTC).
	Time time.Time `json:"time"`
	// DurationMS is how long the scan took, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Host is the machine's hostname.
	Host string `json:"host,omitempty"`
	// Version is the version of ds01-scan that wrote the file.
	Version string `json:"version,omitempty"`
}

// SourceStatus is how one source fared on the last scan.
type SourceStatus struct {
	// OK is true when the source answered on the last scan.
	OK bool `json:"ok"`
	// Error says why the source failed; empty when OK.
	Error string `json:"error,omitempty"`
	// LastSuccess is when the source last answered; nil if never.
	LastSuccess *time.Time `json:"last_success"`
	// Warning says what an answering source could not see, and why: a
	// blind spot an admin can fix. Empty when it saw everything.
	Warning string `json:"warning,omitempty"`
	// DurationMS is how long the source took on the last scan, in
	// milliseconds: a source that hangs shows here, at its budget.
	DurationMS int64 `json:"duration_ms"`
}

// GPUAccess is what a container declared about GPUs when it was created.
type GPUAccess struct {
	// Declared is true when any channel grants GPU access.
	Declared bool `json:"declared"`
	// Channels names how access was declared: see the Channel constants.
	Channels []string `json:"channels,omitempty"`
	// Devices are the GPUs declared, where they can be told: "all", an
	// index ("0"), a MIG instance ("0:1"), or a UUID ("GPU-…", "MIG-…").
	// Empty with Declared true means "some GPU, which one is unknown".
	Devices []string `json:"devices,omitempty"`
}

// Channels through which a container declares GPU access.
const (
	ChannelDeviceRequest  = "device_request"  // --gpus, DeviceRequests
	ChannelRuntime        = "runtime"         // --runtime=nvidia (or default runtime) with NVIDIA_VISIBLE_DEVICES
	ChannelCDI            = "cdi"             // CDI device names nvidia.com/gpu=…
	ChannelDevice         = "device"          // --device /dev/nvidia*
	ChannelBindMount      = "bind_mount"      // -v /dev/nvidia*:…
	ChannelPrivileged     = "privileged"      // --privileged sees every device
	ChannelAllocatorLabel = "allocator_label" // ds01.gpu.uuid, ds01.gpu.uuids, ds01.gpu.slots
)

// GPUProcess is one process of a container seen on a GPU.
type GPUProcess struct {
	// PID is the host PID.
	PID int `json:"pid"`
	// GPU is the device ID ("0", "0:1").
	GPU string `json:"gpu"`
	// MemoryBytes is nil when NVML could not say, or when only the /proc
	// device scan saw the process.
	MemoryBytes *uint64 `json:"memory_bytes"`
	// NSPID is the PID as the container sees it.
	NSPID int `json:"ns_pid,omitempty"`
	// Kind is how the process was seen: one of the Kind constants.
	Kind string `json:"kind,omitempty"`
	// Command is the process's command line.
	Command string `json:"command,omitempty"`
}

// Process kinds as NVML lists them, plus the /proc device scan.
const (
	KindCompute  = "compute"
	KindGraphics = "graphics"
	KindMPS      = "mps"
	// KindDevice marks a process seen only holding /dev/nvidia* open.
	KindDevice = "device"
)

// Container is one container known to the Docker engine (or, with type
// TypeUnknown and no Docker data, one seen only through a process cgroup).
type Container struct {
	// ID is the full 64-hex container ID: the key.
	ID string `json:"id"`
	// Name is the container name without Docker's leading slash.
	Name string `json:"name"`
	// Image is the image reference the container was created from.
	Image string `json:"image"`
	// Command is the command line, as docker ps shows it.
	Command string `json:"command"`
	// Type is the origin: one of the container Type constants.
	Type string `json:"type"`
	// Status is Docker's state: created, running, paused, restarting,
	// removing, exited or dead.
	Status string `json:"status"`
	// ExitCode is the exit code of an exited container.
	ExitCode *int `json:"exit_code"`
	// CreatedAt is when Docker created the container.
	CreatedAt time.Time `json:"created_at"`
	// StartedAt is when the container last started; nil if never.
	StartedAt *time.Time `json:"started_at"`
	// DetectedAt is when ds01-scan first saw the container. It never changes.
	DetectedAt time.Time `json:"detected_at"`
	// LastSeen is when a source last confirmed the container.
	LastSeen time.Time `json:"last_seen"`
	// Stale is true when the Docker source was down on the last scan and
	// this entry is the last data it gave.
	Stale bool `json:"stale"`
	// PID is the host PID of the container's main process while running.
	PID int `json:"pid,omitempty"`

	// User is who the container belongs to: a user name, "uid:<n>" when
	// the uid has no name, "root", or "unknown".
	User string `json:"user"`
	// UserSource names the signal that gave User (see package attribution).
	UserSource string `json:"user_source"`

	// GPU is the declared GPU access.
	GPU GPUAccess `json:"gpu"`
	// GPUProcesses are this container's processes observed on a GPU.
	GPUProcesses []GPUProcess `json:"gpu_processes,omitempty"`
	// GPUAccess sums up declared against observed use, as the GPU ledger
	// (DecideAccess) decided it on the last scan: one of the Access
	// constants. AccessUndeclared is the blind spot ds01 exists to close:
	// a container using a GPU it never declared.
	GPUAccess string `json:"gpu_access"`
	// GPUsUndeclared are the GPUs it uses outside what it declared, as
	// the ledger decided on the last scan.
	GPUsUndeclared []string `json:"gpus_undeclared,omitempty"`
	// Runtime names the container runtime of a TypeUnknown container seen
	// only through a process cgroup ("podman", "containerd", …).
	Runtime string `json:"runtime,omitempty"`
	// Launcher is what runs the container: its engine, or Kubernetes.
	Launcher *Launcher `json:"launcher,omitempty"`

	// CPUPercent is CPU use since the previous scan, 100 = one core.
	CPUPercent *float64 `json:"cpu_percent"`
	// MemoryBytes is the container's memory use.
	MemoryBytes *uint64 `json:"memory_bytes"`
	// CPUUsageNS and CPUSampledAt are the counter the next CPUPercent is
	// computed from. Scanner state.
	CPUUsageNS   uint64     `json:"cpu_usage_ns,omitempty"`
	CPUSampledAt *time.Time `json:"cpu_sampled_at,omitempty"`

	// Labels holds the labels classification and attribution read (ds01.*,
	// com.docker.compose.*, devcontainer.*), each value capped in size.
	// Other labels are not kept.
	Labels map[string]string `json:"labels,omitempty"`
	// DetectedLabels are the ds01.detected.* labels the docker wrapper
	// should apply when the container is next created.
	DetectedLabels map[string]string `json:"detected_labels"`
	// InspectError says why the container could not be inspected; such a
	// container has type TypeUnknown until an inspect succeeds.
	InspectError string `json:"inspect_error,omitempty"`
}

// HostProcess is a GPU process outside any container, keyed by PID and start
// time so that a reused PID never inherits another process's history.
type HostProcess struct {
	PID int `json:"pid"`
	// StartTicks is the process start time in clock ticks since boot.
	StartTicks uint64 `json:"start_ticks"`
	// Type is TypeHostProcess or TypeSystem.
	Type       string    `json:"type"`
	Command    string    `json:"command"`
	User       string    `json:"user"`
	UserSource string    `json:"user_source"`
	StartedAt  time.Time `json:"started_at"`
	DetectedAt time.Time `json:"detected_at"`
	LastSeen   time.Time `json:"last_seen"`
	Stale      bool      `json:"stale"`
	// GPUs are the GPUs the process is on.
	GPUs []string `json:"gpus"`
	// GPUMemoryBytes is the GPU memory the process uses; nil when unknown.
	GPUMemoryBytes *uint64 `json:"gpu_memory_bytes"`
	// GPUMemory is its memory on each GPU where NVML gave a figure, so
	// that each GPU's ledger adds up; a GPU absent here is unknown.
	GPUMemory map[string]uint64 `json:"gpu_memory,omitempty"`
	// Kinds say how the process was seen (compute, graphics, mps, or
	// device: only holding /dev/nvidia* open, with no memory figure).
	Kinds []string `json:"kinds,omitempty"`
	// SMUtilPercent is the process's SM utilisation where NVML samples it.
	SMUtilPercent *uint32 `json:"sm_util_percent,omitempty"`
	// Launcher is what started the process, where it can be told: a
	// Slurm job, an Apptainer image, an LXC or nspawn machine, a login
	// session, a service.
	Launcher *Launcher `json:"launcher,omitempty"`
}

// IsProcessType reports whether a workload type is one of a process
// (TypeHostProcess, TypeSystem) rather than a container's.
func IsProcessType(t string) bool { return t == TypeHostProcess || t == TypeSystem }

// Key returns the process key: PID and start ticks.
func (p HostProcess) Key() ProcessKey { return ProcessKey{PID: p.PID, StartTicks: p.StartTicks} }

// ProcessKey identifies a process across PID reuse.
type ProcessKey struct {
	PID        int
	StartTicks uint64
}
