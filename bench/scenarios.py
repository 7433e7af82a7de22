#!/usr/bin/env python3
"""Tables of the burst and storm scenarios (issue 6) from the JSON of scripts/bench-scenarios.sh.

    python3 bench/scenarios.py --dir docs/bench [--env run-env.jsonl]

Reads compare-SYSTEM-burst.json and compare-SYSTEM-storm.json for each system present and
writes scenarios.md and scenarios-summary.json (every figure, plus the server processes' CPU
seconds per run when --env is given; without it the run details in scenarios-summary.json are
reused). Standard library only.
"""
import argparse
import json
import os
import sys

SYSTEMS = [("tenwatch", "tenwatch"), ("floor", "floor"), ("peer", "peer"), ("peer-shipped", "peer as shipped")]


def load(path):
    with open(path) as f:
        return json.load(f)


def ms(us):
    if us is None:
        return "—"
    v = us / 1000
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def lat(l):
    return " / ".join(ms(l.get(k)) for k in ("p50", "p90", "p99", "max"))


def secs(v):
    return "—" if v is None else f"{v:.3f} s"


def read_env(path):
    cfg, runs = {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            if "system" in o:
                u, s = (o.pop("sim_cpu", "0 0").split() + ["0", "0"])[:2]
                o["sim_cpu_s"] = round(float(u) + float(s), 2)
                for p in o["servers"]:
                    p["cpu_s"] = round(p.pop("cpu_ticks") / p.pop("hz"), 2)
                runs.append(o)
            elif "total_wall_s" in o:
                cfg["total_wall_s"] = o["total_wall_s"]
            else:
                cfg.update(o)
    return cfg, runs


def cpu(runs, system, kind):
    for r in runs:
        if r["system"] == system and r["run"] == kind:
            servers = ", ".join(f"{p['name']} {p['cpu_s']:.1f} s" for p in r["servers"])
            return f"{servers} (sim {r['sim_cpu_s']:.1f} s) in {r['wall_s']:.0f} s"
    return "—"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="docs/bench")
    ap.add_argument("--env", help="run details (JSON lines) written by scripts/bench-compare.sh")
    a = ap.parse_args()
    summary_path = os.path.join(a.dir, "scenarios-summary.json")
    if a.env:
        cfg, runs = read_env(a.env)
    elif os.path.exists(summary_path):
        old = load(summary_path)
        cfg, runs = old["run"], old["runs"]
    else:
        cfg, runs = {}, []

    reports = {}
    for key, _ in SYSTEMS:
        for kind in ("burst", "storm"):
            p = os.path.join(a.dir, f"compare-{key}-{kind}.json")
            if os.path.exists(p):
                reports[(key, kind)] = load(p)
    if not reports:
        sys.exit(f"no compare-*-burst.json or compare-*-storm.json in {a.dir}")
    any_report = next(iter(reports.values()))
    m = any_report["machine"]

    out = []
    out.append(
        f"Run {any_report['started_at'][:19].replace('T', ' ')} UTC on {m['cores']} cores"
        + (f" ({cfg['cpu_model']})" if cfg.get("cpu_model") else "")
        + f", {m.get('memory_total_kb', 0) // 1024} MiB, Linux {m.get('kernel')}"
        + (f"; tenwatch {cfg['git']}" if cfg.get("git") else "")
        + f". {any_report['devices']} devices ({any_report['clusters']} clusters); servers and simulator share the machine."
    )
    out.append("")
    burst = [(k, n) for k, n in SYSTEMS if (k, "burst") in reports]
    if burst:
        b0 = reports[(burst[0][0], "burst")]["burst"]
        out.append(
            f"**Burst**: {b0['fraction'] * 100:.0f} % of the households press once each, spread uniformly over "
            f"{b0['window_s']:.0f} s; each unit repeats its press until acked. Latencies in ms: p50 / p90 / p99 / max."
        )
        out.append("")
        out.append("| system | presses acked / lost | repeated | press → ack | press → nine neighbours | incomplete fan-out | alerts acked twice | drain after the last press (ack / neighbours) | server CPU |")
        out.append("|---|---|---:|---|---|---:|---:|---|---|")
        for k, name in burst:
            r = reports[(k, "burst")]
            b = r["burst"]
            out.append(
                f"| **{name}** | {r['presses_acked']} of {b['presses_planned']} / {r['presses_lost']} | {r['presses_retried']} "
                f"| {lat(r['latency_ack_us'])} | {lat(r['latency_neighbours_us'])} | {r['neighbours_incomplete']} "
                f"| {r['duplicates']['alerts']} | {secs(b['drain_ack_s'])} / {secs(b['drain_neighbours_s'])} | {cpu(runs, k, 'burst')} |"
            )
        out.append("")
    storm = [(k, n) for k, n in SYSTEMS if (k, "storm") in reports]
    if storm:
        s0 = reports[(storm[0][0], "storm")]["storm"]
        out.append(
            f"**Storm**: every connection drops at the same instant (the simulator closes each socket, no DISCONNECT); "
            f"each unit reconnects after its normal backoff (250 ms × 0.5–1.5, doubling on failure up to 10 s) and "
            f"resubscribes; {s0['press_fraction'] * 100:g} % of the units press at the moment of the drop. "
            f"\"Back\" = connected and both subscriptions granted. Latencies in ms: p50 / p90 / p99 / max."
        )
        out.append("")
        out.append("| system | back / dropped | all back after | drop → back | failed attempts | presses at the drop: acked / lost | alerts for them | press (at the drop) → ack | neighbours not reached | server CPU |")
        out.append("|---|---|---:|---|---:|---|---:|---|---:|---|")
        for k, name in storm:
            r = reports[(k, "storm")]
            s = r["storm"]
            out.append(
                f"| **{name}** | {s['devices_back']} / {s['devices_dropped']} | {secs(s['all_back_s'])} | {lat(s['reconnect_us'])} "
                f"| {s['connect_failures']} | {r['presses_acked']} of {s['presses_planned']} / {r['presses_lost']} "
                f"| {s['alerts_acked']} | {lat(s['press_to_ack_us'])} | {r['neighbours_incomplete']} of {r['presses_acked']} | {cpu(runs, k, 'storm')} |"
            )
        out.append("")
        out.append(
            "\"Neighbours not reached\": presses whose cluster alert missed at least one neighbour — a neighbour still "
            "reconnecting when the alert went out (clean sessions, no retained message) never hears it."
        )
        out.append("")
    with open(os.path.join(a.dir, "scenarios.md"), "w") as f:
        f.write("\n".join(out))
    summary = {
        "run": cfg,
        "runs": runs,
        "systems": {f"{k}-{kind}": {key: r.get(key) for key in (
            "started_at", "devices", "presses_sent", "presses_acked", "presses_lost", "presses_retried",
            "neighbours_incomplete", "duplicates", "latency_ack_us", "latency_neighbours_us", "burst", "storm",
            "server", "disconnects_unplanned")} for (k, kind), r in reports.items()},
    }
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
