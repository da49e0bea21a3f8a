package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// staleAfter is three periods of ds01-scan.timer: one slow scan is normal,
// three missed ones mean the timer or the scanner is not running.
const staleAfter = 90 * time.Second

// show reads the inventory and prints what opts ask for: the data on stdout,
// warnings about its freshness on stderr so that pipes stay clean.
func show(con console, opts options) error {
	inv, err := loadInventory(opts.path)
	if err != nil {
		return err
	}
	now := con.now()
	out := bufio.NewWriter(con.stdout)
	if err := render(out, inv, opts, con.style(), now); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	writeWarnings(con.stderr, inv, now)
	return nil
}

// loadInventory loads the inventory at path, turning each way it can fail
// into one line that says what to do.
func loadInventory(path string) (*inventory.Inventory, error) {
	inv, err := inventory.Load(path)
	var corrupt *inventory.CorruptError
	var legacy *inventory.LegacyFormatError
	switch {
	case err == nil:
		return inv, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no inventory at %s: ds01-scan has not written one. Is its timer running? "+
			"(systemctl status ds01-scan.timer; --inventory or $DS01_INVENTORY reads another file)", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("cannot read the inventory %s: permission denied; ds01-scan writes it mode 0644 "+
			"in a directory everyone can enter: check with ls -ld %s %s", path, filepath.Dir(path), path)
	case errors.As(err, &corrupt):
		return nil, fmt.Errorf("%w; the next ds01-scan run moves it aside and writes a new one", err)
	case errors.As(err, &legacy):
		return nil, fmt.Errorf("%w: is ds01-scan.timer running, and ds01-workload-detector.timer stopped? "+
			"(systemctl status ds01-scan.timer ds01-workload-detector.timer)", err)
	}
	return nil, err
}

// render prints the workloads opts select from inv in the output opts ask
// for.
func render(w *bufio.Writer, inv *inventory.Inventory, opts options, st style, now time.Time) error {
	gpus := inventory.NewGPUIndex(inv.GPUs)
	workloads := inv.Workloads()
	rows, hidden := opts.filter.apply(newRows(workloads, now), gpus)
	switch {
	case opts.json:
		return writeJSON(w, inv, rows, opts.filter.devices(inv.GPULedger(workloads), gpus), opts.threshold, st.pretty)
	case opts.quiet:
		for _, r := range rows {
			w.WriteString(r.ID())
			w.WriteByte('\n')
		}
		return nil
	case opts.format != nil:
		return opts.format.write(w, rows)
	}
	cols := defaultColumns
	if opts.wide {
		cols = wideColumns
	}
	ledger := opts.filter.devices(inv.GPULedger(workloads), gpus)
	groups := []group{{rows: rows}}
	var free []string
	switch {
	case opts.byUser:
		// The heading names the user: the column would only repeat it.
		cols = slices.DeleteFunc(slices.Clone(cols), func(c column) bool { return c.field == userColumn.field })
		groups = byUser(rows)
	case opts.byGPU:
		groups, free = byGPU(rows, ledger, opts.threshold)
		if opts.filter.selectsWorkloads() {
			free = nil // a free GPU has none of the workloads asked for
		}
	}
	writeTable(w, groups, cols, st)
	if len(free) > 0 {
		if len(groups) > 0 {
			w.WriteByte('\n')
		}
		for _, f := range free {
			w.WriteString(f)
			w.WriteByte('\n')
		}
	}
	writeFooter(w, inv, rows, hidden, now)
	writeUnattributed(w, ledger, opts.threshold)
	return nil
}

// lastScan says when the last scan ran: "20s ago (2026-01-30T14:30:00Z)".
func lastScan(inv *inventory.Inventory, now time.Time) string {
	if inv.Scan.Time.IsZero() {
		return "never"
	}
	return age(now.Sub(inv.Scan.Time)) + " ago (" + inv.Scan.Time.UTC().Format(time.RFC3339) + ")"
}

// writeWarnings says when the data is stale: the last scan is old, or a
// source was down at it.
func writeWarnings(w io.Writer, inv *inventory.Inventory, now time.Time) {
	if now.Sub(inv.Scan.Time) > staleAfter {
		fmt.Fprintf(w, "ds01-workloads: warning: the data is stale: the last scan ran %s. "+
			"Is ds01-scan.timer running? (systemctl status ds01-scan.timer)\n", lastScan(inv, now))
	}
	for _, name := range slices.Sorted(maps.Keys(inv.Sources)) {
		s := inv.Sources[name]
		if s.OK {
			if s.Warning != "" {
				fmt.Fprintf(w, "ds01-workloads: warning: source %s has a blind spot: %s\n",
					inventory.SafeText(name), inventory.SafeText(s.Warning))
			}
			continue
		}
		since := "it has never answered"
		if s.LastSuccess != nil {
			since = "its data is from its last answer, " + age(now.Sub(*s.LastSuccess)) + " ago (" +
				s.LastSuccess.UTC().Format(time.RFC3339) + ")"
		}
		reason := ""
		if s.Error != "" {
			reason = " (" + inventory.SafeText(s.Error) + ")"
		}
		fmt.Fprintf(w, "ds01-workloads: warning: source %s was down at the last scan%s; %s\n",
			inventory.SafeText(name), reason, since)
	}
}
