//! The adapters' core without a kernel (`specs/adapters.md`, ADP-*): `ShareFs` over in-memory
//! volumes, as the FUSE and NFS shells drive it.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use cellar::adapters::{AdapterError, Caller, Errno, SetAttr, ShareFs, ShareOptions, open_mark};
use cellar::db::merge::NodeId;
use cellar::env::Clock;
use cellar::fs::{Compression, FsSnapshotReachability, History, Kind};
use cellar::marks::{MarkInfo, MarkName, Space, SpaceReachability, VolumeSpace};
use cellar::storage::cell::MemCell;
use cellar::storage::store::{ALL_HASHES, MemStore, Store};
use cellar::storage::volume::{Mode, Volume, check_vol1};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod share_support;
use share_support::*;

#[test]
fn adp3_adp4_nothing_reaches_the_store_before_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let before = blobs(&vol);
    let s = share(&vol, &dir, "a", 1);
    let d = s.mkdir(s.root_ino(), b"docs", 0o755, ME).unwrap();
    let ino = file(&s, d.ino, "a.txt", b"hello");
    assert_eq!(s.read(ino, 0, 100).unwrap(), b"hello");
    assert_eq!(s.getattr(ino).unwrap().size, 5);
    assert_eq!(blobs(&vol), before, "ADP-4: staged blobs stay out of the volume's store");
    assert!(vol.cell.read().unwrap().is_empty());
    let rep = s.commit("first").unwrap();
    assert!(rep.published && rep.merges == 0);
    assert_eq!(committed(&vol, "/docs/a.txt").unwrap(), b"hello");
    // VOL-1: every blob the head reaches is in the store.
    assert_eq!(check_vol1(&vol, &FsSnapshotReachability).unwrap(), None);
    // A clean tree commits nothing.
    assert!(!s.commit("again").unwrap().published);
    // A second server sees the commit.
    let t = share(&vol, &dir, "b", 2);
    let a = t.lookup(t.root_ino(), b"docs").unwrap();
    let f = t.lookup(a.ino, b"a.txt").unwrap();
    assert_eq!(f.ino, ino, "ADP-2: inode numbers derive from paths, the same in every process");
    assert_eq!(t.read(f.ino, 0, 100).unwrap(), b"hello");
}

#[test]
fn adp5_a_lost_cas_merges_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "base", 1);
    file(&s, s.root_ino(), "shared.txt", b"base");
    s.commit("base").unwrap();
    let a = share(&vol, &dir, "a", 2);
    let b = share(&vol, &dir, "b", 3);
    let xa = a.lookup(a.root_ino(), b"shared.txt").unwrap().ino;
    let xb = b.lookup(b.root_ino(), b"shared.txt").unwrap().ino;
    a.setattr(xa, SetAttr { size: Some(0), ..SetAttr::default() }).unwrap();
    a.write(xa, 0, b"from a").unwrap();
    file(&a, a.root_ino(), "only-a.txt", b"a");
    b.setattr(xb, SetAttr { size: Some(0), ..SetAttr::default() }).unwrap();
    b.write(xb, 0, b"from b").unwrap();
    file(&b, b.root_ino(), "only-b.txt", b"b");
    assert!(a.commit("a").unwrap().published);
    let rep = b.commit("b").unwrap();
    assert!(rep.published);
    assert_eq!(rep.merges, 1);
    assert_eq!(rep.conflicts.len(), 1);
    // Ours (b, the committer that lost) keeps the path; theirs sits beside it.
    assert_eq!(committed(&vol, "/shared.txt").unwrap(), b"from b");
    let copy = rep.conflicts[0].copy.clone().expect("a conflict copy");
    assert_eq!(committed(&vol, &copy.to_string()).unwrap(), b"from a");
    assert_eq!(committed(&vol, "/only-a.txt").unwrap(), b"a");
    assert_eq!(committed(&vol, "/only-b.txt").unwrap(), b"b");
    assert_eq!(check_vol1(&vol, &FsSnapshotReachability).unwrap(), None);
    // b's working tree is the merge; a catches up on its next (clean) commit.
    assert!(b.lookup(b.root_ino(), b"only-a.txt").is_ok());
    a.commit("catch up").unwrap();
    assert!(a.lookup(a.root_ino(), b"only-b.txt").is_ok());
}

