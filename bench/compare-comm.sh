#!/usr/bin/env bash
# Compare strata's allreduce with OpenMPI's and Gloo's on one emulated cluster.
#
# Makes NODES network namespaces linked at RATE (scripts/netns.sh), then on the same
# namespaces times a float32 sum allreduce over sizes MINBYTES..MAXBYTES (×2) with:
#   strata   ring, tree, hier, auto         (strata bench comm, one process per node)
#   OpenMPI  default, tuned ring, coll/han  (bench/mpi_allreduce.c, best of MPI_RUNS runs per size)
#   Gloo     torch.distributed gloo         (bench/gloo_allreduce.py, one process per rank)
# and writes a markdown table of busbw (nccl-tests: algbw × 2(P-1)/P, P = NODES × RANKS) and
# busbw ÷ link rate to OUTFILE, printing it too. Namespaces and processes go away on exit.
#
#   sudo bench/compare-comm.sh                                   # 2 nodes × 4 ranks, 1gbit, 1M..64M
#   sudo NODES=2 RANKS=2 MAXBYTES=4M ITERS=3 bench/compare-comm.sh --out /tmp/comm.md
#   sudo SKIP_MPI=1 SKIP_GLOO=1 bench/compare-comm.sh --algos "hier ring"
#
# Settings (environment, or the flag in brackets, which wins):
#   NODES (2) [--nodes]  RANKS per node (4) [--ranks]  RATE (1gbit) [--rate]
#   MINBYTES (1M) [--minbytes]  MAXBYTES (64M) [--maxbytes]  ITERS (5) [--iters]  WARMUP (2) [--warmup]
#   OUTFILE (REPO/docs/bench/comm.md) [--out]  PREFIX of the namespaces (cmp) [--prefix]
#   ALGOS ("ring tree hier auto") [--algos]  MPI_CONFIGS ("default ring han") [--mpi-configs]
#   MPI_RUNS (2) [--mpi-runs]  STRATA_RUNS (1)  GLOO_RUNS (1): runs per configuration, best kept
#   SKIP_STRATA, SKIP_MPI, SKIP_GLOO (0) [--skip-strata, --skip-mpi, --skip-gloo]
#   STEP_TIMEOUT (600) [--timeout]: seconds any one step may take
#   STRATA_BIN (REPO/bin/strata, built with go if missing), NETNS_SH (REPO/scripts/netns.sh),
#   PYTHON (/usr/bin/python3, Debian's, with python3-torch), KEEP_LOGS=1 keeps the work directory.
#
# Needs root, iproute2, coreutils (timeout), util-linux (unshare); for OpenMPI: openmpi-bin and
# libopenmpi-dev; for Gloo: python3-torch (apt-get install openmpi-bin libopenmpi-dev python3-torch).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:-$(cd "$SCRIPT_DIR/.." && pwd)}

# The command line as given, settings from the environment first, for the report.
CMDLINE=""
for v in NODES RANKS RATE MINBYTES MAXBYTES ITERS WARMUP OUTFILE PREFIX ALGOS MPI_CONFIGS \
  MPI_RUNS STRATA_RUNS GLOO_RUNS SKIP_STRATA SKIP_MPI SKIP_GLOO STEP_TIMEOUT STRATA_BIN REPO NETNS_SH PYTHON; do
  if [ -n "${!v+x}" ]; then CMDLINE+="$v=$(printf '%q' "${!v}") "; fi
done
CMDLINE+="$(printf '%q' "$0")"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done

