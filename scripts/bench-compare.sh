#!/usr/bin/env bash
# tenwatch side by side with the floor and the peer, in one run, on this machine (issue 6):
#   tenwatch  `tenwatch serve`: edge (auth, ACL) + embedded rumqttd + gateway + SQLite (FULL sync),
#             with the per-unit press limit off (--press-refill 0): the find-max steps ask each of
#             the units for up to 4 presses a second, which that flood guard refuses by design
#             (it allows 5, then one every 2 s); the peer and the floor have no such guard; and
#             with merging off (--press-merge-window 0): the steps press random units again and
#             again on alerts that stay open, which would otherwise join their household's
#             alert instead of raising one each, as the peer and the floor do
#   floor     a plain rumqttd (no auth, no gateway); the press is the presser publishing the
#             cluster alert itself (`tenwatch-sim bench --floor`)
#   peer      Mosquitto (Debian) + Node-RED 4 running bench/peer/flows.json: press in, cluster
#             alert + ack out; no store, no dedup, no ACL, no auth; TCP_NODELAY on every socket
#   peer-shipped  the same with Node-RED's MQTT socket as mqtt.js ships it (Nagle on)
#   peer-durable  the peer with each press appended to a file and fdatasync'd before its cluster
#             alert and ack go out (bench/peer/settings.js, PEER_STORE_FILE): durable, nothing else
# All three are driven by the same `tenwatch-sim bench` with the same devices and rates:
# steady load, then find-max steps (and, with RUNS, the burst and the storm). Writes
# docs/bench/compare-SYSTEM-RUN.json, compare.md and compare.svg (steady and max), and
# scenarios.md (burst and storm). Everything on 127.0.0.1; bounded (steady + max about 4
# minutes; burst + storm about 75 s per system); stops by itself.
#   bash scripts/bench-compare.sh [DEVICES]            (default 1000)
#   bash scripts/bench-scenarios.sh [DEVICES]          (the same with RUNS="burst storm")
# Environment: RATE (200), DURATION (20), WARMUP (5), STEPS (250,500,1000,2000,4000),
# STEP_DURATION (6), P99_LIMIT_MS (50), ONLY ("tenwatch floor peer peer-shipped peer-durable"), OUT (docs/bench),
# RUNS ("steady max"; also "burst", "storm"), BURST_FRACTION (0.3), BURST_WINDOW (60),
# STORM_PRESS_FRACTION (0.01), STORM_TIMEOUT (120).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
rate=${RATE:-200}; duration=${DURATION:-20}; warmup=${WARMUP:-5}
steps=${STEPS:-250,500,1000,2000,4000}; step_duration=${STEP_DURATION:-6}; p99_limit=${P99_LIMIT_MS:-50}
only=${ONLY:-tenwatch floor peer peer-shipped peer-durable}
runs=${RUNS:-steady max}
burst_fraction=${BURST_FRACTION:-0.3}; burst_window=${BURST_WINDOW:-60}
storm_press_fraction=${STORM_PRESS_FRACTION:-0.01}; storm_timeout=${STORM_TIMEOUT:-120}
out=${OUT:-docs/bench}
mkdir -p "$out"

echo "== prerequisites"
if ! command -v mosquitto >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto >/dev/null
  else
    echo "mosquitto is missing: apt-get install mosquitto (as root)" >&2; exit 1
  fi
fi
command -v node >/dev/null || { echo "node (20+) is missing" >&2; exit 1; }
if [ ! -x bench/peer/node_modules/.bin/node-red ]; then
  (cd bench/peer && npm ci --no-audit --no-fund)
fi
echo "== building release binaries"
cargo build --release --locked -p tenwatch-gateway -p tenwatch-sim --bins
bin="${CARGO_TARGET_DIR:-target}/release"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_tcp() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

creds="$work/creds.json"
"$bin/tenwatch" admin seed-demo --data-dir "$work/seed" --clusters $((n / 10)) --credentials-out "$creds" >/dev/null

# env.json: what ran, with which versions, and the servers' CPU and memory per run.
env_json="$work/env.jsonl"
note() { echo "$1" >>"$env_json"; }

# run_bench SYSTEM SERVER_PID "EXTRA_PIDS" [SIM_ARGS...]: each of $runs (steady, find-max,
# burst, storm), recording the CPU seconds every server process used during each run.
run_bench() {
  local sys=$1 server=$2 extra=$3; shift 3
  local all="$server $extra"
  for kind in $runs; do
    local args
    case $kind in
      steady) args=(--rate "$rate" --duration "$duration" --warmup "$warmup") ;;
      max) args=(--find-max --steps "$steps" --step-duration "$step_duration" --p99-limit-ms "$p99_limit") ;;
      # Repeats come after 2, 2, 4, 8 s: 30 s of grace leaves room for four.
      burst) args=(--scenario burst --burst-fraction "$burst_fraction" --burst-window "$burst_window" --grace 30) ;;
      storm) args=(--scenario storm --storm-press-fraction "$storm_press_fraction" --storm-timeout "$storm_timeout" --grace 30) ;;
      *) echo "unknown run $kind (steady, max, burst, storm)" >&2; exit 1 ;;
    esac
    declare -A before=()
    for p in $all; do before[$p]=$(cpu_ticks "$p"); done
    local t0; t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/time-$sys-$kind" \
      "$bin/tenwatch-sim" bench --credentials "$creds" --devices "$n" --connect-rate 1000 \
      --server-pid "$server" "${args[@]}" "$@" --report "$out/compare-$sys-$kind.json" \
      | tee "$work/$sys-$kind.txt"
    local t1; t1=$(date +%s.%N)
    local procs=""
    for p in $all; do
      local name; name=$(cat "/proc/$p/comm" 2>/dev/null || echo "?")
      procs+="{\"pid\":$p,\"name\":\"$name\",\"cpu_ticks\":$(( $(cpu_ticks "$p") - ${before[$p]} )),\"hz\":$hz,\"rss_kb\":$(rss_kb "$p")},"
    done
    note "{\"system\":\"$sys\",\"run\":\"$kind\",\"wall_s\":$(python3 -c "print(round($t1-$t0,2))"),\"sim_cpu\":\"$(cat "$work/time-$sys-$kind")\",\"servers\":[${procs%,}]}"
    unset before
  done
}

