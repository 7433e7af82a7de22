// The map's hot-spot layer (热点): where the operator's zones had alerts in the last 7, 30 or
// 90 days, so a station can put patrols on the streets where incidents cluster. The places
// come from `GET /api/stats` (`places`: ~100 m grid cells by their centre, never a household);
// each cell is drawn as the square it is, shaded deeper the more alerts it had, its count at
// its corner; one legend line under the switch says the period and the total.

import L from "leaflet";

import type { Stats } from "./api";
import { ApiError } from "./api";
import { h } from "./dom";
import { t } from "./i18n";

const DAY = 86_400_000;
export const HOTSPOT_DAYS = [7, 30, 90] as const;

/** Asks the gateway for the figures from `fromMs` to now. */
export type StatsSince = (fromMs: number) => Promise<Stats>;

export class HotspotLayer {
  private readonly layer = L.layerGroup();
  private readonly box: HTMLElement;
  private readonly button: HTMLButtonElement;
  private readonly period: HTMLSelectElement;
  private readonly legend: HTMLElement;
  private on = false;
  private days = 30;
  /** The places last drawn, to draw again in another language. */
  private last: Stats | null = null;
  /** Only the newest request draws (a slow answer to an older period is dropped). */
  private generation = 0;

  constructor(
    private readonly map: L.Map,
    private readonly load: StatsSince,
  ) {
    this.button = h("button", { type: "button", class: "hotspot-toggle", "aria-pressed": "false" });
    this.button.addEventListener("click", () => this.toggle());
    this.period = h("select", { class: "hotspot-period", hidden: true });
    this.period.addEventListener("change", () => {
      this.days = Number(this.period.value);
      void this.refresh();
    });
    this.legend = h("div", { class: "hotspot-legend", "aria-live": "polite", hidden: true });
    this.box = h("div", { class: "leaflet-bar hotspot-bar" }, this.button, this.period, this.legend);
    L.DomEvent.disableClickPropagation(this.box);
    L.DomEvent.disableScrollPropagation(this.box);
    const Control = L.Control.extend({ onAdd: () => this.box });
    new Control({ position: "topleft" }).addTo(map);
    this.relabel();
  }

  /** The words in the language just chosen; the places drawn again with them. */
  relabel(): void {
    this.button.textContent = t.hotspots;
    this.button.title = t.hotspotsTitle;
    this.period.title = t.hotspotsPeriod;
    this.period.setAttribute("aria-label", t.hotspotsPeriod);
    this.period.replaceChildren(
      ...HOTSPOT_DAYS.map((d) => h("option", { value: String(d) }, t.hotspotsPeriods[d] ?? String(d))),
    );
    this.period.value = String(this.days);
    if (this.on && this.last) this.draw(this.last);
  }

  private toggle(): void {
    this.on = !this.on;
    this.button.setAttribute("aria-pressed", String(this.on));
    this.box.classList.toggle("on", this.on);
    this.period.hidden = !this.on;
    this.legend.hidden = !this.on;
    if (this.on) {
      this.layer.addTo(this.map);
      void this.refresh();
    } else {
      this.generation++;
      this.layer.remove();
      this.layer.clearLayers();
    }
  }

  /** Fetches the chosen period's places (every time the layer is turned on: alerts go on). */
  private async refresh(): Promise<void> {
    const generation = ++this.generation;
    this.legend.textContent = t.hotspotsLoading;
    this.legend.classList.remove("error");
    try {
      const stats = await this.load(Date.now() - this.days * DAY);
      if (generation !== this.generation) return;
      this.last = stats;
      this.draw(stats);
    } catch (e) {
      if (generation !== this.generation) return;
      const why = e instanceof ApiError ? (e.status === 0 ? t.network : e.message) : String(e);
      this.layer.clearLayers();
      this.legend.textContent = t.hotspotsFailed + why;
      this.legend.classList.add("error");
    }
  }

  private draw(stats: Stats): void {
    this.layer.clearLayers();
    const total = stats.places.reduce((n, p) => n + p.alerts, 0);
    const most = Math.max(1, ...stats.places.map((p) => p.alerts));
    const half = stats.place_cell_deg / 2;
    for (const p of stats.places) {
      const tip = t.hotspotsPlace(p.alerts);
      // The cell itself, the area the count stands for (a point would sit between houses):
      // the more alerts, the deeper its shade.
      const cell = L.rectangle(
        [
          [p.lat - half, p.lon - half],
          [p.lat + half, p.lon + half],
        ],
        {
          className: "hotspot-cell",
          color: "#c2410c",
          weight: 1,
          fillColor: "#e8590c",
          fillOpacity: 0.12 + 0.43 * (p.alerts / most),
          interactive: false,
        },
      ).addTo(this.layer);
      const el = cell.getElement();
      el?.setAttribute("data-lat", String(p.lat));
      el?.setAttribute("data-lon", String(p.lon));
      el?.setAttribute("data-alerts", String(p.alerts));
      // Its count, at a corner so that it covers no household or street of the cell.
      const mark = h(
        "div",
        {
          class: "hotspot",
          "data-alerts": String(p.alerts),
          "data-lat": String(p.lat),
          "data-lon": String(p.lon),
          title: tip,
        },
        h("span", {}, String(p.alerts)),
      );
      L.marker([p.lat + half, p.lon - half], {
        interactive: false,
        keyboard: false,
        // Under the open alerts' pins (zIndexOffset 1000), over households and streets.
        zIndexOffset: 500,
        icon: L.divIcon({ className: "hotspot-icon", html: mark, iconSize: [26, 26] }),
      }).addTo(this.layer);
    }
    this.legend.replaceChildren(
      h("span", { class: "swatch sw-hotspot", "aria-hidden": "true" }),
      h("span", { class: "hotspot-count" }, t.hotspotsLegend(this.days, total)),
    );
  }
}
