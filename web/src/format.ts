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
