// Patrol check-in (#/patrol, 巡逻签到): one tap records the time and the position, with an
// optional note; the volunteer's recent check-ins are listed below.

import type { Change, Host, Page } from "./page";
import type { Checkin } from "./api";
import { volunteerApi } from "./api";
import { fill, h } from "../dom";
import { t, timeOf } from "./i18n";
import { PositionSharer } from "./geo";

/** A fix this fresh from the duty watch is used as it is, without asking again. */
const FRESH_MS = 30_000;

export class PatrolPage implements Page {
  readonly el: HTMLElement;
  private readonly note = h("input", { id: "checkin-note", name: "note", maxlength: 200, placeholder: t.checkinNotePlaceholder, autocomplete: "off" });
  private readonly button = h("button", { type: "submit", class: "big primary checkin-button" }, t.checkinButton);
  private readonly status = h("p", { class: "checkin-status", role: "status" });
  private readonly list = h("section", { class: "card checkins-card" });
  private checkins: Checkin[] | null = null;
  private stopped = false;

  constructor(private readonly app: Host) {
    const form = h(
      "form",
      { class: "card checkin-card" },
      h("div", { class: "card-head" }, h("h2", {}, t.patrolTitle)),
      h("p", { class: "hint" }, t.patrolHint),
      h("label", { for: "checkin-note" }, t.checkinNote),
      this.note,
      this.button,
      this.status,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.checkIn();
    });
    this.el = h("div", { class: "patrol" }, form, this.list);
    this.drawList();
    void this.load();
  }

  update(_change: Change): void {}

  stop(): void {
    this.stopped = true;
  }

  private async load(): Promise<void> {
    try {
      const { checkins } = await this.app.call(volunteerApi.checkins(20));
      if (this.stopped) return;
      this.checkins = checkins;
      this.drawList();
    } catch (e) {
      if (!this.stopped && this.checkins === null) {
        this.list.append(h("p", { class: "error" }, `${t.failed}${e instanceof Error ? e.message : String(e)}`));
      }
    }
  }

  private async position(): Promise<{ lat: number; lon: number }> {
    const s = this.app.geo.status;
    if (s.kind === "sharing" && s.sentAt !== null && Date.now() - s.sentAt < FRESH_MS && this.app.geo.latest) {
      return this.app.geo.latest;
    }
    return PositionSharer.once();
  }

  private async checkIn(): Promise<void> {
    this.button.disabled = true;
    this.button.textContent = t.checkingIn;
    this.status.className = "checkin-status";
    this.status.textContent = "";
    try {
      let at: { lat: number; lon: number };
      try {
        at = await this.position();
      } catch {
        this.status.className = "checkin-status error";
        this.status.textContent = t.checkinNeedsPosition;
        return;
      }
      const done = await this.app.call(volunteerApi.checkin(at.lat, at.lon, this.note.value.trim()));
      this.status.className = "checkin-status ok";
      this.status.textContent = t.checkinDone(timeOf(done.at_ms));
      this.note.value = "";
      await this.load();
    } catch (e) {
      this.status.className = "checkin-status error";
      this.status.textContent = `${t.failed}${e instanceof Error ? e.message : String(e)}`;
    } finally {
      this.button.disabled = false;
      this.button.textContent = t.checkinButton;
    }
  }

  private drawList(): void {
    const rows = this.checkins;
    fill(this.list, 
      h("div", { class: "card-head" }, h("h2", {}, t.recentCheckins)),
      rows === null
        ? h("p", { class: "hint" }, "…")
        : rows.length === 0
          ? h("p", { class: "hint" }, t.noCheckins)
          : h(
              "ol",
              { class: "checkin-list" },
              rows.map((c) =>
                h(
                  "li",
                  { class: "checkin", "data-checkin": c.id },
                  h("time", { datetime: new Date(c.at_ms).toISOString() }, timeOf(c.at_ms)),
                  h("span", { class: "checkin-note" }, c.note || "—"),
                  h("span", { class: "muted small coords" }, `${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`),
                ),
              ),
            ),
    );
  }
}
