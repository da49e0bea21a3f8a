package detect

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Bounds on what NVML may hand back. A driver/library ABI mismatch or a
// broken mock can return any length; no list is trusted beyond these.
const (
	nvmlMaxGPUs       = 128  // devices per host; the largest NVSwitch systems have 16
	nvmlMaxMIGDevices = 64   // MIG device slots per GPU; an A100 or H100 has 7
	nvmlMaxList       = 4096 // processes per list, utilisation samples per call
)

// nvmlPIDMax is Linux's PID_MAX_LIMIT on 64-bit: no real PID is larger.
// NVML reports 0 or 4294967295 (and other garbage) when the driver and the
// library disagree on the layout of the process structure.
const nvmlPIDMax = 4 * 1024 * 1024

// nvmlValueNotAvailable is NVML_VALUE_NOT_AVAILABLE as an unsigned long long:
// NVML's "this driver cannot say" for a process's memory.
const nvmlValueNotAvailable = ^uint64(0)

// nvmlFutureSlack is how far ahead of this host's clock a utilisation timestamp
// (microseconds since the epoch) may be before it is taken for garbage. A
// garbage timestamp kept as "last seen" would hide every later sample.
const nvmlFutureSlack = time.Hour

// ErrNoGPUs is wrapped by Observe's error when NVML initialises but lists no
// GPU: the source has nothing to say, which is not the same as "idle".
var ErrNoGPUs = errors.New("NVML lists no GPUs")

// GPUSample is one process NVML lists on one device.
type GPUSample struct {
	// PID is the host PID. It is always valid (1 to PID_MAX_LIMIT): an
	// invalid PID from NVML is counted in GPUDevice.UnknownProcesses and
	// never becomes a sample.
	PID int
	// GPU is the device ID: "0", or "0:1" for a MIG instance (GPU index :
	// MIG device index).
	GPU     string
	GPUUUID string
	// Kind is inventory.KindCompute, KindGraphics or KindMPS. A process in
	// more than one list (a "C+G" process) gives one sample per kind.
	Kind string
	// MemoryBytes is nil when NVML says "not available" or gives a value
	// larger than the device's memory.
	MemoryBytes *uint64
	// SMUtil is the process's SM utilisation in percent from the newest
	// fresh sample; nil where the device cannot say (MIG instances, older
	// GPUs) or NVML had no sample newer than the last scan's.
	SMUtil *uint32
}

// NVMLReading is what one NVML read saw.
type NVMLReading struct {
	// GPUs holds every GPU and every MIG instance as its own entry, in
	// index order with a GPU's MIG instances after it. LastSampleTimestamp
	// is updated from this read's utilisation samples.
	GPUs []inventory.GPUDevice
	// Samples are the processes with valid PIDs. Duplicates of one PID on
	// one device in one list are merged.
	Samples []GPUSample
	// ListedAt is when the last process list was taken: a process that
	// started later is not the one NVML listed under its PID.
	ListedAt time.Time
	// Warnings say what this read could not believe (a process list in no
	// layout the device allows), or could not see (accounting mode off),
	// one line each, naming the GPU.
	Warnings []string
	// Accounting are the processes NVML's accounting records show ended
	// on a GPU since its LastAccountingTimestamp.
	Accounting []AccountingRecord
}

// AccountingRecord is a process that ran on a GPU and has ended, as NVML's
// accounting recorded it.
type AccountingRecord struct {
	// GPU is the device ID; UUID its UUID.
	GPU, UUID string
	PID       int
	StartedAt time.Time
	Duration  time.Duration
	// MaxMemoryBytes is the most memory it held; nil when unknown.
	MaxMemoryBytes *uint64
	// GPUUtilPercent is its utilisation over its life; nil when unknown.
	GPUUtilPercent *uint32
}

