#!/usr/bin/env bash
# Many units on one `tenwatch serve`: connect N units (2,000 a second), heartbeat every 10 s,
# press at RATE a second (default 20), and read the server's CPU over 20 s of that steady
# state, its open files and its memory. Writes OUTDIR/scale-N.json (the simulator's report),
# scale-N.txt and scale-N-cpu.txt.
#   bash scripts/bench-units.sh [N=15000]      RATE=20 OUTDIR=docs/bench/press-cost
# Build first: cargo build --release --locked --bin tenwatch --bin tenwatch-sim. Loopback only;
# bounded (about a minute and a half); stops by itself.
set -euo pipefail
n=${1:-15000}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
out=${OUTDIR:-docs/bench/press-cost}
mkdir -p "$out"
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$bin/tenwatch" admin seed-demo --data-dir "$work/d" --clusters $((n / 10)) \
  --credentials-out "$work/c.json" >/dev/null
mq=$(port); ht=$(port)
# /healthz shows its counters (edge.connected below) only with the metrics token.
metrics_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
TENWATCH_METRICS_TOKEN=$metrics_token RUST_LOG=warn,rumqttd=off "$bin/tenwatch" serve --data-dir "$work/d" \
  --heartbeat-interval 10 --heartbeat-grace 10 \
  --mqtt-listen "127.0.0.1:$mq" --http-listen "127.0.0.1:$ht" >"$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ht/healthz" >/dev/null && break; sleep 0.1; done
"$bin/tenwatch-sim" bench --credentials "$work/c.json" --devices "$n" --connect-rate 2000 \
  --heartbeat 10 --keep-alive 30 --server-pid "$srv" --rate "${RATE:-20}" --duration 40 \
  --warmup 5 --broker "127.0.0.1:$mq" --report "$out/scale-$n.json" >"$out/scale-$n.txt" 2>&1 &
sim=$!
sleep 25
# The server's CPU (user + system) over 20 s of steady heartbeats.
t0=$(awk '{print $14+$15}' "/proc/$srv/stat"); sleep 20; t1=$(awk '{print $14+$15}' "/proc/$srv/stat")
{
  echo "server CPU over 20 s: $((t1 - t0)) ticks of $(getconf CLK_TCK)/s"
  echo "server open files: $(ls "/proc/$srv/fd" | wc -l)"
  grep VmRSS "/proc/$srv/status"
  curl -fs -H "Authorization: Bearer $metrics_token" "http://127.0.0.1:$ht/healthz" |
    python3 -c "import sys,json; print('edge connected:', json.load(sys.stdin)['edge']['connected'])"
} | tee "$out/scale-$n-cpu.txt"
wait $sim || true
