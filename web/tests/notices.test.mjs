// Notices to residents in the station console, in a real browser (Debian's Chromium, headless,
// driven by playwright-core) against a real tenwatch gateway, with Mosquitto's clients as the
// units: the operator writes a notice for one cluster in the 通知 tab, a unit of that cluster
// hears it on its cluster topic and reports it delivered, and the list shows the notice with
// its counts; a notice the gateway refuses says why. Then a household's 满意 on its resolved
// alert shows on the alert and as the satisfaction rate of the statistics page.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Gateway, ROOT, killAll, listenFor, press, seed, until, uplink } from "./harness.mjs";

const SHOTS = path.join(ROOT, "docs/screenshots");

/** @type {Awaited<ReturnType<typeof seed>>} */
let world;
/** @type {Gateway} */
let gw;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {import("playwright-core").Page} */
let page;

describe("notices to residents and what residents think", { timeout: 120_000 }, () => {
  before(async () => {
    world = await seed();
    gw = new Gateway(world.dir);
    await gw.ports();
    await gw.start();
    // The zone's volunteer is on duty (without a phone subscribed): counted, not reached.
    const vol = await gw.signIn("patrol1");
    await gw.api(vol, "POST", "/api/volunteer/duty", { on_duty: true });
    await mkdir(SHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1440, height: 860 }, locale: "zh-CN" });
    page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(gw.base + "/");
    await page.locator("#name").fill("station");
    await page.locator("#password").fill("correct horse battery");
    await page.getByRole("button", { name: /登录/ }).click();
    await page.locator("header.top button.history-button").waitFor();
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    killAll();
    await world?.cleanup();
  });

  test("the operator writes a notice for a cluster; its unit gets it and the list counts it", async () => {
    const unit = world.credentials.find((c) => c.household === "11010501-001-03");
    assert.ok(unit);
    const listening = await listenFor(gw, unit, `tw/c/${unit.cluster}/notice`);
    await page.locator("header.top button.history-button").click();
    const view = page.locator("section.history");
    await view.getByRole("tab", { name: "通知" }).click();
    const form = view.locator("form.notice-form");
    await form.locator("select.notice-kind").selectOption({ label: "协查通报" });
    await form.locator("input.notice-title").fill("协查:寻找走失老人");
    await form.locator("textarea.notice-body").fill("王大爷,78岁,身穿蓝色外套。见到请联系派出所。");
    await form.locator("select.notice-clusters").selectOption(unit.cluster);
    await form.getByRole("button", { name: "发送" }).click();

    // The unit of that cluster hears it as sent, and says it showed it.
    const heard = await listening.next((m) => m.title === "协查:寻找走失老人", 10_000);
    assert.equal(heard.kind, "wanted");
    assert.match(heard.notice, /^N\d+$/);
    await listening.stop();
    const item = view.locator(`li.notice[data-notice="${heard.notice.slice(1)}"]`);
    await item.waitFor();
    assert.match(await item.innerText(), /协查通报/);
    assert.match(await item.locator(".notice-households").innerText(), /户机送达 0 \/ 10 户/);
    assert.match(await item.locator(".notice-volunteers").innerText(), /队员推送 0 \/ 1 人/);
    await uplink(gw, unit, "notice", { notice: heard.notice });
    await view.locator("button.notices-refresh").click();
    await until("the unit's receipt counted", async () => /户机送达 1 \/ 10 户/.test(await item.locator(".notice-households").innerText()));
    // The API says the same.
    const station = await gw.signIn("station");
    const listed = (await gw.api(station, "GET", "/api/notices")).notices;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].households_delivered, 1);
    assert.equal(listed[0].households, 10);

    // A notice the gateway refuses (a text over 400 characters, past the form's own limit)
    // says why, and nothing is sent.
    await form.locator("input.notice-title").fill("过长的通知");
    await form.locator("textarea.notice-body").evaluate((el) => {
      el.removeAttribute("maxlength");
      el.value = "字".repeat(401);
    });
    await form.getByRole("button", { name: "发送" }).click();
    await until("the refusal shown", async () => /发送失败.*400/.test(await form.locator(".notice-status").innerText()));
    assert.equal((await gw.api(station, "GET", "/api/notices")).notices.length, 1);
    await page.screenshot({ path: path.join(SHOTS, "console-notices.png") });
    await page.locator("header.top button.history-button").click();
    await view.waitFor({ state: "hidden" });
  });

  test("a household's 满意 shows on its resolved alert and as the statistics' satisfaction rate", async () => {
    const unit = world.credentials.find((c) => c.household === "11010501-002-04");
    assert.ok(unit);
    // (The unit's ack with `survey` is the Rust tests' business: a listener with the unit's
    // own client id would be replaced by its press.)
    await press(gw, unit, 1, "help");
    const station = await gw.signIn("station");
    const open = await until("the alert raised", async () =>
      (await gw.api(station, "GET", "/api/alerts?state=open")).alerts.find((a) => a.household === unit.household),
    );
    const id = String(open.id); // "A12"; the routes take it as it is
    await gw.api(station, "POST", `/api/alerts/${id}/resolve`, { category: "help", note: "" });
    await uplink(gw, unit, "satisfaction", { alert: id, answer: "satisfied" });
    await until("the answer stored", async () => (await gw.api(station, "GET", `/api/alerts/${id}`)).satisfaction !== null);

    // The alert, found in the history, shows the household's answer and its timeline entry.
    await page.locator("header.top button.history-button").click();
    const view = page.locator("section.history");
    await view.getByRole("tab", { name: "查询" }).click();
    await view.locator("button.history-search").click();
    await view.locator(`tr.history-row[data-alert-id="${id}"]`).click();
    const detail = page.locator("section.detail");
    await until("the answer on the alert", async () => /满意/.test(await detail.locator(".satisfaction").innerText()));
    assert.match(await detail.locator(".timeline").innerText(), /住户评价 — 满意/);

    await view.getByRole("tab", { name: "统计" }).click();
    const line = view.locator(".stats-satisfaction");
    await until("the rate on the statistics page", async () => /满意率 100%（1 户评价）/.test(await line.innerText()));
    const stats = await gw.api(station, "GET", "/api/stats");
    assert.deepEqual(stats.satisfaction, { resolved: 1, answered: 1, satisfied: 1, rate: 1 });
  });
});
