package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// The four help tiers: --help (this template) is usage, flags and examples;
// --info the full reference; --concepts how to read the output; --guided an
// interactive walk-through (guided.go).
const helpTemplate = `{{.Name}}: {{.Usage}}

Usage: {{.UsageText}}

Flags:{{range .VisibleFlags}}
   {{.}}{{end}}

Examples:
   ds01-workloads                          running workloads: TYPE USER GPU(S) STATUS AGE NAME
   ds01-workloads --gpu 0                  who is on GPU 0
   ds01-workloads --by-gpu                 each GPU: its memory, who is on it, which are free
   ds01-workloads --by-user --gpu-only     GPU use per user, with GPU memory
   ds01-workloads --all --wide             stopped and system workloads too, with ID, IMAGE, CPU%, MEM
   ds01-workloads --json | jq '.workloads[] | select(.gpu_idle)'

More: --info is the full reference, --concepts explains how to read the output,
--guided walks you through it.
`

// doc is one documented name.
type doc struct{ name, text string }

// typeDocs describe every workload type, in inventory.Types order.
var typeDocs = []doc{
	{inventory.TypeDS01Managed, "made by the lab's ds01 tooling: label ds01.managed=true"},
	{inventory.TypeDevcontainer, "a VS Code devcontainer: a devcontainer.* label, or a name starting vsc-"},
	{inventory.TypeDockerCompose, "a docker-compose service: label com.docker.compose.project"},
	{inventory.TypeRawDocker, "any other Docker container: plain docker run"},
	{inventory.TypeUnknown, "a container Docker could not inspect, or one seen only through a GPU process's cgroup (podman, containerd, Kubernetes)"},
	{inventory.TypeHostProcess, "a GPU process outside any container"},
	{inventory.TypeSystem, "nvidia-persistenced, DCGM, Xorg, gdm and the like; hidden unless --all or --type system"},
}

// launcherDocs describe every launcher, in inventory.Launchers order:
// how it is told and what names it there.
var launcherDocs = []doc{
	{inventory.LauncherDocker, "a Docker engine's container (the system engine, or a user's rootless one: via its socket)"},
	{inventory.LauncherPodman, "a Podman container, seen through its cgroup"},
	{inventory.LauncherContainerd, "a containerd or nerdctl container, seen through its cgroup"},
	{inventory.LauncherKubernetes, "a pod's container (kubepods cgroup, or the kubelet's labels): pod UID"},
	{inventory.LauncherSlurm, "a Slurm job step: job and step, from its cgroup or slurmstepd above it"},
	{inventory.LauncherApptainer, "an Apptainer/Singularity job (its runtime parent above it): the image path, an instance's name, the Slurm job it runs in"},
	{inventory.LauncherNspawn, "a systemd-nspawn container: machine name"},
	{inventory.LauncherLXC, "an LXC/Incus container (lxc.payload.<name>): machine name"},
	{inventory.LauncherJupyterHub, "a JupyterHub single-user server or its kernel: the spawner's unit"},
	{inventory.LauncherSSH, "a process of an ssh login: its session scope"},
	{inventory.LauncherSession, "a process of another login session, or of the user's own systemd manager (tmux, systemd-run --user): its unit"},
	{inventory.LauncherSystemd, "a system service: its unit"},
}

// gpuNotation explains what GPU(S) can show.
var gpuNotation = []doc{
	{"0,1", "GPU indices"},
	{"2:1", "MIG instance 1 of GPU 2"},
	{"all", "every GPU (--gpus all, --privileged, NVIDIA_VISIBLE_DEVICES=all)"},
	{"GPU-…, MIG-…", "a GPU UUID, where the scan could not tell the index"},
	{"?", "GPU access declared, to which GPU unknown"},
	{"-", "no GPU"},
	{"(idle)", "a running container declared GPUs and none of its processes is on one"},
	{"(undeclared)", "a container uses a GPU and declared none"},
	{"(undeclared: 1)", "a container uses GPU 1 beyond the GPUs it declared"},
}

