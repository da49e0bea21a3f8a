package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startCPUProfile profiles the scan into path (make bench uses it to show
// where a steady scan's time goes).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// startMemProfile records every allocation of the scan (sampled every 4
// KiB) and writes them to path when stop is called: in a process that
// lives a quarter second, memory first touched costs more than the
// collector.
func startMemProfile(path string) (stop func() error) {
	runtime.MemProfileRate = 4096
	return func() error {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("memory profile: %w", err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return fmt.Errorf("memory profile: %w", err)
		}
		return nil
	}
}
