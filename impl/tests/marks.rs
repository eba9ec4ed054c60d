//! Marks and spaces (`specs/marks.md`): a mark's cell is a cell (MARK-6), edits of different
//! marks never lose each other (MARK-4), a mark volume cannot be cleaned up alone (MARK-6),
//! composite spaces route by prefix (MARK-7), and moving a mark between spaces is a volume sync
//! that creates the mark with its salt and excludes a cleanup (MARK-9).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::merge::NodeId;
use cellar::fs::{Attrs, ChunkerParams, Fs, FsPath, FsSnapshotReachability, History};
use cellar::marks::{
    CompositeSpace, MarkError, MarkName, Space, SpaceReachability, VolumeSpace, sync_mark,
};
use cellar::storage::cell::{CellError, MemCell};
use cellar::storage::store::MemStore;
use cellar::storage::volume::{Mode, SyncOutcome, Volume, VolumeError, check_vol1, cleanup};
use std::sync::Arc;

const TINY: ChunkerParams = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };

fn space(salt: u8) -> VolumeSpace {
    let vol = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
    VolumeSpace::new(vol, [salt; 32])
}

fn n(s: &str) -> MarkName {
    MarkName::new(s).unwrap()
}

/// Commits a one-file tree holding `data` on top of the mark's head; returns the new value.
fn commit(space: &VolumeSpace, mark: &MarkName, data: &[u8]) -> Vec<u8> {
    let info = space.inspect(mark).unwrap();
    let vol = space.open(mark, None).unwrap();
    let old = vol.cell.read().unwrap();
    let history = History::decode(&old).unwrap();
    let fs = Fs::with_chunker(space.store(), info.salt, TINY);
    let p = FsPath::new("/f").unwrap();
    let t = fs.mkfs(Attrs::default()).unwrap();
    let t = fs.create(&t, &p, Attrs::default()).unwrap();
    let t = fs.write(&t, &p, 0, data).unwrap();
    let head = fs.commit(&t, history.head.as_ref(), NodeId(1), "c").unwrap();
    let new = History::at(head).encode();
    assert!(vol.cell.cas(&old, &new).unwrap().swapped);
    new
}

fn read_f(space: &VolumeSpace, mark: &MarkName) -> Vec<u8> {
    let info = space.inspect(mark).unwrap();
    let head = History::decode(&info.value).unwrap().head.unwrap();
    let fs = Fs::new(space.store(), info.salt);
    let tree = fs.tree_of(&head).unwrap();
    let p = FsPath::new("/f").unwrap();
    let size = fs.stat(&tree, &p).unwrap().size;
    fs.read(&tree, &p, 0, size).unwrap()
}

#[test]
fn mark_cell_is_a_cell() {
    let s = space(1);
    s.create(&n("main"), [9; 32], 1).unwrap();
    let vol = s.open(&n("main"), None).unwrap();
    assert_eq!(vol.cell.read().unwrap(), b"");
    let out = vol.cell.cas(b"", b"v1").unwrap();
    assert!(out.swapped && out.current == b"v1");
    let lost = vol.cell.cas(b"", b"v2").unwrap();
    assert!(!lost.swapped && lost.current == b"v1", "CELL-2: a stale CAS loses");
    let big = vec![0; cellar::marks::MARK_VALUE_SIZE_MAX_BYTES + 1];
    assert!(matches!(vol.cell.cas(b"v1", &big), Err(CellError::TooLarge { .. })), "CELL-3");
    assert_eq!(s.inspect(&n("main")).unwrap().value, b"v1");
    assert_eq!(s.inspect(&n("main")).unwrap().salt, [9; 32]);
    s.delete(&n("main")).unwrap();
    assert!(vol.cell.read().is_err(), "a deleted mark's cell does not read as empty");
    assert!(vol.cell.cas(b"v1", b"v3").is_err(), "and is not resurrected by a CAS");
    assert!(matches!(s.inspect(&n("main")), Err(MarkError::NotFound { .. })));
    assert!(matches!(s.open(&n("main"), None), Err(MarkError::NotFound { .. })));
    assert!(matches!(s.create(&n("a/b"), [0; 32], 0), Err(MarkError::InvalidName { .. })));
}

