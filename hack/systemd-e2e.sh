#!/usr/bin/env bash
# systemd-e2e.sh: the ds01 package under a real systemd.
#
#   hack/systemd-e2e.sh DEB
#
# These machines have no systemd as PID 1, so one runs in a container: a
# Debian bookworm rootfs (debootstrap --variant=minbase with systemd, cached
# under .tools/systemd-rootfs), imported into the private Docker engine at
# $DOCKER_HOST (without one, a private engine is started for the run with
# hack/with-engine.sh) and booted with /sbin/init. In it:
#
#   - dpkg -i DEB (the rootfs has no network: the package must install on a
#     minimal system); postinst enables and starts ds01-scan.timer
#   - the timer fires on its own: 30 s after "boot" (for a container, its
#     start), then 30 s after that scan; each scan rewrites the inventory
#     (new scan id, new mtime)
#   - the unit's hardening does not break the job: the scan sees another
#     user's process holding /dev/nvidia0 (/proc/PID/fd of another user:
#     CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH), appends to an event log owned by
#     another user (CAP_DAC_OVERRIDE), leaves the shared log directory's owner
#     and mode alone, and reports Docker (absent in the container) as a source
#     that is down, with its reason, without failing; without CAP_SYS_PTRACE
#     the process goes unseen (the check above is not vacuous) and the
#     procfs source carries a warning that says why
#   - a non-root user reads it all with ds01-workloads
#   - systemd-analyze verify and security on the installed units
#   - a directory removed by hand is made again before the next scan
#   - the textfile drop-in example writes ds01.prom (checked with promtool
#     check metrics on this machine when promtool is installed)
#   - an upgrade keeps the timer enabled, or disabled if the admin said so
#   - dpkg -r and dpkg -P leave nothing behind but the inventory and the log
#
# Needs root, docker (CLI), jq, and debootstrap when the rootfs is not cached.
# Exits 0 when every check passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

readonly SUITE=bookworm
readonly MIRROR=${DS01_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The recipe names the cache file and the image: change it and both are remade.
readonly RECIPE="debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus $SUITE (ds01 e2e v1)"
readonly CACHE_DIR=${DS01_TOOLS:-$repo/.tools}/systemd-rootfs
readonly ROOTFS_TAR=$CACHE_DIR/$SUITE-minbase-systemd-v1.tar
readonly IMAGE=ds01-test/systemd:$SUITE-v1
# The timer's period (OnBootSec, OnUnitActiveSec), and how long to wait for
# its first two scans after installation.
readonly PERIOD_S=30
readonly WAIT_S=80

die() {
	echo "systemd-e2e: FAIL: $*" >&2
	exit 1
}

t0=$SECONDS
step() {
	printf '== [%3ds] %s\n' "$((SECONDS - t0))" "$*"
}

[ "$#" -eq 1 ] || {
	echo "usage: systemd-e2e.sh DEB" >&2
	exit 2
}
deb=$(realpath -- "$1")
[ -f "$deb" ] || die "no package at $1 (make deb)"
[ "$(id -u)" -eq 0 ] || die "needs root (private Docker engine, debootstrap)"
command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io)"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"

# No engine given: run under a private one that lives as long as this run.
if [ -z "${DOCKER_HOST:-}" ]; then
	engine_dir=$(mktemp -d /tmp/ds01-e2e.XXXXXX)
	rc=0
	"$here/with-engine.sh" "$engine_dir" -- bash "${BASH_SOURCE[0]}" "$deb" || rc=$?
	rm -rf -- "$engine_dir"
	exit "$rc"
fi

# --- The image: a cached rootfs tarball, imported once per engine.
rootfs_tar() {
	local dir
	if [ -s "$ROOTFS_TAR" ]; then
		return 0
	fi
	command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
	mkdir -p -- "$CACHE_DIR"
	dir=$(mktemp -d /tmp/ds01-rootfs.XXXXXX)
	# mktemp makes it 0700, and it becomes the image's /: dbus-daemon (user
	# messagebus) could not even reach its configuration.
	chmod 0755 "$dir"
	step "debootstrap $SUITE from $MIRROR (cached in $ROOTFS_TAR afterwards)"
	if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$SUITE" "$dir" "$MIRROR" \
		>"$dir.log" 2>&1; then
		tail -n 30 "$dir.log" >&2
		rm -rf -- "$dir" "$dir.log"
		die "debootstrap failed"
	fi
	tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.tmp" .
	mv -f -- "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	rm -rf -- "$dir" "$dir.log"
}

