// The gateway's HTTP API as the console uses it: types of what it returns and one fetch
// wrapper that turns every failure into an ApiError with the server's own message.

export type AlertState =
  | "raised"
  | "notified"
  | "acknowledged"
  | "on_scene"
  | "resolved"
  | "cancelled";

export interface AlertSummary {
  id: number;
  device: string;
  seq: number;
  household: string;
  label: string;
  address: string;
  lat: number;
  lon: number;
  cluster: string;
  zone: string;
  kind: string;
  state: AlertState;
  raised_at_ms: number;
  notified_at_ms: number | null;
  updated_at_ms: number;
  responders: number;
  ring: number;
  critical: boolean;
  next_ring_at_ms: number | null;
  category: string | null;
  resolution_note: string | null;
  acknowledged_at_ms: number | null;
  first_delivered_at_ms: number | null;
  first_coming_at_ms: number | null;
  first_on_scene_at_ms: number | null;
  closed_at_ms: number | null;
  /** When the station made it public (its CAP 1.2 messages in /cap/feed.atom); null: not public. */
  public_at_ms: number | null;
  /** In the list only: open longer than the gateway's --stale-after. */
  stale?: boolean;
}

export type RecipientState =
  | "notified"
  | "delivered"
  | "seen"
  | "coming"
  | "declined"
  | "on_scene";

export interface Recipient {
  kind: "unit" | "volunteer" | "station";
  who: string;
  label: string;
  ring: number;
  state: RecipientState;
  distance_m: number | null;
  notified_at_ms: number;
  updated_at_ms: number;
  /** Volunteers: what became of the push to their phones (accepted, no_subscription, expired, failed: …). */
  push?: string | null;
  push_at_ms?: number | null;
}

export interface TimelineEvent {
  at_ms: number;
  actor: string;
  action: string;
  detail: string;
}

export interface AlertDetail extends AlertSummary {
  notes: string;
  contacts: string;
  cluster_name: string;
  leader: string | null;
  recipients: Recipient[];
  timeline: TimelineEvent[];
  /** The household's answer once the alert was resolved (满意 / 不满意); null: none yet. */
  satisfaction: { satisfied: boolean; answered_at_ms: number } | null;
}

export interface Account {
  name: string;
  display_name: string;
  kind: "operator" | "volunteer";
  role: string | null;
  zones: string[];
}

export interface ConsoleConfig {
  /** Leaflet's tile URL template: the gateway's own `/tiles/{z}/{x}/{y}`, a tile server's, or "". */
  tile_url: string;
  tile_attribution: string;
  /** Where the base map comes from: the gateway's MBTiles file, a tile server, none. */
  tile_source?: "local" | "remote" | "none";
  /** The local file's zoom levels and [[south, west], [north, east]] (null for a tile server). */
  tile_min_zoom?: number | null;
  tile_max_zoom?: number | null;
  tile_bounds?: [[number, number], [number, number]] | null;
  time_zone: string;
  version: string;
  /** How many coming are enough, per kind (absent from an older gateway). */
  enough_help?: Record<string, number>;
}

export interface MapZone {
  code: string;
  name: string;
}
export interface MapCluster {
  id: string;
  zone: string;
  name: string;
  leader_household: string | null;
  leader_label: string | null;
}
export interface MapHousehold {
  id: string;
  cluster: string;
  label: string;
  address: string;
  lat: number;
  lon: number;
}
export interface MapDevice {
  id: string;
  household: string;
  enabled: boolean;
  online: boolean;
  battery: number | null;
  tamper: boolean | null;
  last_heartbeat_ms: number | null;
  last_seen_ms: number | null;
  disconnect_reason: string | null;
}
export interface ZoneMap {
  zones: MapZone[];
  clusters: MapCluster[];
  households: MapHousehold[];
  devices: MapDevice[];
}

export interface Volunteer {
  zone: string;
  volunteer: {
    name: string;
    display_name: string;
    lat: number | null;
    lon: number | null;
    position_at_ms: number | null;
  };
}

export const CATEGORIES = [
  "consult",
  "help",
  "dispute",
  "crime",
  "complaint",
  "false_alarm",
] as const;
export type Category = (typeof CATEGORIES)[number];

