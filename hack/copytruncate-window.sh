#!/usr/bin/env bash
# copytruncate-window.sh: what the lab's logrotate rule (copytruncate) loses.
#
#   hack/copytruncate-window.sh [SIZE_MIB ...]     default: 1 10 100
#
# For each size: a log of SIZE MiB, rotated once by the lab's rule
# (test/integration/testdata/lab-logrotate: daily, copytruncate, dateext) while a writer appends a numbered line every
# millisecond as the lab's Python tools do (open, append, close); then the
# lines in the rotated copy and the log are counted. A line appended between
# the copy and the truncation is in neither: the lost lines measure that
# window in milliseconds. Needs logrotate and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1 10 100)
work=$(mktemp -d /tmp/ds01-copytruncate.XXXXXX)
trap 'rm -rf "$work"' EXIT
for size in "${sizes[@]}"; do
	dir=$work/$size
	mkdir -p "$dir"
	log=$dir/events.jsonl
	head -c $((size << 20)) /dev/zero | tr '\0' x | fold -w 400 | sed 's/.*/{"old":"&"}/' >"$log"
	sed "s|/var/log/ds01/|$dir/|g" test/integration/testdata/lab-logrotate >"$dir/rule"
	python3 - "$log" <<-'PY' &
		import sys, time
		log, n, end = sys.argv[1], 0, time.time() + 6
		while time.time() < end:
		    with open(log, "a") as f:
		        f.write('{"n":%d}\n' % n)
		    n += 1
		    time.sleep(0.001)
		open(log + ".count", "w").write(str(n))
	PY
	writer=$!
	sleep 2
	t0=$(date +%s%N)
	logrotate -f -s "$dir/state" "$dir/rule"
	t1=$(date +%s%N)
	wait "$writer"
	written=$(cat "$log.count")
	found=$(cat "$dir"/events.jsonl-* "$log" | grep -c '^{"n":' || true)
	echo "size=${size}MiB rotation_ms=$(((t1 - t0) / 1000000)) lines_written=$written lines_found=$found lost=$((written - found))"
done
