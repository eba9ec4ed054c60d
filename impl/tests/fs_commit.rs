//! File-tree histories on volumes (`specs/fs.md` FS-22): commits, merges of heads, and a
//! volume cleanup and sync driven by `FsSnapshotReachability` that keep every data blob a
//! history needs (VOL-1, VOL-5) while deleting the garbage that edits leave behind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::merge::NodeId;
use cellar::db::snapshot;
use cellar::fs::{
    Attrs, ChunkerParams, CommitError, Fs, FsPath, FsSnapshotReachability, History, Retention,
};
use cellar::storage::cell::MemCell;
use cellar::storage::refs::Ref;
use cellar::storage::store::MemStore;
use cellar::storage::volume::{SyncOutcome, Volume, check_vol1, cleanup, sync};
use std::sync::Arc;

const SALT: [u8; 32] = [5; 32];
const TINY: ChunkerParams = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };

fn p(s: &str) -> FsPath {
    FsPath::new(s).unwrap()
}

fn volume() -> Volume {
    Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()))
}

fn publish(vol: &Volume, head: &Ref) {
    let cur = vol.cell.read().unwrap();
    assert!(vol.cell.cas(&cur, &head.to_bytes()).unwrap().swapped);
}

fn take_src(src: &[u8], _dst: &[u8]) -> Option<Vec<u8>> {
    Some(src.to_vec())
}

fn read(fs: &Fs<'_>, root: &Ref, path: &str) -> Vec<u8> {
    let size = fs.stat(root, &p(path)).unwrap().size;
    fs.read(root, &p(path), 0, size).unwrap()
}

#[test]
fn cleanup_and_sync_keep_every_committed_byte() {
    let a = volume();
    let fs = Fs::with_chunker(&*a.store, SALT, TINY);
    let me = NodeId(1);
    let mut r = fs.mkfs(Attrs { mode: 0o755, ..Attrs::default() }).unwrap();
    r = fs.create(&r, &p("/f"), Attrs::default()).unwrap();
    r = fs.write(&r, &p("/f"), 0, &[1u8; 3000]).unwrap();
    let c1 = fs.commit(&r, None, me, "one").unwrap();
    publish(&a, &c1);
    let r2 = fs.write(&r, &p("/f"), 1000, &[2u8; 500]).unwrap();
    let r2 = fs.truncate(&r2, &p("/f"), 2000).unwrap();
    let c2 = fs.commit(&r2, Some(&c1), me, "two").unwrap();
    publish(&a, &c2);
    let out = cleanup(&a, &FsSnapshotReachability).unwrap();
    assert!(out.blobs_deleted > 0, "edits leave garbage: {out:?}");
    assert_eq!(check_vol1(&a, &FsSnapshotReachability).unwrap(), None, "VOL-1");
    // Both commits still read back exactly.
    assert_eq!(read(&fs, &fs.tree_of(&c1).unwrap(), "/f"), vec![1u8; 3000]);
    let mut want = vec![1u8; 2000];
    want[1000..1500].fill(2);
    assert_eq!(read(&fs, &fs.tree_of(&c2).unwrap(), "/f"), want);
    fs.scrub(&fs.tree_of(&c1).unwrap()).map(|s| assert!(s.damage.is_empty())).unwrap();

    let b = volume();
    let synced = sync(&a, &b, Some(&FsSnapshotReachability), &take_src).unwrap();
    assert!(matches!(synced, SyncOutcome::Published { .. }));
    let fs_b = Fs::with_chunker(&*b.store, SALT, TINY);
    let head = snapshot::head_from_cell(&b.cell.read().unwrap()).unwrap().unwrap();
    assert_eq!(read(&fs_b, &fs_b.tree_of(&head).unwrap(), "/f"), want);
    assert_eq!(snapshot::history(&*b.store, &head, 10).unwrap().len(), 2);
}