NODES=${NODES:-2}
RANKS=${RANKS:-4}
RATE=${RATE:-1gbit}
MINBYTES=${MINBYTES:-1M}
MAXBYTES=${MAXBYTES:-64M}
ITERS=${ITERS:-5}
WARMUP=${WARMUP:-2}
OUTFILE=${OUTFILE:-$REPO/docs/bench/comm.md}
PREFIX=${PREFIX:-cmp}
ALGOS=${ALGOS:-ring tree hier auto}
MPI_CONFIGS=${MPI_CONFIGS:-default ring han}
MPI_RUNS=${MPI_RUNS:-2}
STRATA_RUNS=${STRATA_RUNS:-1}
GLOO_RUNS=${GLOO_RUNS:-1}
SKIP_STRATA=${SKIP_STRATA:-0}
SKIP_MPI=${SKIP_MPI:-0}
SKIP_GLOO=${SKIP_GLOO:-0}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
STRATA_BIN=${STRATA_BIN:-}
NETNS_SH=${NETNS_SH:-$REPO/scripts/netns.sh}
PYTHON=${PYTHON:-/usr/bin/python3}
KEEP_LOGS=${KEEP_LOGS:-0}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "compare-comm: $*" >&2; exit 1; }
log() { echo "compare-comm: $(date +%H:%M:%S) $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=${2:?--nodes needs a value}; shift 2;;
    --ranks) RANKS=${2:?--ranks needs a value}; shift 2;;
    --rate) RATE=${2:?--rate needs a value}; shift 2;;
    --minbytes) MINBYTES=${2:?--minbytes needs a value}; shift 2;;
    --maxbytes) MAXBYTES=${2:?--maxbytes needs a value}; shift 2;;
    --iters) ITERS=${2:?--iters needs a value}; shift 2;;
    --warmup) WARMUP=${2:?--warmup needs a value}; shift 2;;
    --out) OUTFILE=${2:?--out needs a path}; shift 2;;
    --prefix) PREFIX=${2:?--prefix needs a value}; shift 2;;
    --algos) ALGOS=${2:?--algos needs a list}; shift 2;;
    --mpi-configs) MPI_CONFIGS=${2:?--mpi-configs needs a list}; shift 2;;
    --mpi-runs) MPI_RUNS=${2:?--mpi-runs needs a value}; shift 2;;
    --timeout) STEP_TIMEOUT=${2:?--timeout needs seconds}; shift 2;;
    --skip-strata) SKIP_STRATA=1; shift;;
    --skip-mpi) SKIP_MPI=1; shift;;
    --skip-gloo) SKIP_GLOO=1; shift;;
    -h|--help) usage; exit 0;;
    *) die "unknown argument $1 (see --help)";;
  esac
done

# ---- checks, before anything is set up ----

is_uint() { case "$1" in ''|*[!0-9]*) return 1;; esac; }
for v in NODES RANKS ITERS WARMUP MPI_RUNS STRATA_RUNS GLOO_RUNS STEP_TIMEOUT; do
  is_uint "${!v}" || die "$v=${!v}: want a whole number"
done
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 200 ]; then die "NODES=$NODES: want 1..200"; fi
[ "$RANKS" -ge 1 ] || die "RANKS=$RANKS: want at least 1"
P=$((NODES * RANKS))
[ "$P" -ge 2 ] || die "NODES × RANKS = $P: an allreduce needs at least 2 ranks"
[ "$ITERS" -ge 1 ] || die "ITERS=$ITERS: want at least 1"
[ "$STEP_TIMEOUT" -ge 1 ] || die "STEP_TIMEOUT must be at least 1 second"

# to_bytes 4M -> 4194304 (K, M, G are powers of 1024, as strata and nccl-tests read them)
to_bytes() {
  local s=${1^^} m=1
  case "$s" in
    *K) m=1024; s=${s%K};;
    *M) m=$((1024 * 1024)); s=${s%M};;
    *G) m=$((1024 * 1024 * 1024)); s=${s%G};;
  esac
  is_uint "$s" || die "size $1: want a byte count such as 4096, 64K, 1M or 1G"
  echo $((s * m))
}
MINB=$(to_bytes "$MINBYTES")
MAXB=$(to_bytes "$MAXBYTES")
if [ "$MINB" -lt 4 ] || [ $((MINB % 4)) != 0 ]; then die "MINBYTES=$MINBYTES: want a multiple of 4 bytes (float32)"; fi
[ "$MAXB" -ge "$MINB" ] || die "MAXBYTES=$MAXBYTES is smaller than MINBYTES=$MINBYTES"
SIZES=()
for ((s = MINB; s <= MAXB; s *= 2)); do SIZES+=("$s"); done

# link rate in bits/s and GB/s
is_uint "${RATE%?bit}" || die "RATE=$RATE: use NNNkbit, NNNmbit or NNNgbit"
case "$RATE" in
  *gbit) RATE_BITS=$(( ${RATE%gbit} * 1000000000 ));;
  *mbit) RATE_BITS=$(( ${RATE%mbit} * 1000000 ));;
  *kbit) RATE_BITS=$(( ${RATE%kbit} * 1000 ));;
  *) die "RATE=$RATE: use NNNkbit, NNNmbit or NNNgbit";;
