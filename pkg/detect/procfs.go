package detect

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of the times in /proc/<pid>/stat. The kernel reports
// them in USER_HZ, which is 100 on every architecture Linux builds for
// (x86, arm64, ppc64le, s390x, riscv); sysconf(_SC_CLK_TCK) would say so,
// but is out of reach without cgo.
const userHZ = 100

// unsetLoginUID is (uid_t)-1: the loginuid of a process outside any login
// (services, and everything started before a login).
const unsetLoginUID = 1<<32 - 1

// ErrVanished says a process exited while it was being read. Callers skip
// such a process quietly: it is no longer there to report.
var ErrVanished = errors.New("process vanished")

// ProcessInfo is what /proc says about one process.
type ProcessInfo struct {
	PID int
	// NSPID is the PID as the process's own PID namespace sees it (the last
	// field of NSpid in status): what `ps` inside a container shows. It is
	// PID for a host process.
	NSPID int
	// StartTicks is the start time in clock ticks since boot (field 22 of
	// stat). With PID it identifies a process across PID reuse.
	StartTicks uint64
	// StartedAt is StartTicks as a UTC wall-clock time, through the boot
	// time. It is good to the second; StartTicks is the exact key.
	StartedAt time.Time
	// PPID is the parent's PID (0 for init and kernel threads, and for
	// a process whose parent is outside its PID namespace).
	PPID int
	// UID is the real uid.
	UID int
	// LoginUID is the uid the process's login session started as, kept
	// across sudo and su; nil when unset (not from a login) or when the
	// kernel has no audit support.
	LoginUID *int
	// Comm is the kernel's process name, at most 15 bytes, as raw as the
	// kernel keeps it (it may hold spaces, parentheses, control bytes).
	Comm string
	// Cmdline is the command line with arguments joined by spaces, at most
	// MaxCommand bytes, stored as the process set it: possibly invalid
	// UTF-8 or with control characters, for the printer to make safe.
	// It is "[comm]" when the process has none (kernel threads, zombies).
	Cmdline string
	// Cgroup are the lines of /proc/<pid>/cgroup.
	Cgroup []CgroupLine
	// ContainerID and Runtime are the container the process is in, from
	// ContainerFromCgroup; empty for a host process.
	ContainerID string
	Runtime     string
}

// Procfs reads processes from a proc filesystem mounted at a root that is a
// parameter, so tests can point it at a fake tree.
type Procfs struct {
	root string

	mu       sync.Mutex
	bootTime time.Time
}

// NewProcfs reads the proc filesystem mounted at root (normally /proc).
func NewProcfs(root string) *Procfs {
	return &Procfs{root: root}
}

// BootTime returns when the machine booted (btime in <root>/stat). It is
// read once and cached: it does not change while the machine is up.
func (p *Procfs) BootTime() (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.bootTime.IsZero() {
		return p.bootTime, nil
	}
	path := filepath.Join(p.root, "stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	btime, err := parseBootTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse %s: %w", path, err)
	}
	p.bootTime = time.Unix(btime, 0).UTC()
	return p.bootTime, nil
}

// Process reads one process, every file through one procDir handle. It
// returns an error wrapping ErrVanished when the process is gone or exits
// while being read.
func (p *Procfs) Process(pid int) (ProcessInfo, error) {
	boot, err := p.BootTime()
	if err != nil {
		return ProcessInfo{}, err
	}
	d, err := p.open(pid)
	if err != nil {
		return ProcessInfo{}, err
	}
	defer d.close()

	info := ProcessInfo{PID: pid}
	data, err := d.read("stat")
	if err != nil {
		return ProcessInfo{}, err
	}
	st, err := parseStat(data)
	if err != nil {
		return ProcessInfo{}, d.parseErr("stat", err)
	}
	info.Comm, info.PPID, info.StartTicks = st.comm, st.ppid, st.startTicks
	info.StartedAt = boot.Add(time.Duration(info.StartTicks) * (time.Second / userHZ))

	if data, err = d.read("status"); err != nil {
		return ProcessInfo{}, err
	}
	if info.UID, info.NSPID, err = parseStatus(data); err != nil {
		return ProcessInfo{}, d.parseErr("status", err)
	}
	if info.NSPID == 0 {
		// Kernels before 4.1 have no NSpid line, nor PID namespaces
		// worth the name.
		info.NSPID = pid
	}

	if data, err = d.readCapped("cmdline", MaxCommand); err != nil {
		return ProcessInfo{}, err
	}
	info.Cmdline = parseCmdline(data, info.Comm)

	if data, err = d.read("cgroup"); err != nil {
		return ProcessInfo{}, err
	}
	info.Cgroup = ParseCgroupFile(data)
	info.ContainerID, info.Runtime = ContainerFromCgroup(info.Cgroup)

	data, err = d.read("loginuid")
	switch {
	case err == nil:
		if info.LoginUID, err = parseLoginUID(data); err != nil {
			return ProcessInfo{}, d.parseErr("loginuid", err)
		}
	case errors.Is(err, fs.ErrNotExist):
		// A kernel without audit support has no loginuid file; a process
		// that exited just now loses it too, and has been read whole.
	default:
		return ProcessInfo{}, err
	}
	return info, nil
}

