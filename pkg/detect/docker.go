package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Labels ds01 reads and writes.
const (
	LabelDetected     = "ds01.detected"
	LabelDetectedUser = "ds01.detected.user"
)

// MaxLabelValue caps a kept label value. Labels are free text of any size;
// a longer value is dropped, not cut, so that no part of it is stored.
const MaxLabelValue = 1024

// MaxCommand caps the kept command line of a container.
const MaxCommand = 4096

// inspectWorkers bounds concurrent inspect calls on a cold scan.
const inspectWorkers = 8

// DockerAPI is the part of the Docker Engine API the scanner uses; Engine
// satisfies it.
type DockerAPI interface {
	ListContainers(ctx context.Context) ([]ListedContainer, error)
	// ContainerInspect's error wraps ErrNoSuchContainer for a container
	// the engine does not have.
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	DefaultRuntime(ctx context.Context) (string, error)
}

// ContainerFacts are the raw facts of a freshly inspected container that
// attribution reads. They live for one scan and are never stored.
type ContainerFacts struct {
	// Labels are all the container's labels, uncapped.
	Labels map[string]string
	// BindSources are the host paths bind-mounted into the container.
	BindSources []string
	// ConfigUser is Config.User.
	ConfigUser string
	// PID is the host PID of the main process, 0 when not running.
	PID int
}

// SeenContainer is one container as the Docker source saw it.
type SeenContainer struct {
	Container inventory.Container
	// Facts is set when the container was inspected on this scan and has
	// not been attributed before: attribution must run on it.
	Facts *ContainerFacts
}

// Docker observes the Docker engine: one list call per scan, and an inspect
// only for containers that are new, changed state, or whose recorded main
// process is gone (a restart between two scans).
type Docker struct {
	api         DockerAPI
	stats       *CgroupStats
	callTimeout time.Duration
	log         *slog.Logger
	now         func() time.Time
}

// NewDocker returns a Docker source. callTimeout bounds each API call; stats
// reads CPU and memory of running containers (nil: none are read).
func NewDocker(api DockerAPI, stats *CgroupStats, callTimeout time.Duration, log *slog.Logger, now func() time.Time) *Docker {
	return &Docker{api: api, stats: stats, callTimeout: callTimeout, log: log.With("source", inventory.SourceDocker), now: now}
}

// Observe lists every container, running or not. prev returns the
// previous inventory's containers by ID, and is called once the list has
// been asked for: the engine answers while it is read. An error means the
// engine could not be listed; failures to inspect single containers are
// recorded on them.
func (d *Docker) Observe(ctx context.Context, last func() map[string]*inventory.Container) ([]SeenContainer, error) {
	type answer struct {
		list []ListedContainer
		err  error
	}
	lctx, cancel := context.WithTimeout(ctx, d.callTimeout)
	defer cancel()
	listed := make(chan answer, 1)
	go func() {
		list, err := d.api.ListContainers(lctx)
		listed <- answer{list, err}
	}()
	prev := last()
	// While the engine lists, the cgroup statistics of what ran at the last
	// scan are read: the list is the longest wait of a steady scan, and
	// those containers are nearly all still running.
	stats := d.prefetchStats(prev)
	a := <-listed
	cancel()
	pre := stats()
	list, err := a.list, a.err
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]SeenContainer, 0, len(list))
	var toInspect []int
	for i := range list {
		s := &list[i]
		if !inventory.ValidContainerID(s.ID) {
			d.log.Warn("engine listed a container with a malformed id; skipped", "id", s.ID)
			continue
		}
		obs := SeenContainer{Container: fromList(s)}
		p := prev[s.ID]
		if p != nil && p.Status == obs.Container.Status && p.InspectError == "" && !nodesReadAsIndices(p.GPU) {
			obs.Container = carryForward(*p, obs.Container)
			if d.readStats(&obs.Container, p, pre) {
				out = append(out, obs)
				continue
			}
		}
		out = append(out, obs)
		toInspect = append(toInspect, len(out)-1)
	}
	if len(toInspect) == 0 {
		return out, nil
	}
	defaultRuntime := d.defaultRuntime(ctx)
	gone := make([]bool, len(out))
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(inspectWorkers, len(toInspect)) {
		wg.Go(func() {
			for i := range work {
				gone[i] = d.inspect(ctx, &out[i], prev[out[i].Container.ID], defaultRuntime, pre)
			}
		})
	}
	for _, i := range toInspect {
		work <- i
	}
	close(work)
	wg.Wait()
	kept := out[:0]
	for i, o := range out {
		if !gone[i] {
			kept = append(kept, o)
		}
	}
	return kept, nil
}

