// The live map (Leaflet): the neighbourhood's own layer — streets derived from household
// addresses, cluster outlines, households coloured by cluster and styled by device health —
// over optional tiles, plus on-duty volunteers and the open alerts, which flash; and, when
// switched on, the hot spots of the last days (./hotspots.ts).

import L from "leaflet";
import "leaflet/dist/leaflet.css";

import type { AlertSummary, MapDevice, MapHousehold, Volunteer, ZoneMap } from "./api";
import { api, needsAcknowledgement } from "./api";
import { h } from "./dom";
import { HotspotLayer } from "./hotspots";
import { t, label } from "./i18n";

/** Below this battery percentage a device is shown as needing a battery. */
export const LOW_BATTERY = 20;

/**
 * Clusters' colours: blues, greens, purples, browns and greys. Reds, oranges and pinks are
 * the alerts' alone (style.css: --alert #d62828, taken #e8590c, critical #8b0000), so that a
 * cluster is never mistaken for an alert at a glance.
 */
export const CLUSTER_COLOURS = [
  "#1f77b4", "#2ca02c", "#6a4c93", "#17becf", "#7f7f7f",
  "#3b5b92", "#5b8c2a", "#9467bd", "#4f5d2f", "#5c7cfa",
  "#006d77", "#845ef7",
];

export type Health = "online" | "offline" | "never" | "low" | "unknown";

export function householdHealth(devices: MapDevice[]): Health {
  if (devices.length === 0) return "unknown";
  const down = devices.filter((d) => !d.online);
  // Never switched on is not offline: the footer and the attention list say so too.
  if (down.length > 0) return down.every((d) => d.last_seen_ms === null) ? "never" : "offline";
  if (devices.some((d) => d.battery !== null && d.battery < LOW_BATTERY)) return "low";
  return "online";
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Local metres around a point, for buffering outlines (accurate enough over a few km). */
function offset(lat: number, lon: number, dxM: number, dyM: number): [number, number] {
  const dLat = dyM / 111_320;
  const dLon = dxM / (111_320 * Math.cos((lat * Math.PI) / 180));
  return [lat + dLat, lon + dLon];
}

/** Convex hull (monotone chain) of [lat, lon] points, treating lon as x. */
function hull(points: [number, number][]): [number, number][] {
  const pts = [...points].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  if (pts.length < 3) return pts;
  const cross = (o: [number, number], a: [number, number], b: [number, number]) =>
    (a[1] - o[1]) * (b[0] - o[0]) - (a[0] - o[0]) * (b[1] - o[1]);
  const lower: [number, number][] = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, p) <= 0)
      lower.pop();
    lower.push(p);
  }
  const upper: [number, number][] = [];
  for (const p of [...pts].reverse()) {
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, p) <= 0)
      upper.pop();
    upper.push(p);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

/** The outline of a cluster: the hull of its households, each grown by `r` metres. */
function outline(households: MapHousehold[], r = 12): [number, number][] {
  const ring: [number, number][] = [];
  for (const h of households) {
    for (let i = 0; i < 12; i++) {
      const a = (i / 12) * 2 * Math.PI;
      ring.push(offset(h.lat, h.lon, r * Math.cos(a), r * Math.sin(a)));
    }
  }
  return hull(ring);
}

/** "和平里东街12号" → "和平里东街"; labels without a house number are not on a street. */
export function streetOf(labelText: string): string | null {
  const m = /^(.+?)\s*\d+\s*(号|號|No\.?)?.*$/.exec(labelText.trim());
  return m && m[1] ? m[1] : null;
}

