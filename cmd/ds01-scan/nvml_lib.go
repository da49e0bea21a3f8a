//go:build !nvmlmock

package main

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// nvmlLibrary returns the system's NVML. Loading the library happens at
// Init, so a machine without the driver fails there, with a reason.
func nvmlLibrary() (nvml.Interface, error) { return nvml.New(), nil }
