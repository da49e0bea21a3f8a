// Package jsondec is ds01's one-pass JSON decoder: the inventory's reader
// and the scan's reader of the Docker engine's container list. Each caller
// writes its schema as one function per struct, calling Object with the
// struct's keys and a value method (String, Int, Time, …) or Slice, Map and
// Ptr for each field, with no reflection.
//
// encoding/json spends most of a large document's decoding on reflection
// and on a validation pass of its own; this decoder checks the syntax as it
// reads, in one pass, several times faster. It decodes exactly as
// encoding/json would into the same structs (a differential fuzz test of
// each schema holds it to that), with one difference: a key that appears
// twice in one object is refused rather than letting the last one win,
// since two readers of such a document could each see a different value.
// Like encoding/json it matches keys case-insensitively when there is no
// exact match, replaces invalid UTF-8 with U+FFFD, leaves a non-pointer
// field unchanged on null, and skips keys it does not know. Unlike it, it
// refuses a document whose lists and maps would take more than a budget
// once decoded.
package jsondec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// MaxDepth is how deeply values may nest, as in encoding/json.
const MaxDepth = 10000

// decodeError carries a decoding failure up to Decode.
type decodeError struct{ err error }

// Decoder reads one JSON document from data.
type Decoder struct {
	// data is the document. Strings without escapes are cut from it, not
	// copied, so it is kept alive by the inventory decoded from it.
	data  string
	pos   int
	depth int
	// budget is what lists and maps may still take, in bytes.
	budget int
	// reserve is the room grow may still set aside, in bytes: the guesses
	// for all the lists together stay within the budget.
	reserve int
	// field is the key whose value is being decoded, for messages.
	field string
	// limit and what name the budget in the message that refuses it.
	limit int
	what  string
}

// Decode decodes the JSON document data with top, which calls one of the
// Decoder's value methods, Object, or Slice, Map or Ptr, once. The lists
// and maps decoded may take budget bytes; what names the document in the
// message of one that would take more ("an inventory"). Strings without
// escapes are cut from data, not copied: what is decoded keeps it alive.
func Decode(data string, budget int, what string, top func(*Decoder)) (err error) {
	d := &Decoder{data: data, budget: budget, reserve: budget, limit: budget, what: what}
	defer func() {
		if r := recover(); r != nil {
			de, ok := r.(decodeError)
			if !ok {
				panic(r)
			}
			err = de.err
		}
	}()
	top(d)
	d.skipSpace()
	if d.pos < len(d.data) {
		d.syntaxError("invalid character %s after top-level value", quoteChar(d.data[d.pos]))
	}
	return nil
}

// Keys is the JSON keys of one struct: a key's position in names is the
// bit that marks it seen within one object.
type Keys struct {
	names []string
	index map[string]int
}

// NewKeys is the keys of a struct of at most 64 fields, in the order they
// are written.
func NewKeys(names ...string) *Keys {
	if len(names) > 64 {
		panic("jsondec: Keys holds at most 64 keys")
	}
	ks := &Keys{names: names, index: make(map[string]int, len(names))}
	for i, n := range names {
		ks.index[n] = i
	}
	return ks
}

// Names is the keys, in the order given; a copy.
func (ks *Keys) Names() []string { return append([]string(nil), ks.names...) }

// lookup returns the position of key: an exact match, else one that
// differs only in case (as encoding/json matches), else -1. next is the
// position after the previous key's: a struct is written in field order,
// so that is nearly always where the key is.
func (ks *Keys) lookup(key string, next int) int {
	if next < len(ks.names) && ks.names[next] == key {
		return next
	}
	if i, ok := ks.index[key]; ok {
		return i
	}
	for i, n := range ks.names {
		if strings.EqualFold(key, n) {
			return i
		}
	}
	return -1
}

// Containers of values. As in encoding/json: null gives a nil slice or
// map, [] and {} empty non-nil ones, and a null element the zero value.

