#!/usr/bin/env bash
# make bench: what a scan costs as a server fills up, side by side with the
# Docker engine's own floors, on a private engine.
#
#   hack/bench.sh [N ...]        default: 100 300 1000 containers
#   RUNS=5 hack/bench.sh 100     runs per timing (median reported)
#   BENCH_GO=0                   skip the Go micro-benchmarks
#   BENCH_BEFORE=BIN             also time another ds01-scan build (an
#                                earlier commit's) in the same run, on the
#                                same containers: a row "before" per N
#
# For each N: N containers of mixed origins (10 % running, 20 % exited, the
# rest created), then
#   - a cold scan (no state) and steady scans (nothing changed): wall, CPU
#     (user+sys), peak RSS, and Docker API calls counted by a proxy;
#   - `docker ps -a -q` (the floor for one list call) and
#     `docker ps -aq | xargs docker inspect` (the floor for inspecting all);
#   - ds01-workloads in each mode on the resulting inventory.
# One table at the end, with the ratios steady/ps (wall), cpu/ps (steady CPU
# against docker ps -a -q's) and cold/inspect-all.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make bench: needs root (it starts a private dockerd)" >&2; exit 1; }

if [ "${BENCH_INSIDE:-}" != 1 ]; then
	make --no-print-directory build >/dev/null
	go build -o bin/apicount ./hack/apicount
	dir=$(mktemp -d /tmp/ds01-bench.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
	BENCH_INSIDE=1 BENCH_DIR=$dir bash hack/with-engine.sh "$dir/engine" -- bash "$0" "$@"
	status=$?
	if [ "${BENCH_GO:-1}" = 1 ]; then
		echo
		echo "== Go benchmarks"
		go test -run '^$' -bench 'BenchmarkReconcile|BenchmarkParse|BenchmarkContainerFromCgroup|BenchmarkDecodeContainerList|BenchmarkScanSteady' -benchmem ./pkg/inventory ./pkg/detect ./pkg/scan | grep -E '^Benchmark'
		go test -run '^$' -bench 'BenchmarkDeviceHolders' -benchtime 10x ./pkg/detect | grep -E '^Benchmark'
		go test -run '^$' -bench 'BenchmarkCommand|BenchmarkRender' -benchtime 10x ./cmd/ds01-workloads | grep -E '^Benchmark'
		go test -run '^$' -bench 'BenchmarkCommit' -benchtime 20x ./cmd/ds01-scan | grep -E '^Benchmark'
	fi
	exit $status
fi

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 300 1000)
runs=${RUNS:-5}
img=$DS01_TEST_IMAGE
engine_sock=${DOCKER_HOST#unix://}
proxy=$BENCH_DIR/proxy.sock
./bin/apicount -listen "$proxy" -engine "$engine_sock" 2>"$BENCH_DIR/apicount.log" &
proxy_pid=$!
trap 'kill $proxy_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$proxy" ] && break; sleep 0.1; done
calls() { curl -s --unix-socket "$proxy" http://x/_count; }

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# measure CMD...: prints "wall_s cpu_s maxrss_kib"; wall from the clock in
# ns (time(1) rounds it to 10 ms), CPU and RSS from time(1).
measure() {
	local t0 t1
	t0=$(date +%s%N)
	/usr/bin/time -f '%U %S %M' -o "$BENCH_DIR/time" "$@" >/dev/null 2>&1
	t1=$(date +%s%N)
	awk -v w=$((t1 - t0)) '{printf "%.4f %.3f %s\n", w/1e9, $1+$2, $3}' "$BENCH_DIR/time"
}
ms() { awk -v s="$1" 'BEGIN {printf "%.1f", s*1000}'; }

have=0
make_containers() {
	local want=$1 i kind
	for ((i = have; i < want; i++)); do
		case $((i % 4)) in
		0) kind=(--label ds01.managed=true --label ds01.user=bench) ;;
		1) kind=(--label com.docker.compose.project=bench --label com.docker.compose.project.working_dir=/tmp) ;;
		2) kind=(--label devcontainer.local_folder=/tmp/ws) ;;
		*) kind=() ;;
		esac
		if ((i % 10 == 0)); then
			docker run -d --init "${kind[@]}" "$img" sleep 3600 >/dev/null
		elif ((i % 10 <= 2)); then
			docker run -d "${kind[@]}" "$img" true >/dev/null
		else
			docker create "${kind[@]}" "$img" >/dev/null
		fi
	done
	have=$want
}

