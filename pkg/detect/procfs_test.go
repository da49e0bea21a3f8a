package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"time"
)

// Boot time of the fake trees under testdata/proc-*.
const fakeBoot = 1700000000

func intPtr(n int) *int { return &n }

func fakeStarted(ticks uint64) time.Time {
	return time.Unix(fakeBoot, 0).UTC().Add(time.Duration(ticks) * 10 * time.Millisecond)
}

func TestParseStat(t *testing.T) {
	const tail = " S 1 412 412 0 -1 4194560 1200 0 3 0 42 7 0 0 20 0 1 0 %s 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	line := func(comm, start string) string { return "412 (" + comm + ")" + fmt.Sprintf(tail, start) }
	tests := []struct {
		name      string
		data      string
		wantComm  string
		wantTicks uint64
		wantErr   bool
	}{
		{"plain", line("python3", "228204"), "python3", 228204, false},
		{"comm with space and parens", line("my) proc (x", "900000"), "my) proc (x", 900000, false},
		{"comm is ') 1 2 3'", line(") 1 2 3", "77"), ") 1 2 3", 77, false},
		{"comm with newline", line("a\nb", "5"), "a\nb", 5, false},
		{"empty comm", line("", "6"), "", 6, false},
		{"kernel thread", line("kworker/0:1H", "3"), "kworker/0:1H", 3, false},
		{"huge start", line("x", "18446744073709551615"), "x", 18446744073709551615, false},
		{"no parens", "412 python3 S 1 2 3\n", "", 0, true},
		{"closing before opening", "412 )python3( S\n", "", 0, true},
		{"too few fields", "412 (python3) S 1 412 412 0 -1\n", "", 0, true},
		{"bad start", line("python3", "12x"), "", 0, true},
		{"negative start", line("python3", "-1"), "", 0, true},
		{"bad ppid", "412 (python3) S x" + fmt.Sprintf(tail[len(" S 1"):], "5"), "", 0, true},
		{"empty", "", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseStat([]byte(tc.data))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat(%q) error = %v; want error %v", tc.data, err, tc.wantErr)
			}
			wantPPID := 1
			if tc.wantErr {
				wantPPID = 0
			}
			if st.comm != tc.wantComm || st.startTicks != tc.wantTicks || st.ppid != wantPPID {
				t.Errorf("parseStat(%q) = %q, ppid %d, %d; want %q, ppid %d, %d", tc.data, st.comm, st.ppid, st.startTicks, tc.wantComm, wantPPID, tc.wantTicks)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	const head = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t412\n"
	tests := []struct {
		name      string
		data      string
		wantUID   int
		wantNSPID int
		wantErr   bool
	}{
		{"host", head + "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nNStgid:\t412\nNSpid:\t412\n", 1000, 412, false},
		{"container", head + "Uid:\t0\t0\t0\t0\nNSpid:\t412\t7\n", 0, 7, false},
		{"nested namespaces", head + "Uid:\t0\t0\t0\t0\nNSpid:\t412\t55\t1\n", 0, 1, false},
		{"real uid differs from effective (setuid)", head + "Uid:\t1000\t0\t0\t0\nNSpid:\t412\n", 1000, 412, false},
		{"LDAP uid", head + "Uid:\t1234567\t1234567\t1234567\t1234567\nNSpid:\t412\n", 1234567, 412, false},
		{"old kernel without NSpid", head + "Uid:\t1000\t1000\t1000\t1000\n", 1000, 0, false},
		{"NSpid before Uid", "NSpid:\t9\t3\nUid:\t5\t5\t5\t5\n", 5, 3, false},
		{"no Uid", head + "NSpid:\t412\n", 0, 0, true},
		{"empty Uid", head + "Uid:\n", 0, 0, true},
		{"bad Uid", head + "Uid:\tx\t0\t0\t0\n", 0, 0, true},
		{"negative Uid", head + "Uid:\t-1\t0\t0\t0\n", 0, 0, true},
		{"bad NSpid", head + "Uid:\t0\t0\t0\t0\nNSpid:\t412\tx\n", 0, 0, true},
		{"empty NSpid", head + "Uid:\t0\t0\t0\t0\nNSpid:\n", 0, 0, true},
		{"empty", "", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid, nspid, err := parseStatus([]byte(tc.data))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStatus error = %v; want error %v", err, tc.wantErr)
			}
			if uid != tc.wantUID || nspid != tc.wantNSPID {
				t.Errorf("parseStatus = %d, %d; want %d, %d", uid, nspid, tc.wantUID, tc.wantNSPID)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		data string
		comm string
		want string
	}{
		{"args", "python3\x00train.py\x00--lr\x000.1\x00", "python3", "python3 train.py --lr 0.1"},
		{"no trailing NUL (rewritten argv)", "postgres: checkpointer", "postgres", "postgres: checkpointer"},
		{"padding NULs", "nginx: worker\x00\x00\x00\x00", "nginx", "nginx: worker"},
		{"empty argument kept", "a\x00\x00b\x00", "a", "a  b"},
		{"hostile bytes kept as they are", "evil\x00\xff\xfe\x00line1\nline2\x00\x1b[31mred\x1b[0m\x00", "evil", "evil \xff\xfe line1\nline2 \x1b[31mred\x1b[0m"},
		{"kernel thread", "", "kworker/0:1", "[kworker/0:1]"},
		{"only NULs", "\x00\x00", "zombie", "[zombie]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseCmdline([]byte(tc.data), tc.comm); got != tc.want {
				t.Errorf("parseCmdline(%q, %q) = %q; want %q", tc.data, tc.comm, got, tc.want)
			}
		})
	}
}

func TestParseLoginUID(t *testing.T) {
	tests := []struct {
		data    string
		want    *int
		wantErr bool
	}{
		{"1000", intPtr(1000), false},
		{"1000\n", intPtr(1000), false},
		{"0", intPtr(0), false},
		{"4294967294", intPtr(4294967294), false},
		{"4294967295", nil, false},
		{"4294967296", nil, true},
		{"-1", nil, true},
		{"", nil, true},
		{"bob", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.data, func(t *testing.T) {
			got, err := parseLoginUID([]byte(tc.data))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseLoginUID(%q) error = %v; want error %v", tc.data, err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseLoginUID(%q) = %v; want %v", tc.data, fmtIntPtr(got), fmtIntPtr(tc.want))
			}
		})
	}
}

