#!/usr/bin/env bash
# Issue 14's acceptance, on real sockets, as a user would check it (docs/security.md §2):
#   1. three `cellar node`s converge (docs/three-nodes.sh's setup);
#   2. `tcpdump` on loopback during a `kv set` of a marker string and its gossip shows neither
#      the marker nor any byte run of the committed head ref (CH-10) — and, so that this check
#      is seen to fail, the same capture-and-search finds a marker sent in the clear;
#   3. a fourth node with another group secret is refused and learns nothing;
#   4. `cellar kv` without credentials is refused with one line.
# Usage: CELLAR=target/release/cellar bash .ci/wire.sh   (root: tcpdump needs CAP_NET_RAW)
set -euo pipefail
CELLAR=${CELLAR:-target/release/cellar}
command -v tcpdump >/dev/null || { apt-get update -qq && apt-get install -y -qq tcpdump >/dev/null; }
BASE=$((30000 + RANDOM % 20000))
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
fail() { echo "wire check FAILED: $*"; for f in "$DIR"/*.log; do echo "--- $f"; tail -5 "$f"; done; exit 1; }
addr() { echo "127.0.0.1:$((BASE + $1))"; }
secret() { (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$1"); }
secret "$DIR/group.secret"
secret "$DIR/other.secret"

# Returns once tcpdump has opened the interface (it prints "listening on" to stderr) and a
# second more: packets sent right after that line can still be missed.
capture() { # FILE FILTER
  tcpdump -i lo -U -w "$1" "$2" 2>"$1.log" &
  CAP_PID=$!
  PIDS+=($CAP_PID)
  for _ in $(seq 1 100); do grep -q "listening on" "$1.log" 2>/dev/null && { sleep 1; return 0; }; sleep 0.05; done
  fail "tcpdump did not start: $(cat "$1.log")"
}
stop_capture() { kill "$CAP_PID"; wait "$CAP_PID" 2>/dev/null || true; }

# Searches a capture file for needles (hex strings): prints how many are found.
found_in() { # FILE HEX...
  python3 - "$@" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
print(sum(1 for h in sys.argv[2:] if bytes.fromhex(h) in data))
EOF
}

echo "== control: the capture and the search find a marker sent in the clear"
CTL=$((BASE + 9))
capture "$DIR/control.pcap" "tcp port $CTL"
python3 - "$CTL" <<'EOF' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); c, _ = s.accept(); c.recv(100); c.close()
EOF
PIDS+=($!)
sleep 0.3
python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$CTL)); s.sendall(b'CLEAR-MARKER-control'); s.close()"
sleep 0.3
stop_capture
[ "$(found_in "$DIR/control.pcap" "$(printf 'CLEAR-MARKER-control' | od -An -tx1 | tr -d ' \n')")" = 1 ] \
  || fail "the control marker was not found: the search cannot see plaintext"

echo "== three nodes, capture on their ports"
capture "$DIR/nodes.pcap" "tcp portrange $BASE-$((BASE + 3))"
for i in 0 1 2; do
  peers=()
  for j in 0 1 2; do [ "$j" != "$i" ] && peers+=(--peer "$(addr "$j")"); done
  "$CELLAR" node --id "$i" --listen "$(addr "$i")" "${peers[@]}" --data "$DIR/n$i" \
    --secret-file "$DIR/group.secret" --announce-ms 200 2>"$DIR/n$i.log" &
  PIDS+=($!)
done
kv() { "$CELLAR" kv --node "$(addr "$1")" --secret-file "$DIR/group.secret" "${@:2}"; }
for i in 0 1 2; do
  for _ in $(seq 1 100); do kv "$i" status >/dev/null 2>&1 && break; sleep 0.1; done
done
MARKER="CELLAR-MARKER-$RANDOM$RANDOM"
kv 0 set /secret/marker "$MARKER"
REF=$(kv 0 commit "marker")
for _ in $(seq 1 150); do
  [ "$(kv 2 get /secret/marker 2>/dev/null || true)" = "$MARKER" ] && break; sleep 0.2
done
[ "$(kv 2 get /secret/marker)" = "$MARKER" ] || fail "node 2 never received the marker"
[ "$(kv 1 get /secret/marker)" = "$MARKER" ] || fail "node 1 never received the marker"
sleep 0.5
stop_capture
BYTES=$(stat -c %s "$DIR/nodes.pcap")
[ "$BYTES" -gt 10000 ] || fail "only $BYTES bytes captured: gossip did not run over loopback"

HEX=${REF#*:}
HEX=$(echo "$HEX" | grep -oE '[0-9a-f]{128}' || true)
[ -n "$HEX" ] || fail "could not read the committed ref from: $REF"
NEEDLES=("$(printf '%s' "$MARKER" | od -An -tx1 | tr -d ' \n')" "$(printf '%s' "$HEX" | od -An -tx1 | tr -d ' \n')")
for off in 0 32 64 96; do NEEDLES+=("${HEX:off:32}"); done # 16-byte runs of both ref halves
echo "captured $BYTES bytes; searching for the marker, the ref's text and 4 runs of its bytes"
N=$(found_in "$DIR/nodes.pcap" "${NEEDLES[@]}")
[ "$N" = 0 ] || fail "$N secret needle(s) found on the wire"
echo "no marker, no ref on the wire"

echo "== a fourth node with another group secret"
"$CELLAR" node --id 3 --listen "$(addr 3)" --peer "$(addr 0)" --peer "$(addr 1)" \
  --data "$DIR/n3" --secret-file "$DIR/other.secret" --announce-ms 200 2>"$DIR/n3.log" &
PIDS+=($!)
kv3() { "$CELLAR" kv --node "$(addr 3)" --secret-file "$DIR/other.secret" "${@:2}"; }
for _ in $(seq 1 100); do kv3 3 status >/dev/null 2>&1 && break; sleep 0.1; done
kv3 3 set /intruder yes
kv3 3 commit "intruder" >/dev/null
sleep 3
[ -z "$(kv3 3 list -r / | grep -v '^/intruder' || true)" ] || fail "the fourth node learned keys"
[ -z "$(kv 0 get /intruder 2>/dev/null || true)" ] || fail "the group accepted the fourth node's key"
grep -qi "handshake" "$DIR/n3.log" "$DIR/n0.log" "$DIR/n1.log" || fail "no refused handshake was logged"
echo "refused; learned nothing"

echo "== cellar kv without credentials"
set +e
OUT=$(env -u CELLAR_SECRET "$CELLAR" kv --node "$(addr 0)" status 2>&1)
RC=$?
set -e
[ "$RC" != 0 ] || fail "kv without credentials succeeded"
[ "$(printf '%s\n' "$OUT" | wc -l)" = 1 ] || fail "kv without credentials printed more than one line: $OUT"
echo "refused: $OUT"
echo "wire check passed"