#[test]
fn edits_of_different_marks_never_lose_each_other() {
    let s = space(2);
    let names: Vec<MarkName> = (0..4).map(|i| n(&format!("m{i}"))).collect();
    for m in &names {
        s.create(m, [0; 32], 0).unwrap();
    }
    std::thread::scope(|scope| {
        for m in &names {
            let s = s.clone();
            scope.spawn(move || {
                let vol = s.open(m, None).unwrap();
                let mut cur = Vec::new();
                for i in 0..40u32 {
                    let next = i.to_be_bytes().to_vec();
                    let out = vol.cell.cas(&cur, &next).unwrap();
                    assert!(out.swapped, "{m}: the only writer of its mark lost a CAS");
                    cur = next;
                }
            });
        }
    });
    for m in &names {
        assert_eq!(s.inspect(m).unwrap().value, 39u32.to_be_bytes());
    }
}

#[test]
fn a_mark_volume_cannot_be_cleaned_up_alone() {
    let s = space(3);
    s.create(&n("a"), [1; 32], 0).unwrap();
    s.create(&n("b"), [2; 32], 0).unwrap();
    commit(&s, &n("a"), &[1; 500]);
    commit(&s, &n("b"), &[2; 500]);
    let before = cellar::storage::store::list_all(s.store()).unwrap().len();
    let a = s.open(&n("a"), None).unwrap();
    assert!(cleanup(&a, &FsSnapshotReachability).is_err(), "MARK-6: a mark's store refuses delete");
    assert_eq!(cellar::storage::store::list_all(s.store()).unwrap().len(), before);
    // The space's cleanup keeps both marks whole (MARK-8).
    commit(&s, &n("a"), &[3; 500]);
    let out = cleanup(s.volume(), &SpaceReachability::new(FsSnapshotReachability)).unwrap();
    assert!(out.blobs_deleted > 0, "the first commit of a left garbage: {out:?}");
    for m in ["a", "b"] {
        let vol = s.open(&n(m), None).unwrap();
        assert_eq!(check_vol1(&vol, &FsSnapshotReachability).unwrap(), None, "{m}");
    }
    assert_eq!(read_f(&s, &n("a")), vec![3; 500]);
    assert_eq!(read_f(&s, &n("b")), vec![2; 500]);
    // A deleted mark's data goes at the next cleanup.
    s.delete(&n("b")).unwrap();
    let out = cleanup(s.volume(), &SpaceReachability::new(FsSnapshotReachability)).unwrap();
    assert!(out.blobs_deleted > 0);
    assert_eq!(read_f(&s, &n("a")), vec![3; 500]);
}

#[test]
fn fork_shares_salt_head_and_blobs() {
    let s = space(4);
    s.create(&n("main"), [7; 32], 1).unwrap();
    let v = commit(&s, &n("main"), &[5; 400]);
    let f = s.fork(&n("main"), &n("feature"), 99).unwrap();
    assert_eq!((f.salt, f.value.clone(), f.created_ns), ([7; 32], v.clone(), 99));
    let blobs = cellar::storage::store::list_all(s.store()).unwrap().len();
    // The same bytes committed on the fork deduplicate against main's chunks (same salt).
    commit(&s, &n("feature"), &[5; 400]);
    let added = cellar::storage::store::list_all(s.store()).unwrap().len() - blobs;
    assert!(added <= 3, "only the new snapshot and map nodes are new, not the data: {added}");
    s.rename(&n("feature"), &n("topic")).unwrap();
    assert_eq!(s.inspect(&n("topic")).unwrap().created_ns, 99);
    assert!(matches!(s.inspect(&n("feature")), Err(MarkError::NotFound { .. })));
    let names: Vec<String> = s.list().unwrap().into_iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(names, ["main", "topic"]);
}

