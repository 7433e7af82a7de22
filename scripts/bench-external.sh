#!/usr/bin/env bash
# The steady scenario on the embedded default and on the external path, in one run, on this
# machine (issue 8, "docs/bench/ records the steady-scenario figures of the external-broker +
# PostgreSQL path beside the embedded default's, measured in one run"):
#   embedded    `tenwatch serve`: edge (auth, ACL) + embedded rumqttd + gateway + SQLite
#               (WAL, synchronous = FULL)
#   external    Mosquitto 2 (Debian; password and ACL files from `tenwatch admin
#               export-mosquitto`) + PostgreSQL (durable: fsync, synchronous_commit on) + one
#               `tenwatch serve --mqtt-url` replica (uplink `$share/tenwatch/tw/d/+/up/#`,
#               persistent session, acks after the store commit)
#   external-2  the same with two replicas sharing the uplink
#   external-2-kill  the same again, replica 2 killed (SIGKILL) halfway and left dead: not a
#               steady figure, it shows what a dead replica's persistent session costs
# Each system gets a fresh store (seeded with the same number of clusters) and, on the
# external path, a fresh Mosquitto and a fresh PostgreSQL database; all driven by the same
# `tenwatch-sim bench` steady scenario. Writes docs/bench/SYSTEM-steady.json for each,
# external-env.json (servers' CPU, memory and counters, load average) and external.md.
# Everything on 127.0.0.1; bounded (about 8 min for the four systems, plus at most WAIT_LOAD_S
# waiting for a quiet machine); stops by itself and leaves nothing running.
#   CARGO_TARGET_DIR=/work/target-release bash scripts/bench-external.sh [DEVICES]   (default 1000)
# Environment: RATE (100), DURATION (60), WARMUP (10), GRACE (10),
# ONLY ("embedded external external-2 external-2-kill"), KILL_AFTER (WARMUP + DURATION / 2:
# seconds after the kill run's bench starts), OUT (docs/bench), SKIP_BUILD (unset),
# MAX_LOAD (1.5: before each system, wait until the 1-minute load average is below it),
# WAIT_LOAD_S (900: wait at most this long in all; then run anyway, the md says with what
# load), PG_DURABLE (1; 0 = fsync off, as scripts/postgres-test-server.sh runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
rate=${RATE:-100}; duration=${DURATION:-60}; warmup=${WARMUP:-10}; grace=${GRACE:-10}
only=${ONLY:-embedded external external-2 external-2-kill}
kill_after=${KILL_AFTER:-$((warmup + duration / 2))}
out=${OUT:-docs/bench}
max_load=${MAX_LOAD:-1.5}; wait_load_s=${WAIT_LOAD_S:-900}
pg_durable=${PG_DURABLE:-1}
mkdir -p "$out"

echo "== prerequisites"
mosquitto_bin=/usr/sbin/mosquitto
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ ! -x "$mosquitto_bin" ] || [ -z "$pg_bin" ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  else
    echo "needs mosquitto and postgresql: apt-get install mosquitto postgresql (as root)" >&2; exit 1
  fi
fi
bin="${CARGO_TARGET_DIR:-target}/release"
if [ -z "${SKIP_BUILD:-}" ]; then
  echo "== building release binaries"
  cargo build --release --locked -p tenwatch-gateway -p tenwatch-sim --bins
fi

# The work directory is entered by PostgreSQL's own user when run as root.
work=$(mktemp -d /tmp/bench-external.XXXXXX)
chmod 755 "$work"
pids=()
pg_dirs=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in "${pg_dirs[@]}"; do
    [ -f "$d/data/postmaster.pid" ] && as_pg "$pg_bin/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# /healthz shows each gateway's counters (read after each run) only with the metrics token.
metrics_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TENWATCH_METRICS_TOKEN=$metrics_token
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_tcp() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }
wait_healthy() {
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "the gateway on http port $1 is not healthy" >&2; return 1
}
# utime + stime (+ cutime + cstime: children that exited, e.g. PostgreSQL backends), in ticks.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Proportional set size: shared pages (PostgreSQL's shared buffers) counted once across processes.
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
load1() { awk '{print $1}' /proc/loadavg; }
# Compilers, benchmarks and servers of others (by process name, this script's own left out),
# e.g. "1 cargo, 3 rustc".
others() {
  local mine=" ${pids[*]:-} " d
  for d in "${pg_dirs[@]:-}"; do [ -n "$d" ] && [ -f "$d/data/postmaster.pid" ] && mine+=" $(pg_pids "$d") "; done
  pgrep -l -x 'tenwatch-sim|tenwatch|cargo|rustc|mosquitto|postgres|node' 2>/dev/null | while read -r pid name; do
    case "$mine" in *" $pid "*) ;; *) echo "$name" ;; esac
  done | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}' || true
}

