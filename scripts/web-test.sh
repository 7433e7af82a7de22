#!/usr/bin/env bash
# Builds the web pages (web/: the station console and the volunteer app) and runs their
# browser tests: Debian's Chromium, headless,
# driven by playwright-core against a real `tenwatch serve` built here, with Mosquitto's
# command-line clients as the devices. Screenshots go to docs/screenshots/.
# With CI=true a missing part (node, chromium, mosquitto clients) fails; it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v node >/dev/null 2>&1 || missing+=(node)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== browser tests need: ${missing[*]}" >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo "== skipping the browser tests (set CI=true to make this an error)" >&2
  exit 0
fi

echo "== building the station console and the volunteer app"
# `npm install`, not `npm ci`: the registry this project is built against serves only the
# Linux builds of Rollup's and esbuild's native packages, so package-lock.json lists those
# only and `npm ci` refuses it as "out of sync". `npm install` installs exactly the locked
# versions all the same (every version in package.json is pinned) and leaves the lock as is.
(cd web && npm install --no-audit --no-fund && npm run build)
echo "== building tenwatch for the browser tests"
cargo build --locked -p tenwatch-gateway --bin tenwatch
echo "== browser tests"
# Bounded: a child process a failed test left behind must not keep the runner alive.
timeout --kill-after=10 900 node --test --test-force-exit web/tests/
