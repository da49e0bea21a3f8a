//go:build nvmlmock

package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// This file exists only in binaries built with -tags nvmlmock: the
// integration suite's ds01-scan, which must see chosen GPU processes on a
// machine without a GPU. Production binaries never contain it.

// mockNVMLFile is the JSON file NVMLFromMockFile reads:
//
//	{
//	  "server": "dgxa100",           // or "dgxh100"; default dgxa100
//	  "gpus": 8,                     // default 8; 0 means NVML lists none
//	  "init_error": "DRIVER_NOT_LOADED",
//	  "persistence_mode": true,      // default true
//	  "lost": [3],                   // GPUs answering GPU_IS_LOST
//	  "minor_numbers": [1, 0, 2],    // /dev/nvidiaN of each GPU; default its index
//	  "unlisted_memory_bytes": {"1": 21474836480}, // used, held by no listed process
//	  "mig": {"1": [{"gi": 1, "ci": 0}, {"gi": 2}]},
//	  "accounting_off": [2],         // GPUs whose accounting mode is off
//	  "accounting": [                // ended processes the accounting records hold
//	    {"gpu": 1, "pid": 4321, "started_at": "2026-01-30T14:30:05Z", "duration_ms": 20000,
//	     "max_memory_bytes": 3221225472, "gpu_util": 80}
//	  ],
//	  "processes": [
//	    {"gpu": 0, "pid": 1234, "memory_bytes": 4294967296, "kind": "compute", "sm_util": 40},
//	    {"gpu": "1:2", "pid": 1300}
//	  ]
//	}
//
// A process's gpu is an index, or "<index>:<n>" for the n-th MIG instance
// listed under "mig" (its MIG device index, as ds01 names it); its kind is compute (default), graphics or mps; an absent
// memory_bytes is NVML's "not available". PIDs 0 and 4294967295 are
// allowed, to stand for what a driver/library mismatch reports. UUIDs are
// fixed by position, so separate scans see the same GPUs.
type mockNVMLFile struct {
	Server          string                        `json:"server"`
	GPUs            *int                          `json:"gpus"`
	InitError       string                        `json:"init_error"`
	PersistenceMode *bool                         `json:"persistence_mode"`
	Lost            []int                         `json:"lost"`
	MinorNumbers    []int                         `json:"minor_numbers"`
	Unlisted        map[string]uint64             `json:"unlisted_memory_bytes"`
	MIG             map[string][]mockNVMLInstance `json:"mig"`
	Processes       []mockNVMLProcess             `json:"processes"`
	AccountingOff   []int                         `json:"accounting_off"`
	Accounting      []mockAccountingRecord        `json:"accounting"`
}

type mockAccountingRecord struct {
	GPU            int       `json:"gpu"`
	PID            uint32    `json:"pid"`
	StartedAt      time.Time `json:"started_at"`
	DurationMS     uint64    `json:"duration_ms"`
	MaxMemoryBytes uint64    `json:"max_memory_bytes"`
	GPUUtil        uint32    `json:"gpu_util"`
}

type mockNVMLInstance struct {
	GI          int     `json:"gi"`
	CI          int     `json:"ci"`
	Profile     string  `json:"profile"`
	MemoryBytes *uint64 `json:"memory_bytes"`
}

type mockNVMLProcess struct {
	GPU         mockGPURef `json:"gpu"`
	PID         uint32     `json:"pid"`
	MemoryBytes *uint64    `json:"memory_bytes"`
	Kind        string     `json:"kind"`
	SMUtil      *uint32    `json:"sm_util"`
}

// mockGPURef is a device as the file names it: 0, "0" or "0:1".
type mockGPURef string

func (r *mockGPURef) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*r = mockGPURef(strconv.Itoa(n))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("gpu must be an index or \"<index>:<gi>\", not %s", b)
	}
	*r = mockGPURef(s)
	return nil
}

// mockInitErrors are the Init failures a mock file may ask for.
var mockInitErrors = map[string]nvml.Return{
	"LIBRARY_NOT_FOUND":       nvml.ERROR_LIBRARY_NOT_FOUND,
	"DRIVER_NOT_LOADED":       nvml.ERROR_DRIVER_NOT_LOADED,
	"LIB_RM_VERSION_MISMATCH": nvml.ERROR_LIB_RM_VERSION_MISMATCH,
	"NO_PERMISSION":           nvml.ERROR_NO_PERMISSION,
	"UNKNOWN":                 nvml.ERROR_UNKNOWN,
}

