// The console page: header (zones, clock, feed state, sound, history, language, sign-out), the
// banner shown while the live feed is down, the map and the alert queue (or, in their place,
// the alert history), the alert panel, and a device's record over it all. It keeps the open
// alerts, applies feed events to them and redraws what changed.

import type {
  Account,
  AlertDetail,
  AlertSummary,
  ConsoleConfig,
  MapDevice,
  Problem,
  Volunteer,
  ZoneMap,
} from "./api";
import { api, ApiError, isOpen, needsAcknowledgement } from "./api";
import { Alarm } from "./alarm";
import { DetailPanel } from "./detail";
import { DevicePage } from "./device";
import { h } from "./dom";
import { Feed, type FeedStatus } from "./feed";
import { clock, stationTimeZone } from "./format";
import { HistoryView } from "./history";
import * as i18n from "./i18n";
import { t } from "./i18n";
import { langButton } from "./lang";
import { ConsoleMap } from "./map";
import { renderQueue, setStaleAfter, tick } from "./queue";

/** Closed alerts kept in the queue's "just closed" list. */
const KEEP_CLOSED = 8;
/** How often the open alert's panel is refetched, in seconds. */
const DETAIL_REFRESH_S = 5;
/** Details (recipients) fetched for queue entries at most, newest first. */
const MAX_DETAILS = 40;

export class ConsolePage {
  private open = new Map<number, AlertSummary>();
  private closed: AlertSummary[] = [];
  private details = new Map<number, AlertDetail>();
  private detailLoads = new Map<number, number>();
  private selected: number | null = null;
  private volunteers: Volunteer[] = [];
  private problems: Problem[] = [];
  private problemsReload: number | null = null;
  private mapData: ZoneMap | null = null;
  private feedStatus: FeedStatus = { kind: "connecting" };
  private redrawQueued = false;
  private timers: number[] = [];
  private detailShown = false;
  private seconds = 0;

  private readonly alarm = new Alarm(() => this.queueRedraw());
  private readonly feed: Feed;
  private map!: ConsoleMap;
  private detail!: DetailPanel;
  private history!: HistoryView;
  private devicePage!: DevicePage;
  private els!: {
    header: HTMLElement;
    banner: HTMLElement;
    queue: HTMLElement;
    detail: HTMLElement;
    history: HTMLElement;
    mapWrap: HTMLElement;
    mapEl: HTMLElement;
    status: HTMLElement;
  };

  constructor(
    private readonly root: HTMLElement,
    private account: Account,
    private readonly config: ConsoleConfig,
    private readonly tzWarning: string | null,
    private readonly signedOut: () => void,
  ) {
    this.feed = new Feed({
      message: (m) => this.onFeed(m),
      status: (s) => {
        this.feedStatus = s;
        this.queueRedraw();
      },
      reconnected: () => void this.catchUp(),
      stillSignedIn: async () => {
        try {
          await api.session();
          return true;
        } catch (e) {
          // Down is not signed out: keep retrying until the server answers.
          return !(e instanceof ApiError && e.status === 401);
        }
      },
    });
  }

  async start(): Promise<void> {
    this.layout();
    this.feed.start();
    await Promise.all([this.loadMap(), this.loadAlerts(), this.loadVolunteers(), this.loadProblems()]);
    this.timers.push(window.setInterval(() => this.everySecond(), 1000));
    // Volunteers' positions and device batteries change without feed events: poll gently.
    this.timers.push(window.setInterval(() => void this.loadVolunteers(), 15_000));
    this.timers.push(window.setInterval(() => void this.loadMap(), 60_000));
    this.timers.push(window.setInterval(() => void this.loadProblems(), 30_000));
  }

  /** The supervision's "needs attention" list; a failure keeps the last one shown. */
  private async loadProblems(): Promise<void> {
    try {
      this.problems = (await api.problems()).problems;
      this.queueRedraw();
    } catch {
      // Shown again on the next poll or device event.
    }
  }

  /** Device events come in bursts (a street loses power): reload the list once after them. */
  private problemsChanged(): void {
    if (this.problemsReload !== null) return;
    this.problemsReload = window.setTimeout(() => {
      this.problemsReload = null;
      void this.loadProblems();
    }, 500);
  }

