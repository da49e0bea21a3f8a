#!/usr/bin/env bash
# with-engine.sh: run a command against a private Docker engine that lives only as long as it.
#
#   hack/with-engine.sh DIR -- CMD [ARG...]
#
# Starts the engine in DIR (hack/engine.sh start), builds the test image, runs CMD with
#   DOCKER_HOST=unix://DIR/docker.sock  DS01_TEST_DOCKER_HOST=<same>
#   DS01_TEST_IMAGE=ds01-test/busybox:latest
# and stops the engine however CMD or this script ends. Exits with CMD's status; a CMD killed by
# a signal gives 128+N. 125 means the engine or the image could not be made (as `docker run`
# uses it: the wrapper failed, not the command).
set -euo pipefail

readonly TEST_IMAGE=ds01-test/busybox:latest
# How long CMD gets to exit after we pass it SIGINT/SIGTERM before it is killed.
readonly CHILD_GRACE_S=10

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly engine=$here/engine.sh

usage() {
	echo "usage: with-engine.sh DIR -- CMD [ARG...]" >&2
	exit 2
}

if [ "$#" -lt 3 ] || [ -z "$1" ] || [ "$2" != -- ]; then
	usage
fi
dir=$1
shift 2

child=
stopped=0

# running PID: still running, not merely an unreaped zombie.
# shellcheck disable=SC2317 # reached only from traps, which shellcheck 0.9 cannot follow
running() {
	local state
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# shellcheck disable=SC2317 # reached only from traps, which shellcheck 0.9 cannot follow
stop_engine() {
	[ "$stopped" -eq 0 ] || return 0
	stopped=1
	# A second Ctrl-C while containers are being stopped must not leave a half-stopped
	# engine behind; `kill -9` still works for someone who really wants out.
	trap '' INT TERM HUP
	"$engine" stop "$dir" || echo "with-engine.sh: stopping the engine in $dir failed" >&2
}

# on_signal SIG: pass SIG to CMD, give it time to clean up, stop the engine, then die of SIG
# so that our caller (make, a CI runner, a shell loop) sees a signal, not an ordinary failure.
# shellcheck disable=SC2317 # reached only from traps, which shellcheck 0.9 cannot follow
on_signal() {
	local sig=$1 deadline=$((SECONDS + CHILD_GRACE_S))
	trap '' INT TERM HUP
	if [ -n "$child" ]; then
		kill -"$sig" "$child" 2>/dev/null || true
		while running "$child" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
		kill -KILL "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	stop_engine
	trap - "$sig" EXIT
	kill -"$sig" "$$"
}

trap stop_engine EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

if ! "$engine" start "$dir"; then
	echo "with-engine.sh: could not start the engine in $dir" >&2
	exit 125
fi
if ! "$engine" image "$dir" "$TEST_IMAGE"; then
	echo "with-engine.sh: could not build $TEST_IMAGE in $dir" >&2
	exit 125
fi
host=$("$engine" host "$dir")
export DOCKER_HOST=$host DS01_TEST_DOCKER_HOST=$host DS01_TEST_IMAGE=$TEST_IMAGE

# CMD runs in the background so that a TERM sent to this script alone (a CI timeout) is handled
# at once: bash runs traps only between commands, so a foreground CMD would delay it until CMD
# ended by itself. A background job in a script would get stdin from /dev/null and ignore
# SIGINT; the explicit <&0 and the trap reset give CMD the terminal and Ctrl-C as if it ran in
# the foreground.
(
	trap - INT QUIT
	exec -- "$@"
) <&0 &
child=$!
rc=0
wait "$child" || rc=$?
child=
exit "$rc"
