//! Loom model of the relocation-vs-overwrite race (SEC-10): a compactor thread running
//! `compact_step` against a writer overwriting and deleting keys of the zone being compacted,
//! each holding the engine lock for one operation or one step — as `BackgroundCompactor` does.
//! Every interleaving must leave the overwrite and the delete in force, also after recovery.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p cellar --release --test sector_loom`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]
#![cfg(loom)]

use cellar::sector::*;
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Interleavings explored, and those where the writer ran while a zone was mid-compaction.
static EXPLORED: AtomicUsize = AtomicUsize::new(0);
static RACED: AtomicUsize = AtomicUsize::new(0);

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(64 * 1024).compaction_step_sectors_max(8)
}

/// Zone 0 holds keys 0 and 1 plus enough garbage to be a victim; the head has moved on.
fn setup() -> Engine<MemDevice> {
    let mut e = Engine::format(MemDevice::new(2 + 6 * 16), cfg()).unwrap();
    e.write(0, b"old0", WriteOptions::default()).unwrap();
    e.write(1, b"old1", WriteOptions::default()).unwrap();
    for i in 0..13u64 {
        e.write(100, &i.to_le_bytes(), WriteOptions::default()).unwrap();
    }
    e.write(200, b"x", WriteOptions::default()).unwrap();
    e
}

#[test]
fn relocation_never_resurrects_an_overwrite_or_delete() {
    race_model(None);
}

/// The loom model must fail when relocation installs without checking the index.
#[cfg(feature = "planted-bugs")]
#[test]
fn loom_catches_compactor_resurrects() {
    let r = std::panic::catch_unwind(|| race_model(Some("sector:compactor-resurrects")));
    assert!(r.is_err(), "loom missed the planted bug");
}

fn race_model(bug: Option<&'static str>) {
    loom::model(move || {
        EXPLORED.fetch_add(1, Ordering::Relaxed);
        let engine = Arc::new(Mutex::new(setup()));
        let mid = Arc::new(Mutex::new(false));
        let compactor = {
            let engine = Arc::clone(&engine);
            let mid = Arc::clone(&mid);
            thread::spawn(move || {
                let _planted = bug.map(|b| cellar::bugs::plant(b).unwrap());
                for _ in 0..16 {
                    let mut e = engine.lock().unwrap();
                    let p = e.compact_step().unwrap();
                    let done = matches!(p, CompactProgress::Freed { .. } | CompactProgress::Idle);
                    *mid.lock().unwrap() = !done;
                    if done {
                        break;
                    }
                }
            })
        };
        {
            let mut e = engine.lock().unwrap();
            if *mid.lock().unwrap() {
                RACED.fetch_add(1, Ordering::Relaxed);
            }
            e.write(0, b"new0", WriteOptions::default()).unwrap();
        }
        engine.lock().unwrap().delete(1, WriteOptions::default()).unwrap();
        compactor.join().unwrap();
        let mut e = Arc::try_unwrap(engine).ok().unwrap().into_inner().unwrap();
        assert_eq!(e.read(0).unwrap().unwrap().value, b"new0");
        assert_eq!(e.read(1).unwrap(), None);
        e.flush().unwrap();
        let mut e = Engine::open(e.into_device(), cfg()).unwrap();
        assert_eq!(e.read(0).unwrap().unwrap().value, b"new0");
        assert_eq!(e.read(1).unwrap(), None);
    });
    let (explored, raced) = (EXPLORED.load(Ordering::Relaxed), RACED.load(Ordering::Relaxed));
    println!("loom: {explored} interleavings, {raced} with the overwrite mid-compaction");
    assert!(raced > 0, "the model never reached the race it is about");
}
