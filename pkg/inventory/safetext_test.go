package inventory

import (
	"encoding/json"
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