start_ns=$(date +%s)
note "{\"devices\":$n,\"runs\":\"$runs\",\"burst_fraction\":$burst_fraction,\"burst_window_s\":$burst_window,\"storm_press_fraction\":$storm_press_fraction,\"rate\":$rate,\"duration_s\":$duration,\"warmup_s\":$warmup,\"steps\":\"$steps\",\"step_duration_s\":$step_duration,\"p99_limit_ms\":$p99_limit,\"git\":\"$(git rev-parse --short HEAD)\",\"mosquitto\":\"$(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')\",\"node\":\"$(node --version)\",\"node_red\":\"$(node -p "require('./bench/peer/node_modules/node-red/package.json').version")\",\"cpu_model\":\"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\"}"

for sys in $only; do
  echo "== $sys: $n devices"
  # What the build (or the system before) left to write goes to the disk now: the kernel
  # writes dirty pages back 30 s after they were written, and a tenwatch commit's fsync then
  # waits behind them (1.5 GB written just before: the first find-max step's p99 393 ms
  # instead of 3.5 ms, docs/bench/press-cost/). Only tenwatch and peer-durable sync, so only
  # they paid for it.
  sync
  case $sys in
    tenwatch)
      mqtt=$(free_port); http=$(free_port)
      RUST_LOG=warn,rumqttd=off "$bin/tenwatch" serve --data-dir "$work/seed" --ring1-after 3600 --ring2-after 7200 \
        --press-refill 0 --press-merge-window 0 --mqtt-listen "127.0.0.1:$mqtt" --http-listen "127.0.0.1:$http" 2>"$work/serve.log" &
      server=$!; pids+=("$server")
      for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
      run_bench tenwatch "$server" "" --broker "127.0.0.1:$mqtt"
      kill "$server"; wait "$server" 2>/dev/null || true
      ;;
    floor)
      mqtt=$(free_port)
      RUST_LOG=warn,rumqttd=off "$bin/tenwatch-sim" floor-broker --listen "127.0.0.1:$mqtt" --duration 600 >/dev/null 2>"$work/floor.log" &
      server=$!; pids+=("$server")
      wait_tcp "$mqtt"
      run_bench floor "$server" "" --broker "127.0.0.1:$mqtt" --floor
      kill "$server"; wait "$server" 2>/dev/null || true
      ;;
    peer|peer-shipped|peer-durable)
      nodelay=1; [ "$sys" = peer-shipped ] && nodelay=0
      # On the same disk as tenwatch's database (both under $work).
      store=; [ "$sys" = peer-durable ] && store="$work/peer-presses.jsonl"
      mqtt=$(free_port); http=$(free_port)
      cat >"$work/mosquitto.conf" <<EOF
listener $mqtt 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages 100
max_queued_messages 10000
log_dest stderr
log_type error
log_type warning
EOF
      mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
      mosq=$!; pids+=("$mosq")
      wait_tcp "$mqtt"
      mkdir -p "$work/node-red"; cp bench/peer/flows.json "$work/node-red/"
      PEER_USER_DIR="$work/node-red" PEER_CREDENTIALS="$creds" PEER_MQTT_PORT=$mqtt PEER_HTTP_PORT=$http PEER_TCP_NODELAY=$nodelay PEER_STORE_FILE=$store \
        node bench/peer/node_modules/node-red/red.js --settings bench/peer/settings.js >"$work/node-red.log" 2>&1 &
      nr=$!; pids+=("$nr")
      # Ready once Node-RED holds its MQTT connection (it subscribes right after connecting).
      for _ in $(seq 200); do
        ss -tnp 2>/dev/null | grep -q "127.0.0.1:$mqtt .*pid=$nr," && break; sleep 0.1
      done
      sleep 0.5
      run_bench "$sys" "$nr" "$mosq" --broker "127.0.0.1:$mqtt"
      kill "$nr" "$mosq"; wait "$nr" "$mosq" 2>/dev/null || true
      ;;
    *) echo "unknown system $sys" >&2; exit 1 ;;
  esac
done
note "{\"total_wall_s\":$(( $(date +%s) - start_ns ))}"
has_run() { case " $runs " in *" $1 "*) return 0 ;; esac; return 1; }
if has_run steady && has_run max; then
  python3 bench/compare.py --env "$env_json" --dir "$out"
  cat "$out/compare.md"
fi
if has_run burst || has_run storm; then
  python3 bench/scenarios.py --env "$env_json" --dir "$out"
  cat "$out/scenarios.md"
fi
