package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// referenceDocument is the --json document as the tests see it, declared
// apart from writeJSON's own types: what tests decode --json into, and
// what referenceJSON encodes.
type referenceDocument struct {
	SchemaVersion int                        `json:"schema_version"`
	LastScan      *time.Time                 `json:"last_scan"`
	Sources       map[string]referenceSource `json:"sources"`
	// GPUs are the ledger's pages; their content is TestJSONGPUs's.
	GPUs      []jsonGPU            `json:"gpus"`
	Workloads []inventory.Workload `json:"workloads"`
}

// referenceSource is how a source fared at the last scan. Unlike the
// inventory's own form, every field is always present.
type referenceSource struct {
	OK          bool       `json:"ok"`
	Error       *string    `json:"error"`
	LastSuccess *time.Time `json:"last_success"`
	Warning     *string    `json:"warning"`
}

// referenceJSON is the --json document as encoding/json writes it, then
// with the C1 and bidirectional controls it leaves raw escaped rune by
// rune: the definition writeJSON must match byte for byte.
func referenceJSON(inv *inventory.Inventory, rows []row, pretty bool) ([]byte, error) {
	doc := referenceDocument{
		SchemaVersion: inv.SchemaVersion,
		Sources:       make(map[string]referenceSource, len(inv.Sources)),
		GPUs:          newJSONGPUs(inv.GPULedger(inv.Workloads()), inventory.DefaultUnattributedThreshold),
		Workloads:     make([]inventory.Workload, len(rows)),
	}
	if !inv.Scan.Time.IsZero() {
		t := inv.Scan.Time.UTC()
		doc.LastScan = &t
	}
	for name, s := range inv.Sources {
		rs := referenceSource{OK: s.OK}
		if s.Error != "" {
			rs.Error = &s.Error
		}
		if s.LastSuccess != nil {
			t := s.LastSuccess.UTC()
			rs.LastSuccess = &t
		}
		if s.Warning != "" {
			rs.Warning = &s.Warning
		}
		doc.Sources[name] = rs
	}
	for i, r := range rows {
		doc.Workloads[i] = *r.w
		if doc.Workloads[i].DetectedLabels == nil {
			doc.Workloads[i].DetectedLabels = map[string]string{}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if pretty {
		enc.SetIndent("", "  ")
	}
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return referenceEscape(buf.Bytes()), nil
}

// referenceEscape escapes, rune by rune, the C1 controls and bidirectional
// controls in encoded JSON.
func referenceEscape(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		bidi := r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f
		if r >= 0x80 && (unicode.IsControl(r) || bidi) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// checkSameJSON renders inv and rows with writeJSON and with referenceJSON,
// compact and pretty, and fails on any difference in bytes or error. A
// failed writeJSON must have written nothing. It returns writeJSON's error.
func checkSameJSON(t *testing.T, inv *inventory.Inventory, rows []row) (err error) {
	t.Helper()
	for _, pretty := range []bool{false, true} {
		want, wantErr := referenceJSON(inv, rows, pretty)
		var got bytes.Buffer
		err = writeJSON(&got, inv, rows, inv.GPULedger(inv.Workloads()), inventory.DefaultUnattributedThreshold, pretty)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("pretty=%v: error %v, want %v", pretty, err, wantErr)
		}
		if err != nil {
			if got.Len() > 0 {
				t.Fatalf("pretty=%v: wrote %d bytes before failing", pretty, got.Len())
			}
			continue
		}
		if !bytes.Equal(got.Bytes(), want) {
			i := 0
			for i < min(got.Len(), len(want)) && got.Bytes()[i] == want[i] {
				i++
			}
			t.Fatalf("pretty=%v: differs at byte %d:\n got %q\nwant %q", pretty, i,
				excerpt(got.Bytes(), i), excerpt(want, i))
		}
	}
	return err
}

// checkWritesSameJSON is checkSameJSON for a document that can be written.
func checkWritesSameJSON(t *testing.T, inv *inventory.Inventory, rows []row) {
	t.Helper()
	if err := checkSameJSON(t, inv, rows); err != nil {
		t.Fatal(err)
	}
}

// excerpt is b around offset i.
func excerpt(b []byte, i int) []byte {
	return b[max(0, i-60):min(len(b), i+60)]
}

// hostileStrings are the strings an inventory may hold that JSON or a
// terminal treats specially.
var hostileStrings = []string{
	"",
	"plain-ascii_1.0",
	"\x1b[2J\x1b[Hpwned",
	"line\nbreak\r\ttab\b\f",
	"\x00\x01\x1f\x7f",
	`"quoted" and \back\slash\`,
	"<script>&amp;</script>",
	"bad\xff\xfeend",
	"caf\xc3",
	"\xe2\x80",
	"\xed\xa0\x80 surrogate",
	"\xf4\x90\x80\x80 beyond U+10FFFF",
	"a\u009b31mC1",
	"\u0080\u009f\u00a0nbsp",
	"evil\u202egnp.exe",
	"\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069",
	"line\u2028para\u2029",
	"Zoë 名前 🚀 \ufffd",
}

// edgeTimes are times with nanoseconds, in zones other than UTC, and the
// zero time.
var edgeTimes = []time.Time{
	time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC),
	time.Date(2026, 1, 30, 14, 30, 0, 123456789, time.UTC),
	time.Date(2026, 1, 30, 14, 30, 0, 120000000, time.FixedZone("CET", 3600)),
	time.Date(2026, 7, 1, 0, 0, 0, 1, time.FixedZone("NST", -(3*3600+30*60))),
	time.Date(2026, 7, 1, 0, 0, 0, 0, time.FixedZone("odd", 5*3600+45*60+30)),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("far", -(23*3600+59*60))),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	{},
	// Zones less than a minute from UTC, a zone a second short of a day,
	// the year 0 in a zone east of UTC, trailing zeros in the nanoseconds,
	// the local zone, and a time with a monotonic clock reading.
	time.Date(2026, 1, 30, 14, 30, 0, 0, time.FixedZone("", -59)),
	time.Date(2026, 1, 30, 14, 30, 0, 0, time.FixedZone("", 59)),
	time.Date(2026, 1, 30, 14, 30, 0, 0, time.FixedZone("", 86399)),
	time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)),
	time.Date(2026, 1, 30, 14, 30, 0, 100, time.UTC),
	time.Date(2026, 1, 30, 14, 30, 0, 999999000, time.FixedZone("", -3600)),
	time.Unix(1_000_000_000, 5),
	time.Now(),
}

// edgeFloats are CPU figures at each of encoding/json's formatting
// boundaries.
var edgeFloats = []float64{
	0, math.Copysign(0, -1), 1e-7, -1e-7, 1e-6, 9.99e-7, 93.5, 100, 0.1,
	123456789.125, 1e20, 1e21, -1e21, 1.5e300, 5e-324, math.MaxFloat64, math.SmallestNonzeroFloat64 * 3,
	1e-10, -1.5e-100, -5e-324, 0.1 + 0.2, math.Nextafter(1e21, 0), math.Nextafter(1e-6, 0), 1e100,
	-math.MaxFloat64, 1 << 53, 1<<53 + 1, 12345678901234567890,
}

// edgeWorkloads are workloads with every field at its edges: hostile
// strings, nil and empty slices and maps, nil and set pointers.
func edgeWorkloads() []inventory.Workload {
	var ws []inventory.Workload
	for i, s := range hostileStrings {
		w := inventory.Workload{
			Type: s, ID: fmt.Sprint(i), Name: s, User: s, UserSource: s, Status: s, Image: s, Command: s,
			DetectedAt:  edgeTimes[i%len(edgeTimes)],
			HasGPU:      i%2 == 0,
			GPUDeclared: i%3 == 0,
			GPUObserved: i%4 == 0,
			GPUIdle:     i%5 == 0,
			Stale:       i%6 == 0,
		}
		switch i % 3 {
		case 0: // everything absent: nil pointers, nil slice, nil map
		case 1:
			w.GPUs = []string{}
			w.DetectedLabels = map[string]string{}
			w.CreatedAt = ptr(edgeTimes[(i+3)%len(edgeTimes)])
			w.GPUMemoryBytes = ptr(uint64(0))
			w.MemoryBytes = ptr(uint64(math.MaxUint64))
			w.CPUPercent = ptr(edgeFloats[i%len(edgeFloats)])
		case 2:
			w.GPUs = []string{"0", "1:2", s, "all"}
			w.DetectedLabels = map[string]string{"ds01.detected": "true", s: s, "a" + s: "z", "": s}
			w.CreatedAt = ptr(edgeTimes[(i+5)%len(edgeTimes)])
			w.GPUMemoryBytes = ptr(uint64(6442450944))
			w.MemoryBytes = ptr(uint64(1))
			w.CPUPercent = ptr(edgeFloats[i%len(edgeFloats)])
		}
		ws = append(ws, w)
	}
	for i, f := range edgeFloats {
		ws = append(ws, inventory.Workload{ID: fmt.Sprintf("cpu-%d", i), CPUPercent: ptr(f)})
	}
	return ws
}

// edgeInventory is an inventory whose sources have hostile names, errors
// and warnings, set and unset last successes in other zones. Its times are the
// first edgeTimes, which are still before the year 10000 in UTC.
func edgeInventory() *inventory.Inventory {
	inv := &inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		Scan:          inventory.ScanInfo{Time: edgeTimes[2]},
		Sources:       map[string]inventory.SourceStatus{},
	}
	for i, s := range hostileStrings {
		src := inventory.SourceStatus{OK: i%2 == 0, Error: s}
		if i%4 != 1 {
			src.Warning = hostileStrings[(i+1)%len(hostileStrings)]
		}
		if i%3 != 0 {
			src.LastSuccess = ptr(edgeTimes[i%5])
		}
		inv.Sources["source "+s] = src
	}
	inv.Sources[""] = inventory.SourceStatus{}
	return inv
}

func rowsOf(ws []inventory.Workload) []row {
	rows := make([]row, len(ws))
	for i := range ws {
		rows[i] = row{w: &ws[i]}
	}
	return rows
}

// TestWriteJSONMatchesEncodingJSON: writeJSON writes exactly the bytes of
// encoding/json plus the terminal escapes, for every kind of value.
func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	t.Run("edges", func(t *testing.T) {
		checkWritesSameJSON(t, edgeInventory(), rowsOf(edgeWorkloads()))
	})
	t.Run("each workload alone", func(t *testing.T) {
		for _, w := range edgeWorkloads() {
			checkWritesSameJSON(t, edgeInventory(), rowsOf([]inventory.Workload{w}))
		}
	})
	t.Run("map keys in byte order", func(t *testing.T) {
		keys := append([]string{
			"\xff", "\xfe", "\ufffd", "A", "a", "a\x00", "a\x00b", "~", "\x7f", "\u0080", "\u00e9", "e\u0301",
			"\U0001F680", "\uffff", "_", " ", "\t",
		}, hostileStrings...)
		inv := edgeInventory()
		labels := map[string]string{}
		for i, k := range keys {
			labels[k] = keys[(i+1)%len(keys)]
			inv.Sources[k] = inventory.SourceStatus{OK: i%2 == 0, Warning: k, Error: labels[k]}
		}
		checkWritesSameJSON(t, inv, rowsOf([]inventory.Workload{{DetectedLabels: labels}, {DetectedLabels: map[string]string{"": ""}}}))
	})
	t.Run("sources with and without a warning", func(t *testing.T) {
		inv := &inventory.Inventory{SchemaVersion: 1, Scan: inventory.ScanInfo{Time: edgeTimes[1]}, Sources: map[string]inventory.SourceStatus{
			inventory.SourceDocker: {OK: true},
			inventory.SourceNVML:   {OK: true, LastSuccess: &edgeTimes[3], Warning: "cannot see processes of other users (no CAP_SYS_PTRACE)"},
			inventory.SourceProcfs: {Error: "permission denied", Warning: "\x1b[31mred\u009b0m\u202e"},
		}}
		checkWritesSameJSON(t, inv, nil)
	})
	t.Run("no workloads, no sources, never scanned", func(t *testing.T) {
		checkWritesSameJSON(t, &inventory.Inventory{}, nil)
		checkWritesSameJSON(t, &inventory.Inventory{SchemaVersion: -1, Sources: map[string]inventory.SourceStatus{}}, []row{})
	})
	for _, path := range []string{fixedInventory, hostileInventory, degradedInventory} {
		t.Run(path, func(t *testing.T) {
			inv, err := inventory.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			checkWritesSameJSON(t, inv, newRows(inv.Workloads(), fixedNow))
		})
	}
}

// TestWriteJSONUnencodable: a value JSON cannot hold fails the document
// with encoding/json's error, and nothing is written.
func TestWriteJSONUnencodable(t *testing.T) {
	year10000 := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	beforeYear0 := time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC)
	dayAway := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))
	// In UTC, which last_scan and last_success are written in, this is
	// the year 10000.
	lateInZone := time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600))
	// In UTC this is the year -1.
	earlyInZone := time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600))
	dayBehind := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -24*3600))
	tests := []struct {
		name string
		inv  func(*inventory.Inventory)
		w    inventory.Workload
	}{
		{name: "created_at year 10000", w: inventory.Workload{CreatedAt: &year10000}},
		{name: "created_at year -1", w: inventory.Workload{CreatedAt: &beforeYear0}},
		{name: "created_at zone a day away", w: inventory.Workload{CreatedAt: &dayAway}},
		{name: "detected_at year 10000", w: inventory.Workload{DetectedAt: year10000}},
		{name: "cpu_percent NaN", w: inventory.Workload{CPUPercent: ptr(math.NaN())}},
		{name: "cpu_percent +Inf", w: inventory.Workload{CPUPercent: ptr(math.Inf(1))}},
		{name: "cpu_percent -Inf", w: inventory.Workload{CPUPercent: ptr(math.Inf(-1))}},
		{name: "last_scan", inv: func(inv *inventory.Inventory) { inv.Scan.Time = lateInZone }},
		{name: "last_success", inv: func(inv *inventory.Inventory) {
			inv.Sources["zz"] = inventory.SourceStatus{LastSuccess: &lateInZone}
		}},
		{name: "first of several", w: inventory.Workload{CreatedAt: &dayAway, DetectedAt: year10000, CPUPercent: ptr(math.NaN())}},
		{name: "created_at zone a day behind", w: inventory.Workload{CreatedAt: &dayBehind}},
		{name: "detected_at year -1", w: inventory.Workload{DetectedAt: beforeYear0}},
		{name: "detected_at zone a day away", w: inventory.Workload{DetectedAt: dayAway}},
		{name: "last_success before the year 0 in UTC", inv: func(inv *inventory.Inventory) {
			inv.Sources["\x00first"] = inventory.SourceStatus{LastSuccess: &earlyInZone, Warning: "w"}
		}},
		{name: "last_scan before the year 0 in UTC", inv: func(inv *inventory.Inventory) { inv.Scan.Time = earlyInZone }},
		{name: "last_scan before a workload", inv: func(inv *inventory.Inventory) { inv.Scan.Time = lateInZone },
			w: inventory.Workload{CPUPercent: ptr(math.NaN())}},
		{name: "last_success of the first source in order", inv: func(inv *inventory.Inventory) {
			inv.Sources["zz"] = inventory.SourceStatus{LastSuccess: &lateInZone}
			inv.Sources["zy"] = inventory.SourceStatus{LastSuccess: &earlyInZone}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := edgeInventory()
			if tc.inv != nil {
				tc.inv(inv)
			}
			ws := append(edgeWorkloads(), tc.w)
			err := checkSameJSON(t, inv, rowsOf(ws))
			if err == nil || !strings.HasPrefix(err.Error(), "encode JSON: json: ") {
				t.Fatalf("error %v, want encode JSON: json: …", err)
			}
		})
	}
}

// TestWriteJSONEveryCharacter: every Unicode character, every byte alone,
// and ill-formed UTF-8 of every shape (a lead byte followed by each byte,
// truncated and overlong sequences, surrogates, code points past U+10FFFF)
// are written as encoding/json and the rune-by-rune terminal escapes write
// them, the sequences whatever text comes before and after.
func TestWriteJSONEveryCharacter(t *testing.T) {
	// The strings go a few thousand to a document, as one workload's GPUs.
	var batch []string
	flush := func() {
		checkWritesSameJSON(t, &inventory.Inventory{}, rowsOf([]inventory.Workload{{GPUs: batch}}))
		batch = nil
	}
	add := func(s string) {
		if batch = append(batch, s); len(batch) >= 3000 {
			flush()
		}
	}
	// Every character, a block of them at a time.
	var block strings.Builder
	for r := rune(0); r <= unicode.MaxRune; r++ {
		block.WriteRune(r)
		if r%0x400 == 0x3ff {
			add(block.String())
			block.Reset()
		}
	}
	check := func(s string) {
		for _, around := range [][2]string{{"", ""}, {"plain ", " text"}, {"é", "\x80"}} {
			add(around[0] + s + around[1])
		}
	}
	// Every byte alone and every byte after each lead byte, and
	// sequences of three and four bytes with continuation bytes at the
	// edges of their ranges.
	edges := []byte{0x00, 0x1f, 0x22, 0x41, 0x5c, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for c := range 256 {
		check(string([]byte{byte(c)}))
		for d := range 256 {
			if c >= 0xc0 {
				check(string([]byte{byte(c), byte(d)}))
			}
		}
		if c < 0xe0 {
			continue
		}
		for _, d := range edges {
			for _, e := range edges {
				check(string([]byte{byte(c), d, e}))
				for _, f := range edges {
					check(string([]byte{byte(c), d, e, f}))
				}
			}
		}
	}
	flush()
}

// FuzzWriteJSON: for any strings, CPU figure and time, writeJSON writes
// what referenceJSON writes, or fails as it does having written nothing.
func FuzzWriteJSON(f *testing.F) {
	for i, s := range hostileStrings {
		at := edgeTimes[i%len(edgeTimes)]
		f.Add(s, hostileStrings[(i+1)%len(hostileStrings)], edgeFloats[i%len(edgeFloats)],
			at.Unix(), int64(at.Nanosecond()), (i-8)*3600)
	}
	f.Add("x", "y", math.NaN(), time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).Unix(), int64(0), -7200)
	f.Fuzz(func(t *testing.T, a, b string, cpu float64, sec, nsec int64, offset int) {
		// The strings and the figure with times any document can hold,
		// then the time alone: most times fail the whole document.
		at := edgeTimes[1]
		checkSameJSON(t, &inventory.Inventory{
			SchemaVersion: 1,
			Scan:          inventory.ScanInfo{Time: at},
			Sources: map[string]inventory.SourceStatus{
				a: {OK: true, LastSuccess: &at, Warning: b},
				b: {Error: a, Warning: a},
			},
		}, rowsOf([]inventory.Workload{
			{
				Type: a, ID: b, Name: a + b, User: b, Command: a, CreatedAt: &at, DetectedAt: at,
				GPUs: []string{a, b}, CPUPercent: &cpu, DetectedLabels: map[string]string{a: b, b: a},
			},
			{Name: b, GPUs: []string{}, MemoryBytes: ptr(uint64(len(a)))},
		}))
		at = time.Unix(sec, nsec).In(time.FixedZone("zone", offset))
		checkSameJSON(t, &inventory.Inventory{
			Scan:    inventory.ScanInfo{Time: at},
			Sources: map[string]inventory.SourceStatus{"docker": {LastSuccess: &at}},
		}, rowsOf([]inventory.Workload{{CreatedAt: &at, DetectedAt: at}, {DetectedAt: at}}))
		checkSameJSON(t, &inventory.Inventory{}, rowsOf([]inventory.Workload{{CreatedAt: &at, DetectedAt: at}}))
	})
}
