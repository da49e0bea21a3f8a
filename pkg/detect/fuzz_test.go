package detect

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Fuzz targets for the parsers and rules that read what processes and
// container creators control: /proc files (a process sets its own command
// line and name), cgroup paths (a container engine, or a user with a
// delegated cgroup, names them) and container inspect data (labels,
// environment, device and mount paths). CI runs each for a few seconds;
// the seeds and any crasher under testdata/fuzz run with every `go test`.

// fuzzSeedFiles returns the contents of the fake /proc trees' files with
// the given name, so every fixture a unit test reads also seeds the fuzzer.
func fuzzSeedFiles(f *testing.F, name string) [][]byte {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*", "*", name))
	if err != nil {
		f.Fatal(err)
	}
	more, err := filepath.Glob(filepath.Join("testdata", "*", "*", "*", name))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, p := range append(paths, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	if len(out) == 0 {
		f.Fatalf("no testdata/*/*/%s to seed from", name)
	}
	return out
}

const fuzzID = "e46e438df8962a47173a07e8e82fae102768e3793ace0e89b113f8772d6faf87"

// fuzzCgroupSeeds are cgroup files of every runtime and driver, and the
// traps: mount units and conmon scopes holding IDs, upper-case and short
// hex, nested engines.
var fuzzCgroupSeeds = []string{
	"12:pids:/docker/" + fuzzID + "\n4:cpu,cpuacct:/docker/" + fuzzID + "\n1:name=systemd:/docker/" + fuzzID + "\n",
	"0::/system.slice/docker-" + fuzzID + ".scope\n",
	"10:memory:/docker/" + fuzzID + "\n0::/system.slice/containerd.service\n",
	"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f.slice/cri-containerd-" + fuzzID + ".scope\n",
	"10:memory:/kubepods/besteffort/pod0a1b2c3d-4e5f/" + fuzzID + "\n",
	"0::/machine.slice/libpod-" + fuzzID + ".scope/container\n",
	"0::/machine.slice/libpod-conmon-" + fuzzID + ".scope\n",
	"1:name=systemd:/libpod_parent/" + fuzzID + "/libpod-" + strings.ToUpper(fuzzID) + "\n",
	"0::/system.slice/run-docker-runtime\\x2drunc-moby-" + fuzzID + ".mount\n",
	"0::/system.slice/crio-" + fuzzID + ".scope\n0::/system.slice/crio-conmon-" + fuzzID + ".scope\n",
	"0::/actions_job/" + fuzzID + "\n",
	"0::/docker/" + fuzzID + "/docker/" + strings.Repeat("f", 64) + "\n",
	"0::/user.slice/user-1000.slice/session-3.scope\n",
	"0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope\n",
	"0::/\n",
	"0::/docker/" + fuzzID[:63] + "\n",
	"x:y\n::\n:::\n-1::/docker/" + fuzzID + "\n99999999999999999999::/\n",
	"0::relative/" + fuzzID + "\r\n\x00\xff",
}

// checkContainerFromCgroup checks the contract of ContainerFromCgroup.
func checkContainerFromCgroup(t *testing.T, lines []CgroupLine) {
	t.Helper()
	id, rt := ContainerFromCgroup(lines)
	if (id == "") != (rt == "") {
		t.Fatalf("ContainerFromCgroup(%+v) = %q, %q: an ID without a runtime or a runtime without an ID", lines, id, rt)
	}
	if id != "" && !inventory.ValidContainerID(id) {
		t.Fatalf("ContainerFromCgroup(%+v) = %q: not 64 lowercase hex digits", lines, id)
	}
	switch rt {
	case "", RuntimeDocker, RuntimePodman, RuntimeContainerd, RuntimeCRIO, RuntimeKubernetes, RuntimeUnknown:
	default:
		t.Fatalf("ContainerFromCgroup(%+v): unknown runtime %q", lines, rt)
	}
	if id != "" {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l.Path, id)
		}
		if !found {
			t.Fatalf("ContainerFromCgroup(%+v) = %q: an ID in no path", lines, id)
		}
	}
	if uid, ok := SessionUID(lines); ok && uid < 0 {
		t.Fatalf("SessionUID(%+v) = %d", lines, uid)
	}
}

