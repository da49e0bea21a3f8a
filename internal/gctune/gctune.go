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
func Oneshot(limit int64) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(limit)
}