/** A street's centre line: households sorted along its long axis, smoothed across sides. */
function streetLine(households: MapHousehold[]): [number, number][] {
  const lats = households.map((h) => h.lat);
  const lons = households.map((h) => h.lon);
  const latSpan = (Math.max(...lats) - Math.min(...lats)) * 111_320;
  const lonSpan =
    (Math.max(...lons) - Math.min(...lons)) * 111_320 * Math.cos(((lats[0] ?? 0) * Math.PI) / 180);
  const alongLon = lonSpan >= latSpan;
  const sorted = [...households].sort((a, b) => (alongLon ? a.lon - b.lon : a.lat - b.lat));
  const window = Math.min(4, sorted.length);
  const line: [number, number][] = [];
  for (let i = 0; i + window <= sorted.length; i++) {
    const part = sorted.slice(i, i + window);
    line.push([
      part.reduce((s, h) => s + h.lat, 0) / part.length,
      part.reduce((s, h) => s + h.lon, 0) / part.length,
    ]);
  }
  // Extend both ends a little past the last houses, as a street does.
  if (line.length >= 2) {
    const [a, b] = [line[0]!, line[1]!];
    const [y, z] = [line[line.length - 2]!, line[line.length - 1]!];
    line.unshift([a[0] - (b[0] - a[0]) * 0.6, a[1] - (b[1] - a[1]) * 0.6 - (alongLon ? 0.0003 : 0)]);
    line.push([z[0] + (z[0] - y[0]) * 0.6, z[1] + (z[1] - y[1]) * 0.6 + (alongLon ? 0.0003 : 0)]);
  }
  return line;
}

/** The base map under the neighbourhood's layer, as the console's settings describe it. */
export interface BaseMap {
  /** Leaflet's tile URL template; "" for none. */
  url: string;
  attribution: string;
  /** The gateway's own tiles (its MBTiles file): credited as the station's if the file is not. */
  local: boolean;
  /** The zoom levels the tiles exist at; deeper, the deepest are shown enlarged. */
  minZoom: number | null;
  maxZoom: number | null;
  /** [[south, west], [north, east]]: where the tiles are, and what to show before any zone is. */
  bounds: [[number, number], [number, number]] | null;
}

export interface MapCallbacks {
  select(alertId: number): void;
  /** A household's marker was clicked: its unit's record. */
  device(deviceId: string): void;
}

export class ConsoleMap {
  readonly map: L.Map;
  private base = L.layerGroup();
  private householdLayer = L.layerGroup();
  private volunteerLayer = L.layerGroup();
  private alertLayer = L.layerGroup();
  private householdMarkers = new Map<string, L.CircleMarker>();
  private devicesByHousehold = new Map<string, MapDevice[]>();
  private householdById = new Map<string, MapHousehold>();
  private clusterColour = new Map<string, string>();
  private leaders = new Set<string>();
  private alertMarkers = new Map<number, L.Marker>();
  private fitted = false;
  /** Every household of the operator's zones: what "fit to zone" shows. */
  private zoneBounds: L.LatLngBounds | null = null;
  /** Where the base map's tiles are: shown while no zone is known. */
  private tileBounds: L.LatLngBounds | null = null;
  private fitButton: HTMLButtonElement;
  private declutterQueued = false;
  /** The volunteers last drawn. */
  private volunteersKey = "";
  /** Where the alerts of the last days were: the 热点 switch under 全区. */
  private hotspots: HotspotLayer;

  constructor(
    el: HTMLElement,
    base: BaseMap,
    private readonly callbacks: MapCallbacks,
  ) {
    this.map = L.map(el, { zoomControl: true, attributionControl: true, zoomSnap: 0.25 });
    this.map.attributionControl.setPrefix(false);
    if (base.url) {
      const attribution = base.attribution || (base.local ? t.mapLocalTiles : "");
      const options: L.TileLayerOptions = { maxZoom: 19, attribution: escapeHtml(attribution) };
      // Past the file's deepest level Leaflet enlarges its deepest tiles instead of asking for
      // ones that are not there; outside its bounds it asks for none.
      if (base.maxZoom !== null) options.maxNativeZoom = base.maxZoom;
      if (base.minZoom !== null) options.minZoom = base.minZoom;
      if (base.bounds) {
        this.tileBounds = L.latLngBounds(base.bounds);
        options.bounds = this.tileBounds;
      }
      L.tileLayer(base.url, options).addTo(this.map);
    } else {
      el.classList.add("no-tiles");
      this.map.attributionControl.addAttribution(escapeHtml(t.mapNoTiles));
    }
    this.base.addTo(this.map);
    this.householdLayer.addTo(this.map);
    this.volunteerLayer.addTo(this.map);
    this.alertLayer.addTo(this.map);
    this.map.setView([39.956, 116.41], 16);
    // No zone yet: the base map's own area, until the households come.
    this.fitZone();
    this.fitButton = h("button", { type: "button", class: "fit-zone" });
    this.fitButton.addEventListener("click", () => this.fitZone());
    this.labelFitButton();
    const bar = h("div", { class: "leaflet-bar fit-zone-bar" }, this.fitButton);
    L.DomEvent.disableClickPropagation(bar);
    const FitControl = L.Control.extend({ onAdd: () => bar });
    new FitControl({ position: "topleft" }).addTo(this.map);
    this.hotspots = new HotspotLayer(this.map, (from) => api.stats({ from }));
    this.map.on("zoomend moveend resize", () => this.queueDeclutter());
    // The zoom level, for whoever looks at the page from outside (the browser tests).
    this.map.on("zoomend", () => (el.dataset.zoom = String(this.map.getZoom())));
  }