  stop(): void {
    this.feed.stop();
    this.alarm.ring(false);
    this.timers.forEach((id) => window.clearInterval(id));
    this.timers = [];
    if (this.problemsReload !== null) window.clearTimeout(this.problemsReload);
    this.problemsReload = null;
  }

  private layout(): void {
    const mapEl = h("div", { id: "map", class: "map", role: "region", "aria-label": "map" });
    const status = h("div", { class: "map-status" });
    this.els = {
      header: h("header", { class: "top" }),
      banner: h("div", { class: "feed-banner", role: "alert", hidden: true }),
      queue: h("aside", { class: "queue", "aria-label": t.queueTitle }),
      detail: h("section", { class: "detail", hidden: true, "aria-label": "alert" }),
      history: h("section", { class: "history", hidden: true, "aria-label": t.historyTitle }),
      mapWrap: h("div", { class: "map-wrap" }, mapEl, status, this.legend()),
      mapEl,
      status,
    };
    this.root.replaceChildren(
      h(
        "div",
        { class: "console" },
        this.els.header,
        this.els.banner,
        h(
          "main",
          { class: "body" },
          this.els.history,
          this.els.mapWrap,
          this.els.queue,
          this.els.detail,
        ),
      ),
    );
    const c = this.config;
    const base = {
      url: c.tile_url,
      attribution: c.tile_attribution,
      local: c.tile_source === "local",
      minZoom: c.tile_min_zoom ?? null,
      maxZoom: c.tile_max_zoom ?? null,
      bounds: c.tile_bounds ?? null,
    };
    this.map = new ConsoleMap(mapEl, base, {
      select: (id) => this.select(id),
      device: (id) => this.devicePage.open(id),
    });
    this.devicePage = new DevicePage(this.root, {
      householdHistory: (household, name) => {
        this.history.showHousehold(household, name);
        this.showHistory(true);
      },
    });
    this.history = new HistoryView(
      this.els.history,
      { open: (id) => this.select(id), device: (id) => this.devicePage.open(id) },
      () => this.mapData,
      () => this.account.zones,
    );
    this.detail = new DetailPanel(this.els.detail, {
      close: () => this.select(null),
      acknowledge: async (id) => this.applied(await api.acknowledge(id)),
      onScene: async (id) => this.applied(await api.respond(id, "on_scene")),
      publish: async (id) => this.applied(await api.publish(id)),
      dispatch: async (id, v, note) => this.applied(await api.dispatch(id, v, note)),
      note: async (id, text) => this.applied(await api.note(id, text)),
      resolve: async (id, c, note) => this.applied(await api.resolve(id, c, note)),
      device: (id) => this.devicePage.open(id),
    }, this.account);
    this.redraw();
  }

