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

# `npm ci`: exactly the locked versions, and a lock out of step with package.json fails here.
# The lock lists every platform's build of Rollup's native package (npm installs only this
# machine's); regenerate it with `npm install --package-lock-only`, never by hand.
# (scripts/test.sh builds them before the gateway, which embeds them, and says so.)
if [ -z "${TENWATCH_WEB_BUILT:-}" ]; then
  echo "== building the station console and the volunteer app"
  (cd web && npm ci --no-audit --no-fund && npm run build)
fi
echo "== building tenwatch for the browser tests"
cargo build --locked -p tenwatch-gateway --bin tenwatch
# The tests run the binary just built, wherever CARGO_TARGET_DIR puts it.
export TENWATCH_BIN="${TENWATCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tenwatch}"
echo "== browser tests"
# Bounded: a child process a failed test left behind must not keep the runner alive.
timeout --kill-after=10 900 node --test --test-force-exit web/tests/
