// The station's figures for a period (`GET /api/stats`): how many alerts, by kind and by the
// category they were resolved with (bar charts by Chart.js), cancels, false alarms, escalations,
// and how long the first unit, the first "I'm coming" and the first on scene took. Every table
// downloads as CSV. Periods end now: the last half-month (the 警情公示 bulletin's), week or month.
// Device coverage per cluster (outage minutes, share of unit-minutes online). The 公示 button
// opens the zone's half-monthly bulletin: the gateway's printable page and its PDF.

import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from "chart.js";

import type { Stats, StepTimes, ZoneMap } from "./api";
import { ApiError, api, CATEGORIES, query } from "./api";
import { h } from "./dom";
import { dateMinute, duration, stationToday } from "./format";
import { label, t } from "./i18n";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);

const KINDS = ["help", "medical", "fire", "intrusion"];
const DAY = 86_400_000;
const PERIODS: Record<string, number> = { half: 15 * DAY, week: 7 * DAY, month: 30 * DAY };

/** A table as rows of cells, its first row the header. */
type Table = (string | number)[][];

/** `text` as a CSV file the browser downloads (UTF-8 with a byte-order mark, for spreadsheets). */
function csvLink(name: string, table: Table): HTMLElement {
  const cell = (v: string | number) => {
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const text = "\uFEFF" + table.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
  const href = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  return h("a", { class: "stats-csv", href, download: name }, t.statsCsv);
}

function tableOf(table: Table, cls: string): HTMLElement {
  const [head = [], ...rows] = table;
  return h(
    "table",
    { class: `stats-table ${cls}` },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, String(c))))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, String(c)))))),
  );
}

/** A half-month as the bulletin names it: `2026-12-H1` (1st–15th) or `2026-12-H2`. */
interface Half {
  year: number;
  month: number;
  half: 1 | 2;
}

const code = (x: Half) => `${x.year}-${String(x.month).padStart(2, "0")}-H${x.half}`;

function before(x: Half): Half {
  if (x.half === 2) return { ...x, half: 1 };
  return x.month === 1 ? { year: x.year - 1, month: 12, half: 2 } : { year: x.year, month: x.month - 1, half: 2 };
}

/** This half-month (in the station's time zone) and the five before it, newest first. */
function recentHalves(): Half[] {
  const [y, m, d] = stationToday().split("-").map(Number);
  let x: Half = { year: y ?? 2026, month: m ?? 1, half: (d ?? 1) >= 16 ? 2 : 1 };
  const out: Half[] = [];
  for (let i = 0; i < 6; i++) {
    out.push(x);
    x = before(x);
  }
  return out;
}

/**
 * The bulletin's choices: which half-month (the last ended one first chosen), which zone (for
 * an operator of several), a note to residents; links to the printable page and the PDF.
 */
function bulletinPanel(zones: { code: string; name: string }[]): HTMLElement {
  const halves = recentHalves();
  const half = h(
    "select",
    { name: "half", class: "bulletin-half" },
    halves.map((x, i) =>
      h("option", { value: code(x) }, `${x.year}-${String(x.month).padStart(2, "0")} ${t.bulletinHalves[x.half - 1] ?? ""}${i === 0 ? t.bulletinCurrent : ""}`),
    ),
  ) as HTMLSelectElement;
  half.selectedIndex = 1;
  const zone = h("select", { name: "zone", class: "bulletin-zone" }, zones.map((z) => h("option", { value: z.code }, z.name || z.code))) as HTMLSelectElement;
  const note = h("input", { name: "note", class: "bulletin-note", maxlength: "300", type: "text" }) as HTMLInputElement;
  const open = h("a", { class: "primary bulletin-open", target: "_blank", rel: "noopener" }, t.bulletinOpen) as HTMLAnchorElement;
  const pdf = h("a", { class: "bulletin-pdf", download: "" }, t.bulletinPdf) as HTMLAnchorElement;
  const update = () => {
    const q = query({ zone: zone.value, period: half.value, note: note.value.trim() });
    open.href = `/api/bulletin${q}`;
    pdf.href = `/api/bulletin.pdf${q}`;
  };
  for (const el of [half, zone, note]) el.addEventListener("input", update);
  update();
  return h(
    "section",
    { class: "bulletin-panel", hidden: true },
    h("h3", {}, t.bulletinTitle),
    h("label", {}, h("span", {}, t.bulletinHalf), half),
    h("label", { hidden: zones.length < 2 }, h("span", {}, t.bulletinZone), zone),
    h("label", { class: "bulletin-note-label" }, h("span", {}, t.bulletinNote), note),
    h("div", { class: "bulletin-links" }, open, pdf),
  );
}

