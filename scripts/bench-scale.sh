#!/usr/bin/env bash
# Many units on one `tenwatch serve` (issue 12's "Devices"): N units connect, heartbeat every
# INTERVAL s, and then all drop at once and come back while 1 % of them press. Measures, with
# the units in their own process (`tenwatch-sim`):
#   - how long N units take to connect, and the server's memory and open files per unit;
#   - the server's CPU while N units only heartbeat (from /proc/PID/stat over WINDOW s);
#   - the storm: every unit back (connected, both subscriptions granted) and every press
#     acknowledged, with the time each took (`tenwatch-sim bench --scenario storm`).
# Writes OUT/scale-N.json (and the storm's own report beside it), OUT=docs/bench/scale by default. Loopback only; bounded
# (about 3 minutes at 15,000); stops by itself.
#   bash scripts/bench-scale.sh [N=15000] [INTERVAL=10] [WINDOW=30]
# N units need N open files in the simulator and about N + 50 in the server: the machine's
# 20,000 allows 15,000 with room for the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-15000}; interval=${2:-10}; window=${3:-30}; out=${OUT:-docs/bench/scale}
grace=$((interval / 2 > 1 ? interval / 2 : 1))
bin="${CARGO_TARGET_DIR:-target}/release"
cargo build --release --locked -p tenwatch-gateway -p tenwatch-sim --bins
work=$(mktemp -d); mkdir -p "$out"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
"$bin/tenwatch" admin seed-demo --data-dir "$work/d" --clusters $((n / 10)) --credentials-out "$work/c.json" >/dev/null
mqtt=$(free_port); http=$(free_port)
RUST_LOG=warn,rumqttd=off "$bin/tenwatch" serve --data-dir "$work/d" --mqtt-listen "127.0.0.1:$mqtt" \
  --http-listen "127.0.0.1:$http" --heartbeat-interval "$interval" --heartbeat-grace "$grace" \
  --ring1-after 3600 --ring2-after 7200 --metrics-token scale-bench-token-0001 2>"$work/serve.log" &
srv=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null && break; kill -0 $srv 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }; sleep 0.1; done

echo "== $n units connect and heartbeat every $interval s"
"$bin/tenwatch-sim" run --credentials "$work/c.json" --broker "127.0.0.1:$mqtt" --devices "$n" \
  --heartbeat "$interval" --press-every 0 --connect-rate 2000 --connect-timeout 120 \
  --duration $((60 + 2 * interval + window)) >"$work/run.log" 2>&1 &
sim=$!
for _ in $(seq 1200); do grep -q "^connected: " "$work/run.log" && break; sleep 0.1; done
connected=$(grep "^connected: " "$work/run.log" || echo "connected: not all within 120 s")
echo "$connected"
# Two intervals for every unit's first beat (the full path: battery and signal are news),
# then the window in which they only say "still here".
sleep $((2 * interval))
metric() { curl -fs -H 'authorization: Bearer scale-bench-token-0001' "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
beats0=$(metric tenwatch_gateway_heartbeats_total); kept0=$(metric tenwatch_gateway_heartbeats_kept_total); t0=$(ticks "$srv")
sleep "$window"
t1=$(ticks "$srv"); beats1=$(metric tenwatch_gateway_heartbeats_total); kept1=$(metric tenwatch_gateway_heartbeats_kept_total)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$srv/status"); fds=$(ls "/proc/$srv/fd" | wc -l)
offline=$(grep -c "heartbeat_missed" "$work/serve.log" || true)
kill "$sim"; wait "$sim" 2>/dev/null || true

echo "== storm: $n units drop at once and come back; 1 % press at the drop"
"$bin/tenwatch-sim" bench --credentials "$work/c.json" --broker "127.0.0.1:$mqtt" --devices "$n" \
  --heartbeat "$interval" --connect-rate 2000 --connect-timeout 120 --server-pid "$srv" \
  --scenario storm --storm-press-fraction 0.01 --storm-timeout 60 --grace 30 \
  --report "$out/scale-$n-storm.json" | tail -4

python3 - "$n" "$interval" "$grace" "$window" "$t0" "$t1" "${beats0:-0}" "${beats1:-0}" "${kept0:-0}" "${kept1:-0}" \
  "$rss" "$fds" "$offline" "$connected" "$out/scale-$n-storm.json" "$(git rev-parse --short HEAD)" \
  > "$out/scale-$n.json" <<'PY'
import json, os, sys
(n, interval, grace, window, t0, t1, b0, b1, k0, k1, rss, fds, offline, connected, storm, git) = sys.argv[1:]
n, window = int(n), float(window)
hz = os.sysconf("SC_CLK_TCK")
cpu = (float(t1) - float(t0)) / hz
beats = float(b1) - float(b0)
s = json.load(open(storm))
st = s.get("storm") or {}
print(json.dumps({
  "devices": n, "heartbeat_interval_s": float(interval), "grace_s": float(grace), "git": git,
  "cpu_model": next((l.split(": ", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None),
  "cores": os.cpu_count(),
  "connect": connected,
  "heartbeats": {"window_s": window, "received": beats, "kept_in_memory": float(k1) - float(k0),
                 "server_cpu_s": cpu, "share_of_one_core": cpu / window,
                 "cpu_ms_per_heartbeat": cpu * 1000 / beats if beats else None,
                 "units_reported_offline_while_beating": int(offline)},
  "server": {"rss_kb": int(rss), "rss_kb_per_unit": int(rss) / n, "open_files": int(fds),
             "open_files_per_unit": int(fds) / n},
  "storm": {"all_back": st.get("all_back"), "all_back_s": st.get("all_back_s"),
            "devices_back": st.get("devices_back"), "presses_planned": st.get("presses_planned"),
            "presses_acked": s.get("presses_acked"), "presses_lost": s.get("presses_lost"),
            "press_to_ack_us": st.get("press_to_ack_us"), "reconnect_us": st.get("reconnect_us")},
}, indent=2))
PY
cat "$out/scale-$n.json"
