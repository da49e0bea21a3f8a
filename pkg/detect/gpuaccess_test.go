package detect

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/ds01-project/ds01/pkg/inventory"
)

const (
	chReq   = inventory.ChannelDeviceRequest
	chRT    = inventory.ChannelRuntime
	chCDI   = inventory.ChannelCDI
	chDev   = inventory.ChannelDevice
	chBind  = inventory.ChannelBindMount
	chPriv  = inventory.ChannelPrivileged
	chAlloc = inventory.ChannelAllocatorLabel
)

func declared(channels []string, devices ...string) inventory.GPUAccess {
	a := inventory.GPUAccess{Declared: true, Channels: channels}
	if len(devices) > 0 {
		a.Devices = devices
	}
	return a
}

func chans(c ...string) []string { return c }

// withHost builds an inspect response around a host config and env.
func withHost(hc container.HostConfig, env ...string) *container.InspectResponse {
	return &container.InspectResponse{
		HostConfig: &hc,
		Config:     &container.Config{Env: env},
	}
}

func withLabels(labels map[string]string) *container.InspectResponse {
	return &container.InspectResponse{
		HostConfig: &container.HostConfig{Runtime: "runc"},
		Config:     &container.Config{Labels: labels},
	}
}

func withRequests(reqs ...container.DeviceRequest) *container.InspectResponse {
	return withHost(container.HostConfig{
		Runtime:   "runc",
		Resources: container.Resources{DeviceRequests: reqs},
	})
}

func withDevices(paths ...string) *container.InspectResponse {
	var devs []container.DeviceMapping
	for _, p := range paths {
		devs = append(devs, container.DeviceMapping{PathOnHost: p, PathInContainer: p, CgroupPermissions: "rwm"})
	}
	return withHost(container.HostConfig{Runtime: "runc", Resources: container.Resources{Devices: devs}})
}

func fromJSON(t *testing.T, s string) *container.InspectResponse {
	t.Helper()
	var c container.InspectResponse
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("unmarshal inspect fixture: %v", err)
	}
	return &c
}