func fmtIntPtr(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}

func TestParseBootTime(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    int64
		wantErr bool
	}{
		{"real", "cpu  1 2 3 4\nintr 1 0\nctxt 3\nbtime 1700000000\nprocesses 26071\n", 1700000000, false},
		{"last line no newline", "cpu  1 2 3\nbtime 1795682964", 1795682964, false},
		{"missing", "cpu  1 2 3\nctxt 3\n", 0, true},
		{"bad", "btime soon\n", 0, true},
		{"zero", "btime 0\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBootTime([]byte(tc.data))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseBootTime = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestNvidiaDeviceID(t *testing.T) {
	tests := []struct {
		target string
		wantID string
		wantOK bool
	}{
		{"/dev/nvidia0", "0", true},
		{"/dev/nvidia7", "7", true},
		{"/dev/nvidia15", "15", true},
		{"/dev/nvidia0 (deleted)", "0", true},
		{"/dev/nvidia-caps/nvidia-cap21", "", true},
		{"/dev/nvidia-caps/nvidia-cap1 (deleted)", "", true},
		{"/dev/nvidiactl", "", false},
		{"/dev/nvidia-uvm", "", false},
		{"/dev/nvidia-uvm-tools", "", false},
		{"/dev/nvidia-modeset", "", false},
		{"/dev/nvidia-nvswitch0", "", false},
		{"/dev/nvidia-caps-imex-channels/channel0", "", false},
		{"/dev/nvidia-caps/", "", false},
		{"/dev/nvidia-caps/a/b", "", false},
		{"/dev/nvidia", "", false},
		{"/dev/nvidia0x", "", false},
		{"/dev/nvidia-0", "", false},
		{"/dev/nvidia 0", "", false},
		{"/tmp/dev/nvidia0", "", false},
		{"/home/u/nvidia0", "", false},
		{"socket:[12345]", "", false},
		{"anon_inode:[eventfd]", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			id, ok := nvidiaDeviceID(tc.target)
			if id != tc.wantID || ok != tc.wantOK {
				t.Errorf("nvidiaDeviceID(%q) = %q, %v; want %q, %v", tc.target, id, ok, tc.wantID, tc.wantOK)
			}
		})
	}
}