// Slice decodes an array, each element with elem.
func Slice[T any](d *Decoder, elem func(*Decoder, *T)) []T {
	if d.null() {
		return nil
	}
	if d.peek() != '[' {
		d.mismatch("an array")
	}
	d.open()
	out := []T{}
	if d.peek() == ']' {
		d.close()
		return out
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	start := d.pos
	for {
		d.charge(size)
		if len(out) == EstimateAfter && d.depth <= 2 {
			out = grow(d, out, start, size)
		}
		out = append(out, zero)
		elem(d, &out[len(out)-1])
		if !d.more(']', "array element") {
			break
		}
	}
	d.depth--
	return out
}

// EstimateAfter is how many elements of a list at the document's top, or
// in its top object (the inventory's containers and processes, the
// engine's list), are decoded before its length is estimated. The lists
// inside their elements stay short and grow as slices do.
const EstimateAfter = 16

// grow returns out with room for as many elements as the rest of the
// document could hold if they were the size of those read since start. A
// list of 10,000 containers is then not copied at every growth, and the
// room it does not use is memory never touched. The budget caps the guess,
// and the guesses of all the lists together.
func grow[T any](d *Decoder, out []T, start, size int) []T {
	perElement := max((d.pos-start)/len(out), 1)
	n := min((len(d.data)-d.pos)/perElement+1, d.budget/max(size, 1), d.reserve/max(size, 1))
	d.reserve -= n * size
	return append(make([]T, 0, len(out)+n), out...)
}

// Map decodes an object with string keys, each value with elem.
func Map[V any](d *Decoder, elem func(*Decoder, *V)) map[string]V {
	if d.null() {
		return nil
	}
	if d.peek() != '{' {
		d.mismatch("an object")
	}
	d.open()
	out := map[string]V{}
	if d.peek() == '}' {
		d.close()
		return out
	}
	var zero V
	size := int(unsafe.Sizeof(zero)) + mapEntryOverhead
	field := d.field
	for {
		d.charge(size)
		key := d.key()
		var v V
		elem(d, &v)
		n := len(out)
		out[key] = v
		if len(out) == n {
			d.fail("key %q appears twice in %q", key, field)
		}
		if !d.more('}', "object key:value pair") {
			break
		}
	}
	d.depth--
	return out
}

// mapEntryOverhead is roughly what a map entry costs beyond its key and
// value.
const mapEntryOverhead = 24

// charge counts size bytes against the decoding budget.
func (d *Decoder) charge(size int) {
	d.budget -= size
	if d.budget < 0 {
		d.fail("more entries than %s can hold (over %d MiB once decoded)", d.what, d.limit>>20)
	}
}

// Ptr decodes into a new value for *p, or sets *p to nil on null.
func Ptr[T any](d *Decoder, p **T, elem func(*Decoder, *T)) {
	if d.null() {
		*p = nil
		return
	}
	v := new(T)
	elem(d, v)
	*p = v
}

// Object decodes a JSON object whose keys are ks, calling set with the
// key's name in ks for each one it holds. Unknown keys are skipped.
func (d *Decoder) Object(ks *Keys, set func(key string)) {
	if d.null() {
		return
	}
	if d.peek() != '{' {
		d.mismatch("an object")
	}
	d.open()
	if d.peek() == '}' {
		d.close()
		return
	}
	var seen uint64
	next := 0
	for {
		i := ks.lookup(d.key(), next)
		switch {
		case i < 0:
			d.Skip()
		case seen&(1<<i) != 0:
			d.fail("key %q appears twice in one object", ks.names[i])
		default:
			seen |= 1 << i
			next = i + 1
			d.field = ks.names[i]
			set(ks.names[i])
		}
		if !d.more('}', "object key:value pair") {
			break
		}
	}
	d.depth--
}

// Values. Each leaves its target unchanged on null, as encoding/json does.

func (d *Decoder) String(p *string) {
	if d.null() {
		return
	}
	if d.peek() != '"' {
		d.mismatch("a string")
	}
	s, plain := d.stringLiteral()
	if !plain {
		s = unquote(s)
	}
	*p = s
}

func (d *Decoder) Bool(p *bool) {
	switch d.peek() {
	case 'n':
		d.literal("null")
	case 't':
		d.literal("true")
		*p = true
	case 'f':
		d.literal("false")
		*p = false
	default:
		d.mismatch("true or false")
	}
}

func (d *Decoder) Int(p *int) {
	if !d.null() {
		*p = int(d.signed(strconv.IntSize))
	}
}

func (d *Decoder) Int64(p *int64) {
	if !d.null() {
		*p = d.signed(64)
	}
}

func (d *Decoder) Uint64(p *uint64) {
	if !d.null() {
		*p = d.unsigned(64)
	}
}

func (d *Decoder) Uint32(p *uint32) {
	if !d.null() {
		*p = uint32(d.unsigned(32))
	}
}

func (d *Decoder) Float64(p *float64) {
	if d.null() {
		return
	}
	lit := d.number()
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		d.fail("field %q holds the number %s, which is out of range", d.field, lit)
	}
	*p = f
}

// Time decodes an RFC 3339 string exactly as time.Time.UnmarshalJSON does.
func (d *Decoder) Time(p *time.Time) {
	if d.null() {
		return
	}
	if d.peek() != '"' {
		d.mismatch("a time")
	}
	start := d.pos
	d.stringLiteral()
	if err := p.UnmarshalJSON([]byte(d.data[start:d.pos])); err != nil {
		d.fail("field %q: %v", d.field, err)
	}
}

