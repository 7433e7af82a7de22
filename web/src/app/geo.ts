// Sharing the volunteer's position while on duty: navigator.geolocation.watchPosition, with
// the reports to the gateway thinned out. The first fix is sent at once; after that a fix is
// sent when the volunteer moved more than MOVE_M since the last one sent (but never more
// often than every MIN_INTERVAL_MS), and otherwise every REFRESH_MS so the station sees the
// position is still current. Browsers pause the watch while the app is in the background,
// so the position is shared only while the app is open.

import { ApiError, distanceM, volunteerApi } from "./api";

export const MIN_INTERVAL_MS = 15_000;
export const MOVE_M = 25;
export const REFRESH_MS = 60_000;

export type GeoStatus =
  | { kind: "off" }
  | { kind: "waiting" }
  | { kind: "sharing"; lat: number; lon: number; accuracy: number; sentAt: number | null; failed: boolean }
  | { kind: "denied" }
  | { kind: "unavailable" }
  | { kind: "unsupported" };

/** Whether a fix should be sent, given the last one sent. Exported for the reasoning's sake. */
export function shouldSend(
  last: { lat: number; lon: number; at: number } | null,
  fix: { lat: number; lon: number },
  now: number,
): boolean {
  if (!last) return true;
  const since = now - last.at;
  if (since < MIN_INTERVAL_MS) return false;
  return since >= REFRESH_MS || distanceM(last, fix) > MOVE_M;
}

export class PositionSharer {
  private watchId: number | null = null;
  private lastSent: { lat: number; lon: number; at: number } | null = null;
  private sending = false;
  status: GeoStatus = { kind: "off" };
  /** The latest fix, sent or not: the alert page measures distances from it. */
  latest: { lat: number; lon: number } | null = null;

  constructor(private readonly changed: (s: GeoStatus) => void) {}

  get running(): boolean {
    return this.watchId !== null;
  }

  start(): void {
    if (this.watchId !== null) return;
    if (!("geolocation" in navigator)) {
      this.set({ kind: "unsupported" });
      return;
    }
    this.lastSent = null;
    this.set({ kind: "waiting" });
    this.watchId = navigator.geolocation.watchPosition(
      (p) => void this.fix(p),
      (e) => {
        if (e.code === e.PERMISSION_DENIED) {
          this.stop();
          this.set({ kind: "denied" });
        } else if (this.status.kind !== "sharing") {
          this.set({ kind: "unavailable" });
        }
      },
      { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 },
    );
  }

  stop(): void {
    if (this.watchId !== null) navigator.geolocation.clearWatch(this.watchId);
    this.watchId = null;
    this.set({ kind: "off" });
  }

  /** One fix now, for a check-in (whether or not on duty). */
  static once(): Promise<{ lat: number; lon: number }> {
    return new Promise((resolve, reject) => {
      if (!("geolocation" in navigator)) return reject(new Error("unsupported"));
      navigator.geolocation.getCurrentPosition(
        (p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude }),
        reject,
        { enableHighAccuracy: true, maximumAge: 30_000, timeout: 20_000 },
      );
    });
  }

  private set(s: GeoStatus): void {
    this.status = s;
    this.changed(s);
  }

  private async fix(p: GeolocationPosition): Promise<void> {
    const fix = { lat: p.coords.latitude, lon: p.coords.longitude };
    this.latest = fix;
    const prev = this.status.kind === "sharing" ? this.status : null;
    const now = Date.now();
    if (this.sending || !shouldSend(this.lastSent, fix, now)) {
      this.set({ kind: "sharing", ...fix, accuracy: p.coords.accuracy, sentAt: prev?.sentAt ?? null, failed: prev?.failed ?? false });
      return;
    }
    this.sending = true;
    try {
      await volunteerApi.position(fix.lat, fix.lon);
      this.lastSent = { ...fix, at: now };
      if (this.watchId !== null) this.set({ kind: "sharing", ...fix, accuracy: p.coords.accuracy, sentAt: now, failed: false });
    } catch (e) {
      // 409: the duty ended elsewhere (another device); the page refreshes its state.
      if (e instanceof ApiError && e.status === 409) this.stop();
      else this.set({ kind: "sharing", ...fix, accuracy: p.coords.accuracy, sentAt: prev?.sentAt ?? null, failed: true });
    } finally {
      this.sending = false;
    }
  }
}
