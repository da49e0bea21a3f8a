package detect

import (
	"strconv"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Container runtimes ContainerFromCgroup names.
const (
	// RuntimeDocker is a container of a Docker engine (cgroupfs or systemd
	// driver, including Kubernetes pods run through cri-dockerd).
	RuntimeDocker = "docker"
	// RuntimePodman is a Podman container (libpod).
	RuntimePodman = "podman"
	// RuntimeContainerd is a container of containerd: Kubernetes through
	// the CRI plugin, or nerdctl.
	RuntimeContainerd = "containerd"
	// RuntimeCRIO is a Kubernetes container run by CRI-O.
	RuntimeCRIO = "cri-o"
	// RuntimeKubernetes is a Kubernetes container under the cgroupfs
	// driver, whose path does not say which engine runs it.
	RuntimeKubernetes = "kubernetes"
	// RuntimeUnknown is a bare container ID under a parent no engine uses
	// by default: Docker's cgroupfs driver with a cgroup-parent set (GitHub's
	// runners set /actions_job daemon-wide), or containerd's namespaces.
	RuntimeUnknown = "unknown"
)

// ContainerFromCgroup says which container a process is in, from the lines
// of its /proc/<pid>/cgroup. It returns the full 64-hex ID and one of the
// Runtime constants, or two empty strings for a process outside any
// container (a host session, a system service).
//
// The v2 unified line is preferred when it names a container: on a hybrid
// host it is the systemd driver's view. Otherwise the first v1 line that
// names one is used, since under cgroupfs drivers the unified line of a
// container process often stays in the engine's service. A guess
// (RuntimeUnknown) from any line gives way to a known shape on another.
func ContainerFromCgroup(lines []CgroupLine) (id, runtime string) {
	var guess string
	for _, unified := range []bool{true, false} {
		for _, l := range lines {
			if (l.Hierarchy == 0 && len(l.Controllers) == 0) != unified {
				continue
			}
			switch cid, rt := containerFromPath(l.Path); rt {
			case "":
			case RuntimeUnknown:
				if guess == "" {
					guess = cid
				}
			default:
				return cid, rt
			}
		}
	}
	if guess != "" {
		return guess, RuntimeUnknown
	}
	return "", ""
}

// containerFromPath finds the container in one cgroup path. Components are
// judged one at a time, each by its whole shape, walking from the right; a
// match does not stop the walk, because in nested setups (docker-in-docker,
// kind) the outermost container is the one the host's engine knows, and an
// inner ID means nothing to it. A bare ID under an unrecognised parent counts
// only when no known shape matched: it is a guess, and Podman's cgroupfs pods
// (/libpod_parent/<pod id>/libpod-<id>) show that a 64-hex component above a
// container is not always one.
func containerFromPath(path string) (id, runtime string) {
	var guess string
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i > 0; i-- {
		switch cid, rt := containerComponent(parts[:i], parts[i]); rt {
		case "":
		case RuntimeUnknown:
			guess = cid
		default:
			id, runtime = cid, rt
		}
	}
	if id == "" && guess != "" {
		return guess, RuntimeUnknown
	}
	return id, runtime
}

// containerComponent says whether one path component, with the components
// above it, names a container. Every shape is matched whole, so that systemd
// mount units that embed an ID (run-docker-runtime\x2drunc-moby-<id>.mount,
// var-lib-docker-containers-<id>-mounts-shm.mount) and the conmon monitors of
// Podman and CRI-O (libpod-conmon-<id>.scope, crio-conmon-<id>.scope), which
// hold an ID but are not the container, never match.
func containerComponent(above []string, c string) (id, runtime string) {
	if scope, ok := strings.CutSuffix(c, ".scope"); ok {
		// systemd cgroup driver: <prefix><id>.scope.
		for _, p := range []struct{ prefix, runtime string }{
			{"docker-", RuntimeDocker},
			{"libpod-", RuntimePodman},
			{"cri-containerd-", RuntimeContainerd},
			{"nerdctl-", RuntimeContainerd},
			{"crio-", RuntimeCRIO},
		} {
			if rest, ok := strings.CutPrefix(scope, p.prefix); ok && inventory.ValidContainerID(rest) {
				return rest, p.runtime
			}
		}
		return "", ""
	}
	if rest, ok := strings.CutPrefix(c, "libpod-"); ok && inventory.ValidContainerID(rest) {
		// Podman's cgroupfs manager: /libpod_parent/libpod-<id>.
		return rest, RuntimePodman
	}
	if !inventory.ValidContainerID(c) {
		return "", ""
	}
	// cgroupfs drivers: a bare ID under its parent.
	parent := ""
	if len(above) > 0 {
		parent = above[len(above)-1]
	}
	switch {
	case parent == "docker":
		return c, RuntimeDocker
	case strings.HasPrefix(parent, "pod") && hasComponent(above, "kubepods"):
		// /kubepods/<qos>/pod<uid>/<id>, or /kubepods/pod<uid>/<id> for
		// the Guaranteed class.
		return c, RuntimeKubernetes
	case parent == "libpod_parent":
		// A Podman pod under the cgroupfs manager; its conmon processes
		// sit in /libpod_parent/<pod id>/conmon.
		return "", ""
	}
	return c, RuntimeUnknown
}

func hasComponent(parts []string, name string) bool {
	for _, p := range parts {
		if p == name {
			return true
		}
	}
	return false
}

// SessionUID returns the uid of the host login session a process is in,
// from the user-<uid>.slice that systemd-logind puts every session and user
// manager under (/user.slice/user-1000.slice/session-3.scope,
// /user.slice/user-1000.slice/user@1000.service/app.slice/…).
//
// Only a slice at the top of the host's tree counts: a user-<uid>.slice
// inside a container's cgroup (systemd running in the container) is that
// container's uid, not a host user's.
func SessionUID(lines []CgroupLine) (uid int, ok bool) {
	// The unified line and name=systemd are the trees logind manages; the
	// other v1 controllers may stop higher up.
	for _, pass := range []func(CgroupLine) bool{
		func(l CgroupLine) bool { return l.Hierarchy == 0 && len(l.Controllers) == 0 },
		func(l CgroupLine) bool { return hasComponent(l.Controllers, "name=systemd") },
		func(CgroupLine) bool { return true },
	} {
		for _, l := range lines {
			if !pass(l) {
				continue
			}
			if uid, ok := sessionUIDFromPath(l.Path); ok {
				return uid, true
			}
		}
	}
	return 0, false
}

func sessionUIDFromPath(path string) (int, bool) {
	rest, ok := strings.CutPrefix(path, "/user.slice/user-")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".slice")
	if !ok {
		digits, _, ok = strings.Cut(rest, ".slice/")
		if !ok {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	// 4294967295 is (uid_t)-1, never a user; systemd writes the uid in
	// canonical form, so "0100" is not one of its slices.
	if err != nil || n == 1<<32-1 || strconv.FormatUint(n, 10) != digits {
		return 0, false
	}
	return int(n), true
}
