package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
	"github.com/ds01-project/ds01/pkg/scan"
)

// Config is one scan's settings, from the command line.
type Config struct {
	StatePath  string
	EventsPath string
	LockPath   string
	// DockerHosts are the engines to ask besides the users' own: the
	// first is the system's (none: the environment's, else the default
	// socket), each other one more.
	DockerHosts []string
	// UserRuntime is where users' runtime directories are (/run/user),
	// each of which may hold a rootless engine's socket; "" asks none.
	UserRuntime string
	// TextfileDir, when set, gets Prometheus metrics after every scan.
	TextfileDir string
	Timeout     time.Duration
	ProcRoot    string
	CgroupRoot  string
	DryRun      bool
	Version     string
}

// Scan runs one scan: lock, load the previous inventory, observe, attribute
// what is new, reconcile, save the inventory with its events, append them,
// unlock.
func Scan(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	start := time.Now().UTC()
	if !cfg.DryRun {
		for _, dir := range []string{filepath.Dir(cfg.StatePath), filepath.Dir(cfg.EventsPath), filepath.Dir(cfg.LockPath)} {
			if err := ensureDir(dir); err != nil {
				return err
			}
		}
		release, err := acquireLock(cfg.LockPath)
		if err != nil {
			return err
		}
		defer release()
	}

	scanner, closeDocker, err := newScanner(cfg, log)
	if err != nil {
		return err
	}
	defer closeDocker()
	sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	// The previous inventory is read while the sources are asked: a scan
	// that cannot read it stops before it saves anything.
	var (
		prev        *inventory.Inventory
		resetReason string
		legacy      *inventory.Legacy
		loadErr     error
		loaded      = make(chan struct{})
	)
	go func() {
		defer close(loaded)
		prev, resetReason, legacy, loadErr = loadPrevious(cfg, log, start)
		if loadErr != nil {
			cancel()
		}
		log.Debug("previous inventory loaded", "ms", time.Since(start).Milliseconds())
	}()
	next, transitions := scanner.ScanLoading(sctx, func() *inventory.Inventory { <-loaded; return prev })
	<-loaded
	if loadErr != nil {
		return loadErr
	}
	log.Debug("scanned", "ms", time.Since(start).Milliseconds())
	var lead *inventory.Event
	if resetReason != "" {
		e := inventory.ResetEvent(next.Scan.ID, resetReason, time.Now().UTC())
		lead = &e
	}
	if legacy != nil {
		if lead, transitions, err = takeOver(cfg, log, legacy, next, transitions); err != nil {
			return err
		}
	}

	if cfg.DryRun {
		data, err := json.MarshalIndent(next, "", "  ")
		if err != nil {
			return fmt.Errorf("encode inventory: %w", err)
		}
		if _, err := stdout.Write(append(inventory.EscapeJSON(data), '\n')); err != nil {
			return fmt.Errorf("write inventory to stdout: %w", err)
		}
		return nil
	}

	unlogged, appendErr, err := commit(cfg, log, prev, next, lead, transitions)
	if err != nil {
		return err
	}
	log.Debug("events appended", "ms", time.Since(start).Milliseconds())
	if cfg.TextfileDir != "" {
		// Metrics are a view of the inventory just saved: failing to write
		// them is worth a warning, not a failed scan.
		if err := writeTextfile(cfg.TextfileDir, next, unlogged); err != nil {
			log.Warn("prometheus textfile not written", "err", err)
		}
	}
	log.Info("scan complete", "scan_id", next.Scan.ID, "containers", len(next.Containers),
		"host_processes", len(next.HostProcesses), "events", len(transitions), "events_unlogged", unlogged,
		"duration_ms", time.Since(start).Milliseconds())
	return appendErr
}

// loadPrevious reads the last inventory. A corrupt one is moved aside (not in
// a dry run) and the scan starts afresh; the returned reason says so. One
// the lab's earlier scanner wrote is returned as legacy, for takeOver.
func loadPrevious(cfg Config, log *slog.Logger, now time.Time) (prev *inventory.Inventory, resetReason string, legacy *inventory.Legacy, err error) {
	prev, err = inventory.Load(cfg.StatePath)
	var corrupt *inventory.CorruptError
	var old *inventory.LegacyFormatError
	switch {
	case err == nil:
		return prev, "", nil, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", nil, nil
	case errors.As(err, &old):
		return nil, "", old.Legacy, nil
	case errors.As(err, &corrupt):
		if cfg.DryRun {
			log.Warn("previous inventory is corrupt; the dry run starts afresh", "err", err)
			return nil, corrupt.Reason, nil, nil
		}
		moved, merr := inventory.MoveAside(cfg.StatePath, "corrupt", now)
		if merr != nil {
			return nil, "", nil, merr
		}
		log.Warn("previous inventory is corrupt; moved aside, starting afresh", "err", err, "moved_to", moved)
		return nil, corrupt.Reason, nil, nil
	}
	return nil, "", nil, fmt.Errorf("load previous inventory: %w", err)
}

