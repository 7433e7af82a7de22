#!/usr/bin/env bash
# The foundation benchmark: tenwatch (embedded broker + edge + gateway + SQLite) measured by
# tenwatch-sim at 1,000 and 5,000 connected devices. Writes JSON reports and a summary table
# to docs/bench/. Bounded in time; everything on 127.0.0.1; stops by itself.
#   bash scripts/bench-foundation.sh [DEVICE_COUNTS...]    (default: 1000 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-1000 5000}")
[ $# -eq 0 ] && counts=(1000 5000)
out=docs/bench
mkdir -p "$out"
echo "== building release binaries"
cargo build --release --locked -p tenwatch-gateway -p tenwatch-sim --bins
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for n in "${counts[@]}"; do
  echo "== $n devices"
  data="$work/data-$n"; creds="$work/creds-$n.json"
  "$bin/tenwatch" admin seed-demo --data-dir "$data" --clusters $((n / 10)) --credentials-out "$creds" >/dev/null
  mqtt=$(free_port); http=$(free_port)
  # --press-merge-window 0: the bench presses random units again and again on alerts that stay
  # open; each press raises an alert of its own, as in every earlier run (docs/bench/compare.md).
  RUST_LOG=warn,rumqttd=off "$bin/tenwatch" serve --data-dir "$data" --ring1-after 3600 --ring2-after 7200 --press-merge-window 0 \
    --mqtt-listen "127.0.0.1:$mqtt" --http-listen "127.0.0.1:$http" 2>"$work/serve-$n.log" &
  server=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
  # Steady load: a background rate of presses, latency to all nine neighbours and to the ack.
  "$bin/tenwatch-sim" bench --credentials "$creds" --broker "127.0.0.1:$mqtt" --devices "$n" \
    --rate 200 --duration 30 --warmup 5 --server-pid "$server" --connect-rate 1000 \
    --report "$out/steady-$n.json" | tee "$out/steady-$n.txt"
  # Throughput: step the rate up until p99 press -> nine neighbours exceeds 50 ms.
  "$bin/tenwatch-sim" bench --credentials "$creds" --broker "127.0.0.1:$mqtt" --devices "$n" \
    --find-max --steps 250,500,1000,1500,2000,3000,4000 --step-duration 8 --p99-limit-ms 50 \
    --server-pid "$server" --connect-rate 1000 --report "$out/throughput-$n.json" | tee "$out/throughput-$n.txt"
  kill "$server"; wait "$server" 2>/dev/null || true
done
python3 bench/summarise.py "$out" > "$out/summary.md"
cat "$out/summary.md"