// signed decodes an integer that fits in bits.
func (d *Decoder) signed(bits int) int64 {
	lit := d.number()
	if n, ok := smallInt(lit); ok {
		return n
	}
	n, err := strconv.ParseInt(lit, 10, bits)
	if err != nil {
		d.fail("field %q holds the number %s, want an integer of %d bits", d.field, lit, bits)
	}
	return n
}

// unsigned decodes a non-negative integer that fits in bits.
func (d *Decoder) unsigned(bits int) uint64 {
	lit := d.number()
	n, err := strconv.ParseUint(lit, 10, bits)
	if err != nil {
		d.fail("field %q holds the number %s, want an unsigned integer of %d bits", d.field, lit, bits)
	}
	return n
}

// smallInt parses lit without allocating when it is an integer of at most
// nine digits, which fits every integer type it is used for.
func smallInt(lit string) (int64, bool) {
	digits := lit
	if len(lit) > 0 && lit[0] == '-' {
		digits = lit[1:]
	}
	if len(digits) == 0 || len(digits) > 9 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) < len(lit) {
		n = -n
	}
	return n, true
}

// The lexer.

func (d *Decoder) fail(format string, args ...any) {
	panic(decodeError{fmt.Errorf(format, args...)})
}

// syntaxError reports malformed JSON at the current position, in the words
// encoding/json uses.
func (d *Decoder) syntaxError(format string, args ...any) {
	d.fail("invalid JSON at byte %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *Decoder) unexpectedEnd() {
	d.pos = len(d.data)
	d.syntaxError("unexpected end of JSON input")
}

func (d *Decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next byte that is not white space, without consuming it.
func (d *Decoder) peek() byte {
	if d.pos < len(d.data) && d.data[d.pos] > ' ' {
		return d.data[d.pos]
	}
	d.skipSpace()
	if d.pos >= len(d.data) {
		d.unexpectedEnd()
	}
	return d.data[d.pos]
}

// null consumes a null and reports whether there was one.
func (d *Decoder) null() bool {
	if d.peek() != 'n' {
		return false
	}
	d.literal("null")
	return true
}

func (d *Decoder) literal(lit string) {
	for i := 0; i < len(lit); i++ {
		if d.pos >= len(d.data) {
			d.unexpectedEnd()
		}
		if c := d.data[d.pos]; c != lit[i] {
			d.syntaxError("invalid character %s in literal %s (expecting %s)", quoteChar(c), lit, quoteChar(lit[i]))
		}
		d.pos++
	}
}

// open consumes the opening bracket of an object or array.
func (d *Decoder) open() {
	d.pos++
	d.depth++
	if d.depth > MaxDepth {
		d.syntaxError("exceeded max depth")
	}
}

// close consumes the closing bracket of an empty object or array.
func (d *Decoder) close() {
	d.pos++
	d.depth--
}

// more consumes the comma or the closing bracket after a member or an
// element, and reports whether another one follows.
func (d *Decoder) more(closing byte, after string) bool {
	switch c := d.peek(); c {
	case ',':
		d.pos++
		return true
	case closing:
		d.pos++
		return false
	default:
		d.syntaxError("invalid character %s after %s", quoteChar(c), after)
		return false
	}
}

// key consumes an object key and its colon, and returns the key.
func (d *Decoder) key() string {
	if c := d.peek(); c != '"' {
		d.syntaxError("invalid character %s looking for beginning of object key string", quoteChar(c))
	}
	k, plain := d.stringLiteral()
	if !plain {
		k = unquote(k)
	}
	if c := d.peek(); c != ':' {
		d.syntaxError("invalid character %s after object key", quoteChar(c))
	}
	d.pos++
	return k
}

// stringLiteral consumes a string literal, checking its syntax, and
// returns what is between the quotes. plain is true when that is the
// string itself: printable ASCII with no escape.
func (d *Decoder) stringLiteral() (s string, plain bool) {
	d.pos++
	start := d.pos
	plain = true
	for {
		d.skipPlain()
		if d.pos >= len(d.data) {
			d.unexpectedEnd()
		}
		switch c := d.data[d.pos]; {
		case c == '"':
			d.pos++
			return d.data[start : d.pos-1], plain
		case c == '\\':
			plain = false
			d.escape()
		case c < 0x20:
			d.syntaxError("invalid character %s in string literal", quoteChar(c))
		default:
			plain = false
			d.pos++
		}
	}
}

// skipPlain advances over printable ASCII other than '"' and '\\', eight
// bytes at a time while it can: most of an inventory is such strings.
func (d *Decoder) skipPlain() {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for d.pos+8 <= len(d.data) {
		s := d.data[d.pos : d.pos+8]
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		quote, backslash := x^(ones*'"'), x^(ones*'\\')
		// A high bit is set in a byte of the result when that byte is a
		// quote, a backslash, below 0x20 or above 0x7f (and, after one of
		// those, maybe in higher bytes: the byte loop sorts that out).
		if ((quote-ones)&^quote|(backslash-ones)&^backslash|(x-ones*0x20)&^x|x)&highs != 0 {
			break
		}
		d.pos += 8
	}
	for d.pos < len(d.data) {
		if c := d.data[d.pos]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return
		}
		d.pos++
	}
}

// escape checks the syntax of the escape sequence at the current position.
func (d *Decoder) escape() {
	d.pos++
	if d.pos >= len(d.data) {
		d.unexpectedEnd()
	}
	switch c := d.data[d.pos]; c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		d.pos++
	case 'u':
		d.pos++
		for range 4 {
			if d.pos >= len(d.data) {
				d.unexpectedEnd()
			}
			if c := d.data[d.pos]; hexValue(c) < 0 {
				d.syntaxError("invalid character %s in \\u hexadecimal character escape", quoteChar(c))
			}
			d.pos++
		}
	default:
		d.syntaxError("invalid character %s in string escape code", quoteChar(c))
	}
}

