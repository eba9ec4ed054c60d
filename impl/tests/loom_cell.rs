//! Loom model check of CAS cells (specs/cells.md CELL-1, CELL-2): CAS-increment loops lose no
//! update under every interleaving loom explores — `MemCell` from 2 and 3 threads, and
//! `SealedCell<MemCell>` (the CAS over randomized ciphertexts) from 2 threads.
//!
//! Run with (about 15 s once built):
//! `RUSTFLAGS="--cfg loom" cargo test -p cellar --release --features planted-bugs --test loom_cell`
//! (without `--features planted-bugs` the planted-bug model is skipped). The 2-thread models are
//! exhaustive; the 3-thread model's preemption bound is set in code
//! (`PREEMPTION_BOUND_THREE_THREADS`), so no `LOOM_MAX_PREEMPTIONS` is needed.
//!
//! The checker is seen to fail twice: `RacyCell` below releases its lock between compare and
//! write, and the planted bug `cell:sealed-cas-reread` makes `SealedCell` swap from bytes it never
//! compared; for both, the tests assert that loom finds the lost update.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]
#![cfg(loom)]

use cellar::env::Entropy;
use cellar::storage::cell::{CasOutcome, Cell, CellError, MemCell, SealedCell};
use cellar::storage::secret::VolumeSecret;
use loom::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};

/// Preemption bound for the 3-thread model: exhaustive exploration of 3 threads x 2 increments
/// does not finish in minutes, bound 3 takes under a second. The 2-thread models are exhaustive.
const PREEMPTION_BOUND_THREE_THREADS: usize = 3;

/// CAS-increments a one-byte counter `n` times, retrying lost swaps (CELL-2: the loser learns the
/// current value and goes round again).
fn increment(cell: &dyn Cell, n: u8) {
    for _ in 0..n {
        let mut current = cell.read().unwrap();
        loop {
            let value = current.first().copied().unwrap_or(0);
            let o = cell.cas(&current, &[value + 1]).unwrap();
            if o.swapped {
                break;
            }
            assert_ne!(o.current, current, "CELL-2: a lost swap reports a different value");
            current = o.current;
        }
    }
}

fn check_no_lost_update<C: Cell + 'static>(
    make: fn() -> C,
    threads: u8,
    increments: u8,
    preemption_bound: Option<usize>,
) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemption_bound;
    builder.check(move || {
        let cell = Arc::new(make());
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let cell = Arc::clone(&cell);
                loom::thread::spawn(move || increment(&*cell, increments))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cell.read().unwrap(), [threads * increments], "CELL-1: lost update");
    });
}

#[test]
fn mem_cell_two_threads_lose_no_update() {
    check_no_lost_update(MemCell::new, 2, 2, None);
}

#[test]
fn mem_cell_three_threads_lose_no_update() {
    check_no_lost_update(MemCell::new, 3, 2, Some(PREEMPTION_BOUND_THREE_THREADS));
}

/// Distinct nonces without a loom-visible lock: the entropy source is not what is checked here,
/// and keeping it out of loom's view keeps the state space small.
struct CountingEntropy(AtomicU64);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::Relaxed).to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = n[i % n.len()];
        }
    }
}

fn sealed_mem_cell() -> SealedCell<MemCell> {
    let secret = VolumeSecret::from_bytes([4; 32]);
    SealedCell::new(
        MemCell::new(),
        &secret,
        std::sync::Arc::new(CountingEntropy(AtomicU64::new(0))),
    )
}

#[test]
fn sealed_cell_two_threads_lose_no_update() {
    // CELL-1 for the CAS over randomized ciphertexts: the inner CAS from the raw bytes compared.
    check_no_lost_update(sealed_mem_cell, 2, 2, None);
}

/// With `cell:sealed-cas-reread` the sealed CAS swaps from re-read bytes instead of the bytes it
/// compared; loom must find the lost update. Loom runs its threads as coroutines on the test's
/// OS thread, so a bug planted here is active in every model thread.
#[cfg(feature = "planted-bugs")]
#[test]
fn sealed_cell_cas_from_reread_bytes_loses_an_update() {
    let _bug = cellar::bugs::plant("cell:sealed-cas-reread").unwrap();
    expect_lost_update(|| check_no_lost_update(sealed_mem_cell, 2, 1, None));
}

/// A deliberately broken cell: compares under the lock, releases it, then writes under it again.
struct RacyCell {
    value: Mutex<Vec<u8>>,
}

impl RacyCell {
    fn new() -> Self {
        Self { value: Mutex::new(Vec::new()) }
    }
}

impl Cell for RacyCell {
    fn max_size_bytes(&self) -> usize {
        usize::MAX
    }
    fn read(&self) -> Result<Vec<u8>, CellError> {
        Ok(self.value.lock().unwrap().clone())
    }
    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        let current = self.value.lock().unwrap().clone();
        if current != expected {
            return Ok(CasOutcome { swapped: false, current });
        }
        // BUG: another thread may swap here, and its update is then overwritten.
        *self.value.lock().unwrap() = new.to_vec();
        Ok(CasOutcome { swapped: true, current: new.to_vec() })
    }
}

#[test]
fn racy_cell_loses_an_update() {
    expect_lost_update(|| check_no_lost_update(RacyCell::new, 2, 1, None));
}

/// Runs a model that must fail, and checks it failed on the lost-update assertion.
fn expect_lost_update(model: impl FnOnce() + std::panic::UnwindSafe) {
    let caught = std::panic::catch_unwind(model);
    let Err(panic) = caught else { panic!("loom did not find the lost update") };
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains("CELL-1: lost update"), "failed for another reason: {message}");
}