// Ancestors reads the processes above one whose parent is ppid, nearest
// first, up to init or maxAncestors of them: what the launcher rules read.
// A parent that is gone or unreadable ends the walk; what was read stands.
func (p *Procfs) Ancestors(ppid int) []Ancestor {
	var out []Ancestor
	seen := map[int]bool{}
	for pid := ppid; pid > 1 && len(out) < maxAncestors && !seen[pid]; {
		seen[pid] = true
		a, next, err := p.ancestor(pid)
		if err != nil {
			break
		}
		out = append(out, a)
		pid = next
	}
	return out
}

// ancestor reads one process of a walk up the tree and its parent's PID.
func (p *Procfs) ancestor(pid int) (Ancestor, int, error) {
	d, err := p.open(pid)
	if err != nil {
		return Ancestor{}, 0, err
	}
	defer d.close()
	data, err := d.read("stat")
	if err != nil {
		return Ancestor{}, 0, err
	}
	st, err := parseStat(data)
	if err != nil {
		return Ancestor{}, 0, d.parseErr("stat", err)
	}
	if data, err = d.read("status"); err != nil {
		return Ancestor{}, 0, err
	}
	uid, _, err := parseStatus(data)
	if err != nil {
		return Ancestor{}, 0, d.parseErr("status", err)
	}
	if data, err = d.readCapped("cmdline", MaxCommand); err != nil {
		return Ancestor{}, 0, err
	}
	return Ancestor{PID: pid, UID: uid, Comm: st.comm, Cmdline: parseCmdline(data, st.comm)}, st.ppid, nil
}

// PIDNamespace returns the inode of a process's PID namespace, which every
// process of one container shares with its init (the container's PID in
// its engine's inspect). The error wraps ErrVanished when the process is
// gone.
func (p *Procfs) PIDNamespace(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("read process: invalid pid %d", pid)
	}
	path := p.root + "/" + strconv.Itoa(pid) + "/ns/pid"
	var buf [64]byte
	n, err := unix.Readlink(path, buf[:])
	if err != nil {
		return 0, procErr(path, err)
	}
	return parseNamespaceLink(string(buf[:n]))
}

// parseNamespaceLink reads a namespace link's target, "pid:[4026531836]".
func parseNamespaceLink(s string) (uint64, error) {
	rest, ok := strings.CutPrefix(s, "pid:[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, fmt.Errorf("namespace link %q", s)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("namespace link %q", s)
	}
	return n, nil
}

// Environment variables that name an Apptainer/Singularity job's image.
var imageVars = []string{"APPTAINER_CONTAINER=", "SINGULARITY_CONTAINER="}

// maxEnviron bounds how much of a process's environment is read.
const maxEnviron = 1 << 20

// ApptainerImage returns the image path an Apptainer or Singularity job's
// environment names, or "". It is the one environment value ds01 reads:
// every other variable is passed over unread, and a value that is not an
// absolute path, or is longer than MaxCommand, is none.
func (p *Procfs) ApptainerImage(pid int) (string, error) {
	d, err := p.open(pid)
	if err != nil {
		return "", err
	}
	defer d.close()
	data, err := d.readCapped("environ", maxEnviron)
	if err != nil {
		return "", err
	}
	return ImageFromEnviron(data), nil
}

// ImageFromEnviron finds the image path in the contents of
// /proc/<pid>/environ (variables each ended by a NUL).
func ImageFromEnviron(data []byte) string {
	for len(data) > 0 {
		var v []byte
		v, data, _ = bytes.Cut(data, []byte{0})
		for _, name := range imageVars {
			if path, ok := bytes.CutPrefix(v, []byte(name)); ok && len(path) > 0 && path[0] == '/' && len(path) <= MaxCommand {
				return string(path)
			}
		}
	}
	return ""
}

