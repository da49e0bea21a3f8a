package inventory_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Another Go tool reads the inventory ds01-scan wrote and lists one user's
// GPU workloads. It needs no Docker socket and no NVML: only this package.
func Example() {
	// ds01-scan writes /var/lib/ds01/workload-inventory.json; here a
	// temporary directory stands in for it.
	dir, err := os.MkdirTemp("", "ds01-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "workload-inventory.json")
	if err := inventory.Save(path, exampleInventory()); err != nil {
		log.Fatal(err)
	}

	inv, err := inventory.Load(path)
	var corrupt *inventory.CorruptError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Fatal("no inventory yet: has ds01-scan run?")
	case errors.As(err, &corrupt):
		log.Fatalf("inventory unreadable: %v", corrupt)
	case err != nil:
		log.Fatal(err)
	}

	if st := inv.Sources[inventory.SourceDocker]; !st.OK {
		fmt.Println("note: docker was unreachable on the last scan; container data is stale")
	}
	for _, w := range inv.Workloads() {
		if w.User != "alice" || !w.HasGPU {
			continue
		}
		idle := ""
		if w.GPUIdle {
			idle = " (idle)"
		}
		fmt.Printf("%-12s %-14s %-8s gpus=%s%s\n", inventory.ShortID(w.ID), w.Type, w.Status, strings.Join(w.GPUs, ","), idle)
	}
	// Output:
	// note: docker was unreachable on the last scan; container data is stale
	// 0a1b2c3d4e5f ds01-managed   running  gpus=0,1
	// 9f8e7d6c5b4a devcontainer   running  gpus=2 (idle)
	// 31337        host-process   running  gpus=3
}

// exampleInventory is what ds01-scan might have written: alice has two GPU
// containers, a container without a GPU and a bare process; bob has one
// container.
func exampleInventory() *inventory.Inventory {
	now := time.Date(2026, 1, 30, 14, 30, 0, 0, time.UTC)
	last := now.Add(-time.Minute)
	mem := uint64(20 << 30)
	id := func(prefix string) string { return prefix + strings.Repeat("0", 64-len(prefix)) }
	return &inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		Scan:          inventory.ScanInfo{ID: "20260130T143000Z-0a1b2c3d", Time: now},
		Sources: map[string]inventory.SourceStatus{
			inventory.SourceDocker: {OK: false, Error: "list containers: context deadline exceeded", LastSuccess: &last},
			inventory.SourceNVML:   {OK: true, LastSuccess: &now},
		},
		Containers: []inventory.Container{
			{
				ID: id("0a1b2c3d4e5f"), Name: "alice-train", Type: inventory.TypeDS01Managed, Status: "running",
				User: "alice", UserSource: "ds01.user", Stale: true,
				GPU:          inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelDeviceRequest}, Devices: []string{"0"}},
				GPUProcesses: []inventory.GPUProcess{{PID: 4100, GPU: "1", MemoryBytes: &mem}},
			},
			{
				ID: id("5555"), Name: "bob-notebook", Type: inventory.TypeRawDocker, Status: "running",
				User: "bob", UserSource: "bind_mount_home", Stale: true,
				GPU: inventory.GPUAccess{Declared: true, Devices: []string{"all"}},
			},
			{
				ID: id("77"), Name: "alice-db", Type: inventory.TypeDockerCompose, Status: "running",
				User: "alice", UserSource: "compose_working_dir", Stale: true,
			},
			{
				ID: id("9f8e7d6c5b4a"), Name: "vsc-alice-proj", Type: inventory.TypeDevcontainer, Status: "running",
				User: "alice", UserSource: "devcontainer_local_folder", Stale: true,
				GPU: inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelCDI}, Devices: []string{"2"}},
			},
		},
		HostProcesses: []inventory.HostProcess{{
			PID: 31337, StartTicks: 123456, Type: inventory.TypeHostProcess, Command: "python eval.py",
			User: "alice", UserSource: "uid", GPUs: []string{"3"}, GPUMemoryBytes: &mem,
		}},
		PendingProcesses: []inventory.HostProcess{{
			PID: 31400, StartTicks: 123999, Type: inventory.TypeHostProcess, Command: "python quick.py",
			User: "alice", UserSource: "uid", GPUs: []string{"3"},
		}},
	}
}
