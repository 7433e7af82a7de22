#!/usr/bin/env bash
# Detection delay of a dead device at scale, with the devices in their own process:
# tenwatch serve + `tenwatch-sim run` (heartbeats only). Once every unit is online and has
# beaten for a while, the simulator is frozen with SIGSTOP: its sockets stay open and silent,
# so only heartbeat supervision can notice. Reads each device's offline time from the station
# API and reports it against the configured interval and grace. Writes
# docs/bench/supervision-N.json. Bounded; loopback only.
#   bash scripts/bench-supervision.sh DEVICES INTERVAL_S GRACE_S
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}; interval=${2:-10}; grace=${3:-5}
bin="${CARGO_TARGET_DIR:-target}/release"
cargo build --release --locked -p tenwatch-gateway -p tenwatch-sim --bins
work=$(mktemp -d)
trap 'kill -CONT $(jobs -p) 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data="$work/data"; creds="$work/creds.json"
"$bin/tenwatch" admin seed-demo --data-dir "$data" --clusters $((n / 10)) --credentials-out "$creds" >/dev/null
"$bin/tenwatch" admin create-operator --data-dir "$data" --name bench --password bench-password --zone 11010501 >/dev/null
mqtt=$(free_port); http=$(free_port)
RUST_LOG=warn,rumqttd=off "$bin/tenwatch" serve --data-dir "$data" --mqtt-listen "127.0.0.1:$mqtt" \
  --http-listen "127.0.0.1:$http" --heartbeat-interval "$interval" --heartbeat-grace "$grace" 2>"$work/serve.log" &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
"$bin/tenwatch-sim" run --credentials "$creds" --broker "127.0.0.1:$mqtt" --heartbeat "$interval" \
  --press-every 0 --connect-rate 1000 --keep-alive 600 >"$work/sim.log" 2>&1 &
sim=$!
token=$(curl -fs -X POST "http://127.0.0.1:$http/api/session" -H 'content-type: application/json' \
  -d '{"name":"bench","password":"bench-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
count() { curl -fs -H "authorization: Bearer $token" "http://127.0.0.1:$http/api/devices?state=$1&limit=100000" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("devices", d if isinstance(d, list) else [])))'; }
echo "== waiting for $n devices online"
for _ in $(seq 300); do [ "$(count online)" -ge "$n" ] && break; sleep 1; done
echo "online: $(count online); letting them beat for $((2 * interval)) s"
sleep $((2 * interval))
before_offline=$(count offline)
cut_ms=$(python3 -c 'import time; print(int(time.time()*1000))')
kill -STOP "$sim"
echo "== simulator frozen; waiting up to $((interval + grace + 10)) s"
for _ in $(seq $((interval + grace + 10))); do [ "$(count offline)" -ge "$n" ] && break; sleep 1; done
curl -fs -H "authorization: Bearer $token" "http://127.0.0.1:$http/api/devices?state=offline&limit=100000" > "$work/offline.json"
mkdir -p docs/bench
python3 - "$work/offline.json" "$n" "$interval" "$grace" "$cut_ms" "$before_offline" > "docs/bench/supervision-$n.json" <<'PY'
import json, sys
path, n, interval, grace, cut_ms, before = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
d = json.load(open(path)); devices = d.get("devices", d if isinstance(d, list) else [])
due = sorted(x["since_ms"] - (x["last_heartbeat_ms"] + interval * 1000) for x in devices if x.get("last_heartbeat_ms"))
cut = sorted(x["since_ms"] - cut_ms for x in devices)
pct = lambda xs, q: xs[min(len(xs) - 1, int(round((len(xs) - 1) * q)))] if xs else None
print(json.dumps({"devices": n, "silenced": n, "offline_reported": len(devices), "offline_before_cut": before,
  "heartbeat_interval_s": interval, "grace_s": grace,
  "after_due_ms": {"p50": pct(due, .5), "p99": pct(due, .99), "max": pct(due, 1)},
  "after_cut_ms": {"p50": pct(cut, .5), "max": pct(cut, 1)},
  "reasons": sorted({x.get("reason") for x in devices} - {None})}, indent=2))
PY
cat "docs/bench/supervision-$n.json"
