#!/usr/bin/env bash
# FUSE side by side (docs/benchmarks.md, "Adapters"): sequential write and read of one large
# random file and the creation of many small files, on the host file system directly, through
# bindfs (a passthrough FUSE file system) and through `cellar mount` of a `dir` share.
#
#   bash benches/adapters.sh target/release/cellar [SIZE_MIB=1024] [SMALL_FILES=10000]
#
# "read" is `cat` right after the write, from the page cache where the file system allows it
# (ADP-14: Cellar's mount keeps the pages its own writes cached); "cold read" is `cat` after
# `echo 3 > /proc/sys/vm/drop_caches` (printed as "-" where the sandbox refuses it, or with
# COLD=0: dropping every cache slows the next file system's run on some virtual disks). Cellar's
# write figure includes its commit (fsync).
set -euo pipefail
CELLAR=$(realpath "$1")
SIZE_MIB=${2:-1024}
FILES=${3:-10000}
W=$(mktemp -d /tmp/cellar-bench.XXXXXX)
chmod 755 "$W"
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  for m in "$W"/*/mnt; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" || true; done
  rm -rf "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk "BEGIN{print $2 - $1}"; }
mbps() { awk "BEGIN{printf \"%.1f\", $1 * 1.048576 / ($3 - $2)}"; }
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$W/src.bin"

# Runs the three measurements in directory $2, labelled $1; $3 is a command run after the
# writes to make them durable (sync / commit).
bench() {
  local label=$1 dir=$2 durable=$3 t0 t1 t2 t3 t4 t5 cold=-
  cat "$W/src.bin" >/dev/null # the source from the page cache (a cold read may have run)
  t0=$(now); cp "$W/src.bin" "$dir/big.bin"; eval "$durable"; t1=$(now)
  cat "$dir/big.bin" >/dev/null; t2=$(now)
  mkdir "$dir/small"
  for i in $(seq 1 "$FILES"); do printf '%s\n' "$i" >"$dir/small/f$i"; done
  eval "$durable"; t3=$(now)
  if [ "${COLD:-1}" = 1 ] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    t4=$(now); cat "$dir/big.bin" >/dev/null; t5=$(now); cold=$(mbps "$SIZE_MIB" "$t4" "$t5")
  fi
  cmp "$W/src.bin" "$dir/big.bin"
  printf '%-14s write %6s MB/s   read %6s MB/s   cold read %6s MB/s   %d files %6s s\n' \
    "$label" "$(mbps "$SIZE_MIB" "$t0" "$t1")" "$(mbps "$SIZE_MIB" "$t1" "$t2")" "$cold" \
    "$FILES" "$(secs "$t2" "$t3")"
}

mkdir -p "$W/host"
bench "host (ext4)" "$W/host" sync

mkdir -p "$W/bindfs/src" "$W/bindfs/mnt"
bindfs "$W/bindfs/src" "$W/bindfs/mnt"
bench "bindfs" "$W/bindfs/mnt" sync
fusermount3 -u "$W/bindfs/mnt"

mkdir -p "$W/cellar/mnt"
cat >"$W/cellar/cellar.toml" <<EOF
[stores.s]
kind = "dir"
path = "$W/cellar/blobs"
[cells.c]
kind = "file"
path = "$W/cellar/head.cell"
[volumes.v]
cell = "c"
store = "s"
[shares.bench]
volume = "v"
adapters = ["fuse"]
EOF
"$CELLAR" mount --config "$W/cellar/cellar.toml" bench "$W/cellar/mnt" 2>"$W/cellar/mount.log" &
PID=$!
for _ in $(seq 1 100); do mountpoint -q "$W/cellar/mnt" && break; sleep 0.1; done
# fsync of any file commits the whole working tree (ADP-3).
bench "cellar mount" "$W/cellar/mnt" "python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' $W/cellar/mnt/big.bin"
kill -TERM "$PID"; wait "$PID"; PID=
