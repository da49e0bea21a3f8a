package main

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// TestGolden runs every output mode, combination and filter on the fixed
// inventory, and compares each transcript with its golden file.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		invocation
		wantCode int
	}{
		// Modes.
		{name: "default", invocation: invocation{args: []string{}}},
		{name: "wide", invocation: invocation{args: []string{"--wide"}}},
		{name: "by-user", invocation: invocation{args: []string{"--by-user"}}},
		{name: "by-user-wide", invocation: invocation{args: []string{"--by-user", "--wide"}}},
		{name: "all", invocation: invocation{args: []string{"--all"}}},
		{name: "all-by-user-wide", invocation: invocation{args: []string{"-a", "--by-user", "-w"}}},
		{name: "json", invocation: invocation{args: []string{"--json"}}},
		{name: "json-filtered", invocation: invocation{args: []string{"--json", "--user", "alice", "--all"}}},
		{name: "json-terminal", invocation: invocation{args: []string{"--json", "--gpu", "2"}, terminal: true, width: 80}},
		{name: "format", invocation: invocation{args: []string{"--format", `{{.ID}}\t{{.User}}\t{{.GPUs}}`}}},
		{name: "format-table", invocation: invocation{args: []string{"--format", `table {{.User}}\t{{.GPUs}}\t{{.GPUMem}}\t{{truncate .Name 12}}`}}},
		{name: "format-conditions", invocation: invocation{args: []string{"--all", "--format",
			`{{.FullID}} {{.Created}} {{.Command}}{{if .HasGPU}} gpu{{end}}{{if .Idle}} idle{{end}}{{if .Undeclared}} undeclared{{end}}{{if .Stale}} stale{{end}}`}}},
		{name: "format-table-builtin", invocation: invocation{args: []string{"--format", "table", "--wide"}}},
		{name: "quiet", invocation: invocation{args: []string{"-q"}}},
		{name: "quiet-all", invocation: invocation{args: []string{"-aq"}}},
		// The GPU ledger: a heading per GPU, memory nobody accounts for.
		{name: "by-gpu", invocation: invocation{args: []string{"--by-gpu"}}},
		{name: "ledger-by-gpu", invocation: invocation{args: []string{"--inventory", ledgerInventory, "--by-gpu"}}},
		{name: "ledger-by-gpu-wide-all", invocation: invocation{args: []string{"--inventory", ledgerInventory, "--by-gpu", "--wide", "--all"}}},
		{name: "ledger-by-gpu-filtered", invocation: invocation{args: []string{"--inventory", ledgerInventory, "--by-gpu", "--gpu", "3", "--user", "bob"}}},
		{name: "ledger-by-gpu-threshold", invocation: invocation{args: []string{"--inventory", ledgerInventory, "--by-gpu", "--unattributed-threshold", "32GiB"}}},
		{name: "ledger-default", invocation: invocation{args: []string{"--inventory", ledgerInventory}}},
		{name: "ledger-undeclared", invocation: invocation{args: []string{"--inventory", ledgerInventory, "--undeclared"}}},
		{name: "ledger-json", invocation: invocation{args: []string{"--inventory", ledgerInventory, "--json"}, terminal: true, width: 100}},
		{name: "usage-by-user-by-gpu", invocation: invocation{args: []string{"--by-user", "--by-gpu"}}, wantCode: exitUsage},
		{name: "usage-threshold", invocation: invocation{args: []string{"--unattributed-threshold", "lots"}}, wantCode: exitUsage},
		// Filters, alone and together.
		{name: "filter-user", invocation: invocation{args: []string{"--user", "alice"}}},
		{name: "filter-user-unknown", invocation: invocation{args: []string{"-u", "unknown"}}},
		{name: "filter-type", invocation: invocation{args: []string{"--type", "devcontainer,docker-compose"}}},
		{name: "filter-type-repeated", invocation: invocation{args: []string{"-t", "raw-docker", "-t", "host-process", "--all"}}},
		{name: "filter-type-system", invocation: invocation{args: []string{"--type", "system"}}},
		// The lab's earlier tool's name for docker-compose.
		{name: "filter-type-compose", invocation: invocation{args: []string{"--type", "compose"}}},
		{name: "filter-launcher", invocation: invocation{args: []string{"--launcher", "slurm,kubernetes", "--wide"}}},
		{name: "filter-launcher-systemd-all", invocation: invocation{args: []string{"-l", "systemd", "--all"}}},
		{name: "filter-gpu", invocation: invocation{args: []string{"--gpu", "1"}}},
		{name: "filter-gpu-mig-parent", invocation: invocation{args: []string{"--gpu", "2"}}},
		{name: "filter-gpu-mig-instance", invocation: invocation{args: []string{"--gpu", "2:1", "--all"}}},
		{name: "filter-gpu-uuid", invocation: invocation{args: []string{"--gpu", "GPU-c4ca4238-1111-2222-3333-444455556666"}}},
		{name: "filter-gpu-only", invocation: invocation{args: []string{"--gpu-only"}}},
		{name: "filter-idle", invocation: invocation{args: []string{"--idle"}}},
		{name: "filter-undeclared", invocation: invocation{args: []string{"--undeclared"}}},
		{name: "filter-combined", invocation: invocation{args: []string{"--user", "alice", "--type", "ds01-managed", "--gpu", "0", "--gpu-only", "--all", "--wide"}}},
		{name: "filter-no-match", invocation: invocation{args: []string{"--user", "nobody"}}},
		// Terminals: colour, width, NO_COLOR, $COLUMNS.
		{name: "terminal-colour", invocation: invocation{args: []string{"--all"}, terminal: true, width: 200}},
		{name: "terminal-narrow", invocation: invocation{args: []string{"--wide"}, terminal: true, width: 120, env: map[string]string{"NO_COLOR": "1"}}},
		{name: "terminal-dumb", invocation: invocation{args: []string{}, terminal: true, env: map[string]string{"TERM": "dumb"}}},
		{name: "columns-env", invocation: invocation{args: []string{}, env: map[string]string{"COLUMNS": "60"}}},
		// Degraded data: the table still prints, warnings go to stderr.
		{name: "degraded", invocation: invocation{args: []string{"--inventory", degradedInventory, "--all"}}},
		{name: "degraded-json", invocation: invocation{args: []string{"--inventory", degradedInventory, "--json"}}},
		// Help tiers.
		{name: "help", invocation: invocation{args: []string{"--help"}}},
		{name: "info", invocation: invocation{args: []string{"--info"}}},
		{name: "concepts", invocation: invocation{args: []string{"--concepts"}}},
		{name: "concepts-degraded", invocation: invocation{args: []string{"--concepts", "--inventory", degradedInventory}}},
		{name: "concepts-missing", invocation: invocation{args: []string{"--concepts", "--inventory", "testdata/missing.json"}}},
		{name: "version", invocation: invocation{args: []string{"--version"}}},
		// Errors.
		{name: "error-missing", invocation: invocation{args: []string{"--inventory", "testdata/missing.json"}}, wantCode: exitFailed},
		{name: "error-truncated", invocation: invocation{args: []string{"--inventory", truncatedFile}}, wantCode: exitFailed},
		{name: "error-forged", invocation: invocation{args: []string{"--inventory", forgedFile, "--json"}}, wantCode: exitFailed},
		{name: "error-directory", invocation: invocation{args: []string{"--inventory", "testdata"}}, wantCode: exitFailed},
		{name: "usage-launcher", invocation: invocation{args: []string{"--launcher", "kubectl"}}, wantCode: exitUsage},
		{name: "usage-type", invocation: invocation{args: []string{"--type", "raw-docker,podman"}}, wantCode: exitUsage},
		{name: "usage-format-field", invocation: invocation{args: []string{"--format", "{{.Bogus}}"}}, wantCode: exitUsage},
		{name: "usage-format-syntax", invocation: invocation{args: []string{"--format", "{{.Name"}}, wantCode: exitUsage},
		{name: "usage-format-table-field", invocation: invocation{args: []string{"--format", "table {{.User}}\t{{.Nope}}"}}, wantCode: exitUsage},
		{name: "usage-outputs", invocation: invocation{args: []string{"--json", "--quiet"}}, wantCode: exitUsage},
		{name: "usage-wide-json", invocation: invocation{args: []string{"--wide", "--json"}}, wantCode: exitUsage},
		{name: "usage-by-user-format", invocation: invocation{args: []string{"--by-user", "--format", "{{.User}}"}}, wantCode: exitUsage},
		{name: "usage-argument", invocation: invocation{args: []string{"alice"}}, wantCode: exitUsage},
		{name: "usage-flag", invocation: invocation{args: []string{"--bogus"}}, wantCode: exitUsage},
		{name: "usage-gpu-empty", invocation: invocation{args: []string{"--gpu", ""}}, wantCode: exitUsage},
		{name: "guided-not-terminal", invocation: invocation{args: []string{"--guided"}}, wantCode: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !hasFlag(args, "--inventory") {
				args = append([]string{"--inventory", fixedInventory}, args...)
			}
			tc.args = args
			r := tc.run(t)
			if r.code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, tc.wantCode, r.stderr)
			}
			checkGolden(t, tc.name, r.transcript(args))
		})
	}
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name {
			return true
		}
	}
	return false
}