#[test]
fn adp6_posix_namespace_rules_and_errnos() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    let root = s.root_ino();
    let d = s.mkdir(root, b"d", 0o755, ME).unwrap();
    let f = file(&s, d.ino, "f", b"x");
    assert_eq!(s.create(d.ino, b"f", 0o644, ME).unwrap_err(), Errno(libc::EEXIST));
    assert_eq!(s.rmdir(root, b"d").unwrap_err(), Errno(libc::ENOTEMPTY));
    assert_eq!(s.lookup(f, b"x").unwrap_err(), Errno(libc::ENOTDIR));
    assert_eq!(s.link(d.ino, root, b"hard").unwrap_err(), Errno(libc::EPERM), "FS-12: a directory");
    assert_eq!(s.unlink(root, b"d").unwrap_err(), Errno(libc::EISDIR));
    // Rename keeps the inode number; a file replaces a file.
    let g = file(&s, root, "g", b"gg");
    s.rename(root, b"g", d.ino, b"f", false).unwrap();
    assert_eq!(s.lookup(d.ino, b"f").unwrap().ino, g);
    assert_eq!(s.read(g, 0, 10).unwrap(), b"gg");
    assert_eq!(s.getattr(f).unwrap_err(), Errno(libc::ESTALE));
    // A directory into itself; a directory over a file.
    assert_eq!(s.rename(root, b"d", d.ino, b"sub", false).unwrap_err(), Errno(libc::EINVAL));
    file(&s, root, "h", b"");
    assert_eq!(s.rename(root, b"d", root, b"h", false).unwrap_err(), Errno(libc::ENOTDIR));
    assert_eq!(s.rename(root, b"h", d.ino, b"f", true).unwrap_err(), Errno(libc::EEXIST));
    // Renaming a directory carries its children's inodes.
    s.rename(root, b"d", root, b"e", false).unwrap();
    assert_eq!(s.read(g, 0, 10).unwrap(), b"gg");
    // Setgid directories pass their group on.
    let sg = s.mkdir(root, b"sg", 0o2775, Caller { uid: 0, gid: 50 }).unwrap();
    let inner = s.mkdir(sg.ino, b"in", 0o755, ME).unwrap();
    assert_eq!((inner.gid, inner.mode & 0o2000), (50, 0o2000));
    // FIFOs, sockets and devices are nodes with attributes (FS-3).
    let p = s.mknod(root, b"pipe", Kind::Fifo, 0o600, 0, ME).unwrap();
    let c = s.mknod(root, b"tty", Kind::CharDevice, 0o600, 0x0501, ME).unwrap();
    assert_eq!((p.kind, c.kind, c.size), (Kind::Fifo, Kind::CharDevice, 0x0501));
    assert_eq!(s.read(p.ino, 0, 1).unwrap_err(), Errno(libc::EINVAL));
    // A directory's nlink counts its subdirectories (e and sg under the root).
    assert_eq!(s.getattr(root).unwrap().nlink, 4);
    s.mkdir(root, b"third", 0o755, ME).unwrap();
    assert_eq!(s.getattr(root).unwrap().nlink, 5);
    s.commit("all").unwrap();
    let t = share(&vol, &dir, "b", 2);
    assert_eq!(t.lookup(t.root_ino(), b"tty").unwrap().size, 0x0501);
}

#[test]
fn adp7_times_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    let root = s.root_ino();
    let before = s.getattr(root).unwrap();
    let f = file(&s, root, "f", b"0123456789");
    let after = s.getattr(root).unwrap();
    assert!(after.mtime_ns > before.mtime_ns, "creating an entry sets the parent's mtime");
    let a = s.setattr(f, SetAttr { size: Some(4), ..SetAttr::default() }).unwrap();
    assert_eq!(a.size, 4);
    assert_eq!(s.read(f, 0, 100).unwrap(), b"0123");
    let a = s.setattr(f, SetAttr { size: Some(8), ..SetAttr::default() }).unwrap();
    assert_eq!(s.read(f, 0, 100).unwrap(), b"0123\0\0\0\0");
    assert!(a.ctime_ns >= a.mtime_ns);
    let m = s.setattr(f, SetAttr { mode: Some(0o4755), uid: Some(5), ..SetAttr::default() });
    let m = m.unwrap();
    assert_eq!((m.mode, m.uid, m.gid), (0o4755, 5, 1000));
}

