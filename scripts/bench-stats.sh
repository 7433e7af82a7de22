#!/usr/bin/env bash
# How fast the station's statistics answer (issue 15): a zone of 5,000 households (500 clusters)
# gets about 10,000 alerts through the real press path (tenwatch-sim at 400 presses/s for 25 s,
# a tenth of the neighbours answering "coming"), then GET /api/stats for the last half-month is
# timed 20 times, then the bulletin of the same half-month (its page and its PDF) 10 times
# each. Prints the medians and the extremes, and the counts the answer gave.
#   bash scripts/bench-stats.sh                      (SQLite in a temporary folder)
#   DATABASE_URL=postgres://… bash scripts/bench-stats.sh   (an empty PostgreSQL database)
# Loopback only; stops by itself (about a minute). Builds the release binaries first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p tenwatch-gateway -p tenwatch-sim --bins >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
db=(--data-dir "$work/d")
[ -n "${DATABASE_URL:-}" ] && db=(--database-url "$DATABASE_URL")
"$bin/tenwatch" admin seed-demo "${db[@]}" --clusters 500 --credentials-out "$work/c.json" >/dev/null
STATS_PASSWORD=bench-stats-password "$bin/tenwatch" admin create-operator "${db[@]}" --name bench \
  --zone 11010501 --password-env STATS_PASSWORD >/dev/null
mq=$(port); ht=$(port)
RUST_LOG=error "$bin/tenwatch" serve "${db[@]}" --ring1-after 3600 --ring2-after 7200 \
  --press-merge-window 0 --press-refill 0 --mqtt-listen "127.0.0.1:$mq" --http-listen "127.0.0.1:$ht" \
  >"$work/serve.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ht/healthz" >/dev/null && break; sleep 0.1; done
echo "== 10,000 alerts through the press path"
"$bin/tenwatch-sim" bench --credentials "$work/c.json" --devices 5000 --connect-rate 1000 \
  --rate 400 --duration 25 --warmup 2 --respond-probability 0.1 --broker "127.0.0.1:$mq" \
  --report "$work/r.json" >"$work/sim.txt" 2>&1 || { tail -20 "$work/sim.txt"; exit 1; }
token=$(curl -fs -H 'content-type: application/json' -H "origin: http://127.0.0.1:$ht" \
  -d '{"name":"bench","password":"bench-stats-password"}' "http://127.0.0.1:$ht/api/session" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
echo "== GET /api/stats (the last half-month of the zone), 20 times"
times=()
for _ in $(seq 20); do
  times+=("$(curl -fs -o "$work/stats.json" -w '%{time_total}' -H "authorization: Bearer $token" \
    "http://127.0.0.1:$ht/api/stats")")
done
# The same half-month as the 警情公示 bulletin: its page, and its PDF (with the CJK font).
now=$(python3 -c 'import time; print(int(time.time() * 1000))')
period="from=$((now - 15 * 86400000))&to=$((now + 60000))"
page=(); pdf=()
for _ in $(seq 10); do
  page+=("$(curl -fs -o "$work/b.html" -w '%{time_total}' -H "authorization: Bearer $token" \
    "http://127.0.0.1:$ht/api/bulletin?$period")")
  pdf+=("$(curl -s -o "$work/b.pdf" -w '%{time_total}' -H "authorization: Bearer $token" \
    "http://127.0.0.1:$ht/api/bulletin.pdf?$period")")
done
python3 - "$work/stats.json" "${times[*]}" "${page[*]}" "${pdf[*]}" "$work/b.pdf" <<'PY'
import json, os, statistics, sys
answer = json.load(open(sys.argv[1]))
def line(name, raw):
    t = sorted(float(x) * 1000 for x in raw.split())
    print(f"{name}: median {statistics.median(t):.1f} ms, min {t[0]:.1f} ms, max {t[-1]:.1f} ms (n={len(t)})")
print(f"alerts counted: {answer['alerts']}, first delivery n={answer['first_delivery']['n']}, "
      f"first coming n={answer['first_coming']['n']}, clusters with coverage: "
      f"{len(answer.get('coverage', []))}, hot-spot places: {len(answer.get('places', []))}")
line("GET /api/stats", sys.argv[2])
line("GET /api/bulletin (the page)", sys.argv[3])
size = os.path.getsize(sys.argv[5]) if os.path.exists(sys.argv[5]) else 0
line(f"GET /api/bulletin.pdf ({size // 1024} KiB)", sys.argv[4])
PY
