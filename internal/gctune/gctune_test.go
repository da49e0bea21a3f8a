package gctune

import (
	"math"
	"runtime/debug"
	"testing"
)

// restore puts the collector back as it was when the test began.
func restore(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func TestOneshotTurnsCollectionOff(t *testing.T) {
	restore(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	Oneshot(64 << 20)
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("GC percent after Oneshot = %d; want -1 (off)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Errorf("memory limit after Oneshot = %d; want %d", got, 64<<20)
	}
}

func TestOneshotLeavesTheEnvironmentsChoice(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			restore(t)
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(env, "50")
			debug.SetGCPercent(77)
			Oneshot(64 << 20)
			if got := debug.SetGCPercent(100); got != 77 {
				t.Errorf("GC percent with %s set = %d; want it untouched (77)", env, got)
			}
		})
	}
}

func TestLazySetsPercentAndLimit(t *testing.T) {
	restore(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	Lazy(400, 256<<20)
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent after Lazy = %d; want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Errorf("memory limit after Lazy = %d; want %d", got, 256<<20)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(77)
	Lazy(400, 256<<20)
	if got := debug.SetGCPercent(100); got != 77 {
		t.Errorf("GC percent with GOMEMLIMIT set = %d; want it untouched (77)", got)
	}
}