// UID returns the real uid of a process. The error wraps ErrVanished when
// the process is gone.
func (p *Procfs) UID(pid int) (int, error) {
	d, err := p.open(pid)
	if err != nil {
		return 0, err
	}
	defer d.close()
	data, err := d.read("status")
	if err != nil {
		return 0, err
	}
	uid, _, err := parseStatus(data)
	if err != nil {
		return 0, d.parseErr("status", err)
	}
	return uid, nil
}

// Cgroup returns the lines of a process's cgroup file. The error wraps
// ErrVanished when the process is gone.
func (p *Procfs) Cgroup(pid int) ([]CgroupLine, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("read process: invalid pid %d", pid)
	}
	// One file: read by its path, without a handle on the directory.
	path := p.root + "/" + strconv.Itoa(pid) + "/cgroup"
	var buf [4096]byte
	data, err := readFileAt(unix.AT_FDCWD, path, buf[:0], maxKernelFile, false)
	if err != nil {
		return nil, procErr(path, err)
	}
	return ParseCgroupFile(data), nil
}

// procDir is one process's directory, held open: every file of it is read
// relative to this one descriptor, by a name of one component that is never
// followed when it is a symbolic link, so nothing read through it can lead
// outside it. A handle on an exited process keeps failing even if the PID
// is reused at once, so the files read through it all describe the same
// process.
type procDir struct {
	fd   int
	path string
}

// open opens the directory of one process.
func (p *Procfs) open(pid int) (procDir, error) {
	if pid <= 0 {
		return procDir{}, fmt.Errorf("read process: invalid pid %d", pid)
	}
	path := p.root + "/" + strconv.Itoa(pid)
	fd, err := openAt(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return procDir{}, procErr(path, err)
	}
	return procDir{fd: fd, path: path}, nil
}

func (d procDir) close() { unix.Close(d.fd) }

// read reads one file of the process whole; the error names it and wraps
// ErrVanished when the process is gone.
func (d procDir) read(name string) ([]byte, error) {
	data, err := readFileAt(d.fd, name, make([]byte, 0, 4096), maxKernelFile, false)
	if err != nil {
		return nil, procErr(d.path+"/"+name, err)
	}
	return data, nil
}

// readCapped reads at most n bytes of one file of the process: a command
// line can be megabytes long.
func (d procDir) readCapped(name string, n int) ([]byte, error) {
	data, err := readFileAt(d.fd, name, make([]byte, 0, min(n, 4096)), n, true)
	if err != nil {
		return nil, procErr(d.path+"/"+name, err)
	}
	return data, nil
}

// parseErr says that one file of the process did not parse.
func (d procDir) parseErr(name string, err error) error {
	return fmt.Errorf("parse %s: %w", filepath.Join(d.path, name), err)
}

// procErr wraps a read error, marking a process that is gone: its
// directory or a file in it no longer exists (ENOENT), or the kernel says
// the task is dead mid-read (ESRCH).
func procErr(path string, err error) error {
	if vanished(err) {
		return fmt.Errorf("read %s: %w: %w", path, ErrVanished, err)
	}
	return fmt.Errorf("read %s: %w", path, err)
}

