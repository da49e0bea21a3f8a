package inventory

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// MaxFileSize caps how much of an inventory file Load reads. A real
// inventory of 10,000 workloads is a few MiB; anything past the cap is
// treated as corrupt rather than read into memory.
const MaxFileSize = 64 << 20

// FileMode is the mode of a saved inventory: readable by every user, since
// the unprivileged query tool reads it.
const FileMode = 0o644

// CorruptError reports an inventory file that exists but cannot be trusted:
// unparsable, truncated, too large, of the wrong schema, or failing
// validation. The scanner moves such a file aside and starts afresh.
type CorruptError struct {
	Path   string
	Reason string
}

// Error says which file is corrupt and why.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("inventory %s is corrupt: %s", e.Path, e.Reason)
}

// Load reads and validates the inventory at path. It never follows a
// symbolic link and accepts only a regular file. A missing file yields an
// error matching fs.ErrNotExist; one the lab's earlier scanner wrote a
// *LegacyFormatError; an untrustworthy one a *CorruptError.
//
// The inventory's strings share one block of memory, the file's: a
// program that keeps a few of them long after the rest should keep copies
// (strings.Clone), or the whole file stays in memory with them.
func Load(path string) (*Inventory, error) {
	// O_NONBLOCK keeps a FIFO planted at path from blocking the open; the
	// type check below then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &CorruptError{Path: path, Reason: "is a symbolic link"}
		}
		return nil, fmt.Errorf("open inventory: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat inventory %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &CorruptError{Path: path, Reason: "not a regular file"}
	}
	if st.Size() > MaxFileSize {
		return nil, &CorruptError{Path: path, Reason: fmt.Sprintf("%d bytes, over the %d-byte limit", st.Size(), MaxFileSize)}
	}
	// One allocation of the size the file had: a large inventory is read
	// by every command of the query tool, and in a short-lived process
	// each page of memory first touched costs time.
	var buf bytes.Buffer
	buf.Grow(int(st.Size()) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, fmt.Errorf("read inventory %s: %w", path, err)
	}
	data := buf.Bytes()
	if len(data) > MaxFileSize {
		return nil, &CorruptError{Path: path, Reason: "grew past the size limit while being read"}
	}
	// The buffer is never written again, so it can be the string the
	// inventory's strings are cut from, without a copy.
	text := unsafe.String(unsafe.SliceData(data), len(data))
	inv, err := parse(text)
	if err != nil {
		if legacy, lerr := parseLegacy(text); lerr == nil {
			return nil, &LegacyFormatError{Path: path, Legacy: legacy}
		}
		return nil, &CorruptError{Path: path, Reason: err.Error()}
	}
	return inv, nil
}

// Parse decodes and validates an inventory document.
func Parse(data []byte) (*Inventory, error) { return parse(string(data)) }

