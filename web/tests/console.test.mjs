// The station console in a real browser (Debian's Chromium, headless, driven by
// playwright-core) against a real tenwatch gateway, with Mosquitto's clients as the devices.
// The tests run in order and share one gateway: each picks up where the last one left off,
// as a monitor's day does. Screenshots of the console go to docs/screenshots/.

import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Gateway, PASSWORD, ROOT, killAll, listenForAcks, press, seed, until, uplink } from "./harness.mjs";

const SHOTS = path.join(ROOT, "docs/screenshots");
const VIEWPORT = { width: 1440, height: 860 };

/** @type {Awaited<ReturnType<typeof seed>>} */
let world;
/** @type {Gateway} */
let gw;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {import("playwright-core").Page} */
let page;
let seq = 1000;

async function signIn(p, name, password = PASSWORD) {
  await p.goto(gw.base + "/");
  await p.locator("#name").fill(name);
  await p.locator("#password").fill(password);
  await p.getByRole("button", { name: /登录|Sign in/ }).click();
}

/**
 * The gateway's codes (kinds, states, categories, actors, reasons) that must never show as
 * such in the Chinese console: each has its words.
 */
const CODES = [
  "help", "medical", "fire", "intrusion", "cancel", "raised", "notified", "acknowledged", "on_scene",
  "resolved", "cancelled", "delivered", "seen", "coming", "declined", "consult", "dispute", "crime",
  "complaint", "false_alarm", "unit", "volunteer", "station", "operator", "gateway", "device",
  "offline", "low_battery", "tamper", "coverage", "ring1", "ring2", "cancel_refused", "accepted",
  "no_subscription", "expired", "failed",
];

/** No raw code in `text`: no snake_case word and none of CODES. */
function assertNoCodes(text, where) {
  const snake = /\b[a-z]+(?:_[a-z0-9]+)+\b/.exec(text);
  assert.equal(snake, null, `${where} shows the code ${snake?.[0]}: ${text}`);
  const code = new RegExp(`\\b(?:${CODES.join("|")})\\b`).exec(text);
  assert.equal(code, null, `${where} shows the code ${code?.[0]}: ${text}`);
}

/** Whether `locator`'s element is in the window and not covered (what a click there hits). */
async function inView(locator) {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) return false;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return hit !== null && (hit === el || el.contains(hit));
  });
}

/** The device of household `n` (1-based) of cluster `c` (1-based) of the demo zone. */
function device(c, n) {
  const cred = world.credentials.find((x) => x.household === `11010501-${String(c).padStart(3, "0")}-${String(n).padStart(2, "0")}`);
  assert.ok(cred, `no device for cluster ${c} household ${n}`);
  return cred;
}

