#!/usr/bin/env python3
"""Turns the reports of scripts/bench-compare.sh into docs/bench/compare-summary.json,
compare.md (tables with the ratios tenwatch / peer and tenwatch / floor) and compare.svg (the
chart). Standard library only: the SVG is written by hand so that it renders anywhere and needs
nothing installed.

    python3 bench/compare.py --dir docs/bench [--env run-env.jsonl]

Without --env it reuses the run details already in compare-summary.json (to redraw from the
committed JSON)."""
import argparse
import json
import math
import os
import sys

SYSTEMS = [
    ("tenwatch", "tenwatch", "edge (auth, ACL) + rumqttd + gateway + SQLite, each press durable"),
    ("floor", "floor", "plain rumqttd, no auth, no gateway: the presser publishes the cluster alert"),
    ("peer", "peer", "Mosquitto + Node-RED 4 flow: press in, cluster alert + ack out, nothing stored; TCP_NODELAY"),
    ("peer-shipped", "peer as shipped", "the same peer with Node-RED's MQTT socket as mqtt.js leaves it (Nagle on)"),
    ("peer-durable", "peer, durable", "the peer with each press appended to a file and fdatasync'd before it goes out"),
]
COLOURS = {"tenwatch": "#1f6feb", "floor": "#8b949e", "peer": "#d9822b", "peer-shipped": "#f2c28b",
           "peer-durable": "#8a4b0f"}
LEGEND = {"tenwatch": "tenwatch (durable, dedup, ACL)", "floor": "floor (bare rumqttd publish)",
          "peer": "peer (Mosquitto + Node-RED)", "peer-shipped": "peer as shipped (Nagle on)",
          "peer-durable": "peer, each press fdatasync'd first"}


def load(path):
    with open(path) as f:
        return json.load(f)


def ms(us):
    return None if us is None else us / 1000.0


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def read_env(path):
    cfg, runs, total = {}, [], None
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
                total = o["total_wall_s"]
            else:
                cfg = o
    cfg["total_wall_s"] = total
    return cfg, runs


def summarise(d, cfg, runs):
    out = {"run": cfg, "systems": {}}
    for key, _, what in SYSTEMS:
        sp, mp = os.path.join(d, f"compare-{key}-steady.json"), os.path.join(d, f"compare-{key}-max.json")
        if not os.path.exists(sp):
            continue
        s = load(sp)
        nb, ack = s.get("latency_neighbours_us") or {}, s.get("latency_ack_us") or {}
        sysd = {
            "what": what,
            "steady": {
                "rate_target": s["rate_target"],
                "duration_s": s["duration_s"],
                "presses_sent": s["presses_sent"],
                "presses_acked": s["presses_acked"],
                "presses_lost": s["presses_lost"],
                "presses_retried": s["presses_retried"],
                "neighbours_incomplete": s["neighbours_incomplete"],
                "duplicates": s["duplicates"],
                "sustained_presses_per_s": s["sustained_presses_per_s"],
                "neighbours_ms": {k: ms(nb.get(k)) for k in ("p50", "p90", "p99", "max")},
                "ack_ms": {k: ms(ack.get(k)) for k in ("p50", "p90", "p99", "max")},
                "server_rss_kb": (s.get("server") or {}).get("vm_rss_kb"),
            },
            "started_at": s["started_at"],
            "machine": s["machine"],
        }
        if os.path.exists(mp):
            fm = load(mp).get("find_max") or {}
            steps = []
            for st in fm.get("steps", []):
                n = st.get("latency_neighbours_us") or {}
                steps.append({
                    "rate_target": st["rate_target"],
                    "sent": st["presses_sent"],
                    "acked": st["presses_acked"],
                    "lost": st["presses_lost"],
                    "retried": st["presses_retried"],
                    "incomplete": st["neighbours_incomplete"],
                    "sustained_presses_per_s": st["sustained_presses_per_s"],
                    "neighbours_ms": {k: ms(n.get(k)) for k in ("p50", "p99", "max")},
                })
            ok = fm.get("max_rate_ok")
            at = [x for x in steps if ok is not None and x["rate_target"] == ok]
            sysd["find_max"] = {
                "p99_limit_ms": fm.get("p99_limit_ms"),
                "step_duration_s": fm.get("step_duration_s"),
                "max_rate_ok": ok,
                # Every step passed: the real maximum is above the last step tried.
                "all_steps_passed": bool(steps) and ok == steps[-1]["rate_target"],
                "sustained_at_max_ok": at[0]["sustained_presses_per_s"] if at else None,
                "steps": steps,
            }
        sysd["cpu"] = [r for r in runs if r["system"] == key]
        out["systems"][key] = sysd
    return out


