// Package detect holds the sources ds01-scan observes (the Docker engine,
// NVML, procfs, cgroups) and the pure rules that turn their raw facts into
// facts about workloads: origin classification, declared GPU access and
// process-to-container mapping.
package detect
