// Package gctune sets up the garbage collector of a command that lives for
// a fraction of a second: ds01-scan's run and ds01-workloads' print.
package gctune

import (
	"os"
	"runtime/debug"
)

// Oneshot leaves garbage uncollected until the heap reaches limit bytes,
// unless GOGC or GOMEMLIMIT in the environment say otherwise. What a short
// run allocates mostly stays live until it ends, so collecting is work for
// nothing, while the limit still bounds a run that meets an unexpectedly
// large input.
func Oneshot(limit int64) { Lazy(-1, limit) }

// Lazy collects when the heap has grown percent % past what the last
// collection kept (the first time at 4 MiB × percent/100; -1: never), and
// more often as it nears limit bytes, unless GOGC or GOMEMLIMIT in the
// environment say otherwise. For a short run whose garbage, unlike
// Oneshot's, cannot all be left: each collection waits the short-lived
// process's goroutines to a stop, while memory never collected costs a
// page fault for every page first touched.
func Lazy(percent int, limit int64) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(percent)
	debug.SetMemoryLimit(limit)
}