// FuzzParseCgroupFile: ParseCgroupFile never panics, keeps only lines with
// an absolute path and no line break inside one, and what it returns
// satisfies ContainerFromCgroup's contract.
func FuzzParseCgroupFile(f *testing.F) {
	for _, s := range fuzzCgroupSeeds {
		f.Add([]byte(s))
	}
	for _, s := range fuzzSeedFiles(f, "cgroup") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := ParseCgroupFile(data)
		for _, l := range lines {
			if !strings.HasPrefix(l.Path, "/") || strings.ContainsAny(l.Path, "\n") {
				t.Fatalf("line %+v: path not absolute or spans lines", l)
			}
			for _, c := range l.Controllers {
				if strings.Contains(c, ":") {
					t.Fatalf("line %+v: controller holds the field separator", l)
				}
			}
		}
		checkContainerFromCgroup(t, lines)
	})
}

// FuzzContainerFromCgroup: any set of lines — paths the parser would never
// produce included — gives either nothing or a 64-hex ID with a runtime.
func FuzzContainerFromCgroup(f *testing.F) {
	for _, s := range fuzzCgroupSeeds {
		for _, l := range ParseCgroupFile([]byte(s)) {
			f.Add(l.Hierarchy, strings.Join(l.Controllers, ","), l.Path, "/system.slice/containerd.service")
		}
	}
	f.Add(0, "", "docker-"+fuzzID+".scope", "")
	f.Add(3, "memory", "/docker//"+fuzzID+"/", "/docker/"+fuzzID+"/..")
	f.Fuzz(func(t *testing.T, hierarchy int, controllers, path, otherPath string) {
		var ctrl []string
		if controllers != "" {
			ctrl = strings.Split(controllers, ",")
		}
		lines := []CgroupLine{
			{Hierarchy: hierarchy, Controllers: ctrl, Path: path},
			{Hierarchy: 0, Path: otherPath},
		}
		checkContainerFromCgroup(t, lines[:1])
		checkContainerFromCgroup(t, lines)
	})
}

// FuzzParseStatus: parseStatus never panics; a uid it accepts is a real
// uid_t and the namespace PID is never negative.
func FuzzParseStatus(f *testing.F) {
	for _, s := range fuzzSeedFiles(f, "status") {
		f.Add(s)
	}
	for _, s := range []string{
		"Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t4242\t1\n",
		"Uid:\t0\t0\t0\t0\n",
		"Uid:\t4294967295\t0\t0\t0\nNSpid:\t1\n",
		"Uid:\t4294967296\n",
		"Uid:\n",
		"NSpid:\t-1\nUid:\t1\n",
		"NSpid:\t\nUid:\t1\n",
		"Uid:1000\nUid:-5\n",
		"Name:\t\x1b[2J:\nUid:\t1000\n",
		"Uid:\t+7\nNSpid:\t0x10\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		uid, nspid, err := parseStatus(data)
		if err != nil {
			return
		}
		if uid < 0 || uid > 1<<32-1 {
			t.Fatalf("parseStatus(%q): uid %d", data, uid)
		}
		if nspid < 0 {
			t.Fatalf("parseStatus(%q): nspid %d", data, nspid)
		}
	})
}

// FuzzParseCmdline: parseCmdline never panics, keeps no NUL, and does not
// grow what readCapped let through: the result is at most MaxCommand
// bytes (or "[comm]" for a process without a command line).
func FuzzParseCmdline(f *testing.F) {
	for _, s := range fuzzSeedFiles(f, "cmdline") {
		f.Add(s, "python3")
	}
	f.Add([]byte{}, "kworker/0:1")
	f.Add([]byte("\x00\x00\x00"), "zombie")
	f.Add([]byte("python\x00-c\x00print('\x1b[2J')\x00\x00"), "python")
	f.Add([]byte("\xff\xfe\x00\n\r\x00"), "\x1b]0;t\x07")
	f.Add(bytes.Repeat([]byte("a\x00"), MaxCommand), "sleep")
	f.Fuzz(func(t *testing.T, data []byte, comm string) {
		// The kernel keeps comm as a C string of at most 15 bytes;
		// readCapped keeps at most MaxCommand bytes of the command line.
		comm, _, _ = strings.Cut(comm, "\x00")
		if len(comm) > 15 {
			comm = comm[:15]
		}
		if len(data) > MaxCommand {
			data = data[:MaxCommand]
		}
		got := parseCmdline(data, comm)
		if len(got) > MaxCommand {
			t.Fatalf("parseCmdline: %d bytes, over MaxCommand %d", len(got), MaxCommand)
		}
		if strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("parseCmdline(%q) = %q: holds a NUL", data, got)
		}
		if trimmed := bytes.TrimRight(data, "\x00"); len(trimmed) > 0 && len(got) != len(trimmed) {
			t.Fatalf("parseCmdline(%q) = %q: %d bytes from %d", data, got, len(got), len(trimmed))
		}
	})
}

