#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests, in a directory of its own, on loopback
# and a free port, with trust authentication and no fsync (the tests never outlive it).
#
#   scripts/postgres-test-server.sh start DIR   prints the server's URL (for
#                                               TENWATCH_TEST_POSTGRES_URL) once it accepts
#                                               connections; the log is DIR/server.log
#   scripts/postgres-test-server.sh stop DIR    stops it and removes DIR
#
# Needs Debian's `postgresql` package (scripts/test.sh installs it). PostgreSQL refuses to
# run as root, so as root the server runs as the `postgres` user the package created.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m "$2")
# The server runs as another user, who may not enter the current directory.
cd /

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres-test-server: no PostgreSQL server found under /usr/lib/postgresql" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$action" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # A port that was free a moment ago; taken in between, try another.
    for _ in 1 2 3; do
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null; then
        echo "postgres://postgres@127.0.0.1:$port/postgres"
        exit 0
      fi
    done
    echo "postgres-test-server: the server did not start; its log:" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