image() {
	if [ "$(docker image inspect -f '{{.Comment}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
		return 0
	fi
	rootfs_tar
	step "docker import $IMAGE"
	docker import --message "$RECIPE" - "$IMAGE" <"$ROOTFS_TAR" >/dev/null
}

# --- The container.
ct=
cleanup() {
	if [ -n "$ct" ]; then
		docker rm -f "$ct" >/dev/null 2>&1 || true
	fi
	rm -f -- "/tmp/ds01-e2e-$$".*
}
trap cleanup EXIT

in_ct() {
	docker exec "$ct" "$@"
}

# dump: what an admin would look at, when a check fails.
dump() {
	echo "---- systemctl status ds01-scan.timer ds01-scan.service" >&2
	in_ct systemctl --no-pager status ds01-scan.timer ds01-scan.service >&2 2>&1 || true
	echo "---- journalctl -u ds01-scan" >&2
	in_ct journalctl --no-pager -u ds01-scan.service -u ds01-scan.timer >&2 2>&1 || true
}

fail() {
	dump
	die "$*"
}

inventory() {
	in_ct cat /var/lib/ds01/workload-inventory.json
}

image
# A command that fails outside a check (set -e) still shows what the unit did.
trap 'echo "systemd-e2e: FAIL: the command on line $LINENO failed" >&2; dump' ERR
step "boot $IMAGE with /sbin/init"
# The flags ENVIRONMENT.md found to work here (--privileged does not), plus
# --cgroupns=private: with the host's cgroup namespace every process in the
# container has /docker/<id> in /proc/PID/cgroup, and the scanner rightly files
# them under a Docker container it cannot ask about (Docker is not running in
# there). In a namespace of its own the container looks like a host.
ct=$(docker run -d --name "ds01-e2e-$$" --hostname ds01-e2e \
	--cgroupns=private --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
	--network none --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
	"$IMAGE" /sbin/init)
# Poll: right after the start systemctl cannot even reach systemd yet.
deadline=$((SECONDS + 60))
state=
until [ "$state" = running ] || [ "$state" = degraded ] || [ "$SECONDS" -ge "$deadline" ]; do
	sleep 1
	state=$(in_ct systemctl is-system-running 2>/dev/null || true)
done
case $state in
running) ;;
degraded)
	echo "systemd is degraded; failed units:"
	in_ct systemctl --no-pager --failed
	;;
*) die "systemd in the container is '$state', not running" ;;
esac
echo "systemd $(in_ct systemctl --version | awk 'NR == 1 { print $2 }') is $state"

step "set the scene: users, a GPU holder, a shared log directory"
in_ct groupadd docker
in_ct useradd -m alice
in_ct useradd -m bob
# A file named like the device is enough for the /proc/PID/fd signal, which
# reads link targets; alice holds it open.
in_ct touch /dev/nvidia0
docker exec -d "$ct" runuser -u alice -- sh -c 'exec 3</dev/nvidia0; exec sleep 3600'
# As on existing lab servers: the log directory root:docker 0775, and the log
# created by another ds01 tool running as a user.
in_ct install -d -o root -g docker -m 0775 /var/log/ds01
in_ct sh -c 'echo "{\"event_type\":\"other.tool\"}" >/var/log/ds01/events.jsonl'
in_ct chown alice:docker /var/log/ds01/events.jsonl
in_ct chmod 0664 /var/log/ds01/events.jsonl
snapshot() {
	in_ct find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
		-o -path /var/lib/dpkg -o -path /var/log/journal -o -path /var/cache -o -path /var/lib/systemd \
		-o -path /var/lib/ds01 -o -path /var/log/ds01 \) -prune -o -print | sort
}
snapshot >"/tmp/ds01-e2e-$$.before"
# The lab's earlier scanner, enabled and running as its deploy script leaves
# it (a stand-in: the units are its names, the job does nothing).
in_ct sh -c 'printf "[Unit]\nDescription=detect-workloads.py stand-in\n[Service]\nType=oneshot\nExecStart=/bin/true\n" >/etc/systemd/system/ds01-workload-detector.service'
in_ct sh -c 'printf "[Unit]\nRequires=ds01-workload-detector.service\n[Timer]\nOnBootSec=30s\nOnUnitActiveSec=30s\n[Install]\nWantedBy=timers.target\n" >/etc/systemd/system/ds01-workload-detector.timer'
in_ct systemctl daemon-reload
in_ct systemctl enable --now ds01-workload-detector.timer 2>/dev/null

