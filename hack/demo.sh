#!/usr/bin/env bash
# make demo: a private Docker engine with one container of each origin and
# each GPU channel, two scans, and what ds01-workloads makes of them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo: needs root (it starts a private dockerd)" >&2; exit 1; }

if [ "${1:-}" != inside ]; then
	dir=$(mktemp -d /tmp/ds01-demo.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
	DS01_DEMO_DIR=$dir bash hack/with-engine.sh "$dir/engine" -- bash "$0" inside
	exit
fi

img=$DS01_TEST_IMAGE
out=$DS01_DEMO_DIR
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A device node with NVIDIA's major number stands in for a GPU.
[ -e /dev/nvidia0 ] || { mknod /dev/nvidia0 c 195 0; made_node=1; }
cleanup() {
	[ -n "${made_node:-}" ] && rm -f /dev/nvidia0
	id ds01demo-alice >/dev/null 2>&1 && userdel -r ds01demo-alice 2>/dev/null
	id ds01demo-bob >/dev/null 2>&1 && userdel -r ds01demo-bob 2>/dev/null
	true
}
trap cleanup EXIT
useradd -m ds01demo-alice 2>/dev/null || true
useradd -m ds01demo-bob 2>/dev/null || true

say "Creating workloads on a private engine"
docker run -d --name ds01-managed-job --label ds01.managed=true --label ds01.user=ds01demo-alice \
	--label ds01.gpu.uuid=GPU-5f1c0e4e "$img" sleep 3600 >/dev/null
docker run -d --name raw-train --user "$(id -u ds01demo-bob)" "$img" sleep 3600 >/dev/null
docker run -d --name gpu-device --device /dev/nvidia0 "$img" sleep 3600 >/dev/null
docker run -d --name gpu-runtime --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=1,2 "$img" sleep 3600 >/dev/null
docker create --name gpus-all --gpus all "$img" >/dev/null
docker run --name finished "$img" true >/dev/null
stack=/home/ds01demo-bob/stack
mkdir -p "$stack"
printf 'version: "2.4"\nservices:\n  notebook:\n    image: %s\n    command: sleep 3600\n' "$img" >"$stack/docker-compose.yml"
chown -R ds01demo-bob: "$stack"
(cd "$stack" && docker-compose -p demo up -d 2>/dev/null)
if devcontainer=$(bash hack/engine.sh devcontainer-cli "$PWD/.tools" 2>/dev/null); then
	ws=/home/ds01demo-alice/project
	mkdir -p "$ws/.devcontainer"
	printf '{"image": "%s", "overrideCommand": true}\n' "$img" >"$ws/.devcontainer/devcontainer.json"
	chown -R ds01demo-alice: "$ws"
	"$devcontainer" up --workspace-folder "$ws" >/dev/null 2>&1 || echo "(devcontainer up failed; skipping that origin)"
fi
docker ps -a --format 'table {{.Names}}\t{{.Status}}'

scan() { ./bin/ds01-scan --state-dir "$out" --events-file "$out/events.jsonl"; }
say "Scan 1"
scan
say "Scan 2 (nothing changed: no events)"
sleep 1
scan
say "ds01-workloads --all"
./bin/ds01-workloads --inventory "$out/workload-inventory.json" --all
say "ds01-workloads --gpu-only --json | one line per workload"
./bin/ds01-workloads --inventory "$out/workload-inventory.json" --gpu-only --json |
	python3 -c 'import json,sys; [print(w["type"], w["user"], w["gpus"], w["name"]) for w in json.load(sys.stdin)["workloads"]]'
say "Events (first lines of $out/events.jsonl)"
head -n 3 "$out/events.jsonl"
echo "... $(wc -l <"$out/events.jsonl") events in all"
say "Stopping raw-train, scanning again"
docker stop -t 0 raw-train >/dev/null
scan
tail -n 1 "$out/events.jsonl"

say "The GPU ledger, over a stand-in NVML driver (go-nvml's mock server)"
# Two GPUs whose minor numbers are swapped (GPU 0 is /dev/nvidia1), raw-train's
# sibling gpu-device on GPU 1 (it declared /dev/nvidia0, which is GPU 1), and
# gpu-runtime (declared GPUs 1,2) also on GPU 0; GPU 1 holds 20 GiB that no
# process listed holds.
pid() { docker inspect -f '{{.State.Pid}}' "$1"; }
cat >"$out/nvml.json" <<JSON
{"gpus": 2, "minor_numbers": [1, 0], "unlisted_memory_bytes": {"1": 21474836480},
 "processes": [
  {"gpu": 1, "pid": $(pid gpu-device), "memory_bytes": 4294967296},
  {"gpu": 0, "pid": $(pid gpu-runtime), "memory_bytes": 2147483648},
  {"gpu": 1, "pid": $(pid gpu-runtime), "memory_bytes": 1073741824}]}
JSON
DS01_NVML_MOCK=$out/nvml.json ./bin/ds01-scan-nvmlmock --state-dir "$out" --events-file "$out/events.jsonl"
say "ds01-workloads --by-gpu"
./bin/ds01-workloads --inventory "$out/workload-inventory.json" --by-gpu
say "The event the ledger wrote"
grep -F '"changed":"gpu_access"' "$out/events.jsonl" | tail -n 1
