//! Volume behaviour: sync, cleanup and mode exclusion (specs/volume.md VOL-1..VOL-6).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::Hash;
use cellar::storage::cell::{Cell, MemCell};
use cellar::storage::store::{MemStore, Store, list_all};
use cellar::storage::volume::{
    CleanupJob, CleanupStep, HashList, Mode, SyncJob, SyncOutcome, SyncStep, Volume, VolumeError,
    check_vol1, cleanup, sync,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn mem_volume() -> Volume {
    Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()))
}

fn take_src(src: &[u8], _dst: &[u8]) -> Option<Vec<u8>> {
    Some(src.to_vec())
}

/// Posts `blobs` to `vol` and publishes the list of their hashes.
fn publish(vol: &Volume, blobs: &[Vec<u8>]) -> Vec<Hash> {
    let hashes: Vec<Hash> = blobs.iter().map(|b| vol.store.post(b).unwrap()).collect();
    let _hold = vol.modes.begin(Mode::Expand).unwrap();
    let cur = vol.cell.read().unwrap();
    assert!(vol.cell.cas(&cur, &HashList::encode(&hashes)).unwrap().swapped);
    hashes
}

#[test]
fn sync_copies_then_publishes() {
    let (src, dst) = (mem_volume(), mem_volume());
    let hashes = publish(&src, &[b"a".to_vec(), b"b".to_vec()]);
    src.store.post(b"garbage").unwrap();
    let out = sync(&src, &dst, Some(&HashList), &take_src).unwrap();
    assert_eq!(out, SyncOutcome::Published { value: HashList::encode(&hashes), blobs_copied: 2 });
    assert!(!dst.store.exists(&Hash::of(b"garbage")).unwrap(), "reachability narrows the copy");
    assert_eq!(check_vol1(&dst, &HashList).unwrap(), None, "VOL-1");
}

#[test]
fn sync_declines_when_decide_declines() {
    let (src, dst) = (mem_volume(), mem_volume());
    publish(&src, &[b"a".to_vec()]);
    let out = sync(&src, &dst, None, &|_: &[u8], _: &[u8]| None).unwrap();
    assert_eq!(out, SyncOutcome::Declined { blobs_copied: 1 });
    assert_eq!(dst.cell.read().unwrap(), b"");
}

#[test]
fn sync_refuses_to_publish_missing_blobs_vol3() {
    let (src, dst) = (mem_volume(), mem_volume());
    publish(&src, &[b"a".to_vec()]);
    let bogus = HashList::encode(&[Hash::of(b"never posted")]);
    let decide = move |_: &[u8], _: &[u8]| Some(bogus.clone());
    let err = sync(&src, &dst, Some(&HashList), &decide).unwrap_err();
    assert!(matches!(err, VolumeError::MissingBlob(h) if h == Hash::of(b"never posted")));
    assert_eq!(dst.cell.read().unwrap(), b"", "VOL-3: nothing published");
}

#[test]
fn lost_cas_is_retried_then_bounded() {
    let (src, dst) = (mem_volume(), mem_volume());
    publish(&src, &[b"a".to_vec()]);
    // A decide that always proposes something new, while another writer keeps moving the cell.
    let cell = Arc::clone(&dst.cell);
    let decide = move |_: &[u8], d: &[u8]| {
        let mut v = d.to_vec();
        v.push(1);
        let mut bump = d.to_vec();
        bump.push(2);
        cell.cas(d, &bump).unwrap();
        Some(v)
    };
    let err = sync(&src, &dst, None, &decide).unwrap_err();
    assert!(matches!(err, VolumeError::CasContention { attempts: 8 }));
}

#[test]
fn cleanup_deletes_only_unreachable() {
    let vol = mem_volume();
    let kept = publish(&vol, &[b"a".to_vec(), b"b".to_vec()]);
    vol.store.post(b"c").unwrap();
    let out = cleanup(&vol, &HashList).unwrap();
    assert_eq!((out.blobs_kept, out.blobs_deleted), (2, 1));
    let mut want = kept.clone();
    want.sort();
    assert_eq!(list_all(vol.store.as_ref()).unwrap(), want);
}

#[test]
fn cleanup_aborts_without_deleting_when_value_is_bad() {
    let vol = mem_volume();
    vol.store.post(b"c").unwrap();
    assert!(vol.cell.cas(b"", b"odd").unwrap().swapped);
    assert!(matches!(cleanup(&vol, &HashList), Err(VolumeError::BadValue(_))));
    assert_eq!(list_all(vol.store.as_ref()).unwrap().len(), 1);
}

/// VOL-6: a sync that meets Contract fails at once with `ModeConflict` and changes nothing (no
/// blob copied, cell untouched); once the cleanup ends, the same sync goes through.
#[test]
fn sync_meeting_contract_fails_at_once_and_changes_nothing_vol6() {
    let (src, dst) = (mem_volume(), mem_volume());
    let hashes = publish(&src, &[b"a".to_vec(), b"b".to_vec()]);
    let cleaning = CleanupJob::begin(&dst, &HashList).unwrap();
    let err = sync(&src, &dst, Some(&HashList), &take_src).unwrap_err();
    assert!(
        matches!(err, VolumeError::ModeConflict { wanted: Mode::Expand, held: Mode::Contract }),
        "VOL-6: {err}"
    );
    assert!(list_all(dst.store.as_ref()).unwrap().is_empty(), "VOL-6: no blob copied");
    assert_eq!(dst.cell.read().unwrap(), b"", "VOL-6: cell unchanged");
    drop(cleaning);
    let out = sync(&src, &dst, Some(&HashList), &take_src).unwrap();
    assert_eq!(out, SyncOutcome::Published { value: HashList::encode(&hashes), blobs_copied: 2 });
}

