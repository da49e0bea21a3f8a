#!/usr/bin/env bash
# slurm.sh: a real one-node Slurm cluster for integration tests, living in one directory.
#
#   hack/slurm.sh start DIR   start munged, slurmctld and slurmd (node "localhost"), return once
#                             the node takes jobs; print the SLURM_CONF value for srun and sbatch
#   hack/slurm.sh stop DIR    cancel every job, stop the daemons (idempotent)
#
# Configuration, key, sockets, state, spool and logs are all under DIR, and the daemons listen on
# ports of their own, so the cluster never meets a real one on the machine. Jobs are tracked with
# proctrack/cgroup on cgroup v1, which puts each step in
# /slurm_localhost/uid_<uid>/job_<id>/step_<step> of the freezer hierarchy, as on a lab cluster.
# Needs root, munge (munged, mungekey) and slurm-wlm (slurmctld, slurmd, the client commands).
set -euo pipefail

readonly NODE=localhost
readonly CTLD_PORT=${DS01_SLURMCTLD_PORT:-16817}
readonly SLURMD_PORT=${DS01_SLURMD_PORT:-16818}
readonly START_TIMEOUT_S=60
readonly STOP_TIMEOUT_S=20

export PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

die() {
	echo "slurm.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage:" >&2
	sed -n 's/^#   hack\/slurm.sh/  slurm.sh/p' "$0" >&2
	exit 2
}

alive() {
	local state
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# stop_pidfile FILE: TERM the daemon FILE names, then KILL it if it outlives STOP_TIMEOUT_S.
stop_pidfile() {
	local pid deadline=$((SECONDS + STOP_TIMEOUT_S))
	[ -s "$1" ] || return 0
	pid=$(cat "$1")
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

write_config() {
	local dir=$1
	mkdir -p "$dir/munge" "$dir/ctld" "$dir/spool" "$dir/log"
	# munged refuses a key or socket directory that anyone but its own user may write, and a
	# socket that not everyone can reach.
	chown munge:munge "$dir/munge"
	chmod 0755 "$dir/munge"
	[ -s "$dir/munge/munge.key" ] || runuser -u munge -- mungekey --create --keyfile="$dir/munge/munge.key"
	cat >"$dir/slurm.conf" <<EOF
ClusterName=ds01test
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/linear
ReturnToService=2
MpiDefault=none
NodeName=$NODE CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
	cat >"$dir/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
}

cmd_start() {
	local dir=$1 deadline=$((SECONDS + START_TIMEOUT_S))
	for tool in munged mungekey slurmctld slurmd sinfo; do
		command -v "$tool" >/dev/null || die "$tool not installed"
	done
	mkdir -p "$dir"
	dir=$(realpath -- "$dir")
	cmd_stop "$dir"
	write_config "$dir"
	export SLURM_CONF=$dir/slurm.conf
	runuser -u munge -- munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
		--pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
		--seed-file="$dir/munge/munged.seed" ||
		die "munged did not start: $(tail -n 5 "$dir/munge/munged.log" 2>/dev/null)"
	# -c: a cluster left in DIR by an earlier run starts with no jobs.
	slurmctld -c || die "slurmctld did not start: $(tail -n 5 "$dir/log/slurmctld.log" 2>/dev/null)"
	slurmd -N "$NODE" || die "slurmd did not start: $(tail -n 5 "$dir/log/slurmd.log" 2>/dev/null)"
	until [ "$(sinfo -h -n "$NODE" -o %t 2>/dev/null)" = idle ]; do
		[ "$SECONDS" -lt "$deadline" ] || die "node $NODE not idle after ${START_TIMEOUT_S}s: $(sinfo -h -o '%t %E' 2>&1) $(tail -n 5 "$dir/log/slurmd.log")"
		sleep 0.2
	done
	echo "$SLURM_CONF"
}

cmd_stop() {
	local dir=$1
	[ -d "$dir" ] || return 0
	dir=$(realpath -- "$dir")
	if [ -s "$dir/slurmctld.pid" ] && alive "$(cat "$dir/slurmctld.pid")"; then
		SLURM_CONF=$dir/slurm.conf scancel --full --quiet --partition=debug 2>/dev/null || true
	fi
	# Steps outlive slurmd (they are slurmstepd's), so wait for what was cancelled to end, and
	# kill what a cluster that died without cancelling left in its cgroups.
	local deadline=$((SECONDS + STOP_TIMEOUT_S))
	while [ -n "$(job_pids)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
	job_pids | xargs -r kill -KILL 2>/dev/null || true
	stop_pidfile "$dir/slurmd.pid"
	stop_pidfile "$dir/slurmctld.pid"
	stop_pidfile "$dir/munge/munged.pid"
	# Empty job cgroups go; a tree still in use stays (rmdir refuses it).
	find /sys/fs/cgroup/*/"slurm_$NODE" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

# job_pids: the processes in the node's cgroups, which proctrack/cgroup made for its jobs.
job_pids() {
	cat /sys/fs/cgroup/*/"slurm_$NODE"/uid_*/job_*/cgroup.procs /sys/fs/cgroup/*/"slurm_$NODE"/uid_*/job_*/step_*/cgroup.procs 2>/dev/null | sort -u
}

main() {
	if [ "$#" -ne 2 ] || [ -z "$2" ]; then
		usage
	fi
	case $1 in
	start) cmd_start "$2" ;;
	stop) cmd_stop "$2" ;;
	*) usage ;;
	esac
}

main "$@"