// NVML is the NVML source. It holds no NVML state between reads: each
// Observe initialises the library and shuts it down again.
type NVML struct {
	lib nvml.Interface
	log *slog.Logger
	now func() time.Time
	// memoryV2 is true while the library has nvmlDeviceGetMemoryInfo_v2,
	// which tells the driver's reserved memory apart (driver R510 on).
	memoryV2 bool
}

// symbolMemoryV2 is looked up before it is called: go-nvml binds lazily,
// and calling a symbol an older library lacks would end the process.
const symbolMemoryV2 = "nvmlDeviceGetMemoryInfo_v2"

// NewNVML returns the NVML source reading through lib (nvml.New() in
// production, a go-nvml mock server in tests).
func NewNVML(lib nvml.Interface, log *slog.Logger) *NVML {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &NVML{lib: lib, log: log.With("source", inventory.SourceNVML), now: time.Now}
}

// Observe initialises NVML, reads every device, and shuts NVML down.
// last maps a GPU's UUID to the device as the previous scan recorded it:
// only utilisation samples newer than its LastSampleTimestamp count, and
// only accounting records of processes that ended after its
// LastAccountingTimestamp.
//
// An error means the source is unavailable: NVML could not initialise, could
// not count the GPUs, or lists none (ErrNoGPUs). It says why in plain words
// and wraps the nvml.Return, so errors.Is(err, nvml.ERROR_DRIVER_NOT_LOADED)
// works. Trouble on one device is not an error: that device carries it in
// GPUDevice.Error (and Lost), and the others are read.
func (n *NVML) Observe(last map[string]inventory.GPUDevice) (obs NVMLReading, err error) {
	start := n.now()
	// A panic from the library's Go side (a nil handle, a mock missing a
	// function) must cost this source, not the scan. Deferred first, it
	// runs after Shutdown.
	defer func() {
		if p := recover(); p != nil {
			n.log.Error("NVML read panicked", "panic", p)
			obs, err = NVMLReading{}, fmt.Errorf("read NVML: internal error: %v", p)
		}
	}()
	if ret := n.lib.Init(); ret != nvml.SUCCESS {
		return NVMLReading{}, nvmlInitError(ret)
	}
	// NVML's contract pairs Shutdown with a successful Init only: after a
	// failed Init it answers ERROR_UNINITIALIZED and does nothing.
	defer func() {
		if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
			n.log.Warn("NVML shutdown failed", "err", ret)
		}
	}()

	n.memoryV2 = n.lib.Extensions().LookupSymbol(symbolMemoryV2) == nil

	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return NVMLReading{}, fmt.Errorf("count GPUs: %w", ret)
	}
	if count <= 0 {
		return NVMLReading{}, ErrNoGPUs
	}
	if count > nvmlMaxGPUs {
		n.log.Warn("NVML reports more GPUs than can be real; reading the first ones", "count", count, "read", nvmlMaxGPUs)
		count = nvmlMaxGPUs
	}

	nowMicros := uint64(n.now().UnixMicro())
	for i := range count {
		devs, samples := n.readGPUSafely(i, last, nowMicros, &obs)
		obs.GPUs = append(obs.GPUs, devs...)
		obs.Samples = append(obs.Samples, samples...)
	}
	obs.ListedAt = n.now()
	if w := AccountingWarning(obs.GPUs); w != "" {
		obs.Warnings = append(obs.Warnings, w)
	}
	for _, d := range obs.GPUs {
		if d.Error != "" {
			n.log.Warn("NVML device error", "gpu", d.ID, "uuid", d.UUID, "lost", d.Lost, "err", d.Error)
		}
	}
	n.log.Debug("NVML read", "gpus", len(obs.GPUs), "samples", len(obs.Samples),
		"duration_ms", n.now().Sub(start).Milliseconds())
	return obs, nil
}

// nvmlInitError turns a failed nvml.Init into the reason an admin can act on.
func nvmlInitError(ret nvml.Return) error {
	var why string
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		why = "NVML library not found (no NVIDIA driver installed?)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		why = "NVIDIA kernel driver not loaded"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		why = "driver/library version mismatch: the driver was upgraded without a reboot"
	case nvml.ERROR_NO_PERMISSION:
		why = "no permission to open the NVIDIA devices"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		why = "NVML library too old for this program"
	default:
		why = "NVML initialisation failed"
	}
	return fmt.Errorf("%s: %w", why, ret)
}

