#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests (tessera-keys-sql): initdb in a
# temporary directory, loopback only, trust auth, no fsync.
#
#   scripts/postgres.sh bin                 print the server's bin directory
#                                           (installs Debian's postgresql
#                                           with apt-get when missing and
#                                           running as root)
#   scripts/postgres.sh start [--watch PID] start a cluster; print its URL
#                                           (stdout, one line) and, on
#                                           stderr, how to stop it. With
#                                           --watch, the cluster is stopped
#                                           and deleted once PID exits.
#   scripts/postgres.sh stop DIR            stop the cluster in DIR, delete DIR
#   scripts/postgres.sh pause DIR           stop the server in DIR (fast
#                                           shutdown), keep the cluster
#   scripts/postgres.sh resume DIR          start it again on the same port
#                                           (for outage tests)
#
# PostgreSQL refuses to run as root: as root, the server runs as the
# `postgres` user (created by the Debian package).
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
# random_test_port, port_free: below the kernel's ephemeral range, so a
# server paused and resumed on its port (resume) finds it free.
# shellcheck source=lib/ports.sh
. "$(dirname "$SELF")/lib/ports.sh"

find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

ensure_bin() {
  find_bin && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: installing postgresql (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 &&
      apt-get install -y -qq --no-install-recommends postgresql >&2 </dev/null
    find_bin && return 0
  fi
  echo "postgres.sh: no PostgreSQL server in /usr/lib/postgresql/*/bin;" \
    "install Debian's postgresql package (apt-get install postgresql)" >&2
  return 1
}

as_server_user() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local watch="" bin dir port try
  if [ "${1:-}" = "--watch" ]; then
    watch=${2:?--watch needs a PID}
  fi
  bin=$(ensure_bin)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "postgres.sh: running as root but there is no 'postgres' user to run the server" >&2
      rm -rf "$dir"
      return 1
    fi
    chown postgres: "$dir"
  fi
  if ! as_server_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
    -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    echo "postgres.sh: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    return 1
  fi
  for try in $(seq 1 20); do
    port=$(random_test_port)
    port_free "$port" || continue
    if as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "$(server_options "$port" "$dir")" \
      start >/dev/null 2>&1; then
      if [ -n "$watch" ]; then
        # Detached, with no inherited output, so a caller reading our
        # stdout sees EOF at once.
        setsid bash -c '
          while kill -0 "$1" 2>/dev/null; do sleep 1; done
          "$0" stop "$2"' "$SELF" "$watch" "$dir" </dev/null >/dev/null 2>&1 &
      fi
      echo "$port" >"$dir/port"
      echo "postgres.sh: cluster in $dir (stop: $SELF stop $dir)" >&2
      echo "postgres://postgres@127.0.0.1:$port/postgres"
      return 0
    fi
  done
  echo "postgres.sh: could not start the server; its log:" >&2
  cat "$dir/server.log" >&2 2>/dev/null || true
  rm -rf "$dir"
  return 1
}

stop() {
  local dir=${1:?stop needs the cluster directory} bin
  bin=$(find_bin) || true
  if [ -n "$bin" ] && [ -d "$dir/data" ]; then
    as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

server_options() { # server_options PORT DIR
  echo "-p $1 -k $2 -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
}

pause() {
  local dir=${1:?pause needs the cluster directory} bin
  bin=$(find_bin)
  as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

resume() {
  local dir=${1:?resume needs the cluster directory} bin port
  bin=$(find_bin)
  port=$(cat "$dir/port")
  as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "$(server_options "$port" "$dir")" start >/dev/null
}

case "${1:-}" in
bin) ensure_bin ;;
start)
  shift
  start "$@"
  ;;
stop)
  shift
  stop "$@"
  ;;
pause)
  shift
  pause "$@"
  ;;
resume)
  shift
  resume "$@"
  ;;
*)
  sed -n '2,21p' "$0" >&2
  exit 2
  ;;
esac