#[test]
fn merge_heads_combines_branches_and_fast_forwards() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let me = NodeId(1);
    let r = fs.mkfs(Attrs { mode: 0o755, ..Attrs::default() }).unwrap();
    let r = fs.create(&r, &p("/shared"), Attrs::default()).unwrap();
    let c1 = fs.commit(&r, None, me, "base").unwrap();
    let ra = fs.write(&r, &p("/shared"), 0, b"ours").unwrap();
    let ca = fs.commit(&ra, Some(&c1), me, "ours").unwrap();
    let rb = fs.mkdir(&r, &p("/theirs"), Attrs::default()).unwrap();
    let cb = fs.commit(&rb, Some(&c1), NodeId(2), "theirs").unwrap();
    let (m, conflicts) = fs.merge_heads(&ca, &cb, me).unwrap();
    assert!(conflicts.is_empty());
    let tree = fs.tree_of(&m).unwrap();
    assert_eq!(read(&fs, &tree, "/shared"), b"ours");
    fs.readdir(&tree, &p("/theirs")).unwrap();
    assert_eq!(snapshot::get(&store, &m).unwrap().parents, vec![ca, cb]);
    assert_eq!(fs.merge_heads(&c1, &ca, me).unwrap(), (ca, Vec::new()), "fast forward");
    assert_eq!(fs.merge_heads(&m, &cb, me).unwrap(), (m, Vec::new()), "already merged");
}

/// The check is not vacuous: the KV-only reachability (which knows nodes, not extents) lets a
/// cleanup delete file data, and the read then reports it missing instead of returning bytes.
#[test]
fn kv_only_reachability_would_lose_file_data() {
    let a = volume();
    let fs = Fs::with_chunker(&*a.store, SALT, TINY);
    let r = fs.mkfs(Attrs::default()).unwrap();
    let r = fs.create(&r, &p("/f"), Attrs::default()).unwrap();
    let r = fs.write(&r, &p("/f"), 0, &[7u8; 1000]).unwrap();
    let c = fs.commit(&r, None, NodeId(1), "one").unwrap();
    publish(&a, &c);
    assert!(check_vol1(&a, &FsSnapshotReachability).unwrap().is_none());
    cleanup(&a, &snapshot::SnapshotReachability).unwrap();
    assert!(check_vol1(&a, &FsSnapshotReachability).unwrap().is_some(), "VOL-1 broken");
    assert!(fs.read(&r, &p("/f"), 0, 10).is_err());
}

/// A linear history of `n` commits of one file `/f` holding `[i; 200]`, commit i at time i s.
fn linear(fs: &Fs<'_>, n: u8) -> (Vec<Ref>, Ref) {
    let me = NodeId(1);
    let mut t = fs.mkfs(Attrs { mode: 0o755, ..Attrs::default() }).unwrap();
    t = fs.create(&t, &p("/f"), Attrs::default()).unwrap();
    let mut heads: Vec<Ref> = Vec::new();
    for i in 0..n {
        t = fs.write(&t, &p("/f"), 0, &[i; 200]).unwrap();
        let c = fs.commit_at(&t, heads.last(), me, "c", Some(i64::from(i) * 1000)).unwrap();
        heads.push(c);
    }
    (heads, t)
}

#[test]
fn retention_keep_last_and_time_rules_fs25() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let (heads, _) = linear(&fs, 6);
    let h = History::at(*heads.last().unwrap());
    let last2 = Retention { keep_last: Some(2), ..Retention::default() };
    let pr = fs.prune(&h, &last2, 10_000, &[]).unwrap();
    assert_eq!((pr.history.horizon, pr.kept, pr.commits), (5, 2, 6));
    // keep_newer 3 s: commits 3, 4, 5 (lamports 4..6).
    let newer = Retention { keep_newer_ms: Some(3000), ..Retention::default() };
    assert_eq!(fs.prune(&h, &newer, 0, &[]).unwrap().history.horizon, 4);
    // keep_within 1.5 s of now = 5 s: commits 4 and 5.
    let within = Retention { keep_within_ms: Some(1500), ..Retention::default() };
    assert_eq!(fs.prune(&h, &within, 5000, &[]).unwrap().history.horizon, 5);
    // Any rule keeps: the union.
    let both = Retention { keep_last: Some(1), keep_newer_ms: Some(2000), ..Retention::default() };
    assert_eq!(fs.prune(&h, &both, 0, &[]).unwrap().history.horizon, 3);
    // The head always stays; a protected commit holds the horizon down; it never goes back.
    let none = Retention { keep_newer_ms: Some(1 << 50), ..Retention::default() };
    assert_eq!(fs.prune(&h, &none, 0, &[]).unwrap().history.horizon, 6);
    assert_eq!(fs.prune(&h, &none, 0, &[heads[1]]).unwrap().history.horizon, 2);
    let pruned = History { horizon: 5, ..h };
    assert_eq!(fs.prune(&pruned, &Retention::default(), 0, &[]).unwrap().history.horizon, 5);
}

