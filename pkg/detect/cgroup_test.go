package detect

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Container IDs of the fake trees under testdata/cgroup*.
const (
	cgIDA = "e46e438df8962a47173a07e8e82fae102768e3793ace0e89b113f8772d6faf87"
	cgIDB = "534784fce534e0feec62261be9bac5c5b3624cbe07d612f0536b6254a59526cf"
	cgIDC = "fe4a5b928c15fee6c7374d6ab172235e216963c731bf27ec3d9499a4fa630fca"
)

func TestParseCgroupFile(t *testing.T) {
	const id = cgIDA
	const podUID = "pod0a1b2c3d_4e5f_6789_abcd_ef0123456789"
	tests := []struct {
		name string
		data string
		want []CgroupLine
	}{
		{
			name: "v1 docker cgroupfs",
			data: "12:pids:/docker/" + id + "\n" +
				"4:cpu,cpuacct:/docker/" + id + "\n" +
				"1:name=systemd:/docker/" + id + "\n",
			want: []CgroupLine{
				{Hierarchy: 12, Controllers: []string{"pids"}, Path: "/docker/" + id},
				{Hierarchy: 4, Controllers: []string{"cpu", "cpuacct"}, Path: "/docker/" + id},
				{Hierarchy: 1, Controllers: []string{"name=systemd"}, Path: "/docker/" + id},
			},
		},
		{
			name: "v1 systemd driver",
			data: "10:memory:/system.slice/docker-" + id + ".scope\n" +
				"4:cpu,cpuacct:/system.slice/docker-" + id + ".scope\n",
			want: []CgroupLine{
				{Hierarchy: 10, Controllers: []string{"memory"}, Path: "/system.slice/docker-" + id + ".scope"},
				{Hierarchy: 4, Controllers: []string{"cpu", "cpuacct"}, Path: "/system.slice/docker-" + id + ".scope"},
			},
		},
		{
			name: "pure v2",
			data: "0::/system.slice/docker-" + id + ".scope\n",
			want: []CgroupLine{{Hierarchy: 0, Path: "/system.slice/docker-" + id + ".scope"}},
		},
		{
			name: "hybrid",
			data: "10:memory:/docker/" + id + "\n" +
				"1:name=systemd:/docker/" + id + "\n" +
				"0::/system.slice/containerd.service\n",
			want: []CgroupLine{
				{Hierarchy: 10, Controllers: []string{"memory"}, Path: "/docker/" + id},
				{Hierarchy: 1, Controllers: []string{"name=systemd"}, Path: "/docker/" + id},
				{Hierarchy: 0, Path: "/system.slice/containerd.service"},
			},
		},
		{
			name: "kubepods v1 and v2",
			data: "10:memory:/kubepods/burstable/" + podUID + "/" + id + "\n" +
				"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice/cri-containerd-" + id + ".scope\n",
			want: []CgroupLine{
				{Hierarchy: 10, Controllers: []string{"memory"}, Path: "/kubepods/burstable/" + podUID + "/" + id},
				{Hierarchy: 0, Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice/cri-containerd-" + id + ".scope"},
			},
		},
		{
			name: "libpod",
			data: "0::/machine.slice/libpod-" + id + ".scope/container\n",
			want: []CgroupLine{{Hierarchy: 0, Path: "/machine.slice/libpod-" + id + ".scope/container"}},
		},
		{
			name: "user session",
			data: "1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n" +
				"0::/user.slice/user-1000.slice/session-3.scope\n",
			want: []CgroupLine{
				{Hierarchy: 1, Controllers: []string{"name=systemd"}, Path: "/user.slice/user-1000.slice/session-3.scope"},
				{Hierarchy: 0, Path: "/user.slice/user-1000.slice/session-3.scope"},
			},
		},
		{
			name: "colon inside the path is kept",
			data: "0::/weird:name\n",
			want: []CgroupLine{{Hierarchy: 0, Path: "/weird:name"}},
		},
		{
			name: "malformed lines skipped",
			data: "garbage\n" +
				"\n" +
				"3:cpu\n" +
				"x:cpu:/a\n" +
				"3:cpu:relative/path\n" +
				"3:cpu:\n" +
				"2:cpuacct:/good\n",
			want: []CgroupLine{{Hierarchy: 2, Controllers: []string{"cpuacct"}, Path: "/good"}},
		},
		{
			name: "no trailing newline",
			data: "0::/",
			want: []CgroupLine{{Hierarchy: 0, Path: "/"}},
		},
		{name: "empty", data: "", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseCgroupFile([]byte(tc.data))
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseCgroupFile(%q) =\n %#v\nwant\n %#v", tc.data, got, tc.want)
			}
		})
	}
}