esac
[ "$RATE_BITS" -gt 0 ] || die "RATE=$RATE: use NNNkbit, NNNmbit or NNNgbit"
RATE_GBS=$(awk -v b="$RATE_BITS" 'BEGIN { printf "%.6f", b / 8 / 1e9 }')

case "$PREFIX" in
  ''|*[!a-zA-Z0-9]*) die "PREFIX=$PREFIX: letters and digits only";;
esac
if [[ "$PREFIX" =~ ^(strata|sttest|st[0-9]+)$ ]]; then
  die "PREFIX=$PREFIX: namespaces named $PREFIX-* belong to other tools; pick another (default cmp)"
fi
if ip netns list 2>/dev/null | awk '{print $1}' | grep -Eq "^$PREFIX-(n[0-9]+|br)$"; then
  die "namespaces $PREFIX-* already exist (another run?); remove them with 'bash $NETNS_SH down $PREFIX' or set PREFIX"
fi

for v in SKIP_STRATA SKIP_MPI SKIP_GLOO; do
  case "${!v}" in 0|1) ;; *) die "$v=${!v}: want 0 or 1";; esac
done
if [ "${BASH_VERSINFO[0]}" -lt 5 ] || { [ "${BASH_VERSINFO[0]}" = 5 ] && [ "${BASH_VERSINFO[1]}" -lt 1 ]; }; then
  die "needs bash 5.1 or later (wait -n -p), this is $BASH_VERSION"
fi
[ "$(id -u)" = 0 ] || die "needs root (network namespaces); run with sudo"
command -v ip >/dev/null || die "needs ip and tc: apt-get install iproute2"
command -v tc >/dev/null || die "needs ip and tc: apt-get install iproute2"
command -v timeout >/dev/null || die "needs timeout: apt-get install coreutils"
command -v unshare >/dev/null || die "needs unshare: apt-get install util-linux"
[ -f "$NETNS_SH" ] || die "no namespace script at $NETNS_SH (set NETNS_SH or REPO)"

if [ "$SKIP_STRATA" = 0 ]; then
  if [ -z "$STRATA_BIN" ]; then
    STRATA_BIN=$REPO/bin/strata
    if [ ! -x "$STRATA_BIN" ]; then
      command -v go >/dev/null || die "no strata binary at $STRATA_BIN and no go to build it: build it with 'go build -o bin/strata ./cmd/strata' in $REPO, or set STRATA_BIN (SKIP_STRATA=1 skips strata)"
      log "building $STRATA_BIN"
      (cd "$REPO" && timeout "$STEP_TIMEOUT" go build -o bin/strata ./cmd/strata) || die "go build of ./cmd/strata failed"
    fi
  fi
  [ -x "$STRATA_BIN" ] || die "STRATA_BIN=$STRATA_BIN is not an executable (build with 'go build -o bin/strata ./cmd/strata'; SKIP_STRATA=1 skips strata)"
  if command -v jq >/dev/null; then
    JSONTOOL=jq
  elif [ -x "$PYTHON" ]; then
    JSONTOOL=python
  else
    die "needs jq or python3 to read strata's JSON report: apt-get install jq"
  fi
fi
if [ "$SKIP_MPI" = 0 ]; then
  if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null; then
    die "OpenMPI not found (needs mpirun and mpicc): apt-get install openmpi-bin libopenmpi-dev, or SKIP_MPI=1"
  fi
  [ -f "$SCRIPT_DIR/mpi_allreduce.c" ] || die "missing $SCRIPT_DIR/mpi_allreduce.c"
  [ "$MPI_RUNS" -ge 1 ] || die "MPI_RUNS=$MPI_RUNS: want at least 1 (2 or more: OpenMPI over TCP is bimodal run to run)"
  [ "$MPI_RUNS" -ge 2 ] || log "warning: MPI_RUNS=$MPI_RUNS; OpenMPI over TCP is bimodal run to run, 2 or more runs are advised"
  for c in $MPI_CONFIGS; do
    case "$c" in default|ring|han) ;; *) die "MPI_CONFIGS: unknown configuration $c (want default, ring, han)";; esac
  done
