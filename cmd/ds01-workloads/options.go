package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// defaultInventory is where ds01-scan writes the inventory.
const defaultInventory = "/var/lib/ds01/workload-inventory.json"

// options is one parsed command line: where to read, which workloads, and
// how to print them.
type options struct {
	path   string
	filter filter
	// Output: the table (optionally wide, grouped by user) unless json,
	// quiet or format says otherwise.
	wide, byUser, byGPU, json, quiet bool
	format                           *rowFormat
	// threshold is the GPU memory held by no visible process above which
	// a GPU is flagged.
	threshold uint64
	// The help tiers past --help, which the cli package handles.
	info, concepts, guided bool
}

func newApp(con console) *cli.App {
	return &cli.App{
		Name:                   "ds01-workloads",
		Usage:                  "who is using which GPU on this machine, from what, since when",
		UsageText:              "ds01-workloads [filters] [--wide] [--by-user | --by-gpu] [--json | --format TEMPLATE | --quiet]",
		Version:                version,
		Reader:                 con.stdin,
		Writer:                 con.stdout,
		ErrWriter:              con.stderr,
		HideHelpCommand:        true,
		UseShortOptionHandling: true,
		CustomAppHelpTemplate:  helpTemplate,
		Flags:                  flags(con.getenv),
		OnUsageError:           func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		Action: func(c *cli.Context) error {
			opts, err := parseOptions(c)
			if err != nil {
				return err
			}
			switch {
			case opts.info:
				return writeInfo(con.stdout, c.App.VisibleFlags(), opts.path)
			case opts.concepts:
				return writeConcepts(con.stdout, opts.path)
			case opts.guided:
				return guide(con, opts)
			}
			return show(con, opts)
		},
	}
}

// flags are the command-line flags, in the order --help lists them. The
// inventory path defaults to $DS01_INVENTORY when that is set.
func flags(getenv func(string) string) []cli.Flag {
	path := defaultInventory
	if p := getenv("DS01_INVENTORY"); p != "" {
		path = p
	}
	return []cli.Flag{
		&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also stopped containers and system processes", DisableDefaultText: true},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "only the workloads of user `NAME`"},
		&cli.StringSliceFlag{Name: "type", Aliases: []string{"t"}, Usage: "only workloads of `TYPE`: " + strings.Join(inventory.Types, ", ") + " (compose: docker-compose)"},
		&cli.StringSliceFlag{Name: "launcher", Aliases: []string{"l"}, Usage: "only workloads started by `LAUNCHER`: " + strings.Join(inventory.Launchers, ", ")},
		&cli.StringSliceFlag{Name: "gpu", Usage: "only workloads that hold or use GPU `ID`: 0, or 0:1 for a MIG instance"},
		&cli.BoolFlag{Name: "gpu-only", Aliases: []string{"g"}, Usage: "only workloads that declared or use a GPU", DisableDefaultText: true},
		&cli.BoolFlag{Name: "idle", Usage: "only running containers that declared GPUs and use none", DisableDefaultText: true},
		&cli.BoolFlag{Name: "undeclared", Usage: "only containers that use a GPU they did not declare", DisableDefaultText: true},
		&cli.BoolFlag{Name: "wide", Aliases: []string{"w"}, Usage: "add the ID, IMAGE, CPU%, MEM, GPU MEM, USER SOURCE and LAUNCHER columns", DisableDefaultText: true},
		&cli.BoolFlag{Name: "by-user", Usage: "group the table under a heading per user", DisableDefaultText: true},
		&cli.BoolFlag{Name: "by-gpu", Usage: "group the table under a heading per GPU and MIG instance, with its memory; list the free ones", DisableDefaultText: true},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON document, for jq and scripts", DisableDefaultText: true},
		&cli.StringFlag{Name: "format", Usage: "print each workload with a Go `TEMPLATE`, as docker ps does: '{{.User}}\\t{{.GPUs}}'"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print IDs only: container IDs (12 characters) and PIDs", DisableDefaultText: true},
		&cli.StringFlag{Name: "unattributed-threshold", Value: "1GiB", Usage: "flag a GPU when more than `SIZE` of its memory is held by no visible process (512MiB, 2GiB)"},
		&cli.StringFlag{Name: "inventory", Value: path, DefaultText: defaultInventory + ", or $DS01_INVENTORY", Usage: "read the inventory at `PATH`"},
		&cli.BoolFlag{Name: "info", Usage: "the full reference: flags, columns, types, filters, JSON fields", DisableDefaultText: true},
		&cli.BoolFlag{Name: "concepts", Usage: "how to read the output: types, GPU access, users, staleness", DisableDefaultText: true},
		&cli.BoolFlag{Name: "guided", Usage: "an interactive walk-through (needs a terminal)", DisableDefaultText: true},
	}
}

// parseOptions reads and checks the flags. --format is checked first, as
// docker does: a bad template is a usage error before anything is read.
func parseOptions(c *cli.Context) (options, error) {
	var opts options
	if f := c.String("format"); f != "" {
		var err error
		if opts.format, err = parseFormat(f); err != nil {
			return opts, usageError{err}
		}
	}
	if c.NArg() > 0 {
		return opts, usageError{fmt.Errorf("unexpected argument %q", c.Args().First())}
	}
	opts.path = c.String("inventory")
	opts.wide, opts.byUser, opts.byGPU = c.Bool("wide"), c.Bool("by-user"), c.Bool("by-gpu")
	opts.json, opts.quiet = c.Bool("json"), c.Bool("quiet")
	opts.info, opts.concepts, opts.guided = c.Bool("info"), c.Bool("concepts"), c.Bool("guided")
	opts.filter = filter{
		all: c.Bool("all"), user: c.String("user"), gpuOnly: c.Bool("gpu-only"),
		idle: c.Bool("idle"), undeclared: c.Bool("undeclared"),
	}
	th, err := parseBytes(c.String("unattributed-threshold"))
	if err != nil {
		return opts, usageError{fmt.Errorf("--unattributed-threshold: %w", err)}
	}
	opts.threshold = th
	for _, name := range c.StringSlice("type") {
		t, ok := inventory.TypeNamed(name)
		if !ok {
			return opts, usageError{fmt.Errorf("unknown type %q; valid types: %s", name, strings.Join(inventory.Types, ", "))}
		}
		opts.filter.types = append(opts.filter.types, t)
	}
	for _, name := range c.StringSlice("launcher") {
		if !slices.Contains(inventory.Launchers, name) {
			return opts, usageError{fmt.Errorf("unknown launcher %q; valid launchers: %s", name, strings.Join(inventory.Launchers, ", "))}
		}
		opts.filter.launchers = append(opts.filter.launchers, name)
	}
	for _, g := range c.StringSlice("gpu") {
		if g == "" {
			return opts, usageError{errors.New("--gpu needs a GPU ID: an index (0) or a MIG instance (0:1)")}
		}
		opts.filter.gpus = append(opts.filter.gpus, g)
	}

	outputs := 0
	for _, set := range []bool{opts.json, opts.format != nil, opts.quiet} {
		if set {
			outputs++
		}
	}
	switch {
	case outputs > 1:
		return opts, usageError{errors.New("--json, --format and --quiet each choose the output: give one")}
	case outputs == 1 && (opts.wide || opts.byUser || opts.byGPU):
		return opts, usageError{errors.New("--wide, --by-user and --by-gpu shape the table: they do not combine with --json, --format or --quiet")}
	case opts.byUser && opts.byGPU:
		return opts, usageError{errors.New("--by-user and --by-gpu each group the table: give one")}
	}
	return opts, nil
}