/** A failed request: the HTTP status (0: no answer) and the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Seconds to wait, from `Retry-After` (429). */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

/** Called when any request answers 401: the session ended. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(f: () => void): void {
  onSignedOut = f;
}

/** One API call; every failure becomes an [`ApiError`] (status 0: the server was not reached). */
export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? null : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network");
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const message =
      json && typeof json === "object" && "error" in json && typeof json.error === "string"
        ? json.error
        : `HTTP ${res.status}`;
    const retry = Number(res.headers.get("retry-after"));
    if (res.status === 401 && path !== "/api/session") onSignedOut();
    throw new ApiError(res.status, message, Number.isFinite(retry) && retry > 0 ? retry : null);
  }
  return json as T;
}

/** A "needs attention" entry from device supervision (`GET /api/problems`). */
export interface Problem {
  id: number | null;
  kind: string;
  device: string | null;
  label: string | null;
  cluster: string;
  cluster_name: string;
  reason: string;
  opened_at_ms: number | null;
  flaps: number;
  flapping: boolean;
  reachable: number | null;
  households: number | null;
  notify: { channel: string; role: string; who: string; label: string; contacts: string }[];
}

/** A closed alert as the history lists it (`GET /api/alerts/history`). */
export interface HistoryAlert extends AlertSummary {
  cluster_name: string;
  raised_at: string;
  closed_at: string | null;
  /** From the press to resolved or cancelled. */
  duration_ms: number | null;
}

/** The history's filters; times are unix ms. */
export interface HistoryQuery {
  from?: number;
  to?: number;
  kind?: string;
  category?: string;
  state?: string;
  cluster?: string;
  household?: string;
  q?: string;
  cursor?: string;
  limit?: number;
}

/** A device's health now, as supervision sees it. */
export interface DeviceHealth {
  device: string;
  household: string;
  label: string;
  cluster: string;
  zone: string;
  state: "online" | "late" | "offline" | "never_seen";
  reason: string | null;
  since_ms: number | null;
  connected: boolean;
  last_heartbeat_ms: number | null;
  battery: number | null;
  battery_low: boolean;
  tamper: boolean;
  rssi: number | null;
  firmware: string | null;
}

export interface PresenceChange {
  at_ms: number;
  at: string;
  state: "online" | "offline";
  /** Offline: why (a code); online: what showed it alive (`connected`, `heartbeat`). */
  reason: string;
}

export interface BatteryReading {
  at_ms: number;
  at: string;
  level: number;
}

/** `GET /api/devices/{id}/history`: presence and battery in a window, oldest first. */
export interface DeviceHistory {
  device: DeviceHealth;
  from_ms: number;
  to_ms: number;
  presence_before: PresenceChange | null;
  presence: PresenceChange[];
  battery_before: BatteryReading | null;
  battery: BatteryReading[];
  truncated: boolean;
  /** The level under which a battery is reported low (percent). */
  battery_low: number;
}

/** How long one step took (`GET /api/stats`), from the press. */
export interface StepTimes {
  n: number;
  p50_ms: number | null;
  p90_ms: number | null;
  max_ms: number | null;
}

/** The figures of a period (`GET /api/stats`). */
export interface Stats {
  from_ms: number;
  to_ms: number;
  alerts: number;
  by_kind: Record<string, number>;
  by_category: Record<string, number>;
  open: number;
  cancelled: number;
  false_alarms: number;
  escalated_ring1: number;
  escalated_ring2: number;
  first_delivery: StepTimes;
  first_coming: StepTimes;
  first_on_scene: StepTimes;
  by_hour: number[];
  by_weekday: number[];
  by_cluster: { cluster: string; alerts: number }[];
  /** Where: ~100 m grid cells by their centre (never a household), most first. */
  places: { lat: number; lon: number; alerts: number }[];
  /** The side of those cells, in degrees of latitude and of longitude. */
  place_cell_deg: number;
  /** Per cluster, least covered first: units, unit-minutes, minutes a unit was offline. */
  coverage: {
    cluster: string;
    cluster_name: string;
    units: number;
    unit_minutes: number;
    outage_minutes: number;
    coverage_percent: number | null;
  }[];
  volunteers: {
    volunteer: string;
    display_name: string;
    came: number;
    on_scene: number;
    coming_p50_ms: number | null;
    checkins: number;
  }[];
  /** What the pressers' households answered on their resolved alerts; rate 0–1, null: none. */
  satisfaction: { resolved: number; answered: number; satisfied: number; rate: number | null };
}

