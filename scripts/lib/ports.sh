# shellcheck shell=bash
# Port helpers for the test scripts (sourced by scripts/test,
# scripts/postgres.sh and scripts/redis-cluster.sh).
#
# Test servers take ports below the kernel's ephemeral range: outgoing
# connections take their local ports from that range, so a port checked free
# there can be taken by any client's connection before the server binds it
# (or while a server is stopped and started again on it). Below it, only
# listeners compete, and a check finds them.

# The first port of the kernel's ephemeral range (32768 when unknown).
ephemeral_low() {
  local low
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || low=
  case "$low" in
  '' | *[!0-9]*) echo 32768 ;;
  *) echo "$low" ;;
  esac
}

# A random port from 20000 up to the ephemeral range (20000 to 59999 when the
# range starts too low to leave room).
random_test_port() {
  local low
  low=$(ephemeral_low)
  [ "$low" -gt 21000 ] || low=60000
  echo $((20000 + (RANDOM * 32768 + RANDOM) % (low - 20000)))
}

# True when nothing listens on 127.0.0.1:PORT.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
