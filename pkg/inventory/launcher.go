package inventory

import "strings"

// Launchers: what started a workload. A workload's type is its origin (a
// compose stack, a devcontainer, a host process); its launcher is the
// machinery that runs it, which an admin asks about in that machinery's
// own terms (scontrol show job, machinectl, lxc-info, kubectl).
const (
	LauncherDocker     = "docker"
	LauncherPodman     = "podman"
	LauncherContainerd = "containerd"
	LauncherKubernetes = "kubernetes"
	LauncherSlurm      = "slurm"
	LauncherApptainer  = "apptainer"
	LauncherNspawn     = "nspawn"
	LauncherLXC        = "lxc"
	LauncherJupyterHub = "jupyterhub"
	// LauncherSSH is a process of a login session that sshd started.
	LauncherSSH = "ssh"
	// LauncherSession is a process of any other login session (a console,
	// a desktop, a user's own systemd manager).
	LauncherSession = "session"
	// LauncherSystemd is a process of a system service.
	LauncherSystemd = "systemd"
)

// Launchers lists every launcher, in the order the tools present them.
var Launchers = []string{
	LauncherDocker, LauncherPodman, LauncherContainerd, LauncherKubernetes, LauncherSlurm,
	LauncherApptainer, LauncherNspawn, LauncherLXC, LauncherJupyterHub, LauncherSSH,
	LauncherSession, LauncherSystemd,
}

// Launcher is what started a workload, with what names it there. Only the
// fields that apply to Name are set: a Slurm job inside which an Apptainer
// image runs is Name apptainer with Image, Job and Step all set.
type Launcher struct {
	// Name is one of the Launcher constants.
	Name string `json:"name"`
	// Job and Step are the Slurm job ID and step ("0", "batch",
	// "extern", "interactive").
	Job  string `json:"job,omitempty"`
	Step string `json:"step,omitempty"`
	// Image is the Apptainer/Singularity image path.
	Image string `json:"image,omitempty"`
	// Machine is the nspawn machine's, the LXC container's or the
	// Apptainer instance's name.
	Machine string `json:"machine,omitempty"`
	// Pod is the Kubernetes pod's UID.
	Pod string `json:"pod,omitempty"`
	// Unit is the systemd unit: a service, a session scope
	// ("session-3.scope"), a JupyterHub spawner's unit.
	Unit string `json:"unit,omitempty"`
	// Engine is the socket of the container engine that runs the
	// workload, where it is not the system's own (a rootless engine).
	Engine string `json:"engine,omitempty"`
}

// String is the launcher in one phrase, as the tools show it: "slurm job
// 42.0", "lxc web", "apptainer /scratch/pytorch.sif (slurm job 7.0)".
// The parts are as recorded: the printer makes them safe.
func (l *Launcher) String() string {
	if l == nil {
		return ""
	}
	parts := []string{l.Name}
	for _, p := range []struct{ prefix, v string }{
		{"", l.Machine}, {"", l.Image}, {"pod ", ShortPodUID(l.Pod)}, {"", l.Unit},
	} {
		if p.v != "" {
			parts = append(parts, p.prefix+p.v)
		}
	}
	if l.Job != "" {
		job := "job " + l.Job
		if l.Step != "" {
			job += "." + l.Step
		}
		if l.Name != LauncherSlurm {
			job = "(slurm " + job + ")"
		}
		parts = append(parts, job)
	}
	if l.Engine != "" {
		parts = append(parts, "via "+l.Engine)
	}
	return strings.Join(parts, " ")
}

// ShortPodUID is the first 8 characters of a pod's UID, which tell pods
// apart in a table as a short container ID does.
func ShortPodUID(uid string) string {
	if len(uid) > 8 {
		return uid[:8]
	}
	return uid
}

// LauncherName is l's Name, or "" for no launcher.
func (l *Launcher) LauncherName() string {
	if l == nil {
		return ""
	}
	return l.Name
}

// EngineSource names, in Inventory.Sources, the Docker engine listening on
// socket: SourceDocker for the system's own (""), "docker:<socket>" for a
// user's rootless one.
func EngineSource(socket string) string {
	if socket == "" {
		return SourceDocker
	}
	return SourceDocker + ":" + socket
}

// EngineSource is the source that lists the container: its engine's. A
// container seen only through a process's cgroup is the system engine's
// to deny, so it counts as that engine's.
func (c *Container) EngineSource() string {
	if c.Launcher == nil {
		return SourceDocker
	}
	return EngineSource(c.Launcher.Engine)
}
