package detect

import (
	"reflect"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

func u64(n uint64) *uint64 { return &n }
func u32(n uint32) *uint32 { return &n }
func ptrInt(n int) *int    { return &n }

func TestMergeGPUUse(t *testing.T) {
	samples := []GPUSample{
		{PID: 10, GPU: "0", Kind: inventory.KindCompute, MemoryBytes: u64(4 << 30), SMUtil: u32(40)},
		// The same allocation in the graphics list: not added twice.
		{PID: 10, GPU: "0", Kind: inventory.KindGraphics, MemoryBytes: u64(4 << 30), SMUtil: u32(70)},
		{PID: 10, GPU: "1:2", Kind: inventory.KindCompute, MemoryBytes: u64(1 << 30)},
		{PID: 11, GPU: "2", Kind: inventory.KindMPS},
		{PID: 0, GPU: "3", Kind: inventory.KindCompute, MemoryBytes: u64(1)},
	}
	holders := map[int][]string{
		10: {"5"},     // NVML's figures win; the device minor is not an index
		12: {"1", ""}, // only the device scan saw it
		14: {"4"},     // a minor no GPU list names: the node, not index 4
		13: {""},      // nvidiactl only: some GPU, unknown which
		-1: {"0"},     // junk
	}
	gpus := inventory.NewGPUIndex([]inventory.GPUDevice{{ID: "3", MinorNumber: ptrInt(1)}, {ID: "3:1", Parent: "3"}})
	got := MergeGPUUse(samples, holders, gpus)
	type row struct {
		pid    int
		gpus   []string
		kinds  []string
		mem    *uint64
		smutil *uint32
	}
	var rows []row
	for _, u := range got {
		rows = append(rows, row{u.PID, u.GPUs(), u.Kinds, u.TotalMemory(), u.SMUtil})
	}
	want := []row{
		{10, []string{"0", "1:2"}, []string{"compute", "graphics"}, u64(5 << 30), u32(70)},
		{11, []string{"2"}, []string{"mps"}, nil, nil},
		{12, []string{"3"}, []string{"device"}, nil, nil},
		{13, []string{}, []string{"device"}, nil, nil},
		{14, []string{"/dev/nvidia4"}, []string{"device"}, nil, nil},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("MergeGPUUse:\n got  %+v\n want %+v", rows, want)
	}
}
