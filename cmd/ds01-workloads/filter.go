package main

import (
	"slices"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// filter selects the workloads to print. Every condition given must hold.
type filter struct {
	// all shows what is hidden by default: stopped containers and system
	// processes.
	all                       bool
	user                      string
	types, launchers, gpus    []string
	gpuOnly, idle, undeclared bool
}

// apply returns the rows the filter keeps, and how many more --all would
// add.
func (f filter) apply(rows []row, gpus inventory.GPUIndex) (kept []row, hidden int) {
	kept = make([]row, 0, len(rows))
	for _, r := range rows {
		switch {
		case !f.matches(r, gpus):
		case !f.all && f.hiddenByDefault(r.w):
			hidden++
		default:
			kept = append(kept, r)
		}
	}
	return kept, hidden
}

// hiddenByDefault is what docker ps hides without -a, plus the system
// processes (nvidia-persistenced, Xorg, DCGM) that are always on a GPU and
// rarely the question. Paused and restarting containers are up, as in
// docker ps; an unknown container is shown whatever its state, since it is
// the one most worth a look.
func (f filter) hiddenByDefault(w *inventory.Workload) bool {
	switch w.Type {
	case inventory.TypeSystem:
		return !slices.Contains(f.types, inventory.TypeSystem)
	case inventory.TypeHostProcess, inventory.TypeUnknown:
		return false
	}
	return !inventory.IsUp(w.Status)
}

func (f filter) matches(r row, gpus inventory.GPUIndex) bool {
	w := r.w
	switch {
	case f.user != "" && w.User != f.user,
		len(f.types) > 0 && !slices.Contains(f.types, w.Type),
		len(f.launchers) > 0 && !slices.Contains(f.launchers, w.Launcher.LauncherName()),
		f.gpuOnly && !w.HasGPU,
		f.idle && !w.GPUIdle,
		f.undeclared && !r.Undeclared():
		return false
	}
	if len(f.gpus) == 0 {
		return true
	}
	for _, held := range w.GPUs {
		for _, want := range f.gpus {
			if inventory.GPUsOverlap(gpus.ID(held), gpus.ID(want)) {
				return true
			}
		}
	}
	return false
}

// devices keeps the ledger's pages of the GPUs --gpu names (all without
// it): a MIG instance's GPU and a GPU's instances count.
func (f filter) devices(ledger []inventory.GPUAccount, gpus inventory.GPUIndex) []inventory.GPUAccount {
	if len(f.gpus) == 0 {
		return ledger
	}
	return slices.DeleteFunc(ledger, func(a inventory.GPUAccount) bool {
		return !slices.ContainsFunc(f.gpus, func(want string) bool { return inventory.GPUsOverlap(gpus.ID(want), a.Device.ID) })
	})
}

// selectsWorkloads reports a filter that picks workloads by who or what
// they are (not by GPU, nor --all).
func (f filter) selectsWorkloads() bool {
	return f.user != "" || len(f.types) > 0 || len(f.launchers) > 0 || f.gpuOnly || f.idle || f.undeclared
}