fi
if [ "$SKIP_GLOO" = 0 ]; then
  [ -x "$PYTHON" ] || die "no $PYTHON: apt-get install python3 python3-torch, or SKIP_GLOO=1"
  timeout 120 "$PYTHON" -c 'import torch.distributed as d, sys; sys.exit(0 if d.is_available() and d.is_gloo_available() else 1)' 2>/dev/null ||
    die "$PYTHON cannot import torch with the gloo backend: apt-get install python3-torch (Debian's), or SKIP_GLOO=1"
  [ -f "$SCRIPT_DIR/gloo_allreduce.py" ] || die "missing $SCRIPT_DIR/gloo_allreduce.py"
fi
if [ "$SKIP_STRATA" = 0 ]; then
  for a in $ALGOS; do
    case "$a" in ring|tree|hier|auto) ;; *) die "ALGOS: unknown algorithm $a (want ring, tree, hier, auto)";; esac
  done
fi

# ---- setup and cleanup ----

WORK=$(mktemp -d /tmp/compare-comm.XXXXXX)
NS_UP=0
PIDS=()
FAILED=0
NOTES=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [ "$NS_UP" = 1 ]; then
    bash "$NETNS_SH" down "$PREFIX" >/dev/null 2>&1 || log "warning: could not remove namespaces $PREFIX-*: run 'bash $NETNS_SH down $PREFIX'"
  fi
  if [ "$rc" != 0 ] || [ "$FAILED" != 0 ] || [ "$KEEP_LOGS" = 1 ]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# wait_all WHAT: wait for every pid in PIDS; on the first failure stop the others.
# Returns 0 when all exited 0.
wait_all() {
  local what=$1 done_pid rc pid left=("${PIDS[@]}")
  while [ "${#left[@]}" -gt 0 ]; do
    rc=0 done_pid=""
    wait -n -p done_pid "${left[@]}" || rc=$?
    local still=()
    for pid in "${left[@]}"; do [ "$pid" = "$done_pid" ] || still+=("$pid"); done
    left=("${still[@]}")
    if [ "$rc" != 0 ]; then
      if [ "$rc" = 124 ]; then
        log "$what: timed out after ${STEP_TIMEOUT}s"
      else
        log "$what: a process (pid ${done_pid:-?}) exited with status $rc"
      fi
      for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
      wait "${PIDS[@]}" 2>/dev/null || true
      PIDS=()
      return 1
    fi
  done
  PIDS=()
  return 0
}

# fail WHAT LOGS...: record a failed step and show the end of its logs
fail() {
  local what=$1 f
  shift
  FAILED=$((FAILED + 1))
  NOTES+=("$what failed (logs in $WORK, kept)")
  log "$what failed; last lines of its logs:"
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "---- $f" >&2
    tail -n 15 "$f" >&2
  done
}

log "namespaces: $NODES × $RATE as $PREFIX-n0..$PREFIX-n$((NODES - 1)); work directory $WORK"
NS_UP=1
timeout 120 bash "$NETNS_SH" up "$NODES" "$RATE" "$PREFIX" >"$WORK/netns.log" 2>&1 ||
  { cat "$WORK/netns.log" >&2; die "could not create the namespaces"; }

PORT=29500
next_port() { PORT=$((PORT + 1)); }

# Per-contender results: $WORK/res-NAME.txt holds "size busbw" lines, one per size per run.
CONTENDERS=()
declare -A LABEL STATUS CMDS

# ---- strata ----

strata_json_rows() { # file -> "size busbw time_us" (out of place)
  if [ "$JSONTOOL" = jq ]; then
    jq -r '.rows[] | "\(.size) \(.out_of_place.busbw_gb_s) \(.out_of_place.time_us)"' "$1"
  else
    "$PYTHON" -c 'import json,sys
for r in json.load(open(sys.argv[1]))["rows"]:
    print(r["size"], r["out_of_place"]["busbw_gb_s"], r["out_of_place"]["time_us"])' "$1"
  fi
}