# source_durations INVENTORY: "name ms" for each source of the last scan
# (sources.<name>.duration_ms; the inventory is compact JSON).
source_durations() {
	grep -o '"\(docker\|nvml\|procfs\)":{[^}]*"duration_ms":[0-9]*' "$1" |
		sed 's/^"\([a-z]*\)".*"duration_ms":\([0-9]*\)$/\1 \2/' || true
}

rows=()
sources_rows=()
before_rows=()
# scan BIN STATE: measure a scan by BIN into STATE, straight
# to the engine. Timings never go through the counting proxy: it would add
# its own copying to the scan's and not to docker ps's.
scan() { measure "$1" --state-dir "$2" --events-file "$2/events.jsonl"; }
# cold BIN STATE: one cold scan, its state removed first.
cold() {
	rm -rf "$2"
	scan "$1" "$2"
}
col() { awk -v c="$1" '{print $c}' "$2" | median; }
for n in "${sizes[@]}"; do
	make_containers "$n"
	state=$BENCH_DIR/state-$n
	bstate=$BENCH_DIR/before-$n
	out=$BENCH_DIR/$n
	mkdir -p "$out"
	for f in cold steady ps sources bcold bsteady; do : >"$out/$f"; done

	# The API calls of a cold and of a steady scan, counted through the
	# proxy, untimed.
	counted=(--state-dir "$BENCH_DIR/counted-$n" --events-file "$BENCH_DIR/counted-$n/events.jsonl" --docker-host "unix://$proxy")
	c0=$(calls)
	./bin/ds01-scan "${counted[@]}" >/dev/null 2>&1
	cold_calls=$(($(calls) - c0))
	c0=$(calls)
	./bin/ds01-scan "${counted[@]}" >/dev/null 2>&1
	steady_calls=$(($(calls) - c0))

	# Cold scans, this build's and the earlier one's in turn, each from no
	# state; then steady scans of both and docker ps -a -q in turn, so that
	# the VM's drift touches all three alike.
	for _ in $(seq "$runs"); do
		cold ./bin/ds01-scan "$state" >>"$out/cold"
		[ -z "${BENCH_BEFORE:-}" ] || cold "$BENCH_BEFORE" "$bstate" >>"$out/bcold"
	done
	for _ in $(seq "$runs"); do
		scan ./bin/ds01-scan "$state" >>"$out/steady"
		source_durations "$state/workload-inventory.json" >>"$out/sources"
		[ -z "${BENCH_BEFORE:-}" ] || scan "$BENCH_BEFORE" "$bstate" >>"$out/bsteady"
		measure docker ps -a -q >>"$out/ps"
	done
	src=""
	for s in docker nvml procfs; do
		src+="$s $(awk -v s="$s" '$1 == s {print $2}' "$out/sources" | median) ms, "
	done
	sources_rows+=("$(printf '%6s   %s' "$n" "${src%, }")")
	steady_wall=$(col 1 "$out/steady")
	steady_rss=$(awk '{print $3}' "$out/steady" | sort -g | tail -1)
	ps_wall=$(col 1 "$out/ps")
	ps_cpu=$(col 2 "$out/ps")
	inspect_wall=$(for _ in $(seq "$runs"); do
		measure sh -c 'docker ps -aq | xargs docker inspect' | awk '{print $1}'
	done | median)

	inv=$state/workload-inventory.json
	wl=""
	for mode in "" --wide --by-user --json; do
		t=$(for _ in $(seq "$runs"); do measure ./bin/ds01-workloads --inventory "$inv" --all $mode | awk '{print $1}'; done | median)
		wl+="$(ms "$t")/"
	done
	wl_rss=$(measure ./bin/ds01-workloads --inventory "$inv" --all --wide | awk '{print $3}')

	if [ -n "${BENCH_BEFORE:-}" ]; then
		b_wall=$(col 1 "$out/bsteady")
		before_rows+=("$(printf '%6s %9s %9s %9s %9s %8s %8s' "$n" "$(ms "$(col 1 "$out/bcold")")" "$(ms "$(col 2 "$out/bcold")")" \
			"$(ms "$b_wall")" "$(ms "$(col 2 "$out/bsteady")")" "$(ms "$ps_wall")" \
			"$(awk -v a="$b_wall" -v b="$ps_wall" 'BEGIN {printf "%.2f", a/b}')")")
	fi

	cold_wall=$(col 1 "$out/cold")
	steady_cpu=$(col 2 "$out/steady")
	rows+=("$(printf '%6s %9s %9s %9s %9s %8s %6s/%-3s %8s %7s %10s %8s %8s %8s %-15s %7s' \
		"$n" "$(ms "$cold_wall")" "$(ms "$(col 2 "$out/cold")")" "$(ms "$steady_wall")" "$(ms "$steady_cpu")" \
		"$((steady_rss / 1024))" "$cold_calls" "$steady_calls" "$(ms "$ps_wall")" "$(ms "$ps_cpu")" "$(ms "$inspect_wall")" \
		"$(awk -v a="$steady_wall" -v b="$ps_wall" 'BEGIN {printf "%.2f", a/b}')" \
		"$(awk -v a="$steady_cpu" -v b="$ps_cpu" 'BEGIN {printf "%.2f", (b > 0) ? a/b : 0}')" \
		"$(awk -v a="$cold_wall" -v b="$inspect_wall" 'BEGIN {printf "%.2f", a/b}')" \
		"${wl%/}" "$((wl_rss / 1024))")")
	echo "measured N=$n" >&2
