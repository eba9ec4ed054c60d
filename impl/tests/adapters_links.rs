//! Hard links through the adapters' core (`specs/adapters.md` ADP-2, `specs/fs.md` FS-12): one
//! inode number, link count and ctime for every name of a node; unlink and rename of one name;
//! the numbers after a restart; commits carry the links.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod share_support;
use cellar::adapters::{Errno, SetAttr};
use cellar::fs::{Fs, FsPath, History};
use share_support::*;

#[test]
fn fs12_names_of_one_node_share_one_inode() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    let root = s.root_ino();
    let d = s.mkdir(root, b"d", 0o755, ME).unwrap();
    let f = file(&s, root, "f", b"hello");
    let before = s.getattr(f).unwrap();
    let g = s.link(f, d.ino, b"g").unwrap();
    assert_eq!((g.ino, g.nlink, g.size), (f, 2, 5), "the source's number, two links");
    assert!(s.getattr(f).unwrap().ctime_ns > before.ctime_ns, "link changes the ctime");
    assert_eq!(s.lookup(root, b"f").unwrap().nlink, 2);
    assert_eq!(s.lookup(d.ino, b"g").unwrap().ino, f);
    let listed = s.readdir(d.ino).unwrap();
    assert_eq!((listed[0].0.as_slice(), listed[0].1), (&b"g"[..], f));

    // Errors as link(2) gives them.
    assert_eq!(s.link(d.ino, root, b"x").unwrap_err(), Errno(libc::EPERM));
    assert_eq!(s.link(f, root, b"d").unwrap_err(), Errno(libc::EEXIST));

    // A write and a chmod through the number show under both names.
    s.write(f, 5, b" world").unwrap();
    s.setattr(f, SetAttr { mode: Some(0o600), ..SetAttr::default() }).unwrap();
    let g = s.lookup(d.ino, b"g").unwrap();
    assert_eq!((g.size, g.mode), (11, 0o600));
    assert_eq!(s.read(g.ino, 0, 64).unwrap(), b"hello world");

    // Rename one name: the number stays; unlink it: the other keeps the node and its number.
    s.rename(root, b"f", root, b"f2", false).unwrap();
    assert_eq!(s.lookup(root, b"f2").unwrap().ino, f);
    let ctime = s.getattr(f).unwrap().ctime_ns;
    s.unlink(root, b"f2").unwrap();
    let g = s.getattr(f).unwrap();
    assert_eq!(g.nlink, 1);
    assert!(g.ctime_ns > ctime, "unlink changes the other name's ctime");
    assert_eq!(s.read(f, 0, 64).unwrap(), b"hello world");
    assert_eq!(s.lookup(d.ino, b"g").unwrap().ino, f);

    // A rename over one name of a linked node: the node keeps its other name, and its ctime
    // changes (pjdfstest rename::to_multiply_linked).
    let h = s.link(f, root, b"h").unwrap();
    let src = file(&s, root, "src", b"new");
    let ctime = s.getattr(f).unwrap().ctime_ns;
    s.rename(root, b"src", root, b"h", false).unwrap();
    let g = s.lookup(d.ino, b"g").unwrap();
    assert_eq!((g.ino, g.nlink), (h.ino, 1));
    assert!(g.ctime_ns > ctime, "the replaced node's ctime changes");
    assert_eq!(s.lookup(root, b"h").unwrap().ino, src);
}

#[test]
fn fs12_links_are_committed_and_numbered_alike_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    let root = s.root_ino();
    let f = file(&s, root, "f", b"shared");
    s.link(f, root, b"g").unwrap();
    s.link(f, root, b"h").unwrap();
    s.unlink(root, b"f").unwrap();
    s.commit("links").unwrap();
    assert_eq!(committed(&vol, "/g").unwrap(), b"shared");
    let head = History::decode(&vol.cell.read().unwrap()).unwrap().head.unwrap();
    let fs = Fs::new(vol.store.as_ref(), SALT);
    let tree = fs.tree_of(&head).unwrap();
    assert_eq!(fs.nlink(&tree, &FsPath::new("/h").unwrap()).unwrap(), 2, "FS-12 committed");

    // A second process: both names answer with one number, which a handle from before a
    // restart (an NFS file handle) finds again.
    let t = share(&vol, &dir, "b", 2);
    let (g, h) = (t.lookup(root, b"g").unwrap(), t.lookup(root, b"h").unwrap());
    assert_eq!((g.ino, g.nlink), (h.ino, 2));
    let u = share(&vol, &dir, "c", 3);
    assert_eq!(u.getattr(g.ino).unwrap().size, 6, "the number is found again by its node");
    assert_eq!(u.read(g.ino, 0, 64).unwrap(), b"shared");
}

#[test]
fn fs12_open_files_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let s = share(&vol, &dir, "a", 1);
    let root = s.root_ino();
    let f = file(&s, root, "f", b"x");
    let fh = s.open_file(f, false).unwrap();
    s.unlink(root, b"f").unwrap();
    assert_eq!(s.link(f, root, b"back").unwrap_err(), Errno(libc::ENOENT));
    s.release(fh);

    // An open file with two names loses one: no orphan, the handle follows the other name.
    let f = file(&s, root, "two", b"both");
    s.link(f, root, b"names").unwrap();
    let fh = s.open_file(f, true).unwrap();
    s.unlink(root, b"two").unwrap();
    assert_eq!(s.orphans(), 0, "ADP-11 is for a node's last name only");
    s.write(f, 0, b"BOTH").unwrap();
    assert_eq!(s.read(s.lookup(root, b"names").unwrap().ino, 0, 8).unwrap(), b"BOTH");
    s.release(fh);
}