func TestProcfsProcess(t *testing.T) {
	const dockerID = "9c1f3b5e7a2d4f6081b3c5d7e9fa0b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a"
	p := NewProcfs("testdata/proc-a")
	tests := []struct {
		name string
		pid  int
		want ProcessInfo
	}{
		{
			name: "host process of a user",
			pid:  100,
			want: ProcessInfo{
				PID: 100, NSPID: 100, StartTicks: 360000, StartedAt: fakeStarted(360000), PPID: 1,
				UID: 1000, LoginUID: intPtr(1000), Comm: "python3", Cmdline: "python3 train.py --epochs 3",
			},
		},
		{
			name: "container process",
			pid:  101,
			want: ProcessInfo{
				PID: 101, NSPID: 7, StartTicks: 720000, StartedAt: fakeStarted(720000), PPID: 1,
				UID: 0, Comm: "python", Cmdline: "python -m torch.distributed.run",
				ContainerID: dockerID, Runtime: RuntimeDocker,
			},
		},
		{
			name: "root through sudo keeps loginuid",
			pid:  102,
			want: ProcessInfo{
				PID: 102, NSPID: 102, StartTicks: 800000, StartedAt: fakeStarted(800000), PPID: 1,
				UID: 0, LoginUID: intPtr(1000), Comm: "python3", Cmdline: "python3 serve.py",
			},
		},
		{
			name: "comm with spaces and parens",
			pid:  103,
			want: ProcessInfo{
				PID: 103, NSPID: 103, StartTicks: 900000, StartedAt: fakeStarted(900000), PPID: 1,
				UID: 1001, LoginUID: intPtr(1001), Comm: "my) proc (x", Cmdline: "./my) proc (x",
			},
		},
		{
			name: "hostile command line kept byte for byte",
			pid:  104,
			want: ProcessInfo{
				PID: 104, NSPID: 104, StartTicks: 910000, StartedAt: fakeStarted(910000), PPID: 1,
				UID: 1002, LoginUID: intPtr(1002), Comm: "evil",
				Cmdline: "evil \xff\xfe line1\nline2 \x1b[31mred\x1b[0m",
			},
		},
		{
			name: "kernel thread: empty cmdline, loginuid unset",
			pid:  105,
			want: ProcessInfo{
				PID: 105, NSPID: 105, StartTicks: 2, StartedAt: fakeStarted(2), PPID: 1,
				UID: 0, Comm: "kworker/0:1", Cmdline: "[kworker/0:1]",
			},
		},
		{
			name: "no loginuid file (kernel without audit)",
			pid:  107,
			want: ProcessInfo{
				PID: 107, NSPID: 107, StartTicks: 150, StartedAt: fakeStarted(150), PPID: 1,
				UID: 0, Comm: "daemon", Cmdline: "/usr/sbin/daemon",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Process(tc.pid)
			if err != nil {
				t.Fatalf("Process(%d): %v", tc.pid, err)
			}
			data, err := os.ReadFile(filepath.Join("testdata/proc-a", strconv.Itoa(tc.pid), "cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Cgroup = ParseCgroupFile(data)
			if len(tc.want.Cgroup) == 0 {
				t.Fatal("fixture has no cgroup lines")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Process(%d) =\n%+v\nwant\n%+v\nloginuid %s, want %s", tc.pid, got, tc.want, fmtIntPtr(got.LoginUID), fmtIntPtr(tc.want.LoginUID))
			}
		})
	}
}

func TestProcfsProcessVanished(t *testing.T) {
	p := NewProcfs("testdata/proc-a")
	for _, tc := range []struct {
		name string
		pid  int
		path string
	}{
		{"files gone after stat was read", 106, "106/status"},
		{"directory gone", 999, "999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Process(tc.pid)
			if !errors.Is(err, ErrVanished) {
				t.Fatalf("Process(%d) = %v; want ErrVanished", tc.pid, err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Process(%d) = %v; want the cause kept", tc.pid, err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("Process(%d) = %q; want the path %s in it", tc.pid, err, tc.path)
			}
		})
	}
}

func TestProcfsProcessPIDReuse(t *testing.T) {
	first, err := NewProcfs("testdata/proc-a").Process(100)
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewProcfs("testdata/proc-reused").Process(100)
	if err != nil {
		t.Fatal(err)
	}
	if first.PID != second.PID {
		t.Fatalf("fixtures should share a PID: %d, %d", first.PID, second.PID)
	}
	if first.StartTicks == second.StartTicks {
		t.Errorf("a reused PID has the same StartTicks %d: the key cannot tell the processes apart", first.StartTicks)
	}
	if first.UID == second.UID || !second.StartedAt.After(first.StartedAt) {
		t.Errorf("second process = uid %d started %v; want another user's, started after %v", second.UID, second.StartedAt, first.StartedAt)
	}
}

func TestProcfsProcessErrors(t *testing.T) {
	good := "testdata/proc-a/100"
	tests := []struct {
		name  string
		file  string
		bytes string
	}{
		{"bad stat", "stat", "100 (python3) S 1\n"},
		{"bad status", "status", "Name:\tpython3\n"},
		{"bad loginuid", "loginuid", "bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			copyFile(t, "testdata/proc-a/stat", filepath.Join(root, "stat"))
			dir := filepath.Join(root, "100")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"stat", "status", "cmdline", "cgroup", "loginuid"} {
				copyFile(t, filepath.Join(good, f), filepath.Join(dir, f))
			}
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.bytes), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := NewProcfs(root).Process(100)
			if err == nil || errors.Is(err, ErrVanished) {
				t.Fatalf("Process = %v; want a parse error, not ErrVanished", err)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tc.file)) {
				t.Errorf("error %q does not name %s", err, tc.file)
			}
		})
	}
	t.Run("invalid pid", func(t *testing.T) {
		for _, pid := range []int{0, -1} {
			if _, err := NewProcfs("testdata/proc-a").Process(pid); err == nil || errors.Is(err, ErrVanished) {
				t.Errorf("Process(%d) = %v; want an invalid-pid error", pid, err)
			}
		}
	})
	t.Run("no boot time", func(t *testing.T) {
		if _, err := NewProcfs(t.TempDir()).Process(100); err == nil || errors.Is(err, ErrVanished) {
			t.Errorf("Process = %v; want a boot time error", err)
		}
	})
}

