// Package scan is the ds01 scan pipeline as a library: it asks every source
// (the Docker engine, NVML, the /proc device scan) at once, each within a
// budget of its own, attributes what is new, places every GPU process on its
// container or as a host process, and reconciles the result with the last
// inventory. Package main of ds01-scan only wires it: flags, lock, files.
//
// Imports run one way: scan → attribution → detect → inventory.
package scan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/ds01-project/ds01/pkg/attribution"
	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// Budgets bound each source and each Docker API call. A source that
// overruns its budget is reported down with that reason; the others are not
// held up by it, since all run at once.
type Budgets struct {
	Docker time.Duration
	// DockerCall bounds one API call, so that a hung engine costs a few
	// seconds of the Docker budget, not all of it.
	DockerCall time.Duration
	NVML       time.Duration
	Procfs     time.Duration
	// UserEngine bounds each user's own engine, list and inspects: a
	// user's engine may be slow or hostile, and costs the scan no more.
	UserEngine time.Duration
}

// DefaultBudgets fit a scan in the 20 s the timer's default --timeout gives
// it, with room left to save.
var DefaultBudgets = Budgets{Docker: 15 * time.Second, DockerCall: 5 * time.Second, NVML: 10 * time.Second, Procfs: 10 * time.Second, UserEngine: 3 * time.Second}

// OtherEngine is a Docker engine besides the system's: a user's own
// (rootless) one, or one more the admin named.
type OtherEngine struct {
	// Address is where it listens: /run/user/<uid>/docker.sock for a
	// user's, the address given for the admin's.
	Address string
	// Owner is the uid a user's engine runs as, whose its containers are;
	// -1 for an engine the admin named, whose containers are attributed
	// as the system engine's are.
	Owner int
	API   detect.DockerAPI
}

// Deps are what a scan reads through. Every field but Ptrace is required.
type Deps struct {
	// Docker is the system engine's API (the moby client satisfies it).
	Docker detect.DockerAPI
	// OtherEngines are the users' own engines and any more the admin
	// named; optional.
	OtherEngines []OtherEngine
	// NVML opens the NVIDIA management library (nvml.New(), or a go-nvml
	// mock server). It is called within the NVML source's budget on every
	// scan; an error makes that source unavailable.
	NVML func() (nvml.Interface, error)
	// Procfs reads processes; Stats reads containers' cgroup statistics.
	Procfs *detect.Procfs
	Stats  *detect.CgroupStats
	// Users resolves uids and names.
	Users *attribution.Users
	// Clock says what time it is (UTC).
	Clock func() time.Time
	Log   *slog.Logger
	// Host and Version name the machine and the scanner in the inventory.
	Host, Version string
	// Budgets bound the sources; zero fields take DefaultBudgets'.
	Budgets Budgets
	// Ptrace says whether this process may read other users' open files
	// (CAP_SYS_PTRACE); nil asks the kernel (detect.HasPtraceCapability).
	Ptrace func() (bool, error)
}

// Scanner runs scans. Build it with New.
type Scanner struct {
	nvml    func() (nvml.Interface, error)
	docker  *detect.Docker
	engines []otherEngine
	procfs  *detect.Procfs
	attr    *attribution.Attributor
	clock   func() time.Time
	log     *slog.Logger
	host    string
	version string
	budgets Budgets
	ptrace  func() (bool, error)
}

// New returns a Scanner reading through d.
func New(d Deps) *Scanner {
	b := d.Budgets
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&b.Docker, DefaultBudgets.Docker}, {&b.DockerCall, DefaultBudgets.DockerCall},
		{&b.NVML, DefaultBudgets.NVML}, {&b.Procfs, DefaultBudgets.Procfs},
		{&b.UserEngine, DefaultBudgets.UserEngine},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	ptrace := d.Ptrace
	if ptrace == nil {
		ptrace = detect.HasPtraceCapability
	}
	engines := make([]otherEngine, len(d.OtherEngines))
	for i, e := range d.OtherEngines {
		if e.Owner < 0 {
			engines[i] = otherEngine{OtherEngine: e, budget: b.Docker, docker: detect.NewDocker(e.API, d.Stats, b.DockerCall, d.Log, d.Clock)}
			continue
		}
		// No cgroup statistics: a rootless engine's containers often have
		// no cgroup of their own, and their processes' would be the host's.
		engines[i] = otherEngine{OtherEngine: e, budget: b.UserEngine, docker: detect.NewDocker(e.API, nil, b.UserEngine, d.Log, d.Clock)}
	}
	return &Scanner{
		nvml:    d.NVML,
		engines: engines,
		docker:  detect.NewDocker(d.Docker, d.Stats, b.DockerCall, d.Log, d.Clock),
		procfs:  d.Procfs,
		attr:    attribution.New(d.Users, d.Procfs, d.Log),
		clock:   d.Clock,
		log:     d.Log,
		host:    d.Host,
		version: d.Version,
		budgets: b,
		ptrace:  ptrace,
	}
}