// readGPUSafely reads GPU index and, if that panics, lists the GPU with the
// panic as its error so the other GPUs are still read. What the read could
// not believe is added to warnings.
func (n *NVML) readGPUSafely(index int, last map[string]inventory.GPUDevice, nowMicros uint64, read *NVMLReading) (devs []inventory.GPUDevice, samples []GPUSample) {
	defer func() {
		if p := recover(); p != nil {
			n.log.Error("reading a GPU panicked", "gpu", index, "panic", p)
			devs = []inventory.GPUDevice{{
				ID: strconv.Itoa(index), Index: index,
				Error: fmt.Sprintf("internal error reading the GPU: %v", p),
			}}
			samples = nil
		}
	}()
	return n.readGPU(index, last, nowMicros, read)
}

// nvmlDeviceRead is one device being read: what is known so far and every
// error. read is the whole read, which takes its warnings and accounting
// records.
type nvmlDeviceRead struct {
	dev  inventory.GPUDevice
	errs []string
	read *NVMLReading
}

// fail records a failed call. It reports whether the device is lost, after
// which nothing more is asked of it.
func (r *nvmlDeviceRead) fail(what string, ret nvml.Return) bool {
	r.errs = append(r.errs, what+": "+ret.Error())
	if nvmlIsLost(ret) {
		r.dev.Lost = true
	}
	return r.dev.Lost
}

// distrust records that NVML's answer cannot be believed, as an error of
// the device and a warning of the read.
func (r *nvmlDeviceRead) distrust(why string) {
	r.errs = append(r.errs, why)
	r.read.Warnings = append(r.read.Warnings, "GPU "+r.dev.ID+": "+why)
}

func (r *nvmlDeviceRead) done() inventory.GPUDevice {
	r.dev.Error = strings.Join(r.errs, "; ")
	return r.dev
}

// nvmlIsLost is true for the answers that mean the GPU itself is gone until a
// reset, as opposed to one call failing.
func nvmlIsLost(ret nvml.Return) bool {
	return ret == nvml.ERROR_GPU_IS_LOST || ret == nvml.ERROR_RESET_REQUIRED
}

// readGPU reads one GPU: its own entry, then either its MIG instances (with
// their processes) or its processes and utilisation.
func (n *NVML) readGPU(index int, last map[string]inventory.GPUDevice, nowMicros uint64, read *NVMLReading) ([]inventory.GPUDevice, []GPUSample) {
	r := &nvmlDeviceRead{dev: inventory.GPUDevice{ID: strconv.Itoa(index), Index: index}, read: read}
	h, ret := n.lib.DeviceGetHandleByIndex(index)
	if ret == nvml.SUCCESS && h == nil {
		ret = nvml.ERROR_UNKNOWN
	}
	if ret != nvml.SUCCESS {
		r.fail("get device handle", ret)
		return []inventory.GPUDevice{r.done()}, nil
	}
	if !n.readIdentity(r, h) {
		return []inventory.GPUDevice{r.done()}, nil
	}
	prev := last[r.dev.UUID]
	r.dev.LastSampleTimestamp = prev.LastSampleTimestamp
	r.dev.LastAccountingTimestamp, r.dev.BriefProcesses = prev.LastAccountingTimestamp, prev.BriefProcesses

	// The minor number ties /dev/nvidiaN, which the /proc scan sees, to
	// this device.
	switch minor, ret := h.GetMinorNumber(); ret {
	case nvml.SUCCESS:
		r.dev.MinorNumber = &minor
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		if r.fail("read minor number", ret) {
			return []inventory.GPUDevice{r.done()}, nil
		}
	}

	switch mode, ret := h.GetPersistenceMode(); ret {
	case nvml.SUCCESS:
		on := mode == nvml.FEATURE_ENABLED
		r.dev.PersistenceMode = &on
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		if r.fail("read persistence mode", ret) {
			return []inventory.GPUDevice{r.done()}, nil
		}
	}

	switch current, _, ret := h.GetMigMode(); ret {
	case nvml.SUCCESS:
		r.dev.MIGEnabled = current == nvml.DEVICE_MIG_ENABLE
	case nvml.ERROR_NOT_SUPPORTED: // a GPU without MIG
	default:
		if r.fail("read MIG mode", ret) {
			return []inventory.GPUDevice{r.done()}, nil
		}
	}

	if r.dev.MIGEnabled {
		// The parent handle's process lists are aggregates of its MIG
		// instances: read the instances instead, so nothing is listed twice.
		migs, samples := n.readMIGDevices(r, h, index, last)
		return append([]inventory.GPUDevice{r.done()}, migs...), samples
	}
	samples := n.readProcesses(r, h)
	if !r.dev.Lost {
		n.readUtilisation(r, h, samples, nowMicros)
	}
	if !r.dev.Lost {
		n.readAccounting(r, h, nowMicros)
	}
	return []inventory.GPUDevice{r.done()}, samples
}

