//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

const (
	discovered    = inventory.EventContainerDiscovered
	statusChanged = inventory.EventContainerStatusChanged
	removed       = inventory.EventContainerExited
)

// gpuNode makes /dev/nvidia<minor> (a real character device with NVIDIA's
// major number) when the machine has no such node, so --device and
// bind-mount containers can be created and run.
func gpuNode(t *testing.T, minor int) {
	t.Helper()
	node := inventory.DeviceNode(minor)
	if _, err := os.Stat(node); err == nil {
		return
	}
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, 195<<8|minor); err != nil {
		t.Fatalf("mknod %s: %v", node, err)
	}
	t.Cleanup(func() { os.Remove(node) })
}

type wantContainer struct {
	typ        string
	status     string
	user       string
	userSource string
	declared   bool
	channels   []string
	devices    []string
}

// TestScanOriginsAndGPUChannels creates containers of every origin and every
// declared-GPU channel — running, created and exited — scans twice, and
// checks each container's type, user, user_source, GPU access and events.
func TestScanOriginsAndGPUChannels(t *testing.T) {
	gpuNode(t, 0)
	alice := newUser(t, "ds01it-alice")
	bob := newUser(t, "ds01it-bob")
	img := env.image
	want := map[string]wantContainer{}
	add := func(id string, w wantContainer) { want[id] = w }

	add(container(t, "run", "-d", img, "sleep", "600"),
		wantContainer{typ: "raw-docker", status: "running", user: "root", userSource: "container_process_uid"})
	add(container(t, "create", img, "sleep", "1"),
		wantContainer{typ: "raw-docker", status: "created", user: "unknown", userSource: "none"})
	exited := container(t, "run", "-d", img, "true")
	docker(t, "wait", exited)
	add(exited, wantContainer{typ: "raw-docker", status: "exited", user: "unknown", userSource: "none"})
	add(container(t, "run", "-d", "--label", "ds01.managed=true", "--label", "ds01.user="+alice.name, img, "sleep", "600"),
		wantContainer{typ: "ds01-managed", status: "running", user: alice.name, userSource: "label:ds01.user"})
	add(container(t, "create", "--label", "aime.mlc.USER="+bob.name, img),
		wantContainer{typ: "raw-docker", status: "created", user: bob.name, userSource: "label:aime.mlc.USER"})
	add(container(t, "run", "-d", "-v", bob.ownedDir(t, "data")+":/data", img, "sleep", "600"),
		wantContainer{typ: "raw-docker", status: "running", user: bob.name, userSource: "bind_mount_home_owner"})
	add(container(t, "run", "-d", "--user", strconv.Itoa(alice.uid), img, "sleep", "600"),
		wantContainer{typ: "raw-docker", status: "running", user: alice.name, userSource: "container_config_user"})
	add(container(t, "create", "--name", "vsc-ds01it-"+strconv.Itoa(os.Getpid()), img),
		wantContainer{typ: "devcontainer", status: "created", user: "unknown", userSource: "none"})

	// Every declared-GPU channel.
	add(container(t, "create", "--gpus", "all", img, "sleep", "1"),
		wantContainer{typ: "raw-docker", status: "created", user: "unknown", userSource: "none",
			declared: true, channels: []string{"device_request"}, devices: []string{"all"}})
	add(container(t, "create", "--gpus", `"device=1,2"`, img, "sleep", "1"),
		wantContainer{typ: "raw-docker", status: "created", user: "unknown", userSource: "none",
			declared: true, channels: []string{"device_request"}, devices: []string{"1", "2"}})
	add(container(t, "run", "-d", "--device", "/dev/nvidia0", img, "sleep", "600"),
		wantContainer{typ: "raw-docker", status: "running", user: "root", userSource: "container_process_uid",
			declared: true, channels: []string{"device"}, devices: []string{"/dev/nvidia0"}})
	add(container(t, "run", "-d", "-v", "/dev/nvidia0:/dev/nvidia0", img, "sleep", "600"),
		wantContainer{typ: "raw-docker", status: "running", user: "root", userSource: "container_process_uid",
			declared: true, channels: []string{"bind_mount"}, devices: []string{"/dev/nvidia0"}})
	add(container(t, "run", "-d", "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=3", img, "sleep", "600"),
		wantContainer{typ: "raw-docker", status: "running", user: "root", userSource: "container_process_uid",
			declared: true, channels: []string{"runtime"}, devices: []string{"3"}})
	add(container(t, "create", "--privileged", img),
		wantContainer{typ: "raw-docker", status: "created", user: "unknown", userSource: "none",
			declared: true, channels: []string{"privileged"}, devices: []string{"all"}})
	add(container(t, "create", "--label", "ds01.gpu.uuids=GPU-aaa,GPU-bbb", "--label", "ds01.gpu.allocated=2026-11-26T09:00:00Z", img),
		wantContainer{typ: "raw-docker", status: "created", user: "unknown", userSource: "none",
			declared: true, channels: []string{"allocator_label"}, devices: []string{"GPU-aaa", "GPU-bbb"}})

	// A compose stack, made by docker-compose in a directory bob owns.
	composeDir := bob.ownedDir(t, "stack")
	os.WriteFile(filepath.Join(composeDir, "docker-compose.yml"),
		[]byte("version: '2.4'\nservices:\n  train:\n    image: "+img+"\n    command: sleep 600\n"), 0o644)
	project := "ds01it" + strconv.Itoa(os.Getpid())
	compose := exec.Command("docker-compose", "-p", project, "up", "-d")
	compose.Dir = composeDir
	compose.Env = append(os.Environ(), "DOCKER_HOST="+env.dockerHost)
	if out, err := compose.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		down := exec.Command("docker-compose", "-p", project, "down")
		down.Dir, down.Env = composeDir, compose.Env
		down.Run()
	})
	composeID := lastLine(docker(t, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+project))
	add(composeID, wantContainer{typ: "docker-compose", status: "running", user: bob.name, userSource: "compose_working_dir_owner"})

	// A devcontainer, made by the devcontainer CLI in a folder alice owns.
	if env.devcontainer != "" {
		ws := alice.ownedDir(t, "project")
		os.MkdirAll(filepath.Join(ws, ".devcontainer"), 0o755)
		os.WriteFile(filepath.Join(ws, ".devcontainer", "devcontainer.json"),
			[]byte(`{"image": "`+img+`", "overrideCommand": true}`), 0o644)
		up := exec.Command(env.devcontainer, "up", "--workspace-folder", ws)
		up.Env = append(os.Environ(), "DOCKER_HOST="+env.dockerHost)
		if out, err := up.CombinedOutput(); err != nil {
			t.Fatalf("devcontainer up: %v\n%s", err, out)
		}
		dcID := lastLine(docker(t, "ps", "-aq", "--no-trunc", "--filter", "label=devcontainer.local_folder="+ws))
		t.Cleanup(func() { dockerErr("rm", "-f", dcID) })
		add(dcID, wantContainer{typ: "devcontainer", status: "running", user: alice.name, userSource: "devcontainer_folder_owner"})
	}
	mustHave(t, env.devcontainer != "", "devcontainer CLI not installed: the devcontainer origin was not tested")

	s := newScanner(t)
	inv := s.scan(t)
	if !inv.Sources["docker"].OK {
		t.Fatalf("docker source not ok: %+v", inv.Sources["docker"])
	}
	for id, w := range want {
		c := mustFind(t, inv, id)
		got := wantContainer{typ: c.Type, status: c.Status, user: c.User, userSource: c.UserSource,
			declared: c.GPU.Declared, channels: c.GPU.Channels, devices: c.GPU.Devices}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("container %s (%s):\n got  %+v\n want %+v", id[:12], c.Name, got, w)
		}
		if c.Stale || c.DetectedAt.IsZero() || c.CreatedAt.IsZero() {
			t.Errorf("container %s: stale=%v detected_at=%v created_at=%v", id[:12], c.Stale, c.DetectedAt, c.CreatedAt)
		}
		if c.Type != "ds01-managed" && c.DetectedLabels["ds01.detected.user"] != w.user {
			t.Errorf("container %s: detected labels %v, want ds01.detected.user=%s", id[:12], c.DetectedLabels, w.user)
		}
		if w.status == "running" && c.MemoryBytes == nil {
			t.Errorf("container %s: running but no memory figure", id[:12])
		}
		if w.status == "exited" && (c.ExitCode == nil || *c.ExitCode != 0) {
			t.Errorf("container %s: exit code %v, want 0", id[:12], c.ExitCode)
		}
		if c.Launcher == nil || *c.Launcher != (inventory.Launcher{Name: "docker"}) {
			t.Errorf("container %s: launcher %+v, want docker", id[:12], c.Launcher)
		}
	}

	// Every container was discovered exactly once, with a well-formed envelope.
	for _, e := range s.allEvents(t) {
		if !eventStamp.MatchString(e.Timestamp) || e.Source != "ds01-scan" || e.SchemaVersion != "1" {
			t.Errorf("bad envelope: %+v", e)
		}
		// A workload's event carries its user, "unknown" included, as the
		// lab's writer keeps it; never an empty one.
		if strings.HasPrefix(e.EventType, "detection.container_") && (e.User == nil || *e.User == "") {
			t.Errorf("a container's event without its user: %s", e.line)
		}
		if e.Details["scan_id"] != inv.Scan.ID {
			t.Errorf("event scan_id %v, want %s", e.Details["scan_id"], inv.Scan.ID)
		}
	}
	for id := range want {
		if got := s.eventsFor(t, id); !reflect.DeepEqual(got, []string{discovered}) {
			t.Errorf("container %s after the first scan: events %v, want one discovered", id[:12], got)
		}
	}

	// A second scan with nothing changed writes no event and keeps every
	// detected_at; running containers now have a CPU figure.
	time.Sleep(200 * time.Millisecond)
	inv2 := s.scan(t)
	for id := range want {
		if got := s.eventsFor(t, id); !reflect.DeepEqual(got, []string{discovered}) {
			t.Errorf("container %s after an unchanged scan: events %v, want only the first discovered", id[:12], got)
		}
		c1, c2 := mustFind(t, inv, id), mustFind(t, inv2, id)
		if !reflect.DeepEqual(c1.Launcher, c2.Launcher) {
			t.Errorf("container %s: launcher %+v, then %+v on a scan that did not inspect it", id[:12], c1.Launcher, c2.Launcher)
		}
		if !c1.DetectedAt.Equal(c2.DetectedAt) {
			t.Errorf("container %s: detected_at moved from %v to %v", id[:12], c1.DetectedAt, c2.DetectedAt)
		}
		if c2.Status == "running" && c2.CPUPercent == nil {
			t.Errorf("container %s: running, second scan, but no CPU%%", id[:12])
		}
	}
}

