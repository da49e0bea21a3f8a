package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// TestNewEventsIDs: every event a scan writes carries its own event_id,
// numbered in order from the reset event, and scan_id and base_scan_id,
// the latter empty when there was no inventory to start from.
func TestNewEventsIDs(t *testing.T) {
	ts := []inventory.Transition{
		{Type: inventory.EventSourceUnavailable, Source: inventory.SourceNVML, Error: "no driver"},
		{Type: inventory.EventSourceRecovered, Source: inventory.SourceDocker},
	}
	now := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	reset := inventory.ResetEvent("S1", "corrupt", now)
	first, err := newEvents("S1", "", &reset, ts, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newEvents("S2", "S1", nil, ts[:1], now)
	if err != nil {
		t.Fatal(err)
	}
	var got [][3]string
	seen := map[string]bool{}
	for _, p := range append(first, second...) {
		var e struct {
			Details map[string]any `json:"details"`
		}
		if err := json.Unmarshal([]byte(p.Line), &e); err != nil {
			t.Fatalf("%v: %s", err, p.Line)
		}
		id, _ := e.Details["event_id"].(string)
		scan, _ := e.Details["scan_id"].(string)
		base, ok := e.Details["base_scan_id"].(string)
		if !ok {
			t.Errorf("no base_scan_id: %s", p.Line)
		}
		if id != p.ID {
			t.Errorf("line names event %s, outbox entry %s", id, p.ID)
		}
		if seen[id] {
			t.Errorf("event_id %s twice", id)
		}
		seen[id] = true
		got = append(got, [3]string{id, scan, base})
	}
	want := [][3]string{{"S1-0001", "S1", ""}, {"S1-0002", "S1", ""}, {"S1-0003", "S1", ""}, {"S2-0001", "S2", "S1"}}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: (event_id, scan_id, base_scan_id) = %v, want %v", i, got[i], want[i])
		}
	}
}