// readIdentity reads UUID, name and memory into r. It returns false when
// the device is lost.
func (n *NVML) readIdentity(r *nvmlDeviceRead, h nvml.Device) bool {
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		if r.fail("read UUID", ret) {
			return false
		}
	} else {
		r.dev.UUID = uuid
	}
	name, ret := h.GetName()
	if ret != nvml.SUCCESS {
		if r.fail("read name", ret) {
			return false
		}
	} else {
		r.dev.Name = name
	}
	return n.readMemory(r, h)
}

// readMemory reads the device's memory into r: through the v2 call where
// the driver has it, which says what the driver reserves for itself, else
// through the first. It returns false when the device is lost.
func (n *NVML) readMemory(r *nvmlDeviceRead, h nvml.Device) bool {
	if n.memoryV2 {
		mem, ret := h.GetMemoryInfo_v2()
		switch ret {
		case nvml.SUCCESS:
			r.setMemory(mem.Total, mem.Used)
			if mem.Reserved != nvmlValueNotAvailable && (mem.Total == nvmlValueNotAvailable || mem.Reserved <= mem.Total) {
				reserved := mem.Reserved
				r.dev.MemoryReservedBytes = &reserved
			}
			return true
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND, nvml.ERROR_ARGUMENT_VERSION_MISMATCH:
			// This device or driver does not do v2: the first call serves.
		default:
			return !r.fail("read memory", ret)
		}
	}
	mem, ret := h.GetMemoryInfo()
	switch {
	case ret == nvml.ERROR_NOT_SUPPORTED:
	case ret != nvml.SUCCESS:
		return !r.fail("read memory", ret)
	default:
		r.setMemory(mem.Total, mem.Used)
	}
	return true
}

// setMemory records total and used memory, each unless NVML said "not
// available" or used exceeds total (garbage).
func (r *nvmlDeviceRead) setMemory(total, used uint64) {
	if total != nvmlValueNotAvailable {
		r.dev.MemoryTotalBytes = &total
	}
	if used != nvmlValueNotAvailable && (total == nvmlValueNotAvailable || used <= total) {
		r.dev.MemoryUsedBytes = &used
	}
}

