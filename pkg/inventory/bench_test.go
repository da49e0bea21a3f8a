package inventory

import (
	"fmt"
	"testing"
)

// BenchmarkReconcile is a steady-state scan's reconcile on a server with
// 10,000 workloads: 9,000 containers and 1,000 host GPU processes, nothing
// changed.
func BenchmarkReconcile(b *testing.B) {
	var cs []Container
	for i := range 9000 {
		c := container(i+1, "running", TypeRawDocker)
		c.Name = fmt.Sprintf("ctr-%d", i)
		cs = append(cs, c)
	}
	var ps []HostProcess
	for i := range 1000 {
		ps = append(ps, process(100000+i, uint64(i)))
	}
	obs := allOK(cs, ps)
	prev, _ := Reconcile(nil, obs, scanAt(0))
	prev, _ = Reconcile(prev, obs, scanAt(1))
	for b.Loop() {
		next, ts := Reconcile(prev, obs, scanAt(2))
		if len(ts) != 0 || len(next.Containers) != 9000 || len(next.HostProcesses) != 1000 {
			b.Fatalf("unexpected result: %d transitions", len(ts))
		}
	}
}