// Scan observes the machine and reconciles what it saw with prev (nil on a
// first scan): the next inventory, with its scan information filled in, and
// the transitions between the two, one event each.
func (s *Scanner) Scan(ctx context.Context, prev *inventory.Inventory) (*inventory.Inventory, []inventory.Transition) {
	return s.ScanLoading(ctx, func() *inventory.Inventory { return prev })
}

// ScanLoading is Scan while the previous inventory is still being read:
// prev waits for it (nil on a first scan). The sources start at once and
// wait for prev only where they need it: the engine's list, NVML's start
// and the device scan need nothing of it, so reading it costs the scan no
// time of its own. prev is called from several goroutines and must return
// the same inventory every time.
func (s *Scanner) ScanLoading(ctx context.Context, prev func() *inventory.Inventory) (*inventory.Inventory, []inventory.Transition) {
	began := s.clock()
	obs := s.observe(ctx, prev)
	next, transitions := inventory.Reconcile(prev(), obs, s.clock())
	next.Scan = inventory.ScanInfo{
		ID: newScanID(began), Time: began, Host: s.host, Version: s.version,
		DurationMS: s.clock().Sub(began).Milliseconds(),
	}
	return next, transitions
}

// Observe asks every source at once and puts together what they saw. A
// source that fails or overruns its budget is recorded in the observation,
// never fatal.
func (s *Scanner) Observe(ctx context.Context, prev *inventory.Inventory) inventory.Observation {
	return s.observe(ctx, func() *inventory.Inventory { return prev })
}

func (s *Scanner) observe(ctx context.Context, prev func() *inventory.Inventory) inventory.Observation {
	now := s.clock()
	containers := start(ctx, s, source{inventory.SourceDocker, s.budgets.Docker, slog.LevelWarn},
		func(ctx context.Context) ([]inventory.Container, string, error) {
			cs, err := s.containers(ctx, s.docker, nil, prev, now)
			return cs, "", err
		})
	others := make([]func() outcome[[]inventory.Container], len(s.engines))
	for i := range s.engines {
		e := &s.engines[i]
		others[i] = start(ctx, s, source{inventory.EngineSource(e.Address), e.budget, slog.LevelWarn},
			func(ctx context.Context) ([]inventory.Container, string, error) {
				cs, err := s.containers(ctx, e.docker, e, prev, now)
				return cs, "", err
			})
	}
	gpus := start(ctx, s, source{inventory.SourceNVML, s.budgets.NVML, slog.LevelInfo},
		func(context.Context) (detect.NVMLReading, string, error) {
			lib, err := s.nvml()
			if err != nil {
				return detect.NVMLReading{}, "", err
			}
			r, err := detect.NewNVML(lib, s.log).Observe(LastGPUs(prev()))
			return r, joinWarnings(r.Warnings...), err
		})
	holders := start(ctx, s, source{inventory.SourceProcfs, s.budgets.Procfs, slog.LevelWarn}, s.deviceHolders)

	docker, nv, fds := containers(), gpus(), holders()
	if nv.status.OK {
		s.markMIGCaps(nv.value.GPUs)
	}
	listed := s.verifyNVML(&nv, fds.value)
	last := prev()
	obs := inventory.Observation{
		Sources: map[string]inventory.SourceStatus{
			inventory.SourceDocker: docker.status, inventory.SourceNVML: nv.status, inventory.SourceProcfs: fds.status,
		},
		Containers:        docker.value,
		GPUs:              nv.value.GPUs,
		UnreadGPUs:        UnreadGPUs(nv.status.OK, nv.value.GPUs, last),
		Brief:             BriefProcesses(nv.value.Accounting, last),
		ProcessesObserved: nv.status.OK || fds.status.OK,
	}
	// The system engine's containers come first: an ID listed twice is
	// the first one's.
	for i, wait := range others {
		o := wait()
		obs.Sources[inventory.EngineSource(s.engines[i].Address)] = o.status
		obs.Containers = append(obs.Containers, o.value...)
	}
	if !obs.ProcessesObserved {
		return obs
	}
	index := inventory.NewGPUIndex(KnownGPUs(nv.status.OK, nv.value.GPUs, last))
	procs := s.gpuProcesses(detect.MergeGPUUse(nv.value.Samples, fds.value, index), listed)
	s.placeByNamespace(procs, obs.Containers)
	s.tellLaunchers(procs)
	placed := Place(obs.Containers, docker.status.OK, procs, s.attr.Process)
	obs.Containers, obs.Processes = placed.Containers, placed.Processes
	return obs
}

