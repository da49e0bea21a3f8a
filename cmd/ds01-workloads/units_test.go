package main

import (
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Hour, "0s"},
		{0, "0s"},
		{45 * time.Second, "45s"},
		{59*time.Second + 999*time.Millisecond, "59s"},
		{time.Minute, "1m"},
		{3*time.Minute + 59*time.Second, "3m"},
		{time.Hour, "1h"},
		{47*time.Hour + 59*time.Minute, "47h"},
		{48 * time.Hour, "2d"},
		{5*24*time.Hour + 23*time.Hour, "5d"},
		{400 * 24 * time.Hour, "400d"},
	}
	for _, tc := range tests {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%v) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

func TestBytesText(t *testing.T) {
	tests := []struct {
		b    *uint64
		want string
	}{
		{nil, "-"},
		{ptr(uint64(0)), "0B"},
		{ptr(uint64(1023)), "1023B"},
		{ptr(uint64(1024)), "1.0KiB"},
		{ptr(uint64(1536 << 20)), "1.5GiB"},
		{ptr(uint64(80 << 30)), "80.0GiB"},
		{ptr(^uint64(0)), "16384.0PiB"},
	}
	for _, tc := range tests {
		if got := bytesText(tc.b); got != tc.want {
			t.Errorf("bytesText(%v) = %s, want %s", tc.b, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestHiddenByDefault(t *testing.T) {
	tests := []struct {
		typ, status string
		types       []string
		want        bool
	}{
		{inventory.TypeRawDocker, "running", nil, false},
		{inventory.TypeRawDocker, "paused", nil, false},
		{inventory.TypeRawDocker, "restarting", nil, false},
		{inventory.TypeRawDocker, "exited", nil, true},
		{inventory.TypeRawDocker, "created", nil, true},
		{inventory.TypeRawDocker, "dead", nil, true},
		{inventory.TypeRawDocker, "exited", []string{inventory.TypeRawDocker}, true},
		{inventory.TypeUnknown, "", nil, false},
		{inventory.TypeUnknown, "exited", nil, false},
		{inventory.TypeHostProcess, "running", nil, false},
		{inventory.TypeSystem, "running", nil, true},
		{inventory.TypeSystem, "running", []string{inventory.TypeHostProcess, inventory.TypeSystem}, false},
	}
	for _, tc := range tests {
		f := filter{types: tc.types}
		if got := f.hiddenByDefault(&inventory.Workload{Type: tc.typ, Status: tc.status}); got != tc.want {
			t.Errorf("hiddenByDefault(%s %q, --type %v) = %v, want %v", tc.typ, tc.status, tc.types, got, tc.want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		format    string
		wantNil   bool
		wantTable bool
		wantErr   bool
	}{
		{format: "table", wantNil: true},
		{format: "table ", wantNil: true},
		{format: "table {{.User}}", wantTable: true},
		{format: "table\t{{.User}}", wantTable: true},
		{format: "tablespoon {{.User}}"},
		{format: "{{.User}}"},
		{format: "{{.user}}", wantErr: true},
		{format: "{{.Name", wantErr: true},
		{format: "{{truncate .Name}}", wantErr: true},
		{format: "{{json .}}", wantErr: true},
	}
	for _, tc := range tests {
		f, err := parseFormat(tc.format)
		switch {
		case (err != nil) != tc.wantErr:
			t.Errorf("parseFormat(%q) error = %v, want error %v", tc.format, err, tc.wantErr)
		case err != nil:
		case (f == nil) != tc.wantNil:
			t.Errorf("parseFormat(%q) = %v, want nil %v", tc.format, f, tc.wantNil)
		case f != nil && f.table != tc.wantTable:
			t.Errorf("parseFormat(%q).table = %v, want %v", tc.format, f.table, tc.wantTable)
		}
	}
}

func TestStyle(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		width    int
		env      map[string]string
		want     style
	}{
		{"piped", false, 0, nil, style{}},
		{"piped with COLUMNS", false, 0, map[string]string{"COLUMNS": "80"}, style{width: 80}},
		{"terminal", true, 120, nil, style{colour: true, width: 120, pretty: true}},
		{"terminal width wins over COLUMNS", true, 120, map[string]string{"COLUMNS": "80"}, style{colour: true, width: 120, pretty: true}},
		{"terminal of unknown width", true, 0, map[string]string{"COLUMNS": "90"}, style{colour: true, width: 90, pretty: true}},
		{"NO_COLOR", true, 120, map[string]string{"NO_COLOR": "1"}, style{width: 120, pretty: true}},
		{"dumb terminal", true, 120, map[string]string{"TERM": "dumb"}, style{width: 120, pretty: true}},
		{"COLUMNS garbage", false, 0, map[string]string{"COLUMNS": "wide"}, style{}},
		{"COLUMNS negative", false, 0, map[string]string{"COLUMNS": "-5"}, style{}},
	}
	for _, tc := range tests {
		con := console{stdoutTerminal: tc.terminal, width: tc.width, getenv: func(k string) string { return tc.env[k] }}
		if got := con.style(); got != tc.want {
			t.Errorf("%s: style = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"alice-train", 20, "alice-train"},
		{"alice-train", 11, "alice-train"},
		{"alice-train", 10, "alice-tra…"},
		{"名前名前名前", 7, "名前名…"},
		{`\x1b[2J`, 5, `\x1b…`},
	}
	for _, tc := range tests {
		got := clip(tc.s, tc.width)
		if got != tc.want || displayWidth(got) > tc.width {
			t.Errorf("clip(%q, %d) = %q (%d columns), want %q", tc.s, tc.width, got, displayWidth(got), tc.want)
		}
	}
}

func TestPersistence(t *testing.T) {
	on, off := ptr(true), ptr(false)
	tests := []struct {
		name string
		gpus []inventory.GPUDevice
		want string
	}{
		{"no GPUs", nil, "the inventory lists no GPUs (NVML has not answered a scan), so their persistence mode is unknown."},
		{"all on; MIG instances have no mode", []inventory.GPUDevice{{ID: "0", PersistenceMode: on}, {ID: "0:1", Parent: "0"}},
			"persistence mode is on for every GPU that reported it."},
		{"one off", []inventory.GPUDevice{{ID: "0", PersistenceMode: on}, {ID: "1", PersistenceMode: off}},
			"persistence mode is off on GPU 1."},
		{"two off, one unknown", []inventory.GPUDevice{{ID: "0", PersistenceMode: off}, {ID: "1"}, {ID: "2", PersistenceMode: off}},
			"persistence mode is off on GPUs 0, 2. The driver did not report it for 1."},
		{"none reported", []inventory.GPUDevice{{ID: "0"}, {ID: "1"}}, "the driver did not report persistence mode for any GPU."},
	}
	for _, tc := range tests {
		if got := persistence(tc.gpus); got != tc.want {
			t.Errorf("%s: persistence = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "512": 512, "512B": 512, "1KiB": 1024, "512MiB": 512 << 20, "1.5GiB": 3 << 29, "2TiB": 2 << 40,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1GiB", "1GB", "1 GiB", "NaN", "1e30PiB", "abc"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
	// What bytesText writes reads back (to its one decimal).
	for _, b := range []uint64{0, 1023, 1 << 20, 21 << 30} {
		if got, err := parseBytes(bytesText(&b)); err != nil || got != b {
			t.Errorf("parseBytes(bytesText(%d)) = %d, %v", b, got, err)
		}
	}
}