#[test]
fn pruned_history_verifies_pushes_and_merges() {
    let a = volume();
    let fs = Fs::with_chunker(&*a.store, SALT, TINY);
    let (heads, tree) = linear(&fs, 5);
    let main = History::at(heads[4]);
    let keep1 = Retention { keep_last: Some(1), ..Retention::default() };
    let pruned = fs.prune(&main, &keep1, 0, &[]).unwrap().history;
    assert_eq!(pruned.horizon, 5);
    a.cell.cas(b"", &pruned.encode()).unwrap();
    let out = cleanup(&a, &FsSnapshotReachability).unwrap();
    assert!(out.blobs_deleted > 0, "{out:?}");
    assert_eq!(check_vol1(&a, &FsSnapshotReachability).unwrap(), None, "VOL-1 under the horizon");
    // The history is whole (snapshots stay); kept trees scrub clean; pruned ones are refused.
    assert_eq!(snapshot::history(&*a.store, &heads[4], 10).unwrap().len(), 5);
    let kept = fs.tree_in(&pruned, &heads[4]).unwrap();
    assert!(fs.scrub(&kept).unwrap().damage.is_empty());
    assert!(matches!(fs.tree_in(&pruned, &heads[0]), Err(CommitError::Pruned { .. })));
    // Syncing the pruned mark copies only what it keeps, and the copy verifies (VOL-1).
    let b = volume();
    sync(&a, &b, Some(&FsSnapshotReachability), &take_src).unwrap();
    assert_eq!(check_vol1(&b, &FsSnapshotReachability).unwrap(), None);
    // A branch made now from a pruned commit: the merge base's tree is gone on both sides, so
    // the merge runs against an empty base and still completes (FS-22).
    let side_tree = fs.mkdir(&tree, &p("/side"), Attrs::default()).unwrap();
    let side = fs.commit(&side_tree, Some(&heads[1]), NodeId(2), "side").unwrap();
    let side = History { head: Some(side), horizon: 3 };
    let (m, conflicts) = fs.merge_histories(&pruned, &side, NodeId(1), Some(9)).unwrap();
    assert!(conflicts.is_empty(), "{conflicts:?}");
    let mt = fs.tree_of(&m).unwrap();
    fs.readdir(&mt, &p("/side")).unwrap();
    assert_eq!(read(&fs, &mt, "/f"), vec![4; 200]);
    // With the base protected (what `cellar gc` does for the merge base of two marks) it stays
    // a three-way merge: no conflicts.
    let c = volume();
    let fs_c = Fs::with_chunker(&*c.store, SALT, TINY);
    let (heads, tree) = linear(&fs_c, 5);
    let side_tree = fs_c.mkdir(&tree, &p("/side"), Attrs::default()).unwrap();
    let side = fs_c.commit(&side_tree, Some(&heads[1]), NodeId(2), "side").unwrap();
    let base = snapshot::merge_base(&*c.store, &heads[4], &side).unwrap().unwrap();
    let main = fs_c.prune(&History::at(heads[4]), &keep1, 0, &[base]).unwrap().history;
    assert_eq!(main.horizon, 2);
    let (_, conflicts) = fs_c.merge_histories(&main, &History::at(side), NodeId(1), None).unwrap();
    assert!(conflicts.is_empty(), "{conflicts:?}");
}