// FuzzParseStat: parseStat never panics, and a name it returns is the text
// between the first "(" and the last ")".
func FuzzParseStat(f *testing.F) {
	for _, s := range fuzzSeedFiles(f, "stat") {
		f.Add(s)
	}
	for _, s := range []string{
		"4242 (python3) S 1 4242 4242 0 -1 4194560 1200 0 3 0 42 7 0 0 20 0 1 0 360000 12345678 900",
		"4242 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
		"4242 (\x1b[2J\n) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999999999999999999",
		"4242 () Z",
		") (",
		"(",
		"1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStat(data)
		if err != nil {
			return
		}
		comm := st.comm
		open := bytes.IndexByte(data, '(')
		closing := bytes.LastIndexByte(data, ')')
		if open < 0 || closing < open || comm != string(data[open+1:closing]) {
			t.Fatalf("parseStat(%q): comm %q", data, comm)
		}
	})
}

// fuzzSecret marks an environment value that must never leave DeclaredGPU.
const fuzzSecret = "s3cr3t-"

// FuzzDeclaredGPU: whatever the labels, environment, device, mount and
// device-request strings of a container hold, DeclaredGPU never panics;
// its devices are short printable strings, sorted and unique ("all"
// alone); Declared is true exactly when a channel is named; and no
// environment value but NVIDIA_VISIBLE_DEVICES leaves it.
func FuzzDeclaredGPU(f *testing.F) {
	f.Add("GPU-2c4f9d1e-8a7b-4c3d-9e0f-123456789abc", "GPU-aaa,GPU-bbb", "0:1,1:2", "0,1", "/dev/nvidia0",
		"/dev/nvidia1", "/dev", "nvidia.com/gpu=2", "0,2", "nvidia", "gpu", 0, "", "nvidia", "hunter2", false)
	f.Add("", "", "", "all", "/dev/nvidiactl", "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-uvm", "nvidia.com/gpu=all", "",
		"", "gpu", -1, "nvidia", "runc", "x", true)
	f.Add("\x1b[2J", "GPU-\x1b]0;t\x07,\nGPU-x", "\xff\xfe,"+strings.Repeat("9", 200), "void", "relative/dev/nvidia0",
		"/dev/../dev/./nvidia3", "/dev/nvidia0:/x:ro", "nvidia.com/gpu=\u202e0", " 1 , ,2", "cdi", "compute", 2, "", "", "", false)
	f.Add("GPU-"+strings.Repeat("é", 70), " ", ",,,", "none", "", "", "", "", "", "nvidia", "", 0, "nvidia", "", "NVIDIA_VISIBLE_DEVICES=7", false)
	f.Fuzz(func(t *testing.T, uuid, uuids, slots, visible, devicePath, bindSrc, mountSrc, cdiName, reqIDs, driver, capability string,
		count int, runtime, defaultRuntime, secret string, privileged bool) {
		secret = fuzzSecret + secret
		c := &container.InspectResponse{
			HostConfig: &container.HostConfig{
				Runtime:    runtime,
				Privileged: privileged,
				Binds:      []string{bindSrc + ":/dev/nvidia0", "named-volume:" + bindSrc},
				Mounts:     []mount.Mount{{Type: mount.TypeBind, Source: mountSrc, Target: "/x"}},
				Resources: container.Resources{
					Devices: []container.DeviceMapping{{PathOnHost: devicePath}, {PathOnHost: cdiName}},
					DeviceRequests: []container.DeviceRequest{
						{Driver: driver, Count: count, DeviceIDs: strings.Split(reqIDs, ";"), Capabilities: [][]string{{capability}}},
						{Driver: driverCDI, DeviceIDs: []string{cdiName}},
					},
				},
			},
			Config: &container.Config{
				Env: []string{"PASSWORD=" + secret, envVisibleDevices + "=" + visible, "AWS_SECRET_ACCESS_KEY=" + secret, secret},
				Labels: map[string]string{
					labelGPUUUID: uuid, labelGPUUUIDs: uuids, labelGPUSlots: slots,
					"ds01.gpu.allocated": secret, "db.password": secret,
				},
			},
			Mounts: []container.MountPoint{{Type: mount.TypeBind, Source: mountSrc + bindSrc}},
		}
		got := DeclaredGPU(c, defaultRuntime)
		if got.Declared != (len(got.Channels) > 0) {
			t.Fatalf("declared %v with channels %v", got.Declared, got.Channels)
		}
		last := -1
		for _, ch := range got.Channels {
			i := slices.Index(channelOrder, ch)
			if i <= last {
				t.Fatalf("channels %v: unknown, repeated or out of order", got.Channels)
			}
			last = i
		}
		for i, d := range got.Devices {
			if d == "" || len(d) > maxDeviceStringSize || !utf8.ValidString(d) || strings.TrimSpace(d) != d {
				t.Fatalf("device %q: empty, over %d bytes, invalid UTF-8 or padded", d, maxDeviceStringSize)
			}
			for _, r := range d {
				if unicode.IsControl(r) {
					t.Fatalf("device %q holds control character %U", d, r)
				}
			}
			if i > 0 && compareDevices(got.Devices[i-1], d) >= 0 {
				t.Fatalf("devices %q not sorted and unique", got.Devices)
			}
		}
		if slices.Contains(got.Devices, deviceAll) && len(got.Devices) != 1 {
			t.Fatalf("devices %q: all is not alone", got.Devices)
		}
		if len(got.Devices) > 0 && !got.Declared {
			t.Fatalf("devices %q without a declaration", got.Devices)
		}
		// An environment value other than NVIDIA_VISIBLE_DEVICES must not
		// come out, unless some other input carried the same text.
		others := strings.Join([]string{uuid, uuids, slots, visible, devicePath, bindSrc, mountSrc, cdiName, reqIDs}, "\x00")
		if !strings.Contains(others, fuzzSecret) {
			for _, d := range got.Devices {
				if strings.Contains(d, fuzzSecret) {
					t.Fatalf("device %q carries an environment or unread label value", d)
				}
			}
		}
	})
}

