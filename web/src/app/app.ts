// The signed-in volunteer app: the shell (header, "cannot reach the server" banner, tabs), the
// state every page reads (the zone's open alerts, the position sharer, and the volunteer's own
// standing in duty.ts) and the hash router: #/ (duty and alerts), #/patrol (check-ins) and
// #/alert/{id} (one alert, where a push notification's tap lands). The pages know the app only
// as page.ts describes it.
//
// Live updates come from the feed WebSocket (the zone's alert events); the alert page also
// polls its alert, so a lost feed never leaves a responder looking at a stale page.

import type { Account, AlertSummary, ConsoleConfig } from "./api";
import { alertKey, ApiError, isOpen, volunteerApi } from "./api";
import { h } from "../dom";
import { Feed } from "../feed";
import { langButton } from "../lang";
import { Duty } from "./duty";
import type { GeoStatus } from "./geo";
import { PositionSharer } from "./geo";
import * as i18n from "./i18n";
import { t } from "./i18n";
import type { Change, Host, Page } from "./page";
import { disablePush, serviceWorker } from "./push";
import { AlertPage } from "./alert";
import { HomePage } from "./home";
import { PatrolPage } from "./patrol";

export class App implements Host {
  alerts: AlertSummary[] = [];
  readonly geo: PositionSharer;
  readonly duty: Duty;
  private readonly feed: Feed;
  private feedDown = false;
  private apiDown = false;
  private page: Page | null = null;
  private readonly banner = h("div", { class: "offline-banner", role: "alert", hidden: true });
  private readonly main = h("main", { class: "page" });
  private readonly onHash = () => this.route();
  private readonly onVisible = () => {
    if (document.visibilityState === "visible") void this.duty.recheckPush();
  };
  private meTimer: number | null = null;

  constructor(
    private readonly root: HTMLElement,
    readonly account: Account,
    readonly config: ConsoleConfig,
    private readonly signedOut: () => void,
  ) {
    this.geo = new PositionSharer((s: GeoStatus) => {
      if (s.kind === "sharing" && s.sentAt !== null && !s.failed) this.reachable(true);
      this.changed("geo");
    });
    this.duty = new Duty(this.geo, (p) => this.call(p), (change) => this.changed(change));
    this.feed = new Feed({
      message: (msg) => this.feedMessage(msg),
      status: (s) => {
        this.feedDown = s.kind === "down";
        this.showBanner();
      },
      reconnected: () => void this.duty.refreshMe(),
      stillSignedIn: async () => {
        try {
          await volunteerApi.session();
          return true;
        } catch (e) {
          return !(e instanceof ApiError && e.status === 401);
        }
      },
    });
  }

  async start(): Promise<void> {
    this.shell();
    window.addEventListener("hashchange", this.onHash);
    void serviceWorker();
    this.route();
    this.feed.start();
    await this.duty.refreshMe();
    if (this.duty.me?.on_duty) this.geo.start();
    await this.duty.recheckPush();
    // Notifications allowed or blocked in the browser's settings meanwhile: say so at once.
    navigator.permissions
      ?.query({ name: "notifications" })
      .then((status) => status.addEventListener("change", () => void this.duty.recheckPush()))
      .catch(() => undefined);
    document.addEventListener("visibilitychange", this.onVisible);
    // The duty state can change on another device; the count of subscriptions too.
    this.meTimer = window.setInterval(() => void this.duty.refreshMe(), 60_000);
  }

  stop(): void {
    window.removeEventListener("hashchange", this.onHash);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.feed.stop();
    this.geo.stop();
    this.page?.stop();
    this.page = null;
    if (this.meTimer !== null) window.clearInterval(this.meTimer);
  }

  /** Runs an API call, keeping the "cannot reach the server" banner true to the last answer. */
  async call<T>(p: Promise<T>): Promise<T> {
    try {
      const v = await p;
      this.reachable(true);
      return v;
    } catch (e) {
      if (e instanceof ApiError && e.status === 0) this.reachable(false);
      else this.reachable(true);
      throw e;
    }
  }

  reachable(ok: boolean): void {
    if (this.apiDown === !ok) return;
    this.apiDown = !ok;
    this.showBanner();
  }

  get offline(): boolean {
    return this.feedDown || this.apiDown;
  }

  async signOut(): Promise<void> {
    this.stop();
    // This phone no longer belongs to this account's alerts, and nobody is sharing a position
    // from it: the station must not count on a volunteer who left.
    await disablePush().catch(() => undefined);
    if (this.duty.me?.on_duty) await volunteerApi.duty(false).catch(() => undefined);
    await volunteerApi.signOut().catch(() => undefined);
    this.signedOut();
  }

  changed(change: Change): void {
    this.page?.update(change);
  }

  private showBanner(): void {
    this.banner.hidden = !this.offline;
    this.banner.textContent = this.offline ? t.offline : "";
    document.body.dataset.online = this.offline ? "no" : "yes";
    this.changed("online");
  }

  private feedMessage(msg: unknown): void {
    if (!msg || typeof msg !== "object" || !("type" in msg)) return;
    const m = msg as { type: string; alerts?: AlertSummary[]; alert?: AlertSummary };
    if (m.type === "snapshot" && m.alerts) {
      this.alerts = m.alerts;
      this.reachable(true);
      this.changed("alerts");
    } else if (m.type === "alert" && m.alert) {
      const a = m.alert;
      const rest = this.alerts.filter((x) => alertKey(x.id) !== alertKey(a.id));
      this.alerts = isOpen(a.state) ? [a, ...rest] : rest;
      this.changed("alerts");
      this.changed({ alert: alertKey(a.id) });
    } else if (m.type === "resync") {
      void this.call(volunteerApi.alerts())
        .then(({ alerts }) => {
          this.alerts = alerts;
          this.changed("alerts");
        })
        .catch(() => undefined);
    }
  }

  /** Header, banner, the page and the tabs; rebuilt when the language changes. */
  private shell(): void {
    const tab = (href: string, text: string, name: string) =>
      h("a", { href, class: "tab", "data-tab": name }, text);
    this.root.replaceChildren(
      h(
        "div",
        { class: "vol-app" },
        h(
          "header",
          { class: "app-top" },
          h("img", { src: "/app/icons/icon-192.png", alt: "", width: 32, height: 32 }),
          h("div", { class: "who" }, h("strong", {}, t.brand), h("span", {}, this.account.display_name)),
          langButton(i18n, () => {
            this.shell();
            this.route();
          }),
          h("button", { type: "button", class: "link sign-out", onclick: () => void this.signOut() }, t.signOut),
        ),
        this.banner,
        this.main,
        h("nav", { class: "tabs" }, tab("#/", t.tabDuty, "duty"), tab("#/patrol", t.tabPatrol, "patrol")),
      ),
    );
    this.showBanner();
  }

  private route(): void {
    const hash = location.hash.replace(/^#/, "") || "/";
    this.page?.stop();
    const alert = /^\/alert\/(A?\d+)$/.exec(hash);
    let name = "duty";
    if (alert) {
      this.page = new AlertPage(this, alertKey(alert[1] ?? ""));
      name = "alert";
    } else if (hash === "/patrol") {
      this.page = new PatrolPage(this);
      name = "patrol";
    } else {
      this.page = new HomePage(this);
    }
    document.body.dataset.page = name;
    for (const el of this.root.querySelectorAll<HTMLElement>("nav.tabs .tab")) {
      el.setAttribute("aria-current", el.dataset.tab === name ? "page" : "false");
    }
    this.main.replaceChildren(this.page.el);
    window.scrollTo(0, 0);
  }
}