// otherEngine is an engine besides the system's as the scan reads it.
type otherEngine struct {
	OtherEngine
	budget time.Duration
	docker *detect.Docker
}

// containers lists one engine's containers (the system's when e is nil)
// and attributes the ones inspected for the first time: a user engine's
// are its owner's.
func (s *Scanner) containers(ctx context.Context, d *detect.Docker, e *otherEngine, prev func() *inventory.Inventory, now time.Time) ([]inventory.Container, error) {
	socket := ""
	if e != nil {
		socket = e.Address
	}
	name := inventory.EngineSource(socket)
	seen, err := d.Observe(ctx, func() map[string]*inventory.Container {
		last := prev()
		if last == nil {
			return nil
		}
		byID := make(map[string]*inventory.Container, len(last.Containers))
		for i := range last.Containers {
			if c := &last.Containers[i]; c.EngineSource() == name {
				byID[c.ID] = c
			}
		}
		return byID
	})
	if err != nil {
		return nil, err
	}
	out := make([]inventory.Container, len(seen))
	for i, o := range seen {
		c := o.Container
		if e != nil {
			l := *c.Launcher
			l.Engine = e.Address
			c.Launcher = &l
		}
		switch {
		case o.Facts != nil && e != nil && e.Owner >= 0:
			r := s.attr.EngineOwner(e.Owner)
			c.User, c.UserSource = r.User, r.Source
			c.DetectedLabels = attribution.DetectedLabels(o.Facts.Labels, &c, now)
		case o.Facts != nil:
			r := s.attr.Container(*o.Facts)
			c.User, c.UserSource = r.User, r.Source
			c.DetectedLabels = attribution.DetectedLabels(o.Facts.Labels, &c, now)
		case c.User == "":
			c.User, c.UserSource = attribution.Unknown, attribution.SourceNone
		}
		out[i] = c
	}
	return out, nil
}

// placeByNamespace puts a GPU process that no cgroup places in a container
// of a user's engine when it shares that container's PID namespace: a
// rootless engine on a cgroup-v1 host runs its containers without cgroups
// of their own, and the namespace of the container's init is then the
// only tie. The host's own namespace ties nothing.
func (s *Scanner) placeByNamespace(procs []GPUProcess, containers []inventory.Container) {
	var byNS map[uint64]string
	for i := range procs {
		p := &procs[i]
		if p.Info.ContainerID != "" {
			continue
		}
		if byNS == nil {
			if byNS = s.namespaces(containers); len(byNS) == 0 {
				return
			}
		}
		ns, err := s.procfs.PIDNamespace(p.Info.PID)
		if err != nil {
			continue
		}
		if id, ok := byNS[ns]; ok {
			p.Info.ContainerID, p.Info.Runtime = id, detect.RuntimeDocker
		}
	}
}

