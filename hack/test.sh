#!/usr/bin/env bash
# The one test command (`make test`): vet, unit tests with the race detector,
# then the integration suite against a private Docker engine with the real
# docker-compose and devcontainer tools.
#
#   hack/test.sh               everything
#   hack/test.sh integration   the integration suite only
#
# A suite that cannot run is reported loudly at the end. With CI=true it is a
# failure instead: CI must never pass on a skipped suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${PATH}:/usr/local/go/bin:/usr/sbin:/sbin"
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"

mode=${1:-all}
skipped=()

cannot_run() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $1 (CI=true turns a suite that cannot run into a failure)" >&2
		exit 1
	fi
	skipped+=("$1")
}

report_skips() {
	if [ ${#skipped[@]} -gt 0 ]; then
		echo
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
		echo "!! SKIPPED SUITES — these were NOT tested:"
		printf '!!   - %s\n' "${skipped[@]}"
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	fi
}
trap report_skips EXIT

# need_packages installs the Debian packages the integration suite runs on,
# when root and apt-get can; it reports what is still missing.
need_packages() {
	local missing=()
	command -v dockerd >/dev/null || missing+=(docker.io)
	command -v docker-compose >/dev/null || missing+=(docker-compose)
	dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
	command -v strace >/dev/null || missing+=(strace)
	if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing ${missing[*]}" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
		missing=()
		command -v dockerd >/dev/null || missing+=(docker.io)
		command -v docker-compose >/dev/null || missing+=(docker-compose)
		dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
		command -v strace >/dev/null || missing+=(strace)
	fi
	echo "${missing[*]}"
}

# Install what the suites need first: the unit tests use strace too.
missing=""
if [ "$(id -u)" = 0 ]; then
	missing=$(need_packages)
fi

if [ "$mode" = all ]; then
	echo "== go vet"
	go vet ./...
	echo "== unit tests (go test -race ./...)"
	go test -race -count=1 ./...
	# The mock NVML the integration suite's scanner is built with has tests
	# of its own, behind its build tag.
	go test -race -count=1 -tags nvmlmock ./pkg/detect
fi

echo "== integration suite (private Docker engine)"
if [ "$(id -u)" != 0 ]; then
	cannot_run "integration: needs root to start a private dockerd and create test users"
	exit 0
fi
if [ -n "$missing" ]; then
	cannot_run "integration: missing packages: $missing"
	exit 0
fi
make --no-print-directory build
# The same scanner with go-nvml's mock server behind DS01_NVML_MOCK, so the
# suite can put chosen processes on chosen GPUs.
go build -tags nvmlmock -o bin/ds01-scan-nvmlmock ./cmd/ds01-scan
engine_dir=$(mktemp -d /tmp/ds01-engine.XXXXXX)
if devcontainer=$(bash hack/engine.sh devcontainer-cli "$PWD/.tools" 2>"$engine_dir/npm.log"); then
	export DS01_TEST_DEVCONTAINER=$devcontainer
else
	cat "$engine_dir/npm.log" >&2
	cannot_run "integration: devcontainer origin (npm install @devcontainers/cli failed)"
fi
export DS01_TEST_ENGINE_DIR=$engine_dir/engine DS01_TEST_BIN=$PWD/bin
status=0
bash hack/with-engine.sh "$DS01_TEST_ENGINE_DIR" -- \
	go test -tags integration -count=1 -timeout 20m -v ./test/integration || status=$?
rm -rf "$engine_dir" 2>/dev/null || true

echo "== benchmark harness smoke test (make bench at N=5)"
if ! out=$(BENCH_GO=0 RUNS=1 bash hack/bench.sh 5 2>&1); then
	echo "$out"
	echo "FAIL: make bench harness" >&2
	status=1
elif ! grep -qE '^ +5 ' <<<"$out"; then
	echo "$out"
	echo "FAIL: make bench printed no row for N=5" >&2
	status=1
else
	tail -n 3 <<<"$out"
fi
exit $status
