//! Hard links (`specs/fs.md` FS-12): one node under several names — reads, writes, attributes
//! and counts through any name; unlink, rename, diff, merge, reachability, scrub, export, and
//! damage reported, never served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::kv::Edits;
use cellar::fs::{
    Attrs, ChangeKind, ChunkerParams, ConflictKind, Fs, FsError, FsPath, Kind, PathChange,
    backref_key, inode_key,
};
use cellar::storage::refs::Ref;
use cellar::storage::store::{MemStore, Store};
use std::ops::Bound;

const SALT: [u8; 32] = [5; 32];
const TINY: ChunkerParams = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };

fn p(s: &str) -> FsPath {
    FsPath::new(s).unwrap()
}

fn at(mtime_ns: i64) -> Attrs {
    Attrs { mode: 0o644, uid: 1, gid: 1, mtime_ns }
}

fn content(fs: &Fs<'_>, r: &Ref, path: &str) -> Vec<u8> {
    let size = fs.stat(r, &p(path)).unwrap().size;
    fs.read(r, &p(path), 0, size).unwrap()
}

/// Every key of the tree, for checks that nothing is left behind.
fn keys(fs: &Fs<'_>, r: &Ref) -> Vec<Vec<u8>> {
    fs.kv()
        .range(Some(r), Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .map(|i| i.unwrap().0)
        .collect()
}

/// `/d/f` holding 300 bytes (several extents with the tiny chunker) and an empty `/e`.
fn base(fs: &Fs<'_>) -> Ref {
    let r = fs.mkfs(at(0)).unwrap();
    let r = fs.mkdir(&r, &p("/d"), at(0)).unwrap();
    let r = fs.mkdir(&r, &p("/e"), at(0)).unwrap();
    let r = fs.create(&r, &p("/d/f"), at(0)).unwrap();
    fs.write(&r, &p("/d/f"), 0, &data()).unwrap()
}

/// `/d/f`'s first bytes: 300 of them, no two chunks alike.
fn data() -> Vec<u8> {
    (0..300u32).map(|i| (i * 7 + i / 13) as u8).collect()
}

#[test]
fn names_share_one_node() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = base(&fs);
    let before = keys(&fs, &o);
    let r = fs.link(&o, &p("/d/f"), &p("/e/g")).unwrap();
    assert_eq!(content(&fs, &r, "/e/g"), data());
    assert_eq!((fs.nlink(&r, &p("/d/f")).unwrap(), fs.nlink(&r, &p("/e/g")).unwrap()), (2, 2));
    let n = fs.inode_of(&r, &p("/d/f")).unwrap().unwrap();
    assert_eq!(fs.inode_of(&r, &p("/e/g")).unwrap(), Some(n));
    assert_eq!(fs.links_of(&r, n).unwrap(), vec![p("/d/f"), p("/e/g")]);
    assert_eq!(fs.stat(&r, &p("/e")).unwrap().size, 1, "FS-10: the new name counts");
    assert!(fs.diff(&o, &r).unwrap().iter().all(|c| c.path == p("/e/g")), "f is unchanged");

    // A write, a truncate and attribute changes through one name show through the other.
    let r = fs.write(&r, &p("/e/g"), 298, b"xyz").unwrap();
    let r = fs.chmod(&r, &p("/d/f"), 0o600).unwrap();
    let r = fs.utimens(&r, &p("/e/g"), 42).unwrap();
    let f = fs.stat(&r, &p("/d/f")).unwrap();
    assert_eq!((f.size, f.mode, f.mtime_ns), (301, 0o600, 42));
    assert_eq!(&content(&fs, &r, "/d/f")[296..], [&data()[296..298], b"xyz"].concat());
    let r = fs.truncate(&r, &p("/d/f"), 10).unwrap();
    assert_eq!(content(&fs, &r, "/e/g"), data()[..10]);
    assert_eq!(fs.readdir(&r, &p("/e")).unwrap()[0].info.kind, Kind::File, "resolved");
    assert_eq!(fs.walk(&r, &p("/e")).unwrap()[1].1.size, 10, "resolved");

    // A third name, then unlink the names one by one: the node goes with the last.
    let r = fs.link(&r, &p("/e/g"), &p("/h")).unwrap();
    assert_eq!(fs.nlink(&r, &p("/d/f")).unwrap(), 3);
    let r = fs.remove(&r, &p("/d/f")).unwrap();
    assert_eq!(fs.nlink(&r, &p("/h")).unwrap(), 2);
    assert_eq!(content(&fs, &r, "/h"), data()[..10]);
    assert_eq!(fs.stat(&r, &p("/d")).unwrap().size, 0);
    let r = fs.remove(&r, &p("/e/g")).unwrap();
    assert_eq!(fs.nlink(&r, &p("/h")).unwrap(), 1);
    let r = fs.remove(&r, &p("/h")).unwrap();
    let left: Vec<_> = keys(&fs, &r).into_iter().filter(|k| k[0] != 0).collect();
    assert!(left.is_empty(), "FS-12: the inode and its back-references are gone: {left:?}");
    assert!(keys(&fs, &r).len() < before.len(), "f's records are gone");
}