env_json="$work/env.jsonl"
note() { echo "$1" >>"$env_json"; }

# Wait until the machine is quiet: another engineer may be compiling or benchmarking. Before
# each system, polling every 30 s; WAIT_LOAD_S bounds the waiting of the whole run.
waited_total=0
wait_quiet() {
  while awk -v l="$(load1)" -v m="$max_load" 'BEGIN {exit !(l > m)}'; do
    if [ "$waited_total" -ge "$wait_load_s" ]; then
      echo "   load $(load1) still above $max_load after ${waited_total} s of waiting: running anyway" >&2; return 0
    fi
    echo "   load $(load1) > $max_load (others: $(others)); waiting"
    sleep 30; waited_total=$((waited_total + 30))
  done
}

# A PostgreSQL server of its own for one system: loopback, a free port, durable by default.
pg_start() {
  local dir=$1
  mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_pg "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  local durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  [ "$pg_durable" = 1 ] || durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  local port; port=$(free_port)
  as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=100 $durability" start >/dev/null ||
    { tail -n 20 "$dir/server.log" >&2; exit 1; }
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}
pg_stop() { as_pg "$pg_bin/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true; }

mosquitto_start() { # DIR PORT PASSWORD_FILE ACL_FILE
  local user=""; [ "$(id -u)" = 0 ] && user="user root"
  cat >"$1/mosquitto.conf" <<EOF
$user
listener $2 127.0.0.1
allow_anonymous false
password_file $3
acl_file $4
persistence false
max_queued_messages 100000
max_inflight_messages 100
set_tcp_nodelay true
log_dest file $1/mosquitto.log
log_type error
log_type warning
log_type notice
EOF
  "$mosquitto_bin" -c "$1/mosquitto.conf" </dev/null >/dev/null 2>>"$1/mosquitto.log" &
  mosq=$!; pids+=("$mosq")
  wait_tcp "$2"
}

# run_steady SYSTEM "SERVER_PIDS" BROKER CREDS [PG_DIR]: the steady bench, the first server pid
# for the sim's own memory reading, CPU and memory of every server process around it (with
# PG_DIR, also every PostgreSQL process there at the end, new backends counted from 0).
run_steady() {
  local sys=$1 servers=$2 broker=$3 creds=$4 pgdir=${5:-}
  if [ -n "$pgdir" ]; then servers="$servers $(pg_pids "$pgdir")"; fi
  wait_quiet
  # external-2-kill: replica 2 gets SIGKILL this long after the bench starts, and stays dead.
  local killer=""
  if [ -n "${kill_pid:-}" ]; then
    ( sleep "$kill_after"; echo "== SIGKILL to replica 2 (pid $kill_pid)"; kill -KILL "$kill_pid" ) &
    killer=$!
  fi
  local load_before; load_before=$(load1); local others_before; others_before=$(others)
  declare -A before=()
  for p in $servers; do before[$p]=$(cpu_ticks "$p"); done
  local t0; t0=$(date +%s.%N)
  local started; started=$(date -u +%FT%TZ)
  echo "== $sys: $n devices, $rate presses/s, ${duration} s after ${warmup} s warm-up (load $load_before)"
  /usr/bin/time -f "%U %S" -o "$work/time-$sys" \
    "$bin/tenwatch-sim" bench --credentials "$creds" --broker "$broker" --devices "$n" --connect-rate 1000 \
    --rate "$rate" --duration "$duration" --warmup "$warmup" --grace "${run_grace:-$grace}" \
    --server-pid "${servers%% *}" --report "$out/$sys-steady.json" | tee "$work/$sys.txt"
  local t1; t1=$(date +%s.%N)
  if [ -n "$killer" ]; then wait "$killer" || true; fi
  if [ -n "$pgdir" ]; then servers=$(echo "$servers $(pg_pids "$pgdir")" | tr ' ' '\n' | awk 'NF && !seen[$1]++' | tr '\n' ' '); fi
  # Each gateway's own counters (uplinks, alerts, repeated presses, receipts): how the replicas
  # shared the uplink. A dead replica answers nothing.
  local gm=""
  for port in ${metrics_ports:-}; do
    gm+="$(curl -fs -m 5 -H "Authorization: Bearer $metrics_token" "http://127.0.0.1:$port/healthz" | python3 -c 'import json,sys; g=json.load(sys.stdin)["gateway"]; print(json.dumps({k: g.get(k) for k in ("uplink_received","alerts_raised","presses_duplicate","deliveries")}))' 2>/dev/null || echo null),"
  done
  local procs=""
  for p in $servers; do
    local name; name=$(cat "/proc/$p/comm" 2>/dev/null || echo "?")
    [ -d "/proc/$p" ] || continue   # a killed replica: its CPU is not known
    procs+="{\"pid\":$p,\"name\":\"$name\",\"cpu_ticks\":$(( $(cpu_ticks "$p") - ${before[$p]:-0} )),\"hz\":$hz,\"rss_kb\":$(rss_kb "$p"),\"pss_kb\":$(pss_kb "$p")},"
  done
  note "{\"system\":\"$sys\",\"started_at\":\"$started\",\"wall_s\":$(python3 -c "print(round($t1-$t0,2))"),\"load1_before\":$load_before,\"load1_after\":$(load1),\"others_before\":\"$others_before\",\"others_after\":\"$(others)\",\"sim_cpu_user_sys_s\":\"$(cat "$work/time-$sys")\",\"gateway_counters\":[${gm%,}],\"servers\":[${procs%,}]}"
  unset before
}

# Every process of one PostgreSQL server (postmaster and its children), space-separated.
pg_pids() { local pm; pm=$(head -1 "$1/data/postmaster.pid"); echo "$pm $(pgrep -P "$pm" | tr '\n' ' ')"; }

note "{\"devices\":$n,\"rate\":$rate,\"duration_s\":$duration,\"warmup_s\":$warmup,\"grace_s\":$grace,\"kill_after_s\":$kill_after,\"systems\":\"$only\",\"git\":\"$(git rev-parse --short HEAD)\",\"git_dirty\":$( [ -z "$(git status --porcelain -- gateway broker device-sim Cargo.lock vendor)" ] && echo false || echo true),\"mosquitto\":\"$("$mosquitto_bin" -h 2>/dev/null | head -1 | awk '{print $3}')\",\"postgresql\":\"$("$pg_bin/postgres" --version | awk '{print $3}')\",\"postgresql_durable\":$( [ "$pg_durable" = 1 ] && echo true || echo false),\"cpu_model\":\"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\",\"cores\":$(nproc),\"memory_total_kb\":$(awk '/MemTotal/ {print $2}' /proc/meminfo),\"kernel\":\"$(uname -r)\",\"date\":\"$(date -u +%F)\"}"
start_s=$(date +%s)

for sys in $only; do
  case $sys in
    embedded)
      data="$work/embedded"; creds="$work/creds-embedded.json"
      "$bin/tenwatch" admin seed-demo --data-dir "$data" --clusters $((n / 10)) --credentials-out "$creds" >/dev/null
      mqtt=$(free_port); http=$(free_port)
      # --press-merge-window 0: the bench presses random units again and again on alerts that stay
      # open; each press raises an alert of its own, as in every earlier run (docs/bench/compare.md).
      RUST_LOG=warn,rumqttd=off "$bin/tenwatch" serve --data-dir "$data" --ring1-after 3600 --ring2-after 7200 --press-merge-window 0 \
        --mqtt-listen "127.0.0.1:$mqtt" --http-listen "127.0.0.1:$http" >/dev/null 2>"$work/serve-embedded.log" &
      server=$!; pids+=("$server")
      wait_healthy "$http"; metrics_ports=$http
      run_steady embedded "$server" "127.0.0.1:$mqtt" "$creds"; metrics_ports=""
      kill "$server"; wait "$server" 2>/dev/null || true
      ;;
    external|external-2|external-2-kill)
      replicas=1; [ "$sys" != external ] && replicas=2
      dir="$work/$sys"; mkdir -p "$dir"; creds="$dir/creds.json"
      pg_dirs+=("$dir/pg")
      db=$(pg_start "$dir/pg")
      "$bin/tenwatch" admin seed-demo --database-url "$db" --clusters $((n / 10)) --credentials-out "$creds" >/dev/null
      gw_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
      "$bin/tenwatch" admin export-mosquitto --database-url "$db" --credentials "$creds" \
        --password-file "$dir/passwd" --acl-file "$dir/acl" \
        --gateway-user tenwatch-gateway --gateway-password "$gw_password" >/dev/null
      mqtt=$(free_port)
      mosquitto_start "$dir" "$mqtt" "$dir/passwd" "$dir/acl"
      gws=""; metrics_ports=""
      for i in $(seq "$replicas"); do
        http=$(free_port); metrics_ports+="$http "
        RUST_LOG=warn "$bin/tenwatch" serve --database-url "$db" --ring1-after 3600 --ring2-after 7200 --press-merge-window 0 \
          --mqtt-url "mqtt://tenwatch-gateway@127.0.0.1:$mqtt" --mqtt-password "$gw_password" \
          --mqtt-client-id "gw-$i" --http-listen "127.0.0.1:$http" >/dev/null 2>"$dir/serve-$i.log" &
        gw=$!; pids+=("$gw"); gws+="$gw "
        wait_healthy "$http"
      done
      kill_pid=""; run_grace=""
      # Repeats come after 2, 2, 4, 8, 10 s: 30 s of grace leaves room for five.
      if [ "$sys" = external-2-kill ]; then kill_pid=$gw; run_grace=30; fi
      run_steady "$sys" "$gws$mosq" "127.0.0.1:$mqtt" "$creds" "$dir/pg"; kill_pid=""; run_grace=""; metrics_ports=""
      # What Mosquitto still holds for the dead replica's persistent session is in its log.
      for gw in $gws; do kill "$gw" 2>/dev/null || true; wait "$gw" 2>/dev/null || true; done
      kill "$mosq"; wait "$mosq" 2>/dev/null || true
      pg_stop "$dir/pg"
      cp "$dir/mosquitto.log" "$work/mosquitto-$sys.log" 2>/dev/null || true
      ;;
    *) echo "unknown system $sys (embedded, external, external-2, external-2-kill)" >&2; exit 1 ;;
  esac
