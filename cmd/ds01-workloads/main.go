// Command ds01-workloads shows every GPU workload on this machine — who is
// using which GPU, from what, since when — from the inventory ds01-scan
// writes. It needs no privileges: it reads that one file and nothing else.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/urfave/cli/v2"

	"github.com/ds01-project/ds01/pkg/inventory"
)

var version = "dev"

const defaultInventory = "/var/lib/ds01/workload-inventory.json"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr, time.Now))
}

// options are the parsed flags.
type options struct {
	path    string
	all     bool
	json    bool
	user    string
	types   []string
	gpuOnly bool
}

func run(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	code := 0
	app := &cli.App{
		Name:            "ds01-workloads",
		Usage:           "show who is using which GPU on this machine, from what, since when",
		UsageText:       "ds01-workloads [--all] [--user NAME] [--type TYPE] [--gpu-only] [--json]",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "inventory", Value: defaultInventory, EnvVars: []string{"DS01_INVENTORY"}, Usage: "read the inventory at `PATH`"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "include stopped containers and system processes"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON document"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "only workloads of user `NAME`"},
			&cli.StringSliceFlag{Name: "type", Aliases: []string{"t"}, Usage: "only workloads of `TYPE` (repeatable, comma-separated): " + strings.Join(inventory.Types, ", ")},
			&cli.BoolFlag{Name: "gpu-only", Aliases: []string{"g"}, Usage: "only workloads that declared or use a GPU"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		Action: func(c *cli.Context) error {
			opts := options{path: c.String("inventory"), all: c.Bool("all"), json: c.Bool("json"),
				user: c.String("user"), gpuOnly: c.Bool("gpu-only")}
			for _, v := range c.StringSlice("type") {
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					if !slices.Contains(inventory.Types, t) {
						return usageError{fmt.Errorf("unknown type %q; valid types: %s", t, strings.Join(inventory.Types, ", "))}
					}
					opts.types = append(opts.types, t)
				}
			}
			return show(opts, stdout, now())
		},
	}
	err := app.Run(args)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ds01-workloads: %s\nRun 'ds01-workloads --help' for usage.\n", inventory.SafeText(ue.Error()))
		code = 2
	default:
		fmt.Fprintf(stderr, "ds01-workloads: %s\n", inventory.SafeText(err.Error()))
		code = 1
	}
	return code
}

type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func show(opts options, out io.Writer, now time.Time) error {
	inv, err := inventory.Load(opts.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no inventory at %s: has ds01-scan run? (systemctl status ds01-scan.timer)", opts.path)
	}
	if err != nil {
		return err
	}
	var rows []inventory.Workload
	for _, w := range inv.Workloads() {
		if keep(opts, w) {
			rows = append(rows, w)
		}
	}
	if opts.json {
		return writeJSON(out, inv, rows)
	}
	writeTable(out, rows, now)
	writeFooter(out, inv, rows, now)
	return nil
}

// keep applies the filters; they combine with AND.
func keep(opts options, w inventory.Workload) bool {
	if len(opts.types) > 0 {
		if !slices.Contains(opts.types, w.Type) {
			return false
		}
	} else if !opts.all && (w.Type == inventory.TypeSystem || w.Status != "running" && w.Type != inventory.TypeUnknown) {
		return false
	}
	if opts.user != "" && w.User != opts.user {
		return false
	}
	if opts.gpuOnly && !w.HasGPU {
		return false
	}
	return true
}

func writeJSON(out io.Writer, inv *inventory.Inventory, rows []inventory.Workload) error {
	doc := struct {
		SchemaVersion int                               `json:"schema_version"`
		LastScan      time.Time                         `json:"last_scan"`
		Sources       map[string]inventory.SourceStatus `json:"sources"`
		Workloads     []inventory.Workload              `json:"workloads"`
	}{inv.SchemaVersion, inv.Scan.Time.UTC(), inv.Sources, rows}
	if doc.Workloads == nil {
		doc.Workloads = []inventory.Workload{}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func writeTable(out io.Writer, rows []inventory.Workload, now time.Time) {
	t := table.NewWriter()
	t.SetOutputMirror(out)
	t.SetStyle(plainStyle())
	t.AppendHeader(table.Row{"TYPE", "USER", "GPU(S)", "STATUS", "AGE", "NAME"})
	for _, w := range rows {
		t.AppendRow(table.Row{w.Type, inventory.SafeText(w.User), gpuCell(w), statusCell(w), age(w.CreatedAt, now), inventory.SafeText(w.Name)})
	}
	t.Render()
}

// plainStyle draws a table the way docker ps does: no borders, columns
// separated by spaces.
func plainStyle() table.Style {
	s := table.StyleDefault
	s.Options = table.Options{}
	s.Box.PaddingLeft, s.Box.PaddingRight = "", "   "
	s.Format.Header = 0
	return s
}

func gpuCell(w inventory.Workload) string {
	switch {
	case len(w.GPUs) == 0 && w.GPUDeclared:
		return "?"
	case len(w.GPUs) == 0:
		return "-"
	}
	s := inventory.SafeText(strings.Join(w.GPUs, ","))
	if w.GPUObserved && !w.GPUDeclared && w.Type != inventory.TypeHostProcess && w.Type != inventory.TypeSystem {
		s += " (undeclared)"
	}
	if w.GPUIdle {
		s += " idle"
	}
	return s
}

func statusCell(w inventory.Workload) string {
	if w.Stale {
		return w.Status + " (stale)"
	}
	return w.Status
}

// age renders a duration in docker's style: 45s, 3m, 2h, 5d.
func age(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(*t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func writeFooter(out io.Writer, inv *inventory.Inventory, rows []inventory.Workload, now time.Time) {
	var containers, withGPU, procs int
	for _, w := range rows {
		switch w.Type {
		case inventory.TypeHostProcess, inventory.TypeSystem:
			procs++
		default:
			containers++
			if w.HasGPU {
				withGPU++
			}
		}
	}
	scanAge := now.Sub(inv.Scan.Time).Round(time.Second)
	fmt.Fprintf(out, "\n%d containers (%d with GPU), %d host GPU processes; last scan %s ago\n", containers, withGPU, procs, scanAge)
	for _, name := range slices.Sorted(maps.Keys(inv.Sources)) {
		st := inv.Sources[name]
		if !st.OK {
			last := "never"
			if st.LastSuccess != nil {
				last = now.Sub(*st.LastSuccess).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(out, "WARNING: source %s is down (%s); its data is from its last success, %s\n", name, inventory.SafeText(st.Error), last)
		}
	}
	if scanAge > 2*time.Minute {
		fmt.Fprintf(out, "WARNING: the inventory is %s old: is ds01-scan.timer running?\n", scanAge)
	}
}
