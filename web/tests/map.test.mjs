// The console's map in a real browser (Debian's Chromium, headless, driven by playwright-core)
// against a real tenwatch gateway, over a bigger neighbourhood than console.test.mjs: twelve
// clusters on two streets, so that all the clusters' colours are drawn and labels crowd.
// Framing the zone, re-framing when the alert panel opens and closes, the alerts' colour,
// labels that do not cover each other, volunteers named on the map. The tests run in order
// and share one gateway and one page. Last, a station without internet: its gateway serves the
// base map from a local MBTiles file (`--tiles`), and the map draws it.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS, Gateway, PASSWORD, ROOT, killAll, press, seed, until } from "./harness.mjs";

const CLUSTERS = 12;
const HOUSEHOLDS = CLUSTERS * 10;

/** @type {Awaited<ReturnType<typeof seed>>} */
let world;
/** @type {Gateway} */
let gw;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {import("playwright-core").Page} */
let page;
let seq = 7000;

/** The device of household `n` (1-based) of cluster `c` (1-based) of the demo zone. */
function device(c, n) {
  const cred = world.credentials.find((x) => x.household === `11010501-${String(c).padStart(3, "0")}-${String(n).padStart(2, "0")}`);
  assert.ok(cred, `no device for cluster ${c} household ${n}`);
  return cred;
}

/** How many households' markers lie inside the visible map. */
async function householdsInView() {
  return page.evaluate(() => {
    const map = document.querySelector("#map").getBoundingClientRect();
    return [...document.querySelectorAll("path.hh")].filter((el) => {
      const r = el.getBoundingClientRect();
      // Leaflet draws a marker far outside the view as an empty path (no size).
      if (r.width === 0) return false;
      return r.left >= map.left && r.right <= map.right && r.top >= map.top && r.bottom <= map.bottom;
    }).length;
  });
}

/** Whether the element is in the window and not covered by anything (what a click there hits). */
async function inView(locator) {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) return false;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return hit !== null && (hit === el || el.contains(hit));
  });
}

/** Zooms in `n` steps with the map's own button, each step finished before the next. */
async function zoomIn(n) {
  const zoom = async () => Number(await page.locator("#map").getAttribute("data-zoom"));
  for (let i = 0; i < n; i++) {
    const before = await zoom();
    await page.locator(".leaflet-control-zoom-in").click();
    await until("the zoom step", async () => (await zoom()) > before);
  }
}

/** "#1f77b4" or "rgb(31, 119, 180)" → hue (degrees) and saturation (0..1). */
function hueOf(colour) {
  let rgb;
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(colour);
  if (hex) rgb = hex.slice(1).map((x) => parseInt(x, 16));
  else rgb = (/rgba?\(([^)]*)\)/.exec(colour)?.[1] ?? "").split(",").slice(0, 3).map(Number);
  const [r, g, b] = rgb.map((x) => x / 255);
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const d = max - min;
  const l = (max + min) / 2;
  const s = d === 0 ? 0 : d / (1 - Math.abs(2 * l - 1));
  let h = 0;
  if (d !== 0) {
    if (max === r) h = 60 * (((g - b) / d) % 6);
    else if (max === g) h = 60 * ((b - r) / d + 2);
    else h = 60 * ((r - g) / d + 4);
  }
  return { hue: (h + 360) % 360, saturation: s };
}

/** Degrees between two hues on the colour wheel. */
function hueDistance(a, b) {
  const d = Math.abs(a - b) % 360;
  return Math.min(d, 360 - d);
}