#[test]
fn refusals_change_nothing() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = base(&fs);
    let err = |r: Result<Ref, FsError>| r.unwrap_err();
    assert!(matches!(err(fs.link(&o, &p("/d"), &p("/x"))), FsError::IsADirectory { .. }));
    assert!(matches!(err(fs.link(&o, &p("/nope"), &p("/x"))), FsError::NotFound { .. }));
    assert!(matches!(err(fs.link(&o, &p("/d/f"), &p("/e"))), FsError::AlreadyExists { .. }));
    assert!(matches!(err(fs.link(&o, &p("/d/f"), &p("/no/x"))), FsError::NotFound { .. }));
    assert!(matches!(err(fs.link(&o, &p("/d/f"), &p("/d/f/x"))), FsError::NotADirectory { .. }));
    let r = fs.link(&o, &p("/d/f"), &p("/x")).unwrap();
    assert!(matches!(err(fs.link(&r, &p("/x"), &p("/d/f"))), FsError::AlreadyExists { .. }));
    assert!(matches!(err(fs.rmdir(&r, &p("/x"))), FsError::NotADirectory { .. }));
    // Symlinks and special nodes link too.
    let r = fs.symlink(&r, &p("/s"), b"target", at(0)).unwrap();
    let r = fs.link(&r, &p("/s"), &p("/s2")).unwrap();
    assert_eq!(fs.readlink(&r, &p("/s2")).unwrap(), b"target");
    let r = fs.mknod(&r, &p("/fifo"), Kind::Fifo, at(0), 0).unwrap();
    let r = fs.link(&r, &p("/fifo"), &p("/fifo2")).unwrap();
    assert_eq!(fs.stat(&r, &p("/fifo2")).unwrap().kind, Kind::Fifo);
}

#[test]
fn rename_moves_back_references() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = base(&fs);
    let r = fs.link(&o, &p("/d/f"), &p("/d/g")).unwrap();
    let n = fs.inode_of(&r, &p("/d/f")).unwrap().unwrap();
    let r = fs.rename(&r, &p("/d"), &p("/e/moved")).unwrap();
    assert_eq!(fs.links_of(&r, n).unwrap(), vec![p("/e/moved/f"), p("/e/moved/g")]);
    let r = fs.rename(&r, &p("/e/moved/g"), &p("/g")).unwrap();
    assert_eq!(fs.links_of(&r, n).unwrap(), vec![p("/e/moved/f"), p("/g")]);
    assert_eq!(content(&fs, &r, "/g"), data());
    let r = fs.remove(&r, &p("/g")).unwrap();
    let r = fs.remove(&r, &p("/e/moved/f")).unwrap();
    assert!(keys(&fs, &r).iter().all(|k| k[0] == 0), "nothing left of the inode");
}

