#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints what each found: the MQTT
# codec the edge speaks (broker/tests/fuzz_codec.rs), the uplink parser
# (gateway/src/domain/fuzz.rs), the HTTP API's JSON bodies (gateway/src/http/fuzz.rs) and the
# SIA DC-09 reader of alarm panels (gateway/src/sia/fuzz.rs).
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]    (TARGET: a name below, e.g. connect_bytes)
#
# The engine: libFuzzer (coverage-guided), which bolero links in when built with
# `--cfg fuzzing_libfuzzer` (the bolero-libfuzzer crate compiles it from source with the C++
# compiler). This script builds the test binaries that hold the targets as cargo-bolero would
# (the same flags: coverage instrumentation, no sanitizer, the `fuzz` profile), on the stable
# toolchain, but only those binaries: the other test binaries do not link libFuzzer. Nothing to
# install beyond the test suite's own needs. If that build fails (no C++ compiler), it falls
# back to bolero's random inputs under `cargo test` for the same time, and says so.
#
# Each target stops by itself after SECONDS (libFuzzer's -max_total_time; an input that runs
# over 10 s is a hang, and counts as found). What libFuzzer learnt (its corpus) is kept in
# $CARGO_TARGET_DIR/fuzz-corpus and reused by the next run; an input that fails is written to
# __fuzz__/<target>/crashes beside the target's source, where `cargo test` replays it: commit it
# with its fix as the regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || { echo "usage: $0 [SECONDS [TARGET...]]" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))
only=" $* "
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
logs=$target_dir/fuzz-logs
mkdir -p "$logs"

# package, test binary (`lib`: the library's unit tests), target
targets=(
  "tenwatch-broker fuzz_codec frames"
  "tenwatch-broker fuzz_codec fixed_header"
  "tenwatch-broker fuzz_codec connect_bytes"
  "tenwatch-broker fuzz_codec connect_fields"
  "tenwatch-broker fuzz_codec publish"
  "tenwatch-broker fuzz_codec publish_fields"
  "tenwatch-broker fuzz_codec subscribe"
  "tenwatch-broker fuzz_codec unsubscribe"
  "tenwatch-gateway lib domain::fuzz::uplink_bytes"
  "tenwatch-gateway lib domain::fuzz::uplink_payload_bytes"
  "tenwatch-gateway lib domain::fuzz::uplink_documents"
  "tenwatch-gateway lib sia::fuzz::sia_bytes"
  "tenwatch-gateway lib sia::fuzz::sia_framed_text"
  "tenwatch-gateway lib http::fuzz::request_body_bytes"
  "tenwatch-gateway lib http::fuzz::request_body_documents"
)
if [ "$only" != "  " ]; then
  chosen=()
  for entry in "${targets[@]}"; do
    name=${entry##* }
    [[ $only == *" $name "* || $only == *" ${name##*::} "* ]] && chosen+=("$entry")
  done
  [ ${#chosen[@]} -gt 0 ] || { echo "no such target:$only" >&2; exit 2; }
  targets=("${chosen[@]}")
fi

# cargo-bolero's libFuzzer flags. `--target` keeps them off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
fuzz_flags="--cfg fuzzing -Cpasses=sancov-module --cfg fuzzing_libfuzzer \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth"

# Builds one package's fuzz test binary; prints its path.
build() {
  local package=$1 binary=$2 which=(--test "$2")
  [ "$binary" = lib ] && which=(--lib)
  RUSTFLAGS="$fuzz_flags" cargo test --locked --profile fuzz --target "$host" \
    --target-dir "$target_dir/fuzz" -p "$package" "${which[@]}" --no-run \
    --message-format=json 2>>"$logs/build.log" |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        print(m["executable"])' | tail -1
}

engine=libfuzzer
declare -A exes=()
: >"$logs/build.log"
for entry in "${targets[@]}"; do
  read -r package binary _ <<<"$entry"
  key="$package $binary"
  [ -n "${exes[$key]:-}" ] && continue
  echo "== building $package ($binary) with libFuzzer (log: $logs/build.log)"
  exe=$(build "$package" "$binary" || true)
  if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    engine=random
    echo "== the libFuzzer build failed (see $logs/build.log): random inputs under cargo test instead (not coverage-guided)"
    break
  fi
  exes[$key]=$exe
done

summary=()
found=0
for entry in "${targets[@]}"; do
  read -r package binary name <<<"$entry"
  short=${name##*::}
  log=$logs/$short.log
  echo "== $package $name: $engine for ${secs} s (log: $log)"
  status=0
  if [ "$engine" = libfuzzer ]; then
    exe=${exes[$package $binary]}
    corpus=$target_dir/fuzz-corpus/$package/$short
    # Where the target's failing inputs go: the folder `cargo test` replays (bolero tells it).
    work_dir=$(CARGO_BOLERO_SELECT=one "$exe" "$name" --exact --nocapture 2>/dev/null |
      python3 -c 'import json, sys
for line in sys.stdin:
    if line.startswith("{") and "__bolero_target" in line:
        print(json.loads(line)["work_dir"])' | head -1)
    [ -n "$work_dir" ] || { echo "   no such target: $name" >&2; exit 1; }
    crashes=$work_dir/crashes
    mkdir -p "$corpus" "$crashes"
    # bolero's libFuzzer engine runs inside the test harness and reads its arguments here.
    BOLERO_TEST_NAME=$name BOLERO_LIBTEST_HARNESS=1 \
      BOLERO_LIBFUZZER_ARGS="$corpus $crashes -artifact_prefix=$crashes/ -timeout=10 -max_total_time=$secs" \
      timeout --kill-after=30 $((secs + 120)) \
      "$exe" "$name" --exact --nocapture --quiet --test-threads 1 >"$log" 2>&1 ||
      status=$?
    # Only a folder with a failing input stays in the source tree.
    rmdir "$crashes" "$work_dir" "$(dirname "$work_dir")" 2>/dev/null || true
    runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | grep -oE '[0-9]+' | head -1 || true)
    cov=$(grep -oE '#[0-9]+[[:space:]]+DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 | sed -E "s/.*DONE[[:space:]]*//" || true)
    line="$name: ${runs:-?} runs in ${secs} s, ${cov:-no coverage line}, corpus $(find "$corpus" -type f | wc -l) inputs"
  else
    which=(--lib)
    [ "$binary" != lib ] && which=(--test "$binary")
    BOLERO_RANDOM_TEST_TIME_MS=$((secs * 1000)) BOLERO_RANDOM_ITERATIONS=18446744073709551615 \
      timeout --kill-after=30 $((secs + 1800)) \
      cargo test --locked -p "$package" "${which[@]}" -- --exact "$name" --nocapture >"$log" 2>&1 ||
      status=$?
    runs=$(grep -oE 'rng inputs: *[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
    line="$name: ${runs:-?} random inputs in ${secs} s"
  fi
  if [ "$status" -ne 0 ]; then
    found=$((found + 1))
    line="$line: FAILED (exit $status), see $log"
    grep -E 'panicked at|==ERROR|SUMMARY|Test Failure|timeout|deadly signal' "$log" | head -8 | sed 's/^/    /' || true
  fi
  echo "   $line"
  summary+=("$line")
done

echo
echo "== what the fuzzers found ($engine, ${secs} s per target)"
printf '  %s\n' "${summary[@]}"
kept=$(find broker gateway -path '*__fuzz__/*/crashes/*' -type f 2>/dev/null | wc -l)
echo "  failing inputs kept under __fuzz__/*/crashes: $kept"
[ "$found" -eq 0 ] || { echo "  $found target(s) failed" >&2; exit 1; }