// The --json contract, in the order the fields are written.
var (
	jsonTopFields = []doc{
		{"schema_version", "the version of this document's format: 1"},
		{"last_scan", "when the last scan ran, RFC 3339 UTC; null if never"},
		{"sources", "object: source name (docker, nvml, procfs) → how it fared at the last scan"},
		{"gpus", "array: the GPU ledger, a page per GPU and MIG instance (those --gpu names)"},
		{"workloads", "array: the workloads the filters keep, newest first"},
	}
	jsonSourceFields = []doc{
		{"ok", "true when the source answered at the last scan"},
		{"error", "why it did not; null when ok"},
		{"last_success", "when it last answered, RFC 3339 UTC; null if never"},
		{"warning", "what it answered without being able to see, and why; null when it saw everything"},
	}
	jsonGPUFields = []doc{
		{"id", `the GPU's ID: "0", or "2:1" for a MIG instance`},
		{"uuid", "GPU-… or MIG-…"},
		{"name", "the product name NVML gives"},
		{"parent", "the GPU a MIG instance belongs to; null for a GPU"},
		{"minor_number", "N of its /dev/nvidiaN, which need not be its index; null for a MIG instance or when unknown"},
		{"lost", "the GPU answered GPU_IS_LOST or RESET_REQUIRED"},
		{"memory_total_bytes", "its memory; null if unknown"},
		{"memory_used_bytes", "memory in use; null if unknown"},
		{"memory_reserved_bytes", "what the driver reserves for itself, counted in used; null where the driver cannot say"},
		{"memory_attributed_bytes", "what the processes NVML lists on it hold; null if one has no figure or NVML was down"},
		{"memory_unattributed_bytes", "used, less reserved, minus attributed: memory held by no visible process; null where either is unknown"},
		{"memory_unattributed_flagged", "unattributed memory above --unattributed-threshold (see --concepts)"},
		{"persistence_mode", "the driver's persistence mode; null where it cannot say (MIG instances)"},
		{"declared_by", "array: IDs of the workloads up and declaring it (all its workloads, whatever the filters)"},
		{"used_by", "array: IDs of the workloads with a process on it"},
	}
	jsonWorkloadFields = []doc{
		{"type", "workload type (see TYPES)"},
		{"id", "the full container ID, or the PID of a process, as a string"},
		{"name", "container name, or the process's command line"},
		{"user", "user name, uid:<n>, root or unknown"},
		{"user_source", "the signal that named the user (see --concepts)"},
		{"status", "Docker's state; running for a process"},
		{"image", "the container's image; empty for a process"},
		{"command", "the command line"},
		{"created_at", "container creation or process start, RFC 3339; null if unknown"},
		{"detected_at", "when ds01-scan first saw the workload"},
		{"has_gpu", "declared or uses a GPU"},
		{"gpu_declared", "the container declared GPU access"},
		{"gpu_observed", "a process of the workload is on a GPU"},
		{"gpu_idle", "a running container declared GPUs and none of its processes is on one"},
		{"gpus", `array of the GPUs declared or used, as in the table: "0", "1:2" (MIG), "all", or a UUID or device node (/dev/nvidia3) no GPU of the machine resolves`},
		{"gpu_access", "a container's GPU access: none, declared, in-use or undeclared (used outside what it declared); empty for a process"},
		{"gpus_declared", "array: the GPUs a container declared, resolved to IDs where the GPU list can"},
		{"gpus_used", "array: the GPUs the workload's processes are on"},
		{"gpus_undeclared", "array: the GPUs a container uses outside what it declared (all it uses when it declared none)"},
		{"gpu_memory_bytes", "GPU memory in use; null if unknown"},
		{"cpu_percent", "CPU use at the last scan, 100 = one core; null if unknown"},
		{"memory_bytes", "memory use at the last scan; null if unknown"},
		{"stale", "from an earlier scan, because its source was down at the last one"},
		{"detected_labels", "object: the ds01.detected.* labels for the docker wrapper to apply; {} if none"},
		{"launcher", "object: what started it (see LAUNCHERS): name, and where they apply job, step, image, machine, pod, unit, engine; null where nothing can tell"},
	}
)