func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// DeviceHolders finds the processes holding a GPU device open, from their
// open file descriptors: a signal that still works when NVML cannot start
// (a driver upgraded without a reboot). It maps each PID to the GPUs it
// holds, sorted: "N" for /dev/nvidiaN, and "" (some GPU, which unknown) for
// a process holding only MIG capability devices (/dev/nvidia-caps/*).
//
// N is the device's minor number (NVML's nvmlDeviceGetMinorNumber), which
// need not equal NVML's index. The path is the one the process
// opened, so a container's /dev/nvidiaN names the host's device only when
// the runtime kept the host's names (the NVIDIA runtime, --gpus and CDI do).
//
// /dev/nvidiactl, /dev/nvidia-uvm and /dev/nvidia-modeset are not counted:
// every CUDA process opens them beside the GPU it uses, and a process that
// holds only them (nvidia-smi between queries, a library probing the
// driver) holds no GPU.
//
// Descriptors are read with readlink and never opened or followed. Threads
// that unshared their descriptor table (rare) are not looked at. When some
// processes' descriptors cannot be read for lack of privilege (a scanner
// without CAP_SYS_PTRACE), the map holds the others and the error says how
// many were missed, wrapping the cause (fs.ErrPermission). A process that
// exits during the scan is skipped quietly. When ctx ends first the scan
// stops and returns ctx's error.
func (p *Procfs) DeviceHolders(ctx context.Context) (map[int][]string, error) {
	d, err := os.Open(p.root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p.root, err)
	}
	// Readdirnames: no sorting and no stat, just the names.
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p.root, err)
	}
	// Reading links is kernel work, a few microseconds each, and a busy
	// server has 10^5 descriptors: share the processes among a few workers,
	// leaving a core to the scan's other sources (decoding the engine's
	// container list), which run at the same time.
	workers := max(1, min(runtime.GOMAXPROCS(0)-1, maxFDWorkers))
	parts := make([]fdScan, workers)
	var wg sync.WaitGroup
	for w := range parts {
		wg.Go(func() {
			for i := w; i < len(names) && ctx.Err() == nil; i += workers {
				parts[w].scan(p, names[i])
				// Its system calls are too short for the scheduler to
				// hand the core on, so a goroutine the engine's answer
				// has woken (the ping's, the list's) would wait for the
				// next preemption, up to 10 ms; yielding after each
				// process lets it run at once. In one sitting, 61 steady
				// scans at N=1000 with and without, interleaved, twice:
				// 212 against 222 and 211 against 227 ms.
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read open files: %w", err)
	}

	holders := map[int][]string{}
	var missed int
	var missedErr error
	for _, part := range parts {
		for pid, ids := range part.holders {
			holders[pid] = ids
		}
		missed += part.missed
		if part.missedErr != nil {
			missedErr = part.missedErr
		}
	}
	if missed > 0 {
		return holders, fmt.Errorf("read open files of %d processes: %w", missed, missedErr)
	}
	return holders, nil
}

// GPUDevices returns the GPU devices one process holds open, named as
// DeviceHolders names them (nil: none). The error wraps ErrVanished when
// the process or its descriptor table is gone, and fs.ErrPermission when
// its descriptors cannot be read.
func (p *Procfs) GPUDevices(pid int) ([]string, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("read open files: invalid pid %d", pid)
	}
	ids, err := p.fdDevices(strconv.Itoa(pid))
	if err != nil && vanished(err) {
		return nil, fmt.Errorf("%w: %w", ErrVanished, err)
	}
	return ids, err
}

// maxFDWorkers bounds the cores one descriptor scan takes from the machine.
const maxFDWorkers = 4

// fdScan is one worker's share of a descriptor scan.
type fdScan struct {
	holders   map[int][]string
	missed    int
	missedErr error
}

func (s *fdScan) scan(p *Procfs, name string) {
	if !isDigits(name) {
		return
	}
	ids, err := p.fdDevices(name)
	if err != nil {
		// A process that exited between the listing and now (ENOENT,
		// ESRCH) holds nothing any more; any other failure is a blind spot
		// to report.
		if !vanished(err) {
			s.missed++
			s.missedErr = err
		}
		return
	}
	if ids == nil {
		return
	}
	pid, err := strconv.Atoi(name)
	if err != nil {
		return
	}
	if s.holders == nil {
		s.holders = map[int][]string{}
	}
	s.holders[pid] = ids
}

// fdDevices returns the GPU devices one process holds, or nil.
//
// It is the scan's inner loop, run for every open descriptor on the
// machine, so it costs one readlinkat per descriptor and nothing more: the
// link is read relative to the open fd directory (no walk of
// /proc/<pid>/fd/ per descriptor) into a buffer on the stack, which need
// hold only enough of the target to tell a GPU device from anything else
// (a longer target is cut by the kernel and cannot be one).
func (p *Procfs) fdDevices(pid string) ([]string, error) {
	dirfd, err := unix.Open(p.root+"/"+pid+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p.root + "/" + pid + "/fd", Err: err}
	}
	defer unix.Close(dirfd)
	var ids []string
	caps := false
	var buf [maxDeviceLink]byte
	d := dirents{fd: dirfd}
	for {
		fd, err := d.next()
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: p.root + "/" + pid + "/fd", Err: err}
		}
		if fd == nil {
			break
		}
		n, err := readlinkAt(dirfd, fd, buf[:])
		if err != nil {
			if vanished(err) {
				// The descriptor was closed since the listing, or the
				// process exited: either way it holds nothing now.
				continue
			}
			return nil, &fs.PathError{Op: "readlinkat", Path: p.root + "/" + pid + "/fd/" + string(fd[:len(fd)-1]), Err: err}
		}
		if n == len(buf) || !bytes.HasPrefix(buf[:n], nvidiaPrefix) {
			continue
		}
		id, ok := nvidiaDeviceID(string(buf[:n]))
		switch {
		case !ok:
		case id == "":
			caps = true
		case !slices.Contains(ids, id):
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		slices.SortFunc(ids, compareDevices)
		return ids, nil
	}
	if caps {
		return []string{""}, nil
	}
	return nil, nil
}

