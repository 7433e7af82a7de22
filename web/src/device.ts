// A device's record, over the console in a modal dialog: its state now, its presence changes
// (online, offline and why) newest first, and its battery over the period as a small step
// chart with its readings in a table beside it. Reached from the alert panel, the map's
// household markers, the needs-attention list and the history.

import type { BatteryReading, DeviceHistory, PresenceChange } from "./api";
import { ApiError, api } from "./api";
import { fill, h } from "./dom";
import { dateMinute, dateTime } from "./format";
import { label, t } from "./i18n";

const SVG = "http://www.w3.org/2000/svg";
const DAY = 86_400_000;
/** The periods offered, in days; the week is shown first. */
const WINDOWS: [number, () => string][] = [
  [1, () => t.windowDay],
  [7, () => t.windowWeek],
  [30, () => t.windowMonth],
];

export interface DeviceActions {
  /** The household's closed alerts, in the history. */
  householdHistory(household: string, name: string): void;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

/** What a presence change says, in words: the state, and why it went offline or how it came back. */
function presenceWords(p: PresenceChange): [string, string] {
  const state = label(t.presenceStates, p.state);
  const why = p.state === "offline" ? t.offlineReason(p.reason) : t.onlineWhy(p.reason);
  return [state, why];
}

/**
 * The battery as a step line over the period (a level holds until the next reading), the
 * low-battery threshold dashed. The numbers are in the table that follows it; the chart's
 * label says the gist for a screen reader.
 */
function batteryChart(d: DeviceHistory): HTMLElement | SVGElement {
  const points: BatteryReading[] = [...(d.battery_before ? [{ ...d.battery_before, at_ms: d.from_ms }] : []), ...d.battery];
  if (points.length === 0) return h("p", { class: "battery-empty" }, t.batteryEmpty);
  const [w, ht, left, top, bottom] = [600, 150, 34, 8, 22];
  const x = (ms: number) => left + ((ms - d.from_ms) / Math.max(1, d.to_ms - d.from_ms)) * (w - left - 6);
  const y = (level: number) => top + (1 - level / 100) * (ht - top - bottom);
  let path = "";
  points.forEach((p, i) => {
    path += i === 0 ? `M${x(p.at_ms)},${y(p.level)}` : `H${x(p.at_ms)}V${y(p.level)}`;
  });
  path += `H${x(d.to_ms)}`;
  const levels = points.map((p) => p.level);
  const summary = t.batteryChart(levels[0] ?? 0, levels[levels.length - 1] ?? 0, Math.min(...levels));
  const grid = [0, 50, 100].map((v) =>
    svg("g", {}, svg("line", { x1: left, x2: w - 6, y1: y(v), y2: y(v), class: "grid" }), svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" }, `${v}%`)),
  );
  return svg(
    "svg",
    { class: "battery-chart", viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": summary },
    svg("title", {}, summary),
    ...grid,
    svg("line", { x1: left, x2: w - 6, y1: y(d.battery_low), y2: y(d.battery_low), class: "low" }, svg("title", {}, t.batteryLowLine(d.battery_low))),
    svg("path", { d: path, class: "level" }),
    ...d.battery.map((p) => svg("circle", { cx: x(p.at_ms), cy: y(p.level), r: 3, class: p.level < d.battery_low ? "dot low" : "dot" })),
    svg("text", { x: left, y: ht - 5 }, dateMinute(d.from_ms)),
    svg("text", { x: w - 6, y: ht - 5, "text-anchor": "end" }, dateMinute(d.to_ms)),
  );
}

export class DevicePage {
  private dialog: HTMLDialogElement;
  private device: string | null = null;
  private days = 7;
  private generation = 0;

  constructor(
    root: HTMLElement,
    private readonly actions: DeviceActions,
  ) {
    this.dialog = h("dialog", { class: "device-page", "aria-labelledby": "device-title" });
    this.dialog.addEventListener("close", () => {
      this.device = null;
      this.dialog.replaceChildren();
    });
    // A click on the backdrop (outside the dialog's box) closes it too.
    this.dialog.addEventListener("click", (e) => {
      if (e.target === this.dialog) this.dialog.close();
    });
    root.append(this.dialog);
  }

  /** Opens the record of device `id` over the last week. */
  open(id: string): void {
    this.device = id;
    this.days = 7;
    if (!this.dialog.open) this.dialog.showModal();
    void this.load();
  }

  close(): void {
    if (this.dialog.open) this.dialog.close();
  }

  /** The language changed: draw it again in the new words. */
  relabel(): void {
    if (this.device !== null) void this.load();
  }

  private async load(): Promise<void> {
    const id = this.device;
    if (id === null) return;
    const generation = ++this.generation;
    if (this.dialog.childElementCount === 0) this.dialog.replaceChildren(this.head(id, null), h("p", {}, t.loading));
    const to = Date.now();
    try {
      const d = await api.deviceHistory(id, to - this.days * DAY, to);
      if (generation !== this.generation || this.device !== id) return;
      this.draw(d);
    } catch (e) {
      if (generation !== this.generation) return;
      const why = e instanceof ApiError ? (e.status === 0 ? t.network : e.message) : String(e);
      this.dialog.replaceChildren(this.head(id, null), h("p", { class: "device-error", role: "alert" }, t.failed + why));
    }
  }

  private head(id: string, d: DeviceHistory | null): HTMLElement {
    return h(
      "header",
      { class: "device-head" },
      h("h2", { id: "device-title" }, t.deviceTitle(d?.device.label ?? id)),
      h("button", { type: "button", class: "close", "aria-label": t.detailClose, onclick: () => this.close() }, "×"),
    );
  }

  private draw(d: DeviceHistory): void {
    const now = d.device;
    const reason = now.state === "offline" && now.reason ? ` · ${t.offlineReason(now.reason)}` : "";
    const facts = h(
      "dl",
      { class: "facts device-facts" },
      h("dt", {}, t.deviceNow),
      h(
        "dd",
        { class: `device-state state-${now.state}` },
        label(t.deviceStates, now.state) + reason,
        now.since_ms !== null ? h("span", { class: "muted" }, ` (${dateTime(now.since_ms)})`) : null,
      ),
      h("dt", {}, t.colLevel),
      h("dd", { class: now.battery_low ? "device-battery low" : "device-battery" }, now.battery === null ? "—" : t.batteryNow(now.battery)),
      h("dt", {}, t.household),
      h("dd", {}, `${now.label} · ${now.device}`),
    );
    const windows = h(
      "div",
      { class: "device-windows", role: "group" },
      WINDOWS.map(([days, words]) =>
        h(
          "button",
          {
            type: "button",
            "aria-pressed": days === this.days ? "true" : "false",
            onclick: () => {
              this.days = days;
              void this.load();
            },
          },
          words(),
        ),
      ),
      h(
        "button",
        {
          type: "button",
          class: "link device-alerts",
          onclick: () => {
            this.close();
            this.actions.householdHistory(now.household, now.label);
          },
        },
        t.householdHistory,
      ),
    );
    const changes = [...d.presence].reverse();
    const presenceItem = (p: PresenceChange, before = false) => {
      const [state, why] = presenceWords(p);
      return h(
        "li",
        { class: `presence presence-${p.state}${before ? " before" : ""}` },
        h("time", { datetime: p.at }, before ? `${t.presenceBefore} ${dateTime(p.at_ms)}` : dateTime(p.at_ms)),
        " ",
        h("span", { class: "presence-state" }, state),
        why ? h("span", { class: "presence-why" }, ` — ${why}`) : null,
      );
    };
    const presence = h(
      "section",
      { class: "device-presence" },
      h("h3", {}, t.presenceTitle),
      changes.length === 0 ? h("p", { class: "presence-empty" }, t.presenceEmpty) : null,
      h("ol", { class: "presence-list" }, changes.map((p) => presenceItem(p)), d.presence_before ? presenceItem(d.presence_before, true) : null),
    );
    const battery = h(
      "section",
      { class: "device-battery-history" },
      h("h3", {}, t.batteryTitle),
      batteryChart(d),
      d.battery.length > 0
        ? h(
            "details",
            { class: "battery-data" },
            h("summary", {}, t.batteryData),
            h(
              "table",
              {},
              h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t.colAt), h("th", { scope: "col" }, t.colLevel))),
              h("tbody", {}, [...d.battery].reverse().map((b) => h("tr", {}, h("td", {}, h("time", { datetime: b.at }, dateTime(b.at_ms))), h("td", {}, `${b.level}%`)))),
            ),
          )
        : null,
    );
    fill(
      this.dialog,
      this.head(now.device, d),
      facts,
      windows,
      d.truncated ? h("p", { class: "device-truncated", role: "note" }, t.truncated) : null,
      presence,
      battery,
    );
    this.dialog.dataset.device = now.device;
  }
}