// mockServers are the go-nvml mock servers a mock file may name.
var mockServers = map[string]gpus.Config{
	"dgxa100": gpus.A100_SXM4_40GB,
	"dgxh100": gpus.H100_SXM5_80GB,
}

const (
	mockMaxGPUs         = 64
	mockMaxMIGInstances = 7
	mockMIGSlots        = 7
)

// NVMLFromMockFile returns a go-nvml mock server (DGX A100 unless the file
// names another) whose devices report exactly the processes the JSON file
// at path lists, and whose Init fails with init_error when that is set. See
// mockNVMLFile for the format.
func NVMLFromMockFile(path string) (nvml.Interface, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read NVML mock file: %w", err)
	}
	var f mockNVMLFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse NVML mock file %s: %w", path, err)
	}
	s, err := f.build()
	if err != nil {
		return nil, fmt.Errorf("NVML mock file %s: %w", path, err)
	}
	return s, nil
}

// mockDeviceData is what one mock device (GPU or MIG instance) reports.
type mockDeviceData struct {
	lists map[string][]nvml.ProcessInfo // kind → list
	util  []mockNVMLProcess             // processes with sm_util
	used  uint64
}

func (f *mockNVMLFile) build() (*server.Server, error) {
	name := f.Server
	if name == "" {
		name = "dgxa100"
	}
	config, ok := mockServers[name]
	if !ok {
		return nil, fmt.Errorf("unknown server %q (dgxa100 or dgxh100)", f.Server)
	}
	count := 8
	if f.GPUs != nil {
		count = *f.GPUs
	}
	if count < 0 || count > mockMaxGPUs {
		return nil, fmt.Errorf("gpus %d: want 0 to %d", count, mockMaxGPUs)
	}
	var initRet nvml.Return = nvml.SUCCESS
	if f.InitError != "" {
		ret, ok := mockInitErrors[strings.TrimPrefix(f.InitError, "ERROR_")]
		if !ok {
			return nil, fmt.Errorf("unknown init_error %q", f.InitError)
		}
		initRet = ret
	}
	persistence := nvml.FEATURE_ENABLED
	if f.PersistenceMode != nil && !*f.PersistenceMode {
		persistence = nvml.FEATURE_DISABLED
	}

	// Devices by ds01 ID: "0" for a GPU, "0:1" for a MIG instance.
	data := map[string]*mockDeviceData{}
	for i := range count {
		data[strconv.Itoa(i)] = &mockDeviceData{lists: map[string][]nvml.ProcessInfo{}}
	}
	for key, instances := range f.MIG {
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= count {
			return nil, fmt.Errorf("mig: no GPU %q", key)
		}
		if len(instances) > mockMaxMIGInstances {
			return nil, fmt.Errorf("mig: GPU %d has %d instances, at most %d", i, len(instances), mockMaxMIGInstances)
		}
		seen := map[[2]int]bool{}
		for n, in := range instances {
			if key := [2]int{in.GI, in.CI}; seen[key] || in.GI < 0 || in.CI < 0 {
				return nil, fmt.Errorf("mig: GPU %d: GPU instance %d, compute instance %d given twice or negative", i, in.GI, in.CI)
			} else {
				seen[key] = true
			}
			data[fmt.Sprintf("%d:%d", i, n)] = &mockDeviceData{lists: map[string][]nvml.ProcessInfo{}}
		}
	}
	for _, p := range f.Processes {
		d, ok := data[string(p.GPU)]
		if !ok {
			return nil, fmt.Errorf("process %d: no device %q", p.PID, p.GPU)
		}
		if _, mig := f.MIG[string(p.GPU)]; mig {
			return nil, fmt.Errorf("process %d: GPU %s is in MIG mode; name one of its instances (\"%s:<n>\")", p.PID, p.GPU, p.GPU)
		}
		kind := p.Kind
		if kind == "" {
			kind = "compute"
		}
		if kind != "compute" && kind != "graphics" && kind != "mps" {
			return nil, fmt.Errorf("process %d: kind %q is not compute, graphics or mps", p.PID, p.Kind)
		}
		mem := nvmlValueNotAvailable
		if p.MemoryBytes != nil {
			mem = *p.MemoryBytes
			d.used += mem
		}
		d.lists[kind] = append(d.lists[kind], nvml.ProcessInfo{Pid: p.PID, UsedGpuMemory: mem})
		if p.SMUtil != nil {
			d.util = append(d.util, p)
		}
	}
	for key, bytes := range f.Unlisted {
		d, ok := data[key]
		if !ok {
			return nil, fmt.Errorf("unlisted_memory_bytes: no device %q", key)
		}
		d.used += bytes
	}
	if f.MinorNumbers != nil && len(f.MinorNumbers) != count {
		return nil, fmt.Errorf("minor_numbers: %d given for %d GPUs", len(f.MinorNumbers), count)
	}
	minors := map[int]bool{}
	for _, m := range f.MinorNumbers {
		if m < 0 || minors[m] {
			return nil, fmt.Errorf("minor_numbers: %d is negative or given twice", m)
		}
		minors[m] = true
	}
	accounting, err := f.accountingByGPU(count)
	if err != nil {
		return nil, err
	}
	lost := map[int]bool{}
	for _, i := range f.Lost {
		if i < 0 || i >= count {
			return nil, fmt.Errorf("lost: no GPU %d", i)
		}
		lost[i] = true
	}

	s := server.NewServerWithGPUs("550.54.15", "12.550.54.15", 12040, gpus.Multiple(count, config)...)
	s.InitFunc = func() nvml.Return { return initRet }
	for i, dev := range s.Devices {
		d := dev.(*server.Device)
		d.UUID = fmt.Sprintf("GPU-d5010000-0000-4000-8000-%012d", i)
		if f.MinorNumbers != nil {
			d.Minor = f.MinorNumbers[i]
		}
		d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return persistence, nvml.SUCCESS }
		setMockMemoryV2(d)
		own := data[strconv.Itoa(i)]
		instances := f.MIG[strconv.Itoa(i)]
		if instances == nil {
			setMockProcesses(d, own)
			d.MemoryInfo.Used = min(own.used, d.MemoryInfo.Total)
		} else {
			setMockMIG(d, i, config, instances, data)
		}
		setMockAccounting(d, accounting[i])
		if lost[i] {
			setMockLost(d)
		}
	}
	return s, nil
}