def markdown(summary):
    S = summary["systems"]
    cfg = summary["run"]
    first = next(iter(S.values()))
    m = first["machine"]
    lines = []
    lines.append(f"Run {first['started_at'][:19].replace('T', ' ')} UTC on {m['cores']} cores "
                 f"({cfg.get('cpu_model', '?')}), {m['memory_total_kb'] // 1024} MiB, Linux {m['kernel']}; "
                 f"tenwatch {cfg.get('git', '?')}, Mosquitto {cfg.get('mosquitto', '?')}, "
                 f"Node-RED {cfg.get('node_red', '?')} on Node {cfg.get('node', '?')}. "
                 f"Servers and simulator share the machine. {cfg.get('devices')} devices "
                 f"({cfg.get('devices', 0) // 10} clusters of ten); steady {cfg.get('rate')} presses/s for "
                 f"{cfg.get('duration_s')} s after {cfg.get('warmup_s')} s warm-up; find-max steps "
                 f"{cfg.get('steps')} presses/s of {cfg.get('step_duration_s')} s, pass = p99 press → nine "
                 f"neighbours < {cfg.get('p99_limit_ms')} ms, nothing lost, every fan-out complete. "
                 f"Whole run {cfg.get('total_wall_s')} s.\n")
    lines.append("| system | press → nine neighbours at steady rate: p50 / p90 / p99 / max (ms) | press → ack p50 / p99 (ms) "
                 "| lost | repeated presses | alerts acked twice (dedup) | highest step with p99 < limit (sustained) | server CPU during steady run |")
    lines.append("|---|---|---|---:|---:|---:|---|---|")
    for key, name, what in SYSTEMS:
        if key not in S:
            continue
        st = S[key]["steady"]
        nb, ack = st["neighbours_ms"], st["ack_ms"]
        fm = S[key].get("find_max") or {}
        ok = fm.get("max_rate_ok")
        ge = "≥ " if fm.get("all_steps_passed") else ""
        best = "none" if ok is None else f"{ge}{ok:g}/s ({fm.get('sustained_at_max_ok') or 0:.0f}/s)"
        cpu = [r for r in S[key]["cpu"] if r["run"] == "steady"]
        cpu_s = "—"
        if cpu:
            names = {"tenwatch-sim": "rumqttd", "node": "Node-RED"}
            parts = [f"{names.get(p['name'], p['name'])} {p['cpu_s']:.1f} s" for p in cpu[0]["servers"]]
            cpu_s = ", ".join(parts) + f" (sim {cpu[0]['sim_cpu_s']:.1f} s) in {cpu[0]['wall_s']:.0f} s"
        lines.append(f"| **{name}** | {fmt_ms(nb['p50'])} / {fmt_ms(nb['p90'])} / {fmt_ms(nb['p99'])} / {fmt_ms(nb['max'])} "
                     f"| {fmt_ms(ack['p50'])} / {fmt_ms(ack['p99'])} | {st['presses_lost']} of {st['presses_sent']} "
                     f"| {st['presses_retried']} | {st['duplicates'].get('alerts', 0)} | {best} | {cpu_s} |")
    lines.append("")
    if "tenwatch" in S:
        t = S["tenwatch"]
        lines.append("| ratio | p50 | p99 | highest passing step |")
        lines.append("|---|---:|---:|---:|")
        for key in ("peer", "peer-shipped", "peer-durable", "floor"):
            if key not in S:
                continue
            o = S[key]
            r50 = ratio(t["steady"]["neighbours_ms"]["p50"], o["steady"]["neighbours_ms"]["p50"])
            r99 = ratio(t["steady"]["neighbours_ms"]["p99"], o["steady"]["neighbours_ms"]["p99"])
            rr = ratio((t.get("find_max") or {}).get("max_rate_ok"), (o.get("find_max") or {}).get("max_rate_ok"))
            le = "≤ " if rr is not None and (o.get("find_max") or {}).get("all_steps_passed") else ""
            lines.append(f"| tenwatch / {key} | {fmt_ratio(r50)} | {fmt_ratio(r99)} | {le}{fmt_ratio(rr)} |")
        lines.append("\nLatency ratios above 1× mean tenwatch is slower; a rate ratio below 1× means it sustains less.\n")
    lines.append("Find-max steps (press → nine neighbours, ms; sustained = acked presses per second):\n")
    lines.append("| system | offered /s | sustained /s | p50 | p99 | max | lost | repeated | incomplete fan-out |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, name, _ in SYSTEMS:
        for st in (S.get(key, {}).get("find_max") or {}).get("steps", []):
            nb = st["neighbours_ms"]
            lines.append(f"| {name} | {st['rate_target']:g} | {st['sustained_presses_per_s']:.0f} | {fmt_ms(nb['p50'])} "
                         f"| {fmt_ms(nb['p99'])} | {fmt_ms(nb['max'])} | {st['lost']} | {st.get('retried', 0)} | {st['incomplete']} |")
    lines.append("")
    lines.append("What each does per press: **tenwatch** authenticates every device and checks its topic ACL at "
                 "the edge, stores the press durably (SQLite, `synchronous = FULL`, group commit) before the "
                 "fan-out, deduplicates repeats on (device, seq), fans out to the cluster, the station feed and "
                 "(ring 1/2) volunteers, and records nine `delivered` receipts; its per-unit press limit (a "
                 "flood guard: 5 presses, then one every 2 s) is off here (`--press-refill 0`), since the "
                 "find-max steps ask every unit for up to 4 presses a second. The **peer** does the fan-out and "
                 "the ack only: no durability (a press in flight when Node-RED or Mosquitto restarts is gone "
                 "until the device repeats it, and then it becomes a second alert), no dedup (every repeat is a "
                 "new alert id), no per-device authentication or ACL (`allow_anonymous true`: any client may "
                 "publish any cluster's alert or read every device's acks), no receipts, no station feed, no "
                 "escalation. The **peer, durable** is the same flow with each press appended to a file and "
                 "`fdatasync`'d, synchronously, before its cluster alert and ack go out (on the same disk as "
                 "tenwatch's database): what a Node-RED user adds so that a press survives a crash, and nothing "
                 "more. The **floor** is one QoS 1 publish to nine subscribers through the same rumqttd "
                 "tenwatch embeds, with no auth: no system that routes through a broker can beat it on this "
                 "machine.")
    return "\n".join(lines) + "\n"


# ---------- SVG ----------

def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Svg:
    def __init__(self, w, h):
        self.w, self.h, self.items = w, h, []

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#24292f", rotate=None):
        tr = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}"{tr}>{esc(s)}</text>')

    def line(self, x1, y1, x2, y2, stroke="#d0d7de", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, opacity=1.0):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{fill}" fill-opacity="{opacity}"/>')

    def render(self):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="DejaVu Sans, Arial, sans-serif">\n'
                f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(self.items) + "\n</svg>\n")