// TestErrorsAreOneLine: an inventory error is one line naming the file, and
// a usage error that line and a pointer to --help; never a stack trace.
func TestErrorsAreOneLine(t *testing.T) {
	for _, tc := range []struct {
		path, want string
	}{
		{"testdata/missing.json", "is its timer running?"},
		{truncatedFile, "is corrupt: "},
		{forgedFile, "is corrupt: containers[0]: id is not 64 hex digits"},
	} {
		r := invocation{args: []string{"--inventory", tc.path}}.run(t)
		if r.code != exitFailed || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want 1 and nothing", tc.path, r.code, r.stdout)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.path) || !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(tc.want)) {
			t.Errorf("%s: stderr %q, want one line naming the file and saying %q", tc.path, r.stderr, tc.want)
		}
	}
}

// TestEnvironmentInventory: $DS01_INVENTORY replaces the default path, and
// --inventory replaces both.
func TestEnvironmentInventory(t *testing.T) {
	env := map[string]string{"DS01_INVENTORY": fixedInventory}
	r := invocation{args: []string{"-q"}, env: env}.run(t)
	if r.code != exitOK || strings.Count(r.stdout, "\n") != 9 {
		t.Errorf("with $DS01_INVENTORY: exit %d, stdout %q, stderr %q; want 9 IDs", r.code, r.stdout, r.stderr)
	}
	r = invocation{args: []string{"-q", "--inventory", "testdata/missing.json"}, env: env}.run(t)
	if r.code != exitFailed || !strings.Contains(r.stderr, "testdata/missing.json") {
		t.Errorf("--inventory did not win over $DS01_INVENTORY: exit %d, stderr %q", r.code, r.stderr)
	}
	r = invocation{args: []string{"-q"}}.run(t)
	if r.code != exitFailed || !strings.Contains(r.stderr, defaultInventory) {
		t.Errorf("without either, want the default path: exit %d, stderr %q", r.code, r.stderr)
	}
}

