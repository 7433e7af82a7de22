#!/usr/bin/env bash
# Where a press's CPU goes: a flame graph of `tenwatch serve` under a steady press load.
#   bash scripts/press-flame.sh OUT.svg [DEVICES=1000] [RATE=200] [SECONDS=10]
# Seeds a neighbourhood, starts the release `tenwatch serve` (SQLite, on disk), drives it with
# `tenwatch-sim bench` at RATE presses a second, and samples the server with `perf record -g`
# (99 Hz, call graphs) for SECONDS; the graph is drawn by inferno (`cargo install inferno`).
# Loopback only; stops by itself. Build first:
#   cargo build --release --locked --bin tenwatch --bin tenwatch-sim
set -euo pipefail
out=${1:?usage: press-flame.sh OUT.svg [DEVICES] [RATE] [SECONDS]}
n=${2:-1000}; rate=${3:-200}; secs=${4:-10}
bin=${CARGO_TARGET_DIR:-target}/release
[ -x "$bin/tenwatch" ] && [ -x "$bin/tenwatch-sim" ] || {
  echo "build first: cargo build --release --locked --bin tenwatch --bin tenwatch-sim" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || { echo "inferno is missing (cargo install inferno)" >&2; exit 1; }
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$bin/tenwatch" admin seed-demo --data-dir "$work/d" --clusters $((n / 10)) \
  --credentials-out "$work/c.json" >/dev/null
mq=$(port); ht=$(port)
# --press-merge-window 0: the bench presses random units again and again on alerts that stay
# open; each press raises an alert of its own, as in every earlier run (docs/bench/compare.md).
RUST_LOG=error "$bin/tenwatch" serve --data-dir "$work/d" --ring1-after 3600 --ring2-after 7200 --press-merge-window 0 \
  --press-refill "${PRESS_REFILL:-2}" --mqtt-listen "127.0.0.1:$mq" --http-listen "127.0.0.1:$ht" >"$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ht/healthz" >/dev/null && break; sleep 0.1; done
"$bin/tenwatch-sim" bench --credentials "$work/c.json" --devices "$n" --connect-rate 1000 \
  --rate "$rate" --duration $((secs + 6)) --warmup 3 --broker "127.0.0.1:$mq" \
  --report "$work/r.json" >"$work/sim.txt" 2>&1 &
sim=$!
sleep 5   # connected and warmed up
perf record -F ${FREQ:-99} ${CALLGRAPH:--g} -p "$srv" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null >/dev/null
wait $sim || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf | tee "${out%.svg}.folded" | \
  inferno-flamegraph --title "tenwatch serve, $n units, $rate presses/s" >"$out"
echo "wrote $out"
