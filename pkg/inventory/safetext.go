package inventory

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SafeText makes s safe to print on a terminal: control characters (terminal
// escapes, newlines, carriage returns) and invalid UTF-8 become visible
// escapes such as \x1b, so a container name or command line can neither
// move the cursor nor forge a table row. It is the one place ds01 does this.
func SafeText(s string) string {
	if printableASCII(s) {
		return s
	}
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || isBidiControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || isBidiControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// printableASCII reports whether s is only bytes 0x20 to 0x7e, as most
// names, IDs and paths are: text SafeText returns as it is, known without
// decoding a rune.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isBidiControl reports the Unicode bidirectional overrides and isolates,
// which can make text display in another order than it is stored.
func isBidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f
}

// JSONUnsafe reports the characters encoding/json writes raw but a terminal
// may act on: C1 controls (U+0080–U+009F, where U+009B starts an escape
// sequence) and bidirectional controls. JSON that may reach a terminal
// carries them as \uXXXX escapes.
func JSONUnsafe(r rune) bool {
	return r >= 0x80 && r <= 0x9f || isBidiControl(r)
}

// EscapeJSON rewrites, inside encoded JSON, the characters JSONUnsafe
// reports. Each becomes its \uXXXX escape, so the decoded strings are
// unchanged. Use it on JSON that may reach a terminal. Clean input is
// returned as it is, not copied.
func EscapeJSON(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		// In UTF-8 every such character starts with one of these two bytes,
		// and neither byte continues another character: everything else is
		// passed over without decoding.
		if b[i] != 0xc2 && b[i] != 0xe2 {
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if !JSONUnsafe(r) {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(b)+16)
		}
		out = append(out, b[last:i]...)
		out = fmt.Appendf(out, `\u%04x`, r)
		last = i + n
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// Truncate cuts s to at most limit bytes, marking a cut with an ellipsis
// (which counts towards the limit): a command line, a label or an event
// detail kept within a budget. The cut never splits a rune; the bytes kept
// are s's own, invalid UTF-8 included, for the printer to make safe. It is
// the one place ds01 shortens stored or exported text; the query tool's
// clip cuts to terminal columns instead.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const ellipsis = "…"
	if limit < len(ellipsis) {
		return ""
	}
	cut := limit - len(ellipsis)
	// Back over the continuation bytes of the rune the cut falls in; more
	// than a rune's worth of them are invalid UTF-8, and cut anywhere.
	for back := 0; cut > 0 && back < utf8.UTFMax-1 && !utf8.RuneStart(s[cut]); back++ {
		cut--
	}
	return s[:cut] + ellipsis
}