step "dpkg -i $(basename "$deb")"
docker cp "$deb" "$ct:/tmp/ds01.deb"
in_ct dpkg -i /tmp/ds01.deb
installed_at=$SECONDS
[ "$(in_ct systemctl is-enabled ds01-scan.timer)" = enabled ] || fail "postinst did not enable ds01-scan.timer"
[ "$(in_ct systemctl is-enabled ds01-workload-detector.timer || true)" = disabled ] || fail "postinst left the lab's ds01-workload-detector.timer enabled"
[ "$(in_ct systemctl is-active ds01-workload-detector.timer || true)" = inactive ] || fail "postinst left the lab's ds01-workload-detector.timer running"
in_ct systemctl start ds01-workload-detector.service
[ "$(in_ct systemctl show -p ConditionResult --value ds01-workload-detector.service)" = no ] ||
	fail "ds01-workload-detector.service still runs with ds01-scan installed (the drop-in of coexist)"
echo "   the lab's ds01-workload-detector.timer: stopped and disabled; its service kept from running by a drop-in"
[ "$(in_ct systemctl is-active ds01-scan.timer)" = active ] || fail "postinst did not start ds01-scan.timer"
in_ct systemctl --no-pager list-timers ds01-scan.timer

step "watch the timer fire on its own: at boot + ${PERIOD_S}s, then ${PERIOD_S}s later"
ids=()
times=()
mtimes=()
while [ "${#ids[@]}" -lt 2 ]; do
	if [ $((SECONDS - installed_at)) -gt "$WAIT_S" ]; then
		fail "only ${#ids[@]} scans in ${WAIT_S}s after installation: ${ids[*]:-none}"
	fi
	if inv=$(inventory 2>/dev/null) && id=$(jq -er '.scan.id' <<<"$inv" 2>/dev/null); then
		if [ "${#ids[@]}" -eq 0 ] || [ "${ids[-1]}" != "$id" ]; then
			ids+=("$id")
			times+=("$(jq -r '.scan.time' <<<"$inv")")
			mtimes+=("$(in_ct stat -c %Y /var/lib/ds01/workload-inventory.json)")
			printf '   scan %s at %s (inventory mtime %s)\n' "$id" "${times[-1]}" "${mtimes[-1]}"
		fi
	fi
	sleep 1
done
# within(GAP): GAP is the timer's period, give or take its 1 s accuracy and
# the time a start takes.
within() {
	awk -v g="$1" -v p="$PERIOD_S" 'BEGIN { exit !(g >= p - 1 && g <= p + 3) }'
}
booted=$(date -d "$(docker inspect -f '{{.State.StartedAt}}' "$ct")" +%s.%N)
first=$(date -d "${times[0]}" +%s.%N)
gap=$(awk -v a="$booted" -v b="$first" 'BEGIN { printf "%.1f", b - a }')
echo "   container start -> scan 1: ${gap}s (OnBootSec=${PERIOD_S}s)"
within "$gap" || fail "first scan ${gap}s after boot, want ${PERIOD_S}s (OnBootSec=${PERIOD_S}s)"
a=$first
b=$(date -d "${times[1]}" +%s.%N)
gap=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", b - a }')
echo "   scan 1 -> scan 2: ${gap}s (OnUnitActiveSec=${PERIOD_S}s, AccuracySec=1s)"
within "$gap" || fail "scans ${gap}s apart, want ${PERIOD_S}s (OnUnitActiveSec=${PERIOD_S}s, AccuracySec=1s)"
[ "${mtimes[1]}" -gt "${mtimes[0]}" ] || fail "the inventory's mtime did not change between scans"

