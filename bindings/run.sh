#!/usr/bin/env bash
# bindings/run.sh: builds tessera-ffi, regenerates its Kotlin, Swift and Python
# bindings with the workspace's pinned uniffi-bindgen, and tests them:
#
#   * Kotlin/JVM (JUnit 4 through JNA): the API, every positive spec vector,
#     and OkHttp + TesseraInterceptor against `tessera serve` on loopback (and a
#     second one with `--rate-limit 1/s --burst 1` for 429 rate_limited).
#     Every vector and the end-to-end suite also run in platform-MAC mode
#     (Signer.withMacProvider + JcaMacProvider on the JDK's HmacSHA256).
#   * Python (pytest): the API, the vectors (both modes), urllib against the
#     same server, and tessera.auth (requests, httpx sync/async) in both modes.
#   * Both, signing through `tessera gateway` to a Python upstream.
#   * Swift: `swift test` where a Swift toolchain exists; everywhere, static
#     checks of the generated and hand-written Swift (tree-sitter syntax, C
#     header compile + link, API checksums against the built library).
#
# Installs what is missing: apt packages (libjna-java junit4 libokhttp-java
# libokio-java), kotlinc from npm into .tools/, a Python venv .venv-bindings.
# Generated code goes to target/bindings (never committed). Exits non-zero on
# any failure. Environment: CARGO_TARGET_DIR is honoured.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KOTLIN_VERSION=2.4.20
TOOLS=$ROOT/.tools
KOTLIN_HOME=$TOOLS/kotlinc-$KOTLIN_VERSION
VENV=$ROOT/.venv-bindings
PY_PINS=(pytest==9.2.0 tree-sitter==0.26.1 tree-sitter-swift==0.7.4 requests==2.34.2 httpx==0.29.0)