describe("station console", { timeout: 180_000 }, () => {
  before(async () => {
    world = await seed();
    gw = new Gateway(world.dir);
    await gw.ports();
    await gw.start();
    // A volunteer on duty with a position, so the map and the dispatch list have one.
    const vol = await gw.signIn("patrol1");
    await gw.api(vol, "POST", "/api/volunteer/duty", { on_duty: true });
    const near = device(1, 6);
    await gw.api(vol, "POST", "/api/volunteer/position", { lat: near.lat - 0.0006, lon: near.lon + 0.0004 });
    await mkdir(SHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: VIEWPORT, locale: "zh-CN", timezoneId: "Europe/London" });
    page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    killAll();
    if (process.env.KEEP_DATA) console.log("data kept in", world?.dir);
    else await world?.cleanup();
  });

  test("signs in, saying clearly when the password is wrong", async () => {
    await signIn(page, "station", "not the password");
    await until("the wrong-password message", async () => /错误/.test(await page.locator(".login-error").innerText()));

    await signIn(page, "station");
    await page.locator("header.top h1").filter({ hasText: "十户联防" }).waitFor();
    await page.locator(".queue-empty").waitFor();
    // 2 clusters of 10 households, each drawn, with its cluster outline.
    await until("20 households on the map", async () => (await page.locator("path.hh").count()) === 20);
    assert.equal(await page.locator("path.cluster-outline").count(), 2);
    assert.equal(await page.locator(".vol-pin").count(), 1, "the on-duty volunteer is on the map");
    // Sound starts off (autoplay rules) and says so; one click arms it.
    assert.equal(await page.locator("body").getAttribute("data-sound"), "off");
    await page.locator("button.sound").click();
    await until("sound armed", async () => (await page.locator("body").getAttribute("data-sound")) === "on");
    // Times are the station's (Asia/Shanghai), not the browser's (London).
    assert.match(await page.locator(".clock small").innerText(), /Asia\/Shanghai/);
    await page.screenshot({ path: path.join(SHOTS, "console-idle.png") });
  });

  test("a press appears on the map and in the queue within one second", async () => {
    const presser = device(1, 3);
    const started = Date.now();
    await press(gw, presser, ++seq, "medical");
    const item = page.locator(`.alert-list.open .alert-item`).filter({ hasText: presser.label });
    await item.waitFor({ timeout: 1_000 });
    await page.locator(`.alert-pin[data-household="${presser.household}"]`).waitFor({ timeout: 1_000 });
    const took = Date.now() - started;
    assert.ok(took < 1_000, `took ${took} ms`);
    assert.match(await item.innerText(), /急救/);
    // Unacknowledged: it flashes, and the alarm rings.
    assert.match(await item.getAttribute("class"), /unacked/);
    await until("the alarm", async () => (await page.locator("body").getAttribute("data-alarm")) === "ringing");
    // A second, older alert elsewhere, so the queue shows its order.
    await press(gw, device(2, 8), ++seq, "help");
    await until("two alerts", async () => (await page.locator(".alert-list.open .alert-item").count()) === 2);
    await page.waitForTimeout(1_200); // let the elapsed counters tick once for the picture
    await page.screenshot({ path: path.join(SHOTS, "console-alert.png") });
  });

  test("the actions are at the top; the station acknowledges, is on scene and resolves; the unit hears each state", async () => {
    const presser = device(1, 3);
    const unit = await listenForAcks(gw, presser);
    try {
      // A laptop's window: on opening, the actions are in view without scrolling.
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.locator(".alert-item").filter({ hasText: presser.label }).locator("button").click();
      const panel = page.locator("section.detail");
      await panel.locator(".address").filter({ hasText: presser.label }).waitFor();
      for (const control of ["button.ack-button", "button.on-scene-button", "select.volunteer-select", "button.dispatch-button", "select.category-select", "button.resolve-button"]) {
        assert.ok(await inView(panel.locator(control)), `${control} in view on opening`);
      }
      assert.equal(await panel.evaluate((el) => el.scrollTop), 0);
      // The narrower map is framed anew on the alert.
      await until("the alert's pin in view", () => inView(page.locator(`.alert-pin[data-household="${presser.household}"]`)));
      assert.match(await panel.locator(".contacts").innerText(), /138/);
      assert.ok((await panel.locator("tr.recipient").count()) >= 10, "nine neighbours and the station");

      // The nine neighbours' units sound: one line says so, and opens on the nine.
      const id = await panel.getAttribute("data-alert-id");
      const neighbours = [1, 2, 4, 5, 6, 7, 8, 9, 10].map((n) => device(1, n));
      await Promise.all(neighbours.map((n) => uplink(gw, n, "delivered", { alert: id })));
      const station = await gw.signIn("station");
      await until("the nine receipts stored", async () =>
        (await gw.api(station, "GET", `/api/alerts/${id}`)).timeline.filter((e) => e.action === "delivered").length === 9);
      // Only the first receipt is news on the feed: the open panel catches up on its own.
      const fold = panel.locator(".timeline li.fold");
      await until("the receipts folded into one line", async () => (await fold.count()) === 1 && /9 户已响铃/.test(await fold.innerText()), 12_000);
      const receipts = fold.locator("details > ol > li");
      assert.equal(await receipts.count(), 9);
      assert.equal(await receipts.first().isVisible(), false, "folded");
      assert.equal(await panel.locator(".timeline > ol > li:not(.fold)").filter({ hasText: "户机已响铃" }).count(), 0);
      await fold.locator("summary").click();
      await until("nine rows shown", async () => (await receipts.filter({ hasText: "户机已响铃" }).count()) === 9 && (await receipts.first().isVisible()));
      // The picture shows the panel as it opens: the actions first.
      await panel.evaluate((el) => el.scrollTo(0, 0));
      await page.screenshot({ path: path.join(SHOTS, "console-detail.png") });

      await panel.locator("button.ack-button").click();
      const acked = await unit.next((a) => a.state === "acknowledged");
      assert.equal(acked.seq, seq - 1);
      await until("acknowledged on the page", async () => (await panel.getAttribute("data-state")) === "acknowledged");
      // The station's own row comes first and says what the station did.
      const own = panel.locator("tr.recipient.own");
      await until("the station's row acknowledged", async () => (await own.getAttribute("data-state")) === "acknowledged");
      assert.match(await own.innerText(), /本站/);
      assert.match(await own.innerText(), /已确认接警/);
      assert.equal(await panel.locator("tr.recipient").first().getAttribute("data-recipient"), await own.getAttribute("data-recipient"));
      assert.ok(await receipts.first().isVisible(), "the opened receipts stay open across updates");

      // Dispatch the on-duty volunteer: they join the recipients.
      await panel.locator("select.volunteer-select").selectOption("patrol1");
      await panel.locator("button.dispatch-button").click();
      await panel.locator('tr.recipient[data-recipient="patrol1"]').waitFor();
      // patrol1 has not enabled phone notifications: the station sees that the push had nowhere to go.
      await panel.locator('tr.recipient[data-recipient="patrol1"] td.push-no_subscription').filter({ hasText: "未开启手机通知" }).waitFor();

      await panel.locator("textarea.note-text").fill("已电话联系住户");
      await panel.locator("button.note-button").click();
      await panel.locator(".timeline").filter({ hasText: "已电话联系住户" }).waitFor();

      // The station's own officers get there: the alert is on scene, and the unit hears it.
      await panel.locator("button.on-scene-button").click();
      await unit.next((a) => a.state === "on_scene");
      await until("on scene on the page", async () => (await panel.getAttribute("data-state")) === "on_scene");
      await until("the station's row on scene", async () => (await own.getAttribute("data-state")) === "on_scene");
      assert.match(await own.innerText(), /已到场/);
      await until("the button done", () => panel.locator("button.on-scene-button").isDisabled());
      await panel.locator(".timeline li").filter({ hasText: "站务 和平里派出所 值班台 已到场" }).waitFor();

      await panel.locator("select.category-select").selectOption("false_alarm");
      await panel.locator("input.resolve-note").fill("住户误按");
      await panel.locator("button.resolve-button").click();
      await unit.next((a) => a.state === "resolved");
      await until("resolved on the page", async () => (await panel.getAttribute("data-state")) === "resolved");
      await page.locator(".alert-list.closed .alert-item").filter({ hasText: presser.label }).waitFor();
      assert.match(await panel.locator(".resolved-as").innerText(), /误报/);
      await panel.locator(".timeline li").filter({ hasText: "结案 — 误报：住户误按" }).waitFor();
      assertNoCodes(await panel.innerText(), "the resolved alert's panel");
    } finally {
      await unit.stop();
      await page.setViewportSize(VIEWPORT);
    }
  });

  test("a unit that drops off is listed under needs attention, with whom to tell", async () => {
    const unit = device(2, 4);
    // The unit comes online (a real MQTT client) and then loses power.
    const listener = await listenForAcks(gw, unit);
    await listener.stop();
    const entry = page.locator(".problem-offline", { hasText: unit.label });
    // The list reloads on the device's feed event (the 30 s poll is only the fallback).
    await until("the offline unit in the needs-attention list", async () => (await entry.count()) === 1, 10_000);
    const text = await entry.innerText();
    assert.match(text, /离线/);
    assert.match(text, /十户长/, "the cluster leader is named as someone to tell");
    // The line under the map counts what the list shows: devices that never connected are
    // not offline (they are counted apart), and every offline one is listed.
    const footer = page.locator(".map-status");
    const counted = async () => {
      const m = /(\d+) 台离线/.exec(await footer.innerText());
      return m ? Number(m[1]) : 0;
    };
    await until("the footer and the list to agree", async () => (await counted()) === (await page.locator(".problem-offline").count()));
    assert.ok((await counted()) >= 1);
    const never = /(\d+) 台从未连接/.exec(await footer.innerText());
    assert.ok(never && Number(never[1]) + (await counted()) <= 20, await footer.innerText());
    // The map says the same: that unit's household is offline, one never switched on is not.
    assert.match(await page.locator(`path.hh[data-household="${unit.household}"]`).getAttribute("class"), /hh-offline/);
    assert.match(await page.locator(`path.hh[data-household="${device(2, 1).household}"]`).getAttribute("class"), /hh-never/);
    assert.equal(await page.locator("path.hh-never").count(), Number(never[1]));
  });

  test("the feed drops and comes back, and the page catches up", async () => {
    await gw.stop();
    await page.locator(".feed-banner.down").waitFor({ timeout: 5_000 });
    assert.equal(await page.locator("body").getAttribute("data-feed"), "down");
    await gw.start();
    // Pressed while the page is still waiting to reconnect: it must not be lost.
    const presser = device(2, 5);
    await press(gw, presser, ++seq, "intrusion");
    await page.locator(".alert-list.open .alert-item").filter({ hasText: presser.label }).waitFor({ timeout: 15_000 });
    await page.locator(".feed-banner.down").waitFor({ state: "hidden", timeout: 15_000 });
    assert.equal(await page.locator("body").getAttribute("data-feed"), "live");
    await page.locator(`.alert-pin[data-household="${presser.household}"]`).waitFor();
  });

  test("five coming: the card names the nearest three, counts the rest and says enough help", async () => {
    const presser = device(2, 2);
    await press(gw, presser, ++seq, "help");
    const item = page.locator(".alert-list.open .alert-item").filter({ hasText: presser.label });
    await item.waitFor();
    const station = await gw.signIn("station");
    const { alerts } = await gw.api(station, "GET", "/api/alerts");
    const alert = alerts.find((a) => a.household === presser.household && a.state !== "resolved");
    for (const n of [3, 6, 7, 9, 10]) await uplink(gw, device(2, n), "respond", { alert: alert.id, answer: "coming" });
    const coming = item.locator(".row3.coming");
    await until("five coming on the card", async () => /5 人赶来/.test(await coming.innerText()));
    await until("three named, two counted", async () => /另有 2 人/.test(await coming.innerText()));
    const text = await coming.innerText();
    const named = [3, 6, 7, 9, 10].filter((n) => text.includes(device(2, n).label));
    assert.equal(named.length, 3, `three named: ${text}`);
    assert.equal(await coming.locator(".badge.enough").innerText(), "人手已够");
  });

  test("an operator of another zone does not see the alert", async () => {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const other = await context.newPage();
    try {
      await signIn(other, "station2");
      await other.locator(".queue-empty").waitFor();
      await until("that zone's one household", async () => (await other.locator("path.hh").count()) === 1);
      // The first operator still has open alerts; the second sees none of them, live or listed.
      assert.ok((await page.locator(".alert-list.open .alert-item").count()) >= 1);
      await press(gw, device(1, 9), ++seq, "fire");
      await page.locator(".alert-list.open .alert-item").filter({ hasText: device(1, 9).label }).waitFor();
      assert.equal(await other.locator(".alert-item").count(), 0);
      assert.equal(await other.locator(".alert-pin").count(), 0);
      const listed = await other.evaluate(async () => (await (await fetch("/api/alerts")).json()).alerts.length);
      assert.equal(listed, 0);
    } finally {
      await context.close();
    }
  });

  test("kinds, states and categories are words in Chinese, never codes", async () => {
    const panel = page.locator("section.detail");
    // The intrusion (open) in the panel.
    const intruded = device(2, 5);
    await page.locator(".alert-list.open .alert-item").filter({ hasText: intruded.label }).locator("button").click();
    await panel.locator(".address").filter({ hasText: intruded.label }).waitFor();
    assert.match(await panel.locator(".detail-title").innerText(), /入室警报/);
    assertNoCodes(await panel.innerText(), "the intrusion's panel");
    // The false alarm (closed), the whole queue and the needs-attention list.
    await page.locator(".alert-list.closed .alert-item").filter({ hasText: device(1, 3).label }).locator("button").click();
    await panel.locator(".resolved-as").filter({ hasText: "误报" }).waitFor();
    assertNoCodes(await panel.innerText(), "the false alarm's panel");
    assertNoCodes(await page.locator("aside.queue").innerText(), "the queue");
    assertNoCodes(await page.locator(".map-status").innerText(), "the map's status line");
    await panel.locator("button.close").click();
    await panel.waitFor({ state: "hidden" });
  });

  test("the station publishes an alert: a badge links to its public CAP 1.2 document, which names no household", async () => {
    const presser = device(1, 9);
    const panel = page.locator("section.detail");
    await page.locator(".alert-list.open .alert-item").filter({ hasText: presser.label }).locator("button").click();
    await panel.locator(".address").filter({ hasText: presser.label }).waitFor();
    const publish = panel.locator("button.publish-button");
    assert.equal(await publish.innerText(), "公开发布（CAP）");
    assert.ok(await inView(publish), "with the other actions, in view on opening");
    assert.equal(await panel.locator(".public-badge").count(), 0, "not public yet");
    const id = await panel.getAttribute("data-alert-id");
    const capPath = `/cap/alerts/A${String(id).replace(/^A/, "")}.xml`;
    assert.equal((await fetch(gw.base + capPath)).status, 404, "nothing public before");

    await publish.click();
    const badge = panel.locator("a.public-badge");
    await badge.waitFor();
    assert.equal(await badge.innerText(), "已公开 · CAP");
    assert.equal(await badge.getAttribute("href"), capPath);
    await until("the button done", () => publish.isDisabled());
    await panel.locator(".timeline li").filter({ hasText: "站务 和平里派出所 值班台 公开发布" }).waitFor();
    assertNoCodes(await panel.innerText(), "the published alert's panel");

    // What the badge links to, read as anyone would, without the station's session.
    const res = await fetch(gw.base + capPath);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/cap\+xml/);
    const xml = await res.text();
    assert.match(xml, /<msgType>Alert<\/msgType>/);
    assert.match(xml, /<event>火警<\/event>/);
    assert.match(xml, /<language>en-US<\/language>/);
    for (const secret of [presser.label, presser.household, presser.device]) {
      assert.ok(!xml.includes(secret), `${secret} in the public document`);
    }
    const feed = await (await fetch(`${gw.base}/cap/feed.atom`)).text();
    assert.ok(feed.includes(`href="${capPath}"`), feed);
    await panel.locator("button.close").click();
    await panel.waitFor({ state: "hidden" });
  });

  test("the history finds the resolved alert by its filters and opens it; its unit's record shows its presence", async () => {
    const presser = device(1, 3);
    await page.locator("header.top button.history-button").click();
    const view = page.locator("section.history");
    await view.waitFor();
    // The history takes the map's and the queue's place.
    assert.equal(await page.locator("aside.queue").isVisible(), false);
    const rows = view.locator("tr.history-row");
    await rows.first().waitFor();

    // The false alarm resolved earlier, found by its category and its household's words.
    await view.locator("select.history-category").selectOption("false_alarm");
    await view.locator("input.history-q").fill(presser.label);
    await view.locator("button.history-search").click();
    const only = async (label) => (await rows.count()) === 1 && (await rows.first().innerText()).includes(label);
    await until("the false alarm alone", () => only(presser.label));
    const row = await rows.first().innerText();
    assert.match(row, /急救/);
    assert.match(row, /误报/);
    assert.match(row, /十户联防组|联防组/);
    assert.match(row, /\d+:\d\d/, "how long it was open");
    assertNoCodes(await view.innerText(), "the history");
    // A kind it is not: nothing, and the page says so.
    await view.locator("select.history-kind").selectOption("fire");
    await view.locator("button.history-search").click();
    await view.locator(".history-empty").waitFor();
    await view.locator("select.history-kind").selectOption("medical");
    await view.locator("button.history-search").click();
    await until("the false alarm again", () => only(presser.label));

    // The row opens the alert's panel with its timeline.
    await rows.first().click();
    const panel = page.locator("section.detail");
    await panel.locator(".resolved-as").filter({ hasText: "误报" }).waitFor();
    await panel.locator(".timeline li").filter({ hasText: "结案 — 误报：住户误按" }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, "console-history.png") });

    // From the panel, its unit's record: it came online and went away, each with its reason.
    await panel.locator("button.device-link").click();
    const record = page.locator("dialog.device-page");
    await record.locator(".presence-list li.presence-online").first().waitFor();
    assert.ok((await record.locator(".presence-list li.presence-offline").count()) >= 1);
    assert.match(await record.locator(".presence-list").innerText(), /上线 — 已连接/);
    assert.match(await record.locator(".presence-list li.presence-offline").first().innerText(), /离线 — \S/);
    assert.match(await record.locator("h2").innerText(), new RegExp(presser.label));
    assertNoCodes(await record.innerText(), "the device record");
    await page.keyboard.press("Escape");
    await record.waitFor({ state: "hidden" });
    await panel.locator("button.close").click();
    await page.locator("header.top button.history-button").click();
    await view.waitFor({ state: "hidden" });
    // The map is back, framed on the zone again: the open alerts' pins are in view.
    await until("the alerts' pins in view", async () => {
      const pins = await page.locator(".alert-pin").all();
      return pins.length > 0 && (await Promise.all(pins.map(inView))).every(Boolean);
    });

    // The unit that lost power, from the needs-attention list: offline, and why.
    const lost = device(2, 4);
    await page.locator(".problem-offline", { hasText: lost.label }).locator("button.device-link").click();
    await record.locator(".presence-list li.presence-offline").first().waitFor();
    assert.match(await record.locator(".device-state").innerText(), /离线/);
    await record.locator("button.close").click();
    await record.waitFor({ state: "hidden" });

    // A unit whose battery ran down, from its household's marker on the map: the chart and
    // its readings.
    const weak = device(2, 3);
    const station = await gw.signIn("station");
    for (const [n, battery] of [[1, 64], [2, 15]]) {
      await uplink(gw, weak, "heartbeat", { seq: n, battery });
      await until(`the ${battery}% reading stored`, async () =>
        (await gw.api(station, "GET", `/api/devices/${weak.device}/history`)).battery.length === n);
    }
    await page.locator(`path.hh[data-household="${weak.household}"]`).click();
    const chart = record.locator("svg.battery-chart");
    await chart.waitFor();
    assert.equal(await chart.getAttribute("aria-label"), "电量从 64% 到 15%，最低 15%");
    assert.equal(await record.locator("circle.dot.low").count(), 1, "the low reading marked");
    await record.locator(".battery-data summary").click();
    assert.deepEqual(await record.locator(".battery-data tbody td:nth-child(2)").allInnerTexts(), ["15%", "64%"]);
    assertNoCodes(await record.innerText(), "the device record");
    await page.screenshot({ path: path.join(SHOTS, "console-device.png") });
    await record.locator("button.close").click();
    await record.waitFor({ state: "hidden" });
  });

  test("the statistics of the last half-month: the same counts as the API, charts, and each table as CSV", async () => {
    const station = await gw.signIn("station");
    // The on-duty volunteer checks in on patrol twice.
    const vol = await gw.signIn("patrol1");
    for (const n of [1, 2]) {
      await gw.api(vol, "POST", "/api/volunteer/checkin", { lat: device(1, n).lat, lon: device(1, n).lon, note: "巡逻" });
    }
    const api = await gw.api(station, "GET", "/api/stats");
    const patrol = api.volunteers.find((v) => v.volunteer === "patrol1");
    assert.equal(patrol?.checkins, 2, JSON.stringify(api.volunteers));
    assert.ok(api.alerts >= 3 && api.false_alarms >= 1, `the run so far has alerts: ${JSON.stringify(api)}`);
    await page.locator("header.top button.history-button").click();
    const view = page.locator("section.history");
    await view.getByRole("tab", { name: "统计" }).click();
    const tiles = view.locator(".stats-tiles");
    await tiles.waitFor();
    assert.equal(await tiles.locator(".stats-tile.alerts strong").innerText(), String(api.alerts));
    assert.equal(await tiles.locator(".stats-tile.false strong").innerText(), String(api.false_alarms));
    assert.equal(await tiles.locator(".stats-tile.cancelled strong").innerText(), String(api.cancelled));
    // The bars are drawn (a canvas with its size), and the table beside says the same in words.
    const byKind = view.locator(".stats-block.by-kind");
    const box = await byKind.locator("canvas.stats-chart").boundingBox();
    assert.ok(box && box.width > 100 && box.height > 100, `a drawn chart: ${JSON.stringify(box)}`);
    const kindRows = await byKind.locator("tbody tr").allInnerTexts();
    assert.ok(kindRows.some((r) => r.includes("急救") && r.includes(String(api.by_kind.medical ?? 0))), kindRows.join(" | "));
    const categoryText = await view.locator(".stats-block.by-category tbody").innerText();
    assert.match(categoryText, new RegExp(`误报\\s+${api.by_category.false_alarm}`));
    assert.match(await view.locator(".stats-block.step-times tbody").innerText(), /首户响铃/);
    const patrolRow = view.locator(".stats-block.volunteers tbody tr").filter({ hasText: patrol.display_name || "patrol1" });
    assert.match(await patrolRow.innerText(), new RegExp(`\\s${patrol.came}\\s+${patrol.on_scene}\\s+\\S+\\s+2$`));
    // Where and when: bars by hour and weekday, and the clusters by name, most first.
    for (const cls of ["by-hour", "by-weekday"]) {
      const drawn = await view.locator(`.stats-block.${cls} canvas.stats-chart`).boundingBox();
      assert.ok(drawn && drawn.width > 100, `${cls} drawn`);
    }
    const firstCluster = await view.locator(".stats-block.by-cluster tbody tr").first().innerText();
    assert.match(firstCluster, new RegExp(`联防组\\s+${api.by_cluster[0].alerts}$`), firstCluster);
    assertNoCodes(await view.innerText(), "the statistics");
    // Each table downloads as CSV, in the same words.
    const [download] = await Promise.all([page.waitForEvent("download"), byKind.locator("a.stats-csv").click()]);
    assert.match(download.suggestedFilename(), /^tenwatch-by-kind-\d{4}-\d\d-\d\d\.csv$/);
    const csv = await readFile(await download.path(), "utf8");
    const lines = csv.replace(/^\uFEFF/, "").trim().split(/\r\n/);
    assert.equal(lines[0], "类型,次数");
    assert.ok(lines.includes(`急救,${api.by_kind.medical ?? 0}`), lines.join(" | "));
    await page.screenshot({ path: path.join(SHOTS, "console-stats.png") });
    await page.locator("header.top button.history-button").click();
    await view.waitFor({ state: "hidden" });
  });

  test("the hot spots: shaded squares where the last 30 days' alerts were, over the alerted household, counted as the API counts", async () => {
    const station = await gw.signIn("station");
    // A press in cluster 1 from a household that has not pressed yet.
    const presser = device(1, 7);
    await press(gw, presser, ++seq, "help");
    await page.locator(`.alert-pin[data-household="${presser.household}"]`).waitFor();
    await page.locator("button.fit-zone").click();
    const toggle = page.getByRole("button", { name: "热点" });
    assert.equal(await toggle.getAttribute("aria-pressed"), "false");
    assert.equal(await page.locator(".hotspot").count(), 0, "off at first");
    await toggle.click();
    const legend = page.locator(".hotspot-legend .hotspot-count");
    await until("the hot spots' legend", async () => /近 30 天/.test(await legend.innerText()));
    const api = await gw.api(station, "GET", `/api/stats?from=${Date.now() - 30 * 86_400_000}`);
    assert.ok(api.alerts >= 4 && api.places.length >= 2, JSON.stringify(api.places));
    assert.equal(api.places.reduce((n, p) => n + p.alerts, 0), api.alerts);
    // The legend says the API's count, in words; one square per place, each with its count.
    assert.equal(await legend.innerText(), `热点：近 30 天共 ${api.alerts} 起警情，色越深越多（约百米一格）`);
    assert.equal(await page.locator("path.hotspot-cell").count(), api.places.length);
    assert.equal(await page.locator(".hotspot").count(), api.places.length);
    const shown = await page.locator(".hotspot").evaluateAll((els) =>
      els.map((el) => ({ n: Number(el.textContent), lat: Number(el.dataset.lat), lon: Number(el.dataset.lon) })),
    );
    assert.deepEqual(
      shown.map((m) => m.n).sort((a, b) => a - b),
      api.places.map((p) => p.alerts).sort((a, b) => a - b),
    );
    // The presser's street has a square: its cell (by the API, within half a cell of the
    // household), drawn over the household's marker on screen. More alerts, a deeper shade.
    const near = api.places.find((p) => Math.abs(p.lat - presser.lat) <= 0.00051 && Math.abs(p.lon - presser.lon) <= 0.00051);
    assert.ok(near, `no place at ${presser.label}: ${JSON.stringify(api.places)}`);
    const where = `[data-lat="${near.lat}"][data-lon="${near.lon}"]`;
    assert.equal(await page.locator(`.hotspot${where}`).innerText(), String(near.alerts));
    const cell = await page.locator(`path.hotspot-cell${where}`).boundingBox();
    const home = await page.locator(`path.hh[data-household="${presser.household}"]`).boundingBox();
    assert.ok(cell && home, "both drawn");
    const [x, y] = [home.x + home.width / 2, home.y + home.height / 2];
    assert.ok(x > cell.x && x < cell.x + cell.width && y > cell.y && y < cell.y + cell.height,
      `${presser.label} at ${x},${y} is outside its square ${JSON.stringify(cell)}`);
    const shades = await page.locator("path.hotspot-cell").evaluateAll((els) =>
      els.map((el) => [Number(el.dataset.alerts), Number(el.getAttribute("fill-opacity"))]).sort((a, b) => a[0] - b[0] || a[1] - b[1]),
    );
    for (let i = 1; i < shades.length; i++) assert.ok(shades[i][1] >= shades[i - 1][1], JSON.stringify(shades));
    assert.ok(await inView(page.getByRole("button", { name: "热点" })));
    assertNoCodes(await page.locator(".hotspot-bar").innerText(), "the hot spots");
    await page.screenshot({ path: path.join(SHOTS, "console-hotspots.png") });
    // Another period: the legend says it; the same alerts (all of this run are recent).
    await page.locator("select.hotspot-period").selectOption("7");
    await until("the week's legend", async () => /近 7 天共/.test(await legend.innerText()));
    assert.match(await legend.innerText(), new RegExp(`共 ${api.alerts} 起`));
    // Off: the squares go, the map is as it was.
    await toggle.click();
    assert.equal(await toggle.getAttribute("aria-pressed"), "false");
    assert.equal(await page.locator(".hotspot, path.hotspot-cell").count(), 0);
    assert.ok(await page.locator(".hotspot-legend").isHidden());
  });

  test("the 公示 bulletin: the half-month's figures on a printable A4 page, its PDF, and coverage per cluster", async () => {
    const station = await gw.signIn("station");
    // This half-month in the station's time (Asia/Shanghai: +08:00 all year).
    const EIGHT = 8 * 3600_000;
    const local = new Date(Date.now() + EIGHT);
    const [y, m, d] = [local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate()];
    const from = Date.UTC(y, m, d >= 16 ? 16 : 1) - EIGHT;
    const to = (d >= 16 ? Date.UTC(y, m + 1, 1) : Date.UTC(y, m, 16)) - EIGHT;
    const half = `${y}-${String(m + 1).padStart(2, "0")}-H${d >= 16 ? 2 : 1}`;
    const api = await gw.api(station, "GET", `/api/stats?from=${from}&to=${to}`);
    assert.ok(api.alerts >= 3 && api.false_alarms >= 1, `the run so far has alerts: ${JSON.stringify(api)}`);

    await page.locator("header.top button.history-button").click();
    const view = page.locator("section.history");
    await view.getByRole("tab", { name: "统计" }).click();
    // Coverage per cluster on the statistics page: a row per cluster, as the API counts units.
    const recent = await gw.api(station, "GET", "/api/stats");
    const rows = view.locator(".stats-block.coverage tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), recent.coverage.length);
    const first = recent.coverage[0];
    assert.match(await rows.first().innerText(), new RegExp(`^${first.cluster_name}\\s+${first.units}\\s`));
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      view.locator(".stats-block.coverage a.stats-csv").click(),
    ]);
    const csv = (await readFile(await download.path(), "utf8")).replace(/^\uFEFF/, "").trim().split(/\r\n/);
    assert.equal(csv[0], "十户联防组,报警器（台）,离线（分钟）,在线率");
    assert.equal(csv.length, recent.coverage.length + 1);

    // 公示: this half-month, a note to residents, the printable page in a new tab.
    await view.locator("button.bulletin-button").click();
    const panel = view.locator(".bulletin-panel");
    await panel.locator("select.bulletin-half").selectOption(half);
    const note = "近期有冒充燃气公司人员上门推销，请勿开门";
    await panel.locator("input.bulletin-note").fill(note);
    const [sheet] = await Promise.all([page.waitForEvent("popup"), panel.locator("a.bulletin-open").click()]);
    await sheet.waitForLoadState();
    const figure = (f) => sheet.locator(`[data-figure="${f}"]`).first().innerText();
    assert.match(await sheet.locator("h1").innerText(), /警情公示$/);
    assert.equal(await figure("接报警情"), `${api.alerts}起`);
    assert.equal(await figure("误报"), `${api.false_alarms}起`);
    assert.equal(await figure("居民撤销"), `${api.cancelled}起`);
    assert.equal(await figure("category-误报"), String(api.by_category.false_alarm ?? 0));
    assert.equal(await figure("kind-医疗求助"), String(api.by_kind.medical ?? 0));
    const units = api.coverage.reduce((n, c) => n + c.units, 0);
    assert.equal(await figure("units"), String(units));
    assert.equal((await sheet.locator('[data-figure="watch-for"] li').first().innerText()).trim(), note);
    const text = await sheet.locator("body").innerText();
    for (const c of world.credentials) {
      assert.ok(!text.includes(c.label) && !text.includes(c.household), `the bulletin names ${c.label}`);
    }
    await sheet.setViewportSize({ width: 900, height: 1270 });
    await sheet.screenshot({ path: path.join(SHOTS, "console-bulletin.png") });
    // Chromium prints it on A4 paper, the toolbar left off: a page or two.
    const printed = (await sheet.pdf({ format: "A4" })).toString("latin1");
    const pages = printed.match(/\/Type\s*\/Page\b/g)?.length ?? 0;
    assert.ok(pages >= 1 && pages <= 2, `${pages} A4 pages`);
    await sheet.close();
    // The PDF the panel offers, with the page's session.
    const href = await panel.locator("a.bulletin-pdf").getAttribute("href");
    assert.ok(href?.startsWith("/api/bulletin.pdf?"), String(href));
    const pdf = await page.request.get(gw.base + href);
    assert.equal(pdf.status(), 200, await pdf.text());
    assert.equal(pdf.headers()["content-type"], "application/pdf");
    assert.equal((await pdf.body()).subarray(0, 5).toString(), "%PDF-");
    await page.locator("header.top button.history-button").click();
    await view.waitFor({ state: "hidden" });
  });

  test("a page of another site on this host can neither act nor listen with the station's cookie", async () => {
    // Another port of the same host is the same site: SameSite=Strict still sends the cookie,
    // so only the gateway's Origin check stands between such a page and the station.
    const station = await gw.signIn("station");
    const { alerts } = await gw.api(station, "GET", "/api/alerts?state=open");
    const target = alerts.find((a) => a.state !== "acknowledged");
    assert.ok(target, "an alert not yet acknowledged");
    const evil = http.createServer((_, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<form method="post" action="${gw.base}/api/alerts/${target.id}/acknowledge"><input name="x" value="1"></form>`);
    });
    await new Promise((r) => evil.listen(0, "127.0.0.1", r));
    const other = await page.context().newPage();
    try {
      await other.goto(`http://127.0.0.1:${evil.address().port}/`);
      // The station feed, opened from there, is refused before it opens.
      const opened = await other.evaluate(
        (url) =>
          new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve("open");
            ws.onerror = () => resolve("refused");
          }),
        gw.base.replace("http://", "ws://") + "/api/feed",
      );
      assert.equal(opened, "refused");
      // The form, posted with the cookie, is refused with a reason and changes nothing.
      await Promise.all([other.waitForNavigation(), other.evaluate(() => document.forms[0].submit())]);
      assert.match(await other.locator("body").innerText(), /cross-site request refused/);
      const after = await gw.api(station, "GET", `/api/alerts/${target.id}`);
      assert.equal(after.state, target.state);
    } finally {
      await other.close();
      evil.close();
    }
  });

  test("the English switch works and is remembered", async () => {
    await page.locator("header.top button.lang-switch").click();
    await page.locator("header.top h1").filter({ hasText: "Station console" }).waitFor();
    assert.match(await page.locator(".queue-title").innerText(), /Alert queue/);
    // In English too, no code: the false alarm's panel says "False alarm".
    await page.locator(".alert-list.closed .alert-item").filter({ hasText: device(1, 3).label }).locator("button").click();
    const panel = page.locator("section.detail");
    await panel.locator(".resolved-as").filter({ hasText: "False alarm" }).waitFor();
    const snake = /\b[a-z]+(?:_[a-z0-9]+)+\b/;
    assert.doesNotMatch(await panel.innerText(), snake);
    assert.doesNotMatch(await page.locator("aside.queue").innerText(), snake);
    assert.match(await panel.locator(".timeline").innerText(), /resolved — False alarm: 住户误按/);
    await panel.locator("button.close").click();
    await page.reload();
    await page.locator("header.top h1").filter({ hasText: "Station console" }).waitFor();
    assert.match(await page.locator(".alert-list.open").innerText(), /Intrusion|Fire/);
    await page.locator("header.top button.lang-switch").click();
    await page.locator("header.top h1").filter({ hasText: "十户联防" }).waitFor();
  });

  test("too many wrong passwords show how long to wait", async () => {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const p = await context.newPage();
    try {
      await p.goto(gw.base + "/");
      for (let i = 0; i < 8; i++) {
        await p.locator("#name").fill("intruder");
        await p.locator("#password").fill(`guess ${i}`);
        await p.locator("form.login button[type=submit]").click();
        await until("an answer", async () => (await p.locator(".login-error").innerText()).length > 0);
        if (/秒后重试/.test(await p.locator(".login-error").innerText())) break;
      }
      assert.match(await p.locator(".login-error").innerText(), /请在 \d+ 秒后重试/);
      assert.ok(await p.locator("form.login button[type=submit]").isDisabled());
    } finally {
      await context.close();
    }
  });
});
