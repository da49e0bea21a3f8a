package detect

import (
	"strconv"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Ancestor is one process above another, as /proc shows it: what the
// launcher rules read of a process's parents.
type Ancestor struct {
	PID     int
	UID     int
	Comm    string
	Cmdline string
}

// maxAncestors bounds the walk up a process's parents: real trees are a
// dozen deep, and a walk must end even if /proc answers in a loop.
const maxAncestors = 64

// ProcessLauncher says what started a process outside any container, from
// its cgroup lines, its ancestors (nearest first) and, for an Apptainer
// job, the image path its environment names (""). It returns nil where
// nothing can be told.
//
// Cgroups are the stronger evidence: only root (or the owner of a
// delegated subtree, inside it) creates them, while any process may name
// itself "slurmstepd: [1.0]". So an ancestor counts as a launcher's own
// process only when it runs as root (slurmstepd, the LXC monitor,
// systemd-nspawn), except the Apptainer runtime parent, which runs as the
// job's user. The most specific launcher names the result, and the others
// found add what they know: a Slurm job running an Apptainer image is
// apptainer, with the job and step.
func ProcessLauncher(cgroup []CgroupLine, ancestors []Ancestor, self Ancestor, image string) *inventory.Launcher {
	var f launchFacts
	for _, l := range cgroup {
		f.fromPath(l.Path, isSystemdTree(l))
	}
	for _, a := range ancestors {
		f.fromAncestor(a)
	}
	if isJupyterServer(self.Cmdline) {
		f.jupyter = true
	}
	l := &inventory.Launcher{Job: f.job, Step: f.step, Machine: f.machine}
	switch {
	case f.apptainer:
		l.Name, l.Image = inventory.LauncherApptainer, image
	case f.jupyter || f.jupyterUnit != "":
		l.Name, l.Unit = inventory.LauncherJupyterHub, f.jupyterUnit
	case f.job != "":
		l.Name = inventory.LauncherSlurm
	case f.lxc:
		l.Name = inventory.LauncherLXC
	case f.nspawn:
		l.Name = inventory.LauncherNspawn
	case f.session != "" && f.sshd:
		l.Name, l.Unit = inventory.LauncherSSH, f.session
	case f.session != "":
		l.Name, l.Unit = inventory.LauncherSession, f.session
	case f.service != "":
		l.Name, l.Unit = inventory.LauncherSystemd, f.service
	default:
		return nil
	}
	return l
}

// launchFacts gathers what a process's cgroups and ancestors say.
type launchFacts struct {
	job, step   string
	machine     string
	lxc, nspawn bool
	apptainer   bool
	jupyter     bool
	jupyterUnit string
	sshd        bool
	// session is the login session's scope, or the user manager's unit
	// the process runs in; service a system service.
	session, service string
}

// isSystemdTree reports a line of a tree systemd arranges (the unified one
// and name=systemd), whose units name sessions and services; the other v1
// controllers may stop higher up or be arranged by hand.
func isSystemdTree(l CgroupLine) bool {
	return (l.Hierarchy == 0 && len(l.Controllers) == 0) || hasComponent(l.Controllers, "name=systemd")
}

// fromPath reads one cgroup path. Slurm, LXC and nspawn shapes count on
// any hierarchy; units only on the trees systemd arranges.
func (f *launchFacts) fromPath(path string, systemdTree bool) {
	parts := strings.Split(path, "/")
	for i, c := range parts {
		above := parts[:i]
		switch {
		case strings.HasPrefix(c, "job_") && underSlurm(above):
			if f.job == "" && validJobID(c[len("job_"):]) {
				f.job = c[len("job_"):]
				if i+1 < len(parts) {
					if s, ok := strings.CutPrefix(parts[i+1], "step_"); ok && validStepID(s) {
						f.step = s
					}
				}
			}
		case strings.HasPrefix(c, "lxc.payload."):
			// lxc.payload.<name> holds the container; its monitor sits
			// in lxc.monitor.<name>, beside it, and is no part of it.
			f.lxcMachine(c[len("lxc.payload."):])
		case c == "lxc" && i+1 < len(parts) && i == 1:
			// LXC before 4.0: /lxc/<name>.
			f.lxcMachine(parts[i+1])
		case strings.HasPrefix(c, "machine-") && strings.HasSuffix(c, ".scope") && hasComponent(above, "machine.slice"):
			// systemd-nspawn registered as a machine: its payload is in
			// the scope (in …/payload where it delegates), nspawn itself
			// in …/supervisor.
			name := UnescapeUnit(strings.TrimSuffix(strings.TrimPrefix(c, "machine-"), ".scope"))
			if strings.HasPrefix(name, "qemu-") || (i+1 < len(parts) && parts[i+1] == "supervisor") {
				// A libvirt guest's QEMU, or nspawn's own process.
				continue
			}
			if name != "" && !f.lxc && f.machine == "" {
				f.nspawn, f.machine = true, name
			}
		}
		if !systemdTree {
			continue
		}
		switch {
		case strings.HasPrefix(c, "jupyter-") && strings.HasSuffix(c, "-singleuser.service"):
			// The systemd spawner's unit, jupyter-<user>-singleuser.
			f.jupyterUnit = c
		case strings.HasPrefix(c, "session-") && strings.HasSuffix(c, ".scope") && i == 3 && isUserSlice(parts[1], parts[2]):
			f.session = c
		case strings.HasPrefix(c, "user@") && strings.HasSuffix(c, ".service") && i == 3 && isUserSlice(parts[1], parts[2]):
			// The user's own manager: its innermost unit names the process.
			f.session = innermostUnit(parts[i:])
		case i == 2 && parts[1] == "system.slice" && (strings.HasSuffix(c, ".service") || strings.HasSuffix(c, ".scope")):
			f.service = c
		}
	}
}

func (f *launchFacts) lxcMachine(name string) {
	if name != "" && !f.lxc {
		f.lxc, f.nspawn, f.machine = true, false, name
	}
}

// fromAncestor reads one process above.
func (f *launchFacts) fromAncestor(a Ancestor) {
	switch {
	case strings.HasPrefix(a.Cmdline, "Apptainer instance: ") || strings.HasPrefix(a.Cmdline, "Singularity instance: "):
		// An instance's parent: "Apptainer instance: <user> [<name>]".
		f.apptainer = true
		if f.machine == "" {
			f.machine = instanceName(a.Cmdline)
		}
	case a.Cmdline == "Apptainer runtime parent" || a.Cmdline == "Singularity runtime parent" ||
		a.Comm == "starter-suid" || a.Comm == "starter":
		f.apptainer = true
	case isJupyterServer(a.Cmdline):
		f.jupyter = true
	case a.UID != 0:
	case a.Comm == "slurmstepd" || strings.HasPrefix(a.Cmdline, "slurmstepd: ["):
		// Its title is in its command line; its comm may be either.
		if job, step, ok := parseStepdTitle(a.Cmdline); ok && f.job == "" {
			f.job, f.step = job, step
		}
	case a.Comm == "sshd" || a.Comm == "sshd-session":
		// OpenSSH 9.8 runs each session in sshd-session.
		f.sshd = true
	case a.Comm == "lxc-start" || strings.HasPrefix(a.Cmdline, "[lxc monitor] "):
		if !f.lxc {
			f.lxcMachine(lxcMonitorName(a.Cmdline))
		}
	case a.Comm == "systemd-nspawn":
		if !f.lxc && !f.nspawn {
			f.nspawn = true
			if f.machine == "" {
				f.machine = nspawnMachine(a.Cmdline)
			}
		}
	}
}

// instanceName reads an Apptainer instance's name from its parent's
// title, "Apptainer instance: alice [train]".
func instanceName(title string) string {
	open, closing := strings.LastIndexByte(title, '['), strings.LastIndexByte(title, ']')
	if open < 0 || closing != len(title)-1 || closing-open < 2 {
		return ""
	}
	return title[open+1 : closing]
}

// isJupyterServer reports the command line of a JupyterHub single-user
// server: the jupyterhub-singleuser script, or its module.
func isJupyterServer(cmdline string) bool {
	for _, arg := range strings.Fields(cmdline) {
		if arg == "jupyterhub-singleuser" || strings.HasSuffix(arg, "/jupyterhub-singleuser") || arg == "jupyterhub.singleuser" {
			return true
		}
	}
	return false
}

// underSlurm reports a cgroup path that slurmd's cgroup plugins made: under
// /slurm or /slurm_<node> (v1) or a slurmstepd.scope or
// <node>_slurmstepd.scope (v2).
func underSlurm(above []string) bool {
	for _, c := range above {
		if c == "slurm" || strings.HasPrefix(c, "slurm_") || c == "slurmstepd.scope" || strings.HasSuffix(c, "_slurmstepd.scope") {
			return true
		}
	}
	return false
}

// validJobID accepts a Slurm job ID: digits, with an array task
// ("12_3") or a heterogeneous component ("12+1").
func validJobID(s string) bool {
	if s == "" || len(s) > 32 || s[0] < '0' || s[0] > '9' {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '_' && r != '+' {
			return false
		}
	}
	return true
}

// validStepID accepts a step: a number, or batch, extern, interactive.
func validStepID(s string) bool {
	switch s {
	case "batch", "extern", "interactive":
		return true
	}
	if s == "" || len(s) > 10 {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// parseStepdTitle reads slurmstepd's title, "slurmstepd: [42.0]".
func parseStepdTitle(cmdline string) (job, step string, ok bool) {
	rest, ok := strings.CutPrefix(cmdline, "slurmstepd: [")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(strings.TrimSpace(rest), "]")
	if !ok {
		return "", "", false
	}
	job, step, _ = strings.Cut(rest, ".")
	if !validJobID(job) || (step != "" && !validStepID(step)) {
		return "", "", false
	}
	return job, step, true
}

// lxcMonitorName reads the container's name from the monitor's title,
// "[lxc monitor] <lxcpath> <name>".
func lxcMonitorName(cmdline string) string {
	f := strings.Fields(strings.TrimPrefix(cmdline, "[lxc monitor] "))
	if len(f) == 2 {
		return f[1]
	}
	return ""
}

// nspawnMachine reads the machine's name from systemd-nspawn's arguments:
// --machine/-M, else the last component of --directory/-D or --image/-i,
// as nspawn names it.
func nspawnMachine(cmdline string) string {
	args := strings.Fields(cmdline)
	var dir string
	for i := 1; i < len(args); i++ {
		a := args[i]
		next := ""
		if i+1 < len(args) {
			next = args[i+1]
		}
		switch {
		case a == "--":
			i = len(args)
		case a == "-M" || a == "--machine":
			return next
		case strings.HasPrefix(a, "--machine="):
			return a[len("--machine="):]
		case a == "-D" || a == "--directory" || a == "-i" || a == "--image":
			dir = next
			i++
		case strings.HasPrefix(a, "--directory=") || strings.HasPrefix(a, "--image="):
			_, dir, _ = strings.Cut(a, "=")
		case !strings.HasPrefix(a, "-"):
			// The command the container runs: what follows is its own.
			i = len(args)
		}
	}
	dir = strings.TrimRight(dir, "/")
	if j := strings.LastIndexByte(dir, '/'); j >= 0 {
		dir = dir[j+1:]
	}
	for _, ext := range []string{".raw", ".img"} {
		dir = strings.TrimSuffix(dir, ext)
	}
	return dir
}

// isUserSlice reports /user.slice/user-<uid>.slice.
func isUserSlice(top, slice string) bool {
	_, ok := sessionUIDFromPath("/" + top + "/" + slice)
	return top == "user.slice" && ok
}

// innermostUnit is the last service or scope among parts.
func innermostUnit(parts []string) string {
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.HasSuffix(parts[i], ".service") || strings.HasSuffix(parts[i], ".scope") {
			return parts[i]
		}
	}
	return ""
}

// UnescapeUnit undoes systemd's escaping of a unit name's part: "\x2d"
// is "-". A malformed escape is left as it is.
func UnescapeUnit(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ContainerLauncher says what runs a container seen only through a
// process's cgroup: its runtime, or Kubernetes with the pod's UID where
// the path is a kubelet's. It returns nil for a runtime that cannot be told.
func ContainerLauncher(runtime string, cgroup []CgroupLine) *inventory.Launcher {
	pod := podUID(cgroup)
	switch {
	case pod != "" || runtime == RuntimeKubernetes || runtime == RuntimeCRIO:
		return &inventory.Launcher{Name: inventory.LauncherKubernetes, Pod: pod}
	case runtime == RuntimeDocker:
		return &inventory.Launcher{Name: inventory.LauncherDocker}
	case runtime == RuntimePodman:
		return &inventory.Launcher{Name: inventory.LauncherPodman}
	case runtime == RuntimeContainerd:
		return &inventory.Launcher{Name: inventory.LauncherContainerd}
	}
	return nil
}

// podUID finds the pod of a kubelet's cgroup path: pod<uid> under kubepods
// (cgroupfs driver), or kubepods-<qos>-pod<uid with _ for ->.slice
// (systemd driver).
func podUID(cgroup []CgroupLine) string {
	for _, l := range cgroup {
		parts := strings.Split(l.Path, "/")
		for i, c := range parts {
			if !hasComponent(parts[:i], "kubepods") && !strings.HasPrefix(c, "kubepods-") {
				continue
			}
			var uid string
			if rest, ok := strings.CutSuffix(c, ".slice"); ok {
				if j := strings.LastIndex(rest, "-pod"); j >= 0 {
					uid = strings.ReplaceAll(rest[j+len("-pod"):], "_", "-")
				}
			} else if rest, ok := strings.CutPrefix(c, "pod"); ok {
				uid = rest
			}
			if validPodUID(uid) {
				return uid
			}
		}
	}
	return ""
}

// validPodUID accepts a UUID's characters, 36 of them.
func validPodUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') && r != '-' {
			return false
		}
	}
	return true
}
