// The browser tests' harness: a real `tenwatch` gateway (built by cargo beforehand) on ports
// the OS picked, a seeded neighbourhood, Mosquitto's command-line clients as devices, and
// Debian's Chromium driven by playwright-core. Waiting is on events with deadlines.

import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN =
  process.env.TENWATCH_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target"), "debug/tenwatch");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const ZONE = "11010501";
export const OTHER_ZONE = "11010502";
export const PASSWORD = "correct horse battery";

const run = promisify(execFile);

/** Every child process the tests started, so that none outlives a failed test. */
const children = new Set();

function track(proc) {
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  return proc;
}

/** Kills whatever child a failed test left behind (call it from the last `after`). */
export function killAll() {
  for (const proc of children) proc.kill("SIGKILL");
  children.clear();
}

/** A port nobody listens on now (bind 0, read it, close). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  server.close();
  await once(server, "close");
  return port;
}

async function tenwatch(...args) {
  const { stdout } = await run(BIN, args, { env: { ...process.env, RUST_LOG: "warn" } });
  return stdout;
}

/** Until `f` returns something truthy, or fail after `ms` with `what`. */
export async function until(what, f, ms = 10_000, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A seeded data directory with two zones, their operators and a volunteer. */
export async function seed({ clusters = 2 } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tenwatch-web-"));
  const d = ["--data-dir", dir];
  const credsPath = path.join(dir, "credentials.json");
  await tenwatch("admin", "seed-demo", ...d, "--clusters", String(clusters), "--credentials-out", credsPath);
  await tenwatch("admin", "add-zone", ...d, "--code", OTHER_ZONE, "--name", "和平里社区 第二责任区");
  await tenwatch("admin", "add-cluster", ...d, "--id", `${OTHER_ZONE}-001`, "--zone", OTHER_ZONE, "--name", "民旺南街 1-10号 十户联防组");
  await tenwatch(
    "admin", "add-household", ...d, "--id", `${OTHER_ZONE}-001-01`, "--cluster", `${OTHER_ZONE}-001`,
    "--label", "民旺南街1号", "--address", "北京市东城区民旺南街1号", "--lat", "39.9400", "--lon", "116.4100", "--leader",
  );
  await tenwatch("admin", "add-device", ...d, "--id", "d-other-01", "--household", `${OTHER_ZONE}-001-01`);
  await tenwatch("admin", "create-operator", ...d, "--name", "station", "--password", PASSWORD, "--zone", ZONE, "--display-name", "和平里派出所 值班台");
  await tenwatch("admin", "create-operator", ...d, "--name", "station2", "--password", PASSWORD, "--zone", OTHER_ZONE, "--display-name", "第二责任区 警务室");
  await tenwatch("admin", "create-volunteer", ...d, "--name", "patrol1", "--password", PASSWORD, "--zone", ZONE, "--display-name", "联防队员 刘强");
  const credentials = JSON.parse(await readFile(credsPath, "utf8"));
  return { dir, credentials, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** `tenwatch serve` on fixed ports, so that a restart comes back where the page left it. */
export class Gateway {
  /** `args`: more `tenwatch serve` flags (e.g. `--push-allow-loopback`). */
  constructor(dir, args = []) {
    this.dir = dir;
    this.args = args;
    this.proc = null;
    this.log = createWriteStream(path.join(dir, "gateway.log"), { flags: "a" });
  }

  async ports() {
    this.mqtt = await freePort();
    this.http = await freePort();
    this.base = `http://127.0.0.1:${this.http}`;
  }

  async start() {
    const proc = track(spawn(
      BIN,
      ["serve", "--data-dir", this.dir, "--mqtt-listen", `127.0.0.1:${this.mqtt}`, "--http-listen", `127.0.0.1:${this.http}`, ...this.args],
      { env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info,rumqttd=warn" }, stdio: ["ignore", "pipe", "pipe"] },
    ));
    proc.stdout.pipe(this.log, { end: false });
    proc.stderr.pipe(this.log, { end: false });
    this.proc = proc;
    let exited = null;
    proc.once("exit", (code) => (exited = code));
    await until("the gateway to be healthy", async () => {
      if (exited !== null) throw new Error(`tenwatch serve exited with ${exited}; see ${this.dir}/gateway.log`);
      const res = await fetch(`${this.base}/healthz`);
      return res.ok;
    }, 20_000);
  }

  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    this.proc = null;
    const exited = once(proc, "exit");
    proc.kill("SIGINT");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 8_000);
    await exited;
    clearTimeout(timer);
  }

  /** A session for an account, as a cookie header (for API calls from the test). */
  async signIn(name) {
    const res = await fetch(`${this.base}/api/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, password: PASSWORD }),
    });
    if (!res.ok) throw new Error(`sign in ${name}: ${res.status}`);
    const { token } = await res.json();
    return { authorization: `Bearer ${token}`, "content-type": "application/json" };
  }

  async api(headers, method, route, body) {
    const res = await fetch(`${this.base}${route}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
    return res.json();
  }
}

function mosquittoArgs(gw, cred) {
  return ["-h", "127.0.0.1", "-p", String(gw.mqtt), "-i", cred.device, "-u", cred.device, "-P", cred.password, "-V", "mqttv311", "-q", "1"];
}

/** One press, as the device would send it; resolves when the broker took it (PUBACK). */
export async function press(gw, cred, seq, kind = "help") {
  const payload = JSON.stringify({ seq, kind, ts: Date.now() });
  await run("mosquitto_pub", [...mosquittoArgs(gw, cred), "-t", `tw/d/${cred.device}/up/press`, "-m", payload]);
}

/** Any uplink of a device (`delivered`, `respond`, …), as the unit would send it; resolves on PUBACK. */
export async function uplink(gw, cred, topic, body) {
  await run("mosquitto_pub", [...mosquittoArgs(gw, cred), "-t", `tw/d/${cred.device}/up/${topic}`, "-m", JSON.stringify(body)]);
}

/** The presser's unit, listening to its own `down/ack` (with -d, so we see the SUBACK). */
export async function listenForAcks(gw, cred) {
  return listenFor(gw, cred, `tw/d/${cred.device}/down/ack`);
}

/** A unit listening on `topic` (its own downlink or its cluster's), each JSON message kept. */
export async function listenFor(gw, cred, topic) {
  const proc = track(
    spawn("stdbuf", ["-oL", "mosquitto_sub", ...mosquittoArgs(gw, cred), "-t", topic, "-d"], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  const acks = [];
  const waiters = [];
  let subscribed;
  const ready = new Promise((r) => (subscribed = r));
  readline.createInterface({ input: proc.stdout }).on("line", (line) => {
    if (line.includes("received SUBACK")) subscribed();
    if (!line.startsWith("{")) return;
    try {
      acks.push(JSON.parse(line));
    } catch {
      return;
    }
    for (const w of [...waiters]) w();
  });
  await Promise.race([
    ready,
    new Promise((_, fail) => setTimeout(() => fail(new Error("mosquitto_sub did not subscribe")), 10_000)),
  ]);
  return {
    acks,
    /** The first ack matching `pred`, within `ms`. */
    async next(pred, ms = 5_000) {
      const found = () => acks.find(pred);
      if (found()) return found();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching ack; got ${JSON.stringify(acks)}`)), ms);
        const check = () => {
          const a = found();
          if (a) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(check), 1);
            resolve(a);
          }
        };
        waiters.push(check);
      });
    },
    /**
     * The unit loses power: killed outright, so its connection just ends. (mosquitto_sub does
     * not always leave on SIGTERM: it was seen still connected minutes later.) Resolves once
     * the process is gone.
     */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, "exit");
      proc.kill("SIGKILL");
      await exited;
    },
  };
}

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
