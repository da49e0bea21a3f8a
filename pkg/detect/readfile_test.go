package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadFileAt: a file is read whole however it compares with the
// buffer given, cut or refused past the limit, and never through a link.
func TestReadFileAt(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("0123456789", 1000)
	if err := os.WriteFile(filepath.Join(dir, "long"), []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("long", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)

	for _, size := range []int{0, 1, 64, 4096, 20000} {
		got, err := readFileAt(d, "long", make([]byte, 0, size), maxKernelFile, false)
		if err != nil || string(got) != long {
			t.Errorf("buffer of %d: %d bytes, %v; want the whole file", size, len(got), err)
		}
	}
	var small [64]byte
	if got, err := readFileAt(d, "long", small[:0], 10, true); err != nil || string(got) != long[:10] {
		t.Errorf("cut at 10: %q, %v", got, err)
	}
	if _, err := readFileAt(d, "long", small[:0], 9999, false); !errors.Is(err, errTooLarge) {
		t.Errorf("over the limit: %v, want errTooLarge", err)
	}
	if got, err := readFileAt(d, "long", nil, len(long), false); err != nil || len(got) != len(long) {
		t.Errorf("exactly the limit: %d bytes, %v", len(got), err)
	}
	if _, err := readFileAt(d, "link", nil, maxKernelFile, false); !errors.Is(err, unix.ELOOP) {
		t.Errorf("through a link: %v, want ELOOP", err)
	}
	if _, err := readFileAt(unix.AT_FDCWD, filepath.Join(dir, "long"), nil, maxKernelFile, false); err != nil {
		t.Errorf("by path: %v", err)
	}
	if _, err := readFileAt(d, "absent", nil, maxKernelFile, false); !vanished(err) {
		t.Errorf("absent: %v, want a vanished error", err)
	}
}