#[test]
fn diff_reports_every_name_of_a_changed_file() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = fs.link(&base(&fs), &p("/d/f"), &p("/e/g")).unwrap();
    let r = fs.write(&o, &p("/d/f"), 0, b"new").unwrap();
    let want =
        [p("/d/f"), p("/e/g")].map(|path| PathChange { path, kind: ChangeKind::Modified }).to_vec();
    assert_eq!(fs.diff(&o, &r).unwrap(), want);
    assert_eq!(fs.diff(&r, &o).unwrap(), want);
}

#[test]
fn merge_counts_names_added_on_both_sides() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = base(&fs);
    let a = fs.link(&o, &p("/d/f"), &p("/e/a")).unwrap();
    let b = fs.link(&o, &p("/d/f"), &p("/e/b")).unwrap();
    let m = fs.merge(&o, &a, &b).unwrap();
    assert!(m.conflicts.is_empty(), "{:?}", m.conflicts);
    assert_eq!(fs.nlink(&m.root, &p("/d/f")).unwrap(), 3, "both sides' names count");
    let n = fs.inode_of(&m.root, &p("/e/b")).unwrap();
    assert_eq!(fs.inode_of(&m.root, &p("/e/a")).unwrap(), n, "the same path links alike");
    let w = fs.write(&m.root, &p("/e/a"), 0, b"W").unwrap();
    assert_eq!(content(&fs, &w, "/e/b")[0], b'W');
    assert_eq!(fs.stat(&m.root, &p("/e")).unwrap().size, 2);
}

#[test]
fn merge_keeps_a_modified_inode_named() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = fs.link(&base(&fs), &p("/d/f"), &p("/e/g")).unwrap();
    // a removes both names; b writes through one.
    let a = fs.remove(&o, &p("/d/f")).unwrap();
    let a = fs.remove(&a, &p("/e/g")).unwrap();
    let b = fs.write(&o, &p("/e/g"), 0, b"b wrote").unwrap();
    for m in [fs.merge(&o, &a, &b).unwrap(), fs.merge(&o, &b, &a).unwrap()] {
        assert!(!m.conflicts.is_empty(), "FS-19 step 4: a delete against a write is reported");
        assert!(m.conflicts.iter().all(|c| c.kind == ConflictKind::DeleteModify), "{m:?}");
        assert_eq!(&content(&fs, &m.root, "/e/g")[..7], b"b wrote");
        assert_eq!(&content(&fs, &m.root, "/d/f")[..7], b"b wrote");
        assert_eq!(fs.nlink(&m.root, &p("/d/f")).unwrap(), 2);
    }
    // a removes one name, b writes: the other name keeps b's bytes.
    let a = fs.remove(&o, &p("/d/f")).unwrap();
    let m = fs.merge(&o, &a, &b).unwrap();
    assert_eq!(&content(&fs, &m.root, "/e/g")[..7], b"b wrote");
}

#[test]
fn merge_keeps_both_versions_of_a_linked_file() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = fs.link(&base(&fs), &p("/d/f"), &p("/e/g")).unwrap();
    let a = fs.write(&o, &p("/d/f"), 0, b"AAAA").unwrap();
    let b = fs.write(&o, &p("/e/g"), 0, b"BBBB").unwrap();
    let m = fs.merge(&o, &a, &b).unwrap();
    assert_eq!(m.conflicts.len(), 1, "{:?}", m.conflicts);
    let c = &m.conflicts[0];
    assert_eq!((c.path.clone(), c.kind), (p("/d/f"), ConflictKind::BothChanged));
    let copy = c.copy.clone().unwrap();
    assert!(copy.to_string().starts_with("/d/f.conflict-"), "{copy}");
    assert_eq!(&content(&fs, &m.root, "/e/g")[..4], b"AAAA", "the first side keeps the inode");
    assert_eq!(&content(&fs, &m.root, &copy.to_string())[..4], b"BBBB");
    assert_eq!(fs.nlink(&m.root, &copy).unwrap(), 1);
    assert_eq!(fs.merge(&o, &a, &b).unwrap(), m, "deterministic");
    // Both wrote the same bytes: no conflict.
    let b2 = fs.write(&o, &p("/e/g"), 0, b"AAAA").unwrap();
    assert!(fs.merge(&o, &a, &b2).unwrap().conflicts.is_empty());
}