done
note "{\"total_wall_s\":$(( $(date +%s) - start_s ))}"

# external-env.json (what ran, each server's CPU and memory, the load) and external.md.
python3 - "$env_json" "$out" <<'PY'
import json, sys, os
env_path, out = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(env_path)]
head = lines[0]
runs = [l for l in lines if "system" in l]
total = next((l["total_wall_s"] for l in lines if "total_wall_s" in l), None)
for r in runs:
    rep = json.load(open(os.path.join(out, f"{r['system']}-steady.json")))
    r["report"] = f"{r['system']}-steady.json"
    secs = r["wall_s"]
    groups = {}
    for p in r["servers"]:
        name = p["name"]
        kind = ("gateway" if name.startswith("tenwatch") else
                "mosquitto" if name.startswith("mosquitto") else
                "postgresql" if name.startswith("postgres") else name)
        g = groups.setdefault(kind, {"processes": 0, "cpu_s": 0.0, "rss_kb": 0, "pss_kb": 0})
        g["processes"] += 1
        g["cpu_s"] += p["cpu_ticks"] / p["hz"]
        g["rss_kb"] += p["rss_kb"]
        g["pss_kb"] += p["pss_kb"]
    for g in groups.values():
        g["cpu_s"] = round(g["cpu_s"], 2)
        g["cores"] = round(g["cpu_s"] / secs, 3)
    r["by_kind"] = groups
    # The bench presses at the target rate from the end of connecting: warm-up and measured time.
    presses = head["rate"] * (head["warmup_s"] + head["duration_s"])
    r["presses_in_run"] = presses
    all_cpu = sum(g["cpu_s"] for g in groups.values())
    r["server_cpu_s"] = round(all_cpu, 2)
    r["server_cpu_ms_per_press"] = round(1000 * all_cpu / presses, 2)
    u, s = (float(x) for x in r["sim_cpu_user_sys_s"].split())
    r["sim_cpu_s"] = round(u + s, 2)
