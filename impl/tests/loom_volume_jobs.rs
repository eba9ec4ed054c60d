//! loom: the real `SyncJob` and `CleanupJob` (not only the gate) racing on one volume. In every
//! interleaving (bounded preemptions), with the jobs' own reads of the cell, their mode holds,
//! copies, deletes and CASes interleaved at every lock:
//!
//! - **VOL-1**: once the threads are done, every blob reachable from the destination cell is in
//!   its store (a cleanup never deletes what a sync published, nor what it posted and then
//!   published);
//! - **VOL-2**: a job that meets the other mode fails with `ModeConflict` and changes nothing
//!   (VOL-6); never both at once;
//! - and nothing deadlocks (loom reports it).
//!
//! Seen to fail: with the planted bug `volume:no-mode-exclusion` loom finds an interleaving in
//! which the cleanup deletes the blob the sync copied and then publishes (`planted_*` below).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cellar --release --features planted-bugs --test
//! loom_volume_jobs` (`.ci/run`'s loom step runs every `loom_*` file).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]
#![cfg(loom)]

use cellar::Hash;
use cellar::storage::cell::{Cell, MemCell};
use cellar::storage::store::{MemStore, Store};
use cellar::storage::volume::{
    CleanupJob, CleanupStep, Reachability, SyncJob, SyncOutcome, SyncStep, Volume, VolumeError,
    check_vol1, cleanup, sync,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Interleavings (of one test's model) in which the sync published, the cleanup deleted
/// something, and both ran to the end: a model in which every job was refused would check VOL-1
/// on an untouched volume.
#[derive(Default)]
struct Reached {
    published: AtomicUsize,
    deleted: AtomicUsize,
    both: AtomicUsize,
}

impl Reached {
    /// Asserts the model reached what it is about.
    fn assert_both_jobs_ran(&self) {
        let p = self.published.load(Ordering::Relaxed);
        let d = self.deleted.load(Ordering::Relaxed);
        let b = self.both.load(Ordering::Relaxed);
        println!(
            "loom: sync published in {p}, cleanup deleted in {d}, both ran in {b} interleavings"
        );
        assert!(
            p > 0 && d > 0 && b > 0,
            "the model missed a job's effect: published {p}, deleted {d}, both ran {b}"
        );
    }
}

/// A value is a list of 32-byte hashes, each of which must be in the store (VOL-1's "reachable").
struct ListedHashes;

impl Reachability for ListedHashes {
    fn reachable(&self, value: &[u8], _store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        value
            .chunks(32)
            .map(|c| {
                <[u8; 32]>::try_from(c)
                    .map(Hash)
                    .map_err(|_| VolumeError::BadValue("not a list of hashes".into()))
            })
            .collect()
    }
}

fn value_of(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| *h.as_bytes()).collect()
}

/// Source volume holding one blob its value names; destination volume holding an old value's
/// blob and one piece of garbage.
fn volumes() -> (Volume, Volume) {
    let src = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
    let fresh = src.store.post(b"the new blob, only in the source").unwrap();
    src.cell.cas(&[], &value_of(&[fresh])).unwrap();
    let dst = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
    let old = dst.store.post(b"the old blob, live in the destination").unwrap();
    dst.store.post(b"garbage nobody reaches").unwrap();
    dst.cell.cas(&[], &value_of(&[old])).unwrap();
    (src, dst)
}

/// Like [`volumes`], but the destination already holds the source's blob, unreachable (a
/// sync that copied it and then died): the next sync publishes without copying anything, and
/// until then the blob is garbage a cleanup may plan to delete.
fn volumes_with_the_blob_already_there() -> (Volume, Volume) {
    let (src, dst) = volumes();
    dst.store.post(b"the new blob, only in the source").unwrap();
    (src, dst)
}

/// A sync that publishes the source's value.
fn take_src(src: &[u8], _dst: &[u8]) -> Option<Vec<u8>> {
    Some(src.to_vec())
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

/// Runs a job, tolerating exactly the refusal VOL-6 allows: `ModeConflict`, before any change.
/// Returns the job's outcome when it ran.
fn allowed<T>(r: Result<T, VolumeError>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(VolumeError::ModeConflict { .. }) => None,
        Err(e) => panic!("unexpected job error: {e}"),
    }
}

/// One sync and one cleanup on the destination, stepped so that every lock between their
/// steps is an interleaving point; then VOL-1 on the result.
fn sync_against_cleanup(setup: fn() -> (Volume, Volume), reached: &Reached) {
    let (src, dst) = setup();
    let (src, dst) = (Arc::new(src), Arc::new(dst));
    let syncer = {
        let (src, dst) = (Arc::clone(&src), Arc::clone(&dst));
        loom::thread::spawn(move || allowed(sync(&src, &dst, Some(&ListedHashes), &take_src)))
    };
    let cleaner = {
        let dst = Arc::clone(&dst);
        loom::thread::spawn(move || allowed(cleanup(&dst, &ListedHashes)))
    };
    let synced = syncer.join().unwrap();
    let cleaned = cleaner.join().unwrap();
    if matches!(synced, Some(SyncOutcome::Published { .. })) {
        reached.published.fetch_add(1, Ordering::Relaxed);
    }
    if cleaned.is_some_and(|c| c.blobs_deleted > 0) {
        reached.deleted.fetch_add(1, Ordering::Relaxed);
    }
    if synced.is_some() && cleaned.is_some() {
        reached.both.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(check_vol1(&dst, &ListedHashes).unwrap(), None, "VOL-1: a reachable blob is gone");
}

#[test]
fn a_sync_and_a_cleanup_never_break_vol1() {
    let reached = Arc::new(Reached::default());
    let r = Arc::clone(&reached);
    model(move || sync_against_cleanup(volumes, &r));
    reached.assert_both_jobs_ran();
}

/// The blob the sync will publish is garbage in the destination when the cleanup plans: only
/// Contract, taken before the plan and held to the last delete, keeps it (VOL-5).
#[test]
fn a_cleanup_never_deletes_garbage_a_sync_then_publishes() {
    let reached = Arc::new(Reached::default());
    let r = Arc::clone(&reached);
    model(move || sync_against_cleanup(volumes_with_the_blob_already_there, &r));
    reached.assert_both_jobs_ran();
}

/// Two syncers (may overlap each other) and one cleaner; each job is begun, then stepped one
/// step at a time so the scheduler can interleave between steps. A job refused by the mode lock
/// must have changed nothing: the destination cell still holds a value whose blobs are present.
#[test]
fn two_syncs_and_a_cleanup_stepped_never_break_vol1() {
    model(|| {
        let (src, dst) = volumes();
        let (src, dst) = (Arc::new(src), Arc::new(dst));
        let stepped_sync = |src: Arc<Volume>, dst: Arc<Volume>| {
            loom::thread::spawn(move || {
                let Ok(mut job) = SyncJob::begin(&src, &dst, Some(&ListedHashes), &take_src) else {
                    return;
                };
                loop {
                    match job.step() {
                        Ok(SyncStep::Done(_)) => break,
                        Ok(_) => {}
                        Err(e) => panic!("sync step failed: {e}"),
                    }
                }
            })
        };
        let a = stepped_sync(Arc::clone(&src), Arc::clone(&dst));
        let b = stepped_sync(Arc::clone(&src), Arc::clone(&dst));
        let c = {
            let dst = Arc::clone(&dst);
            loom::thread::spawn(move || {
                let Ok(mut job) = CleanupJob::begin(&dst, &ListedHashes) else { return };
                loop {
                    match job.step() {
                        Ok(CleanupStep::Done(_)) => break,
                        Ok(_) => {}
                        Err(e) => panic!("cleanup step failed: {e}"),
                    }
                }
            })
        };
        for t in [a, b, c] {
            t.join().unwrap();
        }
        assert_eq!(
            check_vol1(&dst, &ListedHashes).unwrap(),
            None,
            "VOL-1: a reachable blob is gone"
        );
    });
}

/// The checker must be seen to fail: without mode exclusion, loom finds the interleaving in
/// which the cleanup (having read the old value) deletes the blob the sync just copied, and the
/// sync then publishes a value whose blob is gone.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_mode_exclusion_is_caught() {
    let result = std::panic::catch_unwind(|| {
        model(|| {
            let _bug = cellar::bugs::plant("volume:no-mode-exclusion").unwrap();
            sync_against_cleanup(volumes, &Reached::default());
        });
    });
    let err = result.expect_err("loom must find the VOL-1 violation without mode exclusion");
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(msg.contains("VOL-1"), "caught, but for another reason: {msg}");
}

/// The checker must be seen to fail on the split too: a cleanup that reads and plans before it
/// takes Contract (planted `volume:cleanup-holds-late`) plans to delete the blob already there;
/// loom finds the sync beginning, publishing and ending in that window, and the cleanup then
/// deleting a blob the new value reaches.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_cleanup_holds_late_is_caught() {
    let result = std::panic::catch_unwind(|| {
        model(|| {
            let _bug = cellar::bugs::plant("volume:cleanup-holds-late").unwrap();
            sync_against_cleanup(volumes_with_the_blob_already_there, &Reached::default());
        });
    });
    let err = result.expect_err("loom must find the VOL-1 violation of a late Contract");
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(msg.contains("VOL-1"), "caught, but for another reason: {msg}");
}