// TestParseCgroupFileRealProcess parses what this kernel writes for a live
// process: every line it writes must parse.
func TestParseCgroupFileRealProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cgroup"))
	if err != nil {
		t.Fatalf("read cgroup of pid %d: %v", cmd.Process.Pid, err)
	}
	got := ParseCgroupFile(data)
	var absolute int
	for _, l := range got {
		if strings.HasPrefix(l.Path, "/") {
			absolute++
		}
	}
	if absolute == 0 {
		t.Fatalf("ParseCgroupFile(%q) = %#v: no line with an absolute path", data, got)
	}
	var kernelLines int
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			kernelLines++
		}
	}
	if len(got) != kernelLines {
		t.Errorf("ParseCgroupFile(%q) kept %d lines, the kernel wrote %d", data, len(got), kernelLines)
	}
}

func TestCgroupStatsRead(t *testing.T) {
	tests := []struct {
		name string
		tree string
		pid  int
		id   string
		want ContainerStats
	}{
		// 104857600 usage - 4194304 total_inactive_file; the non-total
		// inactive_file line must not be the one subtracted.
		{"v1 cgroupfs", "cgroupv1", 100, cgIDA, ContainerStats{CPUUsageNS: 123456789, MemoryBytes: 100663296}},
		{"v1 without memory.stat keeps usage", "cgroupv1", 300, cgIDC, ContainerStats{CPUUsageNS: 5000, MemoryBytes: 7000}},
		// usage_usec 2500000; 52428800 memory.current - 1048576 inactive_file.
		{"v2 systemd driver", "cgroupv2", 100, cgIDA, ContainerStats{CPUUsageNS: 2500000000, MemoryBytes: 51380224}},
		// The v1 controllers are read; the decoys at the v2 location are not.
		{"hybrid reads v1 controllers", "cgrouphybrid", 100, cgIDA, ContainerStats{CPUUsageNS: 3000000000, MemoryBytes: 1048576}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewCgroupStats(NewProcfs(filepath.Join("testdata", tc.tree, "proc")), filepath.Join("testdata", tc.tree, "cgroup"))
			got, err := s.Read(tc.pid, tc.id)
			if err != nil {
				t.Fatalf("Read(%d, %s) in %s: %v", tc.pid, tc.id, tc.tree, err)
			}
			if got != tc.want {
				t.Errorf("Read(%d, %s) in %s = %+v, want %+v", tc.pid, tc.id, tc.tree, got, tc.want)
			}
		})
	}
}

func TestCgroupStatsReadNotInContainer(t *testing.T) {
	tests := []struct {
		name string
		tree string
		pid  int
		id   string
	}{
		{"v1 pid now in another container", "cgroupv1", 200, cgIDA},
		{"v1 pid now a host process", "cgroupv1", 400, cgIDA},
		{"v1 pid gone", "cgroupv1", 999, cgIDA},
		{"v2 pid now in another container", "cgroupv2", 200, cgIDA},
		{"v2 pid gone", "cgroupv2", 999, cgIDA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewCgroupStats(NewProcfs(filepath.Join("testdata", tc.tree, "proc")), filepath.Join("testdata", tc.tree, "cgroup"))
			got, err := s.Read(tc.pid, tc.id)
			if !errors.Is(err, ErrNotInContainer) {
				t.Errorf("Read(%d, %s) in %s = %+v, %v; want ErrNotInContainer", tc.pid, tc.id, tc.tree, got, err)
			}
		})
	}
}