/// The deterministic interleaving behind Got's race: a sync copies its blobs and checks them,
/// a cleanup runs before the sync's CAS, then the sync publishes.
fn interleave_sync_and_cleanup() -> (Result<(), VolumeError>, Volume) {
    let (src, dst) = (mem_volume(), mem_volume());
    publish(&src, &[b"x".to_vec(), b"y".to_vec()]);
    let mut job = SyncJob::begin(&src, &dst, Some(&HashList), &take_src).unwrap();
    assert_eq!(job.step().unwrap(), SyncStep::Planned { blobs: 2 });
    assert!(matches!(job.step().unwrap(), SyncStep::Copied(_)));
    assert!(matches!(job.step().unwrap(), SyncStep::Copied(_)));
    assert!(matches!(job.step().unwrap(), SyncStep::Verified));
    let cleaned = CleanupJob::begin(&dst, &HashList).and_then(|c| c.run()).map(|_| ());
    while !matches!(job.step().unwrap(), SyncStep::Done(_)) {}
    drop(job);
    (cleaned, dst)
}

#[test]
fn mode_exclusion_refuses_the_racing_cleanup() {
    let (cleaned, dst) = interleave_sync_and_cleanup();
    assert!(matches!(
        cleaned,
        Err(VolumeError::ModeConflict { wanted: Mode::Contract, held: Mode::Expand })
    ));
    assert_eq!(check_vol1(&dst, &HashList).unwrap(), None, "VOL-1 holds");
}

/// Proves the test above can fail: with exclusion off, the same interleaving breaks VOL-1.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_mode_exclusion_breaks_vol1() {
    let _bug = cellar::bugs::plant("volume:no-mode-exclusion").unwrap();
    let (cleaned, dst) = interleave_sync_and_cleanup();
    assert!(cleaned.is_ok(), "the cleanup ran alongside the sync");
    assert!(check_vol1(&dst, &HashList).unwrap().is_some(), "VOL-1 violated: blob missing");
}

type Blobs = Vec<Vec<u8>>;

fn blob_sets() -> impl Strategy<Value = (Blobs, Blobs, Blobs)> {
    let blobs = || prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..8);
    (blobs(), blobs(), blobs())
}

proptest! {
    /// After sync the destination store is a superset of what the source value reaches, and
    /// VOL-1 holds at the destination.
    #[test]
    fn sync_makes_destination_a_superset((published, src_extra, dst_extra) in blob_sets()) {
        let (src, dst) = (mem_volume(), mem_volume());
        publish(&src, &published);
        for b in &src_extra { src.store.post(b).unwrap(); }
        for b in &dst_extra { dst.store.post(b).unwrap(); }
        sync(&src, &dst, None, &take_src).unwrap();
        let s: BTreeSet<Hash> = list_all(src.store.as_ref()).unwrap().into_iter().collect();
        let d: BTreeSet<Hash> = list_all(dst.store.as_ref()).unwrap().into_iter().collect();
        prop_assert!(s.is_subset(&d));
        prop_assert_eq!(check_vol1(&dst, &HashList).unwrap(), None);
    }

    /// Cleanup never deletes a reachable blob and deletes every unreachable one.
    #[test]
    fn cleanup_never_deletes_reachable((published, extra, _) in blob_sets()) {
        let vol = mem_volume();
        let kept: BTreeSet<Hash> = publish(&vol, &published).into_iter().collect();
        for b in &extra { vol.store.post(b).unwrap(); }
        cleanup(&vol, &HashList).unwrap();
        let left: BTreeSet<Hash> = list_all(vol.store.as_ref()).unwrap().into_iter().collect();
        prop_assert_eq!(left, kept);
    }
}

/// §5: `begin` takes Contract and reads nothing; the first step reads the value and plans. A
/// value published between the two is the one the plan keeps (the job is stepped by hand here
/// the way a scheduler may interleave it; while Contract is held no sync can publish, so the
/// publish goes through the cell directly).
#[test]
fn a_cleanup_plans_from_the_value_it_reads_at_its_first_step_vol5() {
    let vol = mem_volume();
    let blobs = [b"kept".to_vec(), b"dropped".to_vec()];
    let hashes = publish(&vol, &blobs[..1]);
    let dropped = vol.store.post(&blobs[1]).unwrap();
    let mut job = CleanupJob::begin(&vol, &HashList).unwrap();
    assert_eq!(job.blobs_remaining(), 0, "nothing is planned at begin");
    let both = HashList::encode(&[hashes[0], dropped]);
    vol.cell.cas(&HashList::encode(&hashes), &both).unwrap();
    assert_eq!(job.step().unwrap(), CleanupStep::Planned { garbage: 0 });
    assert!(matches!(job.step().unwrap(), CleanupStep::Done(o) if o.blobs_deleted == 0));
    assert!(vol.store.exists(&dropped).unwrap(), "the blob the read value reaches is kept");
}
