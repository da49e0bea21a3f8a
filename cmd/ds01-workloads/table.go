package main

import (
	"bufio"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// gap separates columns, as in docker ps.
const gap = "   "

// minLastWidth is the narrowest the last column is cut to: on a terminal too
// narrow for the other columns the line wraps rather than lose the name.
const minLastWidth = 12

// group is a run of rows under an optional heading (--by-user).
type group struct {
	heading string
	rows    []row
}

// writeTable prints groups as one table: the columns line up across every
// group, and each group repeats the header under its heading.
func writeTable(w *bufio.Writer, groups []group, cols []column, st style) {
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = c.header
	}
	cells := make([][][]string, len(groups))
	all := [][]string{header}
	for gi, g := range groups {
		cells[gi] = make([][]string, len(g.rows))
		for ri, r := range g.rows {
			line := make([]string, len(cols))
			for ci, c := range cols {
				line[ci] = c.value(r)
			}
			cells[gi][ri] = line
			all = append(all, line)
		}
	}
	widths := columnWidths(all, st.width)
	var headerPaints, paints []string
	headingPaint := ""
	if st.colour {
		headerPaints, paints = make([]string, len(cols)), make([]string, len(cols))
		for i := range headerPaints {
			headerPaints[i] = sgrBold
		}
		headingPaint = sgrBold
	}
	for gi, g := range groups {
		if g.heading != "" {
			if gi > 0 {
				w.WriteByte('\n')
			}
			w.WriteString(paint(g.heading, headingPaint))
			w.WriteByte('\n')
		}
		writeLine(w, header, widths, headerPaints)
		for ri, r := range g.rows {
			for ci := range paints {
				if paints[ci] = ""; cols[ci].paint != nil {
					paints[ci] = cols[ci].paint(r)
				}
			}
			writeLine(w, cells[gi][ri], widths, paints)
		}
	}
}

// columnWidths returns the width of each column of lines, which may be
// ragged. The last column is not padded: its entry is the width it is cut
// to so that a line fits maxWidth, or 0 for no cut.
func columnWidths(lines [][]string, maxWidth int) []int {
	var widths []int
	for _, line := range lines {
		for i, cell := range line {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(cell))
		}
	}
	if len(widths) == 0 {
		return widths
	}
	last := len(widths) - 1
	if maxWidth <= 0 {
		widths[last] = 0
		return widths
	}
	room := maxWidth
	for _, cw := range widths[:last] {
		room -= cw + len(gap)
	}
	widths[last] = max(room, minLastWidth)
	return widths
}

// writeLine writes one line of cells padded to widths, each cell in the
// colour paints gives it; nil paints: no colour.
func writeLine(w *bufio.Writer, cells []string, widths []int, paints []string) {
	last := len(cells) - 1
	for i, cell := range cells {
		if i == last && widths[i] > 0 {
			cell = clip(cell, widths[i])
		}
		if paints != nil {
			cell = paint(cell, paints[i])
		}
		w.WriteString(cell)
		if i == last {
			break
		}
		pad(w, widths[i]-displayWidth(cells[i])+len(gap))
	}
	w.WriteByte('\n')
}

// spaces is a run of blanks for padding cells.
const spaces = "                                                                "

// pad writes n blanks.
func pad(w *bufio.Writer, n int) {
	for n > 0 {
		k := min(n, len(spaces))
		w.WriteString(spaces[:k])
		n -= k
	}
}

// paint wraps s in an SGR colour; "" leaves it plain.
func paint(s, sgr string) string {
	if sgr == "" {
		return s
	}
	return "\x1b[" + sgr + "m" + s + "\x1b[0m"
}

// displayWidth is the number of terminal columns s takes. Cells are made
// safe by inventory.SafeText first, so they hold no escape sequences.
func displayWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return text.StringWidthWithoutEscSequences(s)
		}
	}
	return len(s)
}

// clip cuts s to width columns, marking the cut with an ellipsis.
func clip(s string, width int) string {
	if displayWidth(s) <= width {
		return s
	}
	return text.Trim(s, width-1) + "…"
}

// byUser groups rows under a heading per user, users sorted by name and
// "unknown" last; each group keeps the rows' order.
func byUser(rows []row) []group {
	byName := map[string][]row{}
	for _, r := range rows {
		byName[r.w.User] = append(byName[r.w.User], r)
	}
	users := slices.SortedFunc(maps.Keys(byName), func(a, b string) int {
		switch {
		case a == "unknown":
			return 1
		case b == "unknown":
			return -1
		}
		return strings.Compare(a, b)
	})
	groups := make([]group, len(users))
	for i, u := range users {
		groups[i] = group{heading: userHeading(u, byName[u]), rows: byName[u]}
	}
	return groups
}

// userHeading says what a user has: "alice: 2 workloads, GPUs 0,1, 20.0GiB
// GPU memory".
func userHeading(user string, rows []row) string {
	gpuSet := map[string]bool{}
	var mem uint64
	memKnown := false
	for _, r := range rows {
		for _, g := range r.w.GPUs {
			gpuSet[g] = true
		}
		if r.w.GPUMemoryBytes != nil {
			mem += *r.w.GPUMemoryBytes
			memKnown = true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", safe(user), plural(len(rows), "workload", "workloads"))
	gpus := slices.Sorted(maps.Keys(gpuSet))
	switch {
	case gpuSet["all"]:
		b.WriteString(", all GPUs")
	case len(gpus) == 1:
		b.WriteString(", GPU " + safe(gpus[0]))
	case len(gpus) > 1:
		b.WriteString(", GPUs " + safe(strings.Join(gpus, ",")))
	default:
		b.WriteString(", no GPU")
	}
	if memKnown {
		b.WriteString(", " + bytesText(&mem) + " GPU memory")
	}
	return b.String()
}

// writeFooter prints the counts of what is shown and when the last scan
// ran: "5 containers (4 with GPU), 1 host GPU process; 2 more with --all;
// last scan 20s ago (2026-01-30T14:30:00Z)".
func writeFooter(w *bufio.Writer, inv *inventory.Inventory, rows []row, hidden int, now time.Time) {
	var containers, withGPU, procs int
	for _, x := range rows {
		switch {
		case inventory.IsProcessType(x.w.Type):
			procs++
		case x.w.HasGPU:
			withGPU++
			containers++
		default:
			containers++
		}
	}
	fmt.Fprintf(w, "\n%s (%d with GPU), %s", plural(containers, "container", "containers"), withGPU,
		plural(procs, "host GPU process", "host GPU processes"))
	if hidden > 0 {
		fmt.Fprintf(w, "; %d more with --all", hidden)
	}
	fmt.Fprintf(w, "; last scan %s\n", lastScan(inv, now))
}

// plural renders a count with the right noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