done

echo
echo "Times in ms (median of $runs; cold scans each from no state), RSS in MiB; API calls cold/steady (counted apart, through the proxy); ds01-workloads: table/wide/by-user/json"
printf '%6s %9s %9s %9s %9s %8s %10s %8s %7s %10s %8s %8s %8s %-15s %7s\n' \
	N cold cold-cpu steady steady-cpu scan-rss api-calls "ps -aq" ps-cpu inspect-all steady/ps cpu/ps cold/insp workloads wl-rss
printf '%s\n' "${rows[@]}"
if [ ${#before_rows[@]} -gt 0 ]; then
	echo
	echo "Before: $BENCH_BEFORE, timed in turn with this build and ps -aq, on the same containers"
	printf '%6s %9s %9s %9s %9s %8s %8s\n' N cold cold-cpu steady steady-cpu "ps -aq" steady/ps
	printf '%s\n' "${before_rows[@]}"
fi
echo
echo "Per-source durations of a steady scan (median of $runs, sources.<name>.duration_ms)"
printf '%s\n' "${sources_rows[@]}"

# Where a steady scan's time goes, at the largest N: 20 scans' CPU profiles
# merged (one scan is too short for the 100 Hz sampler).
profiles=()
for i in $(seq 20); do
	./bin/ds01-scan --state-dir "$state" --events-file "$state/events.jsonl" --cpuprofile "$BENCH_DIR/cpu.$i" >/dev/null 2>&1
	profiles+=("$BENCH_DIR/cpu.$i")
done
echo
echo "== CPU profile of 20 steady scans at N=$n (top entries, cumulative)"
go tool pprof -top -cum -nodecount 25 bin/ds01-scan "${profiles[@]}" 2>/dev/null | sed -n '4,35p'
docker rm -f $(docker ps -aq) >/dev/null 2>&1 || true