// hostileCases print every string of the hostile inventory every way there
// is.
var hostileCases = []struct {
	name string
	args []string
}{
	{"hostile-default", []string{"--all"}},
	{"hostile-wide", []string{"--all", "--wide"}},
	{"hostile-by-user", []string{"--all", "--by-user", "--wide"}},
	{"hostile-narrow", []string{"--all", "--by-user"}},
	{"hostile-format", []string{"--all", "--format", `{{.ID}}|{{.FullID}}|{{.Type}}|{{.User}}|{{.UserSource}}|{{.Launcher}}|{{.GPUs}}|{{.Status}}|{{.Image}}|{{.Name}}|{{.Command}}`}},
	{"hostile-format-table", []string{"--all", "--format", `table {{.User}}\t{{.Image}}\t{{.Name}}`}},
	{"hostile-quiet", []string{"--all", "-q"}},
	{"hostile-concepts", []string{"--concepts"}},
}

// TestHostileStrings: control characters, escape sequences, bidi overrides
// and invalid UTF-8 in the inventory reach the terminal escaped, in every
// mode; the width of a huge name is cut on a terminal.
func TestHostileStrings(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			in := invocation{args: append([]string{"--inventory", hostileInventory}, tc.args...)}
			if tc.name == "hostile-narrow" {
				in.terminal, in.width, in.env = true, 100, map[string]string{"NO_COLOR": "1"}
			}
			r := in.run(t)
			if r.code != exitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			// A --format that writes a tab gets tabs; nothing else may.
			allowTab := strings.HasPrefix(tc.name, "hostile-format") && !strings.Contains(tc.name, "table")
			for stream, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
				if i := strings.IndexFunc(out, unsafeRune(allowTab)); i >= 0 {
					t.Errorf("%s holds %q at byte %d: %q", stream, out[i:min(i+4, len(out))], i, out[max(i-40, 0):min(i+40, len(out))])
				}
			}
			if tc.name == "hostile-narrow" {
				for _, line := range strings.Split(r.stdout, "\n") {
					if n := displayWidth(line); n > 100 && strings.Contains(line, "long-x") {
						t.Errorf("a line of %d columns on a 100-column terminal: %.60q…", n, line)
					}
				}
			}
			checkGolden(t, tc.name, r.transcript(in.args))
		})
	}
}

