// The volunteer app's service worker (/app/sw.js, scope /app/), copied verbatim by Vite.
//
// push: shows a notification for EVERY push (iOS drops subscriptions whose pushes show
// nothing), one per alert (tag), replaced when the alert changes, and tells the gateway the
// phone got it (answer "delivered").
// notificationclick: the "我来了" / "去不了" actions answer the alert without opening the app;
// a plain tap opens (or focuses) the app on the alert's page.
// fetch: the app's pages and assets network-first, with the last copy as the fallback, so the
// installed app opens without a network and says it cannot reach the server. The API is never
// cached.
//
// The handlers are plain functions on `self` (twHandlePush, twHandleClick) so that a test can
// call them directly: a synthetic notificationclick event cannot use waitUntil.

/* eslint-env serviceworker */
"use strict";

const PREFS_CACHE = "tenwatch-prefs";
const PREFS_URL = "/app/__prefs.json";
const SHELL_CACHE = "tenwatch-app-v1";

/** The language the app stored (see src/app/i18n.ts), "zh" unless it says "en". */
async function twLang() {
  try {
    const cache = await caches.open(PREFS_CACHE);
    const res = await cache.match(PREFS_URL);
    if (!res) return "zh";
    const prefs = await res.json();
    return prefs && prefs.lang === "en" ? "en" : "zh";
  } catch {
    return "zh";
  }
}

const WORDS = {
  zh: { coming: "我来了", decline: "去不了", fallbackTitle: "十户联防 · 新警情", fallbackBody: "点击查看" },
  en: { coming: "I'm coming", decline: "Can't go", fallbackTitle: "tenwatch · new alert", fallbackBody: "Tap to open" },
};

/** An alert id as the gateway writes it ("A17"; a bare 17 is read the same), or null. */
function twAlertId(v) {
  const s = v == null ? "" : String(v);
  if (/^\d+$/.test(s)) return `A${s}`;
  return /^A\d+$/.test(s) ? s : null;
}

/** POSTs a volunteer's answer with the session cookie; resolves to the HTTP status (0: none). */
async function twRespond(alertId, answer) {
  try {
    const res = await fetch(`/api/alerts/${encodeURIComponent(alertId)}/respond`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ answer }),
    });
    return res.status;
  } catch {
    return 0;
  }
}

/** What the notification says and does, from a push payload (see the gateway's push module). */
async function twNotification(data) {
  const lang = await twLang();
  const closed = Boolean(data && (data.state === "resolved" || data.state === "cancelled"));
  const w = WORDS[lang];
  const id = twAlertId(data && data.alert);
  const title = (lang === "en" ? data && data.title_en : data && data.title) || (data && data.title) || w.fallbackTitle;
  const body = (lang === "en" ? data && data.body_en : data && data.body) || (data && data.body) || w.fallbackBody;
  const url = data && typeof data.url === "string" && data.url.startsWith("/app/") ? data.url : id !== null ? `/app/#/alert/${id}` : "/app/";
  const options = {
    body,
    tag: (data && data.tag) || (id !== null ? `tw-alert-${id.slice(1)}` : "tw-alert"),
    // A new state of the same alert replaces the notification and rings again.
    renotify: true,
    // An alert stays until answered; "no need to come" and a notice may go by themselves.
    requireInteraction: !closed && id !== null,
    icon: "/app/icons/icon-192.png",
    badge: "/app/icons/maskable-192.png",
    lang: lang === "en" ? "en" : "zh-CN",
    timestamp: data && typeof data.at_ms === "number" ? data.at_ms : Date.now(),
    vibrate: [300, 100, 300, 100, 300],
    data: { alert: id, url, state: data && data.state, closed, lang },
  };
  // Actions only where the browser shows them (not Safari/iOS), and not on a closed alert.
  if (id !== null && !closed && "actions" in Notification.prototype) {
    options.actions = [
      { action: "coming", title: w.coming },
      { action: "decline", title: w.decline },
    ];
  }
  return { title, options };
}

/** The push event's work: show the notification, then say "delivered". */
async function twHandlePush(data) {
  const { title, options } = await twNotification(data);
  await self.registration.showNotification(title, options);
  const id = options.data.alert;
  // The station sees the phone got it (not worth saying once the alert is over).
  const delivered = id !== null && !options.data.closed ? await twRespond(id, "delivered") : null;
  return { shown: title, tag: options.tag, delivered };
}

/** Opens the app on `url`, reusing an open window of the app when there is one. */
async function twOpen(url) {
  const target = new URL(url, self.location.origin).href;
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) {
    if (new URL(client.url).pathname.startsWith("/app/") && "focus" in client) {
      if (client.url !== target && "navigate" in client) {
        try {
          await client.navigate(target);
        } catch {
          // An uncontrolled window cannot be navigated: it still gets the focus.
        }
      }
      // Focusing needs the user's tap (a real notificationclick); without one it is refused.
      return client.focus().catch(() => client);
    }
  }
  return self.clients.openWindow(target).catch(() => null);
}

/**
 * A notification tap: `action` is "coming", "decline" or "" (the body). Takes
 * `{action, notification}` where notification needs only `data` (and optionally `close`).
 */
async function twHandleClick({ action, notification }) {
  const data = (notification && notification.data) || {};
  if (notification && typeof notification.close === "function") notification.close();
  const id = twAlertId(data.alert);
  const url = data.url || (id !== null ? `/app/#/alert/${id}` : "/app/");
  if (id !== null && (action === "coming" || action === "decline")) {
    const answer = action === "coming" ? "coming" : "declined";
    const status = await twRespond(id, answer);
    // Signed out, or no network: open the alert so the volunteer can answer there.
    if (status < 200 || status >= 300) {
      await twOpen(url);
    }
    return { answer, status };
  }
  await twOpen(url);
  return { opened: url };
}

self.twHandlePush = twHandlePush;
self.twHandleClick = twHandleClick;

self.addEventListener("push", (event) => {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch {
    data = { body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(twHandlePush(data));
});

self.addEventListener("notificationclick", (event) => {
  const work = twHandleClick({ action: event.action, notification: event.notification });
  // A synthetic event (tests) cannot extend its lifetime; a real one must.
  if (event.isTrusted) event.waitUntil(work);
});

self.addEventListener("install", () => {
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names.filter((n) => n.startsWith("tenwatch-app-") && n !== SHELL_CACHE).map((n) => caches.delete(n)),
      );
      await self.clients.claim();
    })(),
  );
});

/** The app's own files: its pages, its static files and the hashed assets they load. */
function twIsShell(url) {
  return (
    url.origin === self.location.origin &&
    !url.pathname.startsWith("/api/") &&
    url.pathname !== PREFS_URL &&
    (url.pathname.startsWith("/app/") || url.pathname.startsWith("/assets/"))
  );
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (!twIsShell(url)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      try {
        const res = await fetch(req);
        if (res.ok && res.type === "basic") cache.put(req, res.clone()).catch(() => undefined);
        return res;
      } catch (e) {
        const cached = (await cache.match(req)) || (req.mode === "navigate" ? await cache.match("/app/") : undefined);
        if (cached) return cached;
        throw e;
      }
    })(),
  );
});
