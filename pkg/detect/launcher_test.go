package detect

import (
	"reflect"
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// v2 is a process's cgroup file on a cgroup-v2 host; hybrid one on a
// hybrid host, the given path in name=systemd and unified, and the v1
// controllers at v1.
func v2(path string) []CgroupLine { return []CgroupLine{{Path: path}} }

func hybrid(systemd, v1 string) []CgroupLine {
	return []CgroupLine{
		{Hierarchy: 12, Controllers: []string{"freezer"}, Path: v1},
		{Hierarchy: 3, Controllers: []string{"memory"}, Path: v1},
		{Hierarchy: 1, Controllers: []string{"name=systemd"}, Path: systemd},
		{Path: systemd},
	}
}

func TestProcessLauncher(t *testing.T) {
	root := func(pid int, comm, cmdline string) Ancestor {
		return Ancestor{PID: pid, Comm: comm, Cmdline: cmdline}
	}
	user := func(pid int, comm, cmdline string) Ancestor {
		return Ancestor{PID: pid, UID: 1000, Comm: comm, Cmdline: cmdline}
	}
	sshd := []Ancestor{user(90, "bash", "-bash"), user(89, "sshd", "sshd: alice@pts/0"), root(80, "sshd", "sshd: alice [priv]"), root(10, "sshd", "sshd: /usr/sbin/sshd -D")}
	tests := []struct {
		name      string
		cgroup    []CgroupLine
		ancestors []Ancestor
		self      Ancestor
		image     string
		want      *inventory.Launcher
	}{
		{
			name:   "slurm v1 (freezer), one slurmd",
			cgroup: hybrid("/system.slice/slurmd.service", "/slurm/uid_1000/job_42/step_0/task_0"),
			want:   &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "42", Step: "0"},
		},
		{
			name:   "slurm v1, multi-slurmd node name",
			cgroup: hybrid("/system.slice/slurmd.service", "/slurm_localhost/uid_1000/job_7/step_batch"),
			want:   &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "7", Step: "batch"},
		},
		{
			name:   "slurm v2",
			cgroup: v2("/system.slice/slurmstepd.scope/job_1234/step_3/user/task_0"),
			want:   &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "1234", Step: "3"},
		},
		{
			name:   "slurm v2, multi-slurmd",
			cgroup: v2("/system.slice/node1_slurmstepd.scope/job_99/step_extern/user/task_special"),
			want:   &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "99", Step: "extern"},
		},
		{
			name:   "slurm array task",
			cgroup: v2("/system.slice/slurmstepd.scope/job_12_3/step_0/user/task_0"),
			want:   &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "12_3", Step: "0"},
		},
		{
			name:      "slurm without a cgroup of its own (proctrack/linuxproc): slurmstepd above",
			cgroup:    hybrid("/system.slice/slurmd.service", "/"),
			ancestors: []Ancestor{root(300, "slurmstepd", "slurmstepd: [55.0]"), root(200, "slurmd", "/usr/sbin/slurmd -N localhost")},
			want:      &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "55", Step: "0"},
		},
		{
			name:      "slurmstepd whose comm is its title",
			cgroup:    v2("/system.slice/slurmd.service"),
			ancestors: []Ancestor{root(300, "slurmstepd: [55", "slurmstepd: [55.batch]")},
			want:      &inventory.Launcher{Name: inventory.LauncherSlurm, Job: "55", Step: "batch"},
		},
		{
			name:      "trap: a user's process calling itself slurmstepd",
			cgroup:    v2("/user.slice/user-1000.slice/session-3.scope"),
			ancestors: []Ancestor{user(300, "slurmstepd", "slurmstepd: [55.0]")},
			want:      &inventory.Launcher{Name: inventory.LauncherSession, Unit: "session-3.scope"},
		},
		{
			name:   "trap: job_ outside any slurm tree",
			cgroup: v2("/system.slice/runner.service/job_5/step_0"),
			want:   &inventory.Launcher{Name: inventory.LauncherSystemd, Unit: "runner.service"},
		},
		{
			name:   "trap: malformed job id",
			cgroup: v2("/system.slice/slurmstepd.scope/job_x1/step_0"),
			want:   &inventory.Launcher{Name: inventory.LauncherSystemd, Unit: "slurmstepd.scope"},
		},
		{
			name:      "apptainer, its runtime parent above",
			cgroup:    v2("/user.slice/user-1000.slice/session-3.scope"),
			ancestors: append([]Ancestor{user(500, "starter", "Apptainer runtime parent")}, sshd...),
			image:     "/scratch/alice/pytorch.sif",
			want:      &inventory.Launcher{Name: inventory.LauncherApptainer, Image: "/scratch/alice/pytorch.sif"},
		},
		{
			name:      "singularity under starter-suid, image unknown",
			cgroup:    v2("/user.slice/user-1000.slice/session-3.scope"),
			ancestors: []Ancestor{user(500, "starter-suid", "Singularity runtime parent")},
			want:      &inventory.Launcher{Name: inventory.LauncherApptainer},
		},
		{
			name:      "apptainer instance",
			cgroup:    v2("/user.slice/user-1000.slice/user@1000.service/app.slice/app-apptainer.scope"),
			ancestors: []Ancestor{user(510, "starter", "Apptainer instance: alice [train]")},
			image:     "/scratch/alice/pytorch.sif",
			want:      &inventory.Launcher{Name: inventory.LauncherApptainer, Image: "/scratch/alice/pytorch.sif", Machine: "train"},
		},
		{
			name:      "apptainer instance with a malformed title",
			cgroup:    v2("/"),
			ancestors: []Ancestor{user(510, "sh", "Apptainer instance: alice [train] extra")},
			want:      &inventory.Launcher{Name: inventory.LauncherApptainer},
		},
		{
			name:      "apptainer inside a slurm job keeps the job",
			cgroup:    hybrid("/system.slice/slurmd.service", "/slurm_n1/uid_1000/job_8/step_0/task_0"),
			ancestors: []Ancestor{user(600, "starter", "Apptainer runtime parent"), root(590, "slurmstepd", "slurmstepd: [8.0]")},
			image:     "/data/img.sif",
			want:      &inventory.Launcher{Name: inventory.LauncherApptainer, Image: "/data/img.sif", Job: "8", Step: "0"},
		},
		{
			name:   "lxc payload (v2)",
			cgroup: v2("/lxc.payload.web/system.slice/app.service"),
			want:   &inventory.Launcher{Name: inventory.LauncherLXC, Machine: "web"},
		},
		{
			name:      "lxc attached process (…/.lxc), monitor above",
			cgroup:    hybrid("/lxc.payload.c1/.lxc", "/lxc.payload.c1"),
			ancestors: []Ancestor{root(700, "lxc-attach", "lxc-attach -n c1 -- nvidia-smi")},
			want:      &inventory.Launcher{Name: inventory.LauncherLXC, Machine: "c1"},
		},
		{
			name:   "lxc before 4.0",
			cgroup: hybrid("/lxc/old", "/lxc/old"),
			want:   &inventory.Launcher{Name: inventory.LauncherLXC, Machine: "old"},
		},
		{
			name:   "unprivileged lxc under a user's session",
			cgroup: v2("/user.slice/user-1000.slice/session-3.scope/lxc.payload.mine"),
			want:   &inventory.Launcher{Name: inventory.LauncherLXC, Machine: "mine", Unit: ""},
		},
		{
			name:      "trap: the lxc monitor's own cgroup is not the container",
			cgroup:    v2("/lxc.monitor.web"),
			ancestors: nil,
			want:      nil,
		},
		{
			name:   "nspawn registered as a machine, payload delegated",
			cgroup: v2(`/machine.slice/machine-build\x2dbox.scope/payload/system.slice/train.service`),
			want:   &inventory.Launcher{Name: inventory.LauncherNspawn, Machine: "build-box"},
		},
		{
			name:   "nspawn machine without delegation",
			cgroup: v2("/machine.slice/machine-box.scope"),
			want:   &inventory.Launcher{Name: inventory.LauncherNspawn, Machine: "box"},
		},
		{
			name:   "trap: nspawn's supervisor is not the payload",
			cgroup: v2("/machine.slice/machine-box.scope/supervisor"),
			want:   nil,
		},
		{
			name:   "trap: a libvirt guest's qemu",
			cgroup: v2(`/machine.slice/machine-qemu\x2d1\x2dvm.scope/libvirt/emulator`),
			want:   nil,
		},
		{
			name:      "nspawn --keep-unit (payload in the caller's unit), named by -D",
			cgroup:    hybrid("/system.slice/ci.service/payload", "/"),
			ancestors: []Ancestor{root(800, "systemd-nspawn", "systemd-nspawn --register=no --keep-unit -D /var/lib/machines/train/ python3 x.py")},
			want:      &inventory.Launcher{Name: inventory.LauncherNspawn, Machine: "train"},
		},
		{
			name:      "nspawn named by --machine",
			cgroup:    v2("/system.slice/ci.service/payload"),
			ancestors: []Ancestor{root(800, "systemd-nspawn", "systemd-nspawn -q --machine=gpu1 -D /srv/root /bin/sh -M notthis")},
			want:      &inventory.Launcher{Name: inventory.LauncherNspawn, Machine: "gpu1"},
		},
		{
			name:   "jupyterhub systemd spawner unit",
			cgroup: v2("/system.slice/jupyter-alice-singleuser.service"),
			self:   user(900, "python3", "/opt/conda/bin/python -m ipykernel_launcher -f /run/user/1000/kernel-1.json"),
			want:   &inventory.Launcher{Name: inventory.LauncherJupyterHub, Unit: "jupyter-alice-singleuser.service"},
		},
		{
			name:      "jupyterhub local spawner: the kernel under jupyterhub-singleuser",
			cgroup:    v2("/system.slice/jupyterhub.service"),
			ancestors: []Ancestor{user(950, "jupyterhub-sing", "/opt/jh/bin/python3 /opt/jh/bin/jupyterhub-singleuser --port=4711"), root(940, "jupyterhub", "/opt/jh/bin/python3 /opt/jh/bin/jupyterhub")},
			self:      user(960, "python3", "/opt/jh/bin/python3 -m ipykernel_launcher -f /home/alice/.local/k.json"),
			want:      &inventory.Launcher{Name: inventory.LauncherJupyterHub},
		},
		{
			name:   "trap: a notebook started over ssh is not jupyterhub",
			cgroup: v2("/user.slice/user-1000.slice/session-3.scope"),
			ancestors: append([]Ancestor{user(1000, "jupyter-noteboo", "/usr/bin/python3 /usr/bin/jupyter-notebook --no-browser")},
				sshd...),
			self: user(1001, "python3", "python3 -m ipykernel_launcher -f k.json"),
			want: &inventory.Launcher{Name: inventory.LauncherSSH, Unit: "session-3.scope"},
		},
		{
			name:      "ssh login session",
			cgroup:    hybrid("/user.slice/user-1000.slice/session-3.scope", "/user.slice"),
			ancestors: sshd,
			want:      &inventory.Launcher{Name: inventory.LauncherSSH, Unit: "session-3.scope"},
		},
		{
			name:      "ssh login session, OpenSSH 9.8's sshd-session",
			cgroup:    v2("/user.slice/user-1000.slice/session-9.scope"),
			ancestors: []Ancestor{user(90, "bash", "-bash"), user(89, "sshd-session", "sshd-session: alice@pts/0"), root(80, "sshd-session", "sshd-session: alice [priv]")},
			want:      &inventory.Launcher{Name: inventory.LauncherSSH, Unit: "session-9.scope"},
		},
		{
			name:      "console session",
			cgroup:    v2("/user.slice/user-1000.slice/session-c1.scope"),
			ancestors: []Ancestor{user(50, "bash", "-bash"), root(40, "login", "/bin/login -p --")},
			want:      &inventory.Launcher{Name: inventory.LauncherSession, Unit: "session-c1.scope"},
		},
		{
			name:   "the user's own manager: tmux",
			cgroup: v2("/user.slice/user-1000.slice/user@1000.service/app.slice/tmux-spawn-1f2e.scope"),
			want:   &inventory.Launcher{Name: inventory.LauncherSession, Unit: "tmux-spawn-1f2e.scope"},
		},
		{
			name:   "trap: a session scope inside a container's tree is not a host session",
			cgroup: v2("/system.slice/box.service/user.slice/user-1000.slice/session-1.scope"),
			want:   &inventory.Launcher{Name: inventory.LauncherSystemd, Unit: "box.service"},
		},
		{
			name:   "system service",
			cgroup: hybrid("/system.slice/train.service", "/system.slice/train.service"),
			want:   &inventory.Launcher{Name: inventory.LauncherSystemd, Unit: "train.service"},
		},
		{
			name:   "trap: a unit only on a v1 controller arranged by hand",
			cgroup: []CgroupLine{{Hierarchy: 4, Controllers: []string{"cpu"}, Path: "/system.slice/fake.service"}, {Path: "/"}},
			want:   nil,
		},
		{
			name: "nothing to tell: the root cgroup",
			cgroup: []CgroupLine{
				{Path: "/"},
			},
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ProcessLauncher(tc.cgroup, tc.ancestors, tc.self, tc.image)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ProcessLauncher = %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestContainerLauncher(t *testing.T) {
	const pod = "6b1c0f3e-8a2d-4e5f-9a7b-0c1d2e3f4a5b"
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		cgroup  []CgroupLine
		runtime string
		want    *inventory.Launcher
	}{
		{"podman", v2("/machine.slice/libpod-" + id + ".scope/container"), RuntimePodman, &inventory.Launcher{Name: inventory.LauncherPodman}},
		{"nerdctl", v2("/system.slice/nerdctl-" + id + ".scope"), RuntimeContainerd, &inventory.Launcher{Name: inventory.LauncherContainerd}},
		{"kubernetes cgroupfs", v2("/kubepods/burstable/pod" + pod + "/" + id), RuntimeKubernetes, &inventory.Launcher{Name: inventory.LauncherKubernetes, Pod: pod}},
		{"kubernetes systemd, containerd", v2("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + underscores(pod) + ".slice/cri-containerd-" + id + ".scope"), RuntimeContainerd, &inventory.Launcher{Name: inventory.LauncherKubernetes, Pod: pod}},
		{"kubernetes guaranteed class", v2("/kubepods.slice/kubepods-pod" + underscores(pod) + ".slice/crio-" + id + ".scope"), RuntimeCRIO, &inventory.Launcher{Name: inventory.LauncherKubernetes, Pod: pod}},
		{"cri-o without a readable pod", v2("/crio-" + id + ".scope"), RuntimeCRIO, &inventory.Launcher{Name: inventory.LauncherKubernetes}},
		{"trap: pod<not a uid>", v2("/kubepods/burstable/podnotauid/" + id), RuntimeKubernetes, &inventory.Launcher{Name: inventory.LauncherKubernetes}},
		{"unknown runtime", v2("/actions_job/" + id), RuntimeUnknown, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ContainerLauncher(tc.runtime, tc.cgroup); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ContainerLauncher(%q) = %+v; want %+v", tc.runtime, got, tc.want)
			}
		})
	}
}

