#!/usr/bin/env bash
# Three `cellar node` processes on loopback: write concurrently on each, commit, and watch them
# converge by gossip (issue 6). Exits 0 once all three list the same keys and values, 1 if they
# have not converged within $CONVERGE_SECS seconds.
#
#   bash docs/three-nodes.sh                 # builds and runs `cargo run -q --`
#   CELLAR=target/debug/cellar bash docs/three-nodes.sh
#   POLICY=keep-both bash docs/three-nodes.sh
set -euo pipefail
CELLAR=${CELLAR:-"cargo run -q --"}
POLICY=${POLICY:-lww}
CONVERGE_SECS=${CONVERGE_SECS:-30}
BASE=${PORT_BASE:-$((20000 + RANDOM % 20000))}
DIR=$(mktemp -d)
# The group secret goes in a file (mode 0600), never on a command line where `ps` shows it.
# Nodes and clients derive the channel's pre-shared key from it (specs/channel.md).
SECRET_FILE="$DIR/group.secret"
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SECRET_FILE")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

addr() { echo "127.0.0.1:$((BASE + $1))"; }
for i in 0 1 2; do
  peers=()
  for j in 0 1 2; do [ "$j" != "$i" ] && peers+=(--peer "$(addr "$j")"); done
  $CELLAR node --id "$i" --listen "$(addr "$i")" "${peers[@]}" --data "$DIR/n$i" \
    --secret-file "$SECRET_FILE" --policy "$POLICY" --announce-ms 200 2>"$DIR/n$i.log" &
  PIDS+=($!)
done

kv() { $CELLAR kv --node "$(addr "$1")" --secret-file "$SECRET_FILE" "${@:2}"; }
# Wait until every node answers.
for i in 0 1 2; do
  for _ in $(seq 1 100); do kv "$i" status >/dev/null 2>&1 && break; sleep 0.1; done
done

echo "== concurrent writes: every node writes /shared and a key of its own, then all commit"
# All writes happen before any commit, so no node has seen another's write: they are concurrent.
for i in 0 1 2; do
  kv "$i" set /shared "written by node $i"
  kv "$i" set "/users/user$i/name" "User $i"
done
for i in 0 1 2; do kv "$i" commit "node $i writes" >/dev/null; done

echo "== waiting for convergence"
deadline=$((SECONDS + CONVERGE_SECS))
while :; do
  a=$(kv 0 list -r /); b=$(kv 1 list -r /); c=$(kv 2 list -r /)
  if [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ "$(echo "$a" | wc -l)" -eq 4 ]; then break; fi
  if [ $SECONDS -ge $deadline ]; then
    echo "not converged after ${CONVERGE_SECS}s"; printf '%s\n--\n%s\n--\n%s\n' "$a" "$b" "$c"
    cat "$DIR"/n*.log; exit 1
  fi
  sleep 0.2
done
echo "$a"
echo "== children of /users on node 1: $(kv 1 list /users | tr '\n' ' ')"
echo "== log on node 2"
kv 2 log --limit 5
echo "converged"