// readMIGDevices reads the MIG instances of the MIG-enabled GPU parent. A
// lost instance means a lost GPU: parent is marked and reading stops.
func (n *NVML) readMIGDevices(parent *nvmlDeviceRead, h nvml.Device, index int, last map[string]inventory.GPUDevice) ([]inventory.GPUDevice, []GPUSample) {
	slots, ret := h.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		parent.fail("count MIG devices", ret)
		return nil, nil
	}
	if slots > nvmlMaxMIGDevices {
		parent.errs = append(parent.errs, fmt.Sprintf("NVML reports %d MIG device slots; read the first %d", slots, nvmlMaxMIGDevices))
		slots = nvmlMaxMIGDevices
	}
	var devs []inventory.GPUDevice
	var samples []GPUSample
	for slot := 0; slot < slots; slot++ {
		mh, ret := h.GetMigDeviceHandleByIndex(slot)
		if ret == nvml.ERROR_NOT_FOUND {
			continue // an empty slot
		}
		if ret == nvml.SUCCESS && mh == nil {
			ret = nvml.ERROR_UNKNOWN
		}
		if ret != nvml.SUCCESS {
			if parent.fail(fmt.Sprintf("get MIG device %d", slot), ret) {
				break
			}
			continue
		}
		r := &nvmlDeviceRead{dev: inventory.GPUDevice{Index: index, Parent: strconv.Itoa(index)}, read: parent.read}
		s := n.readMIGDevice(r, mh, index, slot, last)
		devs = append(devs, r.done())
		samples = append(samples, s...)
		if r.dev.Lost {
			parent.dev.Lost = true
			parent.errs = append(parent.errs, fmt.Sprintf("MIG device %s: %s", r.dev.ID, r.dev.Error))
			break
		}
	}
	return devs, samples
}

// readMIGDevice reads one MIG instance. Its ID is "<gpu>:<MIG device
// index>", the index NVML gives it under its GPU: the number nvidia-smi -L
// shows ("MIG 1g.10gb Device 1") and the one after the colon in
// NVIDIA_VISIBLE_DEVICES and --gpus device=0:1, so that what a container
// declared and where its processes run compare. The GPU and compute
// instance IDs are recorded beside it; they are not unique alone (two
// compute instances share a GPU instance).
func (n *NVML) readMIGDevice(r *nvmlDeviceRead, mh nvml.Device, index, slot int, last map[string]inventory.GPUDevice) []GPUSample {
	r.dev.ID = fmt.Sprintf("%d:%d", index, slot)
	gi, ret := mh.GetGpuInstanceId()
	if ret != nvml.SUCCESS {
		if r.fail("read GPU instance ID", ret) {
			return nil
		}
	} else {
		r.dev.GPUInstanceID = &gi
	}
	ci, ret := mh.GetComputeInstanceId()
	if ret != nvml.SUCCESS {
		if r.fail("read compute instance ID", ret) {
			return nil
		}
	} else {
		r.dev.ComputeInstanceID = &ci
	}
	if !n.readIdentity(r, mh) {
		return nil
	}
	// MIG instances have no utilisation sampling; the old timestamp is
	// carried so that the state round-trips unchanged.
	r.dev.LastSampleTimestamp = last[r.dev.UUID].LastSampleTimestamp
	return n.readProcesses(r, mh)
}

// nvmlProcessList is one of NVML's three process lists.
type nvmlProcessList struct {
	kind string
	get  func() ([]nvml.ProcessInfo, nvml.Return)
}

