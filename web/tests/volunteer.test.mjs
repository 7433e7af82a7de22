// The patrol volunteer app (/app/) in a real browser (Debian's Chromium, headless, driven by
// playwright-core, on a phone-sized viewport) against a real tenwatch gateway, with
// Mosquitto's clients as the devices. The tests run in order and share one gateway and one
// phone: the volunteer signs in, goes on duty, enables notifications, gets an alert, answers
// it, checks in on patrol and loses the network. Screenshots go to docs/screenshots/.
//
// What Chromium cannot do offline is stood in for, and nothing else: pushManager.subscribe()
// (its push service is Google's) is stubbed to return a subscription whose endpoint is a
// local recorder, and the push itself is delivered through the DevTools protocol into the
// real service worker.

import assert from "node:assert/strict";
import { createDecipheriv, createECDH, hkdfSync, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Gateway, PASSWORD, ROOT, killAll, press, seed, until, uplink } from "./harness.mjs";

const SHOTS = path.join(ROOT, "docs/screenshots");
const PHONE = { width: 390, height: 844 };

/** @type {Awaited<ReturnType<typeof seed>>} */
let world;
/** @type {Gateway} */
let gw;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {import("playwright-core").BrowserContext} */
let context;
/** @type {import("playwright-core").Page} */
let page;
/** The station's API headers. */
let station;
/** A stand-in push service: whatever the gateway sends to the stubbed subscription. */
let pushService;
const pushes = [];
let seq = 5000;
/** The alert the volunteer is sent to (test 3 on). */
let alertId;
/** The phone's push keys (the stubbed subscription's): private ECDH key and auth secret. */
let phoneKeys;

/**
 * What the phone's browser does with a push body (RFC 8291 / 8188, aes128gcm, one record):
 * the plaintext the gateway encrypted for this subscription.
 */
function decryptPush(body) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const senderKey = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  const secret = phoneKeys.ecdh.computeSecret(senderKey);
  const keyInfo = Buffer.concat([Buffer.from("WebPush: info\0"), phoneKeys.ecdh.getPublicKey(), senderKey]);
  const ikm = Buffer.from(hkdfSync("sha256", secret, phoneKeys.auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  // The last record ends with the delimiter 2, then zero padding.
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  assert.equal(padded[end], 2, "the last record's delimiter");
  return JSON.parse(padded.subarray(0, end).toString("utf8"));
}

/** The device of household `n` (1-based) of cluster `c` (1-based) of the demo zone. */
function device(c, n) {
  const cred = world.credentials.find((x) => x.household === `11010501-${String(c).padStart(3, "0")}-${String(n).padStart(2, "0")}`);
  assert.ok(cred, `no device for cluster ${c} household ${n}`);
  return cred;
}

async function signIn(name, password = PASSWORD) {
  await page.goto(gw.base + "/app/");
  await page.locator("#name").fill(name);
  await page.locator("#password").fill(password);
  await page.getByRole("button", { name: /登录|Sign in/ }).click();
}

/** What the station sees of the volunteer as a recipient of `id`. */
async function stationSeesPatrol1(id) {
  const d = await gw.api(station, "GET", `/api/alerts/${id}`);
  return d.recipients.find((r) => r.kind === "volunteer" && r.who === "patrol1");
}

/** The notification tag of alert "A17": "tw-alert-17". */
const tagOf = (id) => `tw-alert-${String(id).replace(/^A/, "")}`;

/** A push payload as the gateway builds it (gateway/src/push.rs). */
function payload(id, presser, extra = {}) {
  return {
    alert: id,
    tag: tagOf(id),
    url: `/app/#/alert/${id}`,
    kind: "help",
    state: "notified",
    ring: 0,
    label: presser.label,
    address: presser.label,
    lat: presser.lat,
    lon: presser.lon,
    distance_m: 80,
    responders: 0,
    title: `求助 · ${presser.label}`,
    body: "距您 80 米 · 暂无人响应",
    title_en: `Help · ${presser.label}`,
    body_en: "80 m from you · nobody coming yet",
    at_ms: Date.now(),
    ...extra,
  };
}

/** The notifications the service worker shows with `tag`, as the page sees them. */
function notifications(tag) {
  return page.evaluate(async (tag) => {
    const reg = await navigator.serviceWorker.ready;
    const list = await reg.getNotifications({ tag });
    return list.map((n) => ({
      title: n.title,
      body: n.body,
      tag: n.tag,
      requireInteraction: n.requireInteraction,
      actions: (n.actions ?? []).map((a) => ({ action: a.action, title: a.title })),
      data: n.data,
    }));
  }, tag);
}

/** One DevTools session on the phone's page, kept open (pushes need it). */
let cdp;
const registrations = new Map();
async function devtools() {
  if (!cdp) {
    cdp = await context.newCDPSession(page);
    cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations: regs }) => {
      for (const r of regs) registrations.set(r.registrationId, r);
    });
    await cdp.send("ServiceWorker.enable");
  }
  return cdp;
}