/** The kinds of notice an operator writes, in the order the form offers them. */
export const NOTICE_KINDS = ["prevention", "wanted", "weather", "fire", "other"] as const;

/** A notice to residents as `GET /api/notices` lists it, with who got it. */
export interface Notice {
  id: number;
  zone: string;
  /** Empty: the whole zone. */
  clusters: string[];
  kind: string;
  title: string;
  body: string;
  author: string;
  created_at_ms: number;
  households: number;
  households_delivered: number;
  units: number;
  units_delivered: number;
  volunteers: number;
  volunteers_reached: number;
}

export interface NewNotice {
  zone?: string;
  clusters: string[];
  kind: string;
  title: string;
  body: string;
}

export function query(q: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

export const api = {
  notices: () => request<{ notices: Notice[] }>("GET", "/api/notices"),
  sendNotice: (n: NewNotice) => request<Notice>("POST", "/api/notices", n),
  stats: (q: { from?: number; to?: number; cluster?: string }) => request<Stats>("GET", `/api/stats${query(q)}`),
  history: (q: HistoryQuery) =>
    request<{ alerts: HistoryAlert[]; next: string | null }>("GET", `/api/alerts/history${query(q)}`),
  deviceHistory: (id: string, from: number, to: number) =>
    request<DeviceHistory>("GET", `/api/devices/${encodeURIComponent(id)}/history${query({ from, to })}`),
  problems: () => request<{ problems: Problem[] }>("GET", "/api/problems?limit=1000"),
  config: () => request<ConsoleConfig>("GET", "/api/console/config"),
  session: () => request<{ account: Account }>("GET", "/api/session"),
  signIn: (name: string, password: string) =>
    request<{ account: Account }>("POST", "/api/session", { name, password }),
  signOut: () => request<void>("DELETE", "/api/session"),
  map: () => request<ZoneMap>("GET", "/api/map"),
  alerts: () =>
    request<{ alerts: AlertSummary[]; stale_after_ms: number }>("GET", "/api/alerts?state=open&limit=500"),
  alert: (id: number) => request<AlertDetail>("GET", `/api/alerts/${id}`),
  volunteers: () => request<{ volunteers: Volunteer[] }>("GET", "/api/volunteers"),
  acknowledge: (id: number) =>
    request<AlertSummary>("POST", `/api/alerts/${id}/acknowledge`),
  dispatch: (id: number, volunteer: string, note: string) =>
    request<AlertSummary>("POST", `/api/alerts/${id}/dispatch`, { volunteer, note }),
  note: (id: number, text: string) =>
    request<AlertSummary>("POST", `/api/alerts/${id}/notes`, { text }),
  /** The station's own answer as a recipient: `on_scene` when its officers got there. */
  respond: (id: number, answer: "on_scene") =>
    request<AlertSummary>("POST", `/api/alerts/${id}/respond`, { answer }),
  resolve: (id: number, category: Category, note: string) =>
    request<AlertSummary>("POST", `/api/alerts/${id}/resolve`, { category, note }),
  /** Makes the alert public: its CAP messages go into the public feed (no household named). */
  publish: (id: number) => request<AlertSummary>("POST", `/api/alerts/${id}/publish`),
};

/** The public CAP 1.2 document of an alert the station published (readable without a session). */
export function capUrl(id: number | string): string {
  // The gateway writes an alert's id as "A42"; the route takes that form.
  return `/cap/alerts/A${String(id).replace(/^A/, "")}.xml`;
}

export function isOpen(state: AlertState): boolean {
  return state !== "resolved" && state !== "cancelled";
}

/** Nobody has taken it yet (the station, or a responder coming): the alarm sounds for these. */
export function needsAcknowledgement(a: AlertSummary): boolean {
  return a.state === "raised" || a.state === "notified";
}