// unsafeRune matches what must never reach a terminal from the inventory:
// C0 and C1 controls but the newline (and the tab when the format asks for
// one), DEL, and the bidi controls that reorder text.
func unsafeRune(allowTab bool) func(rune) bool {
	return func(r rune) bool {
		switch {
		case r == '\n', r == '\t' && allowTab:
			return false
		case unicode.IsControl(r), r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
			return true
		}
		return false
	}
}

// TestHostileTemplateWholeRow: a template that prints the row context itself
// reaches no raw string either.
func TestHostileTemplateWholeRow(t *testing.T) {
	for _, format := range []string{"{{.}}", `{{printf "%v %+v %#v" . . .}}`} {
		r := invocation{args: []string{"--inventory", hostileInventory, "--all", "--format", format}}.run(t)
		if r.code != exitOK {
			t.Fatalf("%s: exit %d: %s", format, r.code, r.stderr)
		}
		if strings.ContainsAny(r.stdout, "\x1b\r\u202e") || strings.Contains(r.stdout, "pwned") || strings.Contains(r.stdout, "mallory") {
			t.Errorf("%s printed inventory strings: %q", format, r.stdout)
		}
	}
}

// TestJSONExact: --json carries every string exactly as the inventory has
// it, hostile ones included, for jq to see.
func TestJSONExact(t *testing.T) {
	for _, path := range []string{fixedInventory, hostileInventory, degradedInventory} {
		t.Run(path, func(t *testing.T) {
			r := invocation{args: []string{"--inventory", path, "--json", "--all"}}.run(t)
			if r.code != exitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var doc referenceDocument
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatalf("--json is not JSON: %v", err)
			}
			inv, err := inventory.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]inventory.Workload{}
			for _, w := range inv.Workloads() {
				if w.DetectedLabels == nil {
					w.DetectedLabels = map[string]string{}
				}
				want[w.ID] = w
			}
			if len(doc.Workloads) != len(want) {
				t.Fatalf("%d workloads, want %d", len(doc.Workloads), len(want))
			}
			for _, got := range doc.Workloads {
				if w := want[got.ID]; !reflect.DeepEqual(normalise(got), normalise(w)) {
					t.Errorf("workload %.12s:\n got %+v\nwant %+v", got.ID, got, w)
				}
			}
			if !doc.LastScan.Equal(inv.Scan.Time) || doc.LastScan.Location().String() != "UTC" {
				t.Errorf("last_scan = %v, want %v in UTC", doc.LastScan, inv.Scan.Time)
			}
		})
	}
}