// inspect fills obs from an inspect call and reports whether the container
// vanished between the list and the inspect.
func (d *Docker) inspect(ctx context.Context, obs *SeenContainer, prev *inventory.Container, defaultRuntime string, pre map[string]sampledStats) bool {
	id := obs.Container.ID
	ictx, cancel := context.WithTimeout(ctx, d.callTimeout)
	res, err := d.api.ContainerInspect(ictx, id)
	cancel()
	if err != nil {
		if errors.Is(err, ErrNoSuchContainer) {
			return true
		}
		d.log.Warn("inspect failed; container recorded as unknown", "container", inventory.ShortID(id), "err", err)
		obs.Container.Type = inventory.TypeUnknown
		obs.Container.InspectError = oneLine(err.Error())
		if prev != nil {
			obs.Container.User, obs.Container.UserSource = prev.User, prev.UserSource
		}
		return false
	}
	c := &res
	if c.ID != id {
		obs.Container.Type = inventory.TypeUnknown
		obs.Container.InspectError = "engine answered the inspect with another container"
		return false
	}
	applyInspect(&obs.Container, c, defaultRuntime)
	d.readStats(&obs.Container, prev, pre)
	facts := factsOf(c)
	if prev == nil || prev.User == "" || prev.InspectError != "" {
		obs.Facts = &facts
	} else {
		obs.Container.User, obs.Container.UserSource = prev.User, prev.UserSource
		obs.Container.DetectedLabels = prev.DetectedLabels
	}
	return false
}

// defaultRuntime asks the engine for its default runtime: when it is nvidia,
// NVIDIA_VISIBLE_DEVICES alone grants GPUs. Asked once per scan, only when
// something is inspected.
func (d *Docker) defaultRuntime(ctx context.Context) string {
	ictx, cancel := context.WithTimeout(ctx, d.callTimeout)
	defer cancel()
	rt, err := d.api.DefaultRuntime(ictx)
	if err != nil {
		d.log.Warn("engine info failed; assuming the default runtime is not nvidia", "err", err)
		return ""
	}
	return rt
}

// readStats fills CPU and memory of a running container from its cgroup and
// reports false when the recorded main process no longer belongs to the
// container, so the container must be inspected again.
func (d *Docker) readStats(c *inventory.Container, prev *inventory.Container, pre map[string]sampledStats) bool {
	if c.Status != "running" || d.stats == nil {
		return true
	}
	if c.PID <= 0 {
		return false
	}
	st := d.readContainerStats(c.PID, c.ID, pre)
	if st.err != nil {
		if errors.Is(st.err, ErrNotInContainer) {
			return false
		}
		d.log.Debug("container stats unavailable", "container", inventory.ShortID(c.ID), "err", st.err)
		return true
	}
	now := st.at
	mem := st.MemoryBytes
	c.MemoryBytes = &mem
	if prev != nil && prev.CPUSampledAt != nil && prev.PID == c.PID {
		c.CPUPercent = CPUPercent(prev.CPUUsageNS, *prev.CPUSampledAt, st.CPUUsageNS, now)
	}
	c.CPUUsageNS, c.CPUSampledAt = st.CPUUsageNS, &now
	return true
}

// sampledStats are a container's statistics with when they were read.
type sampledStats struct {
	ContainerStats
	pid int
	at  time.Time
	err error
}

// prefetchStats starts reading the statistics of the containers that were
// running at the last scan, and returns a function that waits for them.
func (d *Docker) prefetchStats(prev map[string]*inventory.Container) func() map[string]sampledStats {
	var ids []string
	for id, c := range prev {
		if c.Status == "running" && c.PID > 0 && c.InspectError == "" {
			ids = append(ids, id)
		}
	}
	if d.stats == nil || len(ids) == 0 {
		return func() map[string]sampledStats { return nil }
	}
	done := make(chan map[string]sampledStats, 1)
	go func() {
		m := make(map[string]sampledStats, len(ids))
		for _, id := range ids {
			m[id] = d.sample(prev[id].PID, id)
		}
		done <- m
	}()
	return func() map[string]sampledStats { return <-done }
}

// readContainerStats returns the statistics of container id with main
// process pid: the ones read during the list (pre) when they are of that
// same process, else read now.
func (d *Docker) readContainerStats(pid int, id string, pre map[string]sampledStats) sampledStats {
	if st, ok := pre[id]; ok && st.pid == pid {
		return st
	}
	return d.sample(pid, id)
}

// sample reads the statistics of container id with main process pid, now.
func (d *Docker) sample(pid int, id string) sampledStats {
	st, err := d.stats.Read(pid, id)
	return sampledStats{ContainerStats: st, pid: pid, at: d.now(), err: err}
}