#[test]
fn reachable_and_scrub_see_inode_bytes() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let r = fs.link(&base(&fs), &p("/d/f"), &p("/e/g")).unwrap();
    let reach = fs.reachable(&r).unwrap();
    let n = fs.inode_of(&r, &p("/d/f")).unwrap().unwrap();
    let (from, to) = (inode_key(n, 1), inode_key(n, u64::MAX));
    let mut extents =
        fs.kv().range(Some(&r), Bound::Included(&from), Bound::Included(&to)).unwrap();
    let ext = extents.next().unwrap().unwrap().1;
    let blob = cellar::fs::record::decode_extent(&ext).unwrap().blob;
    assert!(reach.contains(&blob.cid), "FS-21: an inode's blobs are reachable");
    let mut bytes = store.get(&blob.cid).unwrap();
    bytes[3] ^= 1;
    assert!(store.tamper(&blob.cid, bytes));
    let report = fs.scrub(&r).unwrap();
    assert_eq!(report.damage.len(), 1);
    assert_eq!(report.damage[0].path, Some(p("/d/f")), "named by its first link");
    assert!(fs.read(&r, &p("/e/g"), 0, 300).unwrap_err().is_corruption());
}

#[test]
fn damaged_links_are_reported() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let r = fs.link(&base(&fs), &p("/d/f"), &p("/e/g")).unwrap();
    let n = fs.inode_of(&r, &p("/d/f")).unwrap().unwrap();
    // The inode's info gone: every name reports corruption.
    let gone = fs.kv().edit(Some(&r), Edits::from([(inode_key(n, 0), None)])).unwrap().unwrap();
    assert!(fs.stat(&gone, &p("/e/g")).unwrap_err().is_corruption());
    assert!(fs.readdir(&gone, &p("/e")).unwrap_err().is_corruption());
    // A back-reference holding bytes, and a directory as an inode, are refused by the decoder.
    let bad = fs.kv().edit(Some(&r), Edits::from([(backref_key(n, &p("/x")), Some(vec![1]))]));
    assert!(fs.reachable(&bad.unwrap().unwrap()).unwrap_err().is_corruption());
}

#[test]
fn export_makes_host_hard_links() {
    use std::os::unix::fs::MetadataExt;
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let r = fs.link(&base(&fs), &p("/d/f"), &p("/e/g")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut total = 0;
    let report = cellar::fs::host::export_tree_with(&fs, &r, &FsPath::root(), &out, &mut |p| {
        if let cellar::fs::host::HostProgress::Total(t) = p {
            total = t;
        }
    })
    .unwrap();
    assert_eq!((report.files, report.hard_links, report.bytes), (1, 1, 300));
    assert_eq!(total, 300, "a linked file's bytes count once");
    let (f, g) = (out.join("d/f").metadata().unwrap(), out.join("e/g").metadata().unwrap());
    assert_eq!((f.ino(), f.nlink()), (g.ino(), 2));
    assert_eq!(std::fs::read(out.join("e/g")).unwrap(), data());
}

#[test]
fn merge_takes_a_node_linked_on_one_side_only() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let o = base(&fs);
    let b = fs.create(&o, &p("/e/new"), at(3)).unwrap();
    let b = fs.write(&b, &p("/e/new"), 0, b"made and linked by b").unwrap();
    let b = fs.link(&b, &p("/e/new"), &p("/d/alias")).unwrap();
    let a = fs.write(&o, &p("/d/f"), 0, b"a").unwrap();
    for m in [fs.merge(&o, &a, &b).unwrap(), fs.merge(&o, &b, &a).unwrap()] {
        assert!(m.conflicts.is_empty(), "{:?}", m.conflicts);
        assert_eq!(content(&fs, &m.root, "/d/alias"), b"made and linked by b");
        assert_eq!(fs.nlink(&m.root, &p("/e/new")).unwrap(), 2);
        assert_eq!(fs.readdir(&m.root, &p("/d")).unwrap().len(), 2);
        assert_eq!(content(&fs, &m.root, "/d/f")[0], b'a');
    }
}