// normalise drops what a JSON round trip cannot keep: time zones.
func normalise(w inventory.Workload) inventory.Workload {
	if w.CreatedAt != nil {
		c := w.CreatedAt.UTC()
		w.CreatedAt = &c
	}
	w.DetectedAt = w.DetectedAt.UTC()
	return w
}

// TestJSONContract: the --json fields are exactly those --info (and the
// README) document, in order, and absent facts are null.
func TestJSONContract(t *testing.T) {
	r := invocation{args: []string{"--inventory", fixedInventory, "--json", "--all"}}.run(t)
	var out struct {
		Sources   map[string]json.RawMessage `json:"sources"`
		GPUs      []json.RawMessage          `json:"gpus"`
		Workloads []json.RawMessage          `json:"workloads"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	check := func(what string, raw []byte, docs []doc) {
		t.Helper()
		if got, want := objectKeys(t, raw), docNames(docs); !reflect.DeepEqual(got, want) {
			t.Errorf("%s keys = %v, documented %v", what, got, want)
		}
	}
	check("top-level", []byte(r.stdout), jsonTopFields)
	for name, raw := range out.Sources {
		check("source "+name, raw, jsonSourceFields)
	}
	for _, raw := range out.GPUs {
		check("gpu", raw, jsonGPUFields)
	}
	if len(out.GPUs) == 0 {
		t.Error("the fixed inventory's GPUs are not in the document")
	}
	for _, raw := range out.Workloads {
		check("workload", raw, jsonWorkloadFields)
	}
	// The unknown container has no creation time, CPU or memory figure:
	// null, not zero.
	var unknown map[string]json.RawMessage
	for _, raw := range out.Workloads {
		var w map[string]json.RawMessage
		if err := json.Unmarshal(raw, &w); err != nil {
			t.Fatal(err)
		}
		if string(w["type"]) == `"unknown"` {
			unknown = w
		}
	}
	for _, k := range []string{"created_at", "cpu_percent", "memory_bytes"} {
		if string(unknown[k]) != "null" {
			t.Errorf("unknown container %s = %s, want null", k, unknown[k])
		}
	}
}

func docNames(docs []doc) []string {
	names := make([]string, len(docs))
	for i, d := range docs {
		names[i] = d.name
	}
	return names
}

// objectKeys returns the keys of the JSON object raw, in order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %.40s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// TestDocsCoverEverything: --info describes every workload type, and the
// README section every JSON field and column.
func TestDocsCoverEverything(t *testing.T) {
	if got := docNames(typeDocs); !reflect.DeepEqual(got, inventory.Types) {
		t.Errorf("--info documents types %v, inventory.Types is %v", got, inventory.Types)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## ds01-workloads output\n")
	if !ok {
		t.Fatal(`README.md has no "## ds01-workloads output" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, docs := range [][]doc{jsonTopFields, jsonSourceFields, jsonGPUFields, jsonWorkloadFields} {
		for _, d := range docs {
			if !strings.Contains(section, "`"+d.name+"`") {
				t.Errorf("the README section does not document the JSON field %q", d.name)
			}
		}
	}
	for _, c := range allColumns {
		if !strings.Contains(section, c.header) {
			t.Errorf("the README section does not mention the column %s", c.header)
		}
	}
}

// TestColumnsAreRowMethods: each column's value is the row method its
// template field names, so tables and templates cannot disagree.
func TestColumnsAreRowMethods(t *testing.T) {
	inv, err := inventory.Load(fixedInventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range newRows(inv.Workloads(), fixedNow) {
		v := reflect.ValueOf(r)
		for _, c := range allColumns {
			m := v.MethodByName(c.field)
			if !m.IsValid() {
				t.Fatalf("column %s: row has no method %s", c.header, c.field)
			}
			if got := m.Call(nil)[0].String(); got != c.value(r) {
				t.Errorf("column %s: {{.%s}} = %q, the table shows %q", c.header, c.field, got, c.value(r))
			}
		}
		for _, c := range conditions {
			if m := v.MethodByName(c.field); !m.IsValid() || m.Type().Out(0).Kind() != reflect.Bool {
				t.Errorf("condition %s is not a bool method of row", c.field)
			}
		}
	}
}