#[test]
fn adp8_read_only_and_busy() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    file(&s, s.root_ino(), "f", b"x");
    // A cleanup holds Contract: the commit is refused (retryable), nothing published.
    let hold = vol.modes.begin(Mode::Contract).unwrap();
    assert!(matches!(s.commit("x"), Err(AdapterError::Busy)));
    assert_eq!(s.commit("x").unwrap_err().errno(), Errno(libc::EAGAIN));
    drop(hold);
    assert!(s.commit("x").unwrap().published);
    let opts = ShareOptions {
        read_only: true,
        spill_dir: dir.path().join("ro"),
        author: NodeId(9),
        clock: Arc::new(TickClock(AtomicU64::new(0))),
        root_owner: (0, 0),
        label: "ro".into(),
        refresh_ms: 0,
        compression: Compression::Zstd,
    };
    let ro = ShareFs::open(vol.clone(), SALT, opts).unwrap();
    let f = ro.lookup(ro.root_ino(), b"f").unwrap().ino;
    assert_eq!(ro.read(f, 0, 1).unwrap(), b"x");
    assert_eq!(ro.write(f, 0, b"y").unwrap_err(), Errno(libc::EROFS));
    assert_eq!(ro.create(1, b"n", 0o644, ME).unwrap_err(), Errno(libc::EROFS));
}

#[test]
fn adp4_a_large_file_spills_and_promotes() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    let f = s.create(1, b"big", 0o644, ME).unwrap().ino;
    let mut data = vec![0u8; 5 << 20];
    let mut x = 12345u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (i, c) in data.chunks(1 << 20).enumerate() {
        s.write(f, (i << 20) as u64, c).unwrap();
    }
    assert_eq!(s.read(f, 0, 5 << 20).unwrap(), data);
    let spilled = std::fs::read_dir(s.spill_dir()).unwrap().count();
    assert!(spilled > 0, "ADP-4: 5 MiB of staged data and nothing in the spill directory");
    s.commit("big").unwrap();
    assert_eq!(committed(&vol, "/big").unwrap(), data);
    assert_eq!(check_vol1(&vol, &FsSnapshotReachability).unwrap(), None);
}

#[test]
fn adp1_shares_of_two_marks_commit_through_one_space() {
    let dir = tempfile::tempdir().unwrap();
    let space_vol = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
    let space = VolumeSpace::new(space_vol.clone(), SPACE_SALT);
    let (main, docs) = (mark_volume(&space, "main"), mark_volume(&space, "docs"));
    let a = share(&main, &dir, "a", 1);
    let b = share(&docs, &dir, "b", 2);
    file(&a, a.root_ino(), "m.txt", b"on main");
    file(&b, b.root_ino(), "d.txt", b"on docs");
    // Another mark is created between the two commits: MARK-4 keeps every edit.
    space.create(&MarkName::new("other").unwrap(), [1; 32], 2).unwrap();
    let ra = a.commit("a").unwrap();
    assert!(ra.published && ra.merges == 0, "a mark edit elsewhere is not a lost CAS");
    assert!(b.commit("b").unwrap().published);
    assert_eq!(committed(&main, "/m.txt").unwrap(), b"on main");
    assert_eq!(committed(&docs, "/d.txt").unwrap(), b"on docs");
    assert!(committed(&main, "/d.txt").is_none(), "marks are separate trees");
    // The space cell holds the map; each mark's value is its history; the commits carry time.
    let names: Vec<String> =
        space.list().unwrap().into_iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["docs", "main", "other"]);
    let head = History::decode(&space.inspect(&MarkName::new("main").unwrap()).unwrap().value)
        .unwrap()
        .head
        .unwrap();
    let snap = cellar::db::snapshot::get(space_vol.store.as_ref(), &head).unwrap();
    let (text, time) = cellar::fs::split_commit_message(&snap.message);
    assert_eq!(text, "test a: a");
    assert!(time.is_some(), "FS-24: the commit carries cellar-time-ms");
    // A cleanup of the space keeps both marks whole (MARK-8, VOL-1).
    // (It deletes only superseded map nodes.)
    let reach = SpaceReachability::new(FsSnapshotReachability);
    cellar::storage::volume::cleanup(&space_vol, &reach).unwrap();
    assert_eq!(check_vol1(&space_vol, &reach).unwrap(), None);
    assert_eq!(committed(&main, "/m.txt").unwrap(), b"on main");
    assert_eq!(committed(&docs, "/d.txt").unwrap(), b"on docs");
    // A read-only share of a missing mark serves an empty tree and creates nothing.
    let nope = MarkName::new("nope").unwrap();
    let ro = open_mark(&space, &nope, &MarkInfo::new(SALT, 3), true).unwrap();
    assert!(ro.volume.cell.read().unwrap().is_empty());
    let opts = ShareOptions {
        read_only: true,
        spill_dir: dir.path().join("ro"),
        author: NodeId(9),
        clock: Arc::new(TickClock(AtomicU64::new(0))),
        root_owner: (0, 0),
        label: "ro".into(),
        refresh_ms: 0,
        compression: Compression::Zstd,
    };
    let r = ShareFs::open(ro.volume, SALT, opts).unwrap();
    assert_eq!(r.create(1, b"n", 0o644, ME).unwrap_err(), Errno(libc::EROFS));
    assert!(!r.commit("x").unwrap().published);
    assert!(matches!(space.inspect(&nope), Err(cellar::marks::MarkError::NotFound { .. })));
}

