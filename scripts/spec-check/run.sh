#!/usr/bin/env bash
# A second implementation of tessera-v1 in Python (standard library only),
# written from spec/tessera-v1.md alone, without reading the Rust code: it runs
# every vector as spec §16.3 says. When the Rust crates and this agree on every
# vector, the spec text (not only our code) produces the vectors.
# Ends with "spec-check: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/run.py" "$here/../../spec/vectors"