def log_axis(svg, x0, y0, w, h, lo, hi, label):
    """Draws a log10 y axis from lo to hi (ms); returns a function ms -> y."""
    llo, lhi = math.log10(lo), math.log10(hi)

    def y(v):
        v = min(max(v, lo), hi)
        return y0 + h - (math.log10(v) - llo) / (lhi - llo) * h

    e = math.floor(llo)
    while e <= math.ceil(lhi):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                yy = y(v)
                svg.line(x0, yy, x0 + w, yy, stroke="#eaeef2" if m != 1 else "#d0d7de")
                if m in (1, 5) or (lhi - llo) < 2.5:
                    svg.text(x0 - 6, yy + 4, f"{v:g}", size=10, anchor="end", fill="#57606a")
        e += 1
    svg.line(x0, y0, x0, y0 + h, stroke="#57606a")
    svg.line(x0, y0 + h, x0 + w, y0 + h, stroke="#57606a")
    svg.text(x0 - 38, y0 + h / 2, label, size=11, anchor="middle", fill="#57606a", rotate=-90)
    return y


def chart(summary):
    S = summary["systems"]
    keys = [k for k, _, _ in SYSTEMS if k in S]
    W, H = 1060, 430
    svg = Svg(W, H)
    first = S[keys[0]]
    m = first["machine"]
    cfg = summary["run"]
    svg.text(20, 26, f"tenwatch, the floor and the peer: {cfg.get('devices'):,} devices on one machine "
             f"({m['cores']} cores shared by servers and simulator), {first['started_at'][:10]}", size=15, weight="bold")
    # Legend
    lx = 20
    for k in keys:
        svg.rect(lx, 40, 12, 12, COLOURS[k])
        svg.text(lx + 17, 50, LEGEND[k], size=11)
        lx += 250

    # Panel 1: steady latency percentiles, log scale.
    x0, y0, w, h = 70, 90, 330, 270
    pct = ["p50", "p90", "p99", "max"]
    vals = [S[k]["steady"]["neighbours_ms"][p] for k in keys for p in pct if S[k]["steady"]["neighbours_ms"][p]]
    lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3))) if vals else 0.1
    hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 100
    y = log_axis(svg, x0, y0, w, h, lo, hi, "ms (log scale)")
    rate = first["steady"]["rate_target"]
    svg.text(x0 + w / 2, y0 - 12, f"press → all nine neighbours at {rate:g} presses/s", size=12, anchor="middle", weight="bold")
    gw = w / len(pct)
    bw = (gw - 14) / len(keys)
    for i, p in enumerate(pct):
        gx = x0 + i * gw + 7
        for j, k in enumerate(keys):
            v = S[k]["steady"]["neighbours_ms"][p]
            if v is None:
                continue
            bx, by = gx + j * bw, y(v)
            svg.rect(bx, by, bw - 2, y0 + h - by, COLOURS[k])
            svg.text(bx + (bw - 2) / 2, by - 3, fmt_ms(v), size=8, anchor="middle", fill="#24292f")
        svg.text(gx + (gw - 14) / 2, y0 + h + 16, p, size=11, anchor="middle")

    # Panel 2: p99 against offered rate in the find-max steps.
    x0, y0, w, h = 480, 90, 330, 270
    steps = {k: (S[k].get("find_max") or {}).get("steps", []) for k in keys}
    rates = sorted({s["rate_target"] for k in keys for s in steps[k]})
    limit = next((S[k]["find_max"]["p99_limit_ms"] for k in keys if S[k].get("find_max")), 50)
    p99s = [s["neighbours_ms"]["p99"] for k in keys for s in steps[k] if s["neighbours_ms"]["p99"]] + [limit]
    lo = 10 ** math.floor(math.log10(max(min(p99s), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(p99s)))
    y = log_axis(svg, x0, y0, w, h, lo, hi, "p99 ms (log scale)")
    svg.text(x0 + w / 2, y0 - 12, "p99 press → nine neighbours by offered rate", size=12, anchor="middle", weight="bold")
    if rates:
        def xr(r):
            i = rates.index(r)
            return x0 + 25 + i * (w - 50) / max(len(rates) - 1, 1)
        for r in rates:
            svg.text(xr(r), y0 + h + 16, f"{r:g}", size=10, anchor="middle")
            svg.line(xr(r), y0 + h, xr(r), y0 + h + 4, stroke="#57606a")
        svg.text(x0 + w / 2, y0 + h + 32, "offered presses/s (steps stop at the first failure)", size=10, anchor="middle", fill="#57606a")
        ly = y(limit)
        svg.line(x0, ly, x0 + w, ly, stroke="#cf222e", dash="5,4")
        svg.text(x0 + w - 4, ly - 4, f"{limit:g} ms limit", size=10, anchor="end", fill="#cf222e")
        for k in keys:
            pts = [(xr(s["rate_target"]), y(s["neighbours_ms"]["p99"])) for s in steps[k] if s["neighbours_ms"]["p99"]]
            if len(pts) > 1:
                svg.add(f'<polyline fill="none" stroke="{COLOURS[k]}" stroke-width="2" points="'
                        + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
            for a, b in pts:
                svg.add(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{COLOURS[k]}"/>')

    # Panel 3: highest passing step and what was sustained.
    x0, y0, w, h = 880, 90, 150, 270
    svg.text(x0 + w / 2 - 10, y0 - 12, "highest step passed", size=12, anchor="middle", weight="bold")
    best = {k: (S[k].get("find_max") or {}).get("max_rate_ok") or 0 for k in keys}
    top = max(list(best.values()) + [1])
    svg.line(x0, y0 + h, x0 + w, y0 + h, stroke="#57606a")
    bw = w / len(keys)
    for j, k in enumerate(keys):
        v = best[k]
        bh = v / top * (h - 20)
        svg.rect(x0 + j * bw + 6, y0 + h - bh, bw - 12, bh, COLOURS[k])
        ge = "≥" if (S[k].get("find_max") or {}).get("all_steps_passed") else ""
        svg.text(x0 + j * bw + bw / 2, y0 + h - bh - 4, f"{ge}{v:g}/s" if v else "none", size=10, anchor="middle")
        svg.text(x0 + j * bw + bw / 2, y0 + h + 16, k.replace("-shipped", " (N)"), size=10, anchor="middle")
    svg.text(x0 + w / 2, y0 + h + 32, f"p99 < {limit:g} ms, nothing lost", size=10, anchor="middle", fill="#57606a")
    svg.text(20, H - 12, f"{m['cores']} cores ({cfg.get('cpu_model', '?')}), Linux {m['kernel']}, loopback; "
             f"tenwatch {cfg.get('git', '?')}, Mosquitto {cfg.get('mosquitto', '?')}, Node-RED {cfg.get('node_red', '?')}. "
             "Data: docs/bench/compare-*.json", size=10, fill="#57606a")
    return svg.render()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="docs/bench")
    ap.add_argument("--env", help="run details (JSON lines) written by scripts/bench-compare.sh")
    a = ap.parse_args()
    summary_path = os.path.join(a.dir, "compare-summary.json")
    if a.env:
        cfg, runs = read_env(a.env)
    elif os.path.exists(summary_path):
        old = load(summary_path)
        cfg = old["run"]
        runs = [r for s in old["systems"].values() for r in s.get("cpu", [])]
    else:
        sys.exit("no --env and no compare-summary.json to reuse")
    summary = summarise(a.dir, cfg, runs)
    if not summary["systems"]:
        sys.exit(f"no compare-*-steady.json in {a.dir}")
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(a.dir, "compare.md"), "w") as f:
        f.write(markdown(summary))
    with open(os.path.join(a.dir, "compare.svg"), "w") as f:
        f.write(chart(summary))


if __name__ == "__main__":
    main()
