#!/usr/bin/env bash
# pjdfstest 0.2.2 against FUSE mounts (docs/adapters.md): bindfs over the host file system (the
# passthrough baseline, measured in the same run), `cellar mount` of a share on a `dir` volume,
# and, when CELLAR_TEST_PG names a PostgreSQL server, of a share on a `postgres` volume.
#
#   bash .ci/pjdfstest.sh CELLAR_BINARY
#
# Installs fuse3 and bindfs (Debian) and pjdfstest (cargo install, about 9 minutes on a 2-core
# machine; skipped when `pjdfstest` is on PATH already). Fails if a Cellar mount passes fewer
# tests than its floor below, or if a mount does not commit and exit cleanly on SIGTERM.
set -euo pipefail
CELLAR=$(realpath "$1")
# Floors: one below the pass counts recorded in docs/adapters.md (350 on both since hard links,
# FS-12), a margin for one timing-sensitive test (naptime 10 ms). Raise them when the count rises.
FLOOR_DIR=349
FLOOR_PG=349
CONF=$(realpath "$(dirname "$0")/pjdfstest.toml")
log() { printf 'pjdfstest.sh: %s\n' "$*" >&2; }

if ! command -v fusermount3 >/dev/null || ! command -v bindfs >/dev/null; then
  log "installing fuse3 and bindfs from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq fuse3 bindfs >&2
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v pjdfstest >/dev/null; then
  t0=$SECONDS
  cargo install pjdfstest --version 0.2.2 --locked -q
  log "cargo install pjdfstest took $((SECONDS - t0)) s"
fi

WORK=$(mktemp -d /tmp/cellar-pjdfstest.XXXXXX)
# The dummy_auth users (nobody, daemon) must reach the mount points.
chmod 755 "$WORK"
MOUNT_PID=
cleanup() {
  [ -n "$MOUNT_PID" ] && kill "$MOUNT_PID" 2>/dev/null || true
  for m in "$WORK"/*/mnt; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Runs pjdfstest in $1 (a mount point); prints "passed failed skipped"; keeps the log in $2.
run_suite() {
  (cd "$1" && pjdfstest -c "$CONF" -p "$1" >"$2" 2>&1) || true
  local s
  s=$(grep -E '^Summary:' "$2" || true)
  [ -n "$s" ] || { log "no summary in $2"; tail -n 20 "$2" >&2; return 1; }
  log "$(basename "$2" .log): $s"
  printf '%s %s %s\n' \
    "$(grep -oE '[0-9]+ passed' <<<"$s" | grep -oE '[0-9]+')" \
    "$(grep -oE '[0-9]+ failed' <<<"$s" | grep -oE '[0-9]+')" \
    "$(grep -oE '[0-9]+ skipped' <<<"$s" | grep -oE '[0-9]+')"
}

wait_mounted() {
  for _ in $(seq 1 100); do
    mountpoint -q "$1" && return 0
    kill -0 "$MOUNT_PID" 2>/dev/null || { log "cellar mount exited"; return 1; }
    sleep 0.1
  done
  log "$1 was not mounted within 10 s"; return 1
}

# bindfs over the host file system.
mkdir -p "$WORK/bindfs/src" "$WORK/bindfs/mnt"
bindfs "$WORK/bindfs/src" "$WORK/bindfs/mnt"
read -r b_pass b_fail b_skip < <(run_suite "$WORK/bindfs/mnt" "$WORK/bindfs.log")
fusermount3 -u "$WORK/bindfs/mnt"

# One Cellar share: $1 name, $2 the [stores]/[cells] part of cellar.toml, $3 floor.
cellar_suite() {
  local name=$1 backends=$2 floor=$3 d="$WORK/$1"
  mkdir -p "$d/mnt"
  cat >"$d/cellar.toml" <<EOF
$backends

[volumes.v]
cell = "c"
store = "s"

[shares.$name]
volume = "v"
adapters = ["fuse"]
EOF
  "$CELLAR" mount --config "$d/cellar.toml" "$name" "$d/mnt" 2>"$d/mount.log" &
  MOUNT_PID=$!
  wait_mounted "$d/mnt"
  read -r pass fail skip < <(run_suite "$d/mnt" "$WORK/cellar-$name.log")
  [ -n "${pass:-}" ] || { log "cellar ($name): pjdfstest printed no summary"; exit 1; }
  # SIGTERM commits, then unmounts; the process must exit 0.
  kill -TERM "$MOUNT_PID"
  if ! wait "$MOUNT_PID"; then log "cellar mount ($name) did not exit cleanly"; cat "$d/mount.log" >&2; exit 1; fi
  MOUNT_PID=
  grep -q '^cellar: committed' "$d/mount.log" || { log "no commit on SIGTERM ($name)"; cat "$d/mount.log" >&2; exit 1; }
  if mountpoint -q "$d/mnt"; then log "$d/mnt still mounted after SIGTERM"; exit 1; fi
  # ADP-1: the commit moved the share's mark, which `cellar log --share` reads.
  "$CELLAR" log --config "$d/cellar.toml" --share "$name" -n 1 | grep -q "cellar mount $name: " \
    || { log "cellar log --share $name does not show the mount's commit"; exit 1; }
  printf '%-22s %4s passed %4s failed %4s skipped (floor %s)\n' "cellar ($name)" "$pass" "$fail" "$skip" "$floor"
  if [ "$pass" -lt "$floor" ]; then
    log "cellar ($name) passed $pass < floor $floor; failures:"
    grep -E 'FAILED$' "$WORK/cellar-$name.log" >&2 || true
    exit 1
  fi
}

printf '%-22s %4s passed %4s failed %4s skipped\n' "bindfs (ext4)" "$b_pass" "$b_fail" "$b_skip"
cellar_suite dirshare "[stores.s]
kind = \"dir\"
path = \"$WORK/dirshare/blobs\"

[cells.c]
kind = \"file\"
path = \"$WORK/dirshare/head.cell\"" "$FLOOR_DIR"

if [ -n "${CELLAR_TEST_PG:-}" ]; then
  ns="pjd$$"
  cellar_suite pgshare "[stores.s]
kind = \"postgres\"
url = \"$CELLAR_TEST_PG\"
namespace = \"$ns\"

[cells.c]
kind = \"postgres\"
url = \"$CELLAR_TEST_PG\"
name = \"$ns\"" "$FLOOR_PG"
else
  log "CELLAR_TEST_PG is not set: the postgres share is not tested"
fi
