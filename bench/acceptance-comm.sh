#!/usr/bin/env bash
# Measure strata's comm against the figures issue 3 sets, in one run on shaped namespaces,
# and write a markdown report (default docs/bench/comm-acceptance.md):
#
#   1. 2 nodes × 4 ranks, float32 sum, 1M..64M: hier busbw ÷ rate, and hier ÷ ring at 64M
#   2. 2 nodes × 2 ranks, 1M..64M: hier busbw ÷ rate
#   3. 2 nodes × 1 rank, 1 KiB allreduce with auto: mean time
#   4. 1 node × 4 ranks, 1 MiB: busbw (shared memory, no links)
#   5. 2 nodes × 2 ranks, 1K..64M: auto ÷ the best of ring, tree and hier at each size
#
#   sudo bench/acceptance-comm.sh [--out FILE]      RATE=1gbit ITERS=5 by default
#
# Needs root and iproute2 (scripts/netns.sh); builds bin/strata if it is missing.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
OUT=$REPO/docs/bench/comm-acceptance.md
RATE=${RATE:-1gbit}
ITERS=${ITERS:-5}
PREFIX=${PREFIX:-acc}
STRATA=${STRATA_BIN:-$REPO/bin/strata}
PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a path}; shift 2;;
    -h|--help) sed -n '2,15p' "$0"; exit 0;;
    *) echo "acceptance-comm: unknown argument $1" >&2; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "acceptance-comm: needs root (network namespaces)" >&2; exit 1; }
command -v "$PY" >/dev/null || { echo "acceptance-comm: needs python3 to read JSON reports" >&2; exit 1; }
if [ ! -x "$STRATA" ]; then (cd "$REPO" && go build -o bin/strata ./cmd/strata); fi
case "$RATE" in
  *gbit) RATE_GBS=$(awk -v r="${RATE%gbit}" 'BEGIN{print r/8}');;
  *mbit) RATE_GBS=$(awk -v r="${RATE%mbit}" 'BEGIN{print r/8000}');;
  *) echo "acceptance-comm: RATE=$RATE: use NNNmbit or NNNgbit" >&2; exit 2;;
esac