func underscores(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

func TestEngineLauncher(t *testing.T) {
	const pod = "6b1c0f3e-8a2d-4e5f-9a7b-0c1d2e3f4a5b"
	for _, tc := range []struct {
		labels map[string]string
		want   *inventory.Launcher
	}{
		{nil, &inventory.Launcher{Name: inventory.LauncherDocker}},
		{map[string]string{labelPodUID: pod}, &inventory.Launcher{Name: inventory.LauncherKubernetes, Pod: pod}},
		{map[string]string{labelPodUID: "\x1b[2J"}, &inventory.Launcher{Name: inventory.LauncherDocker}},
	} {
		if got := engineLauncher(tc.labels); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("engineLauncher(%q) = %+v; want %+v", tc.labels, got, tc.want)
		}
	}
}

func TestNspawnMachine(t *testing.T) {
	for cmdline, want := range map[string]string{
		"systemd-nspawn -D /var/lib/machines/box":               "box",
		"systemd-nspawn --directory=/srv/roots/ci/ /bin/true":   "ci",
		"systemd-nspawn -i /images/debian.raw":                  "debian",
		"systemd-nspawn -M named -D /x":                         "named",
		"systemd-nspawn --machine named":                        "named",
		"systemd-nspawn -D /x -- -M inner":                      "x",
		"systemd-nspawn -D /srv/a /usr/bin/python3 -M not-mine": "a",
		"systemd-nspawn":                                        "",
	} {
		if got := nspawnMachine(cmdline); got != want {
			t.Errorf("nspawnMachine(%q) = %q; want %q", cmdline, got, want)
		}
	}
}