func TestDeclaredGPU(t *testing.T) {
	gpuCaps := [][]string{{"gpu"}}
	tests := []struct {
		name           string
		c              *container.InspectResponse
		defaultRuntime string
		want           inventory.GPUAccess
	}{
		// Nothing declared.
		{"nil container", nil, "nvidia", inventory.GPUAccess{}},
		{"nil config and host config", &container.InspectResponse{}, "nvidia", inventory.GPUAccess{}},
		{"no gpu", withHost(container.HostConfig{Runtime: "runc", Binds: []string{"/home/a:/work", "data:/data"}}, "PATH=/usr/bin"), "runc", inventory.GPUAccess{}},

		// --gpus / DeviceRequests.
		{"gpus all", withRequests(container.DeviceRequest{Count: -1, Capabilities: gpuCaps}), "runc", declared(chans(chReq), "all")},
		{"gpus device=0,2", withRequests(container.DeviceRequest{DeviceIDs: []string{"0", "2"}, Capabilities: gpuCaps}), "runc", declared(chans(chReq), "0", "2")},
		{"gpus device=GPU uuid", withRequests(container.DeviceRequest{DeviceIDs: []string{"GPU-abc"}, Capabilities: gpuCaps}), "runc", declared(chans(chReq), "GPU-abc")},
		{"gpus MIG ids", withRequests(container.DeviceRequest{DeviceIDs: []string{"MIG-1234", "0:1"}, Capabilities: gpuCaps}), "runc", declared(chans(chReq), "0:1", "MIG-1234")},
		{"gpus count 2", withRequests(container.DeviceRequest{Count: 2, Capabilities: gpuCaps}), "runc", declared(chans(chReq))},
		{"gpus count 0 is void", withRequests(container.DeviceRequest{Count: 0, Capabilities: gpuCaps}), "runc", inventory.GPUAccess{}},
		{"driver nvidia without capabilities", withRequests(container.DeviceRequest{Driver: "nvidia", Count: -1}), "runc", declared(chans(chReq), "all")},
		{"capability gpu with non-nvidia driver", withRequests(container.DeviceRequest{Driver: "other", Count: 1, Capabilities: [][]string{{"compute"}, {"gpu", "utility"}}}), "runc", declared(chans(chReq))},
		{"ids joined with comma through the API", withRequests(container.DeviceRequest{DeviceIDs: []string{"1,3"}, Capabilities: gpuCaps}), "runc", declared(chans(chReq), "1", "3")},
		{"non-gpu device request", withRequests(container.DeviceRequest{Driver: "fpga", Count: -1, Capabilities: [][]string{{"fpga"}}}), "runc", inventory.GPUAccess{}},

		// Runtime + NVIDIA_VISIBLE_DEVICES.
		{"runtime nvidia all", withHost(container.HostConfig{Runtime: "nvidia"}, "PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all"), "runc", declared(chans(chRT), "all")},
		{"runtime nvidia list", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES=0,1"), "runc", declared(chans(chRT), "0", "1")},
		{"runtime nvidia uuid list with spaces", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES=GPU-aaa, MIG-bbb"), "runc", declared(chans(chRT), "GPU-aaa", "MIG-bbb")},
		{"runtime nvidia void", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES=void"), "runc", inventory.GPUAccess{}},
		{"runtime nvidia none", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES=none"), "runc", inventory.GPUAccess{}},
		{"runtime nvidia empty", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES="), "runc", inventory.GPUAccess{}},
		{"runtime nvidia unset", withHost(container.HostConfig{Runtime: "nvidia"}, "PATH=/bin"), "runc", inventory.GPUAccess{}},
		{"runtime nvidia last assignment wins", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=3"), "runc", declared(chans(chRT), "3")},
		{"runtime nvidia later void wins", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=void"), "runc", inventory.GPUAccess{}},
		{"default runtime nvidia", withHost(container.HostConfig{}, "NVIDIA_VISIBLE_DEVICES=all"), "nvidia", declared(chans(chRT), "all")},
		{"default runtime nvidia nil host config", &container.InspectResponse{Config: &container.Config{Env: []string{"NVIDIA_VISIBLE_DEVICES=1"}}}, "nvidia", declared(chans(chRT), "1")},
		{"runc with env is not declared", withHost(container.HostConfig{Runtime: "runc"}, "NVIDIA_VISIBLE_DEVICES=all"), "nvidia", inventory.GPUAccess{}},
		{"empty runtime runc default with env", withHost(container.HostConfig{}, "NVIDIA_VISIBLE_DEVICES=all"), "runc", inventory.GPUAccess{}},
		{"similar env name ignored", withHost(container.HostConfig{Runtime: "nvidia"}, "XNVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES_X=all"), "runc", inventory.GPUAccess{}},

		// CDI.
		{"cdi device request", withRequests(container.DeviceRequest{Driver: "cdi", DeviceIDs: []string{"nvidia.com/gpu=0", "nvidia.com/gpu=GPU-abc"}}), "runc", declared(chans(chCDI), "0", "GPU-abc")},
		{"cdi device request all", withRequests(container.DeviceRequest{Driver: "cdi", DeviceIDs: []string{"nvidia.com/gpu=all", "nvidia.com/gpu=1"}}), "runc", declared(chans(chCDI), "all")},
		{"cdi request for other vendor", withRequests(container.DeviceRequest{Driver: "cdi", DeviceIDs: []string{"vendor.com/fpga=0"}}), "runc", inventory.GPUAccess{}},
		{"cdi name in devices", withDevices("nvidia.com/gpu=0:1"), "runc", declared(chans(chCDI), "0:1")},
		{"cdi all in devices", withDevices("nvidia.com/gpu=all"), "runc", declared(chans(chCDI), "all")},

		// --device.
		{"device nvidia0 with ctl and uvm", withDevices("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"), "runc", declared(chans(chDev), "/dev/nvidia0")},
		{"device two gpus", withDevices("/dev/nvidia10", "/dev/nvidia2"), "runc", declared(chans(chDev), "/dev/nvidia2", "/dev/nvidia10")},
		{"device control nodes only", withDevices("/dev/nvidiactl", "/dev/nvidia-uvm-tools"), "runc", declared(chans(chDev))},
		{"device nvidia-caps", withDevices("/dev/nvidia-caps/nvidia-cap21"), "runc", declared(chans(chDev), "/dev/nvidia-caps/nvidia-cap21")},
		{"device nvidia-caps directory", withDevices("/dev/nvidia-caps"), "runc", declared(chans(chDev))},
		{"device unclean path", withDevices("/dev//nvidia3/"), "runc", declared(chans(chDev), "/dev/nvidia3")},
		{"device non-gpu", withDevices("/dev/fuse", "/dev/dri/renderD128"), "runc", inventory.GPUAccess{}},

		// Bind mounts.
		{"bind via Binds", withHost(container.HostConfig{Runtime: "runc", Binds: []string{"/dev/nvidia1:/dev/nvidia1:ro", "/dev/nvidiactl:/dev/nvidiactl"}}), "runc", declared(chans(chBind), "/dev/nvidia1")},
		{"bind control node only", withHost(container.HostConfig{Runtime: "runc", Binds: []string{"/dev/nvidia-uvm:/dev/nvidia-uvm"}}), "runc", declared(chans(chBind))},
		{"bind whole dev", withHost(container.HostConfig{Runtime: "runc", Binds: []string{"/dev:/dev"}}), "runc", declared(chans(chBind), "all")},
		{"named volume called dev-nvidia is not a bind", withHost(container.HostConfig{Runtime: "runc", Binds: []string{"nvidia0:/dev/nvidia0"}}), "runc", inventory.GPUAccess{}},
		{"bind via Mounts", &container.InspectResponse{
			HostConfig: &container.HostConfig{Runtime: "runc"},
			Mounts: []container.MountPoint{
				{Type: mount.TypeBind, Source: "/dev/nvidia4", Destination: "/dev/nvidia4"},
				{Type: mount.TypeVolume, Name: "x", Source: "/var/lib/docker/volumes/x/_data", Destination: "/dev/nvidia5"},
			},
		}, "runc", declared(chans(chBind), "/dev/nvidia4")},
		{"volume mount at dev path is not a bind", &container.InspectResponse{
			Mounts: []container.MountPoint{{Type: mount.TypeVolume, Source: "/dev/nvidia0", Destination: "/dev/nvidia0"}},
		}, "runc", inventory.GPUAccess{}},
		{"bind via HostConfig.Mounts", withHost(container.HostConfig{Runtime: "runc", Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/dev/nvidia6", Target: "/dev/nvidia6"}}}), "runc", declared(chans(chBind), "/dev/nvidia6")},

		// Privileged.
		{"privileged", withHost(container.HostConfig{Runtime: "runc", Privileged: true}), "runc", declared(chans(chPriv), "all")},

		// Allocator labels.
		{"allocator uuid", withLabels(map[string]string{"ds01.gpu.uuid": " GPU-aaa "}), "runc", declared(chans(chAlloc), "GPU-aaa")},
		{"allocator uuids", withLabels(map[string]string{"ds01.gpu.uuids": "GPU-bbb, GPU-aaa,,"}), "runc", declared(chans(chAlloc), "GPU-aaa", "GPU-bbb")},
		{"allocator slots", withLabels(map[string]string{"ds01.gpu.slots": "1:0, 2", "ds01.gpu.allocated": "2026-01-30T14:30:00Z"}), "runc", declared(chans(chAlloc), "2", "1:0")},
		{"allocated timestamp alone", withLabels(map[string]string{"ds01.gpu.allocated": "2026-01-30T14:30:00Z"}), "runc", inventory.GPUAccess{}},
		{"allocator labels empty", withLabels(map[string]string{"ds01.gpu.uuids": " , ", "ds01.gpu.uuid": ""}), "runc", inventory.GPUAccess{}},

		// Junk device strings are dropped; the channel stays.
		{"junk control characters", withLabels(map[string]string{"ds01.gpu.uuids": "GPU-ok,GPU-\x1b[31mred"}), "runc", declared(chans(chAlloc), "GPU-ok")},
		{"junk too long", withHost(container.HostConfig{Runtime: "nvidia"}, "NVIDIA_VISIBLE_DEVICES="+strings.Repeat("a", 129)), "runc", declared(chans(chRT))},
		{"junk invalid utf-8", withRequests(container.DeviceRequest{DeviceIDs: []string{"\xff\xfe", "1"}, Capabilities: gpuCaps}), "runc", declared(chans(chReq), "1")},
		{"128 bytes kept", withLabels(map[string]string{"ds01.gpu.uuid": strings.Repeat("b", 128)}), "runc", declared(chans(chAlloc), strings.Repeat("b", 128))},

		// Several channels at once: all recorded in a fixed order, devices merged.
		{"many channels", &container.InspectResponse{
			HostConfig: &container.HostConfig{
				Runtime: "nvidia",
				Binds:   []string{"/dev/nvidia1:/dev/nvidia1"},
				Resources: container.Resources{
					DeviceRequests: []container.DeviceRequest{{DeviceIDs: []string{"1"}, Capabilities: gpuCaps}},
					Devices:        []container.DeviceMapping{{PathOnHost: "/dev/nvidia1"}},
				},
			},
			Mounts: []container.MountPoint{{Type: mount.TypeBind, Source: "/dev/nvidia1", Destination: "/dev/nvidia1"}},
			Config: &container.Config{
				Env:    []string{"NVIDIA_VISIBLE_DEVICES=GPU-aaa"},
				Labels: map[string]string{"ds01.gpu.uuid": "GPU-aaa", "ds01.gpu.slots": "1"},
			},
		}, "runc", declared(chans(chReq, chRT, chDev, chBind, chAlloc), "1", "/dev/nvidia1", "GPU-aaa")},
		{"privileged absorbs devices", &container.InspectResponse{
			HostConfig: &container.HostConfig{
				Privileged: true,
				Resources:  container.Resources{DeviceRequests: []container.DeviceRequest{{DeviceIDs: []string{"0"}, Capabilities: gpuCaps}}},
			},
		}, "runc", declared(chans(chReq, chPriv), "all")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DeclaredGPU(tc.c, tc.defaultRuntime)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DeclaredGPU() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDeclaredGPUEngineJSON feeds inspect output as the engine returns it,
// where absent lists arrive as JSON null.
func TestDeclaredGPUEngineJSON(t *testing.T) {
	tests := []struct {
		name string
		json string
		want inventory.GPUAccess
	}{
		{"device requests null with dev nvidia0", `{
			"Id": "0123",
			"Name": "/legacy",
			"Config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin", "NVIDIA_VISIBLE_DEVICES=all"], "Labels": {}},
			"HostConfig": {
				"Runtime": "runc",
				"Privileged": false,
				"Binds": null,
				"DeviceRequests": null,
				"Devices": [
					{"PathOnHost": "/dev/nvidia0", "PathInContainer": "/dev/nvidia0", "CgroupPermissions": "rwm"},
					{"PathOnHost": "/dev/nvidiactl", "PathInContainer": "/dev/nvidiactl", "CgroupPermissions": "rwm"},
					{"PathOnHost": "/dev/nvidia-uvm", "PathInContainer": "/dev/nvidia-uvm", "CgroupPermissions": "rwm"}
				]
			},
			"Mounts": []
		}`, declared(chans(chDev), "/dev/nvidia0")},
		{"gpus all as the cli sends it", `{
			"Config": {"Env": null, "Labels": null},
			"HostConfig": {
				"Runtime": "runc",
				"DeviceRequests": [{"Driver": "", "Count": -1, "DeviceIDs": null, "Capabilities": [["gpu"]], "Options": {}}],
				"Devices": []
			}
		}`, declared(chans(chReq), "all")},
		{"bind mount in Mounts only", `{
			"HostConfig": {"Runtime": "runc", "Binds": null},
			"Mounts": [{"Type": "bind", "Source": "/dev/nvidia3", "Destination": "/dev/nvidia3", "Mode": "", "RW": true, "Propagation": "rprivate"}]
		}`, declared(chans(chBind), "/dev/nvidia3")},
		{"null config and host config", `{"Id": "0123", "Config": null, "HostConfig": null}`, inventory.GPUAccess{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DeclaredGPU(fromJSON(t, tc.json), "runc")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DeclaredGPU() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDeclaredGPUEnvNotLeaked guards the promise that only
// NVIDIA_VISIBLE_DEVICES is read from the environment.
func TestDeclaredGPUEnvNotLeaked(t *testing.T) {
	c := withHost(container.HostConfig{Runtime: "nvidia"}, "AWS_SECRET_ACCESS_KEY=s3cr3t", "NVIDIA_VISIBLE_DEVICES=0", "HF_TOKEN=hf_abc")
	got := DeclaredGPU(c, "runc")
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr3t", "hf_abc", "AWS_SECRET", "HF_TOKEN"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("DeclaredGPU output %s contains env content %q", b, secret)
		}
	}
	if want := declared(chans(chRT), "0"); !reflect.DeepEqual(got, want) {
		t.Errorf("DeclaredGPU() = %+v, want %+v", got, want)
	}
}

func TestNodesReadAsIndices(t *testing.T) {
	for _, tc := range []struct {
		g    inventory.GPUAccess
		want bool
	}{
		{inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelDevice}, Devices: []string{"1"}}, true},
		{inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelBindMount, inventory.ChannelPrivileged}, Devices: []string{"all"}}, false},
		{inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelDevice}, Devices: []string{"/dev/nvidia1"}}, false},
		{inventory.GPUAccess{Declared: true, Channels: []string{inventory.ChannelDevice, inventory.ChannelRuntime}, Devices: []string{"0", "1"}}, false},
		{inventory.GPUAccess{}, false},
	} {
		if got := nodesReadAsIndices(tc.g); got != tc.want {
			t.Errorf("nodesReadAsIndices(%+v) = %v, want %v", tc.g, got, tc.want)
		}
	}
}