failures=()
passes=()
skips=()
# Milliseconds since the epoch. Not `date +%s%N`: macOS date prints a literal
# N. bash >= 5 has $EPOCHREALTIME (its decimal separator follows the locale);
# macOS's /bin/bash 3.2 does not, so python3 (needed below anyway) stands in.
now_ms() {
  local t=${EPOCHREALTIME:-}
  if [ -n "$t" ]; then
    t=${t/[.,]/}
    echo $((10#$t / 1000))
  else
    python3 -c 'import time; print(time.time_ns() // 1000000)'
  fi
}
t() { # t NAME CMD...: runs a step, prints its time, records a failure
  local name=$1 start end rc ms
  shift
  start=$(now_ms)
  "$@"
  rc=$?
  end=$(now_ms)
  ms=$((end - start))
  printf '[time] %-30s %6s%s\n' "$name" "$((ms / 1000)).$((ms % 1000 / 100))s" \
    "$([ $rc -eq 0 ] || echo "  FAILED ($rc)")" >&2
  if [ $rc -eq 0 ]; then passes+=("$name"); else failures+=("$name"); fi
  return $rc
}
skip() { # skip NAME REASON: a check that cannot run here; never reported as passed
  skips+=("$1: $2")
  echo "bindings: SKIPPED $1: $2" >&2
}
sha256() { # sha256sum is GNU coreutils; macOS has shasum
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}
die() { echo "bindings: $*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------------
need_apt=()
for p in jna:libjna-java junit4:junit4 okhttp:libokhttp-java okio:libokio-java; do
  [ -f "/usr/share/java/${p%%:*}.jar" ] || need_apt+=("${p#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  t "apt ${need_apt[*]}" bash -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends ${need_apt[*]} >/dev/null" || die "cannot install ${need_apt[*]}"
fi
if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ]; then
  t "npm kotlin-compiler@$KOTLIN_VERSION" bash -c "set -e; mkdir -p '$TOOLS'; cd '$TOOLS'; rm -rf package
    npm pack --silent kotlin-compiler@$KOTLIN_VERSION >/dev/null
    tar xzf kotlin-compiler-$KOTLIN_VERSION.tgz && rm kotlin-compiler-$KOTLIN_VERSION.tgz
    mv package '$KOTLIN_HOME'" || die "cannot install kotlinc"
fi
if [ ! -f "$VENV/.pins" ] || [ "$(cat "$VENV/.pins")" != "${PY_PINS[*]}" ]; then
  t "python venv" bash -c "python3 -m venv '$VENV' && '$VENV/bin/pip' install -q ${PY_PINS[*]} \
    && echo '${PY_PINS[*]}' > '$VENV/.pins'" || die "cannot create the Python venv"
fi

# ---- build and generate -----------------------------------------------------
t "cargo build" cargo build --quiet -p tessera-ffi -p uniffi-bindgen -p tessera-cli || die "cargo build failed"
TARGET=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
case "$(uname -s)" in Darwin) LIBEXT=dylib ;; *) LIBEXT=so ;; esac
LIB=$TARGET/debug/libtessera_ffi.$LIBEXT
OUT=$TARGET/bindings
CACHE=$TARGET/bindings-cache
rm -rf "$OUT"
mkdir -p "$OUT" "$CACHE"
t "uniffi-bindgen (3 languages)" "$TARGET/debug/uniffi-bindgen" generate --no-format "$LIB" \
  -l kotlin -l swift -l python -o "$OUT/gen" >/dev/null || die "bindgen failed"
GEN_KT=$OUT/gen/dev/tessera/tessera_ffi.kt
[ -f "$GEN_KT" ] && [ -f "$OUT/gen/Tessera.swift" ] && [ -f "$OUT/gen/tessera_ffi.py" ] ||
  die "bindgen did not write the expected files: $(cd "$OUT/gen" && find . -type f | tr '\n' ' ')"
mkdir -p "$OUT/swift" "$OUT/python"
cp "$OUT/gen/Tessera.swift" "$OUT/gen/TesseraFFI.h" "$OUT/gen/TesseraFFI.modulemap" "$OUT/swift/"
cp "$OUT/gen/tessera_ffi.py" "$LIB" "$OUT/python/" # Python loads the library from the module's directory
cp -R bindings/python/tessera "$OUT/python/"        # the hand-written package shipped with it (tessera.auth, ...)
find "$OUT/python/tessera" -name __pycache__ -prune -exec rm -rf {} +

# ---- the verifier -------------------------------------------------------------
KEYS=$OUT/e2e-keys.json
read -r KEY_HEX RO_HEX < <(python3 -c 'import secrets; print(secrets.token_hex(32), secrets.token_hex(32))')
cat >"$KEYS" <<EOF
{"keys":[
 {"key_id":"ffi-e2e","secret_hex":"$KEY_HEX","user":"bindings","scopes":["read","write"],"not_after":null,"revoked":false},
 {"key_id":"ffi-e2e-ro","secret_hex":"$RO_HEX","user":"bindings-ro","scopes":["read"],"not_after":null,"revoked":false}
]}
EOF
SERVER_PIDS=()
stop_server() {
  local pid
  for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  SERVER_PIDS=()
}
trap stop_server EXIT
start_server() { # start_server NAME [SERVE ARGS...]: starts `tessera serve` on loopback, sets STARTED_URL
  # (Until the shell has created the output file, sed finds none: that is not an error.)
  local name=$1 pid
  shift
  "$TARGET/debug/tessera" serve --addr 127.0.0.1:0 --keys "$KEYS" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
  pid=$!
  SERVER_PIDS+=("$pid")
  STARTED_URL=
  for _ in $(seq 100); do
    STARTED_URL=$(sed -n 's/^listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$OUT/$name.out" 2>/dev/null)
    [ -n "$STARTED_URL" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$STARTED_URL" ] || die "tessera serve ($name) did not start: $(cat "$OUT/$name.err")"
  echo "bindings: $name at $STARTED_URL (tessera serve${*:+ $*}, pid $pid)"
}
start_server server
SERVER_URL=$STARTED_URL
# A second verifier with a per-key limit of one request a second, for 429 rate_limited.
start_server ratelimit-server --rate-limit 1/s --burst 1
RATELIMIT_URL=$STARTED_URL
# `tessera gateway` in front of an upstream that is not Rust (the gateway
# tests' Python echo server): the Kotlin and Python suites sign through it.
UPSTREAM_LOG=$OUT/upstream.log
: >"$UPSTREAM_LOG"
python3 crates/tessera-gateway/tests/upstream.py "$UPSTREAM_LOG" >"$OUT/upstream.out" 2>"$OUT/upstream.err" &
SERVER_PIDS+=("$!")
UPSTREAM_PORT=
for _ in $(seq 100); do
  UPSTREAM_PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$OUT/upstream.out" 2>/dev/null)
  [ -n "$UPSTREAM_PORT" ] && break
  sleep 0.1
done
[ -n "$UPSTREAM_PORT" ] || die "the gateway's test upstream did not start: $(cat "$OUT/upstream.err")"
"$TARGET/debug/tessera" gateway --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  --keys "$KEYS" >"$OUT/gateway.out" 2>"$OUT/gateway.err" &
SERVER_PIDS+=("$!")
GATEWAY_URL=
for _ in $(seq 100); do
  GATEWAY_URL=$(sed -n 's/^listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$OUT/gateway.out" 2>/dev/null)
  [ -n "$GATEWAY_URL" ] && break
  sleep 0.1
done
[ -n "$GATEWAY_URL" ] || die "tessera gateway did not start: $(cat "$OUT/gateway.err")"
echo "bindings: gateway at $GATEWAY_URL in front of the Python upstream on port $UPSTREAM_PORT"
export TESSERA_GATEWAY_URL=$GATEWAY_URL TESSERA_GATEWAY_UPSTREAM_LOG=$UPSTREAM_LOG

# The first server's access log (stderr): the platform-MAC tests check that a
# request whose MAC provider failed never reached it.
export TESSERA_SERVER_LOG=$OUT/server.err
export TESSERA_SERVER_URL=$SERVER_URL TESSERA_RATELIMIT_URL=$RATELIMIT_URL TESSERA_VECTORS_DIR=$ROOT/spec/vectors
export TESSERA_KEY_ID=ffi-e2e TESSERA_KEY_SECRET_HEX=$KEY_HEX TESSERA_KEY_RO_ID=ffi-e2e-ro TESSERA_KEY_RO_SECRET_HEX=$RO_HEX

# ---- Kotlin -------------------------------------------------------------------
KL=$KOTLIN_HOME/lib
J=/usr/share/java
CP=$J/jna.jar:$J/junit4.jar:$J/hamcrest.jar:$J/okhttp.jar:$J/okio.jar:$KL/kotlin-test.jar:$KL/kotlin-test-junit.jar
# src/main and src/test run on the JVM; src/android (Android Keystore import)
# needs android.jar and is compiled only by the Android library module.
KT_SOURCES=("$GEN_KT" $(find bindings/kotlin/src/main bindings/kotlin/src/test -name '*.kt' | sort))
KT_CLASSES=$CACHE/kotlin-classes
stamp=$( (echo "$KOTLIN_VERSION $CP"; cat "${KT_SOURCES[@]}") | sha256 | cut -d' ' -f1)
kotlin_compile() {
  if [ -f "$CACHE/kotlin.stamp" ] && [ "$(cat "$CACHE/kotlin.stamp")" = "$stamp" ]; then
    echo "kotlinc: sources unchanged, using $KT_CLASSES"
    return 0
  fi
  rm -rf "$KT_CLASSES" "$CACHE/kotlin.stamp"
  "$KOTLIN_HOME/bin/kotlinc" -Werror -classpath "$CP" -d "$KT_CLASSES" "${KT_SOURCES[@]}" &&
    echo "$stamp" >"$CACHE/kotlin.stamp"
}
if ! t "kotlinc" kotlin_compile; then
  skip "kotlin tests (JVM)" "kotlinc failed"
else
  t "kotlin tests (JVM)" java -Djna.library.path="$(dirname "$LIB")" \
    -Dtessera.vectors.dir="$TESSERA_VECTORS_DIR" -Dtessera.server.url="$SERVER_URL" \
    -Dtessera.server.log="$TESSERA_SERVER_LOG" \
    -Dtessera.ratelimit.url="$RATELIMIT_URL" \
    -Dtessera.gateway.url="$GATEWAY_URL" -Dtessera.gateway.upstream_log="$UPSTREAM_LOG" \
    -Dtessera.key.id=ffi-e2e -Dtessera.key.secret_hex="$KEY_HEX" \
    -Dtessera.key.ro_id=ffi-e2e-ro -Dtessera.key.ro_secret_hex="$RO_HEX" \
    -cp "$CP:$KL/kotlin-stdlib.jar:$KT_CLASSES" RunTestsKt
fi

if [ -n "$(find bindings/kotlin/src/android -name '*.kt' 2>/dev/null)" ]; then
  skip "kotlin src/android (Android Keystore import)" "needs the Android SDK (android.jar), absent here; compiled only by the Android library module"
fi

# ---- Python -------------------------------------------------------------------
t "pytest" env TESSERA_PY_BINDINGS="$OUT/python" "$VENV/bin/pytest" -q -p no:cacheprovider bindings/python

# ---- Swift --------------------------------------------------------------------
SW=bindings/swift
t "swift syntax (tree-sitter)" "$VENV/bin/python" $SW/swift_syntax_check.py "$OUT/swift/Tessera.swift" \
  $(find $SW/Sources $SW/Tests $SW/Package.swift -name '*.swift' -not -name Tessera.swift | sort)
t "swift header/link/checksums" "$VENV/bin/python" $SW/header_link_check.py "$OUT/swift" "$LIB" "$OUT/swift-check"
if command -v swift >/dev/null 2>&1; then
  mkdir -p $SW/Sources/TesseraFFI/include
  cp "$OUT/swift/Tessera.swift" $SW/Sources/Tessera/Tessera.swift
  cp "$OUT/swift/TesseraFFI.h" $SW/Sources/TesseraFFI/include/TesseraFFI.h
  cp "$OUT/swift/TesseraFFI.modulemap" $SW/Sources/TesseraFFI/include/module.modulemap
  export LD_LIBRARY_PATH=$(dirname "$LIB")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export DYLD_LIBRARY_PATH=$(dirname "$LIB")${DYLD_LIBRARY_PATH:+:$DYLD_LIBRARY_PATH}
  t "swift test" swift test --package-path $SW -Xlinker -L"$(dirname "$LIB")"
else
  skip "swift test" "no Swift toolchain on this machine (no 'swift' on PATH); the Swift bindings were generated and checked statically only (syntax, C header, link, checksums)"
fi

stop_server
echo "bindings: ${#passes[@]} passed, ${#failures[@]} failed, ${#skips[@]} skipped"
[ ${#passes[@]} -eq 0 ] || printf 'bindings: passed: %s\n' "${passes[@]}"
[ ${#skips[@]} -eq 0 ] || printf 'bindings: SKIPPED (not run, not passed): %s\n' "${skips[@]}"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'bindings: FAILED: %s\n' "${failures[@]}"
  exit 1
fi
if [ ${#skips[@]} -gt 0 ]; then
  echo "bindings: every check that ran passed; ${#skips[@]} skipped (see above)"
else
  echo "bindings: all checks passed"
fi
