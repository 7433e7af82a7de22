// The duty page (#/): on/off duty with the position being shared, the notification switch,
// and the zone's open alerts, nearest first when the position is known.

import type { Change, Host, Page } from "./page";
import type { AlertSummary } from "./api";
import { alertKey, distanceM } from "./api";
import { fill, h } from "../dom";
import { ago, label, t, timeOf } from "./i18n";
import { disablePush, enablePush, isIos, PushError } from "./push";

export class HomePage implements Page {
  readonly el: HTMLElement;
  private readonly duty = h("section", { class: "card duty-card" });
  private readonly notif = h("section", { class: "card notif-card" });
  private readonly list = h("section", { class: "card alerts-card" });
  private dutyBusy = false;
  private dutyError = "";
  private pushBusy = false;
  private pushError = "";
  private readonly ticker: number;

  constructor(private readonly app: Host) {
    this.el = h("div", { class: "home" }, this.duty, this.notif, this.list);
    this.drawDuty();
    this.drawNotif();
    this.drawAlerts();
    // Notifications may have been allowed or blocked in the settings since last shown.
    if (!this.pushBusy) void this.app.duty.recheckPush();
    // "sent 12 s ago" and the alerts' ages move on by themselves.
    this.ticker = window.setInterval(() => {
      this.drawDuty();
      this.drawAlerts();
    }, 5_000);
  }

  update(change: Change): void {
    if (change === "me" || change === "geo") this.drawDuty();
    if (change === "me" || change === "push") this.drawNotif();
    if (change === "alerts" || change === "geo" || change === "me") this.drawAlerts();
  }

  stop(): void {
    window.clearInterval(this.ticker);
  }

  private drawDuty(): void {
    const me = this.app.duty.me;
    const on = me?.on_duty ?? false;
    const toggle = h(
      "button",
      {
        type: "button",
        class: `big ${on ? "secondary" : "primary"} duty-toggle`,
        disabled: this.dutyBusy || me === null,
        onclick: async () => {
          this.dutyBusy = true;
          this.dutyError = "";
          this.drawDuty();
          try {
            await this.app.duty.setDuty(!on);
          } catch (e) {
            this.dutyError = `${t.failed}${e instanceof Error ? e.message : String(e)}`;
          } finally {
            this.dutyBusy = false;
            this.drawDuty();
          }
        },
      },
      on ? t.goOffDuty : t.goOnDuty,
    );
    this.duty.dataset.duty = on ? "on" : "off";
    fill(this.duty, 
      h(
        "div",
        { class: "card-head" },
        h("h2", {}, t.dutyTitle),
        h("span", { class: `pill ${on ? "pill-on" : "pill-off"} duty-state` }, on ? t.onDuty : t.offDuty),
      ),
      h("p", { class: "position", "data-geo": this.app.geo.status.kind }, this.positionText(on)),
      toggle,
      this.dutyError ? h("p", { class: "error", role: "alert" }, this.dutyError) : null,
      on ? null : h("p", { class: "hint" }, t.dutyHint),
    );
  }

  private positionText(on: boolean): string {
    const s = this.app.geo.status;
    switch (s.kind) {
      case "sharing":
        if (s.failed) return t.posSendFailed;
        return s.sentAt !== null ? `${t.posSharing} · ${t.posSent(ago(s.sentAt))}` : t.posSharing;
      case "waiting":
        return t.posWaiting;
      case "denied":
        return t.posDenied;
      case "unavailable":
        return t.posUnavailable;
      case "unsupported":
        return t.posUnsupported;
      case "off":
        return on ? t.posWaiting : t.posNotShared;
    }
  }