// FuzzProcessLauncher: the launcher rules never panic on any cgroup file
// or ancestor; what they return is a known launcher, a Slurm job they
// accept is well formed, and no field holds what an environment variable
// other than the image path could have put there.
func FuzzProcessLauncher(f *testing.F) {
	for _, s := range fuzzCgroupSeeds {
		f.Add([]byte(s), "slurmstepd", "slurmstepd: [42.0]", uint32(0), []byte("APPTAINER_CONTAINER=/a.sif\x00"))
	}
	f.Add([]byte("0::/system.slice/slurmstepd.scope/job_1/step_0/user/task_0\n"), "starter", "Apptainer runtime parent", uint32(1000), []byte{})
	f.Add([]byte("0::/machine.slice/machine-a\\x2db.scope/payload\n"), "systemd-nspawn", "systemd-nspawn -M x -D /y", uint32(0), []byte{})
	f.Add([]byte("1:name=systemd:/lxc.payload.c\n0::/lxc.payload.c/.lxc\n"), "lxc-start", "[lxc monitor] /var/lib/lxc c", uint32(0), []byte{})
	f.Add([]byte("0::/user.slice/user-1000.slice/session-3.scope\n"), "sshd", "sshd: a@pts/0", uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, cgroup []byte, comm, cmdline string, uid uint32, environ []byte) {
		a := Ancestor{PID: 2, UID: int(uid), Comm: comm, Cmdline: cmdline}
		image := ImageFromEnviron(environ)
		if image != "" && (image[0] != '/' || !bytes.Contains(environ, []byte("_CONTAINER="+image))) {
			t.Fatalf("ImageFromEnviron(%q) = %q", environ, image)
		}
		l := ProcessLauncher(ParseCgroupFile(cgroup), []Ancestor{a, a}, a, image)
		if l == nil {
			return
		}
		if !slices.Contains(inventory.Launchers, l.Name) {
			t.Fatalf("launcher %q is none of inventory.Launchers", l.Name)
		}
		if l.Job != "" && !validJobID(l.Job) || l.Step != "" && !validStepID(l.Step) {
			t.Fatalf("job %q step %q accepted", l.Job, l.Step)
		}
		if l.Image != "" && (l.Name != inventory.LauncherApptainer || l.Image != image) {
			t.Fatalf("image %q on a %s launcher", l.Image, l.Name)
		}
		_ = l.String()
	})
}
