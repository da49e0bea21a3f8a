package detect

import (
	"fmt"
	"strings"
	"testing"
)

// TestKeptLabelsBudget: the labels ds01 reads are kept first; other ds01.*
// labels only while the per-container budget lasts; values over the cap and
// unrelated labels never.
func TestKeptLabelsBudget(t *testing.T) {
	all := map[string]string{
		"ds01.user": "alice", "com.docker.compose.project": "p", "db.password": "hunter2", "ds01.secret": "hunter3",
		"ds01.note": strings.Repeat("x", MaxLabelValue+1),
	}
	for i := range 5000 {
		all[fmt.Sprintf("ds01.flood%05d", i)] = strings.Repeat("y", 1000)
	}
	got := keptLabels(all)
	if got["ds01.user"] != "alice" || got["com.docker.compose.project"] != "p" {
		t.Errorf("primary labels lost: %v", got)
	}
	if _, ok := got["db.password"]; ok || got["ds01.secret"] != "" {
		t.Errorf("unrelated label kept")
	}
	if _, ok := got["ds01.note"]; ok {
		t.Errorf("over-cap value kept")
	}
	size := 0
	for k, v := range got {
		size += len(k) + len(v)
	}
	if size > maxKeptLabelBytes {
		t.Errorf("kept %d bytes of labels, budget %d", size, maxKeptLabelBytes)
	}
}
