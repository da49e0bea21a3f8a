//go:build integration

package integration

// The contract with the lab's existing ds01 tools (hertie-data-science-lab/
// ds01-infra), which a lab switching to ds01-scan keeps: our scanner's
// output, from real containers, read the way each of them reads it. The
// facts, from those tools:
//   - ds01_events.py's registry: detection.container_discovered {user,
//     container_id, name, origin, has_gpu, image}; detection.container_exited
//     {user, container_id, name, origin}, when the container leaves the
//     inventory; detection.container_status_changed {user, container_id,
//     name, old_status, new_status}; detection.host_gpu_process_discovered
//     {user, pid, cmdline, gpu_memory_mb, gpu_uuid}; ..._exited {user, pid,
//     cmdline}. The envelope keeps "unknown" as a user.
//   - ds01-monthly-report: reads events.jsonl-*.gz, events.jsonl-*[0-9],
//     events.jsonl; parses timestamp with fromisoformat(ts.replace('Z',
//     '+00:00')), which before Python 3.11 takes a fraction of 0, 3 or 6
//     digits only; counts GPU containers by the truthiness of has_gpu in
//     discoveries, exits by detection.container_exited, and pairs the two by
//     the exact container_id string for lifetimes.
//   - ds01-events --container NAME: matches details.container.
//   - the exporter: counts event_type of the last 24 h (the same timestamps).
//   - detect-workloads.py's inventory: containers keyed by 12-character ID
//     (origin, has_gpu, user, status, detected_at), host_processes and
//     _pending_processes keyed by PID, its events with source
//     "detect-workloads" and the short container_id.

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// python38Time is what Python 3.8's fromisoformat accepts of an event's
// timestamp after .replace('Z', '+00:00').
var python38Time = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?\+00:00$`)

// labEvent is an event line as the lab's Python readers see it: the
// envelope, and details flattened as the monthly report flattens them.
type labEvent struct {
	Type, User, Source string
	Time               time.Time
	Details            map[string]any
}

// readLabEvents reads the files the monthly report reads, in its order, the
// way it reads them: a line that does not parse, or whose timestamp Python
// 3.8 refuses, is skipped (and here counted as refused).
func readLabEvents(t *testing.T, dir string) (evs []labEvent, refused []string) {
	t.Helper()
	for _, name := range monthlyReportFiles(t, dir) {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".gz") {
			z, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if data, err = io.ReadAll(z); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var raw struct {
				Timestamp string         `json:"timestamp"`
				EventType string         `json:"event_type"`
				User      string         `json:"user"`
				Source    string         `json:"source"`
				Details   map[string]any `json:"details"`
			}
			if json.Unmarshal([]byte(line), &raw) != nil {
				continue
			}
			ts := strings.Replace(raw.Timestamp, "Z", "+00:00", 1)
			if !python38Time.MatchString(ts) {
				refused = append(refused, raw.Timestamp)
				continue
			}
			at, err := time.Parse("2006-01-02T15:04:05.999999-07:00", ts)
			if err != nil {
				refused = append(refused, raw.Timestamp)
				continue
			}
			evs = append(evs, labEvent{Type: raw.EventType, User: raw.User, Source: raw.Source, Time: at, Details: raw.Details})
		}
	}
	return evs, refused
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	case nil:
		return false
	}
	return true
}

// TestLabConsumersContract: containers with and without GPUs, of the lab's
// origins, discovered, one stopped, one removed; what the lab's monthly
// report, ds01-events and the exporter read from our log is what happened.
func TestLabConsumersContract(t *testing.T) {
	s := newScanner(t)
	tok := hostileToken(t, 4)
	// Containers with --gpus are only created: this engine has no GPU
	// driver to start them with.
	gpu1 := container(t, "create", "--name", "ds01lab-gpu1-"+tok, "--gpus", "all", env.image, "sleep", "600")
	gpu2 := container(t, "create", "--name", "ds01lab-gpu2-"+tok, "--gpus", `"device=0"`, "--label", "com.docker.compose.project=lab",
		"--label", "com.docker.compose.service=train", env.image, "sleep", "600")
	plain := container(t, "run", "-d", "--init", "--name", "ds01lab-plain-"+tok, env.image, "sleep", "600")
	removed := container(t, "run", "-d", "--init", "--name", "ds01lab-removed-"+tok, env.image, "sleep", "600")
	s.scan(t)
	docker(t, "stop", "-t", "1", plain)
	docker(t, "rm", "-f", removed)
	s.scan(t)

	evs, refused := readLabEvents(t, s.dir)
	if len(refused) > 0 {
		t.Errorf("timestamps Python 3.8's fromisoformat refuses: %v", refused)
	}
	ours := map[string]bool{inventory.ShortID(gpu1): true, inventory.ShortID(gpu2): true, inventory.ShortID(plain): true, inventory.ShortID(removed): true}
	discovered := map[string]labEvent{}
	var exits, changes []labEvent
	for _, e := range evs {
		id, _ := e.Details["container_id"].(string)
		if !ours[id] {
			continue
		}
		switch e.Type {
		case "detection.container_discovered":
			discovered[id] = e
		case "detection.container_exited":
			exits = append(exits, e)
		case "detection.container_status_changed":
			changes = append(changes, e)
		}
		for _, k := range []string{"container_id", "name", "container"} {
			if _, ok := e.Details[k].(string); !ok {
				t.Errorf("%s without %s: %v", e.Type, k, e.Details)
			}
		}
	}
	// The monthly report's GPU ratio: has_gpu's truthiness.
	withGPU := 0
	for _, e := range discovered {
		if truthy(e.Details["has_gpu"]) {
			withGPU++
		}
		if _, ok := e.Details["has_gpu"].(bool); !ok {
			t.Errorf("has_gpu is %#v, not a JSON boolean", e.Details["has_gpu"])
		}
	}
	if len(discovered) != 4 || withGPU != 2 {
		t.Errorf("monthly report: %d containers discovered, %d with a GPU; want 4 and 2", len(discovered), withGPU)
	}
	if o := discovered[inventory.ShortID(gpu2)].Details["origin"]; o != "compose" {
		t.Errorf("the compose container's origin is %v, want the lab's \"compose\"", o)
	}
	// Exits, paired with their discovery by container_id, as lifetimes.
	if len(exits) != 1 {
		t.Fatalf("%d exits, want the removed container's", len(exits))
	}
	d, ok := discovered[exits[0].Details["container_id"].(string)]
	if !ok || exits[0].Details["container_id"] != inventory.ShortID(removed) {
		t.Errorf("the exit names %v: no discovery pairs with it", exits[0].Details["container_id"])
	} else if life := exits[0].Time.Sub(d.Time); life < 0 {
		t.Errorf("lifetime %v", life)
	}
	if len(changes) != 1 || changes[0].Details["old_status"] != "running" || changes[0].Details["new_status"] != "exited" {
		t.Errorf("status changes %v, want plain's running → exited with old_status and new_status", changes)
	}
	// ds01-events --container NAME.
	for _, name := range []string{"ds01lab-gpu1-" + tok, "ds01lab-gpu2-" + tok, "ds01lab-plain-" + tok, "ds01lab-removed-" + tok} {
		n := 0
		for _, e := range evs {
			if e.Details["container"] == name {
				n++
			}
		}
		if n == 0 {
			t.Errorf("ds01-events --container %s finds nothing", name)
		}
	}
	// The exporter: event types of the last 24 h.
	recent := 0
	for _, e := range evs {
		if time.Since(e.Time) < 24*time.Hour && e.Type != "" {
			recent++
		}
	}
	if recent != len(evs) {
		t.Errorf("the exporter counts %d of %d events in the last 24 h", recent, len(evs))
	}
	// And every one of them: a workload's user is there, "unknown" too.
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "detection.container_") && e.User == "" {
			t.Errorf("%s without a user: %v", e.Type, e.Details)
		}
	}
}

// TestLabMigration: an inventory and a log that detect-workloads.py left,
// for real containers (one gone since, one stopped since, one new); our
// first scan takes the inventory over: one detection.inventory_migrated
// event, no discovery of what it knew, an exit for what is gone (with the
// short ID its discovery had), first sightings kept, the old file beside;
// the whole log, both scanners', replays to our inventory.
func TestLabMigration(t *testing.T) {
	s := newScanner(t)
	tok := hostileToken(t, 4)
	kept := container(t, "create", "--name", "ds01mig-kept-"+tok, "--gpus", "all", env.image, "sleep", "600")
	stopped := container(t, "run", "-d", "--init", "--name", "ds01mig-stopped-"+tok, env.image, "sleep", "600")
	fresh := container(t, "create", "--name", "ds01mig-fresh-"+tok, env.image, "true")
	docker(t, "stop", "-t", "1", stopped)
	gone := "0123456789ab"
	first := time.Date(2026, 11, 30, 9, 15, 0, 123456000, time.UTC)

	entry := func(short, name, origin, status string, gpu bool) string {
		return fmt.Sprintf(`%q: {"id": %q, "name": %q, "origin": %q, "user": "alice", "has_gpu": %v, "gpu_devices": [], "status": %q, "image": "x", "detected_at": %q}`,
			short, short, name, origin, gpu, status, first.Format("2006-01-02T15:04:05.000000Z"))
	}
	legacy := `{"last_scan": "2026-12-01T10:00:00.000001Z", "containers": {` +
		entry(inventory.ShortID(kept), "ds01mig-kept-"+tok, "raw-docker", "created", true) + ", " +
		entry(inventory.ShortID(stopped), "ds01mig-stopped-"+tok, "raw-docker", "running", false) + ", " +
		entry(gone, "ds01mig-gone", "compose", "exited", false) +
		`}, "host_processes": {}, "_pending_processes": {}}`
	if err := os.WriteFile(s.state, []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	for _, id := range []string{inventory.ShortID(kept), inventory.ShortID(stopped), gone} {
		fmt.Fprintf(&log, `{"timestamp": "2026-11-30T09:15:00.123456Z", "event_type": "detection.container_discovered", "schema_version": "1", "user": "alice", "source": "detect-workloads", "details": {"container_id": %q, "name": "x", "origin": "raw-docker", "has_gpu": false, "image": "x"}}`+"\n", id)
	}
	if err := os.WriteFile(s.events, []byte(log.String()), 0o664); err != nil {
		t.Fatal(err)
	}
	if r := workloads(t, s.state); r.code == 0 || !strings.Contains(r.output(), "detect-workloads.py") {
		t.Errorf("ds01-workloads on the old scanner's inventory: want a clear error naming it\n%s", r)
	}

	s.scan(t)
	inv := s.scan(t) // nothing more to say
	evs, refused := readLabEvents(t, s.dir)
	if len(refused) > 0 {
		t.Errorf("timestamps Python 3.8 refuses: %v", refused)
	}
	types := map[string][]string{}
	migrated := 0
	for _, e := range evs {
		if e.Source != inventory.EventSource {
			continue
		}
		if e.Type == inventory.EventInventoryMigrated {
			migrated++
			if e.Details["containers"] != 2.0 || e.Details["containers_gone"] != 1.0 {
				t.Errorf("migration counts %v, want 2 containers kept and 1 gone", e.Details)
			}
		}
		if id, ok := e.Details["container_id"].(string); ok {
			types[id] = append(types[id], e.Type)
		}
	}
	if migrated != 1 {
		t.Errorf("%d inventory_migrated events, want 1", migrated)
	}
	for id, want := range map[string]string{
		inventory.ShortID(kept):    "",
		inventory.ShortID(stopped): inventory.EventContainerStatusChanged,
		inventory.ShortID(fresh):   inventory.EventContainerDiscovered,
		gone:                       inventory.EventContainerExited,
	} {
		if got := strings.Join(types[id], ","); got != want {
			t.Errorf("container %s: our events %q, want %q", id, got, want)
		}
	}
	if c := mustFind(t, inv, kept); !c.DetectedAt.Equal(first) {
		t.Errorf("the kept container's first sighting is %v, want the old scanner's %v", c.DetectedAt, first)
	}
	keptFiles, _ := filepath.Glob(s.state + ".detect-workloads-*")
	if len(keptFiles) != 1 {
		t.Errorf("the old inventory kept as %v, want one file", keptFiles)
	} else if data, _ := os.ReadFile(keptFiles[0]); string(data) != legacy {
		t.Errorf("the kept file differs from the old inventory")
	}
	f, err := os.Open(s.events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := inventory.Replay(f)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Compare(inv); !d.Agree() || len(r.Inconsistent) > 0 {
		t.Errorf("the log of both scanners does not replay to the inventory: %+v, inconsistent %v", d, r.Inconsistent)
	}
}