step "the job under the unit's hardening"
[ "$(in_ct systemctl show -p Result --value ds01-scan.service)" = success ] || fail "ds01-scan.service result is not success"
[ "$(in_ct systemctl show -p ExecMainStatus --value ds01-scan.service)" = 0 ] || fail "ds01-scan exited non-zero"
journal=$(in_ct journalctl --no-pager -o cat -u ds01-scan.service -u ds01-scan.timer)
# The sources that are down here say why in their own words ("failed to
# connect"); everything else must be free of failures.
if grep -v 'source unavailable' <<<"$journal" |
	grep -Ei 'failed|failure|status=[1-9]|core-dump|dumped core|SIGSYS|denied|not permitted|panic|level=ERROR'; then
	fail "the journal of ds01-scan shows a failure (above)"
fi
n=$(grep -c 'msg="scan complete"' <<<"$journal" || true)
[ "$n" -ge 2 ] || fail "journal shows $n completed scans, want >= 2"
grep -q 'msg="docker source unavailable" source=docker' <<<"$journal" || fail "journal does not report the docker source down"
inv=$(inventory)
jq -e '.sources.docker.ok == false and (.sources.docker.error | length > 0)' <<<"$inv" >/dev/null ||
	fail "inventory does not say docker is unavailable with a reason: $(jq -c .sources <<<"$inv")"
echo "   docker: down, \"$(jq -r .sources.docker.error <<<"$inv" | cut -c1-90)...\""
jq -e '.sources.procfs.ok == true' <<<"$inv" >/dev/null || fail "procfs source down: $(jq -c .sources.procfs <<<"$inv")"
# No NVML here, so no GPU list says which GPU minor 0 is: the node stands.
jq -e '[.host_processes[] | select(.user == "alice" and .type == "host-process" and .gpus == ["/dev/nvidia0"])] | length == 1' <<<"$inv" >/dev/null ||
	fail "alice's process holding /dev/nvidia0 is not in the inventory: $(jq -c .host_processes <<<"$inv")"
echo "   alice's process on /dev/nvidia0 seen through /proc/PID/fd: $(jq -c '.host_processes[0] | {pid, user, user_source, gpus, kinds}' <<<"$inv")"
perm() { in_ct stat -c '%a %U:%G' "$1"; }
[ "$(perm /var/lib/ds01)" = "755 root:root" ] || fail "/var/lib/ds01 is $(perm /var/lib/ds01), want 755 root:root"
[ "$(perm /var/lib/ds01/workload-inventory.json)" = "644 root:root" ] || fail "inventory is $(perm /var/lib/ds01/workload-inventory.json)"
[ "$(perm /var/log/ds01)" = "775 root:docker" ] || fail "the existing /var/log/ds01 became $(perm /var/log/ds01)"
[ "$(perm /var/log/ds01/events.jsonl)" = "664 alice:docker" ] || fail "the existing event log became $(perm /var/log/ds01/events.jsonl)"
[ "$(perm /run/ds01/scan.lock)" = "600 root:root" ] || fail "scan.lock is $(perm /run/ds01/scan.lock)"
in_ct grep -q '"event_type":"detection.host_gpu_process_discovered"' /var/log/ds01/events.jsonl ||
	fail "no discovery event appended to the event log owned by alice"
echo "   directories and files: $(perm /var/lib/ds01) /var/lib/ds01, $(perm /var/log/ds01) /var/log/ds01 (kept), events.jsonl $(perm /var/log/ds01/events.jsonl) appended to"
# A log the unit creates is the lab's manifest's: 0664 root:docker (CAP_CHOWN),
# so that the other ds01 tools, running as users, can append to it. A second
# GPU holder gives the scans an event to append.
in_ct mv /var/log/ds01/events.jsonl /var/log/ds01/events.jsonl-alice
docker exec -d "$ct" runuser -u bob -- sh -c 'exec 3</dev/nvidia0; exec sleep 3600'
sleep 1
in_ct systemctl start ds01-scan.service
in_ct systemctl start ds01-scan.service
[ "$(perm /var/log/ds01/events.jsonl)" = "664 root:docker" ] || fail "a new event log is $(perm /var/log/ds01/events.jsonl), want 664 root:docker"
in_ct grep -q '"user":"bob"' /var/log/ds01/events.jsonl || fail "bob's process was not logged in the new event log"
echo "   a new event log: $(perm /var/log/ds01/events.jsonl)"
# What would hide the GPUs or the processes from the job: devices (an implied
# DeviceAllow=, as ProtectClock= makes, closes the policy), homes, /proc.
props=$(in_ct systemctl show -p PrivateDevices -p DevicePolicy -p DeviceAllow -p ProtectHome \
	-p ProtectProc -p ProcSubset -p ProtectSystem -p NoNewPrivileges -p PrivateNetwork ds01-scan.service | sort)