  private legend(): HTMLElement {
    const item = (cls: string, text: string) =>
      h("li", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), text);
    return h(
      "details",
      { class: "legend", open: true },
      h("summary", {}, t.mapLegend),
      h(
        "ul",
        {},
        item("sw-online", t.legendOnline),
        item("sw-offline", t.legendOffline),
        item("sw-never", t.legendNever),
        item("sw-low", t.legendLowBattery),
        item("sw-leader", t.legendLeader),
        item("sw-volunteer", t.legendVolunteer),
        item("sw-alert", t.legendAlert),
      ),
    );
  }

  // --- data ---

  private async loadMap(): Promise<void> {
    try {
      this.mapData = await api.map();
      this.map.setData(this.mapData);
      this.queueRedraw();
    } catch (e) {
      this.report(e);
    }
  }

  private async loadAlerts(): Promise<void> {
    try {
      const { alerts, stale_after_ms } = await api.alerts();
      setStaleAfter(stale_after_ms);
      this.replaceOpen(alerts);
    } catch (e) {
      this.report(e);
    }
  }

  private async loadVolunteers(): Promise<void> {
    try {
      this.volunteers = (await api.volunteers()).volunteers;
      this.map.setVolunteers(this.volunteers);
      this.queueRedraw();
    } catch (e) {
      this.report(e);
    }
  }

  /** After the feed comes back: the snapshot carried the open alerts; refetch the rest. */
  private async catchUp(): Promise<void> {
    await Promise.all([this.loadAlerts(), this.loadMap(), this.loadVolunteers()]);
    if (this.selected !== null) void this.loadDetail(this.selected);
  }

  private report(e: unknown): void {
    if (e instanceof ApiError && e.status === 403) {
      // A volunteer's session: the console is not for them.
      this.stop();
      this.signedOut();
    }
    // Network errors show as the feed banner; the next poll or reconnect repairs the state.
  }

  /** The authoritative list of open alerts (a snapshot or GET /api/alerts). */
  private replaceOpen(alerts: AlertSummary[]): void {
    const seen = new Set<number>();
    for (const a of alerts) {
      seen.add(a.id);
      this.upsert(a);
    }
    for (const [id, a] of this.open) {
      // Closed while we were not listening: move it to "just closed" and fetch its ending.
      if (!seen.has(id)) {
        this.open.delete(id);
        this.remember(a);
        void this.loadDetail(id, true);
      }
    }
    this.queueRedraw();
  }

  private upsert(a: AlertSummary): void {
    const known = this.open.get(a.id);
    if (known && known.updated_at_ms > a.updated_at_ms) return;
    if (isOpen(a.state)) {
      this.open.set(a.id, a);
      const d = this.details.get(a.id);
      if (!d || d.updated_at_ms < a.updated_at_ms) this.scheduleDetail(a.id);
    } else {
      this.open.delete(a.id);
      this.remember(a);
      if (this.selected === a.id) this.scheduleDetail(a.id);
    }
  }

  private remember(a: AlertSummary): void {
    this.closed = [a, ...this.closed.filter((c) => c.id !== a.id)].slice(0, KEEP_CLOSED);
  }

  private applied(a: AlertSummary): void {
    this.upsert(a);
    this.scheduleDetail(a.id);
    this.queueRedraw();
  }

  /** Fetches an alert's detail soon; bursts of events for one alert make one request. */
  private scheduleDetail(id: number): void {
    if (this.detailLoads.has(id)) return;
    const timer = window.setTimeout(() => {
      this.detailLoads.delete(id);
      void this.loadDetail(id);
    }, 150);
    this.detailLoads.set(id, timer);
  }

  private async loadDetail(id: number, closedOnly = false): Promise<void> {
    const wanted = id === this.selected || this.open.has(id) || closedOnly;
    if (!wanted) return;
    if (this.details.size > MAX_DETAILS) {
      for (const key of this.details.keys()) {
        if (!this.open.has(key) && key !== this.selected) this.details.delete(key);
      }
    }
    try {
      const d = await api.alert(id);
      this.details.set(id, d);
      if (closedOnly || !isOpen(d.state)) {
        if (!isOpen(d.state)) {
          this.open.delete(id);
          this.remember(d);
        }
      } else if ((this.open.get(id)?.updated_at_ms ?? 0) <= d.updated_at_ms) {
        this.open.set(id, d);
      }
      this.queueRedraw();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        this.open.delete(id);
        this.details.delete(id);
        if (this.selected === id) this.selected = null;
        this.queueRedraw();
      }
    }
  }

  // --- feed ---

  private onFeed(msg: unknown): void {
    if (!msg || typeof msg !== "object" || !("type" in msg)) return;
    const m = msg as Record<string, unknown>;
    switch (m.type) {
      case "snapshot":
        if (Array.isArray(m.alerts)) this.replaceOpen(m.alerts as AlertSummary[]);
        break;
      case "resync":
        void this.loadAlerts();
        break;
      case "alert":
        if (m.alert && typeof m.alert === "object") {
          this.upsert(m.alert as AlertSummary);
          this.queueRedraw();
        }
        break;
      case "device":
      case "device_health":
        if (typeof m.device === "string") {
          const patch: Partial<MapDevice> = {};
          if (typeof m.online === "boolean") patch.online = m.online;
          // Supervision's reports: an offline episode began or ended.
          if (m.event === "offline") patch.online = false;
          if (m.event === "recovered") patch.online = true;
          // Come or gone, it has been seen: no longer "never connected".
          if (patch.online !== undefined) patch.last_seen_ms = typeof m.at_ms === "number" ? m.at_ms : Date.now();
          if (typeof m.battery === "number") patch.battery = m.battery;
          if (typeof m.reason === "string" || m.reason === null) patch.disconnect_reason = m.reason as string | null;
          this.map.updateDevice(m.device, patch);
          this.queueRedraw();
        }
        if (m.type === "device_health") this.problemsChanged();
        break;
      case "coverage":
        this.problemsChanged();
        break;
      case "push":
        // A volunteer's push was accepted or failed: the open alert's recipient list shows it.
        if (m.alert !== undefined && this.details.has(m.alert as AlertSummary["id"])) {
          this.scheduleDetail(m.alert as AlertSummary["id"]);
        }
        break;
      default:
        break;
    }
  }

  // --- view ---

  private select(id: number | null): void {
    this.selected = id;
    if (id !== null) {
      const a = this.open.get(id) ?? this.closed.find((c) => c.id === id);
      // With the panel open the map keeps its width: pan there now. Otherwise the panel's
      // opening narrows the map, which is framed anew after it (redraw).
      if (a && this.detailShown) this.map.focus(a.lat, a.lon);
      void this.loadDetail(id);
      void this.loadVolunteers();
    }
    this.redraw();
  }

  private queueRedraw(): void {
    if (this.redrawQueued) return;
    this.redrawQueued = true;
    requestAnimationFrame(() => {
      this.redrawQueued = false;
      this.redraw();
    });
    // Hidden tabs get no animation frames: still keep the alarm and title current.
    if (document.hidden) window.setTimeout(() => this.redrawQueued && this.redraw(), 250);
  }

  private redraw(): void {
    this.redrawQueued = false;
    const open = [...this.open.values()];
    const waiting = open.filter(needsAcknowledgement).length;
    this.alarm.ring(waiting > 0);
    document.title = waiting > 0 ? `(${waiting}) ${t.appTitle}` : t.appTitle;
    document.body.dataset.alarm = waiting > 0 ? (this.alarm.state === "on" ? "ringing" : "silent") : "idle";
    document.body.dataset.sound = this.alarm.state;
    document.body.dataset.feed = this.feedStatus.kind;

    this.header(waiting);
    this.banner();
    renderQueue(
      this.els.queue,
      open,
      this.closed,
      this.details,
      this.selected,
      (id) => this.select(id),
      this.problems,
      (id) => this.devicePage.open(id),
    );
    this.map.setAlerts(open, this.selected);
    this.status();

    const selected =
      this.selected === null
        ? undefined
        : (this.open.get(this.selected) ?? this.closed.find((c) => c.id === this.selected) ?? this.details.get(this.selected));
    if (selected) {
      this.detail.show(selected, this.details.get(selected.id), this.volunteers);
    } else {
      this.detail.hide();
    }
    if (Boolean(selected) !== this.detailShown) {
      // The map's column changed width: Leaflet measures it again and frames the alert, or
      // the whole zone once the panel is closed.
      this.detailShown = Boolean(selected);
      const focus = selected ? { lat: selected.lat, lon: selected.lon } : null;
      requestAnimationFrame(() => this.map.resized(focus));
    }
  }

  /**
   * The line under the map. Its counts are the "needs attention" list's own, so the two
   * always agree: a device is offline when supervision says so (an open offline episode),
   * not merely without a session (never connected yet, or given its grace after a gateway
   * restart). Devices that never connected are counted apart: they are not in the list.
   */
  private status(): void {
    const count = (kind: string) => this.problems.filter((p) => p.kind === kind).length;
    const offline = count("offline");
    const low = count("low_battery");
    const never = this.map.neverConnected();
    const el = this.els.status;
    el.dataset.offline = String(offline);
    el.dataset.low = String(low);
    el.dataset.never = String(never);
    el.textContent = [
      `${this.map.households()} ${t.households}`,
      offline ? t.devicesOffline(offline) : "",
      low ? t.lowBattery(low) : "",
      never ? t.neverConnected(never) : "",
    ]
      .filter(Boolean)
      .join(" · ");
  }

  private header(waiting: number): void {
    const zones = this.mapData?.zones.map((z) => z.name || z.code).join("、") ?? this.account.zones.join(", ");
    const sound = this.alarm.state;
    const soundButton = h(
      "button",
      {
        type: "button",
        class: `sound sound-${sound}${sound !== "on" && waiting > 0 ? " warn" : ""}`,
        "aria-pressed": sound === "on" ? "true" : "false",
        onclick: () => (sound === "on" ? this.alarm.mute() : void this.alarm.arm()),
      },
      sound === "on" ? t.soundOn : sound === "muted" ? t.soundMuted : t.soundOff,
    );
    const feed = this.feedStatus.kind;
    this.els.header.replaceChildren(
      h("h1", {}, t.appTitle),
      h("span", { class: "zones", title: this.account.zones.join(", ") }, zones),
      h("span", { class: "spacer" }),
      h("span", { class: "clock", "data-clock": "1", title: stationTimeZone() }, `${clock(Date.now())} `, h("small", {}, stationTimeZone())),
      h(
        "span",
        { class: `feed-pill feed-${feed}`, role: "status" },
        feed === "live" ? t.feedLive : feed === "connecting" ? t.feedConnecting : t.feedDownNow,
      ),
      soundButton,
      h(
        "button",
        {
          type: "button",
          class: "history-button",
          "aria-pressed": this.history.shown ? "true" : "false",
          onclick: () => this.showHistory(!this.history.shown),
        },
        this.history.shown ? t.historyBack : t.historyButton,
      ),
      langButton(i18n, () => this.relabel(), "lang-switch"),
      h("span", { class: "who" }, this.account.display_name || this.account.name),
      h("button", { type: "button", class: "sign-out", onclick: () => void this.signOut() }, t.signOut),
    );
    if (this.tzWarning) this.els.header.append(h("span", { class: "tz-warn", role: "note" }, this.tzWarning));
  }

  private banner(): void {
    const s = this.feedStatus;
    const b = this.els.banner;
    const waiting = [...this.open.values()].some(needsAcknowledgement);
    if (s.kind === "down") {
      b.hidden = false;
      b.className = "feed-banner down";
      b.textContent = t.feedDown(s.attempt, Math.max(1, Math.round(s.retryInMs / 1000)));
    } else if (waiting && this.alarm.state !== "on") {
      b.hidden = false;
      b.className = "feed-banner sound-warn";
      b.replaceChildren(
        h("span", {}, t.soundOffWarn, " "),
        h("button", { type: "button", onclick: () => void this.alarm.arm() }, t.soundOff),
      );
    } else {
      b.hidden = true;
      b.className = "feed-banner";
      b.textContent = "";
    }
  }

  private everySecond(): void {
    tick(this.root);
    // Receipts after the first come without a feed event: the open alert's panel refetches
    // now and then, so that its count of units that sounded catches up.
    this.seconds++;
    const shown = this.selected === null ? undefined : this.open.get(this.selected);
    if (shown && this.seconds % DETAIL_REFRESH_S === 0) this.scheduleDetail(shown.id);
    const c = this.root.querySelector<HTMLElement>("[data-clock]");
    if (c?.firstChild) c.firstChild.textContent = `${clock(Date.now())} `;
  }

  /** The history in the place of the map and the queue, or the map and the queue again. */
  private showHistory(on: boolean): void {
    if (on) this.history.show();
    else this.history.hide();
    this.els.mapWrap.hidden = on;
    this.els.queue.hidden = on;
    this.redraw();
    // The map's box was hidden: Leaflet measures it again.
    if (!on) requestAnimationFrame(() => this.map.resized(null));
  }

  /** Shows everything anew in the language just switched to. */
  private relabel(): void {
    this.detail.reset();
    this.history.relabel();
    this.devicePage.relabel();
    const legend = this.root.querySelector(".legend");
    legend?.replaceWith(this.legend());
    this.map.relabel(this.mapData, [...this.open.values()], this.selected);
    this.map.setVolunteers(this.volunteers);
    this.redraw();
  }

  private async signOut(): Promise<void> {
    await api.signOut().catch(() => undefined);
    this.stop();
    this.signedOut();
  }
}