var nvidiaPrefix = []byte("/dev/nvidia")

// maxDeviceLink is as much of a descriptor's link target as the scan reads:
// room for /dev/nvidia-caps/nvidia-cap<N> or /dev/nvidia<N> (deleted). A
// target cut at this length is longer than any GPU device's.
const maxDeviceLink = 64

// dirents reads the entries of the open directory fd but "." and "..",
// each name as it lies in the kernel's answer, with its terminating NUL and
// valid until the next call. The descriptor scan names every descriptor on
// the machine this way, so that naming one costs no string of its own, and
// its link is read straight from that name.
//
// It stops at a read that left room for another entry of any length,
// without the one more read that would return nothing: procfs fills the
// buffer with as many of a process's descriptors as it holds, so that read
// had them all. At one read in four of the descriptor scan, it is worth it.
type dirents struct {
	fd       int
	buf      [4096]byte
	off, end int  // what is left of the last read: buf[off:end]
	last     bool // the last read had them all
}

// next is the next name, or nil after the last.
func (d *dirents) next() ([]byte, error) {
	for {
		if d.off == d.end {
			if d.last {
				return nil, nil
			}
			n, err := unix.ReadDirent(d.fd, d.buf[:])
			if err != nil {
				return nil, err
			}
			if n <= 0 {
				return nil, nil
			}
			d.off, d.end, d.last = 0, n, n <= len(d.buf)-maxDirent
		}
		// A linux_dirent64: inode (8), offset (8), record length (2),
		// type (1), then the name and its NUL.
		rec := d.buf[d.off:d.end]
		if len(rec) < direntName {
			return nil, fmt.Errorf("directory entry cut at %d bytes", len(rec))
		}
		size := int(binary.NativeEndian.Uint16(rec[16:18]))
		if size < direntName || size > len(rec) {
			return nil, fmt.Errorf("directory entry of %d bytes where %d are left", size, len(rec))
		}
		d.off += size
		name := rec[direntName:size]
		end := bytes.IndexByte(name, 0)
		if end < 0 {
			return nil, errors.New("directory entry without its NUL")
		}
		if s := name[:end]; (len(s) == 1 && s[0] == '.') || (len(s) == 2 && s[0] == '.' && s[1] == '.') {
			continue
		}
		return name[:end+1], nil
	}
}

// direntName is where a linux_dirent64's name begins.
const direntName = 19

// readlinkAt is readlinkat(2) of name (NUL-terminated, as direntsAt gives
// it) relative to dirfd, into buf.
func readlinkAt(dirfd int, name, buf []byte) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// maxDirent is the size of the longest directory entry getdents64 returns:
// its 19-byte header and a 255-byte name with its NUL, aligned to 8.
const maxDirent = (19 + 256 + 7) &^ 7

// nvidiaDeviceID says whether a descriptor's link target is a GPU device:
// /dev/nvidiaN gives N, /dev/nvidia-caps/<cap> gives "" (a MIG capability:
// some GPU, which one unknown from the path).
func nvidiaDeviceID(target string) (id string, ok bool) {
	const prefix = "/dev/nvidia"
	rest, ok := strings.CutPrefix(target, prefix)
	if !ok {
		return "", false
	}
	// A device node unlinked while held (a container's /dev torn down)
	// reads "/dev/nvidia0 (deleted)"; the device is still held.
	rest = strings.TrimSuffix(rest, " (deleted)")
	if isDigits(rest) {
		return rest, true
	}
	if c, ok := strings.CutPrefix(rest, "-caps/"); ok && c != "" && !strings.Contains(c, "/") {
		return "", true
	}
	return "", false
}

// parseBootTime returns btime from the contents of /proc/stat.
func parseBootTime(data []byte) (int64, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte("btime "))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad btime %q", bytes.TrimSpace(rest))
		}
		return n, nil
	}
	return 0, errors.New("no btime")
}