// TestCgroupStatsReadMissingFiles: the process is in the container but its
// cgroup files cannot be read. That is a failure to read, not a sign that
// the PID was reused, so it must not be ErrNotInContainer (which makes the
// scanner inspect the container again).
func TestCgroupStatsReadMissingFiles(t *testing.T) {
	for _, tree := range []string{"cgroupv1", "cgroupv2"} {
		t.Run(tree, func(t *testing.T) {
			s := NewCgroupStats(NewProcfs(filepath.Join("testdata", tree, "proc")), t.TempDir())
			_, err := s.Read(100, cgIDA)
			if err == nil || errors.Is(err, ErrNotInContainer) {
				t.Errorf("Read(100, %s) with an empty cgroup root: err = %v, want a read error other than ErrNotInContainer", cgIDA, err)
			}
		})
	}
}

// TestCgroupStatsReadPathEscape: a cgroup path with ".." components after
// the container's own component must not lead anywhere else: the stats come
// from the container's cgroup. Followed literally, each path would land in
// testdata/cgroupescape/planted, outside the root, whose files all hold
// 666666.
func TestCgroupStatsReadPathEscape(t *testing.T) {
	const tree = "testdata/cgroupescape"
	tests := []struct {
		name string
		pid  int
		want ContainerStats
	}{
		{"v1", 100, ContainerStats{CPUUsageNS: 111, MemoryBytes: 222}},
		{"v2", 200, ContainerStats{CPUUsageNS: 333000, MemoryBytes: 444}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(tree, "planted", "cpuacct.usage")); err != nil {
				t.Fatalf("the planted file outside the root is missing, so this test proves nothing: %v", err)
			}
			s := NewCgroupStats(NewProcfs(filepath.Join(tree, "proc")), filepath.Join(tree, "cgroup"))
			got, err := s.Read(tc.pid, cgIDA)
			if err != nil {
				t.Fatalf("Read(%d): %v", tc.pid, err)
			}
			if got.CPUUsageNS == 666666 || got.CPUUsageNS == 666666000 || got.MemoryBytes == 666666 {
				t.Fatalf("Read(%d) = %+v: read the planted file outside the cgroup root", tc.pid, got)
			}
			if got != tc.want {
				t.Errorf("Read(%d) = %+v, want %+v", tc.pid, got, tc.want)
			}
		})
	}
}

// TestCgroupStatsReadNestedCgroup: a container running systemd as its init
// (kind nodes, systemd-based images) has its main process in a child cgroup
// of the container's, e.g. docker-<id>.scope/init.scope on cgroup v2. The
// container's stats are those of docker-<id>.scope, as docker stats shows
// them, not of the child that holds only the init process.
func TestCgroupStatsReadNestedCgroup(t *testing.T) {
	s := NewCgroupStats(NewProcfs("testdata/cgroupv2/proc"), "testdata/cgroupv2/cgroup")
	got, err := s.Read(300, cgIDC)
	if err != nil {
		t.Fatalf("Read(300, %s): %v", cgIDC, err)
	}
	// docker-<C>.scope: usage_usec 8000000; 300000000 - 100000000 inactive.
	want := ContainerStats{CPUUsageNS: 8000000000, MemoryBytes: 200000000}
	if got != want {
		t.Errorf("Read(300, %s) = %+v, want the container cgroup's %+v", cgIDC, got, want)
	}
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	pct := func(f float64) *float64 { return &f }
	tests := []struct {
		name   string
		prevNS uint64
		prevAt time.Time
		nowNS  uint64
		nowAt  time.Time
		want   *float64
	}{
		{"half a core", 1e9, t0, 1.5e9, t0.Add(time.Second), pct(50)},
		{"two cores", 0, t0, 4e9, t0.Add(2 * time.Second), pct(200)},
		{"idle", 7e9, t0, 7e9, t0.Add(time.Second), pct(0)},
		{"counter went backwards", 2e9, t0, 1e9, t0.Add(time.Second), nil},
		{"zero wall time", 1e9, t0, 2e9, t0, nil},
		{"negative wall time", 1e9, t0, 2e9, t0.Add(-time.Second), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CPUPercent(tc.prevNS, tc.prevAt, tc.nowNS, tc.nowAt)
			switch {
			case tc.want == nil && got != nil:
				t.Errorf("CPUPercent = %v, want nil", *got)
			case tc.want != nil && got == nil:
				t.Errorf("CPUPercent = nil, want %v", *tc.want)
			case tc.want != nil && *got != *tc.want:
				t.Errorf("CPUPercent = %v, want %v", *got, *tc.want)
			}
		})
	}
}