  private drawNotif(): void {
    const state = this.app.duty.push;
    const text: Record<string, string> = {
      on: t.notifOn,
      off: t.notifOff,
      blocked: t.notifBlocked,
      unsupported: t.notifUnsupported,
      "ios-install": t.notifOff,
    };
    const hint: Record<string, string> = {
      on: t.notifHintOn,
      off: t.notifHintOff,
      blocked: t.notifHintBlocked,
      unsupported: isIos() ? t.notifHintIos : t.notifHintUnsupported,
      "ios-install": t.notifHintIos,
    };
    const act = async (f: () => Promise<typeof state>) => {
      this.app.duty.pushChanging();
      this.pushBusy = true;
      this.pushError = "";
      this.drawNotif();
      try {
        this.app.duty.setPush(await f());
      } catch (e) {
        this.pushError =
          e instanceof PushError && e.reason === "push-service"
            ? t.notifNoPushService
            : `${t.failed}${e instanceof Error ? e.message : String(e)}`;
      } finally {
        this.pushBusy = false;
        this.drawNotif();
      }
    };
    const button =
      state === "off"
        ? h("button", { type: "button", class: "big primary notif-enable", disabled: this.pushBusy, onclick: () => void act(enablePush) }, this.pushBusy ? t.notifWorking : t.notifEnable)
        : state === "on"
          ? h("button", { type: "button", class: "link notif-disable", disabled: this.pushBusy, onclick: () => void act(disablePush) }, t.notifDisable)
          : null;
    const count = this.app.duty.me?.subscriptions;
    this.notif.dataset.push = state;
    fill(this.notif, 
      h(
        "div",
        { class: "card-head" },
        h("h2", {}, t.notifTitle),
        h("span", { class: `pill pill-${state === "on" ? "on" : state === "blocked" ? "bad" : "off"} notif-state` }, text[state] ?? state),
      ),
      h("p", { class: "hint" }, hint[state] ?? ""),
      button,
      this.pushError ? h("p", { class: "error", role: "alert" }, this.pushError) : null,
      count !== undefined && count > 0 ? h("p", { class: "muted small" }, t.notifServerCount(count)) : null,
    );
  }

  private drawAlerts(): void {
    const here = this.app.geo.latest ?? this.app.duty.me?.position ?? null;
    const withDistance = this.app.alerts.map((a) => ({ a, d: here ? distanceM(here, a) : null }));
    // By need: an alert nobody is coming to first, then critical ones (ring 2), then the
    // nearest (the newest when there is no position).
    const need = (a: AlertSummary) => (a.responders > 0 ? 2 : 0) + (a.critical ? 0 : 1);
    withDistance.sort(
      (x, y) =>
        need(x.a) - need(y.a) ||
        (x.d !== null && y.d !== null ? x.d - y.d : y.a.raised_at_ms - x.a.raised_at_ms),
    );
    fill(this.list, 
      h("div", { class: "card-head" }, h("h2", {}, t.alertsTitle), h("span", { class: "count" }, this.app.alerts.length)),
      withDistance.length === 0
        ? h("p", { class: "hint alerts-empty" }, t.alertsEmpty)
        : h("ul", { class: "alert-list" }, withDistance.map(({ a, d }) => item(a, d))),
    );
  }
}

function item(a: AlertSummary, d: number | null): HTMLElement {
  return h(
    "li",
    {},
    h(
      "a",
      { class: `alert-row kind-${a.kind}${a.critical ? " critical" : ""}`, href: `#/alert/${alertKey(a.id)}`, "data-alert": alertKey(a.id) },
      h("span", { class: `kind-tag kind-${a.kind}` }, label(t.kinds, a.kind)),
      h(
        "span",
        { class: "alert-main" },
        h("strong", {}, a.label),
        h(
          "span",
          { class: "muted" },
          [
            label(t.states, a.state),
            a.responders > 0 ? t.responders(a.responders) : t.nobodyComing,
            `${timeOf(a.raised_at_ms)}`,
          ].join(" · "),
        ),
      ),
      d !== null ? h("span", { class: "distance" }, t.away(d)) : null,
    ),
  );
}
