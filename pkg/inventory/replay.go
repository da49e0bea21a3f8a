package inventory

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Replayed is what ds01-scan's events in a log say exists (and those of the
// scanner it replaced): replaying the log from nothing gives the
// inventory's containers (with their status) and host processes. That is the promise of the event log, and Replay with
// Compare is its check.
type Replayed struct {
	// Containers maps a container's 12-character ID (the lab's
	// container_id; older logs give the full one) to its last logged
	// status, "" when no event said it.
	Containers map[string]string
	// HostProcesses are the host GPU processes discovered and not exited;
	// StartTicks is 0 where the event did not say (the earlier scanner).
	HostProcesses map[ProcessKey]bool
	// Repeats counts events whose event_id came before: a consumer drops
	// them, as Replay does.
	Repeats int
	// Unparsable counts lines that are not JSON: a writer killed mid-line.
	Unparsable int
	// Inconsistent lists events that do not follow from the events before
	// them: a discovery of a container already there, a status change
	// from a status the log never gave it, a removal or exit of what was
	// never discovered.
	Inconsistent []string
}

// replayEvent is the part of an event line Replay reads.
type replayEvent struct {
	EventType string `json:"event_type"`
	Source    string `json:"source"`
	Details   struct {
		EventID     string `json:"event_id"`
		ContainerID string `json:"container_id"`
		Status      string `json:"status"`
		From        string `json:"from"`
		To          string `json:"to"`
		OldStatus   string `json:"old_status"`
		NewStatus   string `json:"new_status"`
		PID         int    `json:"pid"`
		StartTicks  uint64 `json:"start_ticks"`
	} `json:"details"`
}

// PredecessorSource is the "source" of the events the lab's earlier
// scanner (detect-workloads.py) wrote, in the same vocabulary: ds01-scan
// takes over its inventory, so a log's history runs through both.
const PredecessorSource = "detect-workloads"

// maxReplayLine is the longest line Replay reads; longer ones (no ds01
// writer makes them) are skipped as unparsable.
const maxReplayLine = 1 << 20

// Replay reads an event log, oldest line first, and applies ds01-scan's
// events to an empty state. Other tools' lines are skipped, as are repeats
// of an event_id; an inventory reset empties the state, since the scan
// after it discovers afresh.
func Replay(r io.Reader) (*Replayed, error) {
	out := &Replayed{Containers: map[string]string{}, HostProcesses: map[ProcessKey]bool{}}
	seen := map[string]bool{}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return out, nil
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("read event log: %w", err)
		}
		var e replayEvent
		if len(line) > maxReplayLine || json.Unmarshal(line, &e) != nil {
			out.Unparsable++
			continue
		}
		if e.Source != EventSource && e.Source != PredecessorSource {
			continue
		}
		if id := e.Details.EventID; id != "" {
			if seen[id] {
				out.Repeats++
				continue
			}
			seen[id] = true
		}
		if problem := out.apply(e); problem != "" {
			out.Inconsistent = append(out.Inconsistent, fmt.Sprintf("line %d (%s): %s", n, e.Details.EventID, problem))
		}
	}
}

// readLine returns the next line without its newline, however long; a
// line past maxReplayLine is returned cut (and then fails to parse).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line) <= maxReplayLine {
			line = append(line, chunk...)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if n := len(line); n > 0 && line[n-1] == '\n' {
				line = line[:n-1]
			}
			return line, err
		}
	}
}

// apply changes the state by one event and says what, if anything, about
// it does not follow from the state before.
func (r *Replayed) apply(e replayEvent) string {
	d := e.Details
	id := ShortID(d.ContainerID)
	key := ProcessKey{PID: d.PID, StartTicks: d.StartTicks}
	switch e.EventType {
	case EventInventoryReset:
		clear(r.Containers)
		clear(r.HostProcesses)
	case EventContainerDiscovered:
		_, known := r.Containers[id]
		r.Containers[id] = d.Status
		if known {
			return "container " + id + " discovered again"
		}
	case EventContainerStatusChanged:
		from, to := cmp.Or(d.From, d.OldStatus), cmp.Or(d.To, d.NewStatus)
		was, known := r.Containers[id]
		r.Containers[id] = to
		switch {
		case !known:
			return "status change of container " + id + ", never discovered"
		case was != "" && was != from:
			return fmt.Sprintf("container %s changed from %q, but its last logged status is %q", id, from, was)
		}
	case EventContainerExited, EventContainerRemovedLegacy:
		_, known := r.Containers[id]
		delete(r.Containers, id)
		if !known {
			return "container " + id + " left, never discovered"
		}
	case EventHostProcessDiscovered:
		known := r.HostProcesses[key] || r.HostProcesses[ProcessKey{PID: d.PID}]
		r.HostProcesses[key] = true
		if known {
			return fmt.Sprintf("host process %d discovered again", d.PID)
		}
	case EventHostProcessExited:
		// The earlier scanner named a process by its PID alone.
		if !r.HostProcesses[key] {
			key = ProcessKey{PID: d.PID}
		}
		known := r.HostProcesses[key]
		delete(r.HostProcesses, key)
		if !known {
			return fmt.Sprintf("host process %d exited, never discovered", d.PID)
		}
	}
	return ""
}

// ReplayDiff is where a replayed log and an inventory disagree.
type ReplayDiff struct {
	// Phantom are what the log says exists and the inventory does not hold.
	Phantom []string
	// Lost are what the inventory holds and the log never said exists.
	Lost []string
	// WrongStatus are containers whose last logged status is not theirs.
	WrongStatus []string
}

// Agree reports whether the log and the inventory tell one story.
func (d ReplayDiff) Agree() bool {
	return len(d.Phantom) == 0 && len(d.Lost) == 0 && len(d.WrongStatus) == 0
}

// Compare sets the replayed state against inv's containers (ID and status)
// and host processes.
func (r *Replayed) Compare(inv *Inventory) ReplayDiff {
	var d ReplayDiff
	held := make(map[string]bool, len(inv.Containers))
	for _, c := range inv.Containers {
		id := ShortID(c.ID)
		held[id] = true
		status, ok := r.Containers[id]
		switch {
		case !ok:
			d.Lost = append(d.Lost, "container "+id)
		case status != "" && status != c.Status:
			d.WrongStatus = append(d.WrongStatus, fmt.Sprintf("container %s: logged %q, is %q", id, status, c.Status))
		}
	}
	for id := range r.Containers {
		if !held[id] {
			d.Phantom = append(d.Phantom, "container "+id)
		}
	}
	// An event without start_ticks (the earlier scanner's) names a PID.
	procs := make(map[ProcessKey]bool, 2*len(inv.HostProcesses))
	for _, p := range inv.HostProcesses {
		procs[p.Key()], procs[ProcessKey{PID: p.PID}] = true, true
		if !r.HostProcesses[p.Key()] && !r.HostProcesses[ProcessKey{PID: p.PID}] {
			d.Lost = append(d.Lost, fmt.Sprintf("host process %d", p.PID))
		}
	}
	for k := range r.HostProcesses {
		if !procs[k] {
			d.Phantom = append(d.Phantom, fmt.Sprintf("host process %d", k.PID))
		}
	}
	sort.Strings(d.Phantom)
	sort.Strings(d.Lost)
	sort.Strings(d.WrongStatus)
	return d
}
