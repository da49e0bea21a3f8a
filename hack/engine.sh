#!/usr/bin/env bash
# engine.sh: a private Docker engine for integration tests, living entirely in one directory.
#
#   hack/engine.sh start DIR             start dockerd in DIR (idempotent), return once it answers
#   hack/engine.sh stop DIR              stop it, its containerd and shims; unmount what is left
#   hack/engine.sh host DIR              print the DOCKER_HOST value for it
#   hack/engine.sh image DIR [NAME]      build the busybox test image (default ds01-test/busybox:latest)
#   hack/engine.sh devcontainer-cli DIR  install @devcontainers/cli under DIR, print its executable
#
# Every path the engine uses (socket, pidfile, data, exec root, containerd state) is under DIR, so
# it never meets another engine on the machine and a restart finds exactly what it left.
set -euo pipefail

readonly DEFAULT_IMAGE=ds01-test/busybox:latest
# Bumped whenever the image recipe changes, so `image` rebuilds an image that an older recipe
# left in a long-lived DIR. Kept in the image's comment, not a label: image labels are copied
# into every container's labels, where they would look like a workload origin to the scanner.
readonly IMAGE_RECIPE='ds01-test image recipe 3'
# Pinned so tests see the same CLI behaviour on every run; override to try another release.
readonly DEVCONTAINER_CLI_VERSION=${DEVCONTAINER_CLI_VERSION:-0.89.0}
readonly START_TIMEOUT_S=60
readonly STOP_TIMEOUT_S=20
# sun_path holds 107 bytes; the longest socket dockerd makes under DIR is
# DIR/exec/containerd/containerd-debug.sock, 38 bytes more than DIR.
readonly MAX_DIR_LEN=69

# dockerd finds containerd, runc, docker-init and docker-proxy through PATH, and callers such as
# `go test` may hand us a minimal one.
export PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

engine_locked=0

die() {
	echo "engine.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage:" >&2
	sed -n 's/^#   hack\/engine.sh/  engine.sh/p' "$0" >&2
	exit 2
}

# absdir DIR: DIR as an absolute path with symlinks resolved. start and stop must spell DIR the
# same way, because stop recognises the engine's processes by the paths on their command lines.
absdir() {
	realpath -m -- "$1"
}

