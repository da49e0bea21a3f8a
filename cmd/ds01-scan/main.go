// Command ds01-scan observes every GPU workload on the machine — Docker
// containers of every origin, and GPU processes — and writes the ds01
// workload inventory and event log. It is run as root by a systemd timer.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ds01-project/ds01/internal/gctune"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1 // the scan could not complete
	exitUsage    = 2
	defaultState = "/var/lib/ds01"
)

// The scan collects garbage lazily (GOGC 400 unless the environment sets
// GOGC or GOMEMLIMIT): a steady scan of 1,000 containers then collects
// once or not at all, where at Go's default it collected three times, the
// first while the sources started, stopping them all for milliseconds. In
// one sitting, 41 steady scans of each interleaved: CPU 105 → 93 ms; cold
// scans 460–535 → 430–470 ms of CPU, page faults 5,100–5,800 → 6,650–6,950.
// Turned off entirely, a cold scan, whose inspect answers are garbage as
// soon as they are read, took 13,500 page faults and 900 ms of CPU. The
// limit makes the collector work harder only near it.
const (
	gcPercent     = 400
	gcMemoryLimit = 1 << 30
)

func main() {
	gctune.Lazy(gcPercent, gcMemoryLimit)
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	code := exitOK
	err := newApp(stdout, stderr).Run(args)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ds01-scan: %v\nRun 'ds01-scan --help' for usage.\n", ue.err)
		code = exitUsage
	case errors.Is(err, errBusy):
		fmt.Fprintln(stderr, "ds01-scan: another scan holds the lock; this run skipped")
	default:
		fmt.Fprintf(stderr, "ds01-scan: %v\n", err)
		code = exitFailed
	}
	return code
}

// newApp is the command line: its flags, help and action. The man page and
// shell completions are generated from it (docgen.go, -tags docgen).
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "ds01-scan",
		Usage:     "observe every GPU workload on this machine and record it in the ds01 inventory",
		UsageText: "ds01-scan [--state-dir DIR] [--events-file FILE] [--dry-run] [--verbose]",
		Description: "Run as root by the ds01-scan.timer every 30 s. Each run lists the Docker containers\n" +
			"(inspecting only new or changed ones), attributes new ones to a user, reconciles with\n" +
			"the previous inventory, appends one event per change to the event log, and saves\n" +
			"the inventory atomically. A source that is down is reported, not fatal.\n\n" +
			"Exit status: 0 the scan completed (a source may be down: see the inventory and log),\n" +
			"1 it could not complete, 2 usage error.",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Value: defaultState, Usage: "directory of the inventory file `DIR`"},
			&cli.StringFlag{Name: "events-file", Value: "/var/log/ds01/events.jsonl", Usage: "append events to `FILE`"},
			&cli.StringFlag{Name: "lock-file", Usage: "lock `FILE` that keeps scans one at a time (default /run/ds01/scan.lock, or DIR/.scan.lock with --state-dir)"},
			&cli.StringSliceFlag{Name: "docker-host", EnvVars: []string{"DOCKER_HOST"}, Usage: "Docker engine `ADDRESS` (default unix:///var/run/docker.sock); given again, one more engine to ask"},
			&cli.StringFlag{Name: "user-runtime-dir", Value: "/run/user", Usage: "ask each user's rootless Docker engine at `DIR`/<uid>/docker.sock (empty: none)"},
			&cli.StringFlag{Name: "textfile-dir", Usage: "also write Prometheus metrics to `DIR`/ds01.prom (node_exporter's textfile collector directory)"},
			&cli.DurationFlag{Name: "timeout", Value: 20 * time.Second, Usage: "budget for the whole scan"},
			&cli.StringFlag{Name: "proc-root", Value: "/proc", Usage: "procfs mount point", Hidden: true},
			&cli.StringFlag{Name: "cgroup-root", Value: "/sys/fs/cgroup", Usage: "cgroup filesystem mount point", Hidden: true},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the scan to `FILE`", Hidden: true},
			&cli.StringFlag{Name: "memprofile", Usage: "write an allocation profile of the scan to `FILE`", Hidden: true},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the would-be inventory as JSON on stdout and write nothing"},
			&cli.BoolFlag{Name: "verbose", Usage: "log debug detail"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("unexpected argument %q", c.Args().First())}
			}
			cfg := Config{
				StatePath:   filepath.Join(c.String("state-dir"), "workload-inventory.json"),
				EventsPath:  c.String("events-file"),
				LockPath:    lockPath(c.String("lock-file"), c.String("state-dir")),
				DockerHosts: c.StringSlice("docker-host"),
				UserRuntime: c.String("user-runtime-dir"),
				TextfileDir: c.String("textfile-dir"),
				Timeout:     c.Duration("timeout"),
				ProcRoot:    c.String("proc-root"),
				CgroupRoot:  c.String("cgroup-root"),
				DryRun:      c.Bool("dry-run"),
				Version:     version,
			}
			if cfg.Timeout <= 0 {
				return usageError{errors.New("--timeout must be positive")}
			}
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			if os.Geteuid() != 0 && !cfg.DryRun && c.String("state-dir") == defaultState {
				return fmt.Errorf("ds01-scan must run as root to read every user's containers and processes " +
					"(use --dry-run, or --state-dir for a private inventory)")
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if path := c.String("cpuprofile"); path != "" {
				stopProfile, err := startCPUProfile(path)
				if err != nil {
					return err
				}
				defer stopProfile()
			}
			if path := c.String("memprofile"); path != "" {
				write := startMemProfile(path)
				err := Scan(ctx, cfg, log, stdout)
				return errors.Join(err, write())
			}
			return Scan(ctx, cfg, log, stdout)
		},
	}
}

// lockPath picks the lock file: the lock guards one inventory, so a private
// --state-dir gets a lock of its own.
func lockPath(flag, stateDir string) string {
	switch {
	case flag != "":
		return flag
	case stateDir != defaultState:
		return filepath.Join(stateDir, ".scan.lock")
	}
	return "/run/ds01/scan.lock"
}

type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