// writeInfo prints --info, the full reference. The flags, columns, types
// and JSON fields are listed from the same definitions the code uses.
func writeInfo(w io.Writer, flags []cli.Flag, path string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	list := func(docs []doc) {
		for _, d := range docs {
			p("   %s\t%s\n", d.name, d.text)
		}
	}

	p("ds01-workloads: the full reference\n\n")
	p("SYNOPSIS\n")
	p("   ds01-workloads [filters] [--wide] [--by-user | --by-gpu] [--json | --format TEMPLATE | --quiet]\n\n")
	p("   It reads one file, the inventory ds01-scan writes every 30 s, and nothing else: no Docker\n")
	p("   socket, no NVML, no root. Data goes to stdout; warnings and errors to stderr.\n\n")

	p("FLAGS\n")
	for _, f := range flags {
		p("   %s\n", f)
	}

	p("\nOUTPUT\n")
	list([]doc{
		{"(default)", "a table, newest first: " + headerList(defaultColumns) + ", then a footer: counts, and when the last scan ran"},
		{"--wide", "the same rows with " + headerList(wideColumns)},
		{"--by-user", "a heading per user (sorted, unknown last) with the user's workloads, GPUs and GPU memory; works with --wide"},
		{"--by-gpu", "a heading per GPU and MIG instance (name, UUID, memory used, memory held by no visible process) with the workloads that declare or use it, then a line per free GPU; works with --wide, --gpu, --user and --all"},
		{"--json", "one JSON document (see JSON), indented on a terminal and compact in a pipe; nothing else on stdout"},
		{"--format T", "a Go template per workload (see TEMPLATES); 'table T' adds a header row and aligns columns"},
		{"--quiet", "IDs only: container IDs (12 characters) and PIDs"},
	})
	p("   Colour only on a terminal, never with NO_COLOR set or TERM=dumb. NAME is cut to the width of\n")
	p("   the terminal, else $COLUMNS; piped output is never cut.\n")

	p("\nCOLUMNS\n")
	for _, c := range allColumns {
		p("   %s\t%s\t%s\n", c.header, "{{."+c.field+"}}", c.doc)
	}

	p("\nGPU(S)\n")
	list(gpuNotation)

	p("\nTYPES\n")
	list(typeDocs)

	p("\nLAUNCHERS\n")
	p("   LAUNCHER (--wide; launcher in JSON) is what started the workload, beside its TYPE; - where\n")
	p("   nothing can tell:\n")
	list(launcherDocs)

	p("\nFILTERS\n")
	p("   Without --all, stopped containers (created, exited, dead, removing) and system processes are\n")
	p("   hidden: running, paused and restarting containers, host GPU processes and unknown containers\n")
	p("   show. --type system shows system processes too. The footer counts what --all would add.\n")
	p("   Filters combine with AND:\n")
	list([]doc{
		{"--user NAME", "that user exactly: alice, root, uid:1234, unknown"},
		{"--type TYPE", "any of the types given; an unknown type is a usage error"},
		{"--launcher NAME", "started by any of the launchers given (see LAUNCHERS); an unknown one is a usage error"},
		{"--gpu ID", "holds or uses that GPU: an index also matches its MIG instances, and 'all' matches every GPU"},
		{"--gpu-only", "declared or uses a GPU"},
		{"--idle", "GPU(S) says (idle)"},
		{"--undeclared", "GPU(S) says (undeclared)"},
	})

	p("\nTEMPLATES\n")
	p("   --format takes a Go text/template, as docker ps --format does; \\t and \\n are a tab and a\n")
	p("   newline. The fields are the COLUMNS above, made safe for a terminal, and these conditions:\n")
	for _, c := range conditions {
		p("   {{.%s}}\t%s\n", c.field, c.doc)
	}
	p("   Function: {{truncate .Name 30}} cuts text to 30 columns.\n")
	p("   Example: --format 'table {{.User}}\\t{{.GPUs}}\\t{{if .Idle}}idle{{end}}'\n")

	p("\nINVENTORY\n")
	p("   --inventory PATH, else $DS01_INVENTORY, else %s.\n", defaultInventory)
	p("   Now: %s\n", inventory.SafeText(path))

	p("\nJSON\n")
	list(jsonTopFields)
	p("   Each source:\n")
	list(jsonSourceFields)
	p("   Each GPU:\n")
	list(jsonGPUFields)
	p("   Each workload:\n")
	list(jsonWorkloadFields)
	p("   An absent fact is null, never zero. Strings are exactly as in the inventory.\n")

	p("\nWARNINGS AND EXIT STATUS\n")
	p("   A warning on stderr when the last scan is more than %s old (three timer periods), and one for\n", staleAfter)
	p("   each source that was down at the last scan or answered with a blind spot. Exit status: 0 printed;\n")
	p("   1 the inventory is missing, unreadable or corrupt; 2 usage error.\n")
	return tw.Flush()
}

