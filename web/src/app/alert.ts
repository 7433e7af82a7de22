// One alert (#/alert/{id}), where a notification's tap lands: what happened and where, how
// far away, what is known about the household, who else is coming, a small map, and the big
// answer buttons (我来了 / 去不了 / 已到场). These are also the answer on phones whose
// notifications have no action buttons (Safari, iOS).
//
// The page refetches the alert on every feed event for it and polls it every few seconds.

import L from "leaflet";
import "leaflet/dist/leaflet.css";

import type { Change, Host, Page } from "./page";
import type { AlertDetail, Answer, Recipient } from "./api";
import { ApiError, distanceM, isOpen, volunteerApi } from "./api";
import { fill, h } from "../dom";
import { isEnough } from "../enough";
import { ago, label, t, timeOf } from "./i18n";
import { geoHref, mapsLink } from "./navigate";

const POLL_MS = 5_000;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class AlertPage implements Page {
  readonly el: HTMLElement;
  private readonly info = h("section", { class: "alert-info" });
  private readonly mapEl = h("div", { class: "alert-map", "aria-hidden": "true" });
  private readonly answer = h("section", { class: "card answer-card" });
  private readonly known = h("section", { class: "card known-card" });
  private readonly others = h("section", { class: "card others-card" });
  private detail: AlertDetail | null = null;
  private error = "";
  private busy: Answer | null = null;
  /** "I'm coming" was pressed on an alert that already has enough help: ask first. */
  private askingEnough = false;
  private answerError = "";
  private seenSent = false;
  private map: L.Map | null = null;
  private readonly layer = L.layerGroup();
  private framed = false;
  private timer: number | null = null;
  private stopped = false;

  constructor(
    private readonly app: Host,
    private readonly id: string,
  ) {
    this.el = h(
      "div",
      { class: "alert-page", "data-alert": id },
      h("a", { class: "back", href: "#/" }, `‹ ${t.back}`),
      this.info,
      this.mapEl,
      this.answer,
      this.others,
      this.known,
    );
    this.info.append(h("p", { class: "hint" }, "…"));
    // Leaflet measures its container: start once the page is in the document.
    requestAnimationFrame(() => this.startMap());
    void this.load();
    this.timer = window.setInterval(() => void this.load(), POLL_MS);
  }

  update(change: Change): void {
    if (typeof change === "object" && change.alert === this.id) void this.load();
    if (change === "geo" || change === "me") {
      this.drawInfo();
      this.drawMap();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) window.clearInterval(this.timer);
    this.map?.remove();
    this.map = null;
  }

  private async load(): Promise<void> {
    try {
      const d = await this.app.call(volunteerApi.alert(this.id));
      if (this.stopped) return;
      this.detail = d;
      this.error = "";
      this.markSeen(d);
    } catch (e) {
      if (this.stopped) return;
      if (e instanceof ApiError && e.status === 404) this.error = t.notFound;
      else if (e instanceof ApiError && e.status === 0) this.error = "";
      else this.error = `${t.failed}${e instanceof Error ? e.message : String(e)}`;
    }
    this.draw();
  }

  /** Opening the page of an alert one was told about is "seen" (never joins one otherwise). */
  private markSeen(d: AlertDetail): void {
    const mine = this.mine(d);
    if (this.seenSent || !mine || !isOpen(d.state)) return;
    if (mine.state !== "notified" && mine.state !== "delivered") return;
    this.seenSent = true;
    void volunteerApi.respond(this.id, "seen").catch(() => undefined);
  }

  private mine(d: AlertDetail): Recipient | undefined {
    return d.recipients.find((r) => r.kind === "volunteer" && r.who === this.app.account.name);
  }

  private here(): { lat: number; lon: number } | null {
    return this.app.geo.latest ?? this.app.duty.me?.position ?? null;
  }

  private draw(): void {
    this.drawInfo();
    this.drawAnswer();
    this.drawOthers();
    this.drawKnown();
    this.drawMap();
  }

  private drawInfo(): void {
    const d = this.detail;
    if (!d) {
      fill(this.info, this.error ? h("p", { class: "error", role: "alert" }, this.error) : h("p", { class: "hint" }, "…"));
      return;
    }
    const here = this.here();
    const dist = here ? distanceM(here, d) : null;
    fill(this.info, 
      h(
        "div",
        { class: `alert-head kind-${d.kind}${d.critical ? " critical" : ""}` },
        h("span", { class: "kind-big" }, label(t.kinds, d.kind)),
        h("span", { class: "alert-state", "data-state": d.state }, label(t.states, d.state)),
      ),
      h("h1", { class: "alert-label" }, d.label),
      h("p", { class: "alert-address" }, d.address),
      h(
        "p",
        { class: "alert-meta" },
        dist !== null ? h("strong", { class: "alert-distance" }, t.awayFromYou(t.away(dist))) : null,
        h("span", { class: "muted" }, `${t.raisedAt} ${timeOf(d.raised_at_ms)} · ${ago(d.raised_at_ms)}`),
      ),
      this.navigation(d),
      this.error ? h("p", { class: "error", role: "alert" }, this.error) : null,
    );
  }

  /** The phone's maps app (`geo:`) and the platform's map, both to the household's door. */
  private navigation(d: AlertDetail): HTMLElement {
    const maps = mapsLink(d.lat, d.lon, d.label, navigator.userAgent);
    return h(
      "div",
      { class: "navigate", role: "group", "aria-label": t.navigateTitle },
      h("a", { class: "nav-link nav-geo", href: geoHref(d.lat, d.lon, d.label), title: t.navigateTitle }, t.navigate),
      h(
        "a",
        { class: `nav-link nav-maps nav-${maps.app}`, href: maps.href, target: "_blank", rel: "noopener noreferrer" },
        maps.app === "apple" ? t.appleMaps : t.amap,
      ),
    );
  }

  private drawAnswer(): void {
    const d = this.detail;
    if (!d) {
      this.answer.hidden = true;
      return;
    }
    this.answer.hidden = false;
    const mine = this.mine(d);
    const state = mine?.state ?? null;
    this.answer.dataset.mine = state ?? "none";
    if (!isOpen(d.state)) {
      fill(this.answer, h("p", { class: "closed-note" }, t.alertClosed(label(t.states, d.state))));
      return;
    }
    const button = (answer: Answer, cls: string, main: string, sub: string, disabled: boolean) =>
      h(
        "button",
        {
          type: "button",
          class: `answer answer-${answer} ${cls}`,
          "aria-pressed": state === answer ? "true" : "false",
          disabled: disabled || this.busy !== null,
          onclick: () => {
            if (answer === "coming" && enough && state !== "coming") {
              this.askingEnough = true;
              this.drawAnswer();
              return;
            }
            void this.respond(answer);
          },
        },
        h("span", { class: "answer-main" }, main),
        h("span", { class: "answer-sub" }, sub),
      );
    const onScene = state === "on_scene";
    const comingNow = state === "coming" || state === "on_scene";
    const enough = isEnough(d.kind, d.responders);
    const ask = this.askingEnough
      ? h(
          "div",
          { class: "enough-ask", role: "alertdialog", "aria-label": t.enough },
          h("p", {}, t.enoughAsk(d.responders)),
          h(
            "div",
            { class: "enough-ask-buttons" },
            h(
              "button",
              {
                type: "button",
                class: "still-go",
                onclick: () => {
                  this.askingEnough = false;
                  void this.respond("coming");
                },
              },
              t.stillGo,
            ),
            h(
              "button",
              {
                type: "button",
                class: "stay",
                onclick: () => {
                  this.askingEnough = false;
                  this.drawAnswer();
                },
              },
              t.stay,
            ),
          ),
        )
      : null;
    fill(this.answer, 
      h(
        "p",
        { class: "my-state" },
        `${t.yourAnswer}: `,
        h("strong", { "data-state": state ?? "none" }, state ? label(t.recipientStates, state) : t.notAnswered),
      ),
      enough && !comingNow ? h("p", { class: "enough-note", role: "status" }, t.enoughNow(d.responders)) : null,
      ask,
      h(
        "div",
        { class: "answer-grid" },
        button("coming", "go", t.coming, t.comingSub, onScene),
        button("declined", "nogo", t.decline, t.declineSub, onScene),
        button("on_scene", "here", t.onScene, t.onSceneSub, onScene),
      ),
      this.answerError ? h("p", { class: "error", role: "alert" }, this.answerError) : null,
    );
  }

  private async respond(answer: Answer): Promise<void> {
    this.busy = answer;
    this.answerError = "";
    this.drawAnswer();
    try {
      await this.app.call(volunteerApi.respond(this.id, answer));
    } catch (e) {
      this.answerError =
        e instanceof ApiError && e.status === 0 ? t.network : `${t.failed}${e instanceof Error ? e.message : String(e)}`;
    } finally {
      this.busy = null;
    }
    await this.load();
  }

  private drawOthers(): void {
    const d = this.detail;
    if (!d) {
      this.others.hidden = true;
      return;
    }
    this.others.hidden = false;
    const coming = d.recipients.filter(
      (r) => (r.state === "coming" || r.state === "on_scene") && !(r.kind === "volunteer" && r.who === this.app.account.name),
    );
    fill(this.others, 
      h("div", { class: "card-head" }, h("h2", {}, t.othersComing), h("span", { class: "count" }, coming.length)),
      coming.length === 0
        ? h("p", { class: "hint" }, t.nobodyElse)
        : h(
            "ul",
            { class: "coming-list" },
            coming.map((r) =>
              h(
                "li",
                { class: "coming", "data-who": r.who },
                h("span", { class: "muted" }, label(t.recipientKinds, r.kind)),
                h("strong", {}, r.label || r.who),
                h("span", { class: `pill pill-${r.state === "on_scene" ? "on" : "go"}` }, label(t.recipientStates, r.state)),
              ),
            ),
          ),
    );
  }

  private drawKnown(): void {
    const d = this.detail;
    if (!d) {
      this.known.hidden = true;
      return;
    }
    this.known.hidden = false;
    const phones = (text: string) =>
      text.split(/(\+?\d[\d\s-]{6,}\d)/).map((part, i) =>
        i % 2 === 1 ? h("a", { href: `tel:${part.replace(/[\s-]/g, "")}` }, part) : part,
      );
    fill(this.known, 
      h("div", { class: "card-head" }, h("h2", {}, t.whatIsKnown)),
      h("p", { class: "notes" }, d.notes || t.noNotes),
      h(
        "dl",
        { class: "facts" },
        d.contacts ? [h("dt", {}, t.contacts), h("dd", { class: "contacts" }, phones(d.contacts))] : null,
        h("dt", {}, t.cluster),
        h("dd", {}, d.cluster_name),
        d.leader ? [h("dt", {}, t.leader), h("dd", {}, d.leader)] : null,
      ),
    );
  }

  private startMap(): void {
    if (this.stopped || this.map) return;
    this.map = L.map(this.mapEl, { zoomControl: false, attributionControl: true, zoomSnap: 0.25 });
    this.map.attributionControl.setPrefix(false);
    const { tile_url, tile_attribution } = this.app.config;
    if (tile_url) {
      L.tileLayer(tile_url, { maxZoom: 19, attribution: escapeHtml(tile_attribution) }).addTo(this.map);
    } else {
      this.mapEl.classList.add("no-tiles");
    }
    L.control.scale({ imperial: false }).addTo(this.map);
    this.layer.addTo(this.map);
    this.drawMap();
  }

  private drawMap(): void {
    const d = this.detail;
    if (!this.map || !d) return;
    this.layer.clearLayers();
    const home = L.latLng(d.lat, d.lon);
    const here = this.here();
    L.circle(home, { radius: 30, color: "#d62828", weight: 1, fillOpacity: 0.12, interactive: false }).addTo(this.layer);
    L.circleMarker(home, { radius: 11, color: "#fff", weight: 3, fillColor: "#d62828", fillOpacity: 1, className: "pin-alert" })
      .bindTooltip(escapeHtml(d.label), { permanent: true, direction: "top", offset: [0, -10], className: "pin-label" })
      .addTo(this.layer);
    if (here) {
      const me = L.latLng(here.lat, here.lon);
      L.polyline([me, home], { color: "#1c64f2", weight: 2, dashArray: "6 6", interactive: false }).addTo(this.layer);
      L.circleMarker(me, { radius: 8, color: "#fff", weight: 3, fillColor: "#1c64f2", fillOpacity: 1, className: "pin-me" })
        .bindTooltip(escapeHtml(t.you), { permanent: true, direction: "bottom", offset: [0, 8], className: "pin-label" })
        .addTo(this.layer);
    }
    if (!this.framed) {
      if (here) this.map.fitBounds(L.latLngBounds([home, L.latLng(here.lat, here.lon)]), { padding: [40, 40], maxZoom: 18 });
      else this.map.setView(home, 17);
      this.framed = here !== null;
    }
  }
}