  private labelFitButton(): void {
    this.fitButton.textContent = t.fitZone;
    this.fitButton.title = t.fitZoneTitle;
    this.fitButton.setAttribute("aria-label", t.fitZoneTitle);
  }

  /** Shows every household of the zones (the button, and after the panel closes). */
  fitZone(): void {
    const bounds = this.zoneBounds ?? this.tileBounds;
    if (!bounds) return;
    this.map.fitBounds(bounds, { padding: [40, 40], maxZoom: 18, animate: false });
  }

  /**
   * The map's column changed width (the alert panel opened or closed): Leaflet measures it
   * again, then shows the selected alert, or the whole zone when none is. Without this the
   * view kept its old centre, off to one side of the narrower map, and could show nothing.
   */
  resized(focus: { lat: number; lon: number } | null): void {
    this.map.invalidateSize({ animate: false, pan: false });
    if (focus) this.map.setView([focus.lat, focus.lon], Math.max(this.map.getZoom(), 17), { animate: false });
    else this.fitZone();
  }

  private queueDeclutter(): void {
    if (this.declutterQueued) return;
    this.declutterQueued = true;
    requestAnimationFrame(() => {
      this.declutterQueued = false;
      this.declutter();
    });
  }

  /**
   * Labels must not cover each other. Alerts' labels always show: above their pin, or below
   * it when that is where they cover no other alert's. Then volunteers' names, then street
   * names, each hidden while it would overlap a label already shown.
   */
  private declutter(): void {
    const placed: DOMRect[] = [];
    const overlaps = (r: DOMRect) =>
      placed.some((p) => r.left < p.right && p.left < r.right && r.top < p.bottom && p.top < r.bottom);
    for (const marker of this.alertMarkers.values()) {
      const tip = marker.getTooltip();
      if (!tip) continue;
      const place = (direction: "top" | "bottom") => {
        tip.options.direction = direction;
        tip.options.offset = L.point(0, direction === "top" ? -16 : 16);
        tip.update();
        return tip.getElement()?.getBoundingClientRect();
      };
      let r = place("top");
      if (r && overlaps(r)) {
        const below = place("bottom");
        if (below && !overlaps(below)) r = below;
        else r = place("top");
      }
      if (r) placed.push(r);
    }
    const root = this.map.getContainer();
    for (const selector of [".vol-label", ".street-label"]) {
      root.querySelectorAll<HTMLElement>(selector).forEach((el) => {
        el.classList.remove("label-hidden");
        const r = el.getBoundingClientRect();
        // Nothing to show, or a label on its way out (Leaflet fades a removed tooltip).
        if ((r.width === 0 && r.height === 0) || el.style.opacity === "0") return;
        if (overlaps(r)) {
          el.classList.add("label-hidden");
          return;
        }
        placed.push(r);
      });
    }
  }

