#!/usr/bin/env bash
# Two real `cellar node` processes on loopback, per binary given, side by side in one run:
#   - one edit: `kv set` + `kv commit` on node 0, then poll node 1 until it reads the value
#     (median and max of EDITS runs, ms; polling every 5 ms with `cellar kv get`);
#   - bulk sync: KEYS keys set and committed on node 0, then time until node 1's status shows
#     the same root (ms).
# Usage: benches/scripts/node_gossip.sh LABEL=PATH [LABEL=PATH ...]
#   e.g. benches/scripts/node_gossip.sh before=/tmp/old/cellar after=target/release/cellar
set -euo pipefail
EDITS=${EDITS:-20}
KEYS=${KEYS:-500}
now_ms() { date +%s%3N; }

run_one() {
  local label=$1 cellar=$2
  local dir base secret pids=()
  dir=$(mktemp -d); base=$((20000 + RANDOM % 20000)); secret="$dir/group.secret"
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret")
  for i in 0 1; do
    "$cellar" node --id "$i" --listen "127.0.0.1:$((base + i))" --peer "127.0.0.1:$((base + 1 - i))" \
      --data "$dir/n$i" --secret-file "$secret" --announce-ms 300 2>"$dir/n$i.log" &
    pids+=($!)
  done
  kv() { "$cellar" kv --node "127.0.0.1:$((base + $1))" --secret-file "$secret" "${@:2}"; }
  for i in 0 1; do for _ in $(seq 1 100); do kv "$i" status >/dev/null 2>&1 && break; sleep 0.1; done; done
  local lat=()
  for e in $(seq 1 "$EDITS"); do
    kv 0 set "/edit/$e" "v$e"; kv 0 commit "edit $e" >/dev/null
    local t0; t0=$(now_ms)
    until [ "$(kv 1 get "/edit/$e" 2>/dev/null)" = "v$e" ]; do
      sleep 0.005
      [ $(( $(now_ms) - t0 )) -lt 20000 ] || { echo "$label: edit $e never arrived"; break; }
    done
    lat+=($(( $(now_ms) - t0 )))
  done
  local sorted; sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
  local med max
  med=$(echo "$sorted" | sed -n "$(( (EDITS + 1) / 2 ))p"); max=$(echo "$sorted" | tail -1)
  for k in $(seq 1 "$KEYS"); do kv 0 set "/bulk/k$k" "value number $k with some padding to be realistic"; done
  kv 0 commit bulk >/dev/null
  local want t0 bulk
  want=$(kv 0 status | grep '^root'); t0=$(now_ms)
  until [ "$(kv 1 status | grep '^root')" = "$want" ]; do
    sleep 0.005
    [ $(( $(now_ms) - t0 )) -lt 60000 ] || { echo "$label: bulk never converged"; break; }
  done
  bulk=$(( $(now_ms) - t0 ))
  local conns; conns=$(grep -c . "$dir/n1.log" || true)
  printf '%-10s one edit: median %4d ms, max %4d ms (%d edits) | bulk %d keys: %5d ms\n' \
    "$label" "$med" "$max" "$EDITS" "$KEYS" "$bulk"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}

for spec in "$@"; do run_one "${spec%%=*}" "${spec#*=}"; done
