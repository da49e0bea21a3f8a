//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// The hostile suite: what a user of the docker group, or of a group that
// may write the ds01 directories, can hand the scanner and the query tool —
// terminal escapes, line breaks and megabytes in labels and command lines,
// forged, huge, linked and FIFO inventories, linked event logs and lock
// files, links planted in a shared state directory — and secrets in
// container environments and labels. In every case the scan completes or
// refuses cleanly, writes nothing outside its own files, stores no secret,
// and nothing printed can drive a terminal.

// hostileEsc is a string a container creator controls (a label, an
// argument) that would clear the screen, retitle the terminal, start a C1
// control sequence, reverse the text's direction and forge a table row if
// it reached a terminal raw. ROWBREAK follows each line break, so a row
// split in two shows as a line starting with it. Its invalid UTF-8 cannot
// reach a container: the Engine API is JSON, which the engine decodes to
// U+FFFD; it reaches the scanner raw through a process's command line.
const hostileEsc = "\x1b[2J\x1b]0;ds01hostile-title\x07\u009b31m\u202eevil\u202c\x00\r\nROWBREAK raw-docker root 0 running 1s forged\rROWBREAK\xff\xfe"

// hostileArg is hostileEsc as a command-line argument can hold it: execve
// takes no NUL.
var hostileArg = strings.ReplaceAll(hostileEsc, "\x00", "")