  /** Draws the neighbourhood: streets, cluster outlines, households. */
  setData(data: ZoneMap): void {
    this.base.clearLayers();
    this.householdLayer.clearLayers();
    this.householdMarkers.clear();
    this.householdById.clear();
    this.devicesByHousehold.clear();
    this.leaders = new Set(data.clusters.flatMap((c) => (c.leader_household ? [c.leader_household] : [])));
    data.clusters.forEach((c, i) =>
      this.clusterColour.set(c.id, CLUSTER_COLOURS[i % CLUSTER_COLOURS.length] ?? "#555"),
    );
    for (const d of data.devices) {
      const list = this.devicesByHousehold.get(d.household) ?? [];
      list.push(d);
      this.devicesByHousehold.set(d.household, list);
    }

    // Streets first, under everything.
    const streets = new Map<string, MapHousehold[]>();
    for (const h of data.households) {
      this.householdById.set(h.id, h);
      const street = streetOf(h.label);
      if (!street) continue;
      const list = streets.get(street) ?? [];
      list.push(h);
      streets.set(street, list);
    }
    for (const [name, households] of streets) {
      if (households.length < 2) continue;
      const line = streetLine(households);
      L.polyline(line, { color: "#c8c0b0", weight: 16, interactive: false, lineCap: "round" }).addTo(this.base);
      L.polyline(line, { color: "#ffffff", weight: 12, interactive: false, lineCap: "round" }).addTo(this.base);
      const mid = line[Math.floor(line.length / 2)];
      if (mid) {
        L.marker(mid, {
          interactive: false,
          icon: L.divIcon({ className: "street-label", html: escapeHtml(name), iconSize: [0, 0] }),
        }).addTo(this.base);
      }
    }

    // Cluster outlines, with the cluster's name and leader.
    const byCluster = new Map<string, MapHousehold[]>();
    for (const h of data.households) {
      const list = byCluster.get(h.cluster) ?? [];
      list.push(h);
      byCluster.set(h.cluster, list);
    }
    for (const c of data.clusters) {
      const households = byCluster.get(c.id) ?? [];
      if (households.length === 0) continue;
      const colour = this.clusterColour.get(c.id) ?? "#555";
      L.polygon(outline(households), {
        color: colour,
        weight: 2,
        dashArray: "6 4",
        fillColor: colour,
        fillOpacity: 0.07,
        className: "cluster-outline",
      })
        .bindTooltip(
          `<b>${escapeHtml(c.name)}</b><br>${escapeHtml(t.leader)}: ${escapeHtml(c.leader_label ?? t.noLeader)}`,
          { sticky: true },
        )
        .addTo(this.base);
    }

    for (const h of data.households) {
      const marker = L.circleMarker([h.lat, h.lon], { radius: this.leaders.has(h.id) ? 8 : 6 });
      marker.bindTooltip(() => this.householdTooltip(h));
      marker.on("click", () => {
        const unit = this.devicesByHousehold.get(h.id)?.[0];
        if (unit) this.callbacks.device(unit.id);
      });
      this.householdMarkers.set(h.id, marker);
      marker.addTo(this.householdLayer);
      this.styleHousehold(h.id);
    }

    this.zoneBounds =
      data.households.length > 0
        ? L.latLngBounds(data.households.map((h) => [h.lat, h.lon] as [number, number]))
        : null;
    if (!this.fitted && this.zoneBounds) {
      this.fitted = true;
      this.fitZone();
    }
    this.queueDeclutter();
  }

  private householdTooltip(h: MapHousehold): string {
    const devices = this.devicesByHousehold.get(h.id) ?? [];
    const health = householdHealth(devices);
    const state =
      health === "online"
        ? t.legendOnline
        : health === "low"
          ? t.legendLowBattery
          : health === "never"
            ? t.legendNever
            : t.legendOffline;
    const battery = devices.map((d) => d.battery).find((b) => b !== null);
    return (
      `<b>${escapeHtml(h.label)}</b>${this.leaders.has(h.id) ? ` · ${escapeHtml(t.legendLeader)}` : ""}` +
      `<br>${escapeHtml(state)}${battery !== undefined && battery !== null ? ` · ${battery}%` : ""}` +
      (devices.length > 0 ? `<br><small>${escapeHtml(t.mapDeviceHint)}</small>` : "")
    );
  }

  private styleHousehold(id: string): void {
    const marker = this.householdMarkers.get(id);
    const h = this.householdById.get(id);
    if (!marker || !h) return;
    const colour = this.clusterColour.get(h.cluster) ?? "#555";
    const health = householdHealth(this.devicesByHousehold.get(id) ?? []);
    const leader = this.leaders.has(id);
    marker.setStyle({
      color: health === "low" ? "#f59f00" : health === "online" ? "#ffffff" : health === "never" ? "#adb5bd" : colour,
      weight: health === "low" ? 4 : leader ? 3 : 2,
      dashArray: health === "online" || health === "low" ? undefined : "2 3",
      fillColor: health === "online" || health === "low" ? colour : "#ffffff",
      fillOpacity: 1,
      opacity: 1,
    } as L.PathOptions);
    const el = marker.getElement();
    if (el) {
      el.setAttribute("class", `leaflet-interactive hh hh-${health}${leader ? " hh-leader" : ""}`);
      el.setAttribute("data-household", id);
    } else {
      marker.options.className = `hh hh-${health}${leader ? " hh-leader" : ""}`;
    }
  }

