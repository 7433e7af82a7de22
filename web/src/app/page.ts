// What the volunteer app (app.ts) and its pages (home, patrol, alert) share: the changes the
// app tells the page shown of, what a page is to the app, and what the app is to a page (the
// state it reads and the calls it makes), so that a page never needs app.ts itself.

import type { Account, AlertSummary, ConsoleConfig } from "./api";
import type { Call, Duty } from "./duty";
import type { PositionSharer } from "./geo";

export type Change = "me" | "geo" | "push" | "alerts" | "online" | { alert: string };

export interface Page {
  readonly el: HTMLElement;
  update(change: Change): void;
  stop(): void;
}

/** The app as its pages see it. */
export interface Host {
  readonly account: Account;
  readonly config: ConsoleConfig;
  /** The zone's open alerts, as the feed last told them. */
  readonly alerts: AlertSummary[];
  readonly geo: PositionSharer;
  readonly duty: Duty;
  readonly call: Call;
}
