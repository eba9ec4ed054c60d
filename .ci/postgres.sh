#!/usr/bin/env bash
# A throwaway PostgreSQL server for Cellar's tests, on a loopback port.
#
#   bash .ci/postgres.sh start   # installs PostgreSQL from Debian's packages if absent, creates a
#                                # data directory under /tmp, starts the server, creates the
#                                # database; prints the connection URL (the only stdout line) and
#                                # writes it to $CELLAR_PG_DIR/url
#   bash .ci/postgres.sh stop    # stops the server and deletes the data directory
#
# Usage in a shell: CELLAR_TEST_PG=$(bash .ci/postgres.sh start); export CELLAR_TEST_PG
# Environment: CELLAR_PG_PORT (default 54329), CELLAR_PG_DIR (default /tmp/cellar-pg-$PORT).
# CI runs as root: initdb and pg_ctl refuse root, so they run as the `postgres` user that
# Debian's package creates. Authentication is `trust`, listening on 127.0.0.1 only.
set -euo pipefail

PORT="${CELLAR_PG_PORT:-54329}"
DIR="${CELLAR_PG_DIR:-/tmp/cellar-pg-$PORT}"
DB=cellar_test
log() { printf 'postgres.sh: %s\n' "$*" >&2; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2 && apt-get install -y postgresql >&2
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  printf '%s\n' "$d"
}

stop() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$bin" ] && [ -f "$DIR/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$DIR"
}

start() {
  local bin url
  bin=$(bindir)
  stop
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
  as_pg "$bin/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  as_pg "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR -c fsync=off" \
    start >&2
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
  url="postgres://postgres@127.0.0.1:$PORT/$DB"
  printf '%s\n' "$url" >"$DIR/url"
  log "server on 127.0.0.1:$PORT, data in $DIR/data, log $DIR/server.log"
  printf '%s\n' "$url"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
