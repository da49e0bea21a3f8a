package main

// The --json document: encoding/json writes it, HTML escaping off, and
// inventory.EscapeJSON escapes what could still act on a terminal. It is a
// contract other tools rely on, its fields documented in --info and the
// README (jsonTopFields, jsonSourceFields and jsonWorkloadFields) in the
// order these types declare them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// jsonDocument is the --json document but for its workloads, which
// writeJSON encodes one at a time.
type jsonDocument struct {
	SchemaVersion int `json:"schema_version"`
	// LastScan is nil before the first scan.
	LastScan *time.Time            `json:"last_scan"`
	Sources  map[string]jsonSource `json:"sources"`
	GPUs     []jsonGPU             `json:"gpus"`
	// Workloads is always empty: writeJSON fills the array.
	Workloads []struct{} `json:"workloads"`
}

// jsonGPU is one GPU or MIG instance's page of the GPU ledger.
type jsonGPU struct {
	ID          string  `json:"id"`
	UUID        string  `json:"uuid"`
	Name        string  `json:"name"`
	Parent      *string `json:"parent"`
	MinorNumber *int    `json:"minor_number"`
	Lost        bool    `json:"lost"`
	// Memory, in bytes; null where unknown.
	MemoryTotal        *uint64 `json:"memory_total_bytes"`
	MemoryUsed         *uint64 `json:"memory_used_bytes"`
	MemoryReserved     *uint64 `json:"memory_reserved_bytes"`
	MemoryAttributed   *uint64 `json:"memory_attributed_bytes"`
	MemoryUnattributed *uint64 `json:"memory_unattributed_bytes"`
	// UnattributedFlagged is true above the threshold.
	UnattributedFlagged bool     `json:"memory_unattributed_flagged"`
	PersistenceMode     *bool    `json:"persistence_mode"`
	DeclaredBy          []string `json:"declared_by"`
	UsedBy              []string `json:"used_by"`
}

// newJSONGPUs is the ledger's pages for the document.
func newJSONGPUs(ledger []inventory.GPUAccount, threshold uint64) []jsonGPU {
	out := make([]jsonGPU, 0, len(ledger))
	for i := range ledger {
		a := &ledger[i]
		d := a.Device
		out = append(out, jsonGPU{
			ID: d.ID, UUID: d.UUID, Name: d.Name, Parent: stringOrNil(d.Parent), MinorNumber: d.MinorNumber, Lost: d.Lost,
			MemoryTotal: d.MemoryTotalBytes, MemoryUsed: d.MemoryUsedBytes, MemoryReserved: d.MemoryReservedBytes,
			MemoryAttributed: a.AttributedBytes, MemoryUnattributed: a.UnattributedBytes,
			UnattributedFlagged: a.Flagged(threshold), PersistenceMode: d.PersistenceMode,
			DeclaredBy: a.DeclaredBy, UsedBy: a.UsedBy,
		})
	}
	return out
}

// jsonSource is how a source fared at the last scan. Unlike the
// inventory's own form every field is present, null where there is
// nothing to say.
type jsonSource struct {
	OK          bool       `json:"ok"`
	Error       *string    `json:"error"`
	LastSuccess *time.Time `json:"last_success"`
	Warning     *string    `json:"warning"`
}

// noLabels is the detected_labels of a workload that has none: the
// contract promises an object, never null.
var noLabels = map[string]string{}

// writeJSON prints the rows as one JSON document, indented when pretty.
// Strings are exactly as in the inventory: JSON escaping keeps them harmless
// on a terminal, and jq needs them whole. The document is encoded whole
// before any of it is written, so a value JSON cannot hold (a time RFC 3339
// has no form for, a CPU figure that is not a number) prints nothing.
func writeJSON(w io.Writer, inv *inventory.Inventory, rows []row, ledger []inventory.GPUAccount, threshold uint64, pretty bool) error {
	doc := jsonDocument{
		SchemaVersion: inv.SchemaVersion,
		Sources:       make(map[string]jsonSource, len(inv.Sources)),
		GPUs:          newJSONGPUs(ledger, threshold),
		Workloads:     []struct{}{},
	}
	if !inv.Scan.Time.IsZero() {
		t := inv.Scan.Time.UTC()
		doc.LastScan = &t
	}
	for name, s := range inv.Sources {
		js := jsonSource{OK: s.OK, Error: stringOrNil(s.Error), Warning: stringOrNil(s.Warning)}
		if s.LastSuccess != nil {
			t := s.LastSuccess.UTC()
			js.LastSuccess = &t
		}
		doc.Sources[name] = js
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	// A workload at a time, so that encoding/json's own buffer holds one
	// workload and not a second copy of the document: the header ends
	// "[]}\n", and the workloads go between the brackets.
	buf.Truncate(buf.Len() - len("]}\n"))
	var wl inventory.Workload
	for i, r := range rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		wl = *r.w
		if wl.DetectedLabels == nil {
			wl.DetectedLabels = noLabels
		}
		start := buf.Len()
		if err := enc.Encode(&wl); err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		if i == 0 {
			// Room for the rest at the first one's size: the buffer is
			// allocated about once, not doubled a dozen times into fresh
			// memory the kernel must fault in, the collector being off.
			buf.Grow((buf.Len() - start) * (len(rows) - 1))
		}
		buf.Truncate(buf.Len() - len("\n"))
	}
	buf.WriteString("]}\n")
	out := buf.Bytes()
	// Indent is what Encoder.SetIndent does to a whole document.
	if pretty {
		var indented bytes.Buffer
		if err := json.Indent(&indented, out, "", "  "); err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		out = indented.Bytes()
	}
	_, err := w.Write(inventory.EscapeJSON(out))
	return err
}

// stringOrNil is s, or nil for "": where the inventory leaves a string
// out, the document says null.
func stringOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