// number consumes a number literal, checking its syntax, and returns it.
func (d *Decoder) number() string {
	c := d.peek()
	if c != '-' && (c < '0' || c > '9') {
		d.mismatch("a number")
	}
	start := d.pos
	if c == '-' {
		d.pos++
	}
	switch {
	case d.pos >= len(d.data):
		d.unexpectedEnd()
	case d.data[d.pos] == '0':
		d.pos++
	case isDigit(d.data[d.pos]):
		d.digits()
	default:
		d.syntaxError("invalid character %s in numeric literal", quoteChar(d.data[d.pos]))
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		d.requireDigits()
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		d.requireDigits()
	}
	return d.data[start:d.pos]
}

func (d *Decoder) requireDigits() {
	if d.pos >= len(d.data) {
		d.unexpectedEnd()
	}
	if !isDigit(d.data[d.pos]) {
		d.syntaxError("invalid character %s in numeric literal", quoteChar(d.data[d.pos]))
	}
	d.digits()
}

func (d *Decoder) digits() {
	for d.pos < len(d.data) && isDigit(d.data[d.pos]) {
		d.pos++
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Skip consumes one value of any type, checking its syntax.
func (d *Decoder) Skip() {
	switch c := d.peek(); {
	case c == '{':
		d.open()
		if d.peek() == '}' {
			d.close()
			return
		}
		for {
			d.key()
			d.Skip()
			if !d.more('}', "object key:value pair") {
				break
			}
		}
		d.depth--
	case c == '[':
		d.open()
		if d.peek() == ']' {
			d.close()
			return
		}
		for {
			d.Skip()
			if !d.more(']', "array element") {
				break
			}
		}
		d.depth--
	case c == '"':
		d.stringLiteral()
	case c == 't':
		d.literal("true")
	case c == 'f':
		d.literal("false")
	case c == 'n':
		d.literal("null")
	case c == '-' || isDigit(c):
		d.number()
	default:
		d.syntaxError("invalid character %s looking for beginning of value", quoteChar(c))
	}
}

// mismatch reports a value of another JSON type than the field's. The
// value is checked first: a syntax error in it is the real problem.
func (d *Decoder) mismatch(want string) {
	start := d.pos
	d.Skip()
	kind := jsonKind(d.data[start])
	d.pos = start
	if d.field == "" {
		d.fail("the document is a JSON %s, want %s", kind, want)
	}
	d.fail("field %q holds a JSON %s, want %s", d.field, kind, want)
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// unquote returns the string a literal's contents s stand for, as
// encoding/json decodes it: escapes resolved, and each byte of invalid
// UTF-8 or unpaired surrogate replaced with U+FFFD. s has been checked by
// stringLiteral.
func unquote(s string) string {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(s[r:])
			if rr == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[r:r+size]...)
			}
			r += size
		}
	}
	return string(b)
}

// hex4 returns the value of the four hex digits starting s.
func hex4(s string) rune {
	var r rune
	for i := range 4 {
		r = r<<4 | rune(hexValue(s[i]))
	}
	return r
}

func hexValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// quoteChar formats c as encoding/json does in its messages.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
