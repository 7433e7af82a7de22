#!/usr/bin/env bash
# The demo on a fresh machine: builds the station console (if Node is here) and runs
# `tenwatch demo`: embedded broker + gateway + a simulated neighbourhood, console at
# http://127.0.0.1:8080/ (sign in: demo / tenwatch-demo). Extra arguments go to `tenwatch demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v npm >/dev/null 2>&1; then
  echo "== building the station console"
  # `npm ci`: exactly the locked versions (see scripts/web-test.sh).
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
else
  echo "== Node.js is not installed: the console page will say it is not built" >&2
fi
echo "== building and starting tenwatch (first build takes a few minutes)"
exec cargo run --release --locked --bin tenwatch -- demo "$@"
