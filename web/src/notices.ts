// Notices to residents (通知): the operator writes one (a kind, a title, a text) for a zone of
// theirs or for chosen clusters of it; the gateway sends it to the units and pushes it to the
// zone's volunteers on duty. Below the form, the notices sent, newest first, each with how
// many households' units showed it and how many volunteers' phones were pushed it. Units
// report as they come online, so the counts grow: the list is read again every few seconds
// while the tab is shown, and at once with its refresh button.

import type { Notice, ZoneMap } from "./api";
import { ApiError, api, NOTICE_KINDS } from "./api";
import { fill, h } from "./dom";
import { dateMinute } from "./format";
import { label, t } from "./i18n";

/** How often the list is read again while shown. */
const REFRESH_MS = 5000;
/** As the gateway checks them (gateway/src/store/notices.rs). */
const MAX_TITLE = 60;
const MAX_BODY = 400;

export class NoticesView {
  private list = h("div", { class: "notices-list", "aria-live": "polite" });
  private status = h("p", { class: "notice-status", role: "status" });
  private notices: Notice[] = [];
  private timer: number | null = null;
  private form!: HTMLFormElement;
  /** How many clusters the form offered when built: the map may come after it. */
  private clustersOffered = 0;

  constructor(
    private readonly el: HTMLElement,
    private readonly zones: () => string[],
    private readonly zoneMap: () => ZoneMap | null,
  ) {
    this.build();
  }

  show(): void {
    this.el.hidden = false;
    // Built before the map had loaded: offer its clusters now (nothing typed is lost: the
    // form is new until shown).
    if (this.clustersOffered === 0 && (this.zoneMap()?.clusters.length ?? 0) > 0) this.build();
    void this.load();
    if (this.timer === null) {
      this.timer = window.setInterval(() => {
        if (this.el.hidden || !this.el.isConnected) return;
        void this.load();
      }, REFRESH_MS);
    }
  }

  hide(): void {
    this.el.hidden = true;
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
  }

  relabel(): void {
    this.build();
    this.draw();
  }

  private build(): void {
    const zones = this.zones();
    const clusters = this.zoneMap()?.clusters ?? [];
    this.clustersOffered = clusters.length;
    this.form = h(
      "form",
      { class: "notice-form" },
      h("h3", {}, t.noticeWrite),
      zones.length > 1
        ? h(
            "label",
            {},
            h("span", {}, t.noticeZone),
            h("select", { name: "zone", class: "notice-zone" }, zones.map((z) => h("option", { value: z }, z))),
          )
        : null,
      h(
        "label",
        {},
        h("span", {}, t.noticeKind),
        h("select", { name: "kind", class: "notice-kind" }, NOTICE_KINDS.map((k) => h("option", { value: k }, label(t.noticeKinds, k)))),
      ),
      h(
        "label",
        {},
        h("span", {}, t.noticeTitle),
        h("input", { type: "text", name: "title", class: "notice-title", required: true, maxlength: MAX_TITLE }),
      ),
      h(
        "label",
        {},
        h("span", {}, t.noticeBody),
        h("textarea", { name: "body", class: "notice-body", required: true, maxlength: MAX_BODY, rows: 4 }),
      ),
      clusters.length > 0
        ? h(
            "label",
            {},
            h("span", {}, t.noticeClusters),
            h(
              "select",
              { name: "clusters", class: "notice-clusters", multiple: true, size: Math.min(6, clusters.length) },
              clusters.map((c) => h("option", { value: c.id, "data-zone": c.zone }, c.name || c.id)),
            ),
          )
        : null,
      h("div", { class: "notice-buttons" }, h("button", { type: "submit", class: "primary notice-send" }, t.noticeSend)),
      this.status,
    );
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.send();
    });
    fill(
      this.el,
      h(
        "header",
        { class: "history-head" },
        h("h2", {}, t.noticesTitle),
        h("button", { type: "button", class: "notices-refresh", onclick: () => void this.load() }, t.noticesRefresh),
      ),
      this.form,
      this.list,
    );
  }

  private async send(): Promise<void> {
    const f = this.form;
    const value = (name: string) => {
      const el = f.elements.namedItem(name);
      return el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement ? el.value : "";
    };
    const picked = f.elements.namedItem("clusters");
    const clusters = picked instanceof HTMLSelectElement ? [...picked.selectedOptions].map((o) => o.value) : [];
    const zone = value("zone") || undefined;
    const button = f.querySelector<HTMLButtonElement>(".notice-send");
    if (button) button.disabled = true;
    this.status.className = "notice-status";
    this.status.textContent = "";
    try {
      await api.sendNotice({ zone, clusters, kind: value("kind"), title: value("title"), body: value("body") });
      f.reset();
      this.status.textContent = t.noticeSent;
      await this.load();
    } catch (e) {
      this.status.className = "notice-status error";
      this.status.textContent = t.noticeFailed + (e instanceof ApiError ? e.message : String(e));
    } finally {
      if (button) button.disabled = false;
    }
  }

  private async load(): Promise<void> {
    try {
      this.notices = (await api.notices()).notices;
      this.draw();
    } catch (e) {
      // The last list stays; the next refresh tries again.
      console.warn("notices not loaded", e);
    }
  }

  private draw(): void {
    if (this.notices.length === 0) {
      fill(this.list, h("p", { class: "history-empty" }, t.noticesEmpty));
      return;
    }
    const names = new Map((this.zoneMap()?.clusters ?? []).map((c) => [c.id, c.name || c.id]));
    fill(
      this.list,
      h(
        "ol",
        { class: "notices" },
        this.notices.map((n) =>
          h(
            "li",
            { class: `notice notice-${n.kind}`, "data-notice": n.id },
            h(
              "header",
              {},
              h("span", { class: "notice-kind-label" }, label(t.noticeKinds, n.kind)),
              " ",
              h("strong", { class: "notice-title-text" }, n.title),
            ),
            h("p", { class: "notice-body-text" }, n.body),
            h(
              "p",
              { class: "notice-meta" },
              h("time", {}, dateMinute(n.created_at_ms)),
              " · ",
              n.clusters.length === 0 ? `${n.zone} ${t.noticeWholeZone}` : n.clusters.map((c) => names.get(c) ?? c).join("、"),
              " · ",
              t.noticeBy(n.author),
            ),
            h(
              "p",
              { class: "notice-counts" },
              h("span", { class: "notice-households" }, t.noticeHouseholds(n.households_delivered, n.households)),
              " · ",
              h("span", { class: "notice-volunteers" }, t.noticeVolunteers(n.volunteers_reached, n.volunteers)),
            ),
          ),
        ),
      ),
    );
  }
}
