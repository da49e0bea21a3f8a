package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"time"
)

// The inventory writes every time as the event log does (FormatTimestamp:
// UTC, exactly six fractional digits, Z), not as time.Time would (as many
// digits as it has, trailing zeros dropped): the lab's tools are Python, and
// Python 3.8–3.10's fromisoformat takes no other fraction than three or six
// digits. The structs keep their time.Time fields; encode writes a view of
// the inventory in which each struct with times embeds itself (as a type
// without methods) under fields of the same names that are stamps, which
// encoding/json prefers to the embedded ones. Load reads either form.

// stamp is a time as the inventory writes it.
type stamp time.Time

// MarshalText writes the time with six fractional digits. A time whose UTC
// year has not four digits (only a forged file holds one) is written as
// time.Time writes it, in its own zone, so that Load reads it back. Text,
// not JSON: encoding/json quotes a text as it is, where it would parse and
// compact again what a MarshalJSON returned.
func (s stamp) MarshalText() ([]byte, error) {
	if y := time.Time(s).UTC().Year(); y < 0 || y > 9999 {
		return time.Time(s).MarshalText()
	}
	return appendTimestamp(make([]byte, 0, len(timestampLayout)), time.Time(s)), nil
}

// stampPtr is a *time.Time as a *stamp: nil stays nil (JSON null).
func stampPtr(t *time.Time) *stamp { return (*stamp)(t) }

type (
	plainInventory   Inventory
	plainScanInfo    ScanInfo
	plainSource      SourceStatus
	plainContainer   Container
	plainHostProcess HostProcess
)

type inventoryView struct {
	plainInventory
	Scan             scanView              `json:"scan"`
	Sources          map[string]sourceView `json:"sources"`
	Containers       []containerView       `json:"containers"`
	HostProcesses    []processView         `json:"host_processes"`
	PendingProcesses []processView         `json:"pending_processes"`
}

type scanView struct {
	plainScanInfo
	Time stamp `json:"time"`
}

type sourceView struct {
	plainSource
	LastSuccess *stamp `json:"last_success"`
}

type containerView struct {
	plainContainer
	CreatedAt    stamp  `json:"created_at"`
	StartedAt    *stamp `json:"started_at"`
	DetectedAt   stamp  `json:"detected_at"`
	LastSeen     stamp  `json:"last_seen"`
	CPUSampledAt *stamp `json:"cpu_sampled_at,omitempty"`
}

type processView struct {
	plainHostProcess
	StartedAt  stamp `json:"started_at"`
	DetectedAt stamp `json:"detected_at"`
	LastSeen   stamp `json:"last_seen"`
}

// MarshalJSON writes the inventory with every time a stamp.
func (inv *Inventory) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := encodeTo(&b, inv); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// containersNull is where the containers go in the encoding of an
// inventory without them: encoding/json escapes every quote inside a
// string, so these bytes occur nowhere else before it.
var containersNull = []byte(`,"containers":null`)

// encodeTo writes inv compact, as encoding/json writes it, to w: all but
// the containers in one piece, then the containers in pieces of
// encodeChunk (encodeContainers). The inventory is never whole in memory:
// at 1,000 containers building it whole took 2 MB of buffers, grown one
// after another in memory the scan had never touched, half the time of
// the encoding.
func encodeTo(w io.Writer, inv *Inventory) error {
	rest, err := json.Marshal(viewWithoutContainers(inv))
	if err != nil {
		return err
	}
	at := bytes.Index(rest, containersNull)
	if at < 0 {
		return errors.New("encode inventory: no containers field")
	}
	ew := errWriter{w: w}
	ew.write(rest[:at+len(containersNull)-len("null")])
	if inv.Containers == nil {
		ew.write([]byte("null"))
	} else {
		ew.write([]byte{'['})
		if err := encodeContainers(&ew, inv.Containers, min(runtime.GOMAXPROCS(0), maxEncodeWorkers)); err != nil {
			return err
		}
		ew.write([]byte{']'})
	}
	ew.write(rest[at+len(containersNull):])
	return ew.err
}

