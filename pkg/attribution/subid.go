package attribution

import (
	"bytes"
	"strconv"
	"unicode"
)

// SourceSubUIDOwner says a uid was the owner's by /etc/subuid: a process of
// a rootless container runs, on the host, as one of its owner's subordinate
// uids (165536 + the uid inside, say), which has no name of its own.
const SourceSubUIDOwner = "subuid_owner"

// SubIDRange is one line of /etc/subuid: Owner (a name or a uid) holds the
// Count ids from Start.
type SubIDRange struct {
	Owner        string
	Start, Count uint64
}

// maxSubIDFile bounds what is read of /etc/subuid.
const maxSubIDFile = 1 << 20

// ParseSubIDs parses /etc/subuid (or /etc/subgid): "owner:start:count"
// lines. A line that is not that, with decimal numbers, a count above zero,
// an end that does not overflow and an owner without spaces or control
// characters, is skipped: the file is the administrator's, and one bad line
// must not hide the others.
func ParseSubIDs(data []byte) []SubIDRange {
	var out []SubIDRange
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		fields := bytes.Split(bytes.TrimSpace(line), []byte{':'})
		if len(fields) != 3 || len(fields[0]) == 0 || bytes.ContainsFunc(fields[0], func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
		}) {
			continue
		}
		start, err1 := strconv.ParseUint(string(fields[1]), 10, 64)
		count, err2 := strconv.ParseUint(string(fields[2]), 10, 64)
		if err1 != nil || err2 != nil || count == 0 || start+count < start {
			continue
		}
		out = append(out, SubIDRange{Owner: string(fields[0]), Start: start, Count: count})
	}
	return out
}

// subOwner returns the owner of the first range that holds id.
func subOwner(ranges []SubIDRange, id uint64) (string, bool) {
	for _, r := range ranges {
		if id >= r.Start && id-r.Start < r.Count {
			return r.Owner, true
		}
	}
	return "", false
}