json.dump({"run": head, "systems": runs, "total_wall_s": total},
          open(os.path.join(out, "external-env.json"), "w"), indent=2)
open(os.path.join(out, "external-env.json"), "a").write("\n")

def ms(us): return "—" if us is None else (f"{us/1000:.2f}" if us < 10000 else f"{us/1000:.1f}" if us < 100000 else f"{us/1000:,.0f}")
def mb(kb): return f"{kb/1024:,.0f} MiB"
name = {"embedded": "embedded (`tenwatch serve`, rumqttd + edge, SQLite FULL)",
        "external": "external: Mosquitto + PostgreSQL + 1 replica",
        "external-2": "external: Mosquitto + PostgreSQL + 2 replicas",
        "external-2-kill": "the same, replica 2 SIGKILLed mid-run and left dead (not steady)"}
rows, res_rows, reps = [], [], {}
for r in runs:
    rep = json.load(open(os.path.join(out, r["report"])))
    reps[r["system"]] = (rep, r)
    n_ = rep["latency_neighbours_us"]; a = rep["latency_ack_us"]
    g = r["by_kind"]
    def cell(kind, f):
        return f(g[kind]) if kind in g else "—"
    rows.append("| " + " | ".join([
        name.get(r["system"], r["system"]),
        f"{ms(n_['p50'])} / {ms(n_['p90'])} / {ms(n_['p99'])} / {ms(n_['max'])}",
        f"{ms(a['p50'])} / {ms(a['p90'])} / {ms(a['p99'])} / {ms(a['max'])}",
        f"{rep['presses_acked']:,} / {rep['presses_sent']:,}",
        f"{rep['presses_lost']} / {rep['duplicates']['alerts']} / {rep['neighbours_incomplete']}",
        f"{rep['presses_retried']:,}",
    ]) + " |")
    res_rows.append("| " + " | ".join([
        r["system"],
        cell("gateway", lambda x: f"{x['cores']:.2f}" + (f" ({x['processes']} processes)" if x['processes'] > 1 else "")),
        cell("mosquitto", lambda x: f"{x['cores']:.2f}"),
        cell("postgresql", lambda x: f"{x['cores']:.2f}"),
        f"{sum(g_['cpu_s'] for g_ in g.values()) / r['wall_s']:.2f}",
        f"{r['sim_cpu_s']/r['wall_s']:.2f}",
        f"{r['server_cpu_ms_per_press']:.2f}",
        cell("gateway", lambda x: mb(x['rss_kb'])),
        cell("mosquitto", lambda x: mb(x['rss_kb'])),
        cell("postgresql", lambda x: mb(x['pss_kb'])),
        f"{r['load1_before']} → {r['load1_after']}",
    ]) + " |")

