#!/usr/bin/env bash
# Line coverage of impl/ by checker (issue 15 item 5; docs/verification.md, "Coverage by
# checker"): what the simulator reaches alone, what the `cellar` crate's tests reach alone, and
# both together, per module. Not run by CI (about 35 minutes on 2 cores, most of it building).
#   bash .ci/coverage.sh                 # writes target/coverage/{sim,tests,both}.lcov + table.md
#   SIM_SCALE=0.2 bash .ci/coverage.sh   # fewer seeds per profile (a quick look)
# Needs cargo-llvm-cov and the llvm-tools-preview component (installed here if absent). With
# CELLAR_TEST_PG set (see .ci/postgres.sh) the PostgreSQL backend's tests run too; without it
# they skip, and the `pg` module's "tests" figure says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/coverage
SIM_SCALE=${SIM_SCALE:-1}
command -v cargo-llvm-cov >/dev/null || cargo install cargo-llvm-cov --locked
rustup component list --installed | grep -q llvm-tools || rustup component add llvm-tools-preview

# Instrumented artifacts in their own target directory: the ordinary target/ is not touched.
export CARGO_TARGET_DIR=$ROOT/target/llvm-cov
eval "$(cargo llvm-cov show-env --sh 2>/dev/null)"
cargo llvm-cov clean --workspace
mkdir -p "$OUT"
rm -rf "$OUT"/profraw-*

# Everything is built before anything runs, so the two phases share one set of objects.
cargo build --release -q -p cellar-sim --bin cellar
cargo test --release -q -p cellar --no-run
rm -f "$CARGO_TARGET_DIR"/*.profraw # build scripts' profiles belong to neither phase

# Each phase's profiles are set aside in $OUT/profraw-PHASE; a report puts back the ones it covers.
phase() { mkdir -p "$OUT/profraw-$1"; mv "$CARGO_TARGET_DIR"/*.profraw "$OUT/profraw-$1/" 2>/dev/null || true; }
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata
report() {
  rm -f "$CARGO_TARGET_DIR"/*.profraw
  for p in "$@"; do cp "$OUT/profraw-$p"/*.profraw "$CARGO_TARGET_DIR/"; done
  # A process killed while writing its profile (the SIGKILL tests' children) leaves a torn
  # file that would fail the whole merge: it is dropped, and named.
  for f in "$CARGO_TARGET_DIR"/*.profraw; do
    "$PROFDATA" show "$f" >/dev/null 2>&1 || { echo "dropped torn profile $(basename "$f")"; rm -f "$f"; }
  done
}

# Phase 1, the simulator alone: a campaign of every profile (seeds chosen so each profile gets
# a few minutes; the campaigns .ci/run runs are of the same order).
for entry in swarm=600 storage=300 network=300 volume=400 hostile=300 gossip=60 full=100 fs=30 files=1000; do
  profile=${entry%%=*}
  seeds=$(python3 -c "print(max(1, int(${entry#*=} * $SIM_SCALE)))")
  start=$SECONDS
  "$CARGO_TARGET_DIR/release/cellar" sim --profile "$profile" --seeds "$seeds" --keep-going --no-minimize >"$OUT/sim-$profile.log" 2>&1 \
    || { echo "sim --profile $profile failed (see $OUT/sim-$profile.log)"; exit 1; }
  echo "sim --profile $profile --seeds $seeds: $((SECONDS - start)) s"
done
phase sim

# Phase 2, the tests alone: every unit and integration test of the `cellar` crate (default
# features; loom tests need --cfg loom and are not instrumented).
start=$SECONDS
cargo test --release -q -p cellar >"$OUT/tests.log" 2>&1 || { echo "cellar tests failed (see $OUT/tests.log)"; exit 1; }
echo "cargo test -p cellar: $((SECONDS - start)) s"
phase tests

for set in sim tests both; do
  if [ "$set" = both ]; then report sim tests; else report "$set"; fi
  cargo llvm-cov report --release --lcov --output-path "$OUT/$set.lcov"
done
rm -f "$CARGO_TARGET_DIR"/*.profraw
python3 .ci/coverage_table.py "$OUT" | tee "$OUT/table.md"