  /** A device's new state from the feed. */
  updateDevice(id: string, patch: Partial<MapDevice>): void {
    for (const [household, devices] of this.devicesByHousehold) {
      const d = devices.find((x) => x.id === id);
      if (d) {
        Object.assign(d, patch);
        this.styleHousehold(household);
        return;
      }
    }
  }

  /** Households drawn, for the status line. */
  households(): number {
    return this.householdById.size;
  }

  /** Enabled devices the edge has never seen (installed, not yet switched on). */
  neverConnected(): number {
    let n = 0;
    for (const devices of this.devicesByHousehold.values()) {
      n += devices.filter((d) => d.enabled && !d.online && d.last_seen_ms === null).length;
    }
    return n;
  }

  setVolunteers(volunteers: Volunteer[]): void {
    // Polled every 15 s: redrawn only when someone moved, came or went (no flicker).
    const key = JSON.stringify(volunteers.map(({ volunteer: v }) => [v.name, v.display_name, v.lat, v.lon]));
    if (key === this.volunteersKey) return;
    this.volunteersKey = key;
    this.volunteerLayer.clearLayers();
    for (const { volunteer: v } of volunteers) {
      if (v.lat === null || v.lon === null) continue;
      L.marker([v.lat, v.lon], {
        icon: L.divIcon({
          className: "vol-pin",
          html: `<span aria-hidden="true">&#9650;</span>`,
          iconSize: [22, 22],
        }),
        keyboard: false,
        title: `${v.display_name || v.name} · ${t.legendVolunteer}`,
      })
        .bindTooltip(escapeHtml(v.display_name || v.name), {
          permanent: true,
          direction: "right",
          offset: [10, 0],
          className: "vol-label",
        })
        .addTo(this.volunteerLayer);
    }
    this.queueDeclutter();
  }

  /** The open alerts: a flashing pin on each household; the selected one is ringed. */
  setAlerts(alerts: AlertSummary[], selected: number | null): void {
    const keep = new Set(alerts.map((a) => a.id));
    for (const [id, marker] of this.alertMarkers) {
      if (!keep.has(id)) {
        marker.remove();
        this.alertMarkers.delete(id);
      }
    }
    for (const a of alerts) {
      const cls = [
        "alert-pin",
        needsAcknowledgement(a) ? "unacked" : "taken",
        a.critical ? "critical" : "",
        a.id === selected ? "selected" : "",
      ].join(" ");
      const html =
        `<div class="${cls}" data-alert="${a.id}" data-household="${escapeHtml(a.household)}">` +
        `<span class="pulse"></span><span class="dot"></span></div>`;
      const tip = `${escapeHtml(a.label)} · ${escapeHtml(label(t.kinds, a.kind))} · ${escapeHtml(label(t.states, a.state))}`;
      let marker = this.alertMarkers.get(a.id);
      if (!marker) {
        marker = L.marker([a.lat, a.lon], {
          zIndexOffset: 1000,
          title: a.label,
          icon: L.divIcon({ className: "alert-icon", html, iconSize: [36, 36] }),
        });
        marker.on("click", () => this.callbacks.select(a.id));
        marker.bindTooltip(tip, { permanent: true, direction: "top", offset: [0, -16], className: "alert-tip" });
        marker.addTo(this.alertLayer);
        this.alertMarkers.set(a.id, marker);
      } else {
        const el = marker.getElement()?.firstElementChild;
        if (el && el.getAttribute("class") !== cls) el.setAttribute("class", cls);
        marker.setTooltipContent(tip);
      }
    }
    this.queueDeclutter();
  }

  focus(lat: number, lon: number): void {
    this.map.panTo([lat, lon], { animate: true });
  }

  /** After the language changes: tooltips are built from the current strings. */
  relabel(data: ZoneMap | null, alerts: AlertSummary[], selected: number | null): void {
    this.labelFitButton();
    this.hotspots.relabel();
    this.volunteersKey = "";
    if (data) this.setData(data);
    for (const m of this.alertMarkers.values()) m.remove();
    this.alertMarkers.clear();
    this.setAlerts(alerts, selected);
  }
}
