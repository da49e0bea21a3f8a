package detect

import (
	"strings"
	"testing"
)

// IDs for the cgroup shape tables: two containers (outer and inner where
// nested), a pod ID and the hex of a mount unit.
const (
	cmID    = "3f4e8b9c2a1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"
	cmInner = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	cmPod   = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
)

func TestContainerFromCgroup(t *testing.T) {
	const podUID = "pod0a1b2c3d_4e5f_6789_abcd_ef0123456789"
	const podUIDDash = "pod0a1b2c3d-4e5f-6789-abcd-ef0123456789"
	tests := []struct {
		name        string
		cgroup      string // contents of /proc/<pid>/cgroup
		wantID      string
		wantRuntime string
	}{
		// Docker.
		{"docker cgroupfs v1", "12:pids:/docker/" + cmID + "\n4:cpu,cpuacct:/docker/" + cmID + "\n1:name=systemd:/docker/" + cmID + "\n", cmID, RuntimeDocker},
		{"docker cgroupfs v2", "0::/docker/" + cmID + "\n", cmID, RuntimeDocker},
		{"docker systemd v2", "0::/system.slice/docker-" + cmID + ".scope\n", cmID, RuntimeDocker},
		{"docker systemd v1", "10:memory:/system.slice/docker-" + cmID + ".scope\n1:name=systemd:/system.slice/docker-" + cmID + ".scope\n", cmID, RuntimeDocker},
		{"docker systemd custom slice", "0::/gpu.slice/docker-" + cmID + ".scope\n", cmID, RuntimeDocker},
		{"docker systemd init in container", "0::/system.slice/docker-" + cmID + ".scope/init.scope\n", cmID, RuntimeDocker},
		{"docker under snap docker-ce parent", "5:memory:/docker-ce/docker/" + cmID + "\n", cmID, RuntimeDocker},
		{"hybrid cgroupfs: v1 names it, unified does not", "10:memory:/docker/" + cmID + "\n1:name=systemd:/docker/" + cmID + "\n0::/system.slice/containerd.service\n", cmID, RuntimeDocker},
		{"hybrid systemd: unified preferred", "10:memory:/docker/" + cmInner + "\n0::/system.slice/docker-" + cmID + ".scope\n", cmID, RuntimeDocker},
		{"hybrid: unified at root", "4:memory:/docker/" + cmID + "\n0::/\n", cmID, RuntimeDocker},
		{"docker-in-docker cgroupfs: the outer one", "0::/docker/" + cmID + "/docker/" + cmInner + "\n", cmID, RuntimeDocker},
		{"docker-in-docker v1", "9:memory:/docker/" + cmID + "/docker/" + cmInner + "\n", cmID, RuntimeDocker},
		{"docker-in-docker systemd outer", "0::/system.slice/docker-" + cmID + ".scope/docker/" + cmInner + "\n", cmID, RuntimeDocker},
		{"kind node: kubelet pod inside a docker container", "0::/system.slice/docker-" + cmID + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-" + podUID + ".slice/cri-containerd-" + cmInner + ".scope\n", cmID, RuntimeDocker},
		{"daemon-wide cgroup-parent (GitHub runner /actions_job)", "7:freezer:/actions_job/" + cmID + "\n", cmID, RuntimeUnknown},
		{"containerd namespace cgroupfs", "0::/k8s.io/" + cmID + "\n", cmID, RuntimeUnknown},
		{"known shape on v1 beats a guess on the unified line", "0::/actions_job/" + cmInner + "\n4:memory:/docker/" + cmID + "\n", cmID, RuntimeDocker},
		{"guess on the unified line preferred to one on v1", "4:memory:/ci/" + cmInner + "\n0::/actions_job/" + cmID + "\n", cmID, RuntimeUnknown},
		{"known shape beats an unknown guess above it", "0::/actions_job/" + cmID + "/docker/" + cmInner + "\n", cmInner, RuntimeDocker},

		// Podman.
		{"podman systemd", "0::/machine.slice/libpod-" + cmID + ".scope\n", cmID, RuntimePodman},
		{"podman systemd container subgroup", "0::/machine.slice/libpod-" + cmID + ".scope/container\n", cmID, RuntimePodman},
		{"podman systemd in pod", "0::/machine.slice/machine-libpod_pod_" + cmPod + ".slice/libpod-" + cmID + ".scope/container\n", cmID, RuntimePodman},
		{"podman systemd init inside", "0::/machine.slice/libpod-" + cmID + ".scope/container/init.scope\n", cmID, RuntimePodman},
		{"podman rootless", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cmID + ".scope/container\n", cmID, RuntimePodman},
		{"podman cgroupfs", "0::/libpod_parent/libpod-" + cmID + "\n", cmID, RuntimePodman},
		{"podman cgroupfs in pod: the container, not the pod", "0::/libpod_parent/" + cmPod + "/libpod-" + cmID + "\n", cmID, RuntimePodman},

		// Kubernetes.
		{"k8s cgroupfs burstable", "11:memory:/kubepods/burstable/" + podUIDDash + "/" + cmID + "\n", cmID, RuntimeKubernetes},
		{"k8s cgroupfs besteffort", "0::/kubepods/besteffort/" + podUIDDash + "/" + cmID + "\n", cmID, RuntimeKubernetes},
		{"k8s cgroupfs guaranteed", "0::/kubepods/" + podUIDDash + "/" + cmID + "\n", cmID, RuntimeKubernetes},
		{"k8s systemd containerd burstable", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice/cri-containerd-" + cmID + ".scope\n", cmID, RuntimeContainerd},
		{"k8s systemd containerd besteffort", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-" + podUID + ".slice/cri-containerd-" + cmID + ".scope\n", cmID, RuntimeContainerd},
		{"k8s systemd containerd guaranteed", "0::/kubepods.slice/kubepods-" + podUID + ".slice/cri-containerd-" + cmID + ".scope\n", cmID, RuntimeContainerd},
		{"k8s systemd cri-o", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice/crio-" + cmID + ".scope\n", cmID, RuntimeCRIO},
		{"k8s systemd cri-dockerd", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-" + podUID + ".slice/docker-" + cmID + ".scope\n", cmID, RuntimeDocker},
		{"k8s systemd v1", "12:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice/cri-containerd-" + cmID + ".scope\n0::/\n", cmID, RuntimeContainerd},
		{"nerdctl systemd", "0::/system.slice/nerdctl-" + cmID + ".scope\n", cmID, RuntimeContainerd},

		// Host processes.
		{"host session", "0::/user.slice/user-1000.slice/session-3.scope\n", "", ""},
		{"host user manager app", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-code-4521.scope\n", "", ""},
		{"host service", "0::/system.slice/nvidia-persistenced.service\n", "", ""},
		{"dockerd itself", "0::/system.slice/docker.service\n", "", ""},
		{"containerd shim", "0::/system.slice/containerd.service\n", "", ""},
		{"root cgroup", "0::/\n", "", ""},
		{"init", "0::/init.scope\n", "", ""},
		{"v1 all at root", "12:pids:/\n4:cpu,cpuacct:/\n1:name=systemd:/init.scope\n", "", ""},
		{"empty file", "", "", ""},

		// Traps: a 64-hex string that is not a container.
		{"trap: runc mount unit", "0::/system.slice/run-docker-runtime\\x2drunc-moby-" + cmID + ".mount\n", "", ""},
		{"trap: shm mount unit", "0::/system.slice/var-lib-docker-containers-" + cmID + "-mounts-shm.mount\n", "", ""},
		{"trap: overlay mount unit", "0::/system.slice/var-lib-docker-overlay2-" + cmID + "-merged.mount\n", "", ""},
		{"trap: containerd rootfs mount unit", "0::/system.slice/run-containerd-io.containerd.runtime.v2.task-k8s.io-" + cmID + "-rootfs.mount\n", "", ""},
		{"trap: podman conmon", "0::/machine.slice/libpod-conmon-" + cmID + ".scope\n", "", ""},
		{"trap: podman conmon v1", "1:name=systemd:/machine.slice/libpod-conmon-" + cmID + ".scope\n", "", ""},
		{"trap: cri-o conmon", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice/crio-conmon-" + cmID + ".scope\n", "", ""},
		{"trap: podman cgroupfs pod conmon", "0::/libpod_parent/" + cmPod + "/conmon\n", "", ""},
		{"trap: k8s pod slice, no container", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + podUID + ".slice\n", "", ""},
		{"trap: k8s cgroupfs pod level", "0::/kubepods/burstable/" + podUIDDash + "\n", "", ""},
		{"trap: uppercase hex", "0::/docker/" + strings.ToUpper(cmID) + "\n", "", ""},
		{"trap: 63 hex", "0::/docker/" + cmID[:63] + "\n", "", ""},
		{"trap: 65 hex", "0::/docker/" + cmID + "0\n", "", ""},
		{"trap: non-hex letter", "0::/docker/" + cmID[:63] + "g\n", "", ""},
		{"trap: short ID", "0::/docker/" + cmID[:12] + "\n", "", ""},
		{"trap: docker scope without ID", "0::/system.slice/docker-" + cmID[:12] + ".scope\n", "", ""},
		{"trap: docker service unit", "0::/system.slice/docker-" + cmID + ".service\n", "", ""},
		{"trap: scope suffix only inside", "0::/system.slice/docker-" + cmID + ".scope.d\n", "", ""},
		{"trap: buildkit step", "0::/docker/buildkit/k2n4x8sj1c0v9mrt5wq7zyd3e\n", "", ""},
		{"trap: malformed path", "0::docker/" + cmID + "\n", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, rt := ContainerFromCgroup(ParseCgroupFile([]byte(tc.cgroup)))
			if id != tc.wantID || rt != tc.wantRuntime {
				t.Errorf("ContainerFromCgroup(%q) = %q, %q; want %q, %q", tc.cgroup, id, rt, tc.wantID, tc.wantRuntime)
			}
		})
	}
}

func TestContainerFromCgroupNil(t *testing.T) {
	if id, rt := ContainerFromCgroup(nil); id != "" || rt != "" {
		t.Errorf("ContainerFromCgroup(nil) = %q, %q; want empty", id, rt)
	}
}

func TestSessionUID(t *testing.T) {
	tests := []struct {
		name    string
		cgroup  string
		wantUID int
		wantOK  bool
	}{
		{"session scope v2", "0::/user.slice/user-1000.slice/session-3.scope\n", 1000, true},
		{"user manager app", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope\n", 1000, true},
		{"user slice itself", "0::/user.slice/user-1001.slice\n", 1001, true},
		{"root session", "0::/user.slice/user-0.slice/session-c2.scope\n", 0, true},
		{"large uid (LDAP)", "0::/user.slice/user-1234567.slice/session-9.scope\n", 1234567, true},
		{"v1 name=systemd only", "4:memory:/user.slice\n1:name=systemd:/user.slice/user-1002.slice/session-5.scope\n", 1002, true},
		{"hybrid: unified first", "1:name=systemd:/user.slice/user-1003.slice/session-5.scope\n0::/user.slice/user-1004.slice/session-5.scope\n", 1004, true},
		{"v1 other controller only", "4:memory:/user.slice/user-1005.slice/session-1.scope\n", 1005, true},
		{"rootless podman container of a user", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cmID + ".scope/container\n", 1000, true},
		{"system service", "0::/system.slice/ssh.service\n", 0, false},
		{"docker container", "0::/system.slice/docker-" + cmID + ".scope\n", 0, false},
		{"user.slice only", "0::/user.slice\n", 0, false},
		{"trap: session inside a container", "0::/system.slice/docker-" + cmID + ".scope/user.slice/user-1000.slice/session-1.scope\n", 0, false},
		{"trap: not digits", "0::/user.slice/user-bob.slice/session-1.scope\n", 0, false},
		{"trap: empty uid", "0::/user.slice/user-.slice\n", 0, false},
		{"trap: leading zero", "0::/user.slice/user-01000.slice\n", 0, false},
		{"trap: signed", "0::/user.slice/user-+1000.slice\n", 0, false},
		{"trap: (uid_t)-1", "0::/user.slice/user-4294967295.slice\n", 0, false},
		{"trap: over 32 bits", "0::/user.slice/user-4294967296.slice\n", 0, false},
		{"trap: runtime dir service", "0::/user.slice/user-runtime-dir@1000.service\n", 0, false},
		{"trap: suffix", "0::/user.slice/user-1000.slicex/session-1.scope\n", 0, false},
		{"empty", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid, ok := SessionUID(ParseCgroupFile([]byte(tc.cgroup)))
			if uid != tc.wantUID || ok != tc.wantOK {
				t.Errorf("SessionUID(%q) = %d, %v; want %d, %v", tc.cgroup, uid, ok, tc.wantUID, tc.wantOK)
			}
		})
	}
}

// BenchmarkContainerFromCgroup is the per-process cost of placing a GPU
// process: parse its /proc/<pid>/cgroup and find its container.
func BenchmarkContainerFromCgroup(b *testing.B) {
	data := []byte("12:pids:/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope\n" +
		"11:memory:/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope\n" +
		"10:cpu,cpuacct:/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope\n" +
		"1:name=systemd:/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope\n" +
		"0::/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope\n")
	for b.Loop() {
		if id, _ := ContainerFromCgroup(ParseCgroupFile(data)); id == "" {
			b.Fatal("no container")
		}
	}
}
