package inventory

import (
	"maps"
	"slices"
	"sort"
	"time"
)

// Event types written to the event log. The names are shared with the rest
// of ds01 and never change.
const (
	EventContainerDiscovered    = "detection.container_discovered"
	EventContainerStatusChanged = "detection.container_status_changed"
	// EventContainerExited: the container left the inventory (it was
	// removed), the lab's name; a container that stops changes status.
	EventContainerExited         = "detection.container_exited"
	EventContainerClassification = "detection.container_classification_changed"
	EventHostProcessDiscovered   = "detection.host_gpu_process_discovered"
	EventHostProcessExited       = "detection.host_gpu_process_exited"
	// EventGPUProcessBrief: a process started and ended on a GPU between
	// two scans, seen only in NVML's accounting records.
	EventGPUProcessBrief   = "detection.gpu_process_brief"
	EventSourceUnavailable = "detection.source_unavailable"
	EventSourceRecovered   = "detection.source_recovered"
	// EventInventoryReset says the previous inventory was unreadable and
	// the scanner started afresh: discoveries that follow may repeat ones
	// logged before.
	EventInventoryReset = "detection.inventory_reset"
	// EventInventoryMigrated says the scanner took over the inventory of
	// the lab's earlier scanner (LegacySource), with counts of what it
	// found: the containers it knew are not discovered again.
	EventInventoryMigrated = "detection.inventory_migrated"
	// EventContainerRemovedLegacy is what earlier versions of ds01-scan
	// wrote for EventContainerExited; readers of old logs take it as that.
	EventContainerRemovedLegacy = "detection.container_removed"
)

// Observation is what one scan saw, filled in by the sources. Reconcile
// trusts a section only when the source behind it answered.
type Observation struct {
	// Sources maps each source attempted to its outcome: OK, Error,
	// Warning and DurationMS as the source answered. LastSuccess is
	// Reconcile's to set.
	Sources map[string]SourceStatus
	// Containers is every container the Docker engine listed; meaningful
	// only when Sources[SourceDocker].OK.
	Containers []Container
	// ProcessesObserved is true when at least one GPU process source
	// answered, so that Processes and the containers' GPUProcesses are the
	// whole truth.
	ProcessesObserved bool
	// Processes are GPU processes outside any known container.
	Processes []HostProcess
	// GPUs are the devices NVML reported; meaningful only when
	// Sources[SourceNVML].OK.
	GPUs []GPUDevice
	// UnreadGPUs are devices whose processes could not be listed on this
	// scan (lost, or a failing call). Absence from them proves nothing, so
	// processes last seen there are kept, stale, instead of exiting.
	UnreadGPUs []string
	// Brief are the GPU processes that started and ended since the last
	// scan, from NVML's accounting records.
	Brief []BriefProcess
}

// Transition is one change between two inventories; each becomes one event.
type Transition struct {
	// Type is one of the Event constants.
	Type string
	// Container is set for container transitions (the new state, or the
	// last known one for a removal).
	Container *Container
	// Process is set for host process transitions.
	Process *HostProcess
	// Source and Error are set for source transitions.
	Source string
	Error  string
	// Field names what changed in a classification change: "type", or
	// "gpu_access" when a container starts using a GPU it never declared.
	Field string
	// From and To are the old and new status, type or GPU access.
	From, To string
	// GPUUUID is, for a host process, the UUID of its first GPU ("" when
	// the GPU list does not name it): the lab's gpu_uuid.
	GPUUUID string
	// Brief is set for a process seen only in NVML's accounting records.
	Brief *BriefProcess
}