#[test]
fn adp1_a_bare_head_volume_is_upgraded_to_a_space() {
    let dir = tempfile::tempdir().unwrap();
    // A share volume written before marks: its cell holds the head directly.
    let old = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
    let s = share(&old, &dir, "old", 1);
    file(&s, s.root_ino(), "f", b"kept");
    s.commit("old").unwrap();
    assert_eq!(old.cell.read().unwrap().len(), cellar::storage::refs::REF_SIZE_BYTES);
    drop(s);
    let space = VolumeSpace::new(old.clone(), SALT);
    let main = mark_volume(&space, "main");
    assert_eq!(committed(&main, "/f").unwrap(), b"kept");
    let t = share(&main, &dir, "new", 2);
    file(&t, t.root_ino(), "g", b"new");
    assert!(t.commit("new").unwrap().published);
    assert_eq!(committed(&main, "/f").unwrap(), b"kept");
    assert_eq!(check_vol1(&old, &SpaceReachability::new(FsSnapshotReachability)).unwrap(), None);
}

/// ADP-11: an unlinked file that is still open keeps its bytes, its number and its writes for
/// the holder of the handle; it is never committed and a new file at its path is another file.
#[test]
fn adp11_an_unlinked_open_file_lives_until_its_last_handle_is_released() {
    let vol = volume();
    let dir = tempfile::tempdir().unwrap();
    let s = share(&vol, &dir, "orphans", 1);
    let root = s.root_ino();
    let ino = file(&s, root, "f", b"hello");
    let fh = s.open_file(ino, true).unwrap();
    s.unlink(root, b"f").unwrap();
    assert_eq!(s.lookup(root, b"f").unwrap_err(), Errno(libc::ENOENT));
    assert_eq!(s.orphans(), 1);
    let a = s.getattr(ino).unwrap();
    assert_eq!((a.ino, a.nlink, a.size), (ino, 0, 5));
    assert_eq!(s.read(ino, 0, 100).unwrap(), b"hello");
    // Writes and truncates through the handle reach the orphan, not the working tree.
    s.write(ino, 5, b", world").unwrap();
    s.setattr(ino, SetAttr { size: Some(7), ..SetAttr::default() }).unwrap();
    assert_eq!(s.read(ino, 0, 100).unwrap(), b"hello, ");
    // A new file at the same path is another file with another number.
    let again = file(&s, root, "f", b"new");
    assert_ne!(again, ino);
    assert_eq!(s.read(again, 0, 100).unwrap(), b"new");
    assert_eq!(s.read(ino, 0, 100).unwrap(), b"hello, ");
    // A commit publishes the working tree only, and keeps what the orphan still reads staged
    // (`adapters:orphan-dropped-at-commit` drops it: the read below fails).
    // An orphan never read before the commit: its blob is in no cache, only staged.
    let h = file(&s, root, "h", b"unread until after the commit");
    let hh = s.open_file(h, false).unwrap();
    s.unlink(root, b"h").unwrap();
    s.commit("with an orphan").unwrap();
    assert_eq!(committed(&vol, "/f").unwrap(), b"new");
    assert_eq!(s.read(ino, 0, 100).unwrap(), b"hello, ");
    assert_eq!(s.read(h, 0, 100).unwrap(), b"unread until after the commit");
    s.release(hh);
    // A rename over an open file orphans the replaced file the same way.
    let g = file(&s, root, "g", b"old g");
    let gh = s.open_file(g, false).unwrap();
    s.rename(root, b"f", root, b"g", false).unwrap();
    assert_eq!(s.read(g, 0, 100).unwrap(), b"old g");
    assert_eq!(s.read(s.lookup(root, b"g").unwrap().ino, 0, 100).unwrap(), b"new");
    assert_eq!(s.orphans(), 2);
    // The last release forgets the orphan; its number no longer answers.
    s.release(fh);
    s.release(gh);
    assert_eq!(s.orphans(), 0);
    assert!(s.getattr(ino).is_err());
    assert_eq!(s.readdir(root).unwrap().len(), 1);
    s.commit("after").unwrap();
    assert_eq!(committed(&vol, "/g").unwrap(), b"new");
    assert_eq!(committed(&vol, "/f"), None);
}