// statFields are the fields of /proc/<pid>/stat the scan reads.
type statFields struct {
	comm       string
	ppid       int
	startTicks uint64
}

// parseStat returns the name, parent and start time from the contents of
// /proc/<pid>/stat. The name is field 2 in parentheses and may itself hold
// spaces and parentheses, so it runs to the last ')' and the numbered
// fields are counted from there.
func parseStat(data []byte) (statFields, error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return statFields{}, errors.New("no (comm)")
	}
	st := statFields{comm: string(data[open+1 : closing])}
	// After ") " come fields 3 (state) onwards: ppid is field 4,
	// starttime field 22.
	const ppidField, startField = 4 - 3, 22 - 3
	fields := bytes.Fields(data[closing+1:])
	if len(fields) <= startField {
		return statFields{}, fmt.Errorf("%d fields after comm, want over %d", len(fields), startField)
	}
	var err error
	if st.ppid, err = strconv.Atoi(string(fields[ppidField])); err != nil || st.ppid < 0 {
		return statFields{}, fmt.Errorf("bad ppid %q", fields[ppidField])
	}
	if st.startTicks, err = strconv.ParseUint(string(fields[startField]), 10, 64); err != nil {
		return statFields{}, fmt.Errorf("bad starttime: %w", err)
	}
	return st, nil
}

// parseStatus returns the real uid and the innermost namespace PID (0 when
// the kernel has no NSpid line) from the contents of /proc/<pid>/status.
func parseStatus(data []byte) (uid, nspid int, err error) {
	uid = -1
	for line := range bytes.Lines(data) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "Uid":
			// Real, effective, saved, filesystem.
			f := bytes.Fields(val)
			if len(f) == 0 {
				return 0, 0, errors.New("empty Uid")
			}
			n, err := strconv.ParseUint(string(f[0]), 10, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("bad Uid: %w", err)
			}
			uid = int(n)
		case "NSpid":
			// Outermost namespace first: the last field is the PID the
			// process sees itself as.
			f := bytes.Fields(val)
			if len(f) == 0 {
				return 0, 0, errors.New("empty NSpid")
			}
			n, err := strconv.Atoi(string(f[len(f)-1]))
			if err != nil || n <= 0 {
				return 0, 0, fmt.Errorf("bad NSpid %q", bytes.TrimSpace(val))
			}
			nspid = n
		}
	}
	if uid < 0 {
		return 0, 0, errors.New("no Uid")
	}
	return uid, nspid, nil
}

// parseCmdline turns the contents of /proc/<pid>/cmdline (arguments each
// ended by a NUL) into one line, arguments joined by spaces. Bytes are kept
// as they are, invalid UTF-8 and control characters included: making them
// safe is the printer's job. A process with no command line (a kernel
// thread, a zombie) shows as "[comm]", as ps shows it.
func parseCmdline(data []byte, comm string) string {
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return "[" + comm + "]"
	}
	return string(bytes.ReplaceAll(data, []byte{0}, []byte{' '}))
}

// parseLoginUID parses /proc/<pid>/loginuid; nil means unset.
func parseLoginUID(data []byte) (*int, error) {
	n, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("bad loginuid: %w", err)
	}
	if n == unsetLoginUID {
		return nil, nil
	}
	uid := int(n)
	return &uid, nil
}

// capSysPtrace is the capability bit the kernel asks of a process before it
// shows it another user's /proc/PID/fd, root or not.
const capSysPtrace = 19

// HasPtraceCapability reports whether this process holds CAP_SYS_PTRACE in
// its effective set. Without it DeviceHolders cannot read other users'
// descriptors: a process holding /dev/nvidia* that NVML does not list
// goes unseen.
func HasPtraceCapability() (bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err
	}
	return effectiveCapability(status, capSysPtrace)
}

// effectiveCapability reports whether the CapEff line of a
// /proc/PID/status holds capability bit.
func effectiveCapability(status []byte, bit uint) (bool, error) {
	for line := range bytes.Lines(status) {
		hex, ok := bytes.CutPrefix(line, []byte("CapEff:"))
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(string(bytes.TrimSpace(hex)), 16, 64)
		if err != nil {
			return false, fmt.Errorf("CapEff: %w", err)
		}
		return caps&(1<<bit) != 0, nil
	}
	return false, errors.New("no CapEff line in the process status")
}