run_strata() { # algo run
  local algo=$1 run=$2 i base="$WORK/strata-$1-$2"
  next_port
  local args=(bench comm --nnodes "$NODES" --master-addr "10.77.0.1:$PORT" --ranks-per-node "$RANKS"
    -b "$MINB" -e "$MAXB" -f 2 -n "$ITERS" -w "$WARMUP" -c 0 -a "$algo" --json)
  CMDS[strata-$algo]="ip netns exec $PREFIX-nI env STRATA_SOCKET_IFNAME=eth0 $STRATA_BIN ${args[*]} --node-rank I"
  PIDS=()
  for ((i = 0; i < NODES; i++)); do
    timeout "$STEP_TIMEOUT" ip netns exec "$PREFIX-n$i" env STRATA_SOCKET_IFNAME=eth0 \
      "$STRATA_BIN" "${args[@]}" --node-rank "$i" >"$base-n$i.out" 2>"$base-n$i.err" &
    PIDS+=("$!")
  done
  if ! wait_all "strata $algo (run $run)"; then
    fail "strata $algo run $run" "$base-n"*.err
    return 1
  fi
  if ! strata_json_rows "$base-n0.out" >>"$WORK/res-strata-$algo.txt" 2>>"$base-n0.err"; then
    fail "strata $algo run $run (reading its JSON)" "$base-n0.out" "$base-n0.err"
    return 1
  fi
}

if [ "$SKIP_STRATA" = 0 ]; then
  for algo in $ALGOS; do
    CONTENDERS+=("strata-$algo"); LABEL[strata-$algo]="strata $algo"; STATUS[strata-$algo]=failed
    for ((r = 1; r <= STRATA_RUNS; r++)); do
      log "strata $algo (run $r/$STRATA_RUNS)"
      if run_strata "$algo" "$r"; then STATUS[strata-$algo]=ok; fi
    done
  done
fi

# ---- OpenMPI ----

if [ "$SKIP_MPI" = 0 ]; then
  log "building mpi_allreduce with mpicc"
  MPI_OK=1
  if ! timeout "$STEP_TIMEOUT" mpicc -O2 -o "$WORK/mpi_allreduce" "$SCRIPT_DIR/mpi_allreduce.c" >"$WORK/mpicc.log" 2>&1; then
    fail "mpicc" "$WORK/mpicc.log"
    MPI_OK=0
  fi
  # mpirun starts the daemons of other nodes through this agent (as it would through ssh):
  # agent [options] HOST COMMAND..., HOST being 10.77.0.(i+1) for node i. Each node gets its
  # own hostname, or the nodes' shared-memory segments (same /tmp) collide.
  cat >"$WORK/rsh-agent.sh" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do case "\$1" in -*) shift;; *) break;; esac; done