// TestScanLifecycleEvents follows one container through stop, start and rm:
// one event per change, nothing on unchanged scans.
func TestScanLifecycleEvents(t *testing.T) {
	id := container(t, "run", "-d", env.image, "sleep", "600")
	s := newScanner(t)
	s.scan(t)
	s.scan(t)
	docker(t, "stop", "-t", "0", id)
	inv := s.scan(t)
	if c := mustFind(t, inv, id); c.Status != "exited" || c.ExitCode == nil {
		t.Errorf("after stop: status %q exit code %v", c.Status, c.ExitCode)
	}
	s.scan(t)
	docker(t, "rm", id)
	inv = s.scan(t)
	if find(inv, id) != nil {
		t.Errorf("removed container still in the inventory")
	}
	s.scan(t)
	want := []string{discovered, statusChanged, removed}
	if got := s.eventsFor(t, id); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for _, e := range s.allEvents(t) {
		if e.EventType == statusChanged && e.ContainerID == id {
			if e.Details["from"] != "running" || e.Details["to"] != "exited" {
				t.Errorf("status change %v → %v, want running → exited", e.Details["from"], e.Details["to"])
			}
		}
	}
}

// TestScanRestartBetweenScans: a container restarted between two scans keeps
// its state ("running") but gets a new main process; the scanner notices and
// re-inspects it rather than reading another process's cgroup.
func TestScanRestartBetweenScans(t *testing.T) {
	id := container(t, "run", "-d", env.image, "sleep", "600")
	s := newScanner(t)
	before := mustFind(t, s.scan(t), id)
	docker(t, "restart", "-t", "0", id)
	after := mustFind(t, s.scan(t), id)
	if after.PID == before.PID || after.PID == 0 {
		t.Errorf("main PID %d after restart, was %d", after.PID, before.PID)
	}
	if after.StartedAt == nil || before.StartedAt == nil || !after.StartedAt.After(*before.StartedAt) {
		t.Errorf("started_at not updated by restart: %v → %v", before.StartedAt, after.StartedAt)
	}
	if after.MemoryBytes == nil {
		t.Errorf("no memory figure after restart")
	}
}