/** A push into the app's service worker through DevTools, as a push service would send it. */
async function deliverPush(data) {
  const cdp = await devtools();
  const reg = await until("the app's service worker registration", () =>
    [...registrations.values()].find((r) => r.scopeURL === `${gw.base}/app/` && !r.isDeleted),
  );
  await cdp.send("ServiceWorker.deliverPushMessage", {
    origin: gw.base,
    registrationId: reg.registrationId,
    data: JSON.stringify(data),
  });
}

async function theServiceWorker() {
  return context.serviceWorkers().find((w) => w.url().endsWith("/app/sw.js")) ??
    context.waitForEvent("serviceworker", { predicate: (w) => w.url().endsWith("/app/sw.js") });
}

describe("volunteer app", { timeout: 240_000 }, () => {
  before(async () => {
    world = await seed();
    // The stubbed subscription's endpoint is the local recorder below.
    gw = new Gateway(world.dir, ["--push-allow-loopback"]);
    await gw.ports();
    await gw.start();
    station = await gw.signIn("station");
    pushService = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        pushes.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(201).end();
      });
    });
    pushService.listen(0, "127.0.0.1");
    await once(pushService, "listening");
    await mkdir(SHOTS, { recursive: true });

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const near = device(1, 6);
    context = await browser.newContext({
      viewport: PHONE,
      deviceScaleFactor: 2,
      hasTouch: true,
      locale: "zh-CN",
      timezoneId: "Asia/Shanghai",
      permissions: ["geolocation"],
      geolocation: { latitude: near.lat - 0.0006, longitude: near.lon + 0.0004, accuracy: 12 },
    });
    // The push service stand-in: subscribe() answers at once with a subscription whose
    // endpoint is the local recorder and whose keys are real P-256 / auth values.
    const ecdh = createECDH("prime256v1");
    ecdh.generateKeys();
    phoneKeys = { ecdh, auth: randomBytes(16) };
    const sub = {
      endpoint: `http://127.0.0.1:${pushService.address().port}/push/patrol1-phone`,
      p256dh: ecdh.getPublicKey().toString("base64url"),
      auth: phoneKeys.auth.toString("base64url"),
    };
    await context.addInitScript((sub) => {
      if (!("PushManager" in self)) return;
      // Kept across reloads, as a browser keeps a subscription.
      const KEY = "test.push-subscribed";
      const make = (options) => ({
        endpoint: sub.endpoint,
        expirationTime: null,
        options,
        getKey: () => null,
        toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: { p256dh: sub.p256dh, auth: sub.auth } }),
        unsubscribe: async () => {
          localStorage.removeItem(KEY);
          return true;
        },
      });
      PushManager.prototype.subscribe = async function (options) {
        self.__twSubscribeKey = Array.from(new Uint8Array(options.applicationServerKey));
        localStorage.setItem(KEY, JSON.stringify(Array.from(new Uint8Array(options.applicationServerKey))));
        return make(options);
      };
      PushManager.prototype.getSubscription = async function () {
        const key = localStorage.getItem(KEY);
        return key ? make({ userVisibleOnly: true, applicationServerKey: new Uint8Array(JSON.parse(key)).buffer }) : null;
      };
    }, sub);
    page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    pushService?.close();
    killAll();
    if (process.env.KEEP_DATA) console.log("data kept in", world?.dir);
    else await world?.cleanup();
  });

  test("an operator is sent to the console; the volunteer signs in, goes on duty and the station sees where", async () => {
    await signIn("station");
    await page.getByText("这是站务账户").waitFor();
    assert.equal(await page.getByRole("link", { name: "打开站务台" }).getAttribute("href"), "/");
    await page.getByRole("button", { name: "改用队员账户登录" }).click();

    await signIn("patrol1", "wrong password");
    await until("the wrong-password message", async () => /错误/.test(await page.locator(".login-error").innerText()));
    await page.screenshot({ path: path.join(SHOTS, "volunteer-signin.png") });
    await signIn("patrol1");
    await page.locator(".app-top").getByText("联防队员 刘强").waitFor();
    const duty = page.locator(".duty-card");
    assert.equal(await duty.locator(".duty-state").innerText(), "未在岗");
    assert.match(await duty.locator(".position").innerText(), /不共享位置/);

    await page.getByRole("button", { name: "开始值守" }).click();
    await until("on duty", async () => (await duty.locator(".duty-state").innerText()) === "在岗");
    await until("the position sent", async () => /正在共享位置 · 已上报/.test(await duty.locator(".position").innerText()));
    const near = device(1, 6);
    const seen = await until("the station to see the volunteer's position", async () => {
      const { volunteers } = await gw.api(station, "GET", "/api/volunteers");
      return volunteers.find((v) => v.volunteer.name === "patrol1" && v.volunteer.lat !== null)?.volunteer;
    });
    assert.ok(Math.abs(seen.lat - (near.lat - 0.0006)) < 1e-6 && Math.abs(seen.lon - (near.lon + 0.0004)) < 1e-6, JSON.stringify(seen));
    const vol = await gw.signIn("patrol1");
    const me = await gw.api(vol, "GET", "/api/volunteer/me");
    assert.equal(me.on_duty, true);
    assert.ok(me.position && Math.abs(me.position.lat - seen.lat) < 1e-9, JSON.stringify(me));
  });

  test("Chromium finds the app installable: manifest, icons, service worker", async () => {
    await page.evaluate(() => navigator.serviceWorker.ready);
    const session = await devtools();
    const manifest = await session.send("Page.getAppManifest");
    assert.equal(manifest.url, `${gw.base}/app/manifest.webmanifest`);
    assert.deepEqual(manifest.errors, []);
    // The one objection left is the test's own throwaway profile.
    const { installabilityErrors } = await session.send("Page.getInstallabilityErrors");
    assert.deepEqual(installabilityErrors.map((e) => e.errorId).filter((id) => id !== "in-incognito"), []);
    const m = await (await fetch(manifest.url)).json();
    assert.equal(m.display, "standalone");
    assert.equal(m.start_url, "/app/");
    assert.equal(m.scope, "/app/");
    assert.equal(m.name, "十户联防 队员");
    for (const icon of m.icons) {
      const res = await fetch(gw.base + icon.src);
      assert.equal(res.headers.get("content-type"), "image/png", icon.src);
      const png = Buffer.from(await res.arrayBuffer());
      const [w, h] = icon.sizes.split("x").map(Number);
      assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [w, h], `${icon.src} is ${icon.sizes}`);
    }
    assert.deepEqual(m.icons.map((i) => `${i.sizes} ${i.purpose}`).sort(), ["192x192 any", "192x192 maskable", "512x512 any", "512x512 maskable"]);
    const sw = await fetch(`${gw.base}/app/sw.js`);
    assert.equal(sw.headers.get("cache-control"), "no-cache");
    assert.match(sw.headers.get("content-type"), /javascript/);
    assert.equal(await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL), `${gw.base}/app/sw.js`);
  });

  test("enabling notifications subscribes with the gateway's key and registers the subscription", async () => {
    const card = page.locator(".notif-card");
    // Headless Chromium answers "denied" until allowed: the page says how to unblock.
    await until("the blocked state", async () => (await card.getAttribute("data-push")) === "blocked");
    assert.match(await card.innerText(), /网站设置中允许「通知」/);
    // (Granting for an origin replaces what it had: keep the position allowed too.)
    await context.grantPermissions(["notifications", "geolocation"], { origin: gw.base });
    // Allowed in the settings: the page notices by itself and offers to enable.
    await until("the off state", async () => (await card.getAttribute("data-push")) === "off");
    await card.getByRole("button", { name: "开启通知" }).click();
    await until("notifications on", async () => (await card.getAttribute("data-push")) === "on");
    assert.equal(await card.locator(".notif-state").innerText(), "已开启");

    const vol = await gw.signIn("patrol1");
    const { public_key } = await gw.api(vol, "GET", "/api/push/key");
    const used = await page.evaluate(() => self.__twSubscribeKey);
    assert.deepEqual(Buffer.from(used), Buffer.from(public_key, "base64url"), "subscribed with the gateway's VAPID key");
    assert.equal(used.length, 65, "an uncompressed P-256 point");
    const me = await until("the subscription on the server", async () => {
      const m = await gw.api(vol, "GET", "/api/volunteer/me");
      return m.subscriptions === 1 && m;
    });
    assert.equal(me.subscriptions, 1);
    await until("the count on the page", async () => /1 台设备已订阅/.test(await card.innerText()));
    await page.screenshot({ path: path.join(SHOTS, "volunteer-duty.png") });
  });

  test("a push shows one notification with the two answers, and the station sees it was delivered", async () => {
    const presser = device(1, 3);
    await press(gw, presser, ++seq, "help");
    const alert = await until("the alert at the station", async () => {
      const { alerts } = await gw.api(station, "GET", "/api/alerts");
      return alerts.find((a) => a.household === presser.household);
    });
    alertId = alert.id;
    await gw.api(station, "POST", `/api/alerts/${alertId}/dispatch`, { volunteer: "patrol1", note: "请前往查看" });
    // The zone's open alerts reach the app by the feed.
    const row = page.locator(`.alert-row[data-alert="${alertId}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(presser.label));
    assert.match(await row.innerText(), /求助/);
    await page.screenshot({ path: path.join(SHOTS, "volunteer-alerts.png") });

    // The gateway itself pushed to the phone's subscription (encrypted, to the recorder).
    const push = await until("the gateway's push to the subscription", () => pushes.find((p) => p.url === "/push/patrol1-phone"));
    assert.equal(push.headers["content-encoding"], "aes128gcm");
    assert.match(push.headers.authorization, /^vapid t=/);
    await until("the station to see the push accepted", async () => (await stationSeesPatrol1(alertId))?.push === "accepted");

    // Decrypted as the phone's browser would, it is the alert, for this phone.
    const sent = decryptPush(push.body);
    assert.equal(sent.alert, alertId);
    assert.equal(sent.url, `/app/#/alert/${alertId}`);
    assert.equal(sent.label, presser.label);
    assert.equal(sent.title, `求助 · ${presser.label}`);
    assert.equal(sent.title_en, `Help · ${presser.label}`);
    // (A dispatched volunteer's push carries no distance today; a ring's does.)
    assert.ok(sent.distance_m === null || (sent.distance_m > 0 && sent.distance_m < 200), `distance ${sent.distance_m}`);

    // What the push service hands the phone: that very payload, through DevTools.
    const tag = tagOf(alertId);
    assert.equal(sent.tag, tag);
    await deliverPush(sent);
    const shown = await until("the notification", async () => {
      const list = await notifications(tag);
      return list.length === 1 && list;
    });
    assert.equal(shown[0].title, `求助 · ${presser.label}`);
    assert.equal(shown[0].body, sent.body);
    assert.match(shown[0].body, new RegExp(presser.label));
    assert.equal(shown[0].requireInteraction, true);
    assert.deepEqual(shown[0].actions, [
      { action: "coming", title: "我来了" },
      { action: "decline", title: "去不了" },
    ]);
    assert.equal(shown[0].data.alert, alertId);
    assert.equal(shown[0].tag, tag);
    assert.equal(shown[0].data.url, `/app/#/alert/${alertId}`);

    // A later push for the same alert replaces it: still one.
    await deliverPush(payload(alertId, presser, { state: "acknowledged", responders: 1, body: "距您 80 米 · 1 人正在赶来" }));
    await until("the notification replaced", async () => {
      const list = await notifications(tag);
      return list.length === 1 && list[0].body === "距您 80 米 · 1 人正在赶来";
    });

    const r = await until("the station to see the phone got it", async () => {
      const mine = await stationSeesPatrol1(alertId);
      return mine?.state === "delivered" && mine;
    });
    assert.equal(r.state, "delivered");
  });

  test("the notification's 我来了 answers the alert from the service worker", async () => {
    const sw = await theServiceWorker();
    const tag = tagOf(alertId);
    // The real notification's click handler, called as a function (a synthetic
    // notificationclick cannot extend its lifetime with waitUntil).
    const result = await sw.evaluate(async (tag) => {
      const [n] = await self.registration.getNotifications({ tag });
      return self.twHandleClick({ action: "coming", notification: n });
    }, tag);
    assert.deepEqual(result, { answer: "coming", status: 200 });
    assert.equal((await notifications(tag)).length, 0, "the notification is closed");
    const mine = await until("the station to see the volunteer coming", async () => {
      const m = await stationSeesPatrol1(alertId);
      return m?.state === "coming" && m;
    });
    assert.equal(mine.state, "coming");
    const { state } = await gw.api(station, "GET", `/api/alerts/${alertId}`);
    assert.equal(state, "acknowledged", "the first responder coming acknowledges the alert");

    // 去不了 on another alert: the station sees the volunteer cannot go.
    const other = device(2, 5);
    await press(gw, other, ++seq, "medical");
    const second = await until("the second alert", async () => {
      const { alerts } = await gw.api(station, "GET", "/api/alerts");
      return alerts.find((a) => a.household === other.household);
    });
    await gw.api(station, "POST", `/api/alerts/${second.id}/dispatch`, { volunteer: "patrol1", note: "" });
    const declined = await sw.evaluate(
      (id) => self.twHandleClick({ action: "decline", notification: { data: { alert: id, url: `/app/#/alert/${id}` } } }),
      second.id,
    );
    assert.deepEqual(declined, { answer: "declined", status: 200 });
    assert.equal((await stationSeesPatrol1(second.id))?.state, "declined");
  });

  test("the alert page: what is known, who is coming, on scene; and in English", async () => {
    const presser = device(1, 3);
    await page.goto(`${gw.base}/app/#/alert/${alertId}`);
    const pageEl = page.locator(`.alert-page[data-alert="${alertId}"]`);
    await pageEl.locator(".alert-label").filter({ hasText: presser.label }).waitFor();
    await until("my answer shown", async () => (await pageEl.locator(".my-state strong").innerText()) === "正在赶来");
    assert.equal(await pageEl.locator("button.answer-coming").getAttribute("aria-pressed"), "true");
    assert.match(await pageEl.locator(".alert-distance").innerText(), /距您 \d+ 米/);
    assert.match(await pageEl.locator(".known-card").innerText(), /联系人/);
    // Navigate: the phone's maps app by a geo: link, and the platform's map (not Apple's on
    // this Linux phone). Only the addresses are checked: nothing is followed off this machine.
    const [lat, lon] = [presser.lat.toFixed(6), presser.lon.toFixed(6)];
    const geo = pageEl.locator("a.nav-geo");
    assert.equal(await geo.innerText(), "导航前往");
    assert.equal(await geo.getAttribute("href"), `geo:${lat},${lon}?q=${lat},${lon}(${encodeURIComponent(presser.label)})`);
    const maps = pageEl.locator("a.nav-maps");
    assert.equal(await maps.innerText(), "高德地图");
    const amap = new URL(await maps.getAttribute("href"));
    assert.equal(amap.origin, "https://uri.amap.com");
    assert.equal(amap.searchParams.get("to"), `${lon},${lat},${presser.label}`);
    assert.equal(amap.searchParams.get("coordinate"), "wgs84");
    assert.ok(await geo.isVisible() && (await maps.isVisible()));
    // An iPhone gets Apple Maps (iOS has no geo: handler), with the same point.
    const iphone = await browser.newContext({
      viewport: PHONE,
      userAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    });
    try {
      await iphone.addCookies(await context.cookies());
      const ios = await iphone.newPage();
      await ios.goto(`${gw.base}/app/#/alert/${alertId}`);
      const apple = ios.locator("a.nav-maps");
      await apple.waitFor();
      assert.equal(await apple.innerText(), "苹果地图");
      const url = new URL(await apple.getAttribute("href"));
      assert.equal(url.origin, "https://maps.apple.com");
      assert.equal(url.searchParams.get("daddr"), `${lat},${lon}`);
    } finally {
      await iphone.close();
    }
    // The household and the volunteer on the map.
    await pageEl.locator("path.pin-alert").waitFor();
    await pageEl.locator("path.pin-me").waitFor();

    // A neighbour's unit answers "I'm coming" by MQTT: the page shows who else is coming.
    const neighbour = device(1, 4);
    const { execFile } = await import("node:child_process");
    await new Promise((resolve, reject) =>
      execFile(
        "mosquitto_pub",
        ["-h", "127.0.0.1", "-p", String(gw.mqtt), "-i", neighbour.device, "-u", neighbour.device, "-P", neighbour.password, "-V", "mqttv311", "-q", "1",
          "-t", `tw/d/${neighbour.device}/up/respond`, "-m", JSON.stringify({ alert: alertId, answer: "coming" })],
        (e) => (e ? reject(e) : resolve()),
      ),
    );
    await pageEl.locator(`.coming[data-who="${neighbour.device}"]`).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "volunteer-alert.png") });

    await pageEl.getByRole("button", { name: /已到场/ }).click();
    await until("on scene on the page", async () => (await pageEl.locator(".my-state strong").innerText()) === "已到场");
    const mine = await until("the station to see the volunteer on scene", async () => {
      const m = await stationSeesPatrol1(alertId);
      return m?.state === "on_scene" && m;
    });
    assert.equal(mine.state, "on_scene");
    assert.equal((await gw.api(station, "GET", `/api/alerts/${alertId}`)).state, "on_scene");
    assert.equal(await pageEl.locator("button.answer-coming").isDisabled(), true, "no going back from on scene");

    // English, remembered across a reload, and spoken by the service worker too.
    await page.getByRole("button", { name: "Switch to English" }).click();
    await until("English", async () => (await pageEl.locator(".my-state").innerText()).startsWith("Your answer"));
    await page.reload();
    await until("still English", async () => (await page.locator(".my-state").innerText()) === "Your answer: on scene");
    assert.equal(await page.locator("a.nav-geo").innerText(), "Navigate");
    assert.equal(await page.locator("nav.tabs .tab").first().innerText(), "Duty");
    await page.screenshot({ path: path.join(SHOTS, "volunteer-alert-en.png") });
    const tag = tagOf(alertId);
    await deliverPush(payload(alertId, presser, { state: "on_scene", responders: 2 }));
    const [n] = await until("the English notification", async () => {
      const list = await notifications(tag);
      return list.length === 1 && list;
    });
    assert.equal(n.title, `Help · ${presser.label}`);
    assert.deepEqual(n.actions.map((a) => a.title), ["I'm coming", "Can't go"]);
    await page.getByRole("button", { name: "切换到中文" }).click();
    await until("Chinese again", async () => (await page.locator("nav.tabs .tab").first().innerText()) === "值守");
  });

  test("the list puts an alert nobody is coming to before a nearer one that has help", async () => {
    // The alert of (1, 3), next to this phone, has the volunteer and a neighbour on it by now;
    // a household of the other cluster, farther away, presses and nobody is coming yet.
    const far = device(2, 8);
    const phone = device(1, 6);
    const away = (d) => Math.hypot(d.lat - phone.lat, (d.lon - phone.lon) * Math.cos((phone.lat * Math.PI) / 180));
    assert.ok(away(far) > away(device(1, 3)), "the test's premise: the new alert is the farther one");
    await press(gw, far, ++seq, "help");
    const alert = await until("the far alert at the station", async () => {
      const { alerts } = await gw.api(station, "GET", "/api/alerts");
      return alerts.find((a) => a.household === far.household);
    });
    await page.goto(`${gw.base}/app/#/`);
    const rows = page.locator(".alert-list a.alert-row");
    await page.locator(`.alert-row[data-alert="${alert.id}"]`).waitFor();
    const order = await rows.evaluateAll((els) => els.map((e) => e.dataset.alert));
    assert.ok(
      order.indexOf(alert.id) < order.indexOf(alertId),
      `nobody is coming to ${alert.id}: it comes before ${alertId}, which is nearer and has help (${order})`,
    );
    assert.match(await page.locator(`.alert-row[data-alert="${alert.id}"]`).innerText(), /暂无人响应/);
    assert.equal(order.at(-1), alertId, `the alert with help comes last (${order})`);
  });

  test("an alert that already has enough help says so, and 我来了 asks first", async () => {
    // Four neighbours answer "coming" to a press of cluster 2: enough for help (4 by default).
    const presser = device(2, 2);
    await press(gw, presser, ++seq, "help");
    const alert = await until("the alert at the station", async () => {
      const { alerts } = await gw.api(station, "GET", "/api/alerts");
      return alerts.find((a) => a.household === presser.household && a.state !== "resolved");
    });
    for (const n of [3, 4, 5, 6]) await uplink(gw, device(2, n), "respond", { alert: alert.id, answer: "coming" });
    await until("four coming", async () => (await gw.api(station, "GET", `/api/alerts/${alert.id}`)).responders === 4);

    await page.goto(`${gw.base}/app/#/alert/${alert.id}`);
    const pageEl = page.locator(`.alert-page[data-alert="${alert.id}"]`);
    const note = pageEl.locator(".enough-note");
    await note.waitFor();
    assert.match(await note.innerText(), /人手已够：已有 4 人赶去/);
    // 我来了 asks first; "Stay" leaves the answer as it was.
    await pageEl.locator("button.answer-coming").click();
    const ask = pageEl.getByRole("alertdialog");
    await ask.waitFor();
    assert.match(await ask.innerText(), /已有 4 人赶去，人手已够。您仍要前往吗？/);
    await ask.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, "volunteer-enough-help.png") });
    await ask.getByRole("button", { name: "不去了" }).click();
    await ask.waitFor({ state: "detached" });
    assert.equal(await pageEl.locator(".my-state strong").innerText(), "未响应");
    // "Go anyway" answers: the station sees five coming.
    await pageEl.locator("button.answer-coming").click();
    await pageEl.getByRole("alertdialog").getByRole("button", { name: "仍要前往" }).click();
    await until("my answer shown", async () => (await pageEl.locator(".my-state strong").innerText()) === "正在赶来");
    assert.equal((await gw.api(station, "GET", `/api/alerts/${alert.id}`)).responders, 5);
  });

  test("patrol check-in records the time and position and lists it", async () => {
    await page.getByRole("link", { name: "巡逻签到" }).click();
    await page.locator("#checkin-note").fill("东门 一切正常");
    await page.getByRole("button", { name: "签到" }).click();
    const status = page.locator(".checkin-status");
    await until("checked in", async () => {
      const text = await status.innerText();
      if (/失败|需要位置/.test(text)) throw new Error(`the page says: ${text}`);
      return /已签到/.test(text);
    });
    const first = page.locator(".checkin-list .checkin").first();
    await until("the check-in listed", async () => /东门 一切正常/.test(await first.innerText()));
    const vol = await gw.signIn("patrol1");
    const { checkins } = await gw.api(vol, "GET", "/api/volunteer/checkins?limit=5");
    assert.equal(checkins.length, 1);
    assert.equal(checkins[0].note, "东门 一切正常");
    const near = device(1, 6);
    assert.ok(Math.abs(checkins[0].lat - (near.lat - 0.0006)) < 1e-6, JSON.stringify(checkins[0]));
    await page.screenshot({ path: path.join(SHOTS, "volunteer-patrol.png") });
  });

  test("a gateway out of reach is said plainly, and the app recovers when it is back", async () => {
    await page.getByRole("link", { name: "值守" }).click();
    await page.locator(".duty-card").waitFor();
    const banner = page.locator(".offline-banner");
    assert.equal(await banner.isHidden(), true);
    await gw.stop();
    await until("the offline banner", async () => /无法连接到服务器/.test(await banner.innerText()) && (await banner.isVisible()), 15_000);
    await page.screenshot({ path: path.join(SHOTS, "volunteer-offline.png") });
    // Opened afresh without the gateway, the installed app still opens (the service worker
    // keeps its files) and says what is wrong.
    await page.reload();
    await until("the app's own offline page", async () => /无法连接到服务器/.test(await page.locator(".boot-error").innerText()), 15_000);
    await gw.start();
    // It tries again by itself.
    await page.locator(".duty-card").waitFor({ timeout: 20_000 });
    await until("the banner gone", async () => await banner.isHidden(), 20_000);
    // The subscription outlived the reloads.
    await until("notifications still on", async () => (await page.locator(".notif-card").getAttribute("data-push")) === "on");
    assert.equal(await page.locator(".duty-card .duty-state").innerText(), "在岗");
  });

  test("signing out takes this phone's subscription off the server and ends the duty", async () => {
    await page.getByRole("button", { name: "退出" }).click();
    await page.locator("#name").waitFor();
    const vol = await gw.signIn("patrol1");
    const me = await gw.api(vol, "GET", "/api/volunteer/me");
    assert.equal(me.subscriptions, 0);
    assert.equal(me.on_duty, false);
    const { volunteers } = await gw.api(station, "GET", "/api/volunteers");
    assert.equal(volunteers.length, 0, "the station no longer counts on the volunteer");
  });
});
