// Times on the console: clock times in the station's time zone (whatever the browser's own
// zone is), and elapsed times that a monitor reads at a glance.

import { currentLang } from "./i18n";

const FALLBACK_TZ = "Asia/Shanghai";
let timeZone = FALLBACK_TZ;

/** Sets the station's time zone; false (and the fallback) if the browser does not know it. */
export function setTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    timeZone = tz;
    return true;
  } catch {
    timeZone = FALLBACK_TZ;
    return false;
  }
}

export function stationTimeZone(): string {
  return timeZone;
}

function locale(): string {
  return currentLang() === "en" ? "en-GB" : "zh-CN";
}

/** "14:03:27" in the station's zone. */
export function clock(ms: number): string {
  return new Intl.DateTimeFormat(locale(), {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).format(ms);
}

/** "11-23 14:03:27" in the station's zone, for timelines that may span days. */
export function dateTime(ms: number): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone,
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).formatToParts(ms);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("month")}-${get("day")} ${get("hour")}:${get("minute")}:${get("second")}`;
}

/** "0:07", "12:45", "1:02:03". */
export function elapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A response time after the press ("—" if it has not happened). */
export function after(start: number, at: number | null): string {
  return at === null ? "—" : elapsed(at - start);
}

/** "2026-11-23 14:03" in the station's zone, for lists that span months. */
export function dateMinute(ms: number): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(ms);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")}`;
}

/** How far the station's zone is ahead of UTC at `ms` (ms). */
function zoneOffset(ms: number): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  }).formatToParts(ms);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const local = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return local - Math.floor(ms / 1000) * 1000;
}

/** The moment a day ("2026-12-05", as a date input gives it) begins in the station's zone. */
export function stationDayStart(day: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return null;
  const guess = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const first = guess - zoneOffset(guess);
  // Once more from the first answer: the offset may differ across a clock change.
  return guess - zoneOffset(first);
}

/** Today's date in the station's zone, as a date input shows it. */
export function stationToday(now = Date.now()): string {
  return dateMinute(now).slice(0, 10);
}

/** A duration a monitor reads at a glance: "0:45", "12:03", "1:02:03", "3 天 4:05:00". */
export function duration(ms: number): string {
  const days = Math.floor(ms / 86_400_000);
  const unit = currentLang() === "en" ? "d" : "天";
  return days > 0 ? `${days} ${unit} ${elapsed(ms - days * 86_400_000)}` : elapsed(ms);
}