// Reconcile combines the previous inventory (nil on a first scan) with an
// observation made at now, and returns the next inventory and the
// transitions between the two. It is pure: prev is not modified.
//
// The rules: containers are keyed by ID and host processes by PID and start
// time; detected_at and attribution survive from the first sighting; a host
// process is pending on its first sighting and becomes a workload (and an
// event) only when seen again; a source that is down leaves its previous
// data in place marked stale and causes no removals.
func Reconcile(prev *Inventory, obs Observation, now time.Time) (*Inventory, []Transition) {
	if prev == nil {
		prev = &Inventory{}
	}
	// Empty sections are [] rather than null, so that readers see lists.
	next := &Inventory{
		SchemaVersion: SchemaVersion, Sources: map[string]SourceStatus{},
		Containers: []Container{}, HostProcesses: []HostProcess{}, PendingProcesses: []HostProcess{},
	}
	var ts []Transition

	ts = append(ts, reconcileSources(prev, obs, now, next)...)

	if obs.Sources[SourceNVML].OK {
		next.GPUs = obs.GPUs
		ts = append(ts, countBrief(next.GPUs, obs.Brief)...)
	} else {
		next.GPUs = prev.GPUs
	}

	// Each engine's containers are judged by its own answer: those of an
	// engine that was asked and failed stand, stale; those of an engine
	// no longer there (a rootless one whose user logged out) are gone.
	gpus := NewGPUIndex(next.GPUs)
	isDown := func(c Container) bool {
		src := c.EngineSource()
		st, asked := obs.Sources[src]
		return (asked || src == SourceDocker) && !st.OK
	}
	// Containers are large: the previous list is split only where an
	// engine is down, and read in place otherwise.
	up, down := prev.Containers, []Container(nil)
	if slices.ContainsFunc(prev.Containers, isDown) {
		up = nil
		for _, c := range prev.Containers {
			if isDown(c) {
				down = append(down, c)
			} else {
				up = append(up, c)
			}
		}
	}
	if len(down) > 0 {
		held := make(map[string]bool, len(down))
		for _, c := range down {
			held[c.ID] = true
		}
		// Another engine cannot take over a container of one that is down.
		obs.Containers = slices.DeleteFunc(slices.Clone(obs.Containers), func(c Container) bool { return held[c.ID] })
	}
	cs, t := reconcileContainers(up, obs, gpus, now)
	ts = append(ts, t...)
	next.Containers = append(cs, markStale(down, func(c *Container) {
		c.Stale = true
		c.judge(obs.ProcessesObserved, gpus)
	})...)
	sortContainers(next.Containers)

	if obs.ProcessesObserved {
		hp, pending, t := reconcileProcesses(prev, obs, now)
		next.HostProcesses = append(next.HostProcesses, hp...)
		next.PendingProcesses = append(next.PendingProcesses, pending...)
		ts = append(ts, t...)
	} else {
		next.HostProcesses = append(next.HostProcesses, markStale(prev.HostProcesses, func(p *HostProcess) { p.Stale = true })...)
		next.PendingProcesses = append(next.PendingProcesses, prev.PendingProcesses...)
	}
	setGPUUUIDs(ts, next.GPUs)
	return next, ts
}

// countBrief counts each brief process on its GPU, and returns an event's
// transition for each. gpus is the observation's, which this scan owns.
func countBrief(gpus []GPUDevice, brief []BriefProcess) []Transition {
	ts := make([]Transition, 0, len(brief))
	for i := range brief {
		b := &brief[i]
		for j := range gpus {
			if gpus[j].ID == b.GPU {
				gpus[j].BriefProcesses++
			}
		}
		ts = append(ts, Transition{Type: EventGPUProcessBrief, Brief: b})
	}
	return ts
}

// setGPUUUIDs gives each host process transition the UUID of the process's
// first GPU, where it has one and gpus names it.
func setGPUUUIDs(ts []Transition, gpus []GPUDevice) {
	uuids := make(map[string]string, len(gpus))
	for _, g := range gpus {
		uuids[g.ID] = g.UUID
	}
	for i := range ts {
		if p := ts[i].Process; p != nil && len(p.GPUs) > 0 && ts[i].GPUUUID == "" {
			ts[i].GPUUUID = uuids[p.GPUs[0]]
		}
	}
}

func reconcileSources(prev *Inventory, obs Observation, now time.Time, next *Inventory) []Transition {
	var ts []Transition
	for name, st := range prev.Sources {
		if _, ok := obs.Sources[name]; !ok {
			next.Sources[name] = st
		}
	}
	for _, name := range slices.Sorted(maps.Keys(obs.Sources)) {
		res := obs.Sources[name]
		old, known := prev.Sources[name]
		if res.OK {
			at := now
			next.Sources[name] = SourceStatus{OK: true, LastSuccess: &at, Warning: res.Warning, DurationMS: res.DurationMS}
			if known && !old.OK {
				ts = append(ts, Transition{Type: EventSourceRecovered, Source: name})
			}
			continue
		}
		st := SourceStatus{Error: res.Error, DurationMS: res.DurationMS}
		if known {
			st.LastSuccess = old.LastSuccess
		}
		next.Sources[name] = st
		if !known || old.OK {
			ts = append(ts, Transition{Type: EventSourceUnavailable, Source: name, Error: res.Error})
		}
	}
	return ts
}

