package inventory

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSafeText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "alice-train_1.0", "alice-train_1.0"},
		{"empty", "", ""},
		{"non-ASCII letters kept", "Zoë 名前 🚀", "Zoë 名前 🚀"},
		{"real replacement character kept", "a\uFFFDb", "a\uFFFDb"},
		{"colour escape", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"title escape with BEL", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"newline forging a row", "ok\nroot  all  running", `ok\x0aroot  all  running`},
		{"carriage return and tab", "a\rb\tc", `a\x0db\x09c`},
		{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
		{"invalid UTF-8", "bad\xff\xfeend", `bad\xff\xfeend`},
		{"truncated multibyte", "caf\xc3", `caf\xc3`},
		{"C1 CSI", "a\u009b2Jb", `a\u009b2Jb`},
		{"bidi override", "evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"bidi isolate", "x\u2066y\u2069", `x\u2066y\u2069`},
		{"line separator is not a control", "a\u2028b", "a\u2028b"},
		{"every printable ASCII byte", printableASCIIBytes(), printableASCIIBytes()},
		{"DEL after printable ASCII", "abc~\x7f", `abc~\x7f`},
		{"unit separator", "a\x1fb", `a\x1fb`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SafeText(tc.in)
			if got != tc.want {
				t.Errorf("SafeText(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("SafeText(%q) = %q is not valid UTF-8", tc.in, got)
			}
			if i := strings.IndexFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }); i >= 0 {
				t.Errorf("SafeText(%q) = %q still holds a control character at %d", tc.in, got, i)
			}
		})
	}
}

func TestEscapeJSON(t *testing.T) {
	in := map[string]string{"name": "a\u009b31m\u202eevil\u2066x ünïcödé \x1b"}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := EscapeJSON(data)
	for _, r := range string(out) {
		if r >= 0x80 && (unicode.IsControl(r) || isBidiControl(r)) {
			t.Fatalf("raw %U left in %s", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["name"] != in["name"] {
		t.Errorf("decoded %q (%v), want the same string back", back["name"], err)
	}
	if plain := []byte(`{"a":"b"}`); &EscapeJSON(plain)[0] != &plain[0] {
		t.Errorf("clean input copied")
	}
}

func printableASCIIBytes() string {
	var b strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

// TestSafeTextPlainNotCopied: printable ASCII, most of what SafeText sees,
// comes back as it is, with no allocation.
func TestSafeTextPlainNotCopied(t *testing.T) {
	s := "alice-train_1.0 python train.py --lr 3e-4"
	if allocs := testing.AllocsPerRun(100, func() { _ = SafeText(s) }); allocs != 0 {
		t.Errorf("SafeText allocates %v times on printable ASCII", allocs)
	}
}

// TestJSONUnsafe: exactly the C1 controls and the bidirectional controls.
func TestJSONUnsafe(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		want := r >= 0x80 && unicode.IsControl(r) || isBidiControl(r)
		if got := JSONUnsafe(r); got != want {
			t.Fatalf("JSONUnsafe(%U) = %v, want %v", r, got, want)
		}
	}
}

// TestEscapeJSONCases: the edges of what EscapeJSON escapes, and bytes
// that are not UTF-8 around them.
func TestEscapeJSONCases(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{"", ""},
		{"\u0080\u009b\u009f", `\u0080\u009b\u009f`},
		{"\u007f\u00a0\u00c2\u00e2", "\u007f\u00a0\u00c2\u00e2"},
		{"\u200d\u200e\u200f\u2010", "\u200d" + `\u200e\u200f` + "\u2010"},
		{"\u2029\u202a\u202e\u202f", "\u2029" + `\u202a\u202e` + "\u202f"},
		{"\u2065\u2066\u2069\u206a", "\u2065" + `\u2066\u2069` + "\u206a"},
		{"\u2028 is left to encoding/json", "\u2028 is left to encoding/json"},
		{"truncated \xc2", "truncated \xc2"},
		{"truncated \xe2\x80", "truncated \xe2\x80"},
		{"\xe2\xc2\x9b", "\xe2" + `\u009b`},
		{"\xc2\xc2\x85", "\xc2" + `\u0085`},
		{"\xff\xe2\x80\xae!", "\xff" + `\u202e` + "!"},
	}
	for _, tc := range tests {
		if got := EscapeJSON([]byte(tc.in)); string(got) != tc.want {
			t.Errorf("EscapeJSON(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if ref := escapeJSONByRune([]byte(tc.in)); string(ref) != tc.want {
			t.Errorf("escapeJSONByRune(%q) = %q, want %q", tc.in, ref, tc.want)
		}
	}
}

// escapeJSONByRune is what EscapeJSON does, decoding every rune.
func escapeJSONByRune(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r >= 0x80 && (unicode.IsControl(r) || isBidiControl(r)) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// FuzzEscapeJSON: EscapeJSON, which decodes only where an escape may be
// due, does what decoding every rune does, on any bytes.
func FuzzEscapeJSON(f *testing.F) {
	for _, s := range []string{
		"", `{"name":"plain"}`, "\u009b31m", "\u202eevil\u2066", "\xe2\xc2\x9b", "\xc2", "\xe2\x80",
		"\xe2\x81\xa6", "\u00a0\u2028", "ünïcödé \x1b", "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := EscapeJSON(b), escapeJSONByRune(b); string(got) != string(want) {
			t.Fatalf("EscapeJSON(%q) = %q, want %q", b, got, want)
		}
	})
}
