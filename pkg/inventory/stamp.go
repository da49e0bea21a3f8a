package inventory

import (
	"encoding/json"
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
func (inv *Inventory) MarshalJSON() ([]byte, error) { return encode(inv) }

// encode is MarshalJSON without encoding/json's second pass over what a
// MarshalJSON returns: Save calls it directly.
func encode(inv *Inventory) ([]byte, error) {
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
	if inv.Containers != nil {
		v.Containers = make([]containerView, len(inv.Containers))
		for i := range inv.Containers {
			c := &inv.Containers[i]
			v.Containers[i] = containerView{plainContainer(*c), stamp(c.CreatedAt), stampPtr(c.StartedAt),
				stamp(c.DetectedAt), stamp(c.LastSeen), stampPtr(c.CPUSampledAt)}
		}
	}
	v.HostProcesses = processViews(inv.HostProcesses)
	v.PendingProcesses = processViews(inv.PendingProcesses)
	return json.Marshal(v)
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