# alive PID: the process exists and is not a zombie (a dockerd that died while this script was
# still its parent stays a zombie, and kill -0 would call it alive).
alive() {
	local state
	[ -r "/proc/$1/status" ] || return 1
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# engine_pids DIR: PIDs of dockerd, containerd and containerd shims whose command line names a
# path inside DIR. Matching the program name as well as the path keeps a shell or `tail -f`
# on DIR/dockerd.log out of reach; matching the path keeps other engines out of reach.
engine_pids() {
	local dir=$1 procdir pid comm arg
	for procdir in /proc/[0-9]*; do
		pid=${procdir#/proc/}
		comm=$(cat "$procdir/comm" 2>/dev/null) || continue # exited since the listing
		case $comm in
		dockerd | containerd | containerd-shim*) ;;
		*) continue ;;
		esac
		while IFS= read -r -d '' arg; do
			case $arg in
			"$dir"/* | *=*"$dir"/* | unix://"$dir"/*)
				echo "$pid"
				break
				;;
			esac
		done <"$procdir/cmdline" 2>/dev/null || true
	done
}

# dockerd_pid DIR: the PID in DIR/docker.pid if it is a live dockerd serving DIR's socket.
# A stale file can name a PID that now belongs to something else; that is never ours.
dockerd_pid() {
	local dir=$1 pid
	[ -f "$dir/docker.pid" ] || return 1
	pid=$(cat "$dir/docker.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "unix://$dir/docker.sock" || return 1
	echo "$pid"
}

# wait_gone SECONDS PID...: wait until none of the PIDs is alive; fail if some still are.
wait_gone() {
	local deadline=$((SECONDS + $1)) pid left
	shift
	while :; do
		left=0
		for pid in "$@"; do
			if alive "$pid"; then left=1; fi
		done
		[ "$left" -eq 0 ] && return 0
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# terminate SECONDS PID...: SIGTERM, then SIGKILL whatever is still there after SECONDS.
terminate() {
	local secs=$1
	shift
	[ "$#" -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	wait_gone "$secs" "$@" && return 0
	kill -KILL "$@" 2>/dev/null || true
	wait_gone 5 "$@" || true
}

# lock DIR NAME: hold DIR/NAME.lock until this script exits. Tests running in parallel may share
# one DIR: without it two `start`s would launch two dockerds, and the loser's cleanup would stop
# the winner; two `devcontainer-cli`s would run npm into the same prefix.
lock() {
	exec 9>"$1/$2.lock"
	flock -w 120 9 || die "$2: $1/$2.lock still held after 120s"
}

docker_dir() {
	local dir=$1
	shift
	# -H beats DOCKER_HOST, DOCKER_CONTEXT and the CLI config, so this only ever talks to DIR's engine.
	docker -H "unix://$dir/docker.sock" "$@"
}

ready() {
	docker_dir "$1" info >/dev/null 2>&1
}

cmd_start() {
	local dir pid launched deadline
	[ "$(id -u)" -eq 0 ] || die "start: must run as root (dockerd needs it); uid is $(id -u)"
	command -v dockerd >/dev/null || die "start: dockerd not found in PATH (apt-get install docker.io)"
	command -v docker >/dev/null || die "start: docker CLI not found in PATH (apt-get install docker.io)"
	dir=$(absdir "$1")
	[ "${#dir}" -le "$MAX_DIR_LEN" ] ||
		die "start: $dir is ${#dir} bytes long; the sockets under it need it at most $MAX_DIR_LEN"
	mkdir -p -- "$dir/data" "$dir/exec" 2>/dev/null ||
		die "start: cannot create directories $dir/data and $dir/exec"
	lock "$dir" engine
	engine_locked=1

	if pid=$(dockerd_pid "$dir"); then
		# Already running (perhaps still starting): only make sure it answers.
		launched=$pid
	else
		# A pidfile left by a killed dockerd would make the new one refuse to start if its PID
		# has been reused; dockerd_pid has just said it is not a live dockerd of ours.
		rm -f -- "$dir/docker.pid"
		# The nvidia runtime is plain runc under another name, so --runtime=nvidia and the
		# HostConfig.Runtime field a scanner reads are real without an NVIDIA toolkit.
		printf '%s\n' '{"runtimes":{"nvidia":{"path":"runc"}}}' >"$dir/daemon.json"
		# setsid: its own session, so Ctrl-C on the caller's terminal and the end of the
		# caller's session do not reach dockerd; only `stop` ends it. All three standard
		# streams are redirected so it holds no pipe of the caller (a `go test` reading our
		# output would otherwise wait for dockerd to exit), and fd 9 is closed so dockerd
		# does not hold the lock for its whole life.
		# vfs: needs no overlay support from the kernel and acts the same on any backing
		# filesystem; slow, which does not matter for a 2 MB image.
		# --iptables=false --bridge=none: no docker0 and no firewall rules on the host (a
		# network that a test creates, such as docker-compose's, still makes a bridge).
		# The exec root must be private too: sharing /var/run/docker makes a restart hang on
		# "timeout waiting for containerd to start".
		setsid dockerd \
			--config-file "$dir/daemon.json" \
			--iptables=false --ip6tables=false --bridge=none \
			--storage-driver=vfs \
			--data-root "$dir/data" \
			--exec-root "$dir/exec" \
			--pidfile "$dir/docker.pid" \
			-H "unix://$dir/docker.sock" \
			</dev/null >>"$dir/dockerd.log" 2>&1 9>&- &
		launched=$!
	fi

	deadline=$((SECONDS + START_TIMEOUT_S))
	until ready "$dir"; do
		if ! alive "$launched"; then
			echo "engine.sh: start: dockerd exited before it was ready; last lines of $dir/dockerd.log:" >&2
			tail -n 30 "$dir/dockerd.log" >&2 || true
			cmd_stop "$dir" >/dev/null 2>&1 || true
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "engine.sh: start: dockerd not ready after ${START_TIMEOUT_S}s; last lines of $dir/dockerd.log:" >&2
			tail -n 30 "$dir/dockerd.log" >&2 || true
			# Do not leave a half-started engine behind for the next start to trip over.
			cmd_stop "$dir" >/dev/null 2>&1 || true
			exit 1
		fi
		sleep 0.2
	done
}

# mounts_under DIR: mount points strictly below DIR, deepest first, octal escapes of
# /proc/self/mountinfo (\040 for a space) decoded.
mounts_under() {
	local dir=$1
	awk '{ print $5 }' /proc/self/mountinfo |
		while IFS= read -r mp; do
			mp=$(printf '%b' "$mp")
			case $mp in "$dir"/*) printf '%s\n' "$mp" ;; esac
		done |
		awk '{ print gsub("/", "/") "\t" $0 }' | sort -rn -k1,1 | cut -f2-
}

# bridges DIR: the Linux bridges behind the engine's bridge networks (docker-compose makes one
# per project). They outlive dockerd, and each keeps its 172.x/16 route, which the next engine
# avoids when it picks a subnet, so after a few dozen test runs network creation fails with
# "could not find an available, non-overlapping IPv4 address pool". dockerd recreates them when
# it restores its networks on the next start.
bridges() {
	local dir=$1 id name
	docker_dir "$dir" network ls -q --no-trunc --filter driver=bridge 2>/dev/null |
		while read -r id; do
			name=$(docker_dir "$dir" network inspect \
				-f '{{index .Options "com.docker.network.bridge.name"}}' "$id" 2>/dev/null) || continue
			echo "${name:-br-${id:0:12}}"
		done
}

cmd_stop() {
	local dir pid pids mp br brs=()
	dir=$(absdir "$1")
	[ -d "$dir" ] || return 0
	# start calls stop to clean up after itself while already holding the lock; taking it
	# again through a new open file would wait on ourselves.
	[ "$engine_locked" = 1 ] || lock "$dir" engine

	# Ask before stopping: only a running engine can say which bridges are its own.
	if ready "$dir"; then
		mapfile -t brs < <(bridges "$dir")
	fi

	# dockerd stops its containers (each gets its stop timeout, 10 s by default, before
	# SIGKILL) and then its containerd; SIGKILL is for a daemon that is stuck.
	if pid=$(dockerd_pid "$dir"); then
		terminate "$STOP_TIMEOUT_S" "$pid"
	fi
	# Also a dockerd whose pidfile is gone (killed, or DIR/docker.pid removed by hand).
	mapfile -t pids < <(engine_pids "$dir" | while read -r p; do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = dockerd ] && echo "$p"
	done)
	terminate "$STOP_TIMEOUT_S" "${pids[@]}"

	# containerd (dockerd's child, started with --config DIR/exec/containerd/containerd.toml)
	# normally goes with dockerd, which stops it or, if killed, takes it along through a
	# parent-death signal; this is for one that survived anyway.
	mapfile -t pids < <(engine_pids "$dir" | while read -r p; do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd ] && echo "$p"
	done)
	terminate 10 "${pids[@]}"

	# Shims outlive dockerd and containerd by design, and after a SIGKILL their containers run on. Killing a shim alone would orphan its container,
	# so kill the shim's children (each a container's init: the rest of the container dies
	# with its PID namespace) first.
	mapfile -t pids < <(engine_pids "$dir")
	if [ "${#pids[@]}" -gt 0 ]; then
		for pid in "${pids[@]}"; do
			pkill -KILL -P "$pid" 2>/dev/null || true
		done
		terminate 5 "${pids[@]}"
	fi

	while IFS= read -r mp; do
		[ -n "$mp" ] || continue
		# Lazy unmount as a fallback: a mount that is still busy must not keep DIR from
		# being deleted by the caller.
		umount -- "$mp" 2>/dev/null || umount -l -- "$mp" 2>/dev/null ||
			echo "engine.sh: stop: cannot unmount $mp" >&2
	done < <(mounts_under "$dir")

	for br in "${brs[@]}"; do
		if [ -n "$br" ] && ip link show dev "$br" >/dev/null 2>&1; then
			ip link delete dev "$br" 2>/dev/null || echo "engine.sh: stop: cannot delete bridge $br" >&2
		fi
	done

	# A killed dockerd leaves its pidfile; remove it so a reused PID is never mistaken for it.
	if [ -f "$dir/docker.pid" ] && ! dockerd_pid "$dir" >/dev/null; then
		rm -f -- "$dir/docker.pid"
	fi
}

cmd_host() {
	echo "unix://$(absdir "$1")/docker.sock"
}

cmd_image() {
	local dir name rootfs applet
	dir=$(absdir "$1")
	name=${2:-$DEFAULT_IMAGE}
	ready "$dir" || die "image: no engine answers at unix://$dir/docker.sock (run: $0 start $dir)"
	if [ "$(docker_dir "$dir" image inspect -f '{{.Comment}}' "$name" 2>/dev/null)" = "$IMAGE_RECIPE" ]; then
		return 0
	fi
	[ -x /bin/busybox ] || die "image: /bin/busybox not found (apt-get install busybox-static)"
	# Debian's dynamic busybox package also installs /bin/busybox; it would need the host's
	# libc inside the image. ldd fails on a static binary.
	if ldd /bin/busybox >/dev/null 2>&1; then
		die "image: /bin/busybox is dynamically linked (apt-get install busybox-static)"
	fi

	rootfs=$(mktemp -d "${TMPDIR:-/tmp}/ds01-rootfs.XXXXXX")
	# shellcheck disable=SC2064 # expand now: rootfs is local and gone when the trap runs
	trap "rm -rf -- '$rootfs'" EXIT

	# mktemp makes the directory 0700, and it becomes the image's /: containers run with
	# --user could not reach a single file.
	chmod 755 "$rootfs"
	mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/tmp,home,dev,proc,sys,run}
	chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
	chmod 700 "$rootfs/root"
	cp /bin/busybox "$rootfs/bin/busybox"
	# `busybox --install` would link into the host's directories; --list-full gives each
	# applet's usual place (bin/sh, usr/bin/env, sbin/ip ...) so scripts with #!/usr/bin/env work.
	while IFS= read -r applet; do
		# linuxrc (an initrd's init) is the one applet meant for /, and no container wants it.
		case $applet in */*) ;; *) continue ;; esac
		[ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] && continue
		mkdir -p "$rootfs/$(dirname "$applet")"
		ln -s /bin/busybox "$rootfs/$applet"
	done < <(/bin/busybox --list-full)

	# The devcontainer CLI reads the user's entry (home, shell) from /etc/passwd; docker
	# resolves --user names through both files.
	cat >"$rootfs/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$rootfs/etc/group" <<-'EOF'
		root:x:0:
		nogroup:x:65534:
	EOF

	# Not needed to run, but `devcontainer up` reads os-release and edits /etc/profile, and
	# logs a failure for each when they are missing, which hides real failures in its log.
	cat >"$rootfs/etc/os-release" <<-'EOF'
		NAME="ds01 test image (BusyBox)"
		ID=busybox
		PRETTY_NAME="ds01 test image (BusyBox)"
	EOF
	printf '%s\n' 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' >"$rootfs/etc/profile"

	tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . |
		docker_dir "$dir" import \
			--change 'CMD ["sh"]' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--message "$IMAGE_RECIPE" \
			- "$name" >/dev/null
	rm -rf -- "$rootfs"
	trap - EXIT
}

