#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 20) when a nightly toolchain is
# present; installs cargo-fuzz when missing. New corpus entries go to
# target/fuzz-corpus, so the committed seeds in fuzz/seeds stay unchanged.
# Exits 77 ("skipped", as scripts/test counts it) without a nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-20}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz smoke: skipped (no nightly toolchain; cargo-fuzz needs nightly)"
  exit 77
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo +nightly install --locked cargo-fuzz >/dev/null
fi
cargo +nightly fuzz build -O >/dev/null
for target in $(cargo +nightly fuzz list); do
  corpus=target/fuzz-corpus/$target
  mkdir -p "$corpus"
  echo "fuzz $target for ${SECONDS_PER_TARGET}s"
  log=target/fuzz-$target.log
  mkdir -p target
  if ! cargo +nightly fuzz run -O "$target" "$corpus" "seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed"
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "$log" || true
done
echo "fuzz smoke: all targets ran ${SECONDS_PER_TARGET}s without a crash"