ratios = []
if "embedded" in reps:
    e = reps["embedded"][0]
    for sysname in ("external", "external-2"):
        if sysname in reps:
            x = reps[sysname][0]
            def ratio(field, q):
                a, b = x[field][q], e[field][q]
                return f"{a/b:.1f}×" if a and b else "—"
            cpu = reps[sysname][1]["server_cpu_ms_per_press"] / max(reps["embedded"][1]["server_cpu_ms_per_press"], 1e-9)
            ratios.append(f"- **{sysname} ÷ embedded**: press → nine neighbours p50 {ratio('latency_neighbours_us','p50')}, "
                          f"p90 {ratio('latency_neighbours_us','p90')}, p99 {ratio('latency_neighbours_us','p99')}; "
                          f"press → ack p50 {ratio('latency_ack_us','p50')}; server CPU per press {cpu:.1f}×.")

first = runs[0]["started_at"] if runs else ""
counters = []
for r in runs:
    gc = r.get("gateway_counters") or []
    if gc:
        parts = []
        for i, c in enumerate(gc, 1):
            who = "the gateway" if len(gc) == 1 else f"replica {i}"
            parts.append(f"{who}: dead at the end" if c is None else
                         f"{who}: {c['uplink_received']:,} uplinks, {c['alerts_raised']:,} alerts raised, {c['presses_duplicate']:,} repeated presses, {c['deliveries']:,} receipts")
        counters.append(f"- {r['system']}: " + "; ".join(parts) + " (whole run, warm-up included).")
