package inventory

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// rid is a container ID whose 12-character form is distinct for each n,
// as real IDs' are (cid's are all zeros there).
func rid(n int) string { return fmt.Sprintf("%012x%052x", n*0x111111, n) }

func rcontainer(n int, status, typ string) Container {
	c := container(n, status, typ)
	c.ID = rid(n)
	return c
}

// replayLog runs Reconcile over observations and returns the log of its
// events, one scan after another, and the last inventory.
func replayLog(t *testing.T, observations ...Observation) (string, *Inventory) {
	t.Helper()
	var b strings.Builder
	var inv *Inventory
	for i, obs := range observations {
		next, ts := Reconcile(inv, obs, scanAt(i))
		next.Scan.ID = "S" + string(rune('a'+i))
		base := ""
		if inv != nil {
			base = inv.Scan.ID
		}
		for n, tr := range ts {
			line, err := EncodeEvent(tr.NewEvent(next.Scan.ID, base, n+1, scanAt(i)))
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
		}
		inv = next
	}
	return b.String(), inv
}

func replay(t *testing.T, log string) *Replayed {
	t.Helper()
	r, err := Replay(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReplayReconcile: the events Reconcile gives, replayed from nothing,
// give its inventory: containers discovered, changed and gone, host
// processes promoted and exited.
func TestReplayReconcile(t *testing.T) {
	a, b, c := rcontainer(1, "running", TypeRawDocker), rcontainer(2, "created", TypeDevcontainer), rcontainer(3, "running", TypeDockerCompose)
	p, q := process(100, 1), process(200, 2)
	stopped := a
	stopped.Status = "exited"
	log, inv := replayLog(t,
		allOK([]Container{a, b}, []HostProcess{p}),
		allOK([]Container{a, b, c}, []HostProcess{p, q}),
		allOK([]Container{stopped, c}, []HostProcess{q}),
		allOK([]Container{stopped, c}, []HostProcess{q}),
	)
	r := replay(t, log)
	if d := r.Compare(inv); !d.Agree() || len(r.Inconsistent) > 0 || r.Repeats > 0 {
		t.Fatalf("replay disagrees: %+v, inconsistent %v, repeats %d\n%s", d, r.Inconsistent, r.Repeats, log)
	}
	want := map[string]string{rid(1)[:12]: "exited", rid(3)[:12]: "running"}
	if !reflect.DeepEqual(r.Containers, want) {
		t.Errorf("containers %v, want %v", r.Containers, want)
	}
	if !reflect.DeepEqual(r.HostProcesses, map[ProcessKey]bool{q.Key(): true}) {
		t.Errorf("host processes %v, want only %v", r.HostProcesses, q.Key())
	}
}

// TestReplayFaults: repeats of an event_id are dropped and counted, torn
// lines and other tools' events skipped, a reset starts afresh; Compare
// names phantoms, losses and wrong statuses, and Replay the events that do
// not follow.
func TestReplayFaults(t *testing.T) {
	a, b := rcontainer(1, "running", TypeRawDocker), rcontainer(2, "running", TypeRawDocker)
	log, inv := replayLog(t, allOK([]Container{a, b}, nil))
	lines := strings.SplitAfter(log, "\n")
	torn := lines[0][:40]
	other := `{"timestamp":"2026-01-30T14:30:00.000000Z","event_type":"detection.container_discovered","source":"ds01-cli","details":{"container_id":"ffffffffffff"}}` + "\n"
	r := replay(t, lines[0]+lines[0]+torn+"\n"+other+lines[1])
	if r.Repeats != 1 || r.Unparsable != 1 || len(r.Inconsistent) > 0 || !r.Compare(inv).Agree() {
		t.Errorf("repeats %d (want 1), unparsable %d (want 1), inconsistent %v, diff %+v", r.Repeats, r.Unparsable, r.Inconsistent, r.Compare(inv))
	}

	// Only the first container logged; the second's status wrong in the
	// inventory; a third the log names and the inventory does not hold.
	ghost := strings.ReplaceAll(lines[1], rid(2), rid(9))
	ghost = strings.ReplaceAll(ghost, rid(2)[:12], rid(9)[:12])
	ghost = strings.ReplaceAll(ghost, "-0002", "-0009")
	changed := *inv
	changed.Containers = []Container{inv.Containers[0], b}
	changed.Containers[0].Status = "paused"
	changed.Containers = append(changed.Containers, rcontainer(5, "running", TypeRawDocker))
	d := replay(t, lines[0]+ghost).Compare(&changed)
	if len(d.Phantom) != 1 || !strings.Contains(d.Phantom[0], rid(9)[:12]) || len(d.Lost) != 2 || len(d.WrongStatus) != 1 {
		t.Errorf("diff %+v; want one phantom (9), two lost (2, 5), one wrong status (1)", d)
	}

	// A reset empties the state: what follows is the whole truth.
	reset, _ := EncodeEvent(ResetEvent("Sz", "corrupt", t0))
	r = replay(t, lines[0]+string(reset)+lines[1])
	if want := map[string]string{rid(2)[:12]: "running"}; !reflect.DeepEqual(r.Containers, want) {
		t.Errorf("after a reset: %v, want %v", r.Containers, want)
	}

	// Events that do not follow from the state before them.
	r = replay(t, strings.ReplaceAll(lines[0], "-0001", "-0007")+lines[0]+
		`{"event_type":"detection.container_status_changed","source":"ds01-scan","details":{"event_id":"x1","container_id":"`+rid(1)[:12]+`","from":"paused","to":"exited"}}`+"\n"+
		`{"event_type":"detection.container_exited","source":"ds01-scan","details":{"event_id":"x2","container_id":"`+rid(4)[:12]+`"}}`+"\n"+
		`{"event_type":"detection.host_gpu_process_exited","source":"ds01-scan","details":{"event_id":"x3","pid":7}}`+"\n")
	if len(r.Inconsistent) != 4 {
		t.Errorf("inconsistent %q, want 4: discovered again, changed from a status never logged, two never discovered", r.Inconsistent)
	}
}

// TestReplayAcrossTheLabsScanner: a log that the lab's earlier scanner
// began (12-character IDs, old_status/new_status, no status at discovery,
// processes by PID alone) and ds01-scan continued, with an event an earlier
// ds01-scan wrote (full ID, container_removed), replays to one state.
func TestReplayAcrossTheLabsScanner(t *testing.T) {
	a, b, c := rid(1), rid(2), rid(3)
	log := `{"timestamp":"2026-01-30T14:00:00.000001Z","event_type":"detection.container_discovered","schema_version":"1","user":"alice","source":"detect-workloads","details":{"container_id":"` + a[:12] + `","name":"x","origin":"compose","has_gpu":true,"image":"i"}}
{"timestamp":"2026-01-30T14:00:00.000002Z","event_type":"detection.container_discovered","schema_version":"1","user":"bob","source":"detect-workloads","details":{"container_id":"` + b[:12] + `","name":"y","origin":"raw-docker","has_gpu":false,"image":"i"}}
{"timestamp":"2026-01-30T14:00:30.000000Z","event_type":"detection.container_status_changed","schema_version":"1","user":"alice","source":"detect-workloads","details":{"container_id":"` + a[:12] + `","name":"x","old_status":"running","new_status":"exited"}}
{"timestamp":"2026-01-30T14:00:30.000000Z","event_type":"detection.host_gpu_process_discovered","schema_version":"1","user":"carol","source":"detect-workloads","details":{"pid":4242,"cmdline":"python a.py","gpu_memory_mb":512,"gpu_uuid":"GPU-1"}}
{"timestamp":"2026-01-30T14:01:00.000000Z","event_type":"detection.container_removed","source":"ds01-scan","details":{"event_id":"S1-0001","container_id":"` + b + `"}}
{"timestamp":"2026-01-30T14:01:00.000000Z","event_type":"detection.container_discovered","source":"ds01-scan","details":{"event_id":"S1-0002","container_id":"` + c[:12] + `","container_id_full":"` + c + `","status":"running"}}
`
	r := replay(t, log)
	if len(r.Inconsistent) > 0 {
		t.Errorf("inconsistent: %v", r.Inconsistent)
	}
	inv := &Inventory{
		Containers:    []Container{rcontainer(1, "exited", TypeDockerCompose), rcontainer(3, "running", TypeRawDocker)},
		HostProcesses: []HostProcess{process(4242, 99)},
	}
	if d := r.Compare(inv); !d.Agree() {
		t.Errorf("replay disagrees with the inventory: %+v (state %v %v)", d, r.Containers, r.HostProcesses)
	}
}