// encodeChunk is how many containers one piece of the encoding holds, and
// maxEncodeWorkers how many pieces are encoded at once.
const (
	encodeChunk      = 128
	maxEncodeWorkers = 4
)

// encodeContainers writes cs, comma-separated, to ew: in pieces of
// encodeChunk containers, encoded by up to workers goroutines at once and
// written in order. Saving is on the scan's critical path, after the
// engine's answer, when the other cores have nothing left to do; each
// worker reuses two buffers, so what is in memory at once is a few pieces,
// never the whole.
func encodeContainers(ew *errWriter, cs []Container, workers int) error {
	chunks := (len(cs) + encodeChunk - 1) / encodeChunk
	workers = max(min(workers, chunks), 1)
	if workers == 1 {
		var b bytes.Buffer
		for i := range chunks {
			b.Reset()
			if err := encodeChunkTo(&b, cs, i); err != nil {
				return err
			}
			ew.write(b.Bytes())
		}
		return nil
	}
	type piece struct {
		b   *bytes.Buffer
		err error
	}
	done := make(chan struct{})
	defer close(done)
	out := make([]chan piece, workers)
	free := make([]chan *bytes.Buffer, workers)
	for w := range workers {
		out[w], free[w] = make(chan piece, 1), make(chan *bytes.Buffer, 2)
		free[w] <- new(bytes.Buffer)
		free[w] <- new(bytes.Buffer)
		go func() {
			for i := w; i < chunks; i += workers {
				var b *bytes.Buffer
				select {
				case b = <-free[w]:
				case <-done:
					return
				}
				b.Reset()
				err := encodeChunkTo(b, cs, i)
				select {
				case out[w] <- piece{b, err}:
				case <-done:
					return
				}
			}
		}()
	}
	for i := range chunks {
		p := <-out[i%workers]
		if p.err != nil {
			return p.err
		}
		ew.write(p.b.Bytes())
		free[i%workers] <- p.b
	}
	return nil
}

// encodeChunkTo appends piece i of cs to b: its containers, each preceded
// by a comma but the list's first.
func encodeChunkTo(b *bytes.Buffer, cs []Container, i int) error {
	enc := json.NewEncoder(b)
	// One view, refilled: Encode takes it as an interface, which would
	// copy a view passed by value to the heap.
	cv := new(containerView)
	for j := i * encodeChunk; j < min(len(cs), (i+1)*encodeChunk); j++ {
		if j > 0 {
			b.WriteByte(',')
		}
		*cv = newContainerView(&cs[j])
		if err := enc.Encode(cv); err != nil {
			return err
		}
		// Encode ends the value with a newline.
		b.Truncate(b.Len() - 1)
	}
	return nil
}

// viewWithoutContainers is inv with every time a stamp, its containers
// left out (null) for encodeTo to write one at a time.
func viewWithoutContainers(inv *Inventory) inventoryView {
	v := inventoryView{
		plainInventory: plainInventory(*inv),
		Scan:           scanView{plainScanInfo(inv.Scan), stamp(inv.Scan.Time)},
	}
	if inv.Sources != nil {
		v.Sources = make(map[string]sourceView, len(inv.Sources))
		for name, s := range inv.Sources {
			v.Sources[name] = sourceView{plainSource(s), stampPtr(s.LastSuccess)}
		}
	}
	v.HostProcesses = processViews(inv.HostProcesses)
	v.PendingProcesses = processViews(inv.PendingProcesses)
	return v
}

func newContainerView(c *Container) containerView {
	return containerView{plainContainer(*c), stamp(c.CreatedAt), stampPtr(c.StartedAt),
		stamp(c.DetectedAt), stamp(c.LastSeen), stampPtr(c.CPUSampledAt)}
}

// errWriter keeps the first error of a run of writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func processViews(ps []HostProcess) []processView {
	if ps == nil {
		return nil
	}
	out := make([]processView, len(ps))
	for i := range ps {
		p := &ps[i]
		out[i] = processView{plainHostProcess(*p), stamp(p.StartedAt), stamp(p.DetectedAt), stamp(p.LastSeen)}
	}
	return out
}
