package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// fakeProc is the fake /proc tree of pkg/detect's tests: 100 a user's
// training run (uid 1000), 101 a process in Docker container dockerID
// (NSpid 7), 102 root with loginuid 1000, 103 and 104 other users'.
const fakeProc = "../detect/testdata/proc-a"

const dockerID = "9c1f3b5e7a2d4f6081b3c5d7e9fa0b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a"

func readProc(t *testing.T, pid int) detect.ProcessInfo {
	t.Helper()
	info, err := detect.NewProcfs(fakeProc).Process(pid)
	if err != nil {
		t.Fatalf("read fake process %d: %v", pid, err)
	}
	return info
}

// owners attributes by uid alone, and records whom it was asked about.
type owners struct{ asked []int }

func (o *owners) owner(p detect.ProcessInfo) attribution.Result {
	o.asked = append(o.asked, p.PID)
	return attribution.Result{User: fmt.Sprintf("user%d", p.UID), Source: attribution.SourceProcessRealUID}
}

func mem(n uint64) *uint64 { return &n }

func use(pid int, kinds []string, gpus map[string]*uint64) *detect.GPUUse {
	return &detect.GPUUse{PID: pid, Memory: gpus, Kinds: kinds}
}

func TestPlaceProcessInListedContainer(t *testing.T) {
	listed := []inventory.Container{
		{ID: dockerID, Name: "train", Type: inventory.TypeRawDocker, Status: "running", User: "alice",
			GPUProcesses: []inventory.GPUProcess{{PID: 1, GPU: "5"}}},
		{ID: strings.Repeat("a", 64), Name: "other", Type: inventory.TypeRawDocker, Status: "running"},
	}
	before := slices.Clone(listed[0].GPUProcesses)
	var o owners
	got := Place(listed, true, []GPUProcess{{
		Use:  use(101, []string{inventory.KindCompute}, map[string]*uint64{"0": mem(1 << 30), "3": nil}),
		Info: readProc(t, 101),
	}}, o.owner)

	if len(got.Containers) != 2 || len(got.Processes) != 0 {
		t.Fatalf("placed %d containers, %d host processes; want the 2 listed, none", len(got.Containers), len(got.Processes))
	}
	c := got.Containers[0]
	want := []inventory.GPUProcess{
		{PID: 101, NSPID: 7, GPU: "0", MemoryBytes: mem(1 << 30), Kind: inventory.KindCompute, Command: "python -m torch.distributed.run"},
		{PID: 101, NSPID: 7, GPU: "3", Kind: inventory.KindCompute, Command: "python -m torch.distributed.run"},
	}
	if fmt.Sprint(gpuProcs(c.GPUProcesses)) != fmt.Sprint(gpuProcs(want)) {
		t.Errorf("container's GPU processes = %v\nwant %v", gpuProcs(c.GPUProcesses), gpuProcs(want))
	}
	if c.User != "alice" || c.Type != inventory.TypeRawDocker {
		t.Errorf("a listed container's user or type changed: %q %q", c.User, c.Type)
	}
	if len(got.Containers[1].GPUProcesses) != 0 {
		t.Errorf("a container without GPU processes got %v", got.Containers[1].GPUProcesses)
	}
	if len(o.asked) != 0 {
		t.Errorf("attributed processes %v of a container Docker knows: its own attribution stands", o.asked)
	}
	if fmt.Sprint(listed[0].GPUProcesses) != fmt.Sprint(before) {
		t.Errorf("Place modified its input: %v", listed[0].GPUProcesses)
	}
}

// gpuProcs shows GPU processes with their memory dereferenced.
func gpuProcs(ps []inventory.GPUProcess) []string {
	var out []string
	for _, p := range ps {
		m := "nil"
		if p.MemoryBytes != nil {
			m = fmt.Sprint(*p.MemoryBytes)
		}
		out = append(out, fmt.Sprintf("%d/%d on %s mem=%s kind=%s cmd=%q", p.PID, p.NSPID, p.GPU, m, p.Kind, p.Command))
	}
	return out
}

