//go:build !gpu

// Not in the -tags gpu binary: the C calls go-nvml makes are bound to the
// first libnvidia-ml.so.1 that answers them, for the life of the process,
// so the stand-in and the real library cannot share one test binary.

package detect

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// buildStandInNVML compiles testdata/nvml-standin/nvml.c into a
// libnvidia-ml.so.1 against go-nvml's own nvml.h. Without a C compiler or
// the header the test cannot run: a failure when CI=true, a skip otherwise.
func buildStandInNVML(t *testing.T) string {
	t.Helper()
	cannot := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot build the stand-in NVML library: "+format, args...)
		}
		t.Skipf("SKIPPED, the cgo path of NVML is untested here (CI=true makes this a failure): cannot build the stand-in NVML library: "+format, args...)
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		cannot("no C compiler: %v", err)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/NVIDIA/go-nvml").Output()
	if err != nil {
		cannot("find go-nvml's module directory: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		cannot("go-nvml is not in a module cache this user can read")
	}
	include := filepath.Join(dir, "pkg", "nvml")
	if _, err := os.Stat(filepath.Join(include, "nvml.h")); err != nil {
		cannot("go-nvml's header: %v", err)
	}
	lib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wno-deprecated-declarations",
		"-I", include, "-o", lib, filepath.Join("testdata", "nvml-standin", "nvml.c"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return lib
}

// TestObserveThroughCgo reads the stand-in library through go-nvml as
// production does: its dlopen, its choice of the _v3 process-list symbols,
// its buffers written by C. GPU 0 writes driver 535.54's 32-byte entries,
// GPU 1 40-byte ones no driver has, GPU 2 the 24-byte ones go-nvml reads
// (see the C file).
func TestObserveThroughCgo(t *testing.T) {
	lib := buildStandInNVML(t)
	obs, err := NewNVML(nvml.New(nvml.WithLibraryPath(lib)), nil).Observe(nil)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if len(obs.GPUs) != 3 {
		t.Fatalf("GPUs %+v; want the stand-in's 3", obs.GPUs)
	}
	compute := func(gpu string, pidMem ...uint64) []GPUSample {
		var out []GPUSample
		for i := 0; i < len(pidMem); i += 2 {
			out = append(out, GPUSample{
				PID: int(pidMem[i]), GPU: gpu, GPUUUID: "GPU-00000000-0000-4000-8000-00000000000" + gpu,
				Kind: inventory.KindCompute, MemoryBytes: nvmlU64(pidMem[i+1]),
			})
		}
		return out
	}
	samplesOn := func(gpu string) []GPUSample {
		var out []GPUSample
		for _, s := range obs.Samples {
			if s.GPU == gpu {
				out = append(out, s)
			}
		}
		return out
	}

	t.Run("32-byte entries of driver 535.54 are read at their stride", func(t *testing.T) {
		want := compute("0", 4101, 2*nvmlGiB, 4102, 512<<20, 4103, 5*nvmlGiB+4096)
		if got := samplesOn("0"); !reflect.DeepEqual(got, want) {
			t.Errorf("samples:\n got %s\nwant %s", fmtGPUSamples(got), fmtGPUSamples(want))
		}
		if g := findNVMLGPU(t, obs, "0"); g.Error != "" || g.UnknownProcesses != 0 {
			t.Errorf("GPU 0 error %q, unknown processes %d; want none", g.Error, g.UnknownProcesses)
		}
	})
	t.Run("entries in no layout are dropped and said to be", func(t *testing.T) {
		if got := samplesOn("1"); len(got) != 0 {
			t.Errorf("samples %s; want none", fmtGPUSamples(got))
		}
		g := findNVMLGPU(t, obs, "1")
		if !strings.Contains(g.Error, "compute process list not believed: its 3 entries fit neither the 24-byte layout") ||
			g.UnknownProcesses != 3 {
			t.Errorf("GPU 1 error %q, unknown processes %d; want the list not believed, 3 unknown", g.Error, g.UnknownProcesses)
		}
		if len(obs.Warnings) != 1 || !strings.HasPrefix(obs.Warnings[0], "GPU 1: compute process list not believed") {
			t.Errorf("warnings %q; want one, GPU 1's", obs.Warnings)
		}
	})
	t.Run("24-byte entries are read as they are", func(t *testing.T) {
		want := compute("2", 4301, nvmlGiB, 4302, 2*nvmlGiB, 4303, 3*nvmlGiB)
		if got := samplesOn("2"); !reflect.DeepEqual(got, want) {
			t.Errorf("samples:\n got %s\nwant %s", fmtGPUSamples(got), fmtGPUSamples(want))
		}
	})
}
