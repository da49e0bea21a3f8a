package detect

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupLine is one line of /proc/<pid>/cgroup: a v1 hierarchy with its
// controllers, or (Hierarchy 0, no controllers) the v2 unified one.
type CgroupLine struct {
	Hierarchy   int
	Controllers []string
	Path        string
}

// ParseCgroupFile parses the contents of /proc/<pid>/cgroup. Malformed lines
// are skipped; the kernel writes this file, but a test tree may not.
func ParseCgroupFile(data []byte) []CgroupLine {
	out := make([]CgroupLine, 0, bytes.Count(data, []byte{'\n'})+1)
	// A loop of Cuts, not bytes.Lines: its iterator would keep data on
	// the heap, and callers read the file into a buffer on the stack.
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		h, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		controllers, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok || !bytes.HasPrefix(path, []byte{'/'}) {
			continue
		}
		n, err := strconv.Atoi(string(h))
		if err != nil {
			continue
		}
		l := CgroupLine{Hierarchy: n, Path: string(path)}
		if len(controllers) > 0 {
			l.Controllers = strings.Split(string(controllers), ",")
		}
		out = append(out, l)
	}
	return out
}

// ErrNotInContainer says a PID no longer belongs to the container it was
// recorded for: the process exited and the PID may have been reused.
var ErrNotInContainer = errors.New("process is not in the container's cgroup")

// ContainerStats are a running container's cumulative CPU time and current
// memory use, read from its cgroup.
type ContainerStats struct {
	CPUUsageNS  uint64
	MemoryBytes uint64
}

// CgroupStats reads container stats from cgroup files, v1 or v2, through the
// cgroup of the container's main process.
type CgroupStats struct {
	procfs     *Procfs
	cgroupRoot string
}

// NewCgroupStats reads processes through procfs and cgroup files under
// cgroupRoot (normally /sys/fs/cgroup).
func NewCgroupStats(procfs *Procfs, cgroupRoot string) *CgroupStats {
	return &CgroupStats{procfs: procfs, cgroupRoot: cgroupRoot}
}

// Read returns the stats of the container id whose main process is pid. It
// returns ErrNotInContainer when pid's cgroup does not name the container.
func (s *CgroupStats) Read(pid int, id string) (ContainerStats, error) {
	if id == "" {
		return ContainerStats{}, ErrNotInContainer
	}
	lines, err := s.procfs.Cgroup(pid)
	if err != nil {
		if errors.Is(err, ErrVanished) {
			return ContainerStats{}, ErrNotInContainer
		}
		return ContainerStats{}, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	var cpuDir, memDir, unified string
	for _, l := range lines {
		path, ok := containerCgroup(l.Path, id)
		if !ok {
			continue
		}
		if l.Hierarchy == 0 && len(l.Controllers) == 0 {
			unified = path
		}
		mount := strings.Join(l.Controllers, ",")
		if strings.ContainsAny(mount, "/") || strings.Contains(mount, "..") {
			continue
		}
		for _, c := range l.Controllers {
			switch c {
			case "cpuacct":
				cpuDir = s.dir(mount, path)
			case "memory":
				memDir = s.dir(mount, path)
			}
		}
	}
	if cpuDir == "" && memDir == "" && unified == "" {
		return ContainerStats{}, ErrNotInContainer
	}
	var st ContainerStats
	if cpuDir != "" && memDir != "" {
		// cgroup v1 (or the hybrid layout, whose unified tree holds no
		// controllers).
		if st.CPUUsageNS, err = readUint(filepath.Join(cpuDir, "cpuacct.usage")); err != nil {
			return st, err
		}
		usage, err := readUint(filepath.Join(memDir, "memory.usage_in_bytes"))
		if err != nil {
			return st, err
		}
		st.MemoryBytes = minusInactiveFile(usage, filepath.Join(memDir, "memory.stat"), "total_inactive_file")
		return st, nil
	}
	if unified == "" {
		return st, fmt.Errorf("cgroup of pid %d has no cpuacct and memory controllers", pid)
	}
	dir := s.dir("", unified)
	usec, err := readKeyed(filepath.Join(dir, "cpu.stat"), "usage_usec")
	if err != nil {
		return st, err
	}
	st.CPUUsageNS = usec * 1000
	usage, err := readUint(filepath.Join(dir, "memory.current"))
	if err != nil {
		return st, err
	}
	st.MemoryBytes = minusInactiveFile(usage, filepath.Join(dir, "memory.stat"), "inactive_file")
	return st, nil
}

// containerCgroup returns the container's own cgroup from a process's cgroup
// path: the path up to the component naming the container. A process may sit
// in a child (systemd as the container's init puts itself in init.scope),
// and the stats that matter are the whole container's.
func containerCgroup(path, id string) (string, bool) {
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.Contains(parts[i], id) {
			return strings.Join(parts[:i+1], "/"), true
		}
	}
	return "", false
}

// dir joins a cgroup path under the root; filepath.Join cleans "..", so the
// result stays inside the root.
func (s *CgroupStats) dir(controllers, path string) string {
	return filepath.Join(s.cgroupRoot, controllers, filepath.Clean("/"+path))
}

// minusInactiveFile subtracts reclaimable page cache, as docker stats does.
func minusInactiveFile(usage uint64, statFile, key string) uint64 {
	inactive, err := readKeyed(statFile, key)
	if err != nil || inactive > usage {
		return usage
	}
	return usage - inactive
}

// readUint reads a cgroup file holding one number.
func readUint(path string) (uint64, error) {
	var buf [64]byte
	data, err := readFileAt(unix.AT_FDCWD, path, buf[:0], len(buf), false)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

// readKeyed reads "key value" lines (cpu.stat, memory.stat) and returns key's value.
func readKeyed(path, key string) (uint64, error) {
	var buf [4096]byte
	data, err := readFileAt(unix.AT_FDCWD, path, buf[:0], maxKernelFile, false)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return parseKeyed(data, key, path)
}

func parseKeyed(data []byte, key, name string) (uint64, error) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{' '})
		if ok && string(k) == key {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s in %s: %w", key, name, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s", key, name)
}
