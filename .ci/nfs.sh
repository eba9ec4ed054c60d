#!/usr/bin/env bash
# `cellar serve` against Debian's libnfs-utils (docs/adapters.md, specs/adapters.md ADP-9):
#
#   bash .ci/nfs.sh CELLAR_BINARY [SIZE_MIB]     (default 64; docs/adapters.md records 1024)
#
# A random file of SIZE_MIB round-trips byte for byte through nfs-cp; mkdir, listing, rename
# and remove work (nfs_ops.py drives the ones libnfs-utils has no command for); a file written
# over NFS is visible to `cellar cat` from the committed head; after `kill -9` of the server
# nothing acknowledged is lost and the old file handles still work after a restart; SIGTERM
# stops the server with exit status 0.
set -euo pipefail
CELLAR=$(realpath "$1")
SIZE_MIB=${2:-64}
HERE=$(realpath "$(dirname "$0")")
log() { printf 'nfs.sh: %s\n' "$*" >&2; }
if ! command -v nfs-cp >/dev/null; then
  log "installing libnfs-utils from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq libnfs-utils >&2
fi

WORK=$(mktemp -d /tmp/cellar-nfs.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cat >"$WORK/cellar.toml" <<EOF
[stores.s]
kind = "dir"
path = "$WORK/blobs"

[cells.c]
kind = "file"
path = "$WORK/head.cell"

[volumes.v]
cell = "c"
store = "s"

[shares.home]
volume = "v"
adapters = ["nfs"]
EOF

start() {
  "$CELLAR" serve --config "$WORK/cellar.toml" --listen 127.0.0.1:0 >"$WORK/serve.out" 2>>"$WORK/serve.err" &
  PID=$!
  for _ in $(seq 1 100); do
    PORT=$(grep -oE '127\.0\.0\.1:[0-9]+' "$WORK/serve.out" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; log "cellar serve exited"; exit 1; }
    sleep 0.1
  done
  log "cellar serve did not listen within 10 s"; exit 1
}
url() { printf 'nfs://127.0.0.1/home/%s?version=3&nfsport=%s&mountport=%s' "$1" "$PORT" "$PORT"; }
ops() { python3 "$HERE/nfs_ops.py" "$(url '')" "$@"; }

start
log "serving on port $PORT"

# 1. A large random file, byte for byte.
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/big"
t0=$(date +%s.%N)
nfs-cp "$WORK/big" "$(url /big.bin)" >/dev/null
t1=$(date +%s.%N)
nfs-cp "$(url /big.bin)" "$WORK/big.back" >/dev/null
t2=$(date +%s.%N)
cmp "$WORK/big" "$WORK/big.back"
log "$SIZE_MIB MiB round trip is byte for byte: write $(awk "BEGIN{print $t1 - $t0}") s, read $(awk "BEGIN{print $t2 - $t1}") s"

# 2. Directories: create, list, rename, remove.
ops mkdir /docs
printf 'hello over nfs\n' >"$WORK/hello"
nfs-cp "$WORK/hello" "$(url /docs/hello.txt)" >/dev/null
nfs-ls "$(url /docs)" | grep -q 'hello.txt' || { log "hello.txt not listed"; exit 1; }
ops rename /docs /papers
nfs-ls "$(url /)" | grep -q 'papers' || { log "rename not listed"; exit 1; }
[ "$(nfs-cat "$(url /papers/hello.txt)")" = "hello over nfs" ]
ops mkdir /tmp-dir
ops rmdir /tmp-dir
ops unlink /papers/hello.txt
if nfs-ls "$(url /papers)" | grep -q hello.txt; then log "unlink left the file"; exit 1; fi
log "mkdir, list, rename, rmdir, unlink"

# 3. What NFS wrote is in the committed head.
nfs-cp "$WORK/hello" "$(url /papers/kept.txt)" >/dev/null
[ "$("$CELLAR" cat --config "$WORK/cellar.toml" --share home /papers/kept.txt)" = "hello over nfs" ]
"$CELLAR" cat --config "$WORK/cellar.toml" --share home /big.bin | cmp - "$WORK/big"
log "cellar cat reads what NFS wrote"

# 4. kill -9 loses nothing acknowledged; old handles work after the restart.
printf 'acknowledged\n' >"$WORK/ack"
nfs-cp "$WORK/ack" "$(url /papers/ack.txt)" >/dev/null
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=
start
[ "$(nfs-cat "$(url /papers/ack.txt)")" = "acknowledged" ]
nfs-cp "$(url /big.bin)" "$WORK/big.again" >/dev/null
cmp "$WORK/big" "$WORK/big.again"
log "kill -9 lost nothing acknowledged"

# 5. SIGTERM: graceful stop, exit status 0.
kill -TERM "$PID"
if ! wait "$PID"; then log "cellar serve did not exit 0 on SIGTERM"; cat "$WORK/serve.err" >&2; exit 1; fi
PID=
log "SIGTERM stopped the server cleanly"
echo "nfs: all checks passed"