// hostileToken returns n random bytes as hex: a value no test or product
// string holds by chance.
func hostileToken(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// hostileCreate creates a container through the Engine API, which takes
// what the CLI cannot pass (a single argument is capped at 128 KiB by
// execve, and --label-file reads lines of at most 64 KiB). It removes the
// container at cleanup and returns its ID.
func hostileCreate(t *testing.T, name string, config map[string]any) string {
	t.Helper()
	sock, ok := strings.CutPrefix(env.dockerHost, "unix://")
	mustHave(t, ok, "the private engine is not on a unix socket")
	hc := &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	defer hc.CloseIdleConnections()
	if _, ok := config["Image"]; !ok {
		config["Image"] = env.image
	}
	body, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post("http://docker/containers/create?name="+url.QueryEscape(name), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var created struct {
		ID      string `json:"Id"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(data, &created); err != nil || resp.StatusCode != http.StatusCreated || !inventory.ValidContainerID(created.ID) {
		t.Fatalf("create %s: HTTP %d: %.500s", name, resp.StatusCode, data)
	}
	t.Cleanup(func() { dockerErr("rm", "-f", created.ID) })
	return created.ID
}

// hostileAssertTerminalSafe fails if out could drive a terminal: invalid
// UTF-8, or any control character but newline and tab (ESC, BEL, CR, NUL,
// C1), or a bidirectional override.
func hostileAssertTerminalSafe(t *testing.T, what string, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Errorf("%s: not valid UTF-8: %.300q", what, out)
		return
	}
	s := string(out)
	for i, r := range s {
		bidi := r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f
		if (unicode.IsControl(r) && r != '\n' && r != '\t') || bidi {
			from := max(i-60, 0)
			t.Errorf("%s: raw %U at byte %d: …%q…", what, r, i, s[from:min(i+60, len(s))])
			return
		}
	}
}

// hostileAssertRowsWhole fails if a line of out begins with ROWBREAK: a
// line break from the data split a row in two.
func hostileAssertRowsWhole(t *testing.T, what string, out []byte) {
	t.Helper()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "ROWBREAK") {
			t.Errorf("%s: a line break in the data started a new line: %.200q", what, line)
		}
	}
}

// hostileQueryAll runs ds01-workloads in every documented output form on
// path and checks that each exits 0 with terminal-safe, whole-row output
// and exact JSON. It returns the --all --json document.
func hostileQueryAll(t *testing.T, path string) hostileJSONDoc {
	t.Helper()
	for _, args := range [][]string{{}, {"--all"}, {"--wide"}, {"--all", "--wide"}} {
		what := "ds01-workloads " + strings.Join(args, " ")
		r := workloads(t, path, args...)
		if r.code != 0 {
			t.Errorf("%s:\n%s", what, r)
			continue
		}
		hostileAssertTerminalSafe(t, what+" stdout", r.stdout)
		hostileAssertTerminalSafe(t, what+" stderr", r.stderr)
		hostileAssertRowsWhole(t, what, r.stdout)
	}
	var doc hostileJSONDoc
	for _, args := range [][]string{{"--json"}, {"--all", "--json"}} {
		what := "ds01-workloads " + strings.Join(args, " ")
		r := workloads(t, path, args...)
		if r.code != 0 {
			t.Errorf("%s:\n%s", what, r)
			continue
		}
		if !json.Valid(r.stdout) {
			t.Errorf("%s: stdout is not one JSON document: %.500q", what, r.stdout)
			continue
		}
		// JSON on a terminal is read there too (it is indented for that):
		// encoding/json escapes C0 controls but leaves C1 controls (U+009B
		// is CSI to xterm and VTE) and bidirectional overrides raw, where
		// \u009b and \u202e would decode to the same strings.
		hostileAssertTerminalSafe(t, what+" stdout", r.stdout)
		hostileAssertTerminalSafe(t, what+" stderr", r.stderr)
		doc = hostileJSONDoc{}
		if err := json.Unmarshal(r.stdout, &doc); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	return doc
}

// hostileJSONDoc is the part of the --json document these tests read.
type hostileJSONDoc struct {
	Workloads []struct {
		Type           string            `json:"type"`
		ID             string            `json:"id"`
		Name           string            `json:"name"`
		User           string            `json:"user"`
		Status         string            `json:"status"`
		Image          string            `json:"image"`
		Command        string            `json:"command"`
		GPUs           []string          `json:"gpus"`
		DetectedLabels map[string]string `json:"detected_labels"`
	} `json:"workloads"`
}

// TestHostileStringsInContainers creates containers whose labels and
// command lines hold terminal escapes, line breaks, a ds01.user label with
// an escape, and 1 MiB values (through the API: the CLI cannot pass them),
// and scans twice with the Prometheus export on: the scans succeed, the
// inventory loads, every event line is whole JSON under 4096 bytes, no
// 1 MiB value reaches the inventory, the events, the textfile or the logs,
// nothing the scanner or ds01-workloads prints can drive a terminal or
// split a row, --json is exact, and the second scan finds nothing changed.
func TestHostileStringsInContainers(t *testing.T) {
	labelMark := "ds01hostile-label-" + hostileToken(t, 8)
	cmdMark := "ds01hostile-cmd-" + hostileToken(t, 8)
	big := strings.Repeat(labelMark+" ", (1<<20)/(len(labelMark)+1)+1)[:1<<20]
	// The command is kept cut to detect.MaxCommand (4096) bytes; its mark
	// sits past the cut.
	bigCmd := strings.Repeat("y", 8192) + strings.Repeat(cmdMark+" ", (1<<20)/(len(cmdMark)+1))
	suffix := hostileToken(t, 4)
	textDir := t.TempDir()

	escID := hostileCreate(t, "ds01hostile-esc-"+suffix, map[string]any{
		"Cmd": []string{"sh", "-c", "sleep 600", hostileArg},
		"Labels": map[string]string{
			"ds01.managed":   "true",
			"ds01.user":      hostileEsc + "mallory",
			"ds01.note":      hostileEsc,
			"ds01.gpu.uuids": "GPU-\u202eevil,GPU-" + hostileEsc + ",GPU-ok",
			"db.note":        hostileEsc,
		},
	})
	docker(t, "start", escID)
	bigID := hostileCreate(t, "ds01hostile-big-"+suffix, map[string]any{
		"Cmd": []string{"sleep", "600", bigCmd},
		"Labels": map[string]string{
			"ds01.user":      big,
			"ds01.note":      big,
			"ds01.gpu.uuids": big,
			"db.blob":        big,
		},
	})
	detectedID := hostileCreate(t, "ds01hostile-detected-"+suffix, map[string]any{
		"Cmd": []string{"sleep", "600"},
		"Labels": map[string]string{
			"ds01.detected":        "true",
			"ds01.detected.user":   hostileEsc,
			"ds01.detected.origin": hostileEsc,
			"ds01.detected.note":   big,
		},
	})

	s := newScanner(t)
	inv, r := s.mustScan(t, scanOpts{args: []string{"--textfile-dir", textDir, "--verbose"}})
	hostileAssertTerminalSafe(t, "ds01-scan --verbose output", append(r.stdout, r.stderr...))

	files := map[string][]byte{}
	for name, path := range map[string]string{"inventory": s.state, "event log": s.events, "textfile": filepath.Join(textDir, "ds01.prom")} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		files[name] = data
	}
	files["scanner output"] = append(r.stdout, r.stderr...)
	for name, data := range files {
		for _, mark := range []string{labelMark, cmdMark} {
			if bytes.Contains(data, []byte(mark)) {
				t.Errorf("the %s holds part of a 1 MiB value (%s)", name, mark[:len("ds01hostile-label")])
			}
		}
	}
	// The textfile is read by node_exporter, not a terminal, but its label
	// values must still hold no raw escape or line break.
	if tf := files["textfile"]; !utf8.Valid(tf) || bytes.ContainsAny(tf, "\x1b\x07\r\x00") {
		t.Errorf("textfile holds invalid UTF-8 or a raw control character")
	}

	esc := mustFind(t, inv, escID)
	if strings.ContainsAny(esc.User, "\x1b\x07\n") || esc.UserSource == "label:ds01.user" {
		t.Errorf("a ds01.user label holding an escape named the user: %q from %s", esc.User, esc.UserSource)
	}
	for _, d := range esc.GPU.Devices {
		if strings.ContainsFunc(d, unicode.IsControl) {
			t.Errorf("declared GPU %q holds a control character", d)
		}
	}
	if _, kept := esc.Labels["db.note"]; kept {
		t.Errorf("a label ds01 does not read was stored")
	}
	bigC := mustFind(t, inv, bigID)
	if len(bigC.Command) > 4096 {
		t.Errorf("command of %d bytes stored, want at most 4096", len(bigC.Command))
	}
	for k := range bigC.Labels {
		if k == "ds01.user" || k == "ds01.note" || k == "ds01.gpu.uuids" || k == "db.blob" {
			t.Errorf("1 MiB label %s stored", k)
		}
	}
	if bigC.User != "unknown" {
		t.Errorf("a 1 MiB ds01.user label named the user %.80q", bigC.User)
	}
	det := mustFind(t, inv, detectedID)
	if _, kept := det.DetectedLabels["ds01.detected.note"]; kept {
		t.Errorf("1 MiB ds01.detected.note kept in detected_labels")
	}
	if strings.ContainsAny(det.User, "\x1b\x07\n") {
		t.Errorf("a ds01.detected.user label holding an escape named the user %q", det.User)
	}

	events := s.allEvents(t)
	for _, id := range []string{escID, bigID, detectedID} {
		n := 0
		for _, e := range events {
			if e.EventType == discovered && e.ContainerID == id {
				n++
			}
		}
		if n != 1 {
			t.Errorf("container %s: %d discovered events, want 1", id[:12], n)
		}
	}

	doc := hostileQueryAll(t, s.state)
	for _, w := range doc.Workloads {
		c := find(inv, w.ID)
		if c == nil {
			continue
		}
		if w.Command != c.Command || w.Name != c.Name || w.User != c.User || w.Image != c.Image {
			t.Errorf("--json workload %s differs from the inventory: %.200q vs %.200q", w.ID[:12], w.Command, c.Command)
		}
		if w.ID == detectedID && w.DetectedLabels["ds01.detected.origin"] != c.DetectedLabels["ds01.detected.origin"] {
			t.Errorf("--json detected_labels %q, inventory %q", w.DetectedLabels, c.DetectedLabels)
		}
	}

	// A second scan inspects nothing new and must find nothing changed:
	// a hostile string that did not survive the round trip through the
	// file would show as a transition.
	before := len(events)
	s.mustScan(t, scanOpts{args: []string{"--textfile-dir", textDir}})
	for _, e := range s.allEvents(t)[before:] {
		if id := e.ContainerID; id == escID || id == bigID || id == detectedID {
			t.Errorf("second scan: %s for %s: a false transition", e.EventType, id[:12])
		}
	}
}

// TestHostileHostProcessCommand: a host GPU process whose command line
// holds terminal escapes, line breaks, invalid UTF-8 and 100 KiB is stored
// cut to 4096 bytes, shown by ds01-workloads with the escapes made visible
// (NAME is a host process's command line) and never raw, given exactly by
// --json, and causes no false transition on later scans.
func TestHostileHostProcessCommand(t *testing.T) {
	g := newGPUScanner(t)
	u := newUser(t, "ds01hostile"+strconv.Itoa(os.Getpid()%100000))
	cmdMark := "ds01hostile-argv-" + hostileToken(t, 8)
	cmd := exec.Command("sleep", "600")
	// sleep ignores its argv[0], which the process sets as it likes.
	cmd.Args[0] = hostileArg + strings.Repeat("z", 100<<10) + cmdMark
	cmd.SysProcAttr = u.credential()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	g.report(t, mockNVML{Processes: []mockProcess{{GPU: 0, PID: pid, MemoryBytes: 1 << 30, Kind: "compute"}}})
	g.scan(t)
	inv := g.scan(t)
	p := findProcess(inv, pid)
	if p == nil {
		t.Fatalf("host GPU process %d not in the inventory after two scans", pid)
	}
	// 4096 bytes are read; each invalid byte among them becomes U+FFFD
	// (3 bytes) in the JSON file.
	if len(p.Command) > 3*4096 || strings.Contains(p.Command, cmdMark) {
		t.Errorf("command of %d bytes stored (mark present: %v), want it cut to 4096 bytes read", len(p.Command), strings.Contains(p.Command, cmdMark))
	}
	if !strings.HasPrefix(p.Command, "\x1b[2J") {
		t.Errorf("command %.60q: the escape is not stored as the process set it", p.Command)
	}

	for _, args := range [][]string{{}, {"--wide"}, {"--all"}} {
		r := workloads(t, g.state, args...)
		what := "ds01-workloads " + strings.Join(args, " ")
		if r.code != 0 {
			t.Fatalf("%s:\n%s", what, r)
		}
		if !bytes.Contains(r.stdout, []byte(`\x1b[2J`)) || !bytes.Contains(r.stdout, []byte("ROWBREAK")) {
			t.Errorf("%s: the process's command line is not shown with its escapes made visible:\n%.3000s", what, r.stdout)
		}
	}
	doc := hostileQueryAll(t, g.state)
	found := false
	for _, w := range doc.Workloads {
		if w.ID == strconv.Itoa(pid) {
			found = true
			if w.Command != p.Command || w.Name != p.Command {
				t.Errorf("--json command %.100q, name %.100q; inventory %.100q", w.Command, w.Name, p.Command)
			}
		}
	}
	if !found {
		t.Errorf("--json lists no workload %d", pid)
	}

	g.scan(t)
	g.scan(t)
	if got := g.hostEvents(t, pid); len(got) != 1 || got[0] != inventory.EventHostProcessDiscovered {
		t.Errorf("events for the process %v, want one discovered: a hostile command line made a false transition", got)
	}
	g.allEvents(t)
}

// TestHostileForgedInventoryQuery hands ds01-workloads a valid inventory
// forged with hostile strings in every string field it may print (a
// group-writable state directory lets anyone write one): every output form
// exits 0, prints nothing that can drive a terminal or split a row, and
// --json gives the strings exactly.
func TestHostileForgedInventoryQuery(t *testing.T) {
	now := time.Now().UTC()
	started := now.Add(-time.Hour)
	mem := uint64(1 << 30)
	long := strings.Repeat("n", 1<<20) + hostileEsc
	inv := &inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		Scan:          inventory.ScanInfo{ID: hostileEsc, Time: now, Host: hostileEsc, Version: hostileEsc},
		Sources: map[string]inventory.SourceStatus{
			"docker":   {OK: true, LastSuccess: &now},
			"nvml":     {OK: false, Error: hostileEsc},
			hostileEsc: {OK: false, Error: hostileEsc},
		},
		Containers: []inventory.Container{{
			ID: strings.Repeat("ab", 32), Name: hostileEsc, Image: hostileEsc, Command: hostileEsc,
			Type: inventory.TypeRawDocker, Status: "running", CreatedAt: started, StartedAt: &started,
			DetectedAt: started, LastSeen: now, User: hostileEsc, UserSource: hostileEsc,
			GPU:          inventory.GPUAccess{Declared: true, Channels: []string{hostileEsc}, Devices: []string{hostileEsc, "0"}},
			GPUProcesses: []inventory.GPUProcess{{PID: 77, GPU: hostileEsc, MemoryBytes: &mem, Command: hostileEsc}},
			GPUAccess:    inventory.AccessInUse, Runtime: hostileEsc, InspectError: hostileEsc,
			Labels:         map[string]string{hostileEsc: hostileEsc},
			DetectedLabels: map[string]string{hostileEsc: hostileEsc, "ds01.detected.user": hostileEsc},
		}, {
			ID: strings.Repeat("cd", 32), Name: long, Image: "img", Command: long, Type: inventory.TypeUnknown,
			Status: hostileEsc, CreatedAt: started, DetectedAt: started, LastSeen: now, User: "unknown", UserSource: "none",
			Stale: true, DetectedLabels: map[string]string{},
		}},
		HostProcesses: []inventory.HostProcess{{
			PID: 4242, StartTicks: 1, Type: inventory.TypeHostProcess, Command: hostileEsc, User: hostileEsc,
			UserSource: hostileEsc, StartedAt: started, DetectedAt: started, LastSeen: now,
			GPUs: []string{hostileEsc, "1:2"}, GPUMemoryBytes: &mem, Kinds: []string{hostileEsc},
		}, {
			PID: 4343, StartTicks: 2, Type: inventory.TypeSystem, Command: hostileEsc, User: "root",
			UserSource: "process_uid", StartedAt: started, DetectedAt: started, LastSeen: now, GPUs: []string{"0"},
		}},
		PendingProcesses: []inventory.HostProcess{},
		GPUs: []inventory.GPUDevice{{ID: "0", UUID: hostileEsc, Name: hostileEsc, Error: hostileEsc},
			{ID: hostileEsc, UUID: hostileEsc, Name: hostileEsc, Parent: "0"}},
	}
	path := filepath.Join(t.TempDir(), "workload-inventory.json")
	if err := inventory.Save(path, inv); err != nil {
		t.Fatalf("save forged inventory: %v", err)
	}
	saved, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := hostileQueryAll(t, path)
	want := map[string]inventory.Workload{}
	for _, w := range saved.Workloads() {
		want[w.ID] = w
	}
	if len(doc.Workloads) != len(want) {
		t.Errorf("--all --json lists %d workloads, want %d", len(doc.Workloads), len(want))
	}
	for _, w := range doc.Workloads {
		exp, ok := want[w.ID]
		if !ok {
			t.Errorf("--json workload %.80q is not in the inventory", w.ID)
			continue
		}
		if w.Name != exp.Name || w.Command != exp.Command || w.User != exp.User || w.Image != exp.Image || w.Status != exp.Status {
			t.Errorf("--json workload %s: strings differ from the inventory's", w.ID)
		}
	}
}

// hostileFileState is what must not change about a file the scanner must
// not touch.
type hostileFileState struct {
	exists  bool
	sum     [32]byte
	mode    os.FileMode
	modTime time.Time
	uid     uint32
}

func hostileSnapshot(t *testing.T, path string) hostileFileState {
	t.Helper()
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return hostileFileState{}
	}
	if err != nil {
		t.Fatal(err)
	}
	s := hostileFileState{exists: true, mode: st.Mode(), modTime: st.ModTime(), uid: st.Sys().(*syscall.Stat_t).Uid}
	if st.Mode().IsRegular() {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s.sum = sha256.Sum256(data)
	}
	return s
}

func hostileAssertUnchanged(t *testing.T, path string, before hostileFileState) {
	t.Helper()
	if after := hostileSnapshot(t, path); after != before {
		t.Errorf("%s changed: before %+v, after %+v", path, before, after)
	}
}

// hostileSecretsOf returns the hash fields of /etc/shadow long enough to
// recognise: content that must never be read into ds01's files or output.
func hostileSecretsOf(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 1 && len(f[1]) >= 8 {
			out = append(out, f[1])
		}
		if len(line) >= 8 {
			out = append(out, line)
		}
	}
	return out
}

// hostileInventoryCases are inventory files a scan may find: torn,
// forged, huge, a link to a secret, a FIFO, a directory.
var hostileInventoryCases = []struct {
	name  string
	plant func(t *testing.T, path string)
	// kind is what a file moved aside must be (0 for a regular file).
	kind os.FileMode
}{
	{"truncated", func(t *testing.T, path string) {
		data, err := json.Marshal(map[string]any{"schema_version": 1, "containers": []any{}, "host_processes": []any{}})
		if err != nil {
			t.Fatal(err)
		}
		hostileWrite(t, path, data[:len(data)/2])
	}, 0},
	{"forged with wrong types", func(t *testing.T, path string) {
		hostileWrite(t, path, []byte(`{"schema_version":1,"scan":"yesterday","sources":[1,2],`+
			`"containers":[{"id":42,"type":["raw-docker"],"labels":"x"}],"host_processes":{"pid":"1"}}`))
	}, 0},
	{"forged with a bad id", func(t *testing.T, path string) {
		hostileWrite(t, path, []byte(`{"schema_version":1,"containers":[{"id":"../../../etc/passwd","type":"raw-docker"}]}`))
	}, 0},
	{"forged schema", func(t *testing.T, path string) {
		hostileWrite(t, path, []byte(`{"schema_version":99}`))
	}, 0},
	{"200 MB sparse", func(t *testing.T, path string) {
		hostileWrite(t, path, []byte(`{"schema_version":1,"containers":[`))
		if err := os.Truncate(path, 200<<20); err != nil {
			t.Fatal(err)
		}
	}, 0},
	{"symlink to /etc/shadow", func(t *testing.T, path string) {
		if err := os.Symlink("/etc/shadow", path); err != nil {
			t.Fatal(err)
		}
	}, os.ModeSymlink},
	{"fifo", func(t *testing.T, path string) {
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}, os.ModeNamedPipe},
	{"directory", func(t *testing.T, path string) {
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
	}, os.ModeDir},
}

func hostileWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileInventoryFileScanner: a scan that finds its inventory torn,
// forged, 200 MB, a link to /etc/shadow, a FIFO or a directory moves it
// aside without following or blocking on it, exits 0 with a fresh
// inventory and a detection.inventory_reset event, and never reads the
// link's target.
func TestHostileInventoryFileScanner(t *testing.T) {
	_, err := os.Stat("/etc/shadow")
	mustHave(t, err == nil, "/etc/shadow missing")
	shadow := hostileSnapshot(t, "/etc/shadow")
	secrets := hostileSecretsOf(t, "/etc/shadow")
	for _, tc := range hostileInventoryCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScanner(t)
			tc.plant(t, s.state)
			planted, err := os.Lstat(s.state)
			if err != nil {
				t.Fatal(err)
			}
			inv, r := s.mustScan(t, scanOpts{})
			if r.took() > 20*time.Second {
				t.Errorf("scan took %s, over its 20 s slot", r.took())
			}
			st, err := os.Lstat(s.state)
			if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != inventory.FileMode {
				t.Errorf("new inventory: %v, mode %v; want a regular 0644 file", err, st.Mode())
			}
			if inv.SchemaVersion != inventory.SchemaVersion || inv.Scan.ID == "" {
				t.Errorf("new inventory is not a fresh one: %+v", inv.Scan)
			}
			resets := 0
			for _, e := range s.allEvents(t) {
				if e.EventType == inventory.EventInventoryReset {
					resets++
					if reason, _ := e.Details["reason"].(string); reason == "" {
						t.Errorf("inventory_reset event without a reason: %v", e.Details)
					}
				}
			}
			if resets != 1 {
				t.Errorf("%d inventory_reset events, want 1", resets)
			}
			aside, _ := filepath.Glob(s.state + ".corrupt-*")
			switch {
			case len(aside) > 1:
				t.Errorf("moved aside %d times: %v", len(aside), aside)
			case len(aside) == 1:
				st, err := os.Lstat(aside[0])
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Type() != tc.kind || !os.SameFile(st, planted) {
					t.Errorf("%s is a %v, not the planted %v itself", aside[0], st.Mode().Type(), tc.kind)
				}
			case tc.kind == 0:
				t.Errorf("the corrupt inventory was not kept for examination")
			}
			hostileAssertUnchanged(t, "/etc/shadow", shadow)
			for name, path := range map[string]string{"inventory": s.state, "event log": s.events} {
				data, _ := os.ReadFile(path)
				for _, sec := range secrets {
					if bytes.Contains(data, []byte(sec)) {
						t.Fatalf("the %s holds content of /etc/shadow", name)
					}
				}
			}
			for _, sec := range secrets {
				if bytes.Contains(r.stderr, []byte(sec)) || bytes.Contains(r.stdout, []byte(sec)) {
					t.Fatalf("the scanner printed content of /etc/shadow")
				}
			}
		})
	}
}

// TestHostileInventoryFileQuery: ds01-workloads, handed the same files,
// prints one clear line on stderr and nothing on stdout, exits 1 at once
// (a FIFO does not block it), never prints a stack trace or the content of
// the link's target, and leaves the file as it found it.
func TestHostileInventoryFileQuery(t *testing.T) {
	_, err := os.Stat("/etc/shadow")
	mustHave(t, err == nil, "/etc/shadow missing")
	secrets := hostileSecretsOf(t, "/etc/shadow")
	for _, tc := range hostileInventoryCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "workload-inventory.json")
			tc.plant(t, path)
			before := hostileSnapshot(t, path)
			for _, args := range [][]string{{}, {"--all", "--wide"}, {"--json"}} {
				r := workloads(t, path, args...)
				what := "ds01-workloads " + strings.Join(args, " ")
				if r.code != 1 || len(r.stdout) != 0 {
					t.Errorf("%s: want exit 1 and no output:\n%s", what, r)
				}
				if r.took() > 5*time.Second {
					t.Errorf("%s took %s", what, r.took())
				}
				msg := string(r.stderr)
				if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.HasPrefix(msg, "ds01-workloads: ") ||
					len(strings.TrimSpace(strings.TrimPrefix(msg, "ds01-workloads: "))) < 10 {
					t.Errorf("%s: want one line of error, got %q", what, msg)
				}
				if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "panic") {
					t.Errorf("%s: stack trace: %s", what, msg)
				}
				hostileAssertTerminalSafe(t, what, r.stderr)
				for _, sec := range secrets {
					if strings.Contains(msg, sec) {
						t.Fatalf("%s printed content of /etc/shadow", what)
					}
				}
			}
			hostileAssertUnchanged(t, path, before)
		})
	}
}

// TestHostileEventLog: an event log that is a symbolic link (or a FIFO)
// makes the scan refuse it, exit non-zero with a clear message and leave
// the target untouched; the inventory advances with the transition it could
// not log waiting in its outbox, and the first scan after the log is fixed
// logs it, once.
func TestHostileEventLog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, events, target string)
		want  string
	}{
		{"symlink", func(t *testing.T, events, target string) {
			if err := os.Symlink(target, events); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"dangling symlink", func(t *testing.T, events, target string) {
			if err := os.Symlink(target+".new", events); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"fifo", func(t *testing.T, events, _ string) {
			if err := syscall.Mkfifo(events, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "event log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScanner(t)
			container(t, "create", "--name", "ds01hostile-ev1-"+hostileToken(t, 4), env.image)
			s.scan(t)
			s.scan(t)

			// A change the next scan must log.
			later := container(t, "create", "--name", "ds01hostile-ev2-"+hostileToken(t, 4), env.image)
			target := filepath.Join(t.TempDir(), "outside.log")
			hostileWrite(t, target, []byte("not ds01's\n"))
			targetBefore := hostileSnapshot(t, target)
			if err := os.Rename(s.events, s.events+".real"); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, s.events, target)

			r := s.run(t, scanOpts{})
			if r.code == 0 {
				t.Errorf("scan with the event log a %s exited 0:\n%s", tc.name, r)
			}
			if last := lastLine(string(r.stderr)); !strings.HasPrefix(last, "ds01-scan: ") || !strings.Contains(last, tc.want) {
				t.Errorf("want a last line \"ds01-scan: …%s…\", got:\n%s", tc.want, r.stderr)
			}
			hostileAssertUnchanged(t, target, targetBefore)
			if _, err := os.Lstat(target + ".new"); err == nil {
				t.Errorf("a dangling link's target was created")
			}
			if inv, err := inventory.Load(s.state); err != nil || inv.Outbox == nil || len(inv.Outbox.Events) != 1 {
				t.Errorf("the inventory after the refused log: want the discovery waiting in its outbox; %v", err)
			}

			os.Remove(s.events)
			if err := os.Rename(s.events+".real", s.events); err != nil {
				t.Fatal(err)
			}
			s.scan(t)
			if got := s.eventsFor(t, later); len(got) != 1 || got[0] != discovered {
				t.Errorf("events for the container created while the log was refused: %v, want one discovered", got)
			}
		})
	}
}

// TestHostileLockFile: a lock file that is a link, to an existing file or
// to none, is refused without following it: the target keeps its content
// and mode, and a missing target is not created.
func TestHostileLockFile(t *testing.T) {
	s := newScanner(t)
	outside := t.TempDir()
	target := filepath.Join(outside, "precious")
	hostileWrite(t, target, []byte("keep\n"))
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	targetBefore := hostileSnapshot(t, target)
	missing := filepath.Join(outside, "created-by-ds01")

	for _, tc := range []struct{ name, lock, points string }{
		{"flag to a link to a file", filepath.Join(s.dir, "scan.lock"), target},
		{"flag to a dangling link", filepath.Join(s.dir, "scan2.lock"), missing},
		{"default lock in the state directory", filepath.Join(s.dir, ".scan.lock"), missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Symlink(tc.points, tc.lock); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(tc.lock)
			args := []string{}
			if filepath.Base(tc.lock) != ".scan.lock" {
				args = []string{"--lock-file", tc.lock}
			}
			r := s.run(t, scanOpts{args: args})
			if r.code != 0 && !strings.Contains(string(r.stderr), "lock") {
				t.Errorf("scan refused without saying it is the lock file:\n%s", r)
			}
			if r.code == 0 {
				t.Logf("scan with a linked lock file exited 0: %s", r.stderr)
			}
			hostileAssertUnchanged(t, target, targetBefore)
			if _, err := os.Lstat(missing); err == nil {
				t.Errorf("the link's missing target %s was created", missing)
			}
			if st, err := os.Lstat(tc.lock); err != nil || st.Mode().Type() != os.ModeSymlink {
				t.Errorf("the planted link was replaced or removed: %v", err)
			}
		})
	}
}

// TestHostileSharedStateDir: the state directory is root:<group> 0775, as
// on lab servers where the lab's tools share /var/lib/ds01, and a member
// of the group plants links: at the inventory's name, at temporary names
// the scanner might pick, and at the textfile's name, all pointing at
// files outside. Scans keep working and write nothing outside: every
// target keeps its content, mode and mtime, the directory keeps its owner
// and mode, and the inventory is a regular file of root's.
func TestHostileSharedStateDir(t *testing.T) {
	eve := newUser(t, "ds01hostile-eve")
	gid := eve.gid

	s := newScanner(t)
	if err := os.Chown(s.dir, 0, gid); err != nil {
		t.Fatal(err)
	}
	// Not sticky and not world-writable: the kernel's protected_symlinks
	// does not apply, so only the scanner's own care stops a link.
	if err := os.Chmod(s.dir, 0o775); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	targets := map[string]hostileFileState{}
	plant := func(name, target string) {
		t.Helper()
		path := filepath.Join(outside, target)
		if _, err := os.Lstat(path); err != nil {
			hostileWrite(t, path, []byte(target+" is not ds01's\n"))
			targets[path] = hostileSnapshot(t, path)
		}
		link := filepath.Join(s.dir, name)
		os.Remove(link)
		if err := os.Symlink(path, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, eve.uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	plantAll := func() {
		plant("workload-inventory.json", "inventory-target")
		for _, guess := range []string{"", "0", "1", "123456789", "2147483647", "4294967295", "*"} {
			plant(".workload-inventory.json.tmp-"+guess, "tmp-target-"+strings.ReplaceAll(guess, "*", "star"))
		}
		plant("ds01.prom", "prom-target")
		plant(".ds01.prom.tmp-1", "prom-tmp-target")
	}

	plantAll()
	s.mustScan(t, scanOpts{args: []string{"--textfile-dir", s.dir}})
	// The group member strikes again between scans.
	plantAll()
	s.mustScan(t, scanOpts{args: []string{"--textfile-dir", s.dir}})

	for path, before := range targets {
		hostileAssertUnchanged(t, path, before)
	}
	st, err := os.Lstat(s.state)
	if err != nil || !st.Mode().IsRegular() || st.Sys().(*syscall.Stat_t).Uid != 0 || st.Mode().Perm() != inventory.FileMode {
		t.Errorf("inventory after the scans: %v %v, want a regular 0644 file of root's", err, st.Mode())
	}
	if st, err := os.Lstat(filepath.Join(s.dir, "ds01.prom")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("textfile after the scans is not a regular file: %v", err)
	}
	dst, err := os.Stat(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o775 || dst.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
		t.Errorf("the shared directory's mode or group was changed: %v gid %d", dst.Mode(), dst.Sys().(*syscall.Stat_t).Gid)
	}
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") && e.Type().IsRegular() {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestSecretsNeverStored: a container with secrets in its environment and
// in a label ds01 does not read: neither value appears in the inventory,
// the event log, the Prometheus textfile, the scanner's output (verbose
// and dry run) or any output of ds01-workloads.
func TestSecretsNeverStored(t *testing.T) {
	awsKey := "ds01s" + hostileToken(t, 20)[:35] // 40 characters
	password := "pw-" + hostileToken(t, 16)
	labelPassword := "lbl-" + hostileToken(t, 16)
	ds01LabelPassword := "ds01lbl-" + hostileToken(t, 16)
	secrets := map[string]string{"AWS_SECRET_ACCESS_KEY": awsKey, "PASSWORD": password, "db.password label": labelPassword}

	id := container(t, "run", "-d", "--name", "ds01hostile-secret-"+hostileToken(t, 4),
		"-e", "AWS_SECRET_ACCESS_KEY="+awsKey, "-e", "PASSWORD="+password,
		"--label", "db.password="+labelPassword,
		"--label", "ds01.note=password="+ds01LabelPassword,
		// Declared GPU access puts the container in the textfile's
		// per-workload series too.
		"--label", "ds01.gpu.uuids=GPU-ds01hostile",
		env.image, "sleep", "600")

	s := newScanner(t)
	textDir := t.TempDir()
	outputs := map[string][]byte{}
	dry := s.run(t, scanOpts{args: []string{"--dry-run", "--verbose"}})
	if dry.code != 0 {
		t.Fatalf("dry run:\n%s", dry)
	}
	outputs["ds01-scan --dry-run --verbose"] = append(dry.stdout, dry.stderr...)
	inv, r := s.mustScan(t, scanOpts{args: []string{"--textfile-dir", textDir, "--verbose"}})
	outputs["ds01-scan --verbose"] = append(r.stdout, r.stderr...)
	_, r = s.mustScan(t, scanOpts{args: []string{"--textfile-dir", textDir, "--verbose"}})
	outputs["second ds01-scan --verbose"] = append(r.stdout, r.stderr...)
	mustFind(t, inv, id)

	for name, path := range map[string]string{"inventory": s.state, "event log": s.events, "textfile": filepath.Join(textDir, "ds01.prom")} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		outputs[name] = data
	}
	for _, args := range [][]string{{}, {"--all"}, {"--wide"}, {"--all", "--wide"}, {"--json"}, {"--all", "--json"}} {
		r := workloads(t, s.state, args...)
		if r.code != 0 {
			t.Errorf("ds01-workloads %v:\n%s", args, r)
		}
		outputs["ds01-workloads "+strings.Join(args, " ")] = append(r.stdout, r.stderr...)
	}
	if !bytes.Contains(outputs["ds01-workloads --all --json"], []byte(id)) {
		t.Errorf("the container is not in ds01-workloads --all --json: the search below would prove nothing")
	}
	for where, data := range outputs {
		for what, secret := range secrets {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("the %s value appears in the %s", what, where)
			}
		}
	}
	// Only the labels ds01 reads are kept; a free-text ds01.* one is not.
	for where, data := range outputs {
		if bytes.Contains(data, []byte(ds01LabelPassword)) {
			t.Errorf("the password in the ds01.note label appears in the %s", where)
		}
	}
}

// TestHostileLabelFloodInventorySize: each kept label value is capped
// (1 KiB) but not their number, and ds01.detected.* labels are kept twice
// (labels and detected_labels). A container with 35,000 such labels of
// 1000 bytes makes an inventory over inventory.MaxFileSize, which Save
// writes and the next Load refuses as corrupt: every scan would then reset
// the inventory and rediscover every container. The inventory a scan
// writes must be one the next scan loads.
func TestHostileLabelFloodInventorySize(t *testing.T) {
	const n, size = 35000, 1000
	labels := make(map[string]string, n+1)
	labels["ds01.detected"] = "true"
	value := strings.Repeat("v", size)
	for i := range n {
		labels[fmt.Sprintf("ds01.detected.flood%05d", i)] = value
	}
	id := hostileCreate(t, "ds01hostile-flood-"+hostileToken(t, 4), map[string]any{"Cmd": []string{"true"}, "Labels": labels})
	s := newScanner(t)
	if r := s.run(t, scanOpts{args: []string{"--timeout", "60s"}}); r.code != 0 {
		t.Fatalf("first scan:\n%s", r)
	}
	if _, err := inventory.Load(s.state); err != nil {
		t.Errorf("the scan exited 0 having saved an inventory that Load refuses: %v", err)
	}
	if r := s.run(t, scanOpts{args: []string{"--timeout", "60s"}}); r.code != 0 {
		t.Fatalf("second scan:\n%s", r)
	}
	for _, e := range s.allEvents(t) {
		if e.EventType == inventory.EventInventoryReset {
			t.Errorf("the second scan reset the inventory the first one wrote (%v): a label flood puts every scan in a reset loop", e.Details["reason"])
		}
	}
	if got := s.eventsFor(t, id); len(got) != 1 {
		t.Errorf("events for the flooding container %v, want one discovered", got)
	}
}