/// The planted bug drops the orphan's staged blobs at a commit: the test above must see it.
#[cfg(feature = "planted-bugs")]
#[test]
fn adp11_planted_orphan_dropped_at_commit_is_caught() {
    assert!(
        fails_with(
            "adapters:orphan-dropped-at-commit",
            adp11_an_unlinked_open_file_lives_until_its_last_handle_is_released
        ),
        "ADP-11's test passed with the orphan's blobs dropped at a commit"
    );
}

/// Does `test` fail (panic) with the planted bug `bug` on?
#[cfg(feature = "planted-bugs")]
fn fails_with(bug: &str, test: fn()) -> bool {
    let _bug = cellar::bugs::plant(bug).unwrap();
    std::panic::catch_unwind(test).is_err()
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = cellar::env::SplitMix64::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// ADP-12: consecutive writes are one edit (content-defined chunks, not a blob per request),
/// and every other operation sees every write before it, in order.
#[test]
fn adp12_consecutive_writes_are_buffered_and_always_visible() {
    const REQ: usize = 128 * 1024;
    let data = noise(40 * REQ, 12);
    let mut blob_counts = Vec::new();
    for interleave in [false, true] {
        let vol = volume();
        let dir = tempfile::tempdir().unwrap();
        let s = share(&vol, &dir, "wbuf", 1);
        let ino = s.create(s.root_ino(), b"big", 0o644, ME).unwrap().ino;
        for (i, part) in data.chunks(REQ).enumerate() {
            s.write(ino, (i * REQ) as u64, part).unwrap();
            if interleave {
                // Any other operation applies the run first: it sees the write.
                assert_eq!(s.getattr(ino).unwrap().size, ((i + 1) * REQ) as u64);
            }
        }
        assert_eq!(s.read(ino, 0, data.len() as u32).unwrap(), data);
        let before = blobs(&vol);
        s.commit("big").unwrap();
        assert_eq!(committed(&vol, "/big").unwrap(), data);
        blob_counts.push(blobs(&vol) - before);
    }
    // 40 requests applied one by one make 40 data blobs; buffered, the chunker cuts ~5 MiB.
    assert!(
        blob_counts[0] * 2 < blob_counts[1],
        "buffered writes should make far fewer blobs: {blob_counts:?}"
    );

    // Order across files, overwrites inside a run, a rewrite after an unlink, errors at once.
    let vol = volume();
    let dir = tempfile::tempdir().unwrap();
    let s = share(&vol, &dir, "order", 1);
    let root = s.root_ino();
    let a = s.create(root, b"a", 0o644, ME).unwrap().ino;
    let b = s.create(root, b"b", 0o644, ME).unwrap().ino;
    s.write(a, 0, b"aaaa").unwrap();
    s.write(b, 0, b"bbbb").unwrap();
    s.write(a, 4, b"AAAA").unwrap();
    s.write(a, 2, b"xx").unwrap();
    assert_eq!(s.read(a, 0, 100).unwrap(), b"aaxxAAAA");
    assert_eq!(s.read(b, 0, 100).unwrap(), b"bbbb");
    s.write(b, 4, b"BB").unwrap();
    s.unlink(root, b"b").unwrap();
    assert_eq!(s.lookup(root, b"b").unwrap_err(), Errno(libc::ENOENT));
    let d = s.mkdir(root, b"d", 0o755, ME).unwrap().ino;
    assert_eq!(s.write(d, 0, b"x").unwrap_err(), Errno(libc::EISDIR));
    assert_eq!(s.write(a, u64::MAX - 1, b"xx").unwrap_err(), Errno(libc::EFBIG));
    s.take_write_error().unwrap();
    s.commit("order").unwrap();
    assert_eq!(committed(&vol, "/a").unwrap(), b"aaxxAAAA");
    assert_eq!(committed(&vol, "/b"), None);
}

/// The planted bug never applies a run: the test above must see it.
#[cfg(feature = "planted-bugs")]
#[test]
fn adp12_planted_write_buffer_skips_flush_is_caught() {
    assert!(
        fails_with(
            "adapters:write-buffer-skips-flush",
            adp12_consecutive_writes_are_buffered_and_always_visible
        ),
        "ADP-12's test passed with buffered writes never applied"
    );
}

/// A clock the test moves by hand.
struct ManualClock(AtomicU64);
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn adp13_a_clean_tree_follows_other_commits() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    // b opens before anything was committed (a pristine tree) and looks at most once a second.
    let clock = Arc::new(ManualClock(AtomicU64::new(1_700_000_000_000)));
    let opts = ShareOptions {
        read_only: false,
        spill_dir: dir.path().join("b"),
        author: NodeId(2),
        clock: clock.clone(),
        root_owner: (0, 0),
        label: "b".into(),
        refresh_ms: 1000,
        compression: Compression::Zstd,
    };
    let b = ShareFs::open(vol.clone(), SALT, opts).unwrap();
    assert!(b.readdir(b.root_ino()).unwrap().is_empty());
    let a = share(&vol, &dir, "a", 1);
    file(&a, a.root_ino(), "one.txt", b"1");
    a.commit("one").unwrap();
    // Within refresh_ms of b's last look, b serves what it had.
    clock.0.fetch_add(999, Ordering::SeqCst);
    assert_eq!(b.lookup(b.root_ino(), b"one.txt").unwrap_err(), Errno(libc::ENOENT));
    clock.0.fetch_add(1, Ordering::SeqCst);
    let f = b.lookup(b.root_ino(), b"one.txt").unwrap();
    assert_eq!(b.read(f.ino, 0, 10).unwrap(), b"1");
    assert!(!b.status().1, "following the mark leaves the tree clean");
    // A tree with an uncommitted change does not move; its commit merges (ADP-5).
    file(&b, b.root_ino(), "two.txt", b"2");
    file(&a, a.root_ino(), "three.txt", b"3");
    a.commit("three").unwrap();
    clock.0.fetch_add(5000, Ordering::SeqCst);
    assert_eq!(b.lookup(b.root_ino(), b"three.txt").unwrap_err(), Errno(libc::ENOENT));
    assert_eq!(b.commit("two").unwrap().merges, 1);
    assert!(b.lookup(b.root_ino(), b"three.txt").is_ok());
    // a is clean and looks before every read (refresh_ms 0): it shows b's file at once.
    assert!(a.lookup(a.root_ino(), b"two.txt").is_ok());
}

