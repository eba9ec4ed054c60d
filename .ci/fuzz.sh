#!/usr/bin/env bash
# Every fuzz target runs briefly so none can rot, and each stateful target is seen to fail on
# its planted bug (docs/fuzzing.md). One build (nightly, cargo-fuzz, with the planted-bugs
# feature: a bug is active only when CELLAR_FUZZ_BUG names it).
#   bash .ci/fuzz.sh            # RUNS=5000 per target (at most SECS=20 s each) by default
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
RUNS=${RUNS:-5000}
SECS=${SECS:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz build -O --features planted-bugs
BIN=target/x86_64-unknown-linux-gnu/release
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for t in $(cargo +nightly fuzz list); do
  corpus="$OUT/corpus-$t"
  mkdir -p "$corpus"
  [ -d "corpus/$t" ] && cp -r "corpus/$t/." "$corpus/"
  # Device images are 264 KiB: cut to 4 KiB, recovery never gets past the superblock (a
  # 10 M-run campaign at 4 KiB covered 38 edges, at full size 1 000 after 20 s).
  max_len=4096; [ "$t" = recover_from_image ] && max_len=270336
  start=$SECONDS
  "$BIN/$t" -seed=1 -runs="$RUNS" -max_total_time="$SECS" -max_len="$max_len" "$corpus" >"$OUT/$t.log" 2>&1 \
    || { echo "fuzz target $t FAILED"; tail -40 "$OUT/$t.log"; exit 1; }
  echo "fuzz target $t: $(grep -oE "Done [0-9]+ runs" "$OUT/$t.log" || echo "$RUNS runs") clean in $((SECONDS - start))s"
done

# Every target and the planted bug it must catch
# (from the seed corpus, fixed seed, bounded).
for entry in sector_vs_model=sector:ack-before-flush prolly_vs_btreemap=kv:no-run-extension \
             gossip_node_messages=gossip:store-unwanted-blob \
             decode_sealed_cell=cell:sealed-ignore-version decode_kv_node=kv:node-order-unchecked \
             decode_fs_record=fs:backref-value-unchecked decode_ref=refs:text-accepts-upper-case \
             decode_frame=sector_proto:accept-reserved-id channel_handshake=net:record-error-not-fatal \
             proto_sessions=sector_proto:assembler-drops-split-prefix \
             decode_gossip_message=gossip:decode-skips-counts recover_from_image=sector:no-seal-at-cut; do
  t=${entry%%=*}; bug=${entry#*=}
  start=$SECONDS
  # A Want of WANT_CIDS_MAX + 1 ids (the seed err-too-many-cids) is 131 KiB.
  max_len=4096; [ "$t" = decode_gossip_message ] && max_len=140000
  [ "$t" = recover_from_image ] && max_len=270336
  if CELLAR_FUZZ_BUG=$bug "$BIN/$t" -seed=1 -runs=2000000 -max_total_time=120 -max_len="$max_len" \
      -artifact_prefix="$OUT/" "$OUT/corpus-$t" >"$OUT/$t-bug.log" 2>&1; then
    echo "fuzz target $t did NOT catch planted bug $bug"; tail -20 "$OUT/$t-bug.log"; exit 1
  fi
  grep -q "panicked\|ERROR: libFuzzer" "$OUT/$t-bug.log" \
    || { echo "fuzz target $t: failed without a finding"; tail -20 "$OUT/$t-bug.log"; exit 1; }
  echo "fuzz target $t caught planted bug $bug in $((SECONDS - start))s"
done