WORK=$(mktemp -d /tmp/acceptance-comm.XXXXXX)
cleanup() { bash "$REPO/scripts/netns.sh" down "$PREFIX" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=29700
# run NODES NAME strata-args... : one process per node; node 0's JSON report lands in $WORK/NAME.json
run() {
  local nodes=$1 name=$2 i pids=()
  shift 2
  PORT=$((PORT + 1))
  for ((i = nodes - 1; i >= 0; i--)); do
    timeout 900 ip netns exec "$PREFIX-n$i" "$STRATA" bench comm --nnodes "$nodes" --node-rank "$i" \
      --master-addr "10.77.0.1:$PORT" --json "$@" >"$WORK/$name-n$i.json" 2>"$WORK/$name-n$i.err" &
    pids+=("$!")
  done
  for p in "${pids[@]}"; do
    wait "$p" || { echo "acceptance-comm: $name failed:" >&2; cat "$WORK/$name"-n*.err >&2; exit 1; }
  done
  mv "$WORK/$name-n0.json" "$WORK/$name.json"
  echo "acceptance-comm: $(date +%H:%M:%S) $name done" >&2
}

bash "$REPO/scripts/netns.sh" up 2 "$RATE" "$PREFIX" >/dev/null
run 2 hier24 --ranks-per-node 4 -b 1M -e 64M -f 2 -n "$ITERS" -w 1 -c 0 -a hier
run 2 ring24 --ranks-per-node 4 -b 1M -e 64M -f 2 -n "$ITERS" -w 1 -c 0 -a ring
run 2 hier22 --ranks-per-node 2 -b 1M -e 64M -f 2 -n "$ITERS" -w 1 -c 0 -a hier
run 2 lat21 --ranks-per-node 1 -b 1K -e 1K -n 5000 -w 200 -c 1
# small sizes need many calls to average out scheduling noise; each algorithm runs twice,
# interleaved with the others, and keeps its better time per size
for r in 1 2; do
  for a in ring tree hier auto; do
    run 2 "auto22s-$a-$r" --ranks-per-node 2 -b 1K -e 64K -f 4 -n 300 -w 30 -c 0 -a "$a"
    run 2 "auto22l-$a-$r" --ranks-per-node 2 -b 256K -e 64M -f 4 -n "$ITERS" -w 2 -c 0 -a "$a"
  done
done
# the patent's wiring: a NIC per neighbour, hier's node rings on their own links
bash "$REPO/scripts/netns.sh" down "$PREFIX" >/dev/null
bash "$REPO/scripts/netns.sh" up2 2 "$RATE" "$PREFIX" >/dev/null
for a in hier ring; do
  STRATA_RING_IFNAMES=eth2,eth1 run 2 "nic2-$a" --ranks-per-node 4 -b 1M -e 64M -f 4 -n "$ITERS" -w 1 -c 0 -a "$a"
done
"$STRATA" bench comm --local-nodes 1 --ranks-per-node 4 -b 1M -e 1M -n 500 -w 50 -c 1 --json >"$WORK/shm14.json"

mkdir -p "$(dirname "$OUT")"
"$PY" - "$WORK" "$RATE" "$RATE_GBS" "$ITERS" >"$OUT" <<'EOF'
import json, os, platform, sys, datetime
work, rate, rgbs, iters = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
def rep(n): return json.load(open(os.path.join(work, n + ".json")))
def best(r): return max(r["out_of_place"]["busbw_gb_s"], r["in_place"]["busbw_gb_s"])
def t(r): return min(r["out_of_place"]["time_us"], r["in_place"]["time_us"])
def mib(s): return f"{s >> 20}M" if s >= 1 << 20 else f"{s >> 10}K"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# comm acceptance figures\n")
print(f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}")
print(f"- Links: 2 network namespaces, veth through a bridge, `tc tbf` {rate} ({rgbs} GB/s) on both ends")
print(f"- Command: `sudo bench/acceptance-comm.sh` (ITERS={iters}); each figure below comes from `strata bench comm --json`,")
print("  one process per node; busbw as nccl-tests defines it; \"÷ rate\" is busbw over the link rate;")
print("  each cell takes the better of the out-of-place and in-place columns.\n")
h24, r24, h22 = rep("hier24"), rep("ring24"), rep("hier22")
print("## Bandwidth: 2 nodes × 4 ranks (ceiling 0.956·2(P−1)/P = 1.67 × rate) and 2 × 2 (1.43 × rate)\n")
print("| size | 2×4 hier busbw ÷ rate | 2×4 ring ÷ rate | hier ÷ ring | 2×2 hier ÷ rate |")
print("|---:|---:|---:|---:|---:|")
for a, b, c in zip(h24["rows"], r24["rows"], h22["rows"]):
    print(f"| {mib(a['size'])} | {best(a)/rgbs:.2f} | {best(b)/rgbs:.2f} | {t(b)/t(a):.2f} | {best(c)/rgbs:.2f} |")
lat = rep("lat21")["rows"][0]
print(f"\n## Latency: 2 nodes × 1 rank, 1 KiB float32 allreduce, auto ({lat['out_of_place']['algo']})\n")
print(f"mean {lat['out_of_place']['time_us']:.1f} µs out of place, {lat['in_place']['time_us']:.1f} µs in place (5000 calls after 200 warm-up; every element checked)")
shm = rep("shm14")["rows"][0]
print("\n## Shared memory: 1 node × 4 ranks, 1 MiB float32 allreduce\n")
print(f"busbw {shm['out_of_place']['busbw_gb_s']:.2f} GB/s out of place, {shm['in_place']['busbw_gb_s']:.2f} GB/s in place (`strata bench comm --local-nodes 1 --ranks-per-node 4 -b 1M -e 1M`)")
print("\n## auto against the best algorithm: 2 nodes × 2 ranks (time per call, µs; best of 2 runs; 300 calls per size up to 64K)\n")
def merged(a):
    runs = [rep(f"auto22s-{a}-{r}")["rows"] + rep(f"auto22l-{a}-{r}")["rows"] for r in (1, 2)]
    out = []
    for x, y in zip(*runs):
        out.append(x if t(x) <= t(y) else y)
    return out
algos = {a: merged(a) for a in ["ring", "tree", "hier", "auto"]}
print("| size | ring | tree | hier | auto (chose) | auto ÷ best |")
print("|---:|---:|---:|---:|---:|---:|")
for i, row in enumerate(algos["ring"]):
    ts = {a: t(algos[a][i]) for a in algos}
    b = min(ts["ring"], ts["tree"], ts["hier"])
    print(f"| {mib(row['size'])} | {ts['ring']:.0f} | {ts['tree']:.0f} | {ts['hier']:.0f} | {ts['auto']:.0f} ({algos['auto'][i]['out_of_place']['algo']}) | {ts['auto']/b:.2f} |")
n2h, n2r = rep("nic2-hier"), rep("nic2-ring")
print("\n## The patent's wiring: two NICs per node, 2 nodes × 4 ranks\n")
print("Each node's first rank has a NIC facing node i−1 and its last rank one facing node i+1")
print("(`scripts/netns.sh up2`, every link shaped to the same rate), `STRATA_RING_IFNAMES=eth2,eth1`.")
print("hier's two node rings run on their own links; the flat ring uses the ordinary interface.\n")
print("| size | hier busbw ÷ rate | ring ÷ rate | hier ÷ ring |")
print("|---:|---:|---:|---:|")
for a, b in zip(n2h["rows"], n2r["rows"]):
    print(f"| {mib(a['size'])} | {best(a)/rgbs:.2f} | {best(b)/rgbs:.2f} | {t(b)/t(a):.2f} |")
print("\nSmall sizes are noisy on a 2-core machine (tens of microseconds swing run to run), and")
print("below ~128 KiB tbf's burst lets messages through faster than the link rate.")
EOF
cat "$OUT"
