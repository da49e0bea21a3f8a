package detect

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// maxKernelFile bounds what readFileAt reads of a file no caller caps: the
// kernel files a scan reads (a process's stat, status and cgroup, a
// cgroup's statistics) are a few KiB.
const maxKernelFile = 1 << 20

// errTooLarge says a file held more than its reader's limit.
var errTooLarge = errors.New("file too large")

// readFileAt reads the file name, relative to the directory dirfd (or
// unix.AT_FDCWD for a path), into buf's spare room, growing it as needed,
// and returns what it read. A file longer than limit is cut at limit when
// cut is true and an error (errTooLarge) when it is false.
//
// It is the scan's way to read the kernel's small files: one open, the
// reads (one, for a file that fits) and one close, where os.ReadFile adds a stat, a poller
// registration and two fcntl calls, which at a hundred files per scan cost
// more than the reads. The last component is never followed when it is a
// symbolic link (O_NOFOLLOW): the kernel's files are none, and a fake or
// hostile tree's link leads nowhere the scan meant to read. The error is
// the system call's (a unix.Errno) or errTooLarge's; the caller names the
// file.
func readFileAt(dirfd int, name string, buf []byte, limit int, cut bool) ([]byte, error) {
	fd, err := openAt(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit+1 {
				break
			}
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):min(cap(buf), limit+1)]
		n, err := unix.Read(fd, room)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if n < len(room) {
			// The kernel answers a read of its files (seq_file, kernfs,
			// a command line) with all they hold that fits, as a regular
			// file does: a read that left room reached the end, and the
			// read that would say so is one call in four saved.
			break
		}
	}
	if len(buf) > limit {
		if !cut {
			return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
		}
		buf = buf[:limit]
	}
	return buf, nil
}

// openAt is openat(2), retried when a signal interrupts it.
func openAt(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
