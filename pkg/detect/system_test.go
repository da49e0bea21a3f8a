package detect

import "testing"

func TestIsSystemProcess(t *testing.T) {
	tests := []struct {
		name    string
		comm    string
		cmdline string
		want    bool
	}{
		// Driver and DCGM daemons; comm as the kernel cuts it.
		{"persistenced cut comm", "nvidia-persiste", "/usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose", true},
		{"persistenced cut comm, argv rewritten", "nvidia-persiste", "", true},
		{"hostengine", "nv-hostengine", "/usr/bin/nv-hostengine -n --service-account nvidia-dcgm", true},
		{"dcgm-exporter", "dcgm-exporter", "/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/default-counters.csv", true},
		{"dcgmproftester cut", "dcgmproftester1", "/usr/bin/dcgmproftester12 --no-dcgm-validation -t 1004 -d 30", true},
		{"dcgmi", "dcgmi", "dcgmi discovery -l", true},
		{"mps control cut", "nvidia-cuda-mps", "nvidia-cuda-mps-control -d", true},
		{"mps server cut", "nvidia-cuda-mps", "nvidia-cuda-mps-server", true},
		{"nvidia-smi", "nvidia-smi", "nvidia-smi -q -x", true},
		{"nvidia-powerd", "nvidia-powerd", "/usr/bin/nvidia-powerd", true},
		{"fabric manager", "nv-fabricmanage", "/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg", true},

		// Display stack.
		{"Xorg", "Xorg", "/usr/lib/xorg/Xorg vt1 -displayfd 3 -auth /run/user/127/gdm/Xauthority -nolisten tcp", true},
		{"X wrapper", "X", "/usr/bin/X :0 -seat seat0", true},
		{"Xwayland", "Xwayland", "/usr/bin/Xwayland :0 -rootless -noreset", true},
		{"gdm", "gdm3", "/usr/sbin/gdm3", true},
		{"gdm session cut", "gdm-wayland-ses", "/usr/libexec/gdm-wayland-session dbus-run-session -- gnome-session", true},
		{"gdm session worker", "gdm-session-wor", "gdm-session-worker [pam/gdm-password]", true},
		{"gnome-shell", "gnome-shell", "/usr/bin/gnome-shell", true},
		{"kwin_wayland", "kwin_wayland", "/usr/bin/kwin_wayland --wayland-fd 7 --socket wayland-0", true},
		{"kwin_x11", "kwin_x11", "/usr/bin/kwin_x11 -session 10d", true},
		{"sddm", "sddm", "/usr/bin/sddm", true},
		{"sddm greeter", "sddm-greeter", "/usr/bin/sddm-greeter --socket /tmp/sddm-:0-abc", true},
		{"lightdm", "lightdm", "/usr/sbin/lightdm", true},
		{"comm unknown, argv0 says", "", "/usr/bin/nvidia-persistenced --verbose", true},

		// Users' processes, including near misses.
		{"python xorg tool", "python", "python xorg_tool.py", false},
		{"python with Xorg argument", "python3", "python3 train.py --name Xorg", false},
		{"argv0 spoofed as Xorg", "python3", "Xorg train.py", false},
		{"argv0 spoofed as persistenced", "python3.11", "/usr/bin/nvidia-persistenced", false},
		{"user binary named like a daemon", "nvidia-persiste", "./nvidia-persistenced-fake --epochs 3", false},
		{"user binary nvidia-smi-like, 15 bytes", "nvidia-smi-plus", "./nvidia-smi-plus", false},
		{"xorg lowercase", "xorg", "xorg", false},
		{"Xorg prefix", "Xorgish", "./Xorgish", false},
		{"gnome-shell extension tool", "gnome-shell-ext", "/usr/bin/gnome-shell-extension-tool", false},
		{"kwin without underscore", "kwinft", "kwinft", false},
		{"gdmap", "gdmap", "gdmap /home", false},
		{"torchrun", "torchrun", "/usr/bin/python3 /usr/local/bin/torchrun --nproc 8 train.py", false},
		{"nvidia-docker user tool", "nvidia-docker", "nvidia-docker run --rm img", false},
		{"kernel thread", "kworker/0:1", "[kworker/0:1]", false},
		{"empty", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsSystemProcess(tc.comm, tc.cmdline); got != tc.want {
				t.Errorf("IsSystemProcess(%q, %q) = %v; want %v", tc.comm, tc.cmdline, got, tc.want)
			}
		})
	}
}