host=\$1; shift
ns=$PREFIX-n\$(( \${host##*.} - 1 ))
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$ns; \$*"
EOF
  chmod +x "$WORK/rsh-agent.sh"
  for ((i = 0; i < NODES; i++)); do echo "10.77.0.$((i + 1)) slots=$RANKS"; done >"$WORK/hostfile"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  MPI_COMMON=(--allow-run-as-root --hostfile "$WORK/hostfile" -np "$P" --map-by slot
    --bind-to none --oversubscribe
    --mca plm_rsh_agent "$WORK/rsh-agent.sh"
    --mca btl "tcp,self,vader" --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
    --mca mpi_yield_when_idle 1)

  run_mpi() { # config run
    local cfg=$1 run=$2 base="$WORK/mpi-$1-$2" extra=()
    case "$cfg" in
      ring) extra=(--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4);;
      han) extra=(--mca coll_han_priority 100);;
    esac
    local cmd=(mpirun "${MPI_COMMON[@]}" "${extra[@]}" "$WORK/mpi_allreduce" "$MINB" "$MAXB" "$ITERS" "$WARMUP")
    CMDS[mpi-$cfg]="ip netns exec $PREFIX-n0 unshare --uts sh -c 'hostname $PREFIX-n0; exec \"\$@\"' $PREFIX-n0 ${cmd[*]}"
    PIDS=()
    # shellcheck disable=SC2016 # $0 and $@ are for sh
    timeout "$STEP_TIMEOUT" ip netns exec "$PREFIX-n0" unshare --uts \
      sh -c 'hostname "$0"; exec "$@"' "$PREFIX-n0" "${cmd[@]}" >"$base.out" 2>"$base.err" </dev/null &
    PIDS+=("$!")
    local ok=0
    wait_all "OpenMPI $cfg (run $run)" || ok=$?
    # keep the sizes a failed run finished (a timeout on the largest sizes)
    awk '!/^#/ && NF == 6 { print $1, $6, $3 }' "$base.out" >>"$WORK/res-mpi-$cfg.txt"
    if [ "$ok" != 0 ]; then
      fail "OpenMPI $cfg run $run" "$base.err" "$base.out"
      return 1
    fi
  }

  for cfg in $MPI_CONFIGS; do
    CONTENDERS+=("mpi-$cfg"); LABEL[mpi-$cfg]="OpenMPI $cfg"; STATUS[mpi-$cfg]=failed
    [ "$MPI_OK" = 1 ] || continue
    for ((r = 1; r <= MPI_RUNS; r++)); do
      log "OpenMPI $cfg (run $r/$MPI_RUNS)"
      if run_mpi "$cfg" "$r"; then STATUS[mpi-$cfg]=ok; fi
    done
  done
fi

# ---- Gloo ----

run_gloo() { # run
  local run=$1 base="$WORK/gloo-$1" i l rank
  next_port
  local args=("$SCRIPT_DIR/gloo_allreduce.py" --init "tcp://10.77.0.1:$PORT" --world-size "$P"
    --minbytes "$MINB" --maxbytes "$MAXB" --iters "$ITERS" --warmup "$WARMUP" --timeout "$STEP_TIMEOUT")
  CMDS[gloo]="ip netns exec $PREFIX-nI env GLOO_SOCKET_IFNAME=eth0 MASTER_ADDR=10.77.0.1 OMP_NUM_THREADS=1 $PYTHON ${args[*]} --rank R"
  PIDS=()
  for ((i = 0; i < NODES; i++)); do
    for ((l = 0; l < RANKS; l++)); do
      rank=$((i * RANKS + l))
      timeout "$STEP_TIMEOUT" ip netns exec "$PREFIX-n$i" env GLOO_SOCKET_IFNAME=eth0 MASTER_ADDR=10.77.0.1 \
        MASTER_PORT="$PORT" OMP_NUM_THREADS=1 "$PYTHON" "${args[@]}" --rank "$rank" \
        >"$base-r$rank.out" 2>"$base-r$rank.err" </dev/null &
      PIDS+=("$!")
    done
  done
  local ok=0
  wait_all "Gloo (run $run)" || ok=$?
  awk '!/^#/ && NF == 6 { print $1, $6, $3 }' "$base-r0.out" >>"$WORK/res-gloo.txt"
  if [ "$ok" != 0 ]; then
    fail "Gloo run $run" "$base-r"*.err
    return 1
  fi
}

if [ "$SKIP_GLOO" = 0 ]; then
  CONTENDERS+=(gloo); LABEL[gloo]="Gloo"; STATUS[gloo]=failed
  for ((r = 1; r <= GLOO_RUNS; r++)); do
    log "Gloo (run $r/$GLOO_RUNS)"
    if run_gloo "$r"; then STATUS[gloo]=ok; fi
  done
fi

# ---- report ----

[ "${#CONTENDERS[@]}" -gt 0 ] || die "every contender was skipped; nothing to compare"

declare -A BEST
for c in "${CONTENDERS[@]}"; do
  f="$WORK/res-$c.txt"
  [ -s "$f" ] || continue
  while read -r size bw; do
    BEST[$c:$size]=$bw
  done < <(awk '{ if (!($1 in b) || $2 + 0 > b[$1] + 0) b[$1] = $2 } END { for (s in b) print s, b[s] }' "$f")
done

human() { # bytes -> 1M, 64M, 512K
  local b=$1
  if [ $((b % (1024 * 1024 * 1024))) = 0 ]; then echo "$((b / 1024 / 1024 / 1024))G"
  elif [ $((b % (1024 * 1024))) = 0 ]; then echo "$((b / 1024 / 1024))M"
  elif [ $((b % 1024)) = 0 ]; then echo "$((b / 1024))K"
  else echo "$b"; fi
}

CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
FLAT_CEIL=$(awk -v r="$RATE_GBS" 'BEGIN { printf "%.4f", 0.956 * r }')
if [ "$NODES" -ge 2 ]; then
  HIER_CEIL=$(awk -v r="$RATE_GBS" -v n="$NODES" -v p="$P" \
    'BEGIN { printf "%.4f", 0.956 * r * n / (2 * (n - 1)) * 2 * (p - 1) / p }')
  HIER_RATIO=$(awk -v c="$HIER_CEIL" -v r="$RATE_GBS" 'BEGIN { printf "%.2f", c / r }')
else
  HIER_CEIL=n/a HIER_RATIO=n/a
fi

REPORT="$WORK/report.md"
{
  echo "# Allreduce: strata vs OpenMPI vs Gloo"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs, ${CPU:-unknown CPU}, Linux $(uname -r)"
  echo "- Network: $NODES network namespaces on one machine, each linked to a bridge by a veth shaped with tc tbf to $RATE ($RATE_GBS GB/s) each way"
  echo "- Layout: $NODES nodes × $RANKS ranks = $P ranks; float32 sum allreduce, $(human "$MINB")..$(human "$MAXB") ×2, $WARMUP warmup + $ITERS timed iterations per size"
  echo "- Command: \`$CMDLINE\`"
  echo
  echo "Each cell: busbw in GB/s (nccl-tests: algbw × 2(P−1)/P, GB = 10⁹ bytes) and, in brackets, busbw ÷ link rate."
  echo "strata and OpenMPI are out of place, Gloo in place (its only allreduce); times are the mean over ranks."
  runs=()
  [ "$SKIP_STRATA" = 1 ] || runs+=("$STRATA_RUNS strata")
  [ "$SKIP_MPI" = 1 ] || runs+=("$MPI_RUNS OpenMPI")
  [ "$SKIP_GLOO" = 1 ] || runs+=("$GLOO_RUNS Gloo")
  runs_text=$(IFS=,; echo "${runs[*]}")
  echo "Best of ${runs_text//,/, } run(s) per size, per configuration; \"failed\": no run reached that size (see the problems below)."
  echo
  line="| size |"; rule="|---:|"
  for c in "${CONTENDERS[@]}"; do line+=" ${LABEL[$c]} |"; rule+="---:|"; done
  echo "$line"
  echo "$rule"
  for s in "${SIZES[@]}"; do
    line="| $(human "$s") |"
    for c in "${CONTENDERS[@]}"; do
      bw=${BEST[$c:$s]:-}
      if [ -n "$bw" ]; then
        line+=" $(awk -v b="$bw" -v r="$RATE_GBS" 'BEGIN { printf "%.4f (%.2f)", b, b / r }') |"
      else
        line+=" ${STATUS[$c]/ok/—} |" # failed: every run failed before this size
      fi
    done
    echo "$line"
  done
  echo
  echo "Ceilings at $RATE with TCP over Ethernet carrying 0.956 of the line rate:"
  if [ "$NODES" -ge 2 ]; then
    echo "hierarchical $HIER_CEIL GB/s ($HIER_RATIO × rate: 0.956 × N/(2(N−1)) × 2(P−1)/P, which is 0.956·2(P−1)/P at N = 2),"
  else
    echo "hierarchical n/a (one node: no link crossed),"
  fi
  echo "flat ring $FLAT_CEIL GB/s (0.956 × rate)."
  echo
  echo "Commands (I: node index, R: global rank; \$WORK: a temporary directory):"
  echo
  for c in "${CONTENDERS[@]}"; do
    if [ -n "${CMDS[$c]:-}" ]; then echo "- ${LABEL[$c]}: \`${CMDS[$c]//"$WORK"/\$WORK}\`"; fi
  done
  if [ -n "${CMDS[mpi-default]:-}${CMDS[mpi-ring]:-}${CMDS[mpi-han]:-}" ]; then
    echo
    echo "OpenMPI's hostfile lists 10.77.0.1..10.77.0.$NODES with slots=$RANKS; \$WORK/mpi_allreduce is bench/mpi_allreduce.c"
    echo "built with \`mpicc -O2\`; mpirun starts the other nodes' daemons through \$WORK/rsh-agent.sh:"
    echo
    echo '```sh'
    cat "$WORK/rsh-agent.sh"
    echo '```'
  fi
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Problems in this run:"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
} >"$REPORT"

mkdir -p "$(dirname "$OUTFILE")"
cp "$REPORT" "$OUTFILE"
cat "$REPORT"
log "wrote $OUTFILE"
if [ "$FAILED" != 0 ]; then
  log "$FAILED step(s) failed; see the logs in $WORK"
  exit 1
fi
