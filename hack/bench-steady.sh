#!/usr/bin/env bash
# Steady-state scan cost next to `docker ps -a` on the same private engine.
#   hack/bench-steady.sh [N] [RUNS]   (default 300 containers, 20 runs)
# N containers: 10 % running, the rest created. One cold scan, then RUNS
# steady scans (nothing changed) and RUNS `docker ps -a`, interleaved.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
runs=${2:-20}
if [ "${BENCH_INSIDE:-}" != 1 ]; then
	make --no-print-directory build >/dev/null
	dir=$(mktemp -d /tmp/ds01-bench.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
	BENCH_INSIDE=1 BENCH_DIR=$dir bash hack/with-engine.sh "$dir/engine" -- bash "$0" "$n" "$runs"
	exit
fi
state=$BENCH_DIR/state
mkdir -p "$state"
running=$((n / 10))
for i in $(seq 1 "$n"); do
	if [ "$i" -le "$running" ]; then
		docker run -d --init "$DS01_TEST_IMAGE" sleep 3600 >/dev/null
	else
		docker create "$DS01_TEST_IMAGE" >/dev/null
	fi
done
scan() { ./bin/ds01-scan --state-dir "$state" --events-file "$state/events.jsonl" >/dev/null 2>&1; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
t0=$(date +%s%N); scan; t1=$(date +%s%N)
echo "containers: $n ($running running)"
echo "cold scan: $(ms "$t0" "$t1") ms"
scan_total=0 ps_total=0
for _ in $(seq 1 "$runs"); do
	t0=$(date +%s%N); scan; t1=$(date +%s%N)
	docker ps -a >/dev/null; t2=$(date +%s%N)
	scan_total=$((scan_total + t1 - t0)) ps_total=$((ps_total + t2 - t1))
done
scan_ms=$(echo "scale=1; $scan_total / $runs / 1000000" | bc)
ps_ms=$(echo "scale=1; $ps_total / $runs / 1000000" | bc)
echo "steady scan: ${scan_ms} ms (mean of $runs)"
echo "docker ps -a: ${ps_ms} ms (mean of $runs)"
echo "ratio steady/docker ps -a: $(echo "scale=2; $scan_total / $ps_total" | bc)"
docker rm -f $(docker ps -aq) >/dev/null