// headerList names columns as the table heads them.
func headerList(cols []column) string {
	h := make([]string, len(cols))
	for i, c := range cols {
		h[i] = c.header
	}
	return strings.Join(h, " ")
}

// conceptsText is --concepts, up to what this machine's inventory says.
const conceptsText = `ds01-workloads: how to read it

WHAT IT IS FOR
   A shared GPU server runs workloads started every way there is: containers made by the
   lab's ds01 tooling, docker-compose stacks, VS Code devcontainers, plain docker run, other
   container runtimes, and bare Python processes started over ssh. ds01-scan (root, every
   30 s from a systemd timer) observes Docker, the GPUs and /proc, works out who each
   workload belongs to, and writes the inventory. ds01-workloads reads that one file and
   answers: who is using which GPU, from what, since when. It never asks Docker or the GPUs
   itself, so it needs no privileges, and it is exactly as fresh as the last scan.

WORKLOAD TYPES AND ORIGINS
   A container's type is how it was made; the first rule that matches wins:
     ds01-managed     label ds01.managed=true: the lab's own tooling
     devcontainer     a devcontainer.* label, or a name starting vsc-
     docker-compose   label com.docker.compose.project
     raw-docker       any other Docker container
     unknown          Docker could not inspect it, or it was seen only through a GPU
                      process's cgroup: another runtime (podman, containerd, Kubernetes).
                      Always shown: it is where blind spots hide.
   And processes:
     host-process     a GPU process outside any container
     system           nvidia-persistenced, DCGM, Xorg, gdm: recorded, hidden unless asked for

DECLARED AND OBSERVED GPU ACCESS
   Two separate facts, both kept.
   Declared is what a container was granted when it was created: --gpus, the nvidia runtime
   with NVIDIA_VISIBLE_DEVICES, CDI names (nvidia.com/gpu=…), --device /dev/nvidia*, a bind
   mount of /dev/nvidia*, --privileged, or the lab allocator's ds01.gpu.* labels. GPU(S)
   shows which GPUs, or ? where access was declared but the GPU cannot be told.
   Observed is what NVML (or an open /dev/nvidia* file) shows: processes of the workload on
   a GPU, and the GPU memory they use. GPU(S) shows both, and says where they differ:
     (idle)           a running container declared GPUs and none of its processes is on
                      one: it holds GPUs nobody uses. Claimed only when a GPU source
                      answered at the last scan. Find them: ds01-workloads --idle
     (undeclared)     a container uses a GPU and declared none: it reached the GPU in a
                      way ds01 did not see granted. This is the blind spot the layer
                      exists to close: find out how it was started (--undeclared).
     (undeclared: 1)  it uses GPU 1 beyond the GPUs it declared.
   A host process declares nothing: it is on the GPUs it uses. /dev/nvidiaN is the GPU whose
   minor number is N, which need not be GPU N; where no GPU list says which GPU that is,
   GPU(S) shows /dev/nvidiaN itself. Every output (table, filters, JSON, events, metrics)
   takes these verdicts from one place, the GPU ledger.

UNATTRIBUTED MEMORY
   For each GPU the ledger adds up the memory of the processes NVML lists on it and compares
   it with what the GPU says is used. Memory held by no visible process, above
   --unattributed-threshold (1GiB: more than the driver and ECC reserve on an idle GPU), is
   flagged: a warning under the table, the GPU's heading in --by-gpu, and
   memory_unattributed_flagged in JSON. What usually holds it:
     a killed job's leaked context   the process is gone but the driver did not free it;
                                     a GPU reset (nvidia-smi -r) or reboot reclaims it
     another PID namespace           a process NVML cannot name from the host
     MPS                             clients behind an MPS server (nvidia-cuda-mps-server)
   Find the holder: sudo fuser -v /dev/nvidia*  (or lsof /dev/nvidia*), and nvidia-smi.

WHO: ATTRIBUTION AND USER SOURCE
   USER is the first signal that names a real user; USER SOURCE (--wide; user_source in
   JSON) says which, so that you can judge it. For containers, in the order tried:
     label:ds01.user, label:ds01.detected.user, label:aime.mlc.USER
                                    a label on the container
     devcontainer_folder_owner      owner of the devcontainer's local folder
     devcontainer_folder_home_path  the /home/<user>/ in that folder's path
     compose_working_dir_owner      owner of the compose project's directory
     bind_mount_home_owner          owner of a home directory mounted into it
     container_config_user          the container's configured user, when not root
     container_process_uid          the host uid its processes run as
     subuid_owner                   that uid is in a user's subordinate range (/etc/subuid):
                                    a rootless container's user, mapped to its owner
     rootless_engine_owner          a container of that user's own (rootless) Docker engine
     none                           no signal named anyone: the user is unknown
     detect-workloads               the lab's earlier scanner named it, and ds01 names no one
   Labels are whatever the container's creator wrote; the signals further down are read
   from the host. For a host process: its uid, and for root its login uid (which survives
   sudo), then its user-<uid>.slice cgroup. root counts only when nothing else is known; a
   uid without a name shows as uid:<n>.

STALENESS
   The data is as fresh as the last scan; the footer says when it ran. When that was more
   than 90 s ago (three timer periods) a warning says the data is stale: see
   systemctl status ds01-scan.timer. A source that was down at the last scan (docker, nvml,
   procfs) is named in a warning; its workloads keep the data it last gave, marked (stale)
   in STATUS and "stale": true in JSON, rather than vanishing.

GPU USE BETWEEN TWO SCANS
   A process that starts and ends between two scans is in no process list. With a GPU's
   accounting mode on (as root: nvidia-smi -am 1), NVML keeps a record of it, and the next
   scan logs it as a detection.gpu_process_brief event. Where it is off, a warning of the
   nvml source names the GPU.

WHY A SCAN CAN BE SLOW
   Every scan initialises NVML. With persistence mode off, the driver tears a GPU down
   whenever no process holds it and sets it up again at the next call, which can take
   seconds per GPU and push a scan past its 20 s budget. nvidia-persistenced (or
   nvidia-smi -pm 1) keeps the GPUs initialised.
`

