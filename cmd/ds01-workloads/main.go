// Command ds01-workloads shows every GPU workload on this machine — who is
// using which GPU, from what, since when — from the inventory ds01-scan
// writes. It needs no privileges: it reads that one file and nothing else,
// and it is built without cgo so that it is one static binary.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/ds01-project/ds01/internal/gctune"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the inventory is missing, unreadable or corrupt
	exitUsage  = 2
)

// console is what run needs from the process it runs in. main fills it in
// from the real process; tests fill it in themselves.
type console struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// stdinTerminal and stdoutTerminal say whether those streams are
	// terminals: --guided needs the first, colour the second.
	stdinTerminal, stdoutTerminal bool
	// width is the width of the terminal on stdout; 0 when it is not one.
	width int
}

func main() {
	gctune.Oneshot(gcMemoryLimit)
	os.Exit(run(os.Args, console{
		stdin:          os.Stdin,
		stdout:         os.Stdout,
		stderr:         os.Stderr,
		getenv:         os.Getenv,
		now:            time.Now,
		stdinTerminal:  isTerminal(os.Stdin),
		stdoutTerminal: isTerminal(os.Stdout),
		width:          terminalWidth(os.Stdout),
	}))
}

// gcMemoryLimit is the heap size at which the garbage collector starts
// collecting: several times what an inventory at the file size cap needs.
// On a 10,000-workload inventory collecting was a quarter of the run.
const gcMemoryLimit = 512 << 20

// run runs the command line args and returns the exit code. Errors are one
// line on stderr, never a stack trace.
func run(args []string, con console) int {
	err := newApp(con).Run(args)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(con.stderr, "ds01-workloads: %s\nRun 'ds01-workloads --help' for usage.\n", inventory.SafeText(ue.Error()))
		return exitUsage
	}
	fmt.Fprintf(con.stderr, "ds01-workloads: %s\n", inventory.SafeText(err.Error()))
	return exitFailed
}

// usageError is a command line that cannot be run as given: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// style is how output looks on this stdout: colour, the width NAME is cut
// to (0: never cut), and whether JSON is indented for a reader.
type style struct {
	colour bool
	width  int
	pretty bool
}

// style decides colour and width: colour only on a terminal, never with
// NO_COLOR set (https://no-color.org) or on a dumb terminal; the width of the
// terminal, else $COLUMNS, else none, so that piped output is never cut.
// JSON is indented for a reader on a terminal, and compact in a pipe, where
// a large inventory is written three times faster.
func (con console) style() style {
	st := style{
		colour: con.stdoutTerminal && con.getenv("NO_COLOR") == "" && con.getenv("TERM") != "dumb",
		width:  con.width,
		pretty: con.stdoutTerminal,
	}
	if st.width == 0 {
		if n, err := strconv.Atoi(con.getenv("COLUMNS")); err == nil && n > 0 {
			st.width = n
		}
	}
	return st
}
