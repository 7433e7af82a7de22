#!/usr/bin/env python3
"""Summarises the foundation benchmark's JSON reports (docs/bench/*.json) as a Markdown table.

Reads steady-N.json and throughput-N.json written by `tenwatch-sim bench` and prints one row per
device count, so the README's figures can be checked against the JSON they come from."""
import glob
import json
import os
import re
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "docs/bench"


def ms(us):
    return "—" if us is None else f"{us / 1000:.1f}"


def load(path):
    with open(path) as f:
        return json.load(f)


counts = sorted(
    int(re.search(r"steady-(\d+)\.json", p).group(1))
    for p in glob.glob(os.path.join(out, "steady-*.json"))
)
if not counts:
    sys.exit(f"no steady-*.json in {out}")
first = load(os.path.join(out, f"steady-{counts[0]}.json"))
m = first["machine"]
print(f"Run {first['started_at']} on {m['cores']} cores, {m['memory_total_kb'] // 1024} MiB, "
      f"Linux {m['kernel']}; tenwatch serve (embedded rumqttd + edge + SQLite, synchronous=FULL) "
      f"and tenwatch-sim on the same machine.\n")
print("| devices | rate | press → nine neighbours p50 / p90 / p99 / max (ms) | press → ack p50 / p99 (ms) "
      "| lost | durable presses/s with p99 < 50 ms | server RSS per device | server fds per device |")
print("|---|---|---|---|---|---|---|---|")
for n in counts:
    s = load(os.path.join(out, f"steady-{n}.json"))
    nb, ack, srv = s["latency_neighbours_us"] or {}, s["latency_ack_us"] or {}, s.get("server") or {}
    tp_path = os.path.join(out, f"throughput-{n}.json")
    best = "—"
    if os.path.exists(tp_path):
        fm = load(tp_path).get("find_max") or {}
        ok = fm.get("max_rate_ok")
        best = "none" if ok is None else f"{ok:g}"
        at = [st for st in fm.get("steps", []) if ok is not None and st.get("rate_target") == ok]
        if at:
            p99 = (at[0].get("latency_neighbours_us") or {}).get("p99")
            best += f" (sustained {at[0].get('sustained_presses_per_s', 0):.0f}/s, p99 {ms(p99)} ms)"
    print(f"| {n} | {s['rate_target']:g}/s | {ms(nb.get('p50'))} / {ms(nb.get('p90'))} / {ms(nb.get('p99'))} / "
          f"{ms(nb.get('max'))} | {ms(ack.get('p50'))} / {ms(ack.get('p99'))} | {s['presses_lost']} | {best} | "
          f"{srv.get('rss_kb_per_device', 0):.1f} kB | {srv.get('fds_per_device', 0):.2f} |")
