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
use cellar::fs::{Attrs, ChunkerParams, Fs, FsPath, FsSnapshotReachability};
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