export class StatsView {
  private form!: HTMLFormElement;
  private body = h("div", { class: "stats-body", "aria-live": "polite" });
  private charts: Chart[] = [];
  private generation = 0;
  private last: Stats | null = null;

  constructor(
    private readonly el: HTMLElement,
    private readonly zoneMap: () => ZoneMap | null,
  ) {
    this.build();
  }

  /** Fetches the default period the first time. */
  show(): void {
    if (this.generation === 0) void this.load();
  }

  relabel(): void {
    const period = (this.form.elements.namedItem("period") as HTMLSelectElement | null)?.value;
    const cluster = (this.form.elements.namedItem("cluster") as HTMLSelectElement | null)?.value;
    this.build();
    if (period) (this.form.elements.namedItem("period") as HTMLSelectElement).value = period;
    if (cluster) (this.form.elements.namedItem("cluster") as HTMLSelectElement).value = cluster;
    if (this.last) this.draw(this.last);
  }

  private build(): void {
    const clusters = this.zoneMap()?.clusters ?? [];
    this.form = h(
      "form",
      { class: "stats-filters" },
      h(
        "label",
        {},
        h("span", {}, t.statsPeriod),
        h("select", { name: "period", class: "stats-period" }, Object.keys(PERIODS).map((p) => h("option", { value: p }, label(t.statsPeriods, p)))),
      ),
      h(
        "label",
        {},
        h("span", {}, t.historyCluster),
        h(
          "select",
          { name: "cluster", class: "stats-cluster" },
          h("option", { value: "" }, t.statsAllClusters),
          clusters.map((c) => h("option", { value: c.id }, c.name || c.id)),
        ),
      ),
      h("button", { type: "submit", class: "primary stats-show" }, t.statsShow),
    );
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.load();
    });
    const panel = bulletinPanel(this.zoneMap()?.zones ?? []);
    const toggle = h("button", { type: "button", class: "bulletin-button", "aria-expanded": "false" }, t.bulletin);
    toggle.addEventListener("click", () => {
      panel.hidden = !panel.hidden;
      toggle.setAttribute("aria-expanded", String(!panel.hidden));
    });
    this.el.replaceChildren(h("header", { class: "history-head" }, h("h2", {}, t.statsTitle), toggle), panel, this.form, this.body);
  }

  private async load(): Promise<void> {
    const generation = ++this.generation;
    const f = new FormData(this.form);
    const to = Date.now();
    const from = to - (PERIODS[String(f.get("period") ?? "half")] ?? 15 * DAY);
    const cluster = String(f.get("cluster") ?? "") || undefined;
    this.body.replaceChildren(h("p", { class: "history-loading" }, t.loading));
    try {
      const stats = await api.stats({ from, to, cluster });
      if (generation !== this.generation) return;
      this.last = stats;
      this.draw(stats);
    } catch (e) {
      if (generation !== this.generation) return;
      const why = e instanceof ApiError ? (e.status === 0 ? t.network : e.message) : String(e);
      this.body.replaceChildren(h("p", { class: "history-error", role: "alert" }, t.statsFailed + why));
    }
  }

  private draw(s: Stats): void {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    const period = `${dateMinute(s.from_ms)} – ${dateMinute(s.to_ms)}`;
    const day = new Date(s.to_ms).toISOString().slice(0, 10);
    const pct = (p: number | null) => (p === null ? "—" : `${p.toFixed(1)}%`);
    const coverage: Table = [
      [t.historyCluster, t.statsUnits, t.statsOutage, t.statsCoveragePct],
      ...(s.coverage ?? []).map((c) => [c.cluster_name || c.cluster, c.units, c.outage_minutes, pct(c.coverage_percent)]),
    ];
    const coverageBlock = h(
      "section",
      { class: "stats-block coverage" },
      h("h3", {}, t.statsCoverage),
      tableOf(coverage, "coverage"),
      csvLink(`tenwatch-coverage-${day}.csv`, coverage),
    );
    if (s.alerts === 0) {
      this.body.replaceChildren(
        h("p", { class: "stats-period-line" }, period),
        h("p", { class: "history-empty" }, t.statsNone),
        h("div", { class: "stats-blocks" }, coverageBlock),
      );
      return;
    }
    const tile = (name: string, value: number, cls: string) =>
      h("div", { class: `stats-tile ${cls}` }, h("strong", {}, String(value)), h("span", {}, name));
    const byKind: Table = [[t.historyKind, t.statsCount], ...KINDS.map((k) => [label(t.kinds, k), s.by_kind[k] ?? 0])];
    const byCategory: Table = [
      [t.historyCategory, t.statsCount],
      ...CATEGORIES.map((c) => [label(t.categories, c), s.by_category[c] ?? 0]),
    ];
    const time = (ms: number | null) => (ms === null ? "—" : duration(ms));
    const step = (name: string, x: StepTimes) => [name, x.n, time(x.p50_ms), time(x.p90_ms), time(x.max_ms)];
    const times: Table = [
      [t.statsStep, t.statsCount, t.statsP50, t.statsP90, t.statsMax],
      step(t.statsFirstDelivery, s.first_delivery),
      step(t.statsFirstComing, s.first_coming),
      step(t.statsFirstOnScene, s.first_on_scene),
    ];
    const volunteers: Table = [
      [t.statsVolunteer, t.statsCame, t.statsOnScene, t.statsComingP50, t.statsCheckins],
      ...s.volunteers.map((v) => [v.display_name || v.volunteer, v.came, v.on_scene, time(v.coming_p50_ms), v.checkins]),
    ];
    const byHour: Table = [[t.statsHour, t.statsCount], ...s.by_hour.map((n, hour) => [`${hour}:00`, n])];
    const byWeekday: Table = [[t.statsWeekday, t.statsCount], ...s.by_weekday.map((n, d) => [t.statsWeekdays[d] ?? String(d), n])];
    const names = new Map((this.zoneMap()?.clusters ?? []).map((c) => [c.id, c.name || c.id]));
    const byCluster: Table = [[t.historyCluster, t.statsCount], ...s.by_cluster.map((c) => [names.get(c.cluster) ?? c.cluster, c.alerts])];
    const chart = (table: Table, cls: string) => {
      const canvas = h("canvas", { class: `stats-chart ${cls}`, role: "img", "aria-label": String(table[0]?.[0] ?? "") }) as HTMLCanvasElement;
      const rows = table.slice(1);
      this.charts.push(
        new Chart(canvas, {
          type: "bar",
          data: {
            labels: rows.map((r) => String(r[0])),
            datasets: [{ data: rows.map((r) => Number(r[1])), backgroundColor: "#1c7ed6" }],
          },
          options: {
            animation: false,
            responsive: true,
            maintainAspectRatio: false,
            scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
            plugins: { tooltip: { enabled: true } },
          },
        }),
      );
      return h("div", { class: "stats-chart-box" }, canvas);
    };
    /** `folded`: a long table under its chart opens on demand. */
    const block = (title: string, table: Table, cls: string, withChart: boolean, folded = false) =>
      h(
        "section",
        { class: `stats-block ${cls}` },
        h("h3", {}, title),
        withChart ? chart(table, cls) : null,
        folded ? h("details", {}, h("summary", {}, t.statsTable), tableOf(table, cls)) : tableOf(table, cls),
        csvLink(`tenwatch-${cls}-${day}.csv`, table),
      );
    this.body.replaceChildren(
      h("p", { class: "stats-period-line" }, period),
      h(
        "div",
        { class: "stats-tiles" },
        tile(t.statsAlerts, s.alerts, "alerts"),
        tile(t.statsOpen, s.open, "open"),
        tile(t.statsCancelled, s.cancelled, "cancelled"),
        tile(t.statsFalse, s.false_alarms, "false"),
        tile(t.statsRing1, s.escalated_ring1, "ring1"),
        tile(t.statsRing2, s.escalated_ring2, "ring2"),
      ),
      h(
        "p",
        { class: "stats-satisfaction" },
        s.satisfaction && s.satisfaction.rate !== null
          ? t.statsSatisfaction(s.satisfaction.answered, `${Math.round(s.satisfaction.rate * 100)}%`)
          : t.statsSatisfactionNone,
      ),
      h(
        "div",
        { class: "stats-blocks" },
        block(t.statsByKind, byKind, "by-kind", true),
        block(t.statsByCategory, byCategory, "by-category", true),
        block(t.statsTimes, times, "step-times", false),
        block(t.statsByHour, byHour, "by-hour", true, true),
        block(t.statsByWeekday, byWeekday, "by-weekday", true),
        block(t.statsByCluster, byCluster, "by-cluster", false),
        coverageBlock,
        s.volunteers.length > 0
          ? block(t.statsVolunteers, volunteers, "volunteers", false)
          : h("section", { class: "stats-block volunteers" }, h("h3", {}, t.statsVolunteers), h("p", { class: "history-empty" }, t.statsNoVolunteers)),
      ),
    );
  }
}