/// Planted `adapters:no-refresh`: the clean tree stays behind, and the check above fails.
#[cfg(feature = "planted-bugs")]
#[test]
fn adp13_planted_no_refresh_is_caught() {
    let _bug = cellar::bugs::plant("adapters:no-refresh").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let (a, b) = (share(&vol, &dir, "a", 1), share(&vol, &dir, "b", 2));
    file(&a, a.root_ino(), "one.txt", b"1");
    a.commit("one").unwrap();
    assert_eq!(b.lookup(b.root_ino(), b"one.txt").unwrap_err(), Errno(libc::ENOENT));
}

/// FS-27: a share's `compression` setting decides how the data blobs it writes are encoded;
/// either reads back byte for byte, through the share and from the committed head.
#[test]
fn fs27_a_share_compresses_as_configured() {
    let text: Vec<u8> = b"the cellar keeps every acknowledged byte; ".repeat(24 * 1024);
    let stored = |compression| {
        let dir = tempfile::tempdir().unwrap();
        let vol = volume();
        let s = share_with(&vol, &dir, "c", 1, compression);
        let ino = file(&s, s.root_ino(), "t.txt", &text);
        assert_eq!(s.read(ino, 0, text.len() as u32).unwrap(), text);
        assert!(s.commit("text").unwrap().published);
        assert_eq!(committed(&vol, "/t.txt").unwrap(), text);
        let hashes = vol.store.list(ALL_HASHES, usize::MAX).unwrap();
        hashes.iter().map(|h| vol.store.get(h).unwrap().len()).sum::<usize>()
    };
    let (zstd, plain) = (stored(Compression::Zstd), stored(Compression::Off));
    assert!(zstd * 20 < text.len(), "zstd stores {zstd} bytes of {}", text.len());
    assert!(plain > text.len(), "none stores {plain} bytes of {}", text.len());
}
