package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// commitInventory is a saved inventory of n containers, and the next one
// with changed of them new: changed discovery events.
func commitInventory(n, changed int) (prev, next *inventory.Inventory, ts []inventory.Transition) {
	t0 := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	obs := inventory.Observation{Sources: map[string]inventory.SourceStatus{inventory.SourceDocker: {OK: true}}, ProcessesObserved: true}
	for i := range n {
		obs.Containers = append(obs.Containers, inventory.Container{
			ID: fmt.Sprintf("%064x", i+1), Name: fmt.Sprintf("ctr-%d", i), Image: "pytorch/pytorch:2.5", Command: "python train.py",
			Type: inventory.TypeRawDocker, Status: "running", User: "alice", UserSource: "uid",
			DetectedLabels: map[string]string{"ds01.detected": "true"},
		})
	}
	all := obs.Containers
	obs.Containers = all[:n-changed]
	prev, _ = inventory.Reconcile(nil, obs, t0)
	prev.Scan.ID = "S0"
	obs.Containers = all
	next, ts = inventory.Reconcile(prev, obs, t0.Add(30*time.Second))
	next.Scan.ID = "S1"
	return prev, next, ts
}

// BenchmarkCommit is what making a scan's events durable with its inventory
// costs at 1,000 containers: save and append (with fsyncs), then the next
// scan's check of the log and its load of the inventory. events=0 is a scan
// with nothing to log.
func BenchmarkCommit(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, changed := range []int{0, 10, 1000} {
		b.Run(fmt.Sprintf("events=%d", changed), func(b *testing.B) {
			prev, next, ts := commitInventory(1000, changed)
			dir := b.TempDir()
			cfg := Config{StatePath: filepath.Join(dir, "workload-inventory.json"), EventsPath: filepath.Join(dir, "events.jsonl")}
			for b.Loop() {
				if _, appendErr, err := commit(cfg, log, prev, next, nil, ts); err != nil || appendErr != nil {
					b.Fatal(err, appendErr)
				}
				saved, err := inventory.Load(cfg.StatePath)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := inventory.Unlogged(cfg.EventsPath, saved.Outbox); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