describe("station console map", { timeout: 180_000 }, () => {
  before(async () => {
    world = await seed({ clusters: CLUSTERS });
    gw = new Gateway(world.dir);
    await gw.ports();
    await gw.start();
    // The volunteer stands in the middle of the first street, where its name is drawn.
    const street = world.credentials.filter((c) => Number(c.cluster.slice(-3)) <= 6);
    const lat = street.reduce((s, c) => s + c.lat, 0) / street.length;
    const lon = street.reduce((s, c) => s + c.lon, 0) / street.length;
    const vol = await gw.signIn("patrol1");
    await gw.api(vol, "POST", "/api/volunteer/duty", { on_duty: true });
    await gw.api(vol, "POST", "/api/volunteer/position", { lat, lon });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" });
    page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(gw.base + "/");
    await page.locator("#name").fill("station");
    await page.locator("#password").fill(PASSWORD);
    await page.getByRole("button", { name: /登录|Sign in/ }).click();
    await until("every household on the map", async () => (await page.locator("path.hh").count()) === HOUSEHOLDS);
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    killAll();
    if (process.env.KEEP_DATA) console.log("data kept in", world?.dir);
    else await world?.cleanup();
  });

  test("the map opens on the whole zone, and its button brings the zone back after zooming", async () => {
    await until("the whole zone in view", async () => (await householdsInView()) === HOUSEHOLDS);
    await zoomIn(3);
    assert.ok((await householdsInView()) < HOUSEHOLDS, "zoomed in, some households are out of view");
    const fit = page.getByRole("button", { name: "显示整个责任区" });
    assert.equal(await fit.innerText(), "全区");
    await fit.click();
    await until("the whole zone in view again", async () => (await householdsInView()) === HOUSEHOLDS);
  });

  test("opening an alert frames it on the narrower map; closing the panel frames the zone", async () => {
    const far = device(CLUSTERS, 10);
    await press(gw, far, ++seq, "fire");
    const item = page.locator(".alert-list.open .alert-item").filter({ hasText: far.label });
    await item.waitFor();
    await zoomIn(3);
    const pin = page.locator(`.alert-pin[data-household="${far.household}"]`);
    await item.locator("button").click();
    await page.locator("section.detail .address").filter({ hasText: far.label }).waitFor();
    await until("the alert's pin in view beside the panel", () => inView(pin));
    await page.locator("section.detail button.close").click();
    await page.locator("section.detail").waitFor({ state: "hidden" });
    await until("the whole zone in view after closing", async () => (await householdsInView()) === HOUSEHOLDS);
  });

  test("the alerts' colour is one no cluster uses", async () => {
    const clusters = await page.locator("path.cluster-outline").evaluateAll((els) => els.map((el) => el.getAttribute("stroke")));
    assert.equal(clusters.length, CLUSTERS);
    const alert = await page.locator(".alert-pin .dot").first().evaluate((el) => getComputedStyle(el).backgroundColor);
    const red = hueOf(alert);
    assert.ok(red.saturation > 0.5 && hueDistance(red.hue, 0) < 20, `the alert is red: ${alert}`);
    for (const colour of clusters) {
      const c = hueOf(colour);
      // Reds, oranges and pinks (within 60° of red) are the alerts' only; greys are no colour.
      assert.ok(c.saturation < 0.15 || hueDistance(c.hue, red.hue) >= 60, `cluster colour ${colour} looks like an alert`);
    }
  });

  test("the volunteer is named on the map, and no label covers another", async () => {
    const name = page.locator(".vol-label");
    await until("one volunteer named", async () => (await name.count()) === 1);
    assert.equal(await name.innerText(), "联防队员 刘强");
    // Two alerts next door to each other on the street's other end: their labels would
    // cover each other above their pins.
    for (const n of [3, 5]) await press(gw, device(1, n), ++seq, "help");
    await until("three alert labels", async () => (await page.locator(".alert-tip").count()) === 3);
    await page.getByRole("button", { name: "显示整个责任区" }).click();
    const overlaps = async () =>
      page.evaluate(() => {
        const labels = [...document.querySelectorAll("#map .alert-tip, #map .vol-label, #map .street-label")]
          .filter((el) => getComputedStyle(el).visibility !== "hidden" && getComputedStyle(el).opacity !== "0")
          .map((el) => ({ el, r: el.getBoundingClientRect() }));
        const found = [];
        for (let i = 0; i < labels.length; i++) {
          for (let j = i + 1; j < labels.length; j++) {
            const [a, b] = [labels[i], labels[j]];
            if (a.r.left < b.r.right && b.r.left < a.r.right && a.r.top < b.r.bottom && b.r.top < a.r.bottom) {
              found.push(`${a.el.textContent} / ${b.el.textContent}`);
            }
          }
        }
        return found;
      });
    await until("no label over another", async () => (await overlaps()).length === 0, 5_000).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await overlaps())}`);
    });
    assert.ok(await name.isVisible(), "the volunteer's name outranks a street's");
    assert.equal(await page.locator(".street-label").count(), 2);
  });
});

/**
 * Writes an MBTiles file of PNG tiles covering `bbox` ([west, south, east, north]) at zooms
 * 14 to 16, with Python's own sqlite3 and zlib (tools we did not write): each tile a pale
 * colour with a grid line, so that a screenshot shows them.
 */
async function writeMbtiles(file, bbox) {
  const script = `
import json, math, sqlite3, struct, sys, zlib
path, (w, s, e, n) = sys.argv[1], json.loads(sys.argv[2])
def png(rgb):
    row = b"\\0" + bytes((90, 90, 90)) + bytes(rgb) * 254 + bytes((90, 90, 90))
    raw = b"\\0" + bytes((90, 90, 90)) * 256 + row * 254 + b"\\0" + bytes((90, 90, 90)) * 256
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def tile(lon, lat, z):
    k = 2 ** z
    x = int((lon + 180) / 360 * k)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * k)
    return x, y
db = sqlite3.connect(path)
db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
db.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
meta = {"name": "和平里", "format": "png", "attribution": "© 和平里测绘 (test)",
        "bounds": f"{w},{s},{e},{n}", "minzoom": "14", "maxzoom": "16"}
db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
count = 0
for z in range(14, 17):
    (x0, y0), (x1, y1) = tile(w, n, z), tile(e, s, z)
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            colour = (230 - 20 * (x % 2), 235 - 20 * (y % 2), 215 + 10 * (z % 2))
            db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, 2 ** z - 1 - y, png(colour)))
            count += 1
