package inventory

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Replayed is what ds01-scan's events in a log say exists: replaying the log
// from nothing gives the inventory's containers (with their status) and
// host processes. That is the promise of the event log, and Replay with
// Compare is its check.
type Replayed struct {
	// Containers maps a container ID to its last logged status.
	Containers map[string]string
	// HostProcesses are the host GPU processes discovered and not exited.
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
		PID         int    `json:"pid"`
		StartTicks  uint64 `json:"start_ticks"`
	} `json:"details"`
}

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
		if e.Source != EventSource {
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
	key := ProcessKey{PID: d.PID, StartTicks: d.StartTicks}
	switch e.EventType {
	case EventInventoryReset:
		clear(r.Containers)
		clear(r.HostProcesses)
	case EventContainerDiscovered:
		_, known := r.Containers[d.ContainerID]
		r.Containers[d.ContainerID] = d.Status
		if known {
			return "container " + ShortID(d.ContainerID) + " discovered again"
		}
	case EventContainerStatusChanged:
		was, known := r.Containers[d.ContainerID]
		r.Containers[d.ContainerID] = d.To
		switch {
		case !known:
			return "status change of container " + ShortID(d.ContainerID) + ", never discovered"
		case was != d.From:
			return fmt.Sprintf("container %s changed from %q, but its last logged status is %q", ShortID(d.ContainerID), d.From, was)
		}
	case EventContainerRemoved:
		_, known := r.Containers[d.ContainerID]
		delete(r.Containers, d.ContainerID)
		if !known {
			return "container " + ShortID(d.ContainerID) + " removed, never discovered"
		}
	case EventHostProcessDiscovered:
		known := r.HostProcesses[key]
		r.HostProcesses[key] = true
		if known {
			return fmt.Sprintf("host process %d discovered again", d.PID)
		}
	case EventHostProcessExited:
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
		held[c.ID] = true
		status, ok := r.Containers[c.ID]
		switch {
		case !ok:
			d.Lost = append(d.Lost, "container "+ShortID(c.ID))
		case status != c.Status:
			d.WrongStatus = append(d.WrongStatus, fmt.Sprintf("container %s: logged %q, is %q", ShortID(c.ID), status, c.Status))
		}
	}
	for id := range r.Containers {
		if !held[id] {
			d.Phantom = append(d.Phantom, "container "+ShortID(id))
		}
	}
	procs := make(map[ProcessKey]bool, len(inv.HostProcesses))
	for _, p := range inv.HostProcesses {
		procs[p.Key()] = true
		if !r.HostProcesses[p.Key()] {
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