want=$(printf '%s\n' DevicePolicy=auto NoNewPrivileges=yes PrivateDevices=no PrivateNetwork=yes \
	ProcSubset=all ProtectHome=read-only ProtectProc=default ProtectSystem=strict)
[ "$props" = "$want" ] || fail "unit properties: got
$props
want
$want"

step "negative control: the same unit without CAP_SYS_PTRACE, dry run"
in_ct mkdir -p /run/systemd/system/ds01-scan.service.d
in_ct sh -c 'printf "[Service]\nCapabilityBoundingSet=~CAP_SYS_PTRACE\nEnvironment=DS01_SCAN_ARGS=--dry-run\n" \
	>/run/systemd/system/ds01-scan.service.d/no-ptrace.conf'
in_ct systemctl daemon-reload
in_ct systemctl start ds01-scan.service
dry=$(in_ct journalctl --no-pager -o cat -u ds01-scan.service -n 200 | sed -n '/^{/,/^}/p')
in_ct rm -rf /run/systemd/system/ds01-scan.service.d
in_ct systemctl daemon-reload
if jq -e '[.pending_processes[], .host_processes[] | select(.user == "alice")] | length > 0' <<<"$dry" >/dev/null 2>&1; then
	fail "alice's process was seen without CAP_SYS_PTRACE: the capability check proves nothing"
fi
jq -e '.scan.id' <<<"$dry" >/dev/null || fail "the dry run printed no inventory"
jq -e '.sources.procfs.ok and (.sources.procfs.warning | test("CAP_SYS_PTRACE"))' <<<"$dry" >/dev/null ||
	fail "without CAP_SYS_PTRACE the procfs source does not warn of its blind spot: $(jq -c .sources.procfs <<<"$dry")"
echo "   without CAP_SYS_PTRACE alice's process is unseen, and the procfs source says why"

step "a non-root user reads the inventory with ds01-workloads"
out=$(in_ct runuser -u bob -- ds01-workloads 2>"/tmp/ds01-e2e-$$.err") || fail "ds01-workloads as bob failed: $(cat "/tmp/ds01-e2e-$$.err")"
err=$(cat "/tmp/ds01-e2e-$$.err")
rm -f -- "/tmp/ds01-e2e-$$.err"
printf '%s\n' "$out" | sed 's/^/   | /'
grep -Eq '^host-process +alice +/dev/nvidia0 ' <<<"$out" || fail "bob's ds01-workloads does not show alice's host process"
grep -q 'source docker was down' <<<"$err" || fail "ds01-workloads does not warn that docker was down: $err"
echo "   stderr: $(head -n 1 <<<"$err" | cut -c1-100)..."
in_ct runuser -u bob -- ds01-workloads --json 2>/dev/null | jq -e '.sources.docker.ok == false' >/dev/null ||
	fail "ds01-workloads --json as bob"

step "systemd-analyze verify and security on the installed units"
verify=$(in_ct systemd-analyze verify --man=no ds01-scan.service ds01-scan.timer 2>&1) ||
	fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warns: $verify"
echo "   verify: clean"
in_ct systemd-analyze security ds01-scan.service | tail -n 1 | sed 's/^/   /'

step "a missing directory is made again before the scan (ExecStartPre, tmpfiles)"
in_ct rm -rf /run/ds01
in_ct systemctl start ds01-scan.service
[ "$(perm /run/ds01)" = "755 root:root" ] || fail "/run/ds01 not recreated 755 root:root by the next scan"
in_ct test -f /run/ds01/scan.lock || fail "no scan.lock in the recreated /run/ds01"
echo "   /run/ds01 removed, recreated $(perm /run/ds01) by the next scan"