db.commit()
print(count)
`;
  const { stdout } = await promisify(execFile)("python3", ["-c", script, file, JSON.stringify(bbox)]);
  return Number(stdout.trim());
}

describe("a station without internet: the base map from its own MBTiles file", { timeout: 120_000 }, () => {
  /** @type {Awaited<ReturnType<typeof seed>>} */
  let here;
  /** @type {Gateway} */
  let station;
  /** @type {import("playwright-core").Browser} */
  let chrome;
  /** @type {import("playwright-core").Page} */
  let tab;
  /** Paths of the tiles the page asked for. */
  const asked = [];

  before(async () => {
    here = await seed({ clusters: 2 });
    const lats = here.credentials.map((c) => c.lat);
    const lons = here.credentials.map((c) => c.lon);
    const margin = 0.004;
    const bbox = [Math.min(...lons) - margin, Math.min(...lats) - margin, Math.max(...lons) + margin, Math.max(...lats) + margin];
    const file = path.join(here.dir, "station-map.mbtiles");
    assert.ok((await writeMbtiles(file, bbox)) > 0, "tiles written");
    station = new Gateway(here.dir, ["--tiles", file]);
    await station.ports();
    await station.start();
    chrome = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await chrome.newContext({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" });
    tab = await context.newPage();
    tab.on("pageerror", (e) => console.error("page error:", e));
    tab.on("request", (r) => {
      const p = new URL(r.url()).pathname;
      if (p.startsWith("/tiles/")) asked.push(p);
    });
    await tab.goto(station.base + "/");
    await tab.locator("#name").fill("station");
    await tab.locator("#password").fill(PASSWORD);
    await tab.getByRole("button", { name: /登录|Sign in/ }).click();
    await until("the households on the map", async () => (await tab.locator("path.hh").count()) === 20);
  });

  after(async () => {
    await chrome?.close();
    await station?.stop();
    killAll();
    if (process.env.KEEP_DATA) console.log("data kept in", here?.dir);
    else await here?.cleanup();
  });

  test("the map draws the gateway's own tiles, credited as the file says", async () => {
    const loaded = () =>
      tab.evaluate(() =>
        [...document.querySelectorAll("#map img.leaflet-tile")].filter(
          (img) => new URL(img.src).pathname.startsWith("/tiles/") && img.complete && img.naturalWidth > 0,
        ).length,
      );
    await until("tiles loaded from the gateway", async () => (await loaded()) >= 2);
    const sizes = await tab.evaluate(() =>
      [...document.querySelectorAll("#map img.leaflet-tile-loaded")].map((img) => [img.naturalWidth, img.naturalHeight]),
    );
    assert.ok(sizes.length > 0 && sizes.every(([w, h]) => w === 256 && h === 256), JSON.stringify(sizes));
    const credit = await tab.locator(".leaflet-control-attribution").innerText();
    assert.match(credit, /© 和平里测绘 \(test\)/);
    assert.ok(!credit.includes("未配置底图"), credit);
    assert.ok(!(await tab.locator("#map").getAttribute("class")).includes("no-tiles"));
    // The households are drawn over the tiles.
    assert.equal(await tab.locator("path.hh").count(), 20);
    await tab.mouse.move(600, 780);
    await tab.screenshot({ path: path.join(ROOT, "docs/screenshots/console-offline-map.png") });
  });

  test("zoomed past the file's deepest level, its deepest tiles are enlarged, never asked deeper", async () => {
    const zoom = async () => tab.evaluate(() => Number(document.querySelector("#map").dataset.zoom));
    // To the map's deepest (19), a step at a time.
    const button = tab.locator(".leaflet-control-zoom-in");
    while (!(await button.getAttribute("class")).includes("leaflet-disabled")) {
      const before = await zoom();
      await button.click();
      await until("the zoom step", async () => (await zoom()) > before);
    }
    assert.equal(await zoom(), 19);
    await until("tiles shown at the new zoom", async () =>
      tab.evaluate(() => document.querySelectorAll("#map img.leaflet-tile-loaded").length > 0),
    );
    const zooms = asked.map((p) => Number(p.split("/")[2]));
    assert.ok(zooms.length > 0 && zooms.every((z) => z >= 14 && z <= 16), JSON.stringify(asked));
    // Every tile asked for was one the file has: none answered 404.
    const missing = await tab.evaluate(() =>
      [...document.querySelectorAll("#map img.leaflet-tile")].filter((img) => img.complete && img.naturalWidth === 0).length,
    );
    assert.equal(missing, 0);
  });
});