cmd_devcontainer_cli() {
	local dir prefix bin
	dir=$(absdir "$1")
	prefix=$dir/devcontainer-cli
	bin=$prefix/node_modules/.bin/devcontainer
	if [ ! -x "$bin" ]; then
		mkdir -p -- "$dir"
		lock "$dir" devcontainer-cli
	fi
	if [ ! -x "$bin" ]; then
		command -v npm >/dev/null || die "devcontainer-cli: npm not found in PATH (node >= 20 needed)"
		mkdir -p -- "$prefix"
		# A local prefix, not -g: nothing outside DIR changes, and deleting DIR undoes it.
		# npm's output goes to a log so that stdout carries only the path.
		if ! npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
			"@devcontainers/cli@$DEVCONTAINER_CLI_VERSION" >"$prefix/npm-install.log" 2>&1; then
			tail -n 30 "$prefix/npm-install.log" >&2 || true
			die "devcontainer-cli: npm install @devcontainers/cli@$DEVCONTAINER_CLI_VERSION failed (log: $prefix/npm-install.log)"
		fi
		[ -x "$bin" ] || die "devcontainer-cli: npm finished but $bin is missing"
	fi
	echo "$bin"
}

main() {
	[ "$#" -ge 2 ] || usage
	local cmd=$1
	shift
	[ -n "$1" ] || die "$cmd: DIR must not be empty"
	case $cmd in
	image) [ "$#" -le 2 ] || usage ;;
	*) [ "$#" -eq 1 ] || usage ;;
	esac
	case $cmd in
	start) cmd_start "$1" ;;
	stop) cmd_stop "$1" ;;
	host) cmd_host "$1" ;;
	image) cmd_image "$@" ;;
	devcontainer-cli) cmd_devcontainer_cli "$1" ;;
	*) usage ;;
	esac
}

main "$@"