func TestParseStepdTitle(t *testing.T) {
	for _, tc := range []struct {
		title, job, step string
		ok               bool
	}{
		{"slurmstepd: [42.0]", "42", "0", true},
		{"slurmstepd: [42.batch]", "42", "batch", true},
		{"slurmstepd: [42.extern]", "42", "extern", true},
		{"slurmstepd: [42]", "42", "", true},
		{"slurmstepd: [42.rm -rf]", "", "", false},
		{"slurmstepd: [x.0]", "", "", false},
		{"slurmstepd:", "", "", false},
		{"/usr/sbin/slurmstepd", "", "", false},
	} {
		job, step, ok := parseStepdTitle(tc.title)
		if job != tc.job || step != tc.step || ok != tc.ok {
			t.Errorf("parseStepdTitle(%q) = %q, %q, %v; want %q, %q, %v", tc.title, job, step, ok, tc.job, tc.step, tc.ok)
		}
	}
}

func TestImageFromEnviron(t *testing.T) {
	for env, want := range map[string]string{
		"HOME=/home/a\x00APPTAINER_CONTAINER=/scratch/a.sif\x00SECRET=x\x00": "/scratch/a.sif",
		"SINGULARITY_CONTAINER=/old/b.simg\x00":                              "/old/b.simg",
		"APPTAINER_CONTAINER=relative.sif\x00":                               "",
		"APPTAINER_CONTAINER=\x00":                                           "",
		"XAPPTAINER_CONTAINER=/no\x00":                                       "",
		"SECRET=APPTAINER_CONTAINER=/no\x00":                                 "",
		"":                                                                   "",
	} {
		if got := ImageFromEnviron([]byte(env)); got != want {
			t.Errorf("ImageFromEnviron(%q) = %q; want %q", env, got, want)
		}
	}
}

func TestUnescapeUnit(t *testing.T) {
	for in, want := range map[string]string{
		`build\x2dbox`: "build-box",
		`plain`:        "plain",
		`bad\xZZ`:      `bad\xZZ`,
		`cut\x2`:       `cut\x2`,
	} {
		if got := UnescapeUnit(in); got != want {
			t.Errorf("UnescapeUnit(%q) = %q; want %q", in, got, want)
		}
	}
}
