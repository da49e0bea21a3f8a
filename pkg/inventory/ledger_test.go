package inventory

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// ledgerGPUs is a machine whose minor numbers differ from its indices
// (GPU 0 is /dev/nvidia1, GPU 1 is /dev/nvidia0), with a MIG GPU.
var ledgerGPUs = []GPUDevice{
	{ID: "0", UUID: "GPU-aaa", MinorNumber: ptr(1)},
	{ID: "1", UUID: "GPU-bbb", MinorNumber: ptr(0)},
	{ID: "2", UUID: "GPU-ccc", MinorNumber: ptr(2), MIGEnabled: true},
	{ID: "2:1", UUID: "MIG-ddd", Parent: "2"},
	{ID: "2:2", UUID: "MIG-eee", Parent: "2"},
}

func on(gpus ...string) []GPUProcess {
	var ps []GPUProcess
	for i, g := range gpus {
		ps = append(ps, GPUProcess{PID: 100 + i, GPU: g})
	}
	return ps
}

func declaring(devices ...string) GPUAccess {
	return GPUAccess{Declared: true, Channels: []string{ChannelDeviceRequest}, Devices: devices}
}

// TestDecideAccess is the ledger's decision table: every kind of
// declaration against every kind of use.
func TestDecideAccess(t *testing.T) {
	known := NewGPUIndex(ledgerGPUs)
	none := NewGPUIndex(nil)
	tests := []struct {
		name        string
		decl        GPUAccess
		used        []GPUProcess
		gpus        GPUIndex
		wantDecl    []string
		wantUsed    []string
		wantOutside []string
		wantState   string
	}{
		// Declared none.
		{"none, unused", GPUAccess{}, nil, known, nil, nil, nil, AccessNone},
		{"none, used", GPUAccess{}, on("1"), known, nil, []string{"1"}, []string{"1"}, AccessUndeclared},
		{"none, used a MIG instance", GPUAccess{}, on("2:1"), known, nil, []string{"2:1"}, []string{"2:1"}, AccessUndeclared},
		{"none, used by device node only", GPUAccess{}, on("/dev/nvidia7"), none, nil, []string{"/dev/nvidia7"}, []string{"/dev/nvidia7"}, AccessUndeclared},
		// Declared some GPU, which unknown.
		{"some, unused", declaring(), nil, known, nil, nil, nil, AccessDeclared},
		{"some, used", declaring(), on("1"), known, nil, []string{"1"}, nil, AccessInUse},
		// Declared all.
		{"all, unused", declaring("all"), nil, known, []string{"all"}, nil, nil, AccessDeclared},
		{"all, used two and a MIG instance", declaring("all"), on("0", "1", "2:2"), known, []string{"all"}, []string{"0", "1", "2:2"}, nil, AccessInUse},
		// Declared one GPU by index, UUID and device node.
		{"index, used inside", declaring("0"), on("0"), known, []string{"0"}, []string{"0"}, nil, AccessInUse},
		{"index, used inside and outside", declaring("0"), on("0", "1"), known, []string{"0"}, []string{"0", "1"}, []string{"1"}, AccessUndeclared},
		{"index, used only outside", declaring("0"), on("1"), known, []string{"0"}, []string{"1"}, []string{"1"}, AccessUndeclared},
		{"UUID, used inside", declaring("GPU-bbb"), on("1"), known, []string{"1"}, []string{"1"}, nil, AccessInUse},
		{"UUID, used outside", declaring("GPU-bbb"), on("0"), known, []string{"1"}, []string{"0"}, []string{"0"}, AccessUndeclared},
		{"device node names the GPU of that minor, not that index", declaring("/dev/nvidia1"), on("0"), known, []string{"0"}, []string{"0"}, nil, AccessInUse},
		{"device node, used the GPU of that index", declaring("/dev/nvidia1"), on("1"), known, []string{"0"}, []string{"1"}, []string{"1"}, AccessUndeclared},
		{"device node, use seen by the same node", declaring("/dev/nvidia1"), on("/dev/nvidia1"), none, []string{"/dev/nvidia1"}, []string{"/dev/nvidia1"}, nil, AccessInUse},
		{"device node, use seen by another node", declaring("/dev/nvidia1"), on("/dev/nvidia0"), none, []string{"/dev/nvidia1"}, []string{"/dev/nvidia0"}, []string{"/dev/nvidia0"}, AccessUndeclared},
		{"device node unresolved, use by ID: cannot tell", declaring("/dev/nvidia1"), on("1"), none, []string{"/dev/nvidia1"}, []string{"1"}, nil, AccessInUse},
		// Declared a GPU the machine does not have.
		{"unknown UUID, GPU list known: names nothing here", declaring("GPU-zzz"), on("0"), known, []string{"GPU-zzz"}, []string{"0"}, []string{"0"}, AccessUndeclared},
		{"unknown UUID, no GPU list: cannot tell", declaring("GPU-zzz"), on("0"), none, []string{"GPU-zzz"}, []string{"0"}, nil, AccessInUse},
		{"unknown index", declaring("7"), on("0"), known, []string{"7"}, []string{"0"}, []string{"0"}, AccessUndeclared},
		{"a name no rule knows: cannot tell", declaring("gpu-fast"), on("0"), known, []string{"gpu-fast"}, []string{"0"}, nil, AccessInUse},
		// MIG instances and their parent.
		{"MIG instance, used inside", declaring("2:1"), on("2:1"), known, []string{"2:1"}, []string{"2:1"}, nil, AccessInUse},
		{"MIG instance by UUID, used inside", declaring("MIG-ddd"), on("2:1"), known, []string{"2:1"}, []string{"2:1"}, nil, AccessInUse},
		{"MIG instance, used its sibling", declaring("2:1"), on("2:2"), known, []string{"2:1"}, []string{"2:2"}, []string{"2:2"}, AccessUndeclared},
		{"MIG instance, device scan names its parent", declaring("2:1"), on("2"), known, []string{"2:1"}, []string{"2"}, nil, AccessInUse},
		{"MIG instance, used another GPU", declaring("2:1"), on("0"), known, []string{"2:1"}, []string{"0"}, []string{"0"}, AccessUndeclared},
		{"parent, used on one of its MIG instances", declaring("2"), on("2:2"), known, []string{"2"}, []string{"2:2"}, nil, AccessInUse},
		{"parent, used outside", declaring("2"), on("2:1", "1"), known, []string{"2"}, []string{"1", "2:1"}, []string{"1"}, AccessUndeclared},
		// Names that say nothing.
		{"empty process GPU: a MIG capability holder", GPUAccess{}, on(""), known, nil, nil, nil, AccessNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := DecideAccess(tc.decl, tc.used, true, true, tc.gpus)
			if !reflect.DeepEqual(nilIfEmpty(a.Declared), tc.wantDecl) || !reflect.DeepEqual(nilIfEmpty(a.Used), tc.wantUsed) ||
				!reflect.DeepEqual(nilIfEmpty(a.Undeclared), tc.wantOutside) || a.State != tc.wantState {
				t.Errorf("DecideAccess = declared %v used %v outside %v state %q\n want declared %v used %v outside %v state %q",
					a.Declared, a.Used, a.Undeclared, a.State, tc.wantDecl, tc.wantUsed, tc.wantOutside, tc.wantState)
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestDecideAccessIdle: idle is a running container that declared GPUs with
// no process on one, and only where a GPU source answered: with NVML up,
// with only the /proc device scan, never with both down.
func TestDecideAccessIdle(t *testing.T) {
	gpus := NewGPUIndex(ledgerGPUs)
	for _, tc := range []struct {
		name     string
		decl     GPUAccess
		used     []GPUProcess
		running  bool
		observed bool
		want     bool
	}{
		{"declared, unused, a source answered", declaring("0"), nil, true, true, true},
		{"declared some GPU, unused", declaring(), nil, true, true, true},
		{"declared, unused, both GPU sources down", declaring("0"), nil, true, false, false},
		{"declared, used", declaring("0"), on("0"), true, true, false},
		{"declared, used outside", declaring("0"), on("1"), true, true, false},
		{"declared, not running", declaring("0"), nil, false, true, false},
		{"nothing declared", GPUAccess{}, nil, true, true, false},
	} {
		if got := DecideAccess(tc.decl, tc.used, tc.running, tc.observed, gpus).Idle; got != tc.want {
			t.Errorf("%s: idle %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNewGPUIndex: UUIDs and device nodes resolve to IDs; a device node
// resolves by minor number; MIG instances have no node of their own.
func TestNewGPUIndex(t *testing.T) {
	idx := NewGPUIndex(ledgerGPUs)
	for name, want := range map[string]string{
		"GPU-aaa": "0", "MIG-eee": "2:2", "/dev/nvidia0": "1", "/dev/nvidia1": "0", "/dev/nvidia2": "2",
		"/dev/nvidia9": "/dev/nvidia9", "3": "3", "GPU-zzz": "GPU-zzz",
	} {
		if got := idx.ID(name); got != want {
			t.Errorf("ID(%q) = %q, want %q", name, got, want)
		}
	}
	if DeviceNode(3) != "/dev/nvidia3" {
		t.Errorf("DeviceNode(3) = %q", DeviceNode(3))
	}
}

// ExampleDecideAccess prints the ledger's verdict on a container that
// declared GPU 0 and runs on GPUs 0 and 1.
func ExampleDecideAccess() {
	gpus := NewGPUIndex(ledgerGPUs)
	a := DecideAccess(declaring("0"), on("0", "1"), true, true, gpus)
	fmt.Println(a.State, strings.Join(a.Undeclared, ","))
	// Output: undeclared 1
}

// TestDecideAccessCapNodes: a MIG capability device declares the instance
// the driver's table names; unresolved, it accuses nothing.
func TestDecideAccessCapNodes(t *testing.T) {
	withCaps := append([]GPUDevice(nil), ledgerGPUs...)
	withCaps[3].CapMinors, withCaps[4].CapMinors = []int{12, 13}, []int{22}
	known := NewGPUIndex(withCaps)
	if a := DecideAccess(declaring(CapNode(13)), on("2:1"), true, true, known); a.State != AccessInUse || !reflect.DeepEqual(a.Declared, []string{"2:1"}) {
		t.Errorf("cap13 on 2:1: %+v, want in use", a)
	}
	if a := DecideAccess(declaring(CapNode(13)), on("2:2"), true, true, known); !reflect.DeepEqual(a.Undeclared, []string{"2:2"}) {
		t.Errorf("cap13 on 2:2: %+v, want 2:2 outside", a)
	}
	if a := DecideAccess(declaring(CapNode(13)), on("2:2"), true, true, NewGPUIndex(ledgerGPUs)); a.State != AccessInUse {
		t.Errorf("cap13 with no table: %+v, want nothing called outside", a)
	}
}