func TestProcfsProcessCmdlineCapped(t *testing.T) {
	root := t.TempDir()
	copyFile(t, "testdata/proc-a/stat", filepath.Join(root, "stat"))
	dir := filepath.Join(root, "100")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"stat", "status", "cgroup", "loginuid"} {
		copyFile(t, filepath.Join("testdata/proc-a/100", f), filepath.Join(dir, f))
	}
	long := "python3\x00" + strings.Repeat("a", 1<<20) + "\x00"
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := NewProcfs(root).Process(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Cmdline) != MaxCommand || !strings.HasPrefix(got.Cmdline, "python3 aaa") {
		t.Errorf("Cmdline is %d bytes starting %q; want %d starting \"python3 aaa\"", len(got.Cmdline), got.Cmdline[:min(20, len(got.Cmdline))], MaxCommand)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProcfsBootTime(t *testing.T) {
	root := t.TempDir()
	copyFile(t, "testdata/proc-a/stat", filepath.Join(root, "stat"))
	p := NewProcfs(root)
	got, err := p.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(fakeBoot, 0).UTC(); !got.Equal(want) {
		t.Errorf("BootTime = %v; want %v", got, want)
	}
	// Cached: the file is not read again.
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte("btime 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := p.BootTime(); err != nil || !again.Equal(got) {
		t.Errorf("BootTime again = %v, %v; want the cached %v", again, err, got)
	}
	if _, err := NewProcfs(t.TempDir()).BootTime(); err == nil {
		t.Error("BootTime without <root>/stat succeeded")
	}
}

// fakeFDTree builds a proc tree whose processes hold the given descriptor
// link targets. Links are made here rather than stored in testdata: they
// point at device paths that need not exist.
func fakeFDTree(t *testing.T, procs map[string][]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, targets := range procs {
		fd := filepath.Join(root, pid, "fd")
		if err := os.MkdirAll(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, target := range targets {
			if err := os.Symlink(target, filepath.Join(fd, strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestProcfsDeviceHolders(t *testing.T) {
	root := fakeFDTree(t, map[string][]string{
		"200":  {"/dev/null", "pipe:[123]", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia1", "/dev/nvidia0", "/dev/nvidia1"},
		"201":  {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"},
		"202":  {"/dev/nvidiactl", "/dev/nvidia-caps/nvidia-cap21", "/dev/nvidia-caps/nvidia-cap22"},
		"203":  {"/dev/nvidia0", "/dev/nvidia-caps/nvidia-cap21", "/dev/nvidiactl"},
		"204":  {"/dev/nvidia10", "/dev/nvidia2"},
		"205":  {"/dev/nvidia3 (deleted)"},
		"207":  {},
		"208":  {"/dev/nvidiafoo", "/dev/nvidia", "/dev/nvidia0x", "/tmp/dev/nvidia0", "socket:[1]", "anon_inode:[eventfd]", "/dev/nvidia-caps-imex-channels/channel0"},
		"self": {"/dev/nvidia0"},
		"sys":  {"/dev/nvidia0"},
	})
	// A process that exited between the listing and the read: its
	// directory is left without fd.
	if err := os.Mkdir(filepath.Join(root, "206"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte("btime 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := NewProcfs(root).DeviceHolders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]string{
		200: {"0", "1"},
		202: {""},
		203: {"0"},
		204: {"2", "10"},
		205: {"3"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DeviceHolders = %#v; want %#v", got, want)
	}
}

func TestProcfsDeviceHoldersUnreadable(t *testing.T) {
	root := fakeFDTree(t, map[string][]string{"200": {"/dev/nvidia0"}})
	// An fd that is not a directory cannot be listed: not a process that
	// exited, so a blind spot the caller must hear of.
	if err := os.MkdirAll(filepath.Join(root, "209"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "209", "fd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := NewProcfs(root).DeviceHolders(context.Background())
	if err == nil || !strings.Contains(err.Error(), "1 processes") {
		t.Errorf("DeviceHolders error = %v; want one process missed", err)
	}
	if want := map[int][]string{200: {"0"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("DeviceHolders = %#v; want %#v beside the error", got, want)
	}
}

func TestProcfsGPUDevices(t *testing.T) {
	root := fakeFDTree(t, map[string][]string{
		"200": {"/dev/nvidiactl", "/dev/nvidia1", "/dev/nvidia0"},
		"201": {"/dev/nvidiactl", "/dev/nvidia-uvm"},
	})
	if err := os.MkdirAll(filepath.Join(root, "209"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "209", "fd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := NewProcfs(root)
	tests := []struct {
		pid      int
		want     []string
		vanished bool
		fails    bool
	}{
		{pid: 200, want: []string{"0", "1"}},
		{pid: 201},
		{pid: 202, vanished: true, fails: true},
		{pid: 209, fails: true},
		{pid: 0, fails: true},
	}
	for _, tc := range tests {
		got, err := p.GPUDevices(tc.pid)
		if !reflect.DeepEqual(got, tc.want) || (err != nil) != tc.fails || errors.Is(err, ErrVanished) != tc.vanished {
			t.Errorf("GPUDevices(%d) = %q, %v; want %q, failing %v, vanished %v", tc.pid, got, err, tc.want, tc.fails, tc.vanished)
		}
	}
}

func TestProcfsDeviceHoldersNoRoot(t *testing.T) {
	if _, err := NewProcfs(filepath.Join(t.TempDir(), "missing")).DeviceHolders(context.Background()); err == nil {
		t.Error("DeviceHolders on a missing root succeeded")
	}
}

// requireRoot skips a test that needs root, loudly; in CI, where the
// environment is set up for it, a missing root is a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI=true")
	}
	t.Skip("SKIPPED: needs root (run the tests as root to cover real processes of other users and devices)")
}

// startProc starts a command and kills it when the test ends.
func startProc(tb testing.TB, cmd *exec.Cmd) int {
	tb.Helper()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %v: %v", cmd.Args, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// waitComm waits for pid to be running comm, with its command line: after a
// shell's exec, or a child's own setup, has happened.
func waitComm(t *testing.T, p *Procfs, pid int, comm string) ProcessInfo {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := p.Process(pid)
		// The kernel names the process at exec before it sets up the new
		// command line: until then the command line reads empty.
		if err == nil && info.Comm == comm && info.Cmdline != "["+comm+"]" {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not become %q: %+v, %v", pid, comm, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcfsProcessRealSleep(t *testing.T) {
	p := NewProcfs("/proc")
	self, err := p.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	pid := startProc(t, exec.Command("sleep", "60"))
	got := waitComm(t, p, pid, "sleep")
	if got.PID != pid || got.NSPID != pid {
		t.Errorf("PID, NSPID = %d, %d; want %d for both on the host", got.PID, got.NSPID, pid)
	}
	if got.UID != os.Getuid() {
		t.Errorf("UID = %d; want %d", got.UID, os.Getuid())
	}
	if got.Cmdline != "sleep 60" {
		t.Errorf("Cmdline = %q; want \"sleep 60\"", got.Cmdline)
	}
	if got.StartTicks == 0 || got.StartTicks < self.StartTicks {
		t.Errorf("StartTicks = %d; want above the test's own %d", got.StartTicks, self.StartTicks)
	}
	// btime is whole seconds and the ticks are hundredths: allow for both,
	// and for a VM clock that wanders from its boot-time reckoning.
	if d := got.StartedAt.Sub(before); d < -3*time.Second || d > 3*time.Second {
		t.Errorf("StartedAt = %v, %v from when it was started", got.StartedAt, d)
	}
	if !reflect.DeepEqual(got.LoginUID, self.LoginUID) {
		t.Errorf("LoginUID = %s; want the parent's %s", fmtIntPtr(got.LoginUID), fmtIntPtr(self.LoginUID))
	}
	if got.ContainerID != self.ContainerID || len(got.Cgroup) == 0 {
		t.Errorf("container %q with %d cgroup lines; want the parent's %q", got.ContainerID, len(got.Cgroup), self.ContainerID)
	}
}

// TestProcfsProcessRealSweep reads every process on the machine: kernel
// threads, daemons, whatever the real /proc holds must parse.
func TestProcfsProcessRealSweep(t *testing.T) {
	p := NewProcfs("/proc")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		info, err := p.Process(pid)
		if errors.Is(err, ErrVanished) {
			continue
		}
		if err != nil {
			t.Errorf("Process(%d): %v", pid, err)
			continue
		}
		if info.PID != pid || info.Cmdline == "" || info.NSPID <= 0 {
			t.Errorf("Process(%d) = %+v", pid, info)
		}
		read++
	}
	if read < 2 {
		t.Errorf("read %d processes from /proc", read)
	}
}

func TestProcfsProcessRealOtherUser(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("ds01t%d", os.Getpid())
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
			t.Errorf("userdel -r %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	p := NewProcfs("/proc")
	got := waitComm(t, p, startProc(t, cmd), "sleep")
	if got.UID != uid || uid == 0 {
		t.Errorf("UID = %d; want %s's %d", got.UID, name, uid)
	}
}

func TestProcfsProcessRealLoginUID(t *testing.T) {
	requireRoot(t)
	// What sudo leaves: a root process whose login was a user's. Setting
	// loginuid needs audit support and a loginuid not already locked.
	cmd := exec.Command("sh", "-c", "echo 1000 > /proc/self/loginuid || exit 3; exec sleep 60")
	pid := startProc(t, cmd)
	p := NewProcfs("/proc")
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := p.Process(pid)
		if errors.Is(err, ErrVanished) {
			t.Skip("SKIPPED: cannot set loginuid here (kernel without audit, or loginuid immutable)")
		}
		if err == nil && info.Comm == "sleep" {
			if info.UID != 0 || info.LoginUID == nil || *info.LoginUID != 1000 {
				t.Errorf("UID, LoginUID = %d, %s; want 0, 1000", info.UID, fmtIntPtr(info.LoginUID))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never ran sleep: %+v, %v", pid, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcfsProcessRealZombieAndExited(t *testing.T) {
	p := NewProcfs("/proc")
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Not yet waited for: a zombie, with no command line left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(") Z ")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became a zombie: %s", pid, data)
		}
		time.Sleep(5 * time.Millisecond)
	}
	zombie, err := p.Process(pid)
	if err != nil {
		t.Fatalf("Process(zombie %d): %v", pid, err)
	}
	if zombie.Cmdline != "[true]" {
		t.Errorf("zombie Cmdline = %q; want \"[true]\"", zombie.Cmdline)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// Reaped. The PID could be reused at once by another process; then it
	// is another process, told apart by its start.
	got, err := p.Process(pid)
	switch {
	case errors.Is(err, ErrVanished):
	case err == nil && got.StartTicks != zombie.StartTicks:
		t.Logf("pid %d reused already", pid)
	default:
		t.Errorf("Process(exited %d) = %+v, %v; want ErrVanished", pid, got, err)
	}
}

func TestProcfsDeviceHoldersReal(t *testing.T) {
	requireRoot(t)
	const dev = "/dev/nvidia7"
	if _, err := os.Lstat(dev); errors.Is(err, fs.ErrNotExist) {
		// The match is on the path a process opened. With no NVIDIA
		// driver loaded, a node of major 195 cannot be opened (ENXIO),
		// so the stand-in is /dev/null's device under the GPU's name.
		if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Fatalf("mknod %s: %v", dev, err)
		}
		t.Cleanup(func() {
			if err := os.Remove(dev); err != nil {
				t.Errorf("remove %s: %v", dev, err)
			}
		})
	}
	p := NewProcfs("/proc")
	holder := startProc(t, exec.Command("sh", "-c", "exec 3<"+dev+"; exec sleep 60"))
	bystander := startProc(t, exec.Command("sleep", "60"))
	waitComm(t, p, holder, "sleep")
	waitComm(t, p, bystander, "sleep")

	got, err := p.DeviceHolders(context.Background())
	if errors.Is(err, fs.ErrPermission) {
		// Some machines keep a process even from root (another user
		// namespace's, or an LSM's rule); the rest is still read.
		t.Logf("DeviceHolders: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	if ids := got[holder]; !reflect.DeepEqual(ids, []string{"7"}) {
		t.Errorf("DeviceHolders()[holder %d] = %q; want [\"7\"]", holder, ids)
	}
	for _, pid := range []int{bystander, os.Getpid()} {
		if ids, ok := got[pid]; ok {
			t.Errorf("DeviceHolders()[%d] = %q; want absent", pid, ids)
		}
	}
}

// TestProcfsDeviceHoldersRealDenied runs DeviceHolders as nobody over the
// real /proc, where root's processes cannot be looked into: the error must
// say so and the map still hold what could be read.
func TestProcfsDeviceHoldersRealDenied(t *testing.T) {
	if os.Getenv("DS01_TEST_HELPER") == "deviceholders-denied" {
		holders, err := NewProcfs("/proc").DeviceHolders(context.Background())
		fmt.Printf("holders-nil=%v permission=%v err=%v\n", holders == nil, errors.Is(err, fs.ErrPermission), err)
		return
	}
	requireRoot(t)
	// The test binary, copied where nobody may run it.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "detect.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestProcfsDeviceHoldersRealDenied$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "DS01_TEST_HELPER=deviceholders-denied")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("holders-nil=false permission=true err=read open files of ")) {
		t.Errorf("helper as nobody said:\n%s\nwant a usable map and a permission error", out)
	}
}

// BenchmarkDeviceHolders scans the real /proc with 2,000 extra processes,
// the size of a busy shared server. ms/scan is the figure to read.
func BenchmarkDeviceHolders(b *testing.B) {
	const n = 2000
	for i := 0; i < n; i++ {
		startProc(b, exec.Command("sleep", "600"))
	}
	p := NewProcfs("/proc")
	start, cpu0 := time.Now(), cpuTime(b)
	for b.Loop() {
		if _, err := p.DeviceHolders(context.Background()); err != nil && !errors.Is(err, fs.ErrPermission) {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/scan")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/scan")
	if entries, err := os.ReadDir("/proc"); err == nil {
		procs := 0
		for _, e := range entries {
			if isDigits(e.Name()) {
				procs++
			}
		}
		b.ReportMetric(float64(procs), "procs")
	}
}

func TestEffectiveCapability(t *testing.T) {
	status := func(capEff string) []byte {
		return []byte("Name:\tds01-scan\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t" + capEff + "\nCapBnd:\t000001ffffffffff\n")
	}
	tests := []struct {
		name   string
		status []byte
		want   bool
		err    bool
	}{
		{"root with every capability", status("000001ffffffffff"), true, false},
		{"the hardened unit's three", status("0000000000080006"), true, false},
		{"without CAP_SYS_PTRACE", status("0000000000000006"), false, false},
		{"none", status("0000000000000000"), false, false},
		{"garbled", status("zz"), false, true},
		{"no CapEff line", []byte("Name:\tx\n"), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := effectiveCapability(tc.status, capSysPtrace)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestHasPtraceCapability: what /proc/self/status says agrees with what
// the capget system call says.
func TestHasPtraceCapability(t *testing.T) {
	got, err := HasPtraceCapability()
	if err != nil {
		t.Fatal(err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	if want := data[0].Effective&(1<<unix.CAP_SYS_PTRACE) != 0; got != want {
		t.Errorf("HasPtraceCapability = %v, capget says %v", got, want)
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestDirentsManyDescriptors: a process with more descriptors than
// one read returns has every one listed, in /proc and in a fake tree, and
// a GPU device held last among 600 is found.
func TestDirentsManyDescriptors(t *testing.T) {
	var held []int
	for range 600 {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, fd)
	}
	t.Cleanup(func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	})
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	var names []string
	d := dirents{fd: dir}
	for {
		name, err := d.next()
		if err != nil {
			t.Fatal(err)
		}
		if name == nil {
			break
		}
		if name[len(name)-1] != 0 {
			t.Fatalf("name %q without its NUL", name)
		}
		names = append(names, string(name[:len(name)-1]))
	}
	if slices.Contains(names, ".") || slices.Contains(names, "..") {
		t.Errorf(". or .. listed: %v", names[:min(len(names), 5)])
	}
	for _, fd := range held {
		if !slices.Contains(names, strconv.Itoa(fd)) {
			t.Fatalf("descriptor %d not listed among %d", fd, len(names))
		}
	}

	targets := slices.Repeat([]string{"/dev/null"}, 599)
	root := fakeFDTree(t, map[string][]string{"300": append(targets, "/dev/nvidia3")})
	got, err := NewProcfs(root).GPUDevices(300)
	if err != nil || !slices.Equal(got, []string{"3"}) {
		t.Errorf("GPUDevices = %v, %v; want [3]", got, err)
	}
}