// takeOver migrates the earlier scanner's inventory into this first scan:
// the containers and processes it knew are not announced again, those gone
// exit, and one event says so. Its file is kept beside the inventory (a
// hard link, so that a crash before the save leaves it in place to migrate
// again). A scan that did not see everything (Docker or every GPU process
// source down) cannot tell a container gone from one unseen: it saves
// nothing, and the next scan tries again.
func takeOver(cfg Config, log *slog.Logger, legacy *inventory.Legacy, next *inventory.Inventory, ts []inventory.Transition) (*inventory.Event, []inventory.Transition, error) {
	src := next.Sources
	if !src[inventory.SourceDocker].OK || !src[inventory.SourceNVML].OK && !src[inventory.SourceProcfs].OK {
		return nil, nil, fmt.Errorf("the inventory of %s.py (%d containers) is taken over by the first scan that sees Docker and the GPUs; this one did not (docker: %s)",
			inventory.LegacySource, len(legacy.Containers), cmp.Or(src[inventory.SourceDocker].Error, "ok"))
	}
	ts, m := inventory.Migrate(legacy, next, ts)
	kept := ""
	if !cfg.DryRun {
		var err error
		if kept, err = inventory.KeepAside(cfg.StatePath, inventory.LegacySource, next.Scan.Time); err != nil {
			return nil, nil, err
		}
	}
	log.Warn("took over the inventory of "+inventory.LegacySource+".py", "kept_at", kept, "containers", m.Containers,
		"containers_gone", m.Gone, "host_processes", m.HostProcesses, "pending_promoted", m.Promoted, "host_processes_exited", m.Exited)
	e := inventory.MigratedEvent(next.Scan.ID, kept, m, time.Now().UTC())
	return &e, ts, nil
}

// newScanner wires the scan's dependencies from the command line: the
// Docker client, the system's NVML, /proc and the cgroup tree, NSS.
func newScanner(cfg Config, log *slog.Logger) (*scan.Scanner, func(), error) {
	system := ""
	if len(cfg.DockerHosts) > 0 {
		system = cfg.DockerHosts[0]
	}
	api, err := newEngine(system)
	if err != nil {
		return nil, nil, err
	}
	clients := []*detect.Engine{api}
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	others := userEngines(cfg.UserRuntime, log)
	for _, o := range others {
		clients = append(clients, o.API.(*detect.Engine))
	}
	for _, host := range cfg.DockerHosts[min(1, len(cfg.DockerHosts)):] {
		e, err := newEngine(host)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, e)
		others = append(others, scan.OtherEngine{Address: host, Owner: -1, API: e})
	}
	host, _ := os.Hostname()
	procfs := detect.NewProcfs(cfg.ProcRoot)
	s := scan.New(scan.Deps{
		Docker: api, OtherEngines: others, NVML: nvmlLibrary, Procfs: procfs, Stats: detect.NewCgroupStats(procfs, cfg.CgroupRoot),
		Users: attribution.NewUsers(attribution.SubUIDFile), Clock: func() time.Time { return time.Now().UTC() }, Log: log,
		Host: host, Version: cfg.Version,
	})
	return s, closeAll, nil
}

// newEngine is a client of the engine at host: the environment's
// (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)
// when host is "".
func newEngine(host string) (*detect.Engine, error) {
	cfg, err := detect.EngineConfigFromEnv(host)
	if err != nil {
		return nil, err
	}
	return detect.NewEngine(cfg)
}

// maxUserEngineRead bounds what a scan reads from one user's engine: a
// list of 10,000 containers and their inspects fit many times over.
const maxUserEngineRead = 64 << 20

