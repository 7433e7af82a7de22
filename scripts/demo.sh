#!/usr/bin/env bash
# The demo on a fresh machine: builds the station console (if Node is here) and runs
# `tenwatch demo`: embedded broker + gateway + a simulated neighbourhood, console at
# http://127.0.0.1:8080/ (sign in: demo / tenwatch-demo). Extra arguments go to `tenwatch demo`.
#
#   bash scripts/demo.sh                          # the demo, data in ./tenwatch-data of the clone
#   bash scripts/demo.sh press 11010501-003-07    # in another terminal: press a household's button
#
# Runs from any directory: it works in the clone it belongs to. The console's pages are built
# before the binary, which embeds them (gateway/build.rs rebuilds it when web/dist changes),
# so the pages served are the ones just built.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = press ]; then
  # `tenwatch demo press`: the demo is running already, with its pages; build nothing new.
  exec cargo run --quiet --release --locked --bin tenwatch -- demo "$@"
fi
if command -v npm >/dev/null 2>&1; then
  echo "== building the station console"
  # `npm ci`: exactly the locked versions (see scripts/web-test.sh).
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
else
  echo "== Node.js is not installed: the console page will say it is not built" >&2
fi
echo "== building and starting tenwatch (first build takes a few minutes)"
exec cargo run --release --locked --bin tenwatch -- demo "$@"
