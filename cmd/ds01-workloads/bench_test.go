package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// bigInventory writes an inventory of n workloads like a busy server's: nine
// containers in ten (every origin and state, GPU processes, the labels
// attribution keeps) and host processes, 100 users, 8 GPUs.
func bigInventory(b *testing.B, n int) string {
	b.Helper()
	now := fixedNow.Add(-20 * time.Second)
	gib := uint64(1 << 30)
	cpu := 93.5
	inv := &inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		Scan:          inventory.ScanInfo{ID: "bench", Time: now, DurationMS: 1500},
		Sources:       map[string]inventory.SourceStatus{inventory.SourceDocker: {OK: true, LastSuccess: &now}, inventory.SourceNVML: {OK: true, LastSuccess: &now}},
	}
	total, used := 80*gib, 60*gib
	for i := range 8 {
		minor := i
		inv.GPUs = append(inv.GPUs, inventory.GPUDevice{ID: fmt.Sprint(i), Index: i, UUID: fmt.Sprintf("GPU-%08d-0000-0000-0000-000000000000", i),
			Name: "NVIDIA H100 80GB HBM3", MinorNumber: &minor, MemoryTotalBytes: &total, MemoryUsedBytes: &used})
	}
	types := []string{inventory.TypeDS01Managed, inventory.TypeDevcontainer, inventory.TypeDockerCompose, inventory.TypeRawDocker, inventory.TypeUnknown}
	states := []string{"running", "running", "running", "exited", "paused"}
	for i := range n * 9 / 10 {
		user := fmt.Sprintf("user%02d", i%100)
		gpu := fmt.Sprint(i % 8)
		c := inventory.Container{
			ID: fmt.Sprintf("%064x", i+1), Name: fmt.Sprintf("%s-train-%d", user, i), Type: types[i%len(types)], Status: states[i%len(states)],
			Image: "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", Command: "python train.py --config configs/run.yaml",
			CreatedAt: now.Add(-time.Duration(i) * time.Minute), DetectedAt: now, LastSeen: now,
			User: user, UserSource: "label:ds01.user", CPUPercent: &cpu, MemoryBytes: &gib,
			Labels:         map[string]string{"ds01.user": user, "com.docker.compose.project": "p", "com.docker.compose.project.working_dir": "/home/" + user + "/p"},
			DetectedLabels: map[string]string{"ds01.detected": "true", "ds01.detected.user": user, "ds01.detected.origin": types[i%len(types)]},
		}
		if i%3 != 0 {
			c.GPU = inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelDeviceRequest}, Devices: []string{gpu}}
		}
		if i%2 == 0 {
			c.GPUProcesses = []inventory.GPUProcess{{PID: 10000 + i, GPU: gpu, MemoryBytes: &gib}}
		}
		inv.Containers = append(inv.Containers, c)
	}
	for i := range n - len(inv.Containers) {
		inv.HostProcesses = append(inv.HostProcesses, inventory.HostProcess{
			PID: 100000 + i, StartTicks: 1, Type: inventory.TypeHostProcess, Command: "python eval.py --split test",
			User: fmt.Sprintf("user%02d", i%100), UserSource: "uid", StartedAt: now.Add(-time.Hour), DetectedAt: now, LastSeen: now,
			GPUs: []string{fmt.Sprint(i % 8)}, GPUMemoryBytes: &gib,
		})
	}
	path := filepath.Join(b.TempDir(), "workload-inventory.json")
	if err := inventory.Save(path, inv); err != nil {
		b.Fatal(err)
	}
	return path
}

var benchModes = []struct {
	name string
	args []string
}{
	{"table", nil},
	{"wide", []string{"--wide"}},
	{"by-user", []string{"--by-user", "--wide"}},
	{"by-gpu", []string{"--by-gpu", "--wide"}},
	{"json", []string{"--json"}},
	{"format", []string{"--format", `{{.ID}}\t{{.User}}\t{{.GPUs}}\t{{.Name}}`}},
}

// BenchmarkRender is the whole command on a 10,000-workload inventory, all
// shown (--all): loading the file, then printing it.
func BenchmarkRender(b *testing.B) {
	path := bigInventory(b, 10000)
	con := console{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, now: func() time.Time { return fixedNow }}
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			args := append([]string{"ds01-workloads", "--inventory", path, "--all"}, m.args...)
			for b.Loop() {
				if code := run(args, con); code != exitOK {
					b.Fatalf("exit %d", code)
				}
			}
		})
	}
}

// BenchmarkCommand is what a user waits for: the built binary, started
// afresh for each run, on a 10,000-workload inventory, its output going to
// /dev/null. Unlike BenchmarkRender it pays for a new process's memory
// and cold caches.
func BenchmarkCommand(b *testing.B) {
	bin := binary(b)
	path := bigInventory(b, 10000)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			args := append([]string{"--inventory", path, "--all"}, m.args...)
			for b.Loop() {
				cmd := exec.Command(bin, args...)
				cmd.Stdout, cmd.Stderr = devNull, devNull
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v: %v", args, err)
				}
			}
		})
	}
}

// BenchmarkRenderLoaded is the printing alone, on an inventory already
// loaded: what this command adds to inventory.Load.
func BenchmarkRenderLoaded(b *testing.B) {
	inv, err := inventory.Load(bigInventory(b, 10000))
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			opts := options{filter: filter{all: true}}
			for _, a := range m.args {
				switch {
				case a == "--wide":
					opts.wide = true
				case a == "--by-user":
					opts.byUser = true
				case a == "--json":
					opts.json = true
				case strings.HasPrefix(a, "{{"):
					if opts.format, err = parseFormat(a); err != nil {
						b.Fatal(err)
					}
				}
			}
			w := bufio.NewWriter(io.Discard)
			for b.Loop() {
				if err := render(w, inv, opts, style{}, fixedNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
