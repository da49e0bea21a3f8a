//go:build docgen

package main

// Built with -tags docgen, this program writes ds01-workloads' man page or a
// shell completion instead of showing workloads (make man completion):
//
//	go run -tags docgen ./cmd/ds01-workloads man|bash|zsh

import (
	"os"
	"time"

	"github.com/ds01-project/ds01/internal/docgen"
	"github.com/ds01-project/ds01/pkg/inventory"
)

func init() {
	// The page documents the defaults, not the environment of the build.
	con := console{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: func(string) string { return "" }, now: time.Now}
	os.Exit(docgen.Main(newApp(con), docgen.Page{
		Section: 1,
		Description: `Shows every GPU workload on this machine: who started it, which GPU it holds, since when.
It reads the inventory that ds01-scan writes every 30 s and nothing else: no Docker socket,
no NVML, no root, no docker group.

By default the table shows running containers, host GPU processes and unknown containers,
newest first; --all adds stopped containers and system processes. Filters combine with AND.

--info prints the full reference (every flag, column, type, filter and JSON field);
--concepts explains how to read the output; --guided walks through it on a terminal.`,
		Sections: []docgen.Section{
			{Title: "Files", Items: [][2]string{
				{"/var/lib/ds01/workload-inventory.json", "The inventory ds01-scan writes; --inventory or $DS01_INVENTORY read another."},
			}},
			{Title: "Environment", Items: [][2]string{
				{"DS01_INVENTORY", "The inventory to read when --inventory is not given."},
				{"NO_COLOR", "When set, no colour even on a terminal."},
				{"COLUMNS", "The width NAME is cut to when stdout is not a terminal that says its width."},
			}},
			{Title: "Exit status", Items: [][2]string{
				{"0", "Printed (warnings about a stale scan or a source that was down go to stderr)."},
				{"1", "The inventory is missing, unreadable or corrupt."},
				{"2", "Usage error."},
			}},
			{Title: "See also", Text: "ds01-scan(8)"},
		},
		Values:    map[string][]string{"type": inventory.Types},
		UserFlags: []string{"user"},
	}, os.Args[1:]))
}