// namespaces maps the PID namespace of each running container of a user's
// engine to the container, leaving out the host's.
func (s *Scanner) namespaces(containers []inventory.Container) map[uint64]string {
	host, err := s.procfs.PIDNamespace(os.Getpid())
	if err != nil {
		return nil
	}
	m := map[uint64]string{}
	for _, c := range containers {
		if c.Launcher == nil || c.Launcher.Engine == "" || c.Status != "running" || c.PID <= 0 {
			continue
		}
		if ns, err := s.procfs.PIDNamespace(c.PID); err == nil && ns != host {
			m[ns] = c.ID
		}
	}
	return m
}

// deviceHolders is the /proc device scan as a source. Descriptors it could
// not read for lack of privilege are a warning, not a failure.
func (s *Scanner) deviceHolders(ctx context.Context) (map[int][]string, string, error) {
	holders, err := s.procfs.DeviceHolders(ctx)
	if err == nil || holders == nil || !errors.Is(err, fs.ErrPermission) {
		return holders, "", err
	}
	ptrace, cerr := s.ptrace()
	if cerr != nil {
		s.log.Debug("cannot tell whether the scan holds CAP_SYS_PTRACE", "source", inventory.SourceProcfs, "err", cerr)
		ptrace = true
	}
	warning := ScanWarning(err, ptrace)
	if warning == "" {
		s.log.Debug("/proc device scan skipped unreadable processes", "source", inventory.SourceProcfs, "err", err)
	} else {
		s.log.Warn("/proc device scan is partly blind", "source", inventory.SourceProcfs, "err", err)
	}
	return holders, warning, nil
}

// gpuProcesses reads from /proc each process a GPU source named, but those
// listed already read when NVML's list was checked. One that is gone since
// has nothing to place. It reads them all, whatever is left
// of the scan's budget: a GPU source that answered vouches for the whole
// set, so a process left unread would pass for one that exited.
func (s *Scanner) gpuProcesses(uses []*detect.GPUUse, listed map[int]ListedProcess) []GPUProcess {
	out := make([]GPUProcess, 0, len(uses))
	for _, use := range uses {
		if p, ok := listed[use.PID]; ok && (p.Gone || p.Info != nil) {
			// Read when NVML's list was checked.
			if p.Info != nil {
				out = append(out, GPUProcess{Use: use, Info: *p.Info})
			}
			continue
		}
		info, err := s.procfs.Process(use.PID)
		if err != nil {
			if !errors.Is(err, detect.ErrVanished) {
				s.log.Debug("cannot read GPU process", "source", inventory.SourceProcfs, "pid", use.PID, "err", err)
			}
			continue
		}
		out = append(out, GPUProcess{Use: use, Info: info})
	}
	return out
}

// tellLaunchers finds what started each GPU process outside a container,
// from its cgroups and the processes above it. Only an Apptainer job's
// environment is read, and of it only the image path.
func (s *Scanner) tellLaunchers(procs []GPUProcess) {
	for i := range procs {
		p := &procs[i]
		if p.Info.ContainerID != "" {
			continue
		}
		self := detect.Ancestor{PID: p.Info.PID, UID: p.Info.UID, Comm: p.Info.Comm, Cmdline: p.Info.Cmdline}
		p.Launcher = detect.ProcessLauncher(p.Info.Cgroup, s.procfs.Ancestors(p.Info.PPID), self, "")
		if p.Launcher != nil && p.Launcher.Name == inventory.LauncherApptainer {
			image, err := s.procfs.ApptainerImage(p.Info.PID)
			if err != nil {
				s.log.Debug("cannot read an Apptainer job's image", "source", inventory.SourceProcfs, "pid", p.Info.PID, "err", err)
			}
			p.Launcher.Image = image
		}
	}
}

// newScanID names a scan by its start time and four random bytes.
func newScanID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// markMIGCaps records on each MIG instance the capability devices that name
// it, so that a container given /dev/nvidia-caps/nvidia-capN declares it.
// Without the driver's table the nodes stay unresolved.
func (s *Scanner) markMIGCaps(gpus []inventory.GPUDevice) {
	caps, err := s.procfs.MIGCaps()
	if err != nil {
		s.log.Warn("cannot read the MIG capability devices", "source", inventory.SourceNVML, "err", err)
		return
	}
	detect.SetMIGCapMinors(gpus, caps)
}
