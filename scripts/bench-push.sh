#!/usr/bin/env bash
# Press -> Web Push accepted by the push service, with 100 subscribed volunteers: a release
# build of the end-to-end measurement in tests/tests/push_bench.rs, against the push-service
# emulator (tests/push-emulator, installed into target/push-emulator-venv by scripts/test.sh).
# Writes docs/bench/push-100.json. Bounded (20 alerts); loopback only.
#   bash scripts/bench-push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x target/push-emulator-venv/bin/python ]; then
  echo "== the push emulator is not installed: run scripts/test.sh once (it makes the venv)" >&2
  exit 1
fi
cargo test --release --locked -p tenwatch-tests --test push_bench -- --ignored --nocapture
