package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// The --json document is a contract other tools rely on, its fields
// documented in --info and the README (jsonTopFields, jsonSourceFields and
// jsonWorkloadFields, in the order written here). It is written by hand, a
// workload at a time, so that a large inventory never sits whole in memory
// as JSON. The bytes are those encoding/json writes with HTML escaping off
// (indented as by Encoder.SetIndent("", "  ") when pretty), except that the
// characters inventory.JSONUnsafe reports are escaped too.

// jsonWriter appends a JSON document to buf, compact or indented by two
// spaces, and keeps track of where commas and line breaks go.
type jsonWriter struct {
	buf    []byte
	pretty bool
	// depth is how many objects and arrays are open.
	depth int
	// empty is true while the innermost one has no member yet.
	empty bool
	// keys is reused to sort each map's keys.
	keys []string
	// err is the first value that could not be written.
	err error
}

// flush writes what buf holds to w and empties it, or returns the error of
// a value that could not be written.
func (j *jsonWriter) flush(w io.Writer) error {
	if j.err != nil {
		return fmt.Errorf("encode JSON: %w", j.err)
	}
	_, err := w.Write(j.buf)
	j.buf = j.buf[:0]
	return err
}

// open starts an object ('{') or an array ('[').
func (j *jsonWriter) open(c byte) {
	j.buf = append(j.buf, c)
	j.depth++
	j.empty = true
}

// close ends the innermost object ('}') or array (']'). An empty one stays
// {} or [] on one line, as json.Indent leaves it.
func (j *jsonWriter) close(c byte) {
	j.depth--
	if !j.empty {
		j.newline()
	}
	j.buf = append(j.buf, c)
	j.empty = false
}

// next starts a member of the innermost object or array: a comma after the
// one before it and, when pretty, a line of its own.
func (j *jsonWriter) next() {
	if !j.empty {
		j.buf = append(j.buf, ',')
	}
	j.empty = false
	j.newline()
}

// newline breaks the line and indents the next one, when pretty.
func (j *jsonWriter) newline() {
	if !j.pretty {
		return
	}
	j.buf = append(j.buf, '\n')
	for range j.depth {
		j.buf = append(j.buf, "  "...)
	}
}

// key starts an object member named name, which may be any string.
func (j *jsonWriter) key(name string) {
	j.next()
	j.buf = appendJSONString(j.buf, name)
	j.colon()
}

// field starts an object member named name, one of the document's own
// field names, which need no escaping.
func (j *jsonWriter) field(name string) {
	j.next()
	j.buf = append(j.buf, '"')
	j.buf = append(j.buf, name...)
	j.buf = append(j.buf, '"')
	j.colon()
}

// colon separates a member's name from its value.
func (j *jsonWriter) colon() {
	j.buf = append(j.buf, ':')
	if j.pretty {
		j.buf = append(j.buf, ' ')
	}
}

func (j *jsonWriter) null() {
	j.buf = append(j.buf, "null"...)
}

func (j *jsonWriter) bool(b bool) {
	j.buf = strconv.AppendBool(j.buf, b)
}

func (j *jsonWriter) string(s string) {
	j.buf = appendJSONString(j.buf, s)
}

// strings appends a list of strings; nil is null, as encoding/json writes
// a nil slice.
func (j *jsonWriter) strings(list []string) {
	if list == nil {
		j.null()
		return
	}
	j.open('[')
	for _, s := range list {
		j.next()
		j.string(s)
	}
	j.close(']')
}

// stringMap appends m as an object, keys in byte order as encoding/json
// sorts them. A nil map is {}: the contract promises an object.
func (j *jsonWriter) stringMap(m map[string]string) {
	j.keys = j.keys[:0]
	for k := range m {
		j.keys = append(j.keys, k)
	}
	slices.Sort(j.keys)
	j.open('{')
	for _, k := range j.keys {
		j.key(k)
		j.string(m[k])
	}
	j.close('}')
}

// uint64Ptr appends *p, or null for nil: a figure nobody knows.
func (j *jsonWriter) uint64Ptr(p *uint64) {
	if p == nil {
		j.null()
		return
	}
	j.buf = strconv.AppendUint(j.buf, *p, 10)
}

// float64Ptr appends *p as encoding/json writes a float64, or null for nil.
func (j *jsonWriter) float64Ptr(p *float64) {
	switch {
	case p == nil:
		j.null()
	case !jsonFloatOK(*p):
		j.err = fmt.Errorf("json: unsupported value: %v", *p)
	default:
		j.buf = appendJSONFloat(j.buf, *p)
	}
}

// time appends t as time.Time.MarshalJSON writes it: RFC 3339 with the
// nanoseconds it has, in its own zone.
func (j *jsonWriter) time(t time.Time) {
	b, err := t.AppendText(append(j.buf, '"'))
	if err != nil {
		j.err = err
		return
	}
	j.buf = append(b, '"')
}

// timePtr appends *t, or null for nil: a time nobody knows.
func (j *jsonWriter) timePtr(t *time.Time) {
	if t == nil {
		j.null()
		return
	}
	j.time(*t)
}

// header appends the members before the workloads. sources are the names
// of inv.Sources, sorted.
func (j *jsonWriter) header(inv *inventory.Inventory, sources []string) {
	j.field("schema_version")
	j.buf = strconv.AppendInt(j.buf, int64(inv.SchemaVersion), 10)
	j.field("last_scan")
	if inv.Scan.Time.IsZero() {
		j.null()
	} else {
		j.time(inv.Scan.Time.UTC())
	}
	j.field("sources")
	j.open('{')
	for _, name := range sources {
		j.key(name)
		j.source(inv.Sources[name])
	}
	j.close('}')
}