step "the textfile drop-in example: ds01.prom for node_exporter"
in_ct install -D -m 0644 /usr/share/doc/ds01/examples/textfile.conf /etc/systemd/system/ds01-scan.service.d/textfile.conf
in_ct install -d /var/lib/prometheus/node-exporter
in_ct systemctl daemon-reload
in_ct systemctl start ds01-scan.service
in_ct test -s /var/lib/prometheus/node-exporter/ds01.prom || fail "no ds01.prom written with the textfile drop-in"
prom=$(in_ct cat /var/lib/prometheus/node-exporter/ds01.prom)
grep -q '^ds01_source_up{source="docker"} 0$' <<<"$prom" || fail "ds01.prom does not say docker is down"
if command -v promtool >/dev/null; then
	lint=$(promtool check metrics <<<"$prom" 2>&1) || fail "promtool check metrics: $lint"
	echo "   ds01.prom: $(wc -l <<<"$prom") lines, promtool check metrics: clean"
else
	echo "   ds01.prom: $(wc -l <<<"$prom") lines (promtool not installed: not linted)"
fi
in_ct rm -rf /etc/systemd/system/ds01-scan.service.d /var/lib/prometheus
in_ct systemctl daemon-reload

step "upgrade (dpkg -i over itself) keeps the admin's choice"
in_ct dpkg -i /tmp/ds01.deb >/dev/null
[ "$(in_ct systemctl is-enabled ds01-scan.timer)" = enabled ] || fail "upgrade disabled the timer"
[ "$(in_ct systemctl is-active ds01-scan.timer)" = active ] || fail "upgrade left the timer stopped"
in_ct systemctl disable --now ds01-scan.timer 2>/dev/null
in_ct dpkg -i /tmp/ds01.deb >/dev/null
[ "$(in_ct systemctl is-enabled ds01-scan.timer || true)" = disabled ] || fail "upgrade re-enabled a timer the admin disabled"
[ "$(in_ct systemctl is-active ds01-scan.timer || true)" = inactive ] || fail "upgrade started a timer the admin disabled"
in_ct systemctl enable --now ds01-scan.timer 2>/dev/null
echo "   enabled stays enabled and running; disabled stays disabled"

step "dpkg -r, then dpkg -P: nothing left but the inventory and the log"
in_ct dpkg -r ds01
[ "$(in_ct systemctl is-active ds01-scan.timer || true)" = inactive ] || fail "ds01-scan.timer still active after dpkg -r"
# (It exits 1 when nothing matches.)
units=$(in_ct systemctl list-unit-files --no-legend 'ds01-scan*' || true)
[ -z "$units" ] || fail "units left after dpkg -r: $units"
in_ct test ! -e /etc/logrotate.d/ds01-scan || fail "dpkg -r left /etc/logrotate.d/ds01-scan"
in_ct test ! -e /etc/systemd/system/ds01-workload-detector.service.d || fail "dpkg -r left the drop-in of ds01-workload-detector.service"
in_ct dpkg -P ds01
# The stand-in units are the test's, not the package's.
in_ct rm -f /etc/systemd/system/ds01-workload-detector.service /etc/systemd/system/ds01-workload-detector.timer
# alice's sleep is not ours; the snapshot lists files, not processes.
snapshot >"/tmp/ds01-e2e-$$.after"
if ! diff -u "/tmp/ds01-e2e-$$.before" "/tmp/ds01-e2e-$$.after" >"/tmp/ds01-e2e-$$.diff"; then
	cat "/tmp/ds01-e2e-$$.diff" >&2
	rm -f -- /tmp/ds01-e2e-$$.*
	fail "files left after dpkg -P (diff above)"
fi
rm -f -- /tmp/ds01-e2e-$$.*
in_ct test -s /var/lib/ds01/workload-inventory.json || fail "purge removed the inventory"
in_ct test -s /var/log/ds01/events.jsonl || fail "purge removed the event log"
echo "   removed and purged; kept: $(in_ct ls /var/lib/ds01 /var/log/ds01 | tr '\n' ' ')"

step "PASS: ds01 under systemd $(in_ct systemctl --version | awk 'NR == 1 { print $2 }'): ${#ids[@]} scans, the timer fired on its own every ${PERIOD_S}s, hardening intact"