// userEngines connects to every user's rootless engine under dir, each
// through a dialer that checks the engine runs as the socket's owner.
func userEngines(dir string, log *slog.Logger) []scan.OtherEngine {
	if dir == "" {
		return nil
	}
	var out []scan.OtherEngine
	for _, sock := range detect.FindRootlessEngines(dir) {
		e, err := detect.NewEngine(detect.EngineConfig{
			Host: "unix://" + sock.Path,
			Dial: func(ctx context.Context) (net.Conn, error) {
				return detect.DialOwned(ctx, sock.Path, sock.UID, maxUserEngineRead)
			},
		})
		if err != nil {
			log.Warn("cannot set up a client for a user's engine", "source", inventory.EngineSource(sock.Path), "err", err)
			continue
		}
		out = append(out, scan.OtherEngine{Address: sock.Path, Owner: sock.UID, API: e})
	}
	return out
}

// commit makes the scan's events durable with its inventory: they are
// saved in its outbox, with those of earlier scans the log still lacks,
// then appended. A crash or a failing log between the two leaves them
// there, and the next scan appends what the log lacks: the events of a scan
// reach the log if and only if its inventory was saved, each once. err is
// a failed save (nothing changed); appendErr a failed append, after which
// unlogged events wait in the saved inventory.
func commit(cfg Config, log *slog.Logger, prev, next *inventory.Inventory, lead *inventory.Event, transitions []inventory.Transition) (unlogged int, appendErr, err error) {
	baseID, waiting := "", (*inventory.Outbox)(nil)
	if prev != nil {
		baseID, waiting = prev.Scan.ID, prev.Outbox
	}
	carried, err := inventory.Unlogged(cfg.EventsPath, waiting)
	unread := err != nil
	if unread {
		// Nothing can be appended to a log that cannot be read either:
		// all wait, and the next scan looks from the same place.
		log.Warn("cannot tell which of the last scan's events the log holds; they wait", "err", err)
		carried = waiting.Events
	}
	events, err := newEvents(next.Scan.ID, baseID, lead, transitions, time.Now().UTC())
	if err != nil {
		return 0, nil, err
	}
	pending, dropped := inventory.CapOutbox(append(carried, events...))
	if dropped > 0 {
		log.Error("the event log has failed for so long that the oldest waiting events are dropped", "dropped", dropped, "events_file", cfg.EventsPath)
	}
	next.Outbox = nil
	if len(pending) > 0 {
		if unread {
			next.Outbox = &inventory.Outbox{LogInode: waiting.LogInode, LogOffset: waiting.LogOffset, LogMark: waiting.LogMark}
		} else if next.Outbox, err = inventory.LogEnd(cfg.EventsPath); err != nil {
			// The append will fail too; the next scan looks everywhere.
			log.Warn("cannot read the event log", "err", err)
			next.Outbox = &inventory.Outbox{}
		}
		next.Outbox.Events = pending
	}
	if err := inventory.Save(cfg.StatePath, next); err != nil {
		return 0, nil, fmt.Errorf("save inventory: %w", err)
	}
	gid := -1
	if _, err := os.Lstat(cfg.EventsPath); errors.Is(err, fs.ErrNotExist) {
		gid = logGroup() // only a log created now is given the group
	}
	if err := inventory.AppendLines(cfg.EventsPath, gid, pending); err != nil {
		return len(pending), fmt.Errorf("%w (%d events wait in the inventory for the next scan)", err, len(pending)), nil
	}
	return 0, nil, nil
}

// logGroupName is the group a new event log is given where it exists, as
// the lab's permissions manifest keeps the log: its other ds01 tools
// append to it as users of that group.
const logGroupName = "docker"

// logGroup returns the gid of logGroupName, or -1 where there is none.
func logGroup() int {
	g, err := user.LookupGroup(logGroupName)
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// newEvents encodes a scan's events, numbered in order: lead first (the
// event that says the scan started afresh, or took over another's
// inventory; numbered 1), then one per transition.
func newEvents(scanID, baseID string, lead *inventory.Event, ts []inventory.Transition, now time.Time) ([]inventory.PendingEvent, error) {
	var events []inventory.Event
	if lead != nil {
		events = append(events, *lead)
	}
	for _, t := range ts {
		events = append(events, t.NewEvent(scanID, baseID, len(events)+1, now))
	}
	out := make([]inventory.PendingEvent, 0, len(events))
	for _, e := range events {
		p, err := inventory.NewPendingEvent(e)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ensureDir creates dir 0755 when absent and leaves an existing one's owner
// and mode alone: the ds01 directories are shared with other tools.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return os.Chmod(dir, 0o755)
}