func reconcileContainers(prev []Container, obs Observation, gpus GPUIndex, now time.Time) ([]Container, []Transition) {
	seen := obs.Containers
	unread := setOf(obs.UnreadGPUs)
	old := make(map[string]*Container, len(prev))
	for i := range prev {
		old[prev[i].ID] = &prev[i]
	}
	var ts []Transition
	out := make([]Container, 0, len(seen))
	present := make(map[string]bool, len(seen))
	for _, c := range seen {
		if present[c.ID] {
			continue // listed twice by a confused engine: the first one counts
		}
		present[c.ID] = true
		c.Stale = false
		c.LastSeen = now
		p, ok := old[c.ID]
		if ok && !obs.ProcessesObserved {
			// No GPU source answered: the last known use stands.
			c.GPUProcesses = p.GPUProcesses
		} else if ok && len(unread) > 0 {
			for _, gp := range p.GPUProcesses {
				if unread[gp.GPU] {
					c.GPUProcesses = append(c.GPUProcesses, gp)
				}
			}
		}
		c.judge(obs.ProcessesObserved, gpus)
		if !ok {
			if c.DetectedAt.IsZero() {
				c.DetectedAt = now
			}
			out = append(out, c)
			ts = append(ts, Transition{Type: EventContainerDiscovered, Container: &c})
			continue
		}
		c.DetectedAt = p.DetectedAt
		// Attribution runs once per container: what was decided stays,
		// unless the container could not be inspected back then.
		if p.User != "" && p.InspectError == "" {
			c.User, c.UserSource, c.DetectedLabels = p.User, p.UserSource, p.DetectedLabels
		}
		out = append(out, c)
		if p.Type != c.Type {
			ts = append(ts, Transition{Type: EventContainerClassification, Container: &c, Field: "type", From: p.Type, To: c.Type})
		}
		if undeclaredChanged(p, &c) {
			ts = append(ts, Transition{Type: EventContainerClassification, Container: &c, Field: "gpu_access", From: p.GPUAccess, To: c.GPUAccess})
		}
		if p.Status != c.Status {
			ts = append(ts, Transition{Type: EventContainerStatusChanged, Container: &c, From: p.Status, To: c.Status})
		}
	}
	for i := range prev {
		if !present[prev[i].ID] {
			gone := prev[i]
			ts = append(ts, Transition{Type: EventContainerExited, Container: &gone})
		}
	}
	sortContainers(out)
	return out, ts
}

// undeclaredChanged reports a container that started or stopped using a
// GPU outside what it declared, or moved to other such GPUs. An entry
// written before the ledger listed those GPUs counts by its state alone.
func undeclaredChanged(p, c *Container) bool {
	was, is := p.GPUAccess == AccessUndeclared, c.GPUAccess == AccessUndeclared
	if was != is {
		return true
	}
	return is && p.GPUsUndeclared != nil && !slices.Equal(p.GPUsUndeclared, c.GPUsUndeclared)
}

func reconcileProcesses(prev *Inventory, obs Observation, now time.Time) (hp, pending []HostProcess, ts []Transition) {
	seen := obs.Processes
	known := make(map[ProcessKey]*HostProcess, len(prev.HostProcesses))
	for i := range prev.HostProcesses {
		known[prev.HostProcesses[i].Key()] = &prev.HostProcesses[i]
	}
	waiting := make(map[ProcessKey]*HostProcess, len(prev.PendingProcesses))
	for i := range prev.PendingProcesses {
		waiting[prev.PendingProcesses[i].Key()] = &prev.PendingProcesses[i]
	}
	present := make(map[ProcessKey]bool, len(seen))
	for _, p := range seen {
		k := p.Key()
		if present[k] {
			continue
		}
		present[k] = true
		p.Stale = false
		p.LastSeen = now
		switch {
		case known[k] != nil:
			p.DetectedAt = known[k].DetectedAt
			hp = append(hp, p)
		case waiting[k] != nil:
			p.DetectedAt = waiting[k].DetectedAt
			hp = append(hp, p)
			ts = append(ts, Transition{Type: EventHostProcessDiscovered, Process: &p})
		default:
			p.DetectedAt = now
			pending = append(pending, p)
		}
	}
	unread := setOf(obs.UnreadGPUs)
	for i := range prev.HostProcesses {
		if present[prev.HostProcesses[i].Key()] {
			continue
		}
		gone := prev.HostProcesses[i]
		if onAny(gone.GPUs, unread) {
			gone.Stale = true
			hp = append(hp, gone)
			continue
		}
		ts = append(ts, Transition{Type: EventHostProcessExited, Process: &gone})
	}
	for _, p := range prev.PendingProcesses {
		if !present[p.Key()] && onAny(p.GPUs, unread) {
			pending = append(pending, p)
		}
	}
	sortProcs(hp)
	sortProcs(pending)
	return hp, pending, ts
}

func setOf(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func onAny(gpus []string, set map[string]bool) bool {
	for _, g := range gpus {
		if set[g] {
			return true
		}
	}
	return false
}

// markStale returns a copy of items, each marked by mark: what a source
// that is down last said, kept.
func markStale[T any](items []T, mark func(*T)) []T {
	out := slices.Clone(items)
	for i := range out {
		mark(&out[i])
	}
	return out
}

func sortContainers(cs []Container) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
}

func sortProcs(ps []HostProcess) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].PID != ps[j].PID {
			return ps[i].PID < ps[j].PID
		}
		return ps[i].StartTicks < ps[j].StartTicks
	})
}
