package detect

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// migMinors is the driver's table for GPU minor 1 with two GPU instances,
// the first holding one compute instance and the second two, plus the
// lines that name no instance.
const migMinors = `config 1
monitor 2
gpu1/gi1/access 12
gpu1/gi1/ci0/access 13
gpu1/gi2/access 21
gpu1/gi2/ci0/access 22
gpu1/gi2/ci1/access 23
gpu9/gi3/access junk
gpu/gi1/access 5
`

func TestParseMIGMinors(t *testing.T) {
	got := ParseMIGMinors([]byte(migMinors))
	want := map[int]MIGCap{
		12: {GPUMinor: 1, GI: 1, CI: -1}, 13: {GPUMinor: 1, GI: 1, CI: 0},
		21: {GPUMinor: 1, GI: 2, CI: -1}, 22: {GPUMinor: 1, GI: 2, CI: 0}, 23: {GPUMinor: 1, GI: 2, CI: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMIGMinors = %v, want %v", got, want)
	}
}

// TestSetMIGCapMinors: an instance is named by its compute instance's node,
// and by its GPU instance's when that holds no other; the GPU is found by
// minor number, not index.
func TestSetMIGCapMinors(t *testing.T) {
	one, two := 1, 0
	gi1, gi2, ci0, ci1 := 1, 2, 0, 1
	gpus := []inventory.GPUDevice{
		{ID: "0", MinorNumber: &one, MIGEnabled: true},
		{ID: "0:0", Parent: "0", GPUInstanceID: &gi1, ComputeInstanceID: &ci0},
		{ID: "0:1", Parent: "0", GPUInstanceID: &gi2, ComputeInstanceID: &ci0},
		{ID: "0:2", Parent: "0", GPUInstanceID: &gi2, ComputeInstanceID: &ci1},
		{ID: "1", MinorNumber: &two},
	}
	SetMIGCapMinors(gpus, ParseMIGMinors([]byte(migMinors)))
	for id, want := range map[string][]int{"0:0": {12, 13}, "0:1": {22}, "0:2": {23}, "0": nil, "1": nil} {
		for _, g := range gpus {
			if g.ID == id && !reflect.DeepEqual(g.CapMinors, want) {
				t.Errorf("%s: cap minors %v, want %v", id, g.CapMinors, want)
			}
		}
	}
	idx := inventory.NewGPUIndex(gpus)
	if got := idx.ID(inventory.CapNode(13)); got != "0:0" {
		t.Errorf("nvidia-cap13 resolves to %q, want 0:0", got)
	}
}

func TestMIGCapsFile(t *testing.T) {
	root := t.TempDir()
	p := NewProcfs(root)
	if caps, err := p.MIGCaps(); caps != nil || err != nil {
		t.Errorf("no table: %v, %v; want nil, nil", caps, err)
	}
	dir := filepath.Join(root, "driver", "nvidia-caps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mig-minors"), []byte(migMinors), 0o644); err != nil {
		t.Fatal(err)
	}
	if caps, err := p.MIGCaps(); err != nil || len(caps) != 5 {
		t.Errorf("table: %v, %v; want 5 entries", caps, err)
	}
	// A link out of the procfs root is not followed.
	os.Remove(filepath.Join(dir, "mig-minors"))
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte(migMinors), 0o600)
	if err := os.Symlink(outside, filepath.Join(dir, "mig-minors")); err != nil {
		t.Fatal(err)
	}
	if caps, err := p.MIGCaps(); err == nil {
		t.Errorf("a symlink out of the root was followed: %v", caps)
	}
}
