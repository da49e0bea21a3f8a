package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// row is one workload as the tables and --format templates see it, docker's
// "row context": one method per column. Every string method returns text
// made safe for a terminal, and a template reaches nothing but the methods,
// so no template can print a raw string from the inventory.
type row struct {
	w   *inventory.Workload
	now time.Time
}

// newRows makes the rows of an inventory's workloads, newest first as
// docker ps lists them; a workload whose start is unknown comes last.
func newRows(ws []inventory.Workload, now time.Time) []row {
	rows := make([]row, len(ws))
	for i := range ws {
		rows[i] = row{w: &ws[i], now: now}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		switch ta, tb := a.w.CreatedAt, b.w.CreatedAt; {
		case ta == nil && tb == nil:
			return 0
		case ta == nil:
			return 1
		case tb == nil:
			return -1
		default:
			return tb.Compare(*ta)
		}
	})
	return rows
}

// Table headers.
const (
	idHeader         = "ID"
	fullIDHeader     = "FULL ID"
	typeHeader       = "TYPE"
	userHeader       = "USER"
	userSourceHeader = "USER SOURCE"
	launcherHeader   = "LAUNCHER"
	gpusHeader       = "GPU(S)"
	gpuMemHeader     = "GPU MEM"
	statusHeader     = "STATUS"
	ageHeader        = "AGE"
	createdHeader    = "CREATED"
	imageHeader      = "IMAGE"
	cpuHeader        = "CPU%"
	memHeader        = "MEM"
	nameHeader       = "NAME"
	commandHeader    = "COMMAND"
	hasGPUHeader     = "HAS GPU"
	idleHeader       = "IDLE"
	undeclaredHeader = "UNDECLARED"
	staleHeader      = "STALE"
)

// SGR colour codes for a colour terminal.
const (
	sgrBold   = "1"
	sgrDim    = "2"
	sgrRed    = "31"
	sgrYellow = "33"
)

// column is one text field of the row context: its template name, its
// header, its value, its colour and what --info says of it.
type column struct {
	field  string
	header string
	value  func(row) string
	// paint returns the SGR code for the cell on a colour terminal, or "".
	paint func(row) string
	doc   string
}

// The columns, in the order --info lists them.
var (
	idColumn         = column{"ID", idHeader, row.ID, nil, "container ID (12 characters), or the PID of a process"}
	fullIDColumn     = column{"FullID", fullIDHeader, row.FullID, nil, "full container ID (64 hex digits), or the PID"}
	typeColumn       = column{"Type", typeHeader, row.Type, nil, "workload type (see TYPES)"}
	userColumn       = column{"User", userHeader, row.User, nil, "who the workload belongs to: a user name, uid:<n>, root or unknown"}
	userSourceColumn = column{"UserSource", userSourceHeader, row.UserSource, nil, "the signal that named the user (see --concepts)"}
	launcherColumn   = column{"Launcher", launcherHeader, row.Launcher, nil, "what started it, with what names it there: slurm job 42.0, lxc web, apptainer IMAGE (see LAUNCHERS)"}
	gpusColumn       = column{"GPUs", gpusHeader, row.GPUs, paintGPUs, "GPUs held or used, with (idle) or (undeclared) (see GPU(S))"}
	gpuMemColumn     = column{"GPUMem", gpuMemHeader, row.GPUMem, nil, "GPU memory in use; - when unknown"}
	statusColumn     = column{"Status", statusHeader, row.Status, paintStatus, "Docker's state (running, paused, exited, …); running for a process; (stale) when its source was down"}
	ageColumn        = column{"Age", ageHeader, row.Age, nil, "time since the container was created or the process started: 45s, 3m, 2h, 5d"}
	createdColumn    = column{"Created", createdHeader, row.Created, nil, "when the container was created or the process started, RFC 3339 UTC"}
	imageColumn      = column{"Image", imageHeader, row.Image, nil, "the container's image; - for a process"}
	cpuColumn        = column{"CPU", cpuHeader, row.CPU, nil, "CPU use at the last scan, 100 = one core"}
	memColumn        = column{"Mem", memHeader, row.Mem, nil, "memory use at the last scan"}
	nameColumn       = column{"Name", nameHeader, row.Name, nil, "container name, or the process's command line; cut to the terminal width"}
	commandColumn    = column{"Command", commandHeader, row.Command, nil, "the container's command, or the process's command line"}

	allColumns = []column{
		idColumn, fullIDColumn, typeColumn, userColumn, userSourceColumn, launcherColumn, gpusColumn, gpuMemColumn,
		statusColumn, ageColumn, createdColumn, imageColumn, cpuColumn, memColumn, nameColumn, commandColumn,
	}
	defaultColumns = []column{typeColumn, userColumn, gpusColumn, statusColumn, ageColumn, nameColumn}
	// wideColumns are the default ones with ID first, as in docker ps, and
	// the rest before NAME, which stays last so that it is the one cut.
	wideColumns = []column{
		idColumn, typeColumn, userColumn, gpusColumn, statusColumn, ageColumn,
		imageColumn, cpuColumn, memColumn, gpuMemColumn, userSourceColumn, launcherColumn, nameColumn,
	}
)

// condition is a true/false field of the row context, for {{if}} in
// templates.
type condition struct {
	field, header, doc string
}

var conditions = []condition{
	{"HasGPU", hasGPUHeader, "the workload declared or uses a GPU"},
	{"Idle", idleHeader, "a running container declared GPUs and none of its processes is on one"},
	{"Undeclared", undeclaredHeader, "a container uses a GPU it did not declare"},
	{"Stale", staleHeader, "its source was down at the last scan: this is the data it last gave"},
}