func TestPlaceOtherRuntimeContainer(t *testing.T) {
	info := readProc(t, 101)
	var o owners
	procs := []GPUProcess{
		{Use: use(101, []string{inventory.KindCompute}, map[string]*uint64{"1": mem(5)}), Info: info},
		// A second process of the same container: one container, two
		// processes.
		{Use: use(201, []string{inventory.KindDevice}, map[string]*uint64{"2": nil}), Info: withPID(info, 201)},
	}
	got := Place(nil, true, procs, o.owner)
	if len(got.Containers) != 1 {
		t.Fatalf("placed %d containers; want one unknown container for both processes", len(got.Containers))
	}
	c := got.Containers[0]
	if c.ID != dockerID || c.Type != inventory.TypeUnknown || c.Runtime != detect.RuntimeDocker ||
		c.Name != "docker-"+dockerID[:12] || c.Status != "running" || !c.CreatedAt.Equal(info.StartedAt) {
		t.Errorf("unknown container = id %s type %s runtime %s name %s status %s created %v", c.ID[:12], c.Type, c.Runtime, c.Name, c.Status, c.CreatedAt)
	}
	if c.User != "user0" || c.UserSource != attribution.SourceProcessRealUID {
		t.Errorf("unknown container's user = %q (%s); want its process's owner", c.User, c.UserSource)
	}
	if len(c.GPUProcesses) != 2 || c.GPUProcesses[0].GPU != "1" || c.GPUProcesses[1].PID != 201 || c.GPUProcesses[1].Kind != inventory.KindDevice {
		t.Errorf("GPU processes = %v", gpuProcs(c.GPUProcesses))
	}
	if !slices.Equal(o.asked, []int{101}) {
		t.Errorf("asked the owner of %v; want only the first process of the new container", o.asked)
	}
}

func withPID(p detect.ProcessInfo, pid int) detect.ProcessInfo {
	p.PID, p.NSPID = pid, pid
	return p
}

func TestPlaceHostAndSystemProcesses(t *testing.T) {
	persistenced := func(uid int) detect.ProcessInfo {
		return detect.ProcessInfo{PID: 300 + uid, NSPID: 300 + uid, UID: uid, Comm: "nvidia-persiste",
			Cmdline: "/usr/bin/nvidia-persistenced --user nvidia-persistenced"}
	}
	tests := []struct {
		name     string
		info     detect.ProcessInfo
		wantType string
		wantUser string
	}{
		{"a user's process", readProc(t, 100), inventory.TypeHostProcess, "user1000"},
		{"root's process", readProc(t, 102), inventory.TypeHostProcess, "user0"},
		{"a hostile command line", readProc(t, 104), inventory.TypeHostProcess, "user1002"},
		{"a driver daemon of a system account", persistenced(0), inventory.TypeSystem, "user0"},
		{"a system account just under the first login uid", persistenced(firstUserUID - 1), inventory.TypeSystem, fmt.Sprintf("user%d", firstUserUID-1)},
		{"a user's process with a system name", persistenced(firstUserUID), inventory.TypeHostProcess, fmt.Sprintf("user%d", firstUserUID)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o owners
			sm := uint32(40)
			u := use(tc.info.PID, []string{inventory.KindCompute, inventory.KindGraphics}, map[string]*uint64{"0": mem(2), "1:1": mem(3)})
			u.SMUtil = &sm
			got := Place(nil, true, []GPUProcess{{Use: u, Info: tc.info}}, o.owner)
			if len(got.Containers) != 0 || len(got.Processes) != 1 {
				t.Fatalf("placed %d containers, %d processes; want one host process", len(got.Containers), len(got.Processes))
			}
			p := got.Processes[0]
			if p.Type != tc.wantType || p.User != tc.wantUser || p.UserSource != attribution.SourceProcessRealUID {
				t.Errorf("type %s user %s (%s); want %s %s", p.Type, p.User, p.UserSource, tc.wantType, tc.wantUser)
			}
			if p.PID != tc.info.PID || p.StartTicks != tc.info.StartTicks || p.Command != tc.info.Cmdline || !p.StartedAt.Equal(tc.info.StartedAt) {
				t.Errorf("process identity = %d/%d %q %v; want %d/%d %q %v", p.PID, p.StartTicks, p.Command, p.StartedAt,
					tc.info.PID, tc.info.StartTicks, tc.info.Cmdline, tc.info.StartedAt)
			}
			if !slices.Equal(p.GPUs, []string{"0", "1:1"}) || p.GPUMemoryBytes == nil || *p.GPUMemoryBytes != 5 ||
				!slices.Equal(p.Kinds, []string{inventory.KindCompute, inventory.KindGraphics}) || p.SMUtilPercent == nil || *p.SMUtilPercent != 40 {
				t.Errorf("GPU use = %v mem %v kinds %v sm %v", p.GPUs, p.GPUMemoryBytes, p.Kinds, p.SMUtilPercent)
			}
		})
	}
}