// readProcesses reads the compute, graphics and MPS lists of the device
// being read in r. NOT_SUPPORTED leaves a list empty; an invalid PID is
// counted in UnknownProcesses. Each list is checked against the device
// first (checkProcessList): one in the 32-byte layout of driver 535.54 is
// read again in it, one in no layout the device allows is dropped whole,
// its entries counted in UnknownProcesses, and the device says why.
func (n *NVML) readProcesses(r *nvmlDeviceRead, h nvml.Device) []GPUSample {
	bounds := nvmlBoundsOf(r)
	lists := []nvmlProcessList{
		{inventory.KindCompute, h.GetComputeRunningProcesses},
		{inventory.KindGraphics, h.GetGraphicsRunningProcesses},
		{inventory.KindMPS, h.GetMPSComputeRunningProcesses},
	}
	var samples []GPUSample
	for _, l := range lists {
		infos, ret := l.get()
		if ret == nvml.ERROR_NOT_SUPPORTED {
			continue
		}
		if ret != nvml.SUCCESS {
			if r.fail("list "+l.kind+" processes", ret) {
				break
			}
			continue
		}
		if len(infos) > nvmlMaxList {
			r.errs = append(r.errs, fmt.Sprintf("%s process list of %d entries cut to %d", l.kind, len(infos), nvmlMaxList))
			infos = infos[:nvmlMaxList]
		}
		check := checkProcessList(infos, bounds)
		switch {
		case check.dropped != "":
			r.dev.UnknownProcesses += len(infos)
			r.distrust(l.kind + " process list not believed: " + check.dropped)
			continue
		case check.realigned:
			n.log.Info("NVML process list read again in driver 535.54's 32-byte layout",
				"gpu", r.dev.ID, "uuid", r.dev.UUID, "kind", l.kind, "entries", len(infos))
		}
		infos = check.entries
		// Duplicates are merged within one list only: the same PID in
		// two lists is two kinds of use.
		first := len(samples)
		for _, p := range infos {
			if !validNVMLPID(p.Pid) {
				r.dev.UnknownProcesses++
				continue
			}
			mem := nvmlProcessMemory(p.UsedGpuMemory, r.dev.MemoryTotalBytes)
			if i := findGPUSample(samples[first:], int(p.Pid)); i >= 0 {
				s := &samples[first+i]
				s.MemoryBytes = maxKnownMemory(s.MemoryBytes, mem)
				continue
			}
			samples = append(samples, GPUSample{
				PID: int(p.Pid), GPU: r.dev.ID, GPUUUID: r.dev.UUID, Kind: l.kind, MemoryBytes: mem,
			})
		}
	}
	return samples
}

func validNVMLPID(pid uint32) bool { return pid != 0 && pid <= nvmlPIDMax }

// nvmlProcessMemory is the memory NVML gave for a process, or nil when NVML
// said "not available" or gave more than the device has (ABI garbage).
func nvmlProcessMemory(used uint64, deviceTotal *uint64) *uint64 {
	if used == nvmlValueNotAvailable || (deviceTotal != nil && used > *deviceTotal) {
		return nil
	}
	return &used
}

// maxKnownMemory merges the memory of two listings of one process: NVML reports
// a process's whole use on each, so the larger known value is the truth.
func maxKnownMemory(a, b *uint64) *uint64 {
	switch {
	case a == nil:
		return b
	case b == nil || *a >= *b:
		return a
	}
	return b
}

func findGPUSample(samples []GPUSample, pid int) int {
	for i := range samples {
		if samples[i].PID == pid {
			return i
		}
	}
	return -1
}

// readUtilisation fills SMUtil of samples from NVML's per-process samples
// newer than the device's last seen timestamp, and moves that timestamp to
// the newest sample kept. Samples that cannot be true (not newer than
// last seen, in the future, over 100 %) are dropped.
func (n *NVML) readUtilisation(r *nvmlDeviceRead, h nvml.Device, samples []GPUSample, nowMicros uint64) {
	limit := nowMicros + uint64(nvmlFutureSlack.Microseconds())
	lastSeen := r.dev.LastSampleTimestamp
	if lastSeen > limit {
		n.log.Warn("last utilisation timestamp is in the future; asking for every sample",
			"gpu", r.dev.ID, "last_sample_timestamp", lastSeen)
		lastSeen = 0
		r.dev.LastSampleTimestamp = 0
	}
	utils, ret := h.GetProcessUtilization(lastSeen)
	switch {
	case ret == nvml.SUCCESS:
	case ret == nvml.ERROR_NOT_SUPPORTED, ret == nvml.ERROR_NOT_FOUND:
		return // the device cannot say, or has no sample newer than lastSeen
	case ret == nvml.ERROR_INSUFFICIENT_SIZE && len(utils) == 0:
		// go-nvml returns the size probe's answer when the count is zero.
		return
	default:
		r.fail("read process utilisation", ret)
		return
	}
	if len(utils) > nvmlMaxList {
		utils = utils[:nvmlMaxList]
	}
	newest := lastSeen
	best := map[uint32]nvml.ProcessUtilizationSample{}
	for _, u := range utils {
		if u.TimeStamp <= lastSeen || u.TimeStamp > limit || u.SmUtil > 100 || !validNVMLPID(u.Pid) {
			continue
		}
		if b, ok := best[u.Pid]; !ok || u.TimeStamp > b.TimeStamp {
			best[u.Pid] = u
		}
		newest = max(newest, u.TimeStamp)
	}
	r.dev.LastSampleTimestamp = newest
	for i := range samples {
		if u, ok := best[uint32(samples[i].PID)]; ok {
			sm := u.SmUtil
			samples[i].SMUtil = &sm
		}
	}
}