// safe makes s fit for a cell: safe for a terminal, and "-" when empty so
// that columns stay aligned.
func safe(s string) string {
	if s == "" {
		return "-"
	}
	return inventory.SafeText(s)
}

// ID is the container ID cut to 12 characters, or the PID.
func (r row) ID() string {
	if inventory.IsProcessType(r.w.Type) {
		return safe(r.w.ID)
	}
	return safe(inventory.ShortID(r.w.ID))
}

// FullID is the full container ID, or the PID.
func (r row) FullID() string { return safe(r.w.ID) }

// Type is the workload type.
func (r row) Type() string { return safe(r.w.Type) }

// User is who the workload belongs to.
func (r row) User() string { return safe(r.w.User) }

// UserSource is the signal that named the user.
func (r row) UserSource() string { return safe(r.w.UserSource) }

// Launcher is what started the workload, in one phrase.
func (r row) Launcher() string { return safe(r.w.Launcher.String()) }

// GPUs lists the GPUs held or used, and marks use that differs from what
// was declared.
func (r row) GPUs() string {
	var s string
	switch {
	case len(r.w.GPUs) > 0:
		s = safe(strings.Join(r.w.GPUs, ","))
	case r.w.GPUDeclared:
		s = "?" // access declared, to which GPU unknown
	default:
		return "-"
	}
	switch {
	case r.Undeclared() && r.w.GPUDeclared:
		s += " (undeclared: " + safe(strings.Join(r.w.GPUsUndeclared, ",")) + ")"
	case r.Undeclared():
		s += " (undeclared)"
	case r.w.GPUIdle:
		s += " (idle)"
	}
	return s
}

func paintGPUs(r row) string {
	switch {
	case r.Undeclared():
		return sgrRed
	case r.w.GPUIdle:
		return sgrYellow
	}
	return ""
}

// GPUMem is the GPU memory in use.
func (r row) GPUMem() string { return bytesText(r.w.GPUMemoryBytes) }

// Status is the container's state, "running" for a process.
func (r row) Status() string {
	if r.w.Stale {
		return safe(r.w.Status) + " (stale)"
	}
	return safe(r.w.Status)
}

func paintStatus(r row) string {
	switch {
	case r.w.Stale:
		return sgrYellow
	case r.w.Status != "running":
		return sgrDim
	}
	return ""
}

// Age is the time since creation or start, as docker prints it.
func (r row) Age() string {
	if r.w.CreatedAt == nil {
		return "-"
	}
	return age(r.now.Sub(*r.w.CreatedAt))
}

// Created is the creation or start time, RFC 3339 UTC.
func (r row) Created() string {
	if r.w.CreatedAt == nil {
		return "-"
	}
	return r.w.CreatedAt.UTC().Format(time.RFC3339)
}

// Image is the container's image.
func (r row) Image() string { return safe(r.w.Image) }

// CPU is the CPU use in percent of one core.
func (r row) CPU() string {
	if r.w.CPUPercent == nil {
		return "-"
	}
	return strconv.FormatFloat(*r.w.CPUPercent, 'f', 1, 64)
}

// Mem is the memory use.
func (r row) Mem() string { return bytesText(r.w.MemoryBytes) }

// Name is the container name or the process's command line.
func (r row) Name() string { return safe(r.w.Name) }

// Command is the command line.
func (r row) Command() string { return safe(r.w.Command) }

// HasGPU reports whether the workload declared or uses a GPU.
func (r row) HasGPU() bool { return r.w.HasGPU }

// Idle reports a running container that declared GPUs and uses none.
func (r row) Idle() bool { return r.w.GPUIdle }

// Undeclared reports a container using a GPU it did not declare: with no
// declared access at all, or on a GPU outside the declared ones, as the
// GPU ledger decided.
func (r row) Undeclared() bool { return r.w.GPUAccess == inventory.AccessUndeclared }

// Stale reports data left from an earlier scan because its source was down.
func (r row) Stale() bool { return r.w.Stale }

// age renders a duration the way docker does: 45s, 3m, 2h, 5d. Hours run to
// 48 before days take over, as in docker's units.HumanDuration. A negative
// duration (a clock skewed between scanner and reader) is 0s.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// byteUnits are the binary units sizes are written in, from KiB up.
var byteUnits = []string{"KiB", "MiB", "GiB", "TiB", "PiB"}

// bytesText renders a size in binary units with one decimal: 512B, 1.5GiB.
func bytesText(b *uint64) string {
	if b == nil {
		return "-"
	}
	if *b < 1024 {
		return strconv.FormatUint(*b, 10) + "B"
	}
	v := float64(*b) / 1024
	unit := 0
	for v >= 1024 && unit < len(byteUnits)-1 {
		v /= 1024
		unit++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + byteUnits[unit]
}

// parseBytes reads a size as bytesText writes it: a number and a binary
// unit (512MiB, 1.5GiB), or a plain number of bytes (with or without B).
func parseBytes(s string) (uint64, error) {
	num, scale := strings.TrimSuffix(s, "B"), 1.0
	for i, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u); ok {
			num, scale = n, math.Pow(1024, float64(i+1))
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) || v*scale >= math.MaxUint64 {
		return 0, fmt.Errorf("%q is not a size: want bytes or a binary unit, such as 512MiB or 2GiB", s)
	}
	return uint64(v * scale), nil
}
