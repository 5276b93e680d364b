#!/usr/bin/env bash
# Independent check of spec/vectors against pyauth's http-message-signatures:
#   (a) the library verifies every positive vector's signature, building the
#       signature base and the HMAC itself;
#   (b) the library signs every positive vector's request, and
#       tessera_core::verify accepts its headers.
# Creates .venv-independent at the repository root when missing.
# Ends with "independent-check: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/scripts/independent-check"
venv="$root/.venv-independent"
out="$root/target/independent-check"
mkdir -p "$out"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || { echo "independent-check: cannot create $venv"; exit 2; }
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || { echo "independent-check: installing pinned requirements failed"; exit 2; }

"$venv/bin/python" "$here/check.py" --vectors "$root/spec/vectors" --out "$out/library-signed.json" \
    | tee "$out/direction-a.log"
a_status=${PIPESTATUS[0]}

(cd "$root" && cargo run --quiet -p tessera-vectors -- verify-external "$out/library-signed.json") \
    | tee "$out/direction-b.log" | grep -v '^ok '
b_status=${PIPESTATUS[0]}

count() { # count FILE PREFIX -> "passed failed" from the last "PREFIX: N passed, M failed" line
    sed -n "s/^$2: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p" "$1" | tail -n 1
}
read -r a_pass a_fail <<<"$(count "$out/direction-a.log" library-verified)"
read -r b_pass b_fail <<<"$(count "$out/direction-b.log" library-signed)"
a_pass=${a_pass:-0} a_fail=${a_fail:-1} b_pass=${b_pass:-0} b_fail=${b_fail:-1}
# A direction that crashed before its summary counts as one failure.
passed=$((a_pass + b_pass))
failed=$((a_fail + b_fail))
if [ "$a_status" -ne 0 ] && [ "$a_fail" -eq 0 ]; then failed=$((failed + 1)); fi
if [ "$b_status" -ne 0 ] && [ "$b_fail" -eq 0 ]; then failed=$((failed + 1)); fi

skipped=$(sed -n 's/^library-verified: .* failed, \([0-9]*\) skipped.*/\1/p' "$out/direction-a.log" | tail -n 1)
skipped=${skipped:-0}
# Each skipped case is skipped in both directions.
echo "independent-check: $passed passed, $failed failed, $((2 * skipped)) skipped"
[ "$failed" -eq 0 ]
