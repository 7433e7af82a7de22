#!/usr/bin/env bash
# What a press costs at a given rate: the server's CPU and the bytes it writes a press (the WAL,
# the checkpoints and the sockets: `wchar` of /proc/PID/io), with the simulator's latency line.
#   bash scripts/press-load.sh [RATE=2000] [DEVICES=1000] [SECONDS=10]
# Seeds a neighbourhood, starts the release `tenwatch serve` (SQLite, on disk, every press an
# alert of its own), drives it with `tenwatch-sim bench` at RATE presses a second (3 s of warm-up,
# then SECONDS measured) and reads the server over 6 s from the fifth second. Loopback only;
# stops by itself. Build first:
#   cargo build --release --locked --bin tenwatch --bin tenwatch-sim
# Runs `sync` first: the writeback of a fresh build stalls the server's fsyncs
# (docs/bench/press-cost/README.md, sixth cut).
set -euo pipefail
rate=${1:-2000}; n=${2:-1000}; secs=${3:-10}
bin=${CARGO_TARGET_DIR:-target}/release
[ -x "$bin/tenwatch" ] && [ -x "$bin/tenwatch-sim" ] || {
  echo "build first: cargo build --release --locked --bin tenwatch --bin tenwatch-sim" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sync
"$bin/tenwatch" admin seed-demo --data-dir "$work/d" --clusters $((n / 10)) \
  --credentials-out "$work/c.json" >/dev/null
mq=$(port); ht=$(port)
RUST_LOG=error "$bin/tenwatch" serve --data-dir "$work/d" --ring1-after 3600 --ring2-after 7200 \
  --press-merge-window 0 --press-refill 0 --mqtt-listen "127.0.0.1:$mq" --http-listen "127.0.0.1:$ht" \
  >"$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ht/healthz" >/dev/null && break; sleep 0.1; done
"$bin/tenwatch-sim" bench --credentials "$work/c.json" --devices "$n" --connect-rate 1000 \
  --rate "$rate" --duration "$secs" --warmup 3 --broker "127.0.0.1:$mq" \
  --report "$work/r.json" >"$work/sim.txt" 2>&1 &
sim=$!
sleep 5
written() { awk '$1 == "wchar:" {print $2}' "/proc/$srv/io"; }
before=$(written)
perf stat -x, -e task-clock -p "$srv" -o "$work/stat.csv" -- sleep 6 2>/dev/null
after=$(written)
wait $sim || true
python3 - "$work/stat.csv" "$before" "$after" "$rate" <<'PY'
import csv, sys
stat, before, after, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
presses = rate * 6
cpu = next(float(r[0]) for r in csv.reader(l for l in open(stat) if l.strip() and not l.startswith("#"))
           if len(r) > 2 and r[2] == "task-clock")
print(f"per press at {rate:.0f}/s offered ({presses:.0f} presses in the 6-s window):")
print(f"  server CPU          {cpu / presses:8.3f} ms")
print(f"  written             {(after - before) / presses / 1000:8.1f} kB")
PY
grep -E "^sustained|all neighbours" "$work/sim.txt"
