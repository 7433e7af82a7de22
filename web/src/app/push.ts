// Web Push for the volunteer: the service worker's registration, the notification state shown
// on the page (on / off / blocked / not supported / iOS not installed) and the subscribe and
// unsubscribe flows against the gateway.

import { ApiError, volunteerApi } from "./api";

export type PushState = "on" | "off" | "blocked" | "unsupported" | "ios-install";

const SW_URL = "/app/sw.js";
const SCOPE = "/app/";
/** A push service that does not answer must not leave the button spinning for ever. */
const SUBSCRIBE_TIMEOUT_MS = 20_000;

/** iPhone/iPad (iPadOS reports itself as a Mac with a touch screen). */
export function isIos(): boolean {
  const ua = navigator.userAgent;
  return /iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1);
}

/** Opened from the Home Screen / as an installed app. */
export function isStandalone(): boolean {
  return (
    window.matchMedia?.("(display-mode: standalone)").matches === true ||
    (navigator as Navigator & { standalone?: boolean }).standalone === true
  );
}

function supported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

let registration: Promise<ServiceWorkerRegistration | null> | null = null;

/** Registers the service worker once; null where there is none (or it failed). */
export function serviceWorker(): Promise<ServiceWorkerRegistration | null> {
  if (!registration) {
    registration =
      "serviceWorker" in navigator
        ? navigator.serviceWorker
            .register(SW_URL, { scope: SCOPE })
            .then(() => navigator.serviceWorker.ready)
            .catch((e: unknown) => {
              console.warn("service worker registration failed", e);
              return null;
            })
        : Promise.resolve(null);
  }
  return registration;
}

export async function pushState(): Promise<PushState> {
  // iOS Safari offers push only to an app added to the Home Screen (16.4+).
  if (isIos() && !isStandalone()) return "ios-install";
  if (!supported()) return "unsupported";
  if (Notification.permission === "denied") return "blocked";
  if (Notification.permission !== "granted") return "off";
  const reg = await serviceWorker();
  if (!reg) return "unsupported";
  const sub = await reg.pushManager.getSubscription();
  return sub ? "on" : "off";
}

/** The VAPID key as the bytes `subscribe` wants (base64url, padding optional). */
export function keyBytes(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
  const raw = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = window.setTimeout(() => reject(new Error(what)), ms);
    p.then(
      (v) => {
        window.clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        window.clearTimeout(timer);
        reject(e);
      },
    );
  });
}

export class PushError extends Error {
  constructor(readonly reason: "blocked" | "push-service" | "server", message: string) {
    super(message);
  }
}

/**
 * Asks for permission, subscribes with the gateway's VAPID key and registers the
 * subscription with the gateway. Call from a click: browsers ask only on a user gesture.
 */
export async function enablePush(): Promise<PushState> {
  if (!supported()) return "unsupported";
  const permission = await Notification.requestPermission();
  if (permission === "denied") return "blocked";
  if (permission !== "granted") return "off";
  const reg = await serviceWorker();
  if (!reg) return "unsupported";
  const { public_key } = await volunteerApi.pushKey();
  const wanted = keyBytes(public_key);
  let sub = await reg.pushManager.getSubscription();
  // A subscription made with another key (the gateway's key was rotated) cannot be used.
  if (sub && !sameKey(sub.options.applicationServerKey, wanted)) {
    await sub.unsubscribe().catch(() => false);
    sub = null;
  }
  if (!sub) {
    try {
      sub = await withTimeout(
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: wanted }),
        SUBSCRIBE_TIMEOUT_MS,
        "push service timeout",
      );
    } catch (e) {
      if (Notification.permission === "denied") return "blocked";
      throw new PushError("push-service", e instanceof Error ? e.message : String(e));
    }
  }
  try {
    await volunteerApi.subscribe(sub.toJSON());
  } catch (e) {
    throw new PushError("server", e instanceof ApiError ? e.message : String(e));
  }
  return "on";
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return true; // unknown (old browsers): keep the subscription
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

export async function disablePush(): Promise<PushState> {
  const reg = await serviceWorker();
  const sub = await reg?.pushManager.getSubscription();
  if (sub) {
    await volunteerApi.unsubscribe(sub.endpoint).catch(() => undefined);
    await sub.unsubscribe().catch(() => false);
  }
  return pushState();
}
