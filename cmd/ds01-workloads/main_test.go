package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixedNow is the clock of the tests: 20 s after the scan of
// testdata/inventory.json.
var fixedNow = time.Date(2026, 1, 30, 14, 30, 20, 0, time.UTC)

// The inventories under testdata.
const (
	fixedInventory    = "testdata/inventory.json" // one workload of every kind
	degradedInventory = "testdata/degraded.json"  // a stale scan, two sources down
	ledgerInventory   = "testdata/ledger.json"    // minor numbers unlike indices, orphaned memory, MIG, a lost GPU
	hostileInventory  = "testdata/hostile.json"   // escapes, newlines, bidi, invalid UTF-8, a huge name
	truncatedFile     = "testdata/corrupt-truncated.json"
	forgedFile        = "testdata/corrupt-forged.json"
)

// invocation is one run of the command in the test process.
type invocation struct {
	args []string
	// env is the environment the command sees; nothing else leaks in.
	env   map[string]string
	stdin string
	// terminal makes stdin and stdout terminals of width columns.
	terminal bool
	width    int
}

type result struct {
	code           int
	stdout, stderr string
}

func (inv invocation) run(t *testing.T) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	con := console{
		stdin:          strings.NewReader(inv.stdin),
		stdout:         &stdout,
		stderr:         &stderr,
		getenv:         func(k string) string { return inv.env[k] },
		now:            func() time.Time { return fixedNow },
		stdinTerminal:  inv.terminal,
		stdoutTerminal: inv.terminal,
		width:          inv.width,
	}
	code := run(append([]string{"ds01-workloads"}, inv.args...), con)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// transcript is what a golden file holds: the command, its stdout, its
// stderr and its exit code.
func (r result) transcript(args []string) string {
	var b strings.Builder
	b.WriteString("$ ds01-workloads " + strings.Join(args, " ") + "\n")
	b.WriteString(r.stdout)
	if r.stderr != "" {
		b.WriteString("--- stderr\n" + r.stderr)
	}
	b.WriteString("--- exit " + strconv.Itoa(r.code) + "\n")
	return b.String()
}

// checkGolden compares got with testdata/<name>.golden, or rewrites the
// file with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
