#!/usr/bin/env bash
# A throwaway Redis Cluster for tests: three primaries (no replicas) on free
# loopback ports, in a temporary directory, no persistence.
#
#   scripts/redis-cluster.sh start [--watch PID]
#                                   start a cluster; print its node URLs on
#                                   stdout (one line, space separated) and,
#                                   on stderr, how to stop it. With --watch,
#                                   the cluster is stopped and deleted once
#                                   PID exits. Installs Debian's redis-server
#                                   with apt-get when missing (as root).
#   scripts/redis-cluster.sh stop DIR
#                                   kill the nodes in DIR, delete DIR
#
# REDIS_CLUSTER_NODE_TIMEOUT (ms, default 15000, Redis's own default): how
# long a silent node takes to be declared failed by the others.
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
# ephemeral_low, port_free: nodes and their bus ports stay below the
# kernel's ephemeral range (see the helper for why).
# shellcheck source=lib/ports.sh
. "$(dirname "$SELF")/lib/ports.sh"
NODES=3

ensure_bin() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-cluster.sh: installing redis-server (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 &&
      apt-get install -y -qq --no-install-recommends redis-server >&2 </dev/null
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  fi
  echo "redis-cluster.sh: redis-server and redis-cli are needed;" \
    "install Debian's redis-server package (apt-get install redis-server)" >&2
  return 1
}

# A port that is free together with its cluster bus port (port + 10000).
pick_port() {
  local try port low span
  low=$(ephemeral_low)
  # Node ports from 10000, bus ports (+10000) below the ephemeral range;
  # the old range when that leaves too little room.
  span=$((low - 20000))
  [ "$span" -ge 1000 ] || span=30000
  for try in $(seq 1 50); do
    port=$((10000 + (RANDOM * 32768 + RANDOM) % span))
    if port_free "$port" && port_free $((port + 10000)) && ! grep -qx "$port" "$1/ports" 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Starts one node and waits until it answers, on another port when the one
# picked was taken before redis-server could bind it (or its bus port);
# prints the port.
start_one() { # start_one DIR
  local try port
  for try in 1 2 3 4 5; do
    port=$(pick_port "$1") || return 1
    echo "$port" >>"$1/ports"
    start_node "$1" "$port" || continue
    if wait_ping "$1" "$port"; then
      echo "$port"
      return 0
    fi
    echo "redis-cluster.sh: node on port $port did not start (try $try); another port" >&2
    kill_node "$1" "$port"
  done
  return 1
}

start_node() { # start_node DIR PORT
  redis-server --port "$2" --bind 127.0.0.1 --protected-mode no \
    --cluster-enabled yes --cluster-config-file "$1/nodes-$2.conf" \
    --cluster-node-timeout "${REDIS_CLUSTER_NODE_TIMEOUT:-15000}" \
    --save '' --appendonly no --rdb-del-sync-files yes --maxmemory-policy noeviction \
    --dir "$1" --logfile "$1/node-$2.log" --pidfile "$1/node-$2.pid" \
    --daemonize yes >/dev/null
}

wait_ping() { # wait_ping DIR PORT: 0 once it answers, 1 if it gave up or 10 s passed
  local i
  for i in $(seq 1 200); do
    if redis-cli -h 127.0.0.1 -p "$2" ping 2>/dev/null | grep -q PONG; then return 0; fi
    # A node that cannot bind its port or its bus port logs this and exits.
    if grep -q "aborting" "$1/node-$2.log" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}

kill_node() { # kill_node DIR PORT
  local pid
  pid=$(cat "$1/node-$2.pid" 2>/dev/null) || return 0
  # Only a redis-server: the node may be gone and its pid reused.
  if grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
  fi
}

fail() { # fail DIR MESSAGE
  echo "redis-cluster.sh: $2" >&2
  local log
  for log in "$1"/*.log; do
    [ -e "$log" ] || continue
    echo "--- $log (last lines)" >&2
    tail -n 20 "$log" >&2
  done
  stop "$1"
  return 1
}

start() {
  local watch="" dir port ports=() addrs=() urls=() i ok
  if [ "${1:-}" = "--watch" ]; then
    watch=${2:?--watch needs a PID}
  fi
  ensure_bin
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-redis-cluster.XXXXXX")
  for i in $(seq 1 "$NODES"); do
    port=$(start_one "$dir") || { fail "$dir" "no node came up on 5 free port pairs"; return 1; }
    ports+=("$port")
    addrs+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port/")
  done
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
    >"$dir/create.log" 2>&1; then
    cat "$dir/create.log" >&2
    fail "$dir" "redis-cli --cluster create failed"
    return 1
  fi
  # Every node must see all slots covered before the cluster is usable.
  for i in $(seq 1 300); do
    ok=1
    for port in "${ports[@]}"; do
      if ! redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
        ok=0
        break
      fi
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  [ "$ok" = 1 ] || { fail "$dir" "cluster_state did not become ok within 30 s"; return 1; }
  if [ -n "$watch" ]; then
    # Detached, with no inherited output, so a caller reading our stdout
    # sees EOF at once.
    setsid bash -c '
      while kill -0 "$1" 2>/dev/null; do sleep 1; done
      "$0" stop "$2"' "$SELF" "$watch" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  echo "redis-cluster.sh: cluster in $dir (stop: $SELF stop $dir)" >&2
  echo "${urls[*]}"
}

stop() {
  local dir=${1:?stop needs the cluster directory} pidfile port
  case "$dir" in
  */tessera-redis-cluster.*) ;;
  *)
    echo "redis-cluster.sh: $dir is not a directory made by this script" >&2
    return 1
    ;;
  esac
  for pidfile in "$dir"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    port=${pidfile##*/node-}
    kill_node "$dir" "${port%.pid}"
  done
  rm -rf "$dir"
}

case "${1:-}" in
start)
  shift
  start "$@"
  ;;
stop)
  shift
  stop "$@"
  ;;
*)
  sed -n '2,16p' "$0" >&2
  exit 2
  ;;
esac
