package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const inventoryName = "workload-inventory.json"

func TestSaveLoadRoundTrip(t *testing.T) {
	empty, _ := Reconcile(nil, Observation{Sources: map[string]SourceStatus{SourceDocker: {OK: true}}, ProcessesObserved: true}, t0)
	tests := []struct {
		name string
		inv  *Inventory
	}{
		{"every field set", sampleInventory()},
		{"empty sections from Reconcile", empty},
		{"hostile strings", func() *Inventory {
			inv := sampleInventory()
			inv.Containers[0].Name = "evil\x1b[2J\nname\u2028"
			inv.Containers[0].Labels["ds01.user"] = "a\"b\\c\x00"
			return inv
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), inventoryName)
			if err := Save(path, tc.inv); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, tc.inv) {
				t.Errorf("Load after Save differs:\n got %s\nwant %s", mustMarshal(t, got), mustMarshal(t, tc.inv))
			}
		})
	}
}

func TestSaveModeAndNoTempFiles(t *testing.T) {
	tests := []struct {
		name     string
		existing os.FileMode // 0: no file before Save
	}{
		{"new file", 0},
		{"over a 0600 file", 0o600},
		{"over a 0666 file", 0o666},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, inventoryName)
			if tc.existing != 0 {
				writeFile(t, dir, inventoryName, []byte("old contents"), tc.existing)
				if err := os.Chmod(path, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := Save(path, sampleInventory()); err != nil {
				t.Fatalf("Save: %v", err)
			}
			st, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Mode().IsRegular() || st.Mode().Perm() != FileMode {
				t.Errorf("mode = %v, want a regular file %v", st.Mode(), os.FileMode(FileMode))
			}
			if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{inventoryName}) {
				t.Errorf("directory holds %q, want only %q", names, inventoryName)
			}
		})
	}
}

func TestSaveRemovesLeftoverTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, inventoryName)
	leftovers := []string{"." + inventoryName + ".tmp-1234567", "." + inventoryName + ".tmp-"}
	for _, n := range leftovers {
		writeFile(t, dir, n, []byte(`{"schema_version":1,"contai`), 0o600)
	}
	// Files that merely look alike belong to someone else and stay.
	unrelated := []string{".other.json.tmp-1", inventoryName + ".tmp-1", inventoryName + ".corrupt-20260101T000000Z", "notes.txt"}
	for _, n := range unrelated {
		writeFile(t, dir, n, []byte("keep"), 0o644)
	}
	if err := Save(path, sampleInventory()); err != nil {
		t.Fatalf("Save: %v", err)
	}
	want := append([]string{inventoryName}, unrelated...)
	sort.Strings(want)
	if got := dirNames(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
}

func TestSaveReplacesSymlinkNotTarget(t *testing.T) {
	dir := t.TempDir()
	elsewhere := t.TempDir()
	target := writeFile(t, elsewhere, "shadow", []byte("root:x:0:0::/root:/bin/bash\n"), 0o600)
	path := filepath.Join(dir, inventoryName)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, sampleInventory()); err != nil {
		t.Fatalf("Save: %v", err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() {
		t.Errorf("%s is %v after Save, want a regular file", path, st.Mode())
	}
	if got, err := os.ReadFile(target); err != nil || string(got) != "root:x:0:0::/root:/bin/bash\n" {
		t.Errorf("link target now holds %q (err %v), want it untouched", got, err)
	}
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("link target mode changed: %v (err %v)", st.Mode(), err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load after Save: %v", err)
	}
}

func TestSaveMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", inventoryName)
	err := Save(path, sampleInventory())
	if err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want one matching fs.ErrNotExist", err)
	}
}

func TestLoadSymlink(t *testing.T) {
	dir := t.TempDir()
	// The target is a valid inventory: the link itself is what is refused.
	target := filepath.Join(dir, "real.json")
	if err := Save(target, sampleInventory()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, inventoryName)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	inv, err := Load(path)
	if inv != nil {
		t.Errorf("Load returned an inventory through a symbolic link")
	}
	wantCorrupt(t, err, path, "symbolic link")
}

func TestLoadFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, inventoryName)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		wantCorrupt(t, err, path, "not a regular file")
	case <-time.After(5 * time.Second):
		// Unblock the open so the goroutine can finish, then fail.
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Load blocked on a FIFO")
	}
}

func TestLoadDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), inventoryName)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	wantCorrupt(t, err, path, "not a regular file")
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), inventoryName)
	inv, err := Load(path)
	if inv != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, %v; want nil and an error matching fs.ErrNotExist", inv, err)
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		t.Errorf("a missing file is reported as corrupt: %v", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	saved := filepath.Join(t.TempDir(), inventoryName)
	if err := Save(saved, sampleInventory()); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	ctr := func(id, typ string) string {
		return fmt.Sprintf(`{"id":%q,"name":"x","type":%q,"status":"running","detected_labels":null}`, id, typ)
	}
	doc := func(containers string, procs string) string {
		return `{"schema_version":1,"containers":[` + containers + `],"host_processes":[` + procs + `]}`
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty file", "", "empty file"},
		{"only whitespace", " \n\t\n", "empty file"},
		{"truncated in half", string(whole[:len(whole)/2]), "invalid JSON"},
		{"truncated by one byte", string(whole[:len(whole)-2]), "invalid JSON"},
		{"containers of the wrong type", `{"schema_version":1,"containers":"x"}`, `"containers"`},
		{"pid of the wrong type", doc("", `{"pid":"12","start_ticks":1,"type":"host-process"}`), "pid"},
		{"trailing garbage", string(whole) + "garbage", "invalid JSON"},
		{"second document", string(whole) + `{"schema_version":1}`, "invalid JSON"},
		{"not an object", `[1,2,3]`, "JSON array"},
		{"schema_version 2", `{"schema_version":2,"containers":[]}`, "schema_version 2"},
		{"schema_version 0", `{"schema_version":0}`, "schema_version 0"},
		{"schema_version as a string", `{"schema_version":"1"}`, "schema_version"},
		{"missing schema_version", `{"containers":[]}`, "no schema_version"},
		{"null schema_version", `{"schema_version":null}`, "no schema_version"},
		{"duplicate container ids", doc(ctr(cid(7), TypeRawDocker)+","+ctr(cid(7), TypeRawDocker), ""), "duplicate id " + cid(7)[:12]},
		{"short container id", doc(ctr(cid(7)[:12], TypeRawDocker), ""), "not 64 hex"},
		{"upper-case container id", doc(ctr(strings.ToUpper(strings.Repeat("ab", 32)), TypeRawDocker), ""), "not 64 hex"},
		{"path in container id", doc(ctr("../../"+cid(7)[6:], TypeRawDocker), ""), "not 64 hex"},
		{"unknown container type", doc(ctr(cid(7), "podman"), ""), `unknown type "podman"`},
		{"process type on a container", doc(ctr(cid(7), TypeHostProcess), ""), `unknown type "host-process"`},
		{"pid 0", doc("", `{"pid":0,"start_ticks":1,"type":"host-process"}`), "pid 0"},
		{"negative pid", doc("", `{"pid":-1,"start_ticks":1,"type":"host-process"}`), "pid -1"},
		{"pending pid 0", `{"schema_version":1,"pending_processes":[{"pid":0,"start_ticks":1,"type":"system"}]}`, "pending_processes[0]: pid 0"},
		{"unknown process type", doc("", `{"pid":5,"start_ticks":1,"type":"raw-docker"}`), `unknown type "raw-docker"`},
		{"duplicate process key", doc("", `{"pid":5,"start_ticks":1,"type":"host-process"},{"pid":5,"start_ticks":1,"type":"system"}`), "duplicate pid 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), inventoryName, []byte(tc.data), 0o644)
			inv, err := Load(path)
			if inv != nil {
				t.Errorf("Load returned an inventory for corrupt input")
			}
			wantCorrupt(t, err, path, tc.want)
		})
	}
}

// TestLoadAcceptsDistinctProcessKeys guards against the duplicate checks
// being too eager: one PID with two start times is two processes.
func TestLoadAcceptsDistinctProcessKeys(t *testing.T) {
	data := `{"schema_version":1,"host_processes":[{"pid":5,"start_ticks":1,"type":"host-process"},{"pid":5,"start_ticks":2,"type":"host-process"}],` +
		`"pending_processes":[{"pid":5,"start_ticks":1,"type":"host-process"}]}`
	path := writeFile(t, t.TempDir(), inventoryName, []byte(data), 0o644)
	inv, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(inv.HostProcesses) != 2 || len(inv.PendingProcesses) != 1 {
		t.Errorf("got %d host and %d pending processes, want 2 and 1", len(inv.HostProcesses), len(inv.PendingProcesses))
	}
}

