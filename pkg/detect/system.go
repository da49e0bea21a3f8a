package detect

import "strings"

// commLen is the most bytes the kernel keeps of a process name
// (TASK_COMM_LEN less the NUL): "nvidia-persistenced" reads "nvidia-persiste".
const commLen = 15

// systemNames are executables that use a GPU for the machine, not for a user:
// driver daemons, the display stack, admin tools.
var systemNames = map[string]bool{
	"nvidia-persistenced":     true,
	"nv-hostengine":           true, // DCGM's daemon
	"nvidia-cuda-mps-control": true,
	"nvidia-cuda-mps-server":  true, // behind MPS, NVML lists only the server
	"nvidia-powerd":           true,
	"nv-fabricmanager":        true,
	// nvidia-smi holds the devices open for the moment it runs; it is an
	// admin looking, not a workload.
	"nvidia-smi":  true,
	"X":           true,
	"Xorg":        true,
	"Xorg.wrap":   true,
	"Xwayland":    true,
	"gdm":         true,
	"gdm3":        true,
	"gnome-shell": true,
	"sddm":        true,
	"lightdm":     true,
}

// systemPrefixes are families of system executables: dcgm-exporter,
// dcgmproftester12, dcgmi; gdm-x-session, gdm-wayland-session; kwin_x11,
// kwin_wayland; sddm-greeter; lightdm-gtk-greeter.
var systemPrefixes = []string{"dcgm", "gdm-", "kwin_", "sddm-", "lightdm-"}

// IsSystemProcess says whether a process is part of the machine (driver
// daemons, DCGM, the display server and desktop session, nvidia-smi) rather
// than a user's workload. comm is the kernel's process name (stat's comm,
// at most 15 bytes) and cmdline the command line with arguments joined by
// spaces.
//
// The name matched is comm, completed from argv[0] when comm is cut at 15
// bytes and argv[0]'s base name starts with it. A cut comm that argv[0]
// does not complete (a daemon that rewrote its argv) matches when it is the
// start of a system name. Arguments never count: "python xorg_tool.py" is a
// user's.
func IsSystemProcess(comm, cmdline string) bool {
	name := comm
	arg0 := argv0Base(cmdline)
	switch {
	case name == "":
		name = arg0
	case len(name) == commLen && strings.HasPrefix(arg0, name):
		name = arg0
	}
	if name == "" {
		return false
	}
	if systemNames[name] {
		return true
	}
	for _, p := range systemPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	if len(name) == commLen {
		for full := range systemNames {
			if strings.HasPrefix(full, name) {
				return true
			}
		}
	}
	return false
}

// argv0Base is the base name of the first word of a command line. The
// command line joins arguments with spaces, so a program path with a space
// in it is cut there; the system executables have none.
func argv0Base(cmdline string) string {
	arg0, _, _ := strings.Cut(cmdline, " ")
	if i := strings.LastIndexByte(arg0, '/'); i >= 0 {
		arg0 = arg0[i+1:]
	}
	return arg0
}
