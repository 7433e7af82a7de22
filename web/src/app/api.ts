// The gateway's API as the volunteer app uses it: the shared alert types and fetch wrapper
// of the console (../api), plus the volunteer's own routes: duty, position, check-ins and
// Web Push subscriptions. The session is the HttpOnly cookie, which the service worker's
// requests carry too.

import type { Account, AlertDetail, AlertSummary, ConsoleConfig } from "../api";
import { request } from "../api";

export type { Account, AlertDetail, AlertSummary, ConsoleConfig, Recipient } from "../api";
export { ApiError, isOpen, whenSignedOut } from "../api";

/**
 * An alert's id as the gateway writes it ("A17"; the API also accepts "17"). The shared
 * console types say `number`; the wire says a string, so the app goes by [`alertKey`].
 */
export type AlertRef = string | number;

/** The one spelling of an alert id used for comparing and in addresses: "A17". */
export function alertKey(id: AlertRef): string {
  const s = String(id);
  return /^\d+$/.test(s) ? `A${s}` : s;
}

/** `GET /api/volunteer/me`. */
export interface Me {
  name: string;
  display_name: string;
  zone: string;
  on_duty: boolean;
  position: { lat: number; lon: number; at_ms: number } | null;
  /** Push subscriptions the gateway holds for this volunteer (all their devices). */
  subscriptions: number;
}

export interface Checkin {
  id: number;
  lat: number;
  lon: number;
  note: string;
  at_ms: number;
}

/** What a volunteer can answer to an alert. */
export type Answer = "seen" | "coming" | "declined" | "on_scene";

export const volunteerApi = {
  session: () => request<{ account: Account }>("GET", "/api/session"),
  signIn: (name: string, password: string) =>
    request<{ account: Account }>("POST", "/api/session", { name, password }),
  signOut: () => request<void>("DELETE", "/api/session"),
  config: () => request<ConsoleConfig>("GET", "/api/console/config"),
  me: () => request<Me>("GET", "/api/volunteer/me"),
  duty: (onDuty: boolean) =>
    request<{ on_duty: boolean }>("POST", "/api/volunteer/duty", { on_duty: onDuty }),
  position: (lat: number, lon: number) =>
    request<{ ok: boolean }>("POST", "/api/volunteer/position", { lat, lon }),
  alerts: () => request<{ alerts: AlertSummary[] }>("GET", "/api/alerts?state=open&limit=200"),
  alert: (id: AlertRef) => request<AlertDetail>("GET", `/api/alerts/${encodeURIComponent(alertKey(id))}`),
  respond: (id: AlertRef, answer: Answer) =>
    request<AlertSummary>("POST", `/api/alerts/${encodeURIComponent(alertKey(id))}/respond`, { answer }),
  checkin: (lat: number, lon: number, note: string) =>
    request<{ id: number; at_ms: number }>("POST", "/api/volunteer/checkin", note ? { lat, lon, note } : { lat, lon }),
  checkins: (limit = 20) =>
    request<{ checkins: Checkin[] }>("GET", `/api/volunteer/checkins?limit=${limit}`),
  pushKey: () => request<{ public_key: string }>("GET", "/api/push/key"),
  subscribe: (sub: PushSubscriptionJSON) =>
    request<{ id: number }>("POST", "/api/push/subscriptions", sub),
  unsubscribe: (endpoint: string) =>
    request<{ removed: boolean }>("DELETE", "/api/push/subscriptions", { endpoint }),
};

/** Great-circle distance in metres (haversine; plenty for a neighbourhood). */
export function distanceM(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const R = 6_371_000;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const s =
    Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(s)));
}