// readAccounting reads the GPU's accounting mode and, where it is on, the
// processes its records show ended after the last scan's newest: each
// becomes an AccountingRecord, and the newest end the next scan's start.
// A process still running is the process lists' to report. Accounting is a
// view into the past: a failing call costs its records, never the device.
func (n *NVML) readAccounting(r *nvmlDeviceRead, h nvml.Device, nowMicros uint64) {
	mode, ret := h.GetAccountingMode()
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_NOT_SUPPORTED:
		return
	default:
		n.log.Debug("cannot read accounting mode", "gpu", r.dev.ID, "err", ret)
		return
	}
	on := mode == nvml.FEATURE_ENABLED
	r.dev.AccountingMode = &on
	if !on {
		return
	}
	pids, ret := h.GetAccountingPids()
	if ret != nvml.SUCCESS {
		n.log.Debug("cannot list accounting records", "gpu", r.dev.ID, "err", ret)
		return
	}
	if len(pids) > nvmlMaxList {
		pids = pids[:nvmlMaxList]
	}
	limit := nowMicros + uint64(nvmlFutureSlack.Microseconds())
	since, newest := r.dev.LastAccountingTimestamp, r.dev.LastAccountingTimestamp
	if since > limit {
		n.log.Warn("last accounting timestamp is in the future; reading every record", "gpu", r.dev.ID, "last_accounting_timestamp", since)
		since, newest = 0, 0
	}
	for _, pid := range pids {
		if pid <= 0 || !validNVMLPID(uint32(pid)) {
			continue
		}
		st, ret := h.GetAccountingStats(uint32(pid))
		if ret != nvml.SUCCESS || st.IsRunning != 0 || st.StartTime == 0 {
			continue
		}
		end := st.StartTime + st.Time*1000 // Time is in ms, StartTime in µs
		if end <= since || end > limit || end < st.StartTime {
			continue
		}
		newest = max(newest, end)
		rec := AccountingRecord{
			GPU: r.dev.ID, UUID: r.dev.UUID, PID: pid,
			StartedAt: time.UnixMicro(int64(st.StartTime)).UTC(), Duration: time.Duration(st.Time) * time.Millisecond,
			MaxMemoryBytes: nvmlProcessMemory(st.MaxMemoryUsage, r.dev.MemoryTotalBytes),
		}
		if st.GpuUtilization <= 100 {
			u := st.GpuUtilization
			rec.GPUUtilPercent = &u
		}
		r.read.Accounting = append(r.read.Accounting, rec)
	}
	r.dev.LastAccountingTimestamp = newest
}

// AccountingWarning says which GPUs keep no accounting records, and what
// that leaves unseen; "" when every GPU that can keep them does.
func AccountingWarning(gpus []inventory.GPUDevice) string {
	var off []string
	for _, g := range gpus {
		if g.AccountingMode != nil && !*g.AccountingMode {
			off = append(off, g.ID)
		}
	}
	if len(off) == 0 {
		return ""
	}
	return "accounting mode is off on GPU " + strings.Join(off, ", ") +
		": a process that starts and ends between two scans leaves no trace (nvidia-smi -am 1 turns it on)"
}