#[test]
fn composite_routes_by_prefix() {
    let (local, remote) = (space(5), space(6));
    local.create(&n("main"), [1; 32], 1).unwrap();
    remote.create(&n("main"), [2; 32], 2).unwrap();
    let c = CompositeSpace::new()
        .mount("", Arc::new(local.clone()))
        .unwrap()
        .mount("origin/", Arc::new(remote.clone()))
        .unwrap();
    assert!(CompositeSpace::new().mount("bad", Arc::new(space(0))).is_err(), "no trailing /");
    assert_eq!(c.inspect(&n("main")).unwrap().salt, [1; 32]);
    assert_eq!(c.inspect(&n("origin/main")).unwrap().salt, [2; 32]);
    c.create(&n("origin/dev"), [3; 32], 3).unwrap();
    assert_eq!(remote.inspect(&n("dev")).unwrap().salt, [3; 32]);
    let names: Vec<String> = c.list().unwrap().into_iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(names, ["main", "origin/dev", "origin/main"]);
    assert!(matches!(c.rename(&n("main"), &n("origin/x")), Err(MarkError::CrossSpace { .. })));
    assert!(matches!(c.fork(&n("origin/main"), &n("x"), 0), Err(MarkError::CrossSpace { .. })));
    c.fork(&n("origin/main"), &n("origin/y"), 0).unwrap();
    assert!(
        matches!(c.inspect(&n("origin/nope")), Err(MarkError::NotFound { name }) if name == "origin/nope")
    );
    assert!(matches!(c.inspect(&n("other/main")), Err(MarkError::InvalidName { .. })));
    let only_remote = CompositeSpace::new().mount("origin/", Arc::new(remote)).unwrap();
    assert!(matches!(only_remote.inspect(&n("main")), Err(MarkError::NoMount { .. })));
}

#[test]
fn sync_mark_creates_with_the_salt_and_holds_expand() {
    let (a, b) = (space(7), space(8));
    a.create(&n("main"), [4; 32], 11).unwrap();
    commit(&a, &n("main"), &[8; 700]);
    let take = |src: &[u8], _dst: &[u8]| Some(src.to_vec());
    let never = |_: &[u8], _: &[u8]| None;
    // A declined sync creates nothing.
    let out = sync_mark(&a, &n("main"), &b, &n("main"), &FsSnapshotReachability, &never).unwrap();
    assert!(matches!(out, SyncOutcome::Declined { .. }));
    assert!(matches!(b.inspect(&n("main")), Err(MarkError::NotFound { .. })));
    // A cleanup of the destination space excludes the sync (VOL-2, VOL-6).
    {
        let _contract = b.volume().modes.begin(Mode::Contract).unwrap();
        let err =
            sync_mark(&a, &n("main"), &b, &n("main"), &FsSnapshotReachability, &take).unwrap_err();
        assert!(matches!(err, MarkError::Volume(VolumeError::ModeConflict { .. })), "{err:?}");
    }
    let out = sync_mark(&a, &n("main"), &b, &n("main"), &FsSnapshotReachability, &take).unwrap();
    assert!(matches!(out, SyncOutcome::Published { .. }));
    let copied = b.inspect(&n("main")).unwrap();
    assert_eq!((copied.salt, copied.created_ns), ([4; 32], 11), "MARK-9: the salt travels");
    assert_eq!(copied.value, a.inspect(&n("main")).unwrap().value);
    cleanup(b.volume(), &SpaceReachability::new(FsSnapshotReachability)).unwrap();
    let vol = b.open(&n("main"), None).unwrap();
    assert_eq!(check_vol1(&vol, &FsSnapshotReachability).unwrap(), None, "VOL-1");
    assert_eq!(read_f(&b, &n("main")), vec![8; 700]);
}