func parse(data string) (*Inventory, error) {
	if len(strings.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file")
	}
	// SchemaVersion starts at -1 so that a missing one shows.
	inv := Inventory{SchemaVersion: -1}
	if err := decodeInventory(data, &inv); err != nil {
		// A newer schema may change a field's type: name the version,
		// which is the real problem, rather than the field.
		var probe struct {
			SchemaVersion *int `json:"schema_version"`
		}
		if json.Unmarshal([]byte(data), &probe) == nil && probe.SchemaVersion != nil && *probe.SchemaVersion != SchemaVersion {
			return nil, fmt.Errorf("schema_version %d, this build reads %d", *probe.SchemaVersion, SchemaVersion)
		}
		return nil, err
	}
	switch {
	case inv.SchemaVersion == -1:
		return nil, errors.New("no schema_version")
	case inv.SchemaVersion != SchemaVersion:
		return nil, fmt.Errorf("schema_version %d, this build reads %d", inv.SchemaVersion, SchemaVersion)
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// ValidContainerID reports whether id is a full container ID: exactly 64
// lower-case hex digits. Engines write IDs only that way, and anything
// looser lets unrelated hex-bearing names (a cgroup path component, a
// forged inventory key) pass for one. It is the one test of a container ID.
func ValidContainerID(id string) bool { return len(id) == 64 && isLowerHex(id) }

// isLowerHex reports whether s is lower-case hex digits only.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Validate checks the invariants Load relies on: known types, well-formed
// keys and no duplicates. It does not judge whether the facts are true.
func (inv *Inventory) Validate() error {
	// The scanner writes containers sorted by ID: then a duplicate is a
	// neighbour, and no set of 10,000 IDs needs building.
	sorted := slices.IsSortedFunc(inv.Containers, func(a, b Container) int { return strings.Compare(a.ID, b.ID) })
	var seen map[string]bool
	if !sorted {
		seen = make(map[string]bool, len(inv.Containers))
	}
	for i, c := range inv.Containers {
		if !ValidContainerID(c.ID) {
			return fmt.Errorf("containers[%d]: id is not 64 hex digits", i)
		}
		if sorted && i > 0 && inv.Containers[i-1].ID == c.ID || seen[c.ID] {
			return fmt.Errorf("containers[%d]: duplicate id %s", i, c.ID[:12])
		}
		if !sorted {
			seen[c.ID] = true
		}
		if !isContainerType(c.Type) {
			return fmt.Errorf("containers[%d]: unknown type %q", i, c.Type)
		}
	}
	for _, section := range []struct {
		name  string
		procs []HostProcess
	}{{"host_processes", inv.HostProcesses}, {"pending_processes", inv.PendingProcesses}} {
		keys := make(map[ProcessKey]bool, len(section.procs))
		for i, p := range section.procs {
			if p.PID <= 0 {
				return fmt.Errorf("%s[%d]: pid %d", section.name, i, p.PID)
			}
			if !IsProcessType(p.Type) {
				return fmt.Errorf("%s[%d]: unknown type %q", section.name, i, p.Type)
			}
			if keys[p.Key()] {
				return fmt.Errorf("%s[%d]: duplicate pid %d", section.name, i, p.PID)
			}
			keys[p.Key()] = true
		}
	}
	if inv.Outbox != nil {
		if inv.Outbox.LogOffset < 0 {
			return fmt.Errorf("outbox: log_offset %d", inv.Outbox.LogOffset)
		}
		ids := make(map[string]bool, len(inv.Outbox.Events))
		for i, e := range inv.Outbox.Events {
			if err := e.validate(); err != nil {
				return fmt.Errorf("outbox.events[%d]: %w", i, err)
			}
			if ids[e.ID] {
				return fmt.Errorf("outbox.events[%d]: duplicate event_id %s", i, e.ID)
			}
			ids[e.ID] = true
		}
	}
	return nil
}

func isContainerType(t string) bool {
	switch t {
	case TypeDS01Managed, TypeDevcontainer, TypeDockerCompose, TypeRawDocker, TypeUnknown:
		return true
	}
	return false
}

// Save writes inv to path atomically: a unique temporary file in the same
// directory, fsync, rename over path, fsync of the directory. Readers see
// the old file or the new one, never a torn one, even across a crash.
func Save(path string, inv *Inventory) error {
	// Never write a file Load would refuse.
	if inv.SchemaVersion != SchemaVersion {
		return fmt.Errorf("save inventory: schema_version %d, want %d", inv.SchemaVersion, SchemaVersion)
	}
	if err := inv.Validate(); err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	removeLeftoverTemps(dir, base)
	// CreateTemp opens with O_EXCL and a random name, so a link planted in a
	// group-writable directory is never followed.
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return fmt.Errorf("create temporary inventory: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(FileMode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	// Compact: the file is for programs (jq indents it for people), and
	// half the bytes is half the parsing for every reader.
	bw := bufio.NewWriterSize(&cappedWriter{w: f, left: MaxFileSize + 1}, 64<<10)
	if err := encodeTo(bw, inv); err != nil {
		if errors.Is(err, errFileTooLarge) {
			return fmt.Errorf("save inventory: over the %d-byte limit Load enforces", MaxFileSize)
		}
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	bw.WriteByte('\n')
	if err := bw.Flush(); err != nil {
		if errors.Is(err, errFileTooLarge) {
			return fmt.Errorf("save inventory: over the %d-byte limit Load enforces", MaxFileSize)
		}
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	ok = true
	return syncDir(dir)
}

// errFileTooLarge says an inventory would exceed MaxFileSize.
var errFileTooLarge = errors.New("inventory too large")

// cappedWriter passes at most left bytes to w, then fails.
type cappedWriter struct {
	w    io.Writer
	left int
}

func (c *cappedWriter) Write(b []byte) (int, error) {
	if len(b) > c.left {
		return 0, errFileTooLarge
	}
	c.left -= len(b)
	return c.w.Write(b)
}

func tempPrefix(base string) string { return "." + base + ".tmp-" }

// removeLeftoverTemps deletes temporary files a killed scan left behind.
// Callers hold the scan lock, so no other writer owns them.
func removeLeftoverTemps(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), tempPrefix(base)) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// MoveAside renames an inventory that is not to be read again (why:
// "corrupt") to "<path>.<why>-<time>", so that it can be examined, and
// returns the new name; "" when there is no file.
func MoveAside(path, why string, now time.Time) (string, error) {
	dst := asideName(path, why, now)
	if err := os.Rename(path, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("move inventory aside: %w", err)
	}
	return dst, syncDir(filepath.Dir(path))
}

// KeepAside gives the inventory at path a second name, "<path>.<why>-<time>",
// that the next Save leaves in place: the file survives the save, and
// remains at path until then.
func KeepAside(path, why string, now time.Time) (string, error) {
	// A scan that kept the file and then failed to save leaves the name:
	// the next one reuses it rather than adding another.
	if st, err := os.Lstat(path); err == nil {
		dir, base := filepath.Split(path)
		entries, _ := os.ReadDir(filepath.Clean(dir + "."))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), base+"."+why+"-") {
				continue
			}
			name := filepath.Join(dir, e.Name())
			if other, err := os.Lstat(name); err == nil && os.SameFile(st, other) {
				return name, nil
			}
		}
	}
	dst := asideName(path, why, now)
	if err := os.Link(path, dst); err != nil {
		return "", fmt.Errorf("keep inventory aside: %w", err)
	}
	return dst, syncDir(filepath.Dir(path))
}

func asideName(path, why string, now time.Time) string {
	return path + "." + why + "-" + now.UTC().Format("20060102T150405.000000Z")
}
