#!/usr/bin/env bash
# What units arriving and leaving cost the server: N units connect (1,000 a second), stay
# 8 s pressing once a second in all, and leave at once. Prints the server's CPU (from
# /proc/PID/stat) while the simulator runs (arrivals, the 8 s, the departures
# reported) and in the 2 s after it ends (the departures' reports still being stored).
# Loopback only; bounded (about 15 s); stops by itself. Build first:
#   cargo build --release --locked --bin tenwatch --bin tenwatch-sim
#   bash scripts/bench-presence.sh [N=1000] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}; runs=${2:-3}
bin="${CARGO_TARGET_DIR:-target}/release"
[ -x "$bin/tenwatch" ] && [ -x "$bin/tenwatch-sim" ] || {
  echo "build first: cargo build --release --locked --bin tenwatch --bin tenwatch-sim" >&2; exit 1; }
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
ms() { echo $(( $1 * 1000 / hz )); }
for run in $(seq "$runs"); do
  rm -rf "$work/d"
  "$bin/tenwatch" admin seed-demo --data-dir "$work/d" --clusters $((n / 10)) \
    --credentials-out "$work/c.json" >/dev/null
  mq=$(port); ht=$(port)
  RUST_LOG=error "$bin/tenwatch" serve --data-dir "$work/d" --ring1-after 3600 --ring2-after 7200 \
    --mqtt-listen "127.0.0.1:$mq" --http-listen "127.0.0.1:$ht" >"$work/serve.log" 2>&1 &
  srv=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ht/healthz" >/dev/null && break; sleep 0.1; done
  sync
  t0=$(ticks $srv)
  "$bin/tenwatch-sim" bench --credentials "$work/c.json" --devices "$n" --connect-rate 1000 \
    --rate 1 --duration 8 --warmup 1 --broker "127.0.0.1:$mq" --report "$work/r.json" >"$work/sim.txt" 2>&1
  t1=$(ticks $srv)
  sleep 2
  t2=$(ticks $srv)
  echo "run $run: $n units; server CPU while the simulator ran $(ms $((t1 - t0))) ms, in the 2 s after $(ms $((t2 - t1))) ms, in all $(ms $((t2 - t0))) ms"
  kill $srv; wait $srv 2>/dev/null || true; srv=
done
