//go:build nvmlmock

package main

import (
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/ds01-project/ds01/pkg/detect"
)

// nvmlLibrary, in a binary built with -tags nvmlmock for the integration
// suite, serves go-nvml's mock server described by the file that
// DS01_NVML_MOCK names. Production binaries never contain this.
func nvmlLibrary() (nvml.Interface, error) {
	if path := os.Getenv("DS01_NVML_MOCK"); path != "" {
		return detect.NVMLFromMockFile(path)
	}
	return nvml.New(), nil
}
