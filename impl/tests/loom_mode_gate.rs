//! loom: `ModeGate` with two syncers and one cleaner never admits both modes (VOL-2) and never
//! deadlocks (loom reports a deadlock as a failure).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cellar --release --test loom_mode_gate`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]
#![cfg(loom)]

use cellar::storage::volume::{Mode, ModeGate, ModeLock};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicI32, Ordering};

/// Each thread records itself in `inside` while it holds a mode: positive for expand holders,
/// negative (offset) for contract holders; seeing the other sign is a VOL-2 violation.
fn worker(gate: &ModeGate, mode: Mode, expand_in: &AtomicI32, contract_in: &AtomicI32) {
    let Ok(hold) = gate.begin(mode) else { return };
    let (mine, other) = match mode {
        Mode::Expand => (expand_in, contract_in),
        Mode::Contract => (contract_in, expand_in),
    };
    mine.fetch_add(1, Ordering::SeqCst);
    assert_eq!(other.load(Ordering::SeqCst), 0, "VOL-2: expand and contract overlap");
    mine.fetch_sub(1, Ordering::SeqCst);
    drop(hold);
}

/// Bounded exploration: every interleaving with up to 3 preemptions (loom's recommended bound;
/// the unbounded space of three threads is too large for CI).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn two_syncers_one_cleaner_never_overlap() {
    model(|| {
        let gate = Arc::new(ModeGate::new());
        let expand_in = Arc::new(AtomicI32::new(0));
        let contract_in = Arc::new(AtomicI32::new(0));
        let spawn = |mode| {
            let (g, e, c) = (Arc::clone(&gate), Arc::clone(&expand_in), Arc::clone(&contract_in));
            loom::thread::spawn(move || worker(&g, mode, &e, &c))
        };
        let threads = [spawn(Mode::Expand), spawn(Mode::Expand), spawn(Mode::Contract)];
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(gate.holders(), (0, 0), "every mode released");
    });
}

/// The checker must be seen to fail: a gate that admits any mode lets loom find the overlap.
#[test]
fn a_gate_without_exclusion_is_caught() {
    struct NoExclusion(ModeGate, ModeGate);
    let result = std::panic::catch_unwind(|| {
        model(|| {
            // Two independent gates: each mode is admitted without seeing the other.
            let gates = Arc::new(NoExclusion(ModeGate::new(), ModeGate::new()));
            let expand_in = Arc::new(AtomicI32::new(0));
            let contract_in = Arc::new(AtomicI32::new(0));
            let (g, e, c) = (Arc::clone(&gates), Arc::clone(&expand_in), Arc::clone(&contract_in));
            let t = loom::thread::spawn(move || worker(&g.0, Mode::Expand, &e, &c));
            worker(&gates.1, Mode::Contract, &expand_in, &contract_in);
            t.join().unwrap();
        });
    });
    assert!(result.is_err(), "loom must find the overlapping modes");
}
