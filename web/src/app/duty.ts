// The volunteer's own standing, as the duty page shows and changes it: their record (GET
// /api/volunteer/me: on duty or not, the last position, the count of subscriptions), going on
// and off duty (which starts and stops sharing the position) and the notification state.
// The app owns one and is told of every change, which it passes on to the page shown.

import type { Me } from "./api";
import { volunteerApi } from "./api";
import type { PositionSharer } from "./geo";
import type { PushState } from "./push";
import { pushState } from "./push";

/** An API call run by the app, which keeps its "cannot reach the server" banner true. */
export type Call = <T>(p: Promise<T>) => Promise<T>;

export class Duty {
  me: Me | null = null;
  push: PushState = "off";
  /** Bumped by every change of the notification state, so that late answers lose. */
  private pushSeq = 0;

  constructor(
    private readonly geo: PositionSharer,
    private readonly call: Call,
    private readonly changed: (change: "me" | "push") => void,
  ) {}

  async refreshMe(): Promise<void> {
    try {
      this.me = await this.call(volunteerApi.me());
      if (!this.me.on_duty && this.geo.running) this.geo.stop();
      this.changed("me");
    } catch {
      // Shown by the banner; the next refresh tries again.
    }
  }

  async setDuty(onDuty: boolean): Promise<void> {
    const { on_duty } = await this.call(volunteerApi.duty(onDuty));
    if (this.me) this.me = { ...this.me, on_duty };
    if (onDuty) this.geo.start();
    else this.geo.stop();
    await this.refreshMe();
  }

  async recheckPush(): Promise<void> {
    // A check that started before a newer answer (another check, or the enable/disable flow)
    // must not overwrite it.
    const mine = ++this.pushSeq;
    const state = await pushState().catch(() => "unsupported" as const);
    if (mine !== this.pushSeq) return;
    this.push = state;
    this.changed("push");
  }

  /** The enable/disable flow has begun: checks already under way are out of date. */
  pushChanging(): void {
    this.pushSeq += 1;
  }

  setPush(state: PushState): void {
    this.pushSeq += 1;
    this.push = state;
    this.changed("push");
    void this.refreshMe();
  }
}