others = "\n".join(f"- {r['system']}: load {r['load1_before']} at the start, {r['load1_after']} at the end; other processes at the start: {r['others_before'] or 'none'}; at the end: {r['others_after'] or 'none'}." for r in runs)
kill_note = ""
if any(r["system"] == "external-2-kill" for r in runs):
    kill_note = (f"\n**external-2-kill** is not a steady figure: replica 2 gets SIGKILL {head.get('kill_after_s')} s after "
                 "the bench starts (connecting included) and stays dead (its CPU is not in the table); the grace for outstanding acks is 30 s. "
                 "The replicas use persistent sessions (`clean_session = false`), so Mosquitto keeps the dead replica's "
                 "subscription to `$share/tenwatch/tw/d/+/up/#` and, round-robin, goes on queueing its share of the uplink "
                 "for it (up to `max_queued_messages`); a press that lands there is answered only when the unit repeats it "
                 "and the repeat lands on the live replica.\n")
md = f"""# The steady scenario: embedded default against the external path ({head['date']})

Made by `scripts/bench-external.sh` (do not edit by hand; rerun it). One run, one machine:
{head['cores']} cores ({head['cpu_model']}, virtual), {head['memory_total_kb']/1024/1024:.0f} GiB, Linux {head['kernel']},
loopback only, release builds of tenwatch at {head['git']}{' (with uncommitted changes)' if head['git_dirty'] else ''}; the servers, Mosquitto, PostgreSQL and the
simulator all on the same cores. Started {first}; {total} s in all, waiting for a quiet machine included. Mosquitto {head['mosquitto']}
(Debian; password and ACL files from `tenwatch admin export-mosquitto`, `set_tcp_nodelay true`,
no persistence), PostgreSQL {head['postgresql']} ({'durable: fsync, synchronous_commit and full_page_writes on' if head['postgresql_durable'] else 'NOT durable: fsync off (PG_DURABLE=0)'}),
SQLite in WAL mode with `synchronous = FULL`. Each system starts from a fresh store seeded with
{head['devices']//10} clusters of ten; rings pushed past the run; neighbours answer `delivered`.

Steady scenario, the same for every system: {head['devices']:,} devices, {head['rate']:g} presses/s from random
devices for {head['duration_s']} s after {head['warmup_s']} s of warm-up (`tenwatch-sim bench`, reports
{', '.join('[`'+r['report']+'`]('+r['report']+')' for r in runs)}; CPU and memory in
[`external-env.json`](external-env.json)).

| system | press → nine neighbours p50 / p90 / p99 / max (ms) | press → ack p50 / p90 / p99 / max (ms) | acked / sent | lost / duplicated alerts / incomplete fan-outs | presses repeated |
|---|---|---|---|---|---:|
""" + "\n".join(rows) + """

| system | CPU (cores): gateway | Mosquitto | PostgreSQL | all servers | simulator | server CPU per press (ms) | RSS: gateway | Mosquitto | PostgreSQL (PSS) | load (1 min) before → after |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
""" + "\n".join(res_rows) + "\n\n" + "\n".join(ratios) + "\n" + kill_note + "\nEach gateway's counters at the end (`/healthz`):\n\n" + "\n".join(counters) + f"""

The machine around each system's run (1-minute load average; processes named tenwatch,
tenwatch-sim, cargo, rustc, mosquitto, postgres or node that this script did not start):

{others}

CPU: the processes' user + system time (`/proc/PID/stat`, what `ps` reads) over the whole bench
(connect, warm-up, measured time, drain) divided by its wall time; PostgreSQL's is the
postmaster and all its backends (exited ones included). "Server CPU per press" is all server
processes' CPU divided by the presses the bench made in that time (rate × (warm-up + measured
time); connecting and the drain are in the CPU too, so it is a little high). Memory is read at
the end of the run: the gateways' and Mosquitto's RSS, PostgreSQL's proportional set size (its
shared buffers counted once).
"""
open(os.path.join(out, "external.md"), "w").write(md)
print(md)
PY
