//! The `files` profile (`cellar sim --profile files`): processes sharing a `DirVolume` on the
//! simulated file system with crash semantics (`cellar_sim::simfs`) pass their oracles, the
//! file system's crash semantics behave as documented, and the planted bugs that only a power
//! cut under the file layers can show are caught — and missed by every profile that existed
//! before it (none of them runs `DirStore`, `FileCell` or `FileModeLock`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::storage::fsys::{FileSystem, WriteMode};
use cellar_sim::RunConfig;
use cellar_sim::knobs::{FaultKind, Profile};
use cellar_sim::rng::SimRng;
use cellar_sim::simfs::SimFs;
use std::path::Path;

mod common;

fn short(off: &[FaultKind], bug: Option<&str>) -> RunConfig {
    RunConfig { ticks: 1500, ..common::config(Profile::Files, off, bug) }
}

const SYNCED: WriteMode = WriteMode { create_new: false, sync: true };
const UNSYNCED: WriteMode = WriteMode { create_new: false, sync: false };

/// What survives a power cut of `fs` drawn from `seed`: the file at `path`, if any.
fn after_cut(setup: impl Fn(&dyn FileSystem), path: &str, seed: u64) -> Option<Vec<u8>> {
    let fs = SimFs::new(SimRng::new(seed), 0);
    let view = fs.process(1);
    setup(view.as_ref());
    fs.power_cut([1]);
    fs.process(2).read(Path::new(path), u64::MAX).ok()
}

#[test]
fn an_unsynced_directory_entry_may_be_lost_a_synced_one_never() {
    let unsynced = |fs: &dyn FileSystem| {
        fs.create_dir(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.write(Path::new("/d/f"), b"x", SYNCED).unwrap();
    };
    let synced = |fs: &dyn FileSystem| {
        unsynced(fs);
        fs.sync_dir(Path::new("/d")).unwrap();
    };
    let outcomes: Vec<_> = (0..40).map(|s| after_cut(unsynced, "/d/f", s)).collect();
    assert!(outcomes.contains(&None), "an unsynced entry is sometimes lost");
    assert!(outcomes.contains(&Some(b"x".to_vec())), "and sometimes kept");
    for s in 0..40 {
        assert_eq!(after_cut(synced, "/d/f", s), Some(b"x".to_vec()), "seed {s}");
    }
}

#[test]
fn unsynced_bytes_may_be_lost_or_cut_short_synced_bytes_never() {
    let write = |mode| {
        move |fs: &dyn FileSystem| {
            fs.write(Path::new("/f"), b"abcdef", mode).unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
        }
    };
    let outcomes: Vec<_> = (0..60).map(|s| after_cut(write(UNSYNCED), "/f", s)).collect();
    assert!(outcomes.contains(&Some(b"abcdef".to_vec())));
    assert!(outcomes.iter().any(|o| o.as_ref().is_some_and(|b| b.len() < 6)));
    for s in 0..40 {
        assert_eq!(after_cut(write(SYNCED), "/f", s), Some(b"abcdef".to_vec()));
    }
}

#[test]
fn a_rename_is_atomic_and_entries_survive_in_order() {
    // Old file synced; new bytes written and synced to a temp name, renamed over it, directory
    // not synced: after a cut the name holds the old bytes or the new, never neither or a mix.
    let replace = |fs: &dyn FileSystem| {
        fs.write(Path::new("/c"), b"old", SYNCED).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.write(Path::new("/c.tmp"), b"new", SYNCED).unwrap();
        fs.rename(Path::new("/c.tmp"), Path::new("/c")).unwrap();
    };
    let mut seen = std::collections::BTreeSet::new();
    for s in 0..60 {
        seen.insert(after_cut(replace, "/c", s).expect("the name survives"));
    }
    assert_eq!(seen, [b"new".to_vec(), b"old".to_vec()].into());
}

#[test]
fn a_killed_process_loses_its_locks_and_its_handles() {
    let fs = SimFs::new(SimRng::new(1), 0);
    let (a, b) = (fs.process(1), fs.process(2));
    let la = a.open_lock(Path::new("/l")).unwrap();
    la.lock_shared().unwrap();
    let lb = b.open_lock(Path::new("/l")).unwrap();
    assert!(!lb.try_lock().unwrap(), "a shared holder excludes an exclusive lock");
    assert!(lb.lock().is_err(), "a lock that would block forever is an error, not a hang");
    fs.kill(1);
    assert!(lb.try_lock().unwrap(), "VOL-4: the kill released the shared lock");
    assert!(la.lock_shared().is_err() && a.read(Path::new("/l"), 1).is_err());
}

#[test]
fn files_profile_passes_and_injects_every_fault() {
    let (s, failed) = common::campaign(&short(&[], None), 40);
    assert!(failed.is_none(), "{failed:?}");
    let f = &s.faults;
    assert!(f.crashes > 0 && f.files_cuts_mid_op > 0, "power cuts, some mid-operation: {f:?}");
    assert!(f.files_entries_lost > 0 && f.files_reverted > 0, "cuts lose something: {f:?}");
    assert!(f.files_full_refusals > 0 && f.files_kills > 0 && f.corrupt > 0, "{f:?}");
}

#[test]
fn files_profile_is_deterministic() {
    let a = common::replay(&short(&[], None), 5);
    let b = common::replay(&short(&[], None), 5);
    assert_eq!((a.trace_hash, a.ops), (b.trace_hash, b.ops));
}

/// Bugs only the `files` profile can find, with the fault that shows each.
#[cfg(feature = "planted-bugs")]
const FILES_BUGS: &[(&str, FaultKind)] = &[
    ("store:dir-entry-unsynced", FaultKind::Crash),
    ("cell:file-temp-unsynced", FaultKind::Crash),
    ("store:deferred-named-early", FaultKind::Crash),
    ("store:dir-skip-verify", FaultKind::Corrupt),
];

#[cfg(feature = "planted-bugs")]
#[test]
fn files_profile_catches_what_only_a_power_cut_under_the_file_layers_shows() {
    for &(bug, fault) in FILES_BUGS {
        let with_bug = short(&[], Some(bug));
        let (_, failed) = common::campaign(&with_bug, 20);
        let failed = failed.unwrap_or_else(|| panic!("{bug}: 20 seeds did not find it"));
        let rule = common::rule(&failed).unwrap().to_owned();
        let again = common::replay(&with_bug, failed.seed);
        assert_eq!(common::rule(&again), Some(rule.as_str()), "{bug}: seed {}", failed.seed);
        let clean = common::replay(&short(&[], None), failed.seed);
        assert!(clean.failure.is_none(), "{bug}: seed {} passes without the bug", failed.seed);
        // Without the fault that shows it, the same seeds pass.
        let (_, missed) = common::campaign(&short(&[fault], Some(bug)), 20);
        assert!(missed.is_none(), "{bug} needs {fault:?} to show: {missed:?}");
    }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn the_older_profiles_miss_the_file_layer_bugs() {
    for &(bug, _) in FILES_BUGS {
        for profile in [Profile::Swarm, Profile::Volume, Profile::Storage] {
            let cfg = RunConfig { ticks: 600, ..common::config(profile, &[], Some(bug)) };
            let (_, failed) = common::campaign(&cfg, 10);
            assert!(failed.is_none(), "{bug} in {profile:?}: {failed:?}");
        }
    }
}