// mockAccounting is what one GPU's accounting reports.
type mockAccounting struct {
	off     bool
	records map[uint32]nvml.AccountingStats
	pids    []int
}

// accountingByGPU checks the file's accounting and sorts it by GPU.
func (f *mockNVMLFile) accountingByGPU(count int) (map[int]*mockAccounting, error) {
	out := map[int]*mockAccounting{}
	for i := range count {
		out[i] = &mockAccounting{records: map[uint32]nvml.AccountingStats{}}
	}
	for _, i := range f.AccountingOff {
		a, ok := out[i]
		if !ok {
			return nil, fmt.Errorf("accounting_off: no GPU %d", i)
		}
		a.off = true
	}
	for _, r := range f.Accounting {
		a, ok := out[r.GPU]
		if !ok || a.off {
			return nil, fmt.Errorf("accounting: GPU %d is none, or its accounting is off", r.GPU)
		}
		if r.StartedAt.IsZero() {
			return nil, fmt.Errorf("accounting: process %d has no started_at", r.PID)
		}
		a.records[r.PID] = nvml.AccountingStats{StartTime: uint64(r.StartedAt.UnixMicro()), Time: r.DurationMS,
			MaxMemoryUsage: r.MaxMemoryBytes, GpuUtilization: r.GPUUtil}
		a.pids = append(a.pids, int(r.PID))
	}
	return out, nil
}

// setMockAccounting makes d report a's accounting mode and records.
func setMockAccounting(d *server.Device, a *mockAccounting) {
	d.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) {
		if a.off {
			return nvml.FEATURE_DISABLED, nvml.SUCCESS
		}
		return nvml.FEATURE_ENABLED, nvml.SUCCESS
	}
	d.GetAccountingPidsFunc = func() ([]int, nvml.Return) { return a.pids, nvml.SUCCESS }
	d.GetAccountingStatsFunc = func(pid uint32) (nvml.AccountingStats, nvml.Return) {
		st, ok := a.records[pid]
		if !ok {
			return nvml.AccountingStats{}, nvml.ERROR_NOT_FOUND
		}
		return st, nvml.SUCCESS
	}
}