// TestPlaceDockerDown: while Docker is down which containers exist is
// unknown, so a process in a container is placed nowhere (the last
// inventory's containers stand, stale), while host processes still are.
func TestPlaceDockerDown(t *testing.T) {
	var o owners
	got := Place(nil, false, []GPUProcess{
		{Use: use(101, nil, map[string]*uint64{"0": nil}), Info: readProc(t, 101)},
		{Use: use(100, nil, map[string]*uint64{"1": nil}), Info: readProc(t, 100)},
	}, o.owner)
	if len(got.Containers) != 0 {
		t.Errorf("placed containers %v while Docker was down", got.Containers)
	}
	if len(got.Processes) != 1 || got.Processes[0].PID != 100 {
		t.Errorf("host processes = %+v; want pid 100 alone", got.Processes)
	}
}

// TestPlaceMinorNumbers: /dev/nvidiaN names the GPU whose minor number is
// N, which need not be its index; NVML's mapping serves when it answers,
// the last inventory's while it is down, and for a GPU neither knows the
// device node stands, never guessed to be index N.
func TestPlaceMinorNumbers(t *testing.T) {
	minor := func(n int) *int { return &n }
	// Index 0 has minor 3, index 1 minor 0; a MIG instance has none.
	gpus := []inventory.GPUDevice{
		{ID: "0", Index: 0, MinorNumber: minor(3)}, {ID: "1", Index: 1, MinorNumber: minor(0)},
		{ID: "1:0", Index: 1, Parent: "1"},
	}
	prev := &inventory.Inventory{GPUs: gpus}
	holders := map[int][]string{100: {"3"}, 102: {"0", "7"}, 103: {""}}
	tests := []struct {
		name     string
		nvmlOK   bool
		observed []inventory.GPUDevice
		prev     *inventory.Inventory
		want     map[int][]string
	}{
		{"NVML answers", true, gpus, nil, map[int][]string{100: {"0"}, 102: {"/dev/nvidia7", "1"}, 103: {}}},
		{"NVML down, the last inventory's mapping", false, nil, prev, map[int][]string{100: {"0"}, 102: {"/dev/nvidia7", "1"}, 103: {}}},
		{"NVML down, never answered", false, nil, nil, map[int][]string{100: {"/dev/nvidia3"}, 102: {"/dev/nvidia0", "/dev/nvidia7"}, 103: {}}},
		{"NVML answers, the old mapping ignored", true, []inventory.GPUDevice{{ID: "0", MinorNumber: minor(0)}}, prev,
			map[int][]string{100: {"/dev/nvidia3"}, 102: {"/dev/nvidia7", "0"}, 103: {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uses := detect.MergeGPUUse(nil, holders, inventory.NewGPUIndex(KnownGPUs(tc.nvmlOK, tc.observed, tc.prev)))
			got := map[int][]string{}
			for _, u := range uses {
				got[u.PID] = u.GPUs()
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("GPUs by pid = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestUnreadGPUs(t *testing.T) {
	prev := &inventory.Inventory{GPUs: []inventory.GPUDevice{{ID: "0"}, {ID: "1"}, {ID: "1:0"}}}
	tests := []struct {
		name     string
		nvmlOK   bool
		observed []inventory.GPUDevice
		prev     *inventory.Inventory
		want     []string
	}{
		{"NVML down: every GPU it last reported", false, nil, prev, []string{"0", "1", "1:0"}},
		{"NVML down on a first scan", false, nil, nil, nil},
		{"NVML up, all read", true, []inventory.GPUDevice{{ID: "0"}, {ID: "1"}}, prev, nil},
		{"NVML up, one lost and one failing", true, []inventory.GPUDevice{{ID: "0", Lost: true}, {ID: "1"}, {ID: "1:0", Error: "ERROR_UNKNOWN"}}, prev, []string{"0", "1:0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnreadGPUs(tc.nvmlOK, tc.observed, tc.prev); !slices.Equal(got, tc.want) {
				t.Errorf("UnreadGPUs = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestLastGPUs(t *testing.T) {
	prev := &inventory.Inventory{GPUs: []inventory.GPUDevice{{UUID: "GPU-a", LastSampleTimestamp: 7, LastAccountingTimestamp: 9}, {UUID: "GPU-b"}}}
	if got := LastGPUs(prev); len(got) != 2 || got["GPU-a"].LastSampleTimestamp != 7 || got["GPU-a"].LastAccountingTimestamp != 9 || got["GPU-b"].LastSampleTimestamp != 0 {
		t.Errorf("LastGPUs = %v", got)
	}
	if got := LastGPUs(nil); len(got) != 0 {
		t.Errorf("LastGPUs(nil) = %v", got)
	}
}

func TestBriefProcesses(t *testing.T) {
	last := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	mem, util := uint64(3<<30), uint32(87)
	prev := &inventory.Inventory{
		Scan:             inventory.ScanInfo{Time: last},
		HostProcesses:    []inventory.HostProcess{{PID: 10}},
		PendingProcesses: []inventory.HostProcess{{PID: 11}},
		Containers:       []inventory.Container{{GPUProcesses: []inventory.GPUProcess{{PID: 12}}}},
	}
	rec := func(pid int, start time.Time) detect.AccountingRecord {
		return detect.AccountingRecord{GPU: "1", UUID: "GPU-b", PID: pid, StartedAt: start, Duration: 20 * time.Second,
			MaxMemoryBytes: &mem, GPUUtilPercent: &util}
	}
	records := []detect.AccountingRecord{
		rec(20, last.Add(3*time.Second)), // brief
		rec(21, last.Add(-time.Second)),  // running at the last scan: it saw it
		rec(10, last.Add(time.Second)),   // the last scan's host process
		rec(11, last.Add(time.Second)),   // its pending one
		rec(12, last.Add(time.Second)),   // a container's
		rec(22, last),                    // started as the last scan began
	}
	got := BriefProcesses(records, prev)
	want := []inventory.BriefProcess{{GPU: "1", GPUUUID: "GPU-b", PID: 20, StartedAt: last.Add(3 * time.Second),
		Duration: 20 * time.Second, MaxMemoryBytes: &mem, GPUUtilPercent: &util, User: "unknown"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BriefProcesses = %+v; want %+v", got, want)
	}
	if got := BriefProcesses(records, nil); got != nil {
		t.Errorf("BriefProcesses without a last scan = %+v; want none", got)
	}
}

func TestScanWarning(t *testing.T) {
	denied := fmt.Errorf("read open files of 3 processes: %w", &fs.PathError{Op: "open", Path: "/proc/9/fd", Err: fs.ErrPermission})
	tests := []struct {
		name   string
		err    error
		ptrace bool
		want   string
	}{
		{"saw everything", nil, false, ""},
		{"denied without CAP_SYS_PTRACE", denied, false, "CAP_SYS_PTRACE"},
		{"denied with CAP_SYS_PTRACE: closed even to root", denied, true, ""},
		{"another failure", errors.New("read open files: I/O error"), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ScanWarning(tc.err, tc.ptrace)
			if tc.want == "" && got != "" || tc.want != "" && (!strings.Contains(got, tc.want) || !strings.Contains(got, "3 processes")) {
				t.Errorf("ScanWarning = %q; want one naming %q", got, tc.want)
			}
		})
	}
}