func TestLoadOversize(t *testing.T) {
	tests := []struct {
		name   string
		prefix []byte
		size   int64
		want   string
	}{
		{"all holes", nil, MaxFileSize + 1, fmt.Sprintf("%d bytes, over the %d-byte limit", MaxFileSize+1, MaxFileSize)},
		{"a valid inventory then holes", []byte(`{"schema_version":1}`), MaxFileSize + 1, fmt.Sprintf("%d bytes, over the %d-byte limit", MaxFileSize+1, MaxFileSize)},
		{"far over the limit", nil, 1 << 40, "over the"},
		// At exactly the limit the size is accepted and the contents are
		// judged instead: the NUL after the document is what is refused.
		{"exactly at the limit", []byte(`{"schema_version":1}`), MaxFileSize, "invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), inventoryName, tc.prefix, 0o644)
			// Sparse: a huge size that costs no disk and would take a
			// while to read; the size check must come first.
			if err := os.Truncate(path, tc.size); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			inv, err := Load(path)
			if inv != nil {
				t.Error("Load returned an inventory for an oversize file")
			}
			// The stat-based refusal names the size; the read-based one
			// ("grew past the size limit") would mean the file was read.
			wantCorrupt(t, err, path, tc.want)
			if tc.size > MaxFileSize && time.Since(start) > time.Second {
				t.Errorf("Load took %v to refuse an oversize file: it read it", time.Since(start))
			}
		})
	}
}

func TestMoveAside(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		now  time.Time
		want string
	}{
		{"UTC", time.Date(2026, 1, 30, 14, 30, 5, 0, time.UTC), ".corrupt-20260130T143005.000000Z"},
		{"other zone is rendered in UTC", time.Date(2026, 1, 30, 15, 30, 5, 999_999_999, cet), ".corrupt-20260130T143005.999999Z"},
		{"date changes in UTC", time.Date(2026, 1, 1, 0, 30, 0, 0, cet), ".corrupt-20251231T233000.000000Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, inventoryName, []byte("{garbage"), 0o644)
			got, err := MoveAside(path, "corrupt", tc.now)
			if err != nil {
				t.Fatalf("MoveAside: %v", err)
			}
			if want := path + tc.want; got != want {
				t.Errorf("MoveAside = %q, want %q", got, want)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still exists after MoveAside (err %v)", path, err)
			}
			if data, err := os.ReadFile(got); err != nil || string(data) != "{garbage" {
				t.Errorf("moved file holds %q (err %v), want the original contents", data, err)
			}
		})
	}
}

func TestMoveAsideMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), inventoryName)
	got, err := MoveAside(path, "corrupt", t0)
	if got != "" || err != nil {
		t.Errorf("MoveAside(missing) = %q, %v; want \"\", nil", got, err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestSaveTimesForPython: every time in a saved inventory is UTC with six
// fractional digits and a Z, which Python 3.8's fromisoformat parses after
// .replace('Z', '+00:00'): whatever the zone and precision it was held in.
func TestSaveTimesForPython(t *testing.T) {
	inv := sampleInventory()
	odd := time.Date(2026, 1, 30, 15, 30, 0, 123400000, time.FixedZone("CET", 3600))
	inv.Containers[0].CreatedAt = odd
	inv.Containers[0].StartedAt = &odd
	inv.HostProcesses[0].StartedAt = odd.Add(10 * time.Millisecond)
	inv.Scan.Time = odd.Add(time.Nanosecond)
	path := filepath.Join(t.TempDir(), inventoryName)
	if err := Save(path, inv); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	field := regexp.MustCompile(`"(time|last_success|created_at|started_at|detected_at|last_seen|cpu_sampled_at)":("[^"]*"|null)`)
	python38 := regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"$`)
	n := 0
	for _, m := range field.FindAllSubmatch(data, -1) {
		if string(m[2]) == "null" {
			continue
		}
		n++
		if !python38.Match(m[2]) {
			t.Errorf("%s is %s, not six fractional digits in UTC", m[1], m[2])
		}
	}
	if n < 10 {
		t.Errorf("found %d times in the saved inventory; the test reads too few", n)
	}
	if !bytes.Contains(data, []byte(`"created_at":"2026-01-30T14:30:00.123400Z"`)) {
		t.Errorf("created_at not converted to UTC with six digits")
	}
}

// wholeView is the inventory's encoding as encoding/json writes it in one
// piece: the definition encodeTo, which writes the containers one at a
// time, must match byte for byte.
func wholeView(t *testing.T, inv *Inventory) []byte {
	t.Helper()
	v := viewWithoutContainers(inv)
	if inv.Containers != nil {
		v.Containers = make([]containerView, len(inv.Containers))
		for i := range inv.Containers {
			v.Containers[i] = newContainerView(&inv.Containers[i])
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestEncodeMatchesWholeView: every field set, hostile strings (a source
// error that spells the containers field, HTML, invalid UTF-8), no
// containers, one, and an empty list all encode as encoding/json encodes
// the whole view.
func TestEncodeMatchesWholeView(t *testing.T) {
	var full Inventory
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n)
	hostile := full
	hostile.Sources = map[string]SourceStatus{"containers": {Error: `,"containers":null,<&>` + "\xff\u2028"}}
	hostile.Containers = append(slices.Clone(full.Containers), Container{ID: "x", Name: "<b>\x1b[2J", Command: `"containers":null`,
		Labels: map[string]string{"containers": "null", "": "\x00"}})
	one := full
	one.Containers = full.Containers[:1]
	none := full
	none.Containers = nil
	empty := full
	empty.Containers = []Container{}
	for name, inv := range map[string]*Inventory{"every field": &full, "hostile strings": &hostile, "one container": &one,
		"no containers": &none, "an empty list": &empty, "nothing": {}} {
		var got bytes.Buffer
		if err := encodeTo(&got, inv); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := wholeView(t, inv); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got.Bytes(), want)
		}
	}
}

// TestEncodeContainersInPieces: the containers encoded in pieces, by one
// worker or several, read as encoding the list whole does, whatever the
// count's relation to the piece size, and an error in any piece stops the
// encoding with that error.
func TestEncodeContainersInPieces(t *testing.T) {
	var full Inventory
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n)
	for _, count := range []int{1, encodeChunk - 1, encodeChunk, encodeChunk + 1, 5*encodeChunk + 3} {
		cs := make([]Container, count)
		for i := range cs {
			cs[i] = full.Containers[0]
			cs[i].ID, cs[i].Name = fmt.Sprintf("%064x", i), fmt.Sprintf("c<%d>\u2028", i)
		}
		views := make([]containerView, len(cs))
		for i := range cs {
			views[i] = newContainerView(&cs[i])
		}
		want, err := json.Marshal(views)
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 2, 3, maxEncodeWorkers, 16} {
			var got bytes.Buffer
			ew := errWriter{w: &got}
			ew.write([]byte{'['})
			if err := encodeContainers(&ew, cs, workers); err != nil {
				t.Fatalf("%d containers, %d workers: %v", count, workers, err)
			}
			ew.write([]byte{']'})
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%d containers, %d workers: encoded differently from the whole list", count, workers)
			}
		}
	}
	bad := make([]Container, 3*encodeChunk)
	bad[2*encodeChunk+5].CPUPercent = ptr(math.NaN())
	var sink bytes.Buffer
	if err := encodeContainers(&errWriter{w: &sink}, bad, 2); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("a NaN in the third piece: error %v, want encoding/json's", err)
	}
}

// TestSaveOverLimit: an inventory Load would refuse is not saved, and
// neither the previous file nor a temporary one is left changed behind.
func TestSaveOverLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inv.json")
	small := &Inventory{SchemaVersion: SchemaVersion}
	if err := Save(path, small); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	big := &Inventory{SchemaVersion: SchemaVersion}
	cmd := strings.Repeat("x", 4<<20)
	for i := range MaxFileSize/len(cmd) + 1 {
		big.Containers = append(big.Containers, Container{ID: fmt.Sprintf("%064x", i+1), Type: TypeRawDocker, Status: "created", User: "unknown", UserSource: "none", Command: cmd})
	}
	err := Save(path, big)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("over the %d-byte limit", MaxFileSize)) {
		t.Fatalf("Save: %v, want the limit named", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the previous inventory changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}