// writeConcepts prints --concepts and what the inventory at path says of
// this machine's GPUs. An inventory that cannot be read is mentioned, not an
// error: the concepts hold without it.
func writeConcepts(w io.Writer, path string) error {
	if _, err := io.WriteString(w, conceptsText); err != nil {
		return err
	}
	inv, err := loadInventory(path)
	if err != nil {
		_, err = fmt.Fprintf(w, "   This machine: %s\n", inventory.SafeText(err.Error()))
		return err
	}
	_, err = fmt.Fprintf(w, "   This machine: %s The last scan took %d ms.\n", persistence(inv.GPUs), inv.Scan.DurationMS)
	return err
}

// persistence says which GPUs had persistence mode off at the last scan.
// MIG instances have no mode of their own.
func persistence(gpus []inventory.GPUDevice) string {
	var off, unknown []string
	whole := 0
	for _, g := range gpus {
		if g.Parent != "" {
			continue
		}
		whole++
		switch {
		case g.PersistenceMode == nil:
			unknown = append(unknown, inventory.SafeText(g.ID))
		case !*g.PersistenceMode:
			off = append(off, inventory.SafeText(g.ID))
		}
	}
	var s string
	switch {
	case whole == 0:
		return "the inventory lists no GPUs (NVML has not answered a scan), so their persistence mode is unknown."
	case len(unknown) == whole:
		return "the driver did not report persistence mode for any GPU."
	case len(off) == 1:
		s = "persistence mode is off on GPU " + off[0] + "."
	case len(off) > 1:
		s = "persistence mode is off on GPUs " + strings.Join(off, ", ") + "."
	default:
		s = "persistence mode is on for every GPU that reported it."
	}
	if len(unknown) > 0 {
		s += " The driver did not report it for " + strings.Join(unknown, ", ") + "."
	}
	return s
}