// setMockProcesses makes d report the processes in data, and utilisation
// samples stamped with the time of the call for those with sm_util.
func setMockProcesses(d *server.Device, data *mockDeviceData) {
	list := func(kind string) func() ([]nvml.ProcessInfo, nvml.Return) {
		return func() ([]nvml.ProcessInfo, nvml.Return) { return data.lists[kind], nvml.SUCCESS }
	}
	d.GetComputeRunningProcessesFunc = list("compute")
	d.GetGraphicsRunningProcessesFunc = list("graphics")
	d.GetMPSComputeRunningProcessesFunc = list("mps")
	d.GetProcessUtilizationFunc = func(lastSeen uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		ts := uint64(time.Now().UnixMicro())
		var out []nvml.ProcessUtilizationSample
		for _, p := range data.util {
			if ts > lastSeen {
				out = append(out, nvml.ProcessUtilizationSample{Pid: p.PID, TimeStamp: ts, SmUtil: *p.SMUtil})
			}
		}
		if len(out) == 0 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return out, nvml.SUCCESS
	}
}

// setMockMIG puts parent (GPU index) in MIG mode with one MIG device handle
// per instance. Like NVML for root, the parent's own lists are the
// aggregate of its instances'.
func setMockMIG(parent *server.Device, index int, config gpus.Config, instances []mockNVMLInstance, data map[string]*mockDeviceData) {
	parent.MigMode = nvml.DEVICE_MIG_ENABLE
	aggregate := &mockDeviceData{lists: map[string][]nvml.ProcessInfo{}}
	handles := make([]nvml.Device, len(instances))
	for slot, in := range instances {
		own := data[fmt.Sprintf("%d:%d", index, slot)]
		for kind, l := range own.lists {
			// NVML gives a MIG process its instance IDs.
			for i := range l {
				l[i].GpuInstanceId, l[i].ComputeInstanceId = uint32(in.GI), uint32(in.CI)
			}
			aggregate.lists[kind] = append(aggregate.lists[kind], l...)
		}
		aggregate.used += own.used

		m := server.NewDeviceFromConfig(config, index)
		m.UUID = fmt.Sprintf("MIG-d5010000-%04d-4000-8000-%012d", index, slot)
		profile := in.Profile
		if profile == "" {
			profile = "1g.5gb"
		}
		total := uint64(5) << 30
		if in.MemoryBytes != nil {
			total = *in.MemoryBytes
		}
		m.MemoryInfo = nvml.Memory{Total: total, Used: min(own.used, total)}
		m.GetNameFunc = func() (string, nvml.Return) { return config.Name + " MIG " + profile, nvml.SUCCESS }
		gi, ci := in.GI, in.CI
		m.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return gi, nvml.SUCCESS }
		m.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return ci, nvml.SUCCESS }
		m.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
		m.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		m.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
		setMockProcesses(m, own)
		setMockMemoryV2(m)
		m.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
			return nil, nvml.ERROR_NOT_SUPPORTED
		}
		handles[slot] = m
	}
	setMockProcesses(parent, aggregate)
	parent.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	parent.MemoryInfo.Used = min(aggregate.used, parent.MemoryInfo.Total)
	parent.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return mockMIGSlots, nvml.SUCCESS }
	parent.GetMigDeviceHandleByIndexFunc = func(slot int) (nvml.Device, nvml.Return) {
		if slot < 0 || slot >= mockMIGSlots {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		if slot >= len(handles) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return handles[slot], nvml.SUCCESS
	}
}

// mockReservedBytes is what the mock driver reserves on each device: in
// its v2 memory figures, used includes it, as NVML's header says.
const mockReservedBytes = 512 << 20

// setMockMemoryV2 answers the v2 memory call from d's first one (lost when
// it is lost), with mockReservedBytes reserved and counted in used.
func setMockMemoryV2(d *server.Device) {
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		m, ret := d.GetMemoryInfo()
		reserved := min(uint64(mockReservedBytes), m.Total-m.Used)
		return nvml.Memory_v2{Total: m.Total, Reserved: reserved, Used: m.Used + reserved, Free: m.Total - m.Used - reserved}, ret
	}
}

// setMockLost makes every call Observe makes on d answer GPU_IS_LOST.
func setMockLost(d *server.Device) {
	const lost = nvml.ERROR_GPU_IS_LOST
	d.GetUUIDFunc = func() (string, nvml.Return) { return "", lost }
	d.GetNameFunc = func() (string, nvml.Return) { return "", lost }
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, lost }
	d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return 0, lost }
	d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, lost }
	none := func() ([]nvml.ProcessInfo, nvml.Return) { return nil, lost }
	d.GetComputeRunningProcessesFunc = none
	d.GetGraphicsRunningProcessesFunc = none
	d.GetMPSComputeRunningProcessesFunc = none
	d.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) { return nil, lost }
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 0, lost }
	d.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) { return 0, lost }
}