// CPUPercent is the CPU use between two samples of a cumulative counter,
// where 100 is one core. It is nil when the samples cannot be compared.
func CPUPercent(prevNS uint64, prevAt time.Time, nowNS uint64, nowAt time.Time) *float64 {
	wall := nowAt.Sub(prevAt)
	if wall <= 0 || nowNS < prevNS {
		return nil
	}
	pct := float64(nowNS-prevNS) / float64(wall.Nanoseconds()) * 100
	return &pct
}

// fromList takes what the list call gives.
func fromList(s *ListedContainer) inventory.Container {
	c := inventory.Container{
		ID:      s.ID,
		Image:   s.Image,
		Command: inventory.Truncate(s.Command, MaxCommand),
		Status:  s.State,
		Labels:  keptLabels(s.Labels),
	}
	if len(s.Names) > 0 {
		c.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	if s.Created > 0 {
		c.CreatedAt = time.Unix(s.Created, 0).UTC()
	}
	c.Type = Classify(s.Labels, c.Name)
	c.Launcher = engineLauncher(s.Labels)
	return c
}

// labelPodUID is the label the kubelet (through cri-dockerd) puts on the
// containers of a pod.
const labelPodUID = "io.kubernetes.pod.uid"

// engineLauncher says what runs a container a Docker engine lists: the
// engine, or Kubernetes for a pod's container.
func engineLauncher(labels map[string]string) *inventory.Launcher {
	if uid := labels[labelPodUID]; validPodUID(uid) {
		return &inventory.Launcher{Name: inventory.LauncherKubernetes, Pod: uid}
	}
	return &inventory.Launcher{Name: inventory.LauncherDocker}
}

// carryForward keeps what an earlier inspect learnt and takes from the list
// what may have changed (the name, by rename).
func carryForward(prev, listed inventory.Container) inventory.Container {
	prev.Name = listed.Name
	prev.Status = listed.Status
	prev.Launcher = listed.Launcher
	prev.CPUPercent, prev.MemoryBytes = nil, nil
	// GPU use is observed afresh on every scan.
	prev.GPUProcesses = nil
	return prev
}

// applyInspect fills c from an inspect response.
func applyInspect(c *inventory.Container, r *container.InspectResponse, defaultRuntime string) {
	if r.Config != nil {
		c.Labels = keptLabels(r.Config.Labels)
		c.Type = Classify(r.Config.Labels, r.Name)
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Created); err == nil {
		c.CreatedAt = t.UTC()
	}
	c.GPU = DeclaredGPU(r, defaultRuntime)
	c.PID, c.ExitCode, c.StartedAt = 0, nil, nil
	if st := r.State; st != nil {
		c.Status = string(st.Status)
		if st.Running {
			c.PID = st.Pid
		}
		if st.Status == container.StateExited || st.Status == container.StateDead {
			code := st.ExitCode
			c.ExitCode = &code
		}
		if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && t.Year() > 1 {
			t = t.UTC()
			c.StartedAt = &t
		}
	}
	c.InspectError = ""
}

func factsOf(r *container.InspectResponse) ContainerFacts {
	var f ContainerFacts
	if r.Config != nil {
		f.Labels = r.Config.Labels
		f.ConfigUser = r.Config.User
	}
	if r.State != nil && r.State.Running {
		f.PID = r.State.Pid
	}
	for _, m := range r.Mounts {
		if m.Type == "bind" && m.Source != "" {
			f.BindSources = append(f.BindSources, m.Source)
		}
	}
	return f
}

// maxKeptLabelBytes bounds the labels kept per container, keys and values
// together: a container can carry thousands of labels, and the inventory must
// stay loadable on a server with thousands of containers.
const maxKeptLabelBytes = 4096

// keptLabelKeys are the labels kept, in priority order: the ones ds01 reads.
// Other labels (other ds01.* ones included) are free text that may hold
// anything, secrets too, and are not stored.
var keptLabelKeys = []string{
	"ds01.managed", "ds01.user", LabelDetected, LabelDetectedUser,
	"ds01.gpu.uuid", "ds01.gpu.uuids", "ds01.gpu.slots", "ds01.gpu.allocated",
	"aime.mlc.USER",
	"com.docker.compose.project", "com.docker.compose.service", "com.docker.compose.project.working_dir",
	"devcontainer.local_folder", "devcontainer.config_file",
}

// keptLabels returns the labels classification and attribution read, each
// value under MaxLabelValue and all within maxKeptLabelBytes.
func keptLabels(all map[string]string) map[string]string {
	var out map[string]string
	budget := maxKeptLabelBytes
	for _, k := range keptLabelKeys {
		v, ok := all[k]
		if !ok || len(v) > MaxLabelValue || len(k)+len(v) > budget {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
		budget -= len(k) + len(v)
	}
	return out
}

func oneLine(s string) string {
	return inventory.Truncate(strings.Join(strings.Fields(s), " "), 512)
}
