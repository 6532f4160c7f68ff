#!/usr/bin/env bash
# Emulate a cluster on one machine: one network namespace per node, each joined to a bridge
# (in a namespace of its own) by a veth link shaped with tc tbf on both ends, so the node's
# transmit and receive are both limited to RATE. Addresses are 10.77.0.(i+1)/24.
#
#   scripts/netns.sh up N RATE [PREFIX]     e.g. up 2 1gbit  -> strata-n0, strata-n1, strata-br
#   scripts/netns.sh up2 N RATE [PREFIX]    the patent's wiring: two links per node, a ring
#   scripts/netns.sh down [PREFIX]          kill what runs inside and delete the namespaces
#   scripts/netns.sh exec I [PREFIX] CMD..  run CMD in node I (with its own hostname)
#
# In up2 mode node i's eth0 faces node i-1 and its eth1 faces node i+1; ring link k joins
# node k's eth1 (10.77.<k+1>.1) to node k+1's eth0 (10.77.<k+1>.2) through its own bridge,
# and eth0 also carries 10.77.0.(i+1)/24 on a shared bridge for rendezvous and control.
#
# Needs root and iproute2. tc cannot add delay here (no netem): emulate latency in tests.
set -euo pipefail

die() { echo "netns.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "needs ip (apt-get install iproute2)"
command -v tc >/dev/null || die "needs tc (apt-get install iproute2)"

# burst = max(128 KiB, 1 ms at the rate) so 64 KiB GSO packets pass
burst_for() {
  local rate=$1 bits
  case "$rate" in
    *gbit) bits=$(( ${rate%gbit} * 1000000000 ));;
    *mbit) bits=$(( ${rate%mbit} * 1000000 ));;
    *kbit) bits=$(( ${rate%kbit} * 1000 ));;
    *) die "rate $rate: use NNNkbit, NNNmbit or NNNgbit";;
  esac
  local b=$(( bits / 8 / 1000 ))
  [ "$b" -lt 131072 ] && b=131072
  echo "$b"
}

shape() { # ns dev rate
  local burst; burst=$(burst_for "$3")
  ip -n "$1" link set "$2" up
  tc -n "$1" qdisc replace dev "$2" root tbf rate "$3" burst "$burst" latency 100ms
}

link_node() { # prefix node_index bridge_ns bridge devname addr/len rate brport
  local p=$1 i=$2 brns=$3 br=$4 dev=$5 addr=$6 rate=$7 port=$8
  ip -n "$p-n$i" link add "$dev" type veth peer name "$port" netns "$brns"
  ip -n "$brns" link set "$port" master "$br"
  ip -n "$p-n$i" addr add "$addr" dev "$dev"
  shape "$p-n$i" "$dev" "$rate"
  shape "$brns" "$port" "$rate"
}

up() {
  local n=$1 rate=$2 p=${3:-strata} two=${4:-0}
  [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "node count $n: want 1..200"
  burst_for "$rate" >/dev/null
  down "$p" 2>/dev/null || true
  ip netns add "$p-br"
  ip -n "$p-br" link set lo up
  ip -n "$p-br" link add br0 type bridge
  ip -n "$p-br" link set br0 up
  for i in $(seq 0 $((n - 1))); do
    ip netns add "$p-n$i"
    ip -n "$p-n$i" link set lo up
    link_node "$p" "$i" "$p-br" br0 eth0 "10.77.0.$((i + 1))/24" "$rate" "v$i"
  done
  if [ "$two" = 1 ]; then
    for k in $(seq 0 $((n - 1))); do
      local j=$(( (k + 1) % n ))
      ip -n "$p-br" link add "br$((k + 1))" type bridge
      ip -n "$p-br" link set "br$((k + 1))" up
      link_node "$p" "$k" "$p-br" "br$((k + 1))" eth1 "10.77.$((k + 1)).1/24" "$rate" "r$k"
      link_node "$p" "$j" "$p-br" "br$((k + 1))" "eth2" "10.77.$((k + 1)).2/24" "$rate" "l$j"
    done
  fi
  echo "netns.sh: $n nodes $p-n0..$p-n$((n - 1)) at 10.77.0.1..10.77.0.$n, links $rate (tbf burst $(burst_for "$rate") B)"
}

down() {
  local p=${1:-strata}
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$p-(n[0-9]+|br)$" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

cmd=${1:-}
shift || true
case "$cmd" in
  up) [ $# -ge 2 ] || die "usage: up N RATE [PREFIX]"; up "$1" "$2" "${3:-strata}" 0;;
  up2) [ $# -ge 2 ] || die "usage: up2 N RATE [PREFIX]"; up "$1" "$2" "${3:-strata}" 1;;
  down) down "${1:-strata}";;
  exec)
    [ $# -ge 2 ] || die "usage: exec I [PREFIX] CMD..."
    i=$1; shift
    p=strata
    if ip netns list | awk '{print $1}' | grep -qx "$1-n$i"; then p=$1; shift; fi
    exec ip netns exec "$p-n$i" unshare --uts sh -c 'hostname "$0"; exec "$@"' "$p-n$i" "$@";;
  *) die "usage: netns.sh up|up2|down|exec ...";;
esac