// source appends how a source fared. Unlike the inventory's own form,
// every field is always present.
func (j *jsonWriter) source(s inventory.SourceStatus) {
	j.open('{')
	j.field("ok")
	j.bool(s.OK)
	j.field("error")
	j.stringOrNull(s.Error)
	j.field("last_success")
	if s.LastSuccess == nil {
		j.null()
	} else {
		j.time(s.LastSuccess.UTC())
	}
	j.field("warning")
	j.stringOrNull(s.Warning)
	j.close('}')
}

// stringOrNull appends s, or null for "": where the inventory leaves a
// string out, the document says there is none.
func (j *jsonWriter) stringOrNull(s string) {
	if s == "" {
		j.null()
		return
	}
	j.string(s)
}

// workload appends w, its members named and ordered as the json tags of
// inventory.Workload.
func (j *jsonWriter) workload(w *inventory.Workload) {
	j.open('{')
	j.field("type")
	j.string(w.Type)
	j.field("id")
	j.string(w.ID)
	j.field("name")
	j.string(w.Name)
	j.field("user")
	j.string(w.User)
	j.field("user_source")
	j.string(w.UserSource)
	j.field("status")
	j.string(w.Status)
	j.field("image")
	j.string(w.Image)
	j.field("command")
	j.string(w.Command)
	j.field("created_at")
	j.timePtr(w.CreatedAt)
	j.field("detected_at")
	j.time(w.DetectedAt)
	j.field("has_gpu")
	j.bool(w.HasGPU)
	j.field("gpu_declared")
	j.bool(w.GPUDeclared)
	j.field("gpu_observed")
	j.bool(w.GPUObserved)
	j.field("gpu_idle")
	j.bool(w.GPUIdle)
	j.field("gpus")
	j.strings(w.GPUs)
	j.field("gpu_memory_bytes")
	j.uint64Ptr(w.GPUMemoryBytes)
	j.field("cpu_percent")
	j.float64Ptr(w.CPUPercent)
	j.field("memory_bytes")
	j.uint64Ptr(w.MemoryBytes)
	j.field("stale")
	j.bool(w.Stale)
	j.field("detected_labels")
	j.stringMap(w.DetectedLabels)
	j.close('}')
}

// checkJSON returns the error encoding/json gives for the first value of
// the document JSON cannot hold, if any: a time RFC 3339 cannot write, or a
// CPU figure that is not a finite number. Looking before writing anything
// means the document is printed whole or not at all.
func checkJSON(inv *inventory.Inventory, sources []string, rows []row) error {
	// The values in doubt, as encoding/json met them: pointers where the
	// document had a pointer, for the same message.
	var doubtful []any
	if t := inv.Scan.Time.UTC(); !inv.Scan.Time.IsZero() && !jsonTimeOK(t) {
		doubtful = append(doubtful, &t)
	}
	for _, name := range sources {
		if p := inv.Sources[name].LastSuccess; p != nil && !jsonTimeOK(p.UTC()) {
			t := p.UTC()
			doubtful = append(doubtful, &t)
		}
	}
	for _, r := range rows {
		w := r.w
		if w.CreatedAt != nil && !jsonTimeOK(*w.CreatedAt) {
			doubtful = append(doubtful, w.CreatedAt)
		}
		if !jsonTimeOK(w.DetectedAt) {
			doubtful = append(doubtful, w.DetectedAt)
		}
		if w.CPUPercent != nil && !jsonFloatOK(*w.CPUPercent) {
			doubtful = append(doubtful, w.CPUPercent)
		}
	}
	for _, v := range doubtful {
		if _, err := json.Marshal(v); err != nil {
			return err
		}
	}
	return nil
}

// jsonTimeOK reports whether t has an RFC 3339 form, the only one
// time.Time.MarshalJSON writes: a year of four digits and a zone less than
// a day from UTC.
func jsonTimeOK(t time.Time) bool {
	_, offset := t.Zone()
	year := t.Year()
	return year >= 0 && year <= 9999 && offset > -86400 && offset < 86400
}

// jsonFloatOK reports whether JSON has a number for f.
func jsonFloatOK(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}

// appendJSONFloat appends f as encoding/json does, as ECMAScript writes
// numbers: exponent form only below 1e-6 or from 1e21, with no leading
// zero in a negative exponent (1e-7, not 1e-07).
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// jsonPlain holds the bytes a JSON string carries as they are: the ASCII
// ones but for the C0 controls, the quote and the backslash. With HTML
// escaping off encoding/json leaves the same ones, DEL included. Bytes from
// 0x80 start a multi-byte character, which needs a closer look.
var jsonPlain = func() (plain [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// appendJSONString appends s as a JSON string: escaped as encoding/json
// escapes it with HTML escaping off (invalid UTF-8 becomes \ufffd, U+2028
// and U+2029 are escaped), and the characters inventory.JSONUnsafe reports
// escaped too, so that the text cannot act on a terminal. Runs of plain
// ASCII, most of any inventory, are copied without decoding.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			b = appendASCIIEscape(b, c)
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029' || inventory.JSONUnsafe(r):
			b = append(b, s[start:i]...)
			b = appendUnicodeEscape(b, r)
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendASCIIEscape appends the escape of an ASCII byte a JSON string
// cannot carry as it is: JSON's short form where it has one, else \u00XX.
func appendASCIIEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return appendUnicodeEscape(b, rune(c))
}

// appendUnicodeEscape appends \uXXXX for r, a character of the Basic
// Multilingual Plane, in lower-case hex as encoding/json writes it.
func appendUnicodeEscape(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
