//! `FsSpec`: what a file tree holds after a sequence of operations (`specs/fs.md` FS-9..FS-15).
//!
//! A plain map path → node, nothing else: no records, no extents, no chunks, no blobs. Paths are
//! lists of names (byte strings); the root is the empty list and is always a directory. The
//! rules, restated so this file reads alone:
//!
//! - `Create`, `Mkdir`, `Symlink` need the parent to exist (`NotFound`) and be a directory
//!   (`NotADirectory`), then the path to be absent (`AlreadyExists`; the root always exists).
//! - `Write(p, off, data)` and `Truncate(p, n)` need `p` to be a regular file (`NotFound`,
//!   `IsADirectory`, `NotAFile` for a symlink). A write past the end fills the gap with zeros;
//!   an empty write changes nothing; truncate shrinks or zero-extends.
//! - `Remove(p)` removes a file or symlink (`IsADirectory` for a directory). `Rmdir(p)` removes
//!   an empty directory (`NotADirectory`, `NotEmpty`; the root: `InvalidPath`).
//! - `Rename(a, b)`: neither may be the root (`InvalidRename`); `a` must exist; `a == b` is a
//!   no-op; `b` inside `a` is `InvalidRename`; `b`'s parent must be a directory; `b` must be
//!   absent (`AlreadyExists`). Everything below `a` moves with it.
//! - `Chmod`, `Chown`, `Utimens` change one attribute of an existing path.
//! - `Link(a, b)` (FS-12) gives the node at `a` — anything but a directory (`IsADirectory`;
//!   `NotFound` if absent) — the further name `b` (`b`'s parent as for `Create`; `b` absent).
//!   The names then share one node: a write, truncate or attribute change through any name
//!   shows through all; `Remove` takes one name away; `Rename` moves a name; the link count of
//!   a name is the number of names its node has.
//! - A directory's size is its number of entries (FS-10); a file's, its length; a symlink's,
//!   its target's length.
//!
//! Time arrives in the operations (`mtime_ns`); the spec never reads a clock.

use std::collections::BTreeMap;

/// A path: names from the root down; the root is empty.
pub type SpecPath = Vec<Vec<u8>>;

/// Settable attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct FsAttrs {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
}

/// What lives at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsNode {
    /// A regular file and its bytes.
    File {
        /// Attributes.
        attrs: FsAttrs,
        /// Contents.
        data: Vec<u8>,
    },
    /// A directory (its entries are the paths one name longer).
    Dir {
        /// Attributes.
        attrs: FsAttrs,
    },
    /// A symbolic link.
    Symlink {
        /// Attributes.
        attrs: FsAttrs,
        /// Target bytes.
        target: Vec<u8>,
    },
}

impl FsNode {
    /// The node's attributes.
    pub fn attrs(&self) -> FsAttrs {
        match self {
            FsNode::File { attrs, .. } | FsNode::Dir { attrs } | FsNode::Symlink { attrs, .. } => {
                *attrs
            }
        }
    }

    fn attrs_mut(&mut self) -> &mut FsAttrs {
        match self {
            FsNode::File { attrs, .. } | FsNode::Dir { attrs } | FsNode::Symlink { attrs, .. } => {
                attrs
            }
        }
    }
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsOp {
    /// Create an empty regular file.
    Create(SpecPath, FsAttrs),
    /// Create an empty directory.
    Mkdir(SpecPath, FsAttrs),
    /// Create a symlink to the target.
    Symlink(SpecPath, Vec<u8>, FsAttrs),
    /// Write bytes at an offset.
    Write(SpecPath, u64, Vec<u8>),
    /// Set a file's length.
    Truncate(SpecPath, u64),
    /// Remove a file or symlink.
    Remove(SpecPath),
    /// Remove an empty directory.
    Rmdir(SpecPath),
    /// Move a path and everything below it.
    Rename(SpecPath, SpecPath),
    /// Set the permission bits.
    Chmod(SpecPath, u32),
    /// Set owner and group.
    Chown(SpecPath, u32, u32),
    /// Set the modification time.
    Utimens(SpecPath, i64),
    /// Give the node at the first path the second path as a further name (FS-12).
    Link(SpecPath, SpecPath),
}

/// Why an operation was refused (the implementation must refuse with the same kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsReject {
    /// The path (or a parent) does not exist.
    NotFound,
    /// The path exists.
    AlreadyExists,
    /// A directory was needed.
    NotADirectory,
    /// A directory is not allowed.
    IsADirectory,
    /// A regular file was needed.
    NotAFile,
    /// The directory has entries.
    NotEmpty,
    /// The rename is impossible.
    InvalidRename,
    /// The path cannot take this operation (the root).
    InvalidPath,
}

/// The executable spec of a file tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsSpec {
    /// Every name's node (the names of one node hold equal copies, kept equal).
    nodes: BTreeMap<SpecPath, FsNode>,
    /// The names that share a node with another name: name → node number (FS-12).
    linked: BTreeMap<SpecPath, u64>,
    /// The next node number.
    next_node: u64,
}

impl FsSpec {
    /// A tree holding only the root directory.
    pub fn new(root: FsAttrs) -> Self {
        Self {
            nodes: BTreeMap::from([(Vec::new(), FsNode::Dir { attrs: root })]),
            linked: BTreeMap::new(),
            next_node: 0,
        }
    }

    /// How many names the node at `path` has (FS-12; 1 unless linked).
    pub fn nlink(&self, path: &[Vec<u8>]) -> Option<u64> {
        self.nodes.get(path)?;
        Some(match self.linked.get(path) {
            Some(n) => self.linked.values().filter(|m| *m == n).count() as u64,
            None => 1,
        })
    }

    /// After a change through `path`, every other name of its node shows the same node.
    fn share(&mut self, path: &[Vec<u8>]) {
        let (Some(n), Some(node)) = (self.linked.get(path), self.nodes.get(path)) else { return };
        let (n, node) = (*n, node.clone());
        let names: Vec<SpecPath> =
            self.linked.iter().filter(|(_, m)| **m == n).map(|(p, _)| p.clone()).collect();
        for name in names {
            self.nodes.insert(name, node.clone());
        }
    }

    fn link(&mut self, a: &[Vec<u8>], b: &[Vec<u8>]) -> Result<(), FsReject> {
        let node = match self.nodes.get(a) {
            None => return Err(FsReject::NotFound),
            Some(FsNode::Dir { .. }) => return Err(FsReject::IsADirectory),
            Some(node) => node.clone(),
        };
        self.add(b, node)?;
        let n = match self.linked.get(a) {
            Some(n) => *n,
            None => {
                self.next_node += 1;
                self.linked.insert(a.to_vec(), self.next_node);
                self.next_node
            }
        };
        self.linked.insert(b.to_vec(), n);
        Ok(())
    }

    /// Every path and node, in path order.
    pub fn nodes(&self) -> &BTreeMap<SpecPath, FsNode> {
        &self.nodes
    }

    /// The node at `path`.
    pub fn get(&self, path: &[Vec<u8>]) -> Option<&FsNode> {
        self.nodes.get(path)
    }

    /// FS-10: a directory's size is its entry count; a file's its length; a symlink's its
    /// target length.
    pub fn size(&self, path: &[Vec<u8>]) -> Option<u64> {
        Some(match self.nodes.get(path)? {
            FsNode::File { data, .. } => data.len() as u64,
            FsNode::Symlink { target, .. } => target.len() as u64,
            FsNode::Dir { .. } => self.children(path).count() as u64,
        })
    }

    /// The names directly inside `path`, in byte order.
    pub fn children<'a>(&'a self, path: &'a [Vec<u8>]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.nodes
            .keys()
            .filter(move |p| p.len() == path.len() + 1 && p.starts_with(path))
            .filter_map(|p| p.last().map(Vec::as_slice))
    }

    fn parent_dir(&self, path: &[Vec<u8>]) -> Result<(), FsReject> {
        let Some((_, parent)) = path.split_last() else { return Err(FsReject::AlreadyExists) };
        match self.nodes.get(parent) {
            None => Err(FsReject::NotFound),
            Some(FsNode::Dir { .. }) => Ok(()),
            Some(_) => Err(FsReject::NotADirectory),
        }
    }

    fn add(&mut self, path: &[Vec<u8>], node: FsNode) -> Result<(), FsReject> {
        self.parent_dir(path)?;
        if self.nodes.contains_key(path) {
            return Err(FsReject::AlreadyExists);
        }
        self.nodes.insert(path.to_vec(), node);
        Ok(())
    }

    fn file(&mut self, path: &[Vec<u8>]) -> Result<&mut Vec<u8>, FsReject> {
        match self.nodes.get_mut(path) {
            None => Err(FsReject::NotFound),
            Some(FsNode::File { data, .. }) => Ok(data),
            Some(FsNode::Dir { .. }) => Err(FsReject::IsADirectory),
            Some(FsNode::Symlink { .. }) => Err(FsReject::NotAFile),
        }
    }

    /// Applies `op`; a refused op changes nothing.
    pub fn apply(&mut self, op: &FsOp) -> Result<(), FsReject> {
        self.apply_one(op)?;
        match op {
            FsOp::Write(p, ..)
            | FsOp::Truncate(p, _)
            | FsOp::Chmod(p, _)
            | FsOp::Chown(p, ..)
            | FsOp::Utimens(p, _) => self.share(p),
            _ => {}
        }
        Ok(())
    }

    fn apply_one(&mut self, op: &FsOp) -> Result<(), FsReject> {
        match op {
            FsOp::Link(a, b) => self.link(a, b),
            FsOp::Create(p, a) => self.add(p, FsNode::File { attrs: *a, data: Vec::new() }),
            FsOp::Mkdir(p, a) => self.add(p, FsNode::Dir { attrs: *a }),
            FsOp::Symlink(p, t, a) => self.add(p, FsNode::Symlink { attrs: *a, target: t.clone() }),
            FsOp::Write(p, off, bytes) => {
                let data = self.file(p)?;
                if !bytes.is_empty() {
                    let off = usize::try_from(*off).unwrap_or(usize::MAX);
                    let end = off.saturating_add(bytes.len());
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[off..end].copy_from_slice(bytes);
                }
                Ok(())
            }
            FsOp::Truncate(p, n) => {
                let data = self.file(p)?;
                data.resize(usize::try_from(*n).unwrap_or(usize::MAX), 0);
                Ok(())
            }
            FsOp::Remove(p) => match self.nodes.get(p) {
                None => Err(FsReject::NotFound),
                Some(FsNode::Dir { .. }) => Err(FsReject::IsADirectory),
                Some(_) => {
                    self.nodes.remove(p);
                    self.linked.remove(p);
                    Ok(())
                }
            },
            FsOp::Rmdir(p) => self.rmdir(p),
            FsOp::Rename(a, b) => self.rename(a, b),
            FsOp::Chmod(p, m) => self.touch(p, |a| a.mode = *m),
            FsOp::Chown(p, u, g) => self.touch(p, |a| {
                a.uid = *u;
                a.gid = *g;
            }),
            FsOp::Utimens(p, t) => self.touch(p, |a| a.mtime_ns = *t),
        }
    }

    fn touch(&mut self, p: &[Vec<u8>], f: impl FnOnce(&mut FsAttrs)) -> Result<(), FsReject> {
        let node = self.nodes.get_mut(p).ok_or(FsReject::NotFound)?;
        f(node.attrs_mut());
        Ok(())
    }

    fn rmdir(&mut self, p: &[Vec<u8>]) -> Result<(), FsReject> {
        match self.nodes.get(p) {
            None => Err(FsReject::NotFound),
            Some(FsNode::Dir { .. }) if p.is_empty() => Err(FsReject::InvalidPath),
            Some(FsNode::Dir { .. }) if self.children(p).next().is_some() => {
                Err(FsReject::NotEmpty)
            }
            Some(FsNode::Dir { .. }) => {
                self.nodes.remove(p);
                Ok(())
            }
            Some(_) => Err(FsReject::NotADirectory),
        }
    }

    fn rename(&mut self, a: &[Vec<u8>], b: &[Vec<u8>]) -> Result<(), FsReject> {
        if a.is_empty() || b.is_empty() {
            return Err(FsReject::InvalidRename);
        }
        if !self.nodes.contains_key(a) {
            return Err(FsReject::NotFound);
        }
        if a == b {
            return Ok(());
        }
        if b.starts_with(a) {
            return Err(FsReject::InvalidRename);
        }
        self.parent_dir(b)?;
        if self.nodes.contains_key(b) {
            return Err(FsReject::AlreadyExists);
        }
        let moved: Vec<SpecPath> =
            self.nodes.keys().filter(|p| p.starts_with(a)).cloned().collect();
        for old in moved {
            if let Some(node) = self.nodes.remove(&old) {
                let mut new = b.to_vec();
                new.extend_from_slice(&old[a.len()..]);
                if let Some(n) = self.linked.remove(&old) {
                    self.linked.insert(new.clone(), n);
                }
                self.nodes.insert(new, node);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests report failure by panicking")]
mod tests {
    use super::*;

    fn p(s: &str) -> SpecPath {
        s.split('/').filter(|n| !n.is_empty()).map(|n| n.as_bytes().to_vec()).collect()
    }

    #[test]
    fn rename_moves_a_non_empty_directory() {
        let a = FsAttrs::default();
        let mut s = FsSpec::new(a);
        s.apply(&FsOp::Mkdir(p("d"), a)).unwrap();
        s.apply(&FsOp::Create(p("d/f"), a)).unwrap();
        s.apply(&FsOp::Write(p("d/f"), 3, b"xy".to_vec())).unwrap();
        assert_eq!(s.apply(&FsOp::Rename(p("d"), p("d/e"))), Err(FsReject::InvalidRename));
        s.apply(&FsOp::Rename(p("d"), p("e"))).unwrap();
        assert!(s.get(&p("d/f")).is_none());
        assert_eq!(s.get(&p("e/f")), Some(&FsNode::File { attrs: a, data: b"\0\0\0xy".to_vec() }));
        assert_eq!(s.size(&p("")), Some(1));
        assert_eq!(s.apply(&FsOp::Rmdir(p("e"))), Err(FsReject::NotEmpty));
        assert_eq!(s.apply(&FsOp::Rmdir(p(""))), Err(FsReject::InvalidPath));
    }

    #[test]
    fn names_of_one_node_change_together() {
        let a = FsAttrs::default();
        let mut s = FsSpec::new(a);
        s.apply(&FsOp::Mkdir(p("d"), a)).unwrap();
        s.apply(&FsOp::Create(p("f"), a)).unwrap();
        assert_eq!(s.apply(&FsOp::Link(p("d"), p("x"))), Err(FsReject::IsADirectory));
        assert_eq!(s.apply(&FsOp::Link(p("f"), p("d"))), Err(FsReject::AlreadyExists));
        s.apply(&FsOp::Link(p("f"), p("d/g"))).unwrap();
        s.apply(&FsOp::Write(p("d/g"), 0, b"hi".to_vec())).unwrap();
        s.apply(&FsOp::Chmod(p("f"), 0o600)).unwrap();
        assert_eq!(s.get(&p("f")), s.get(&p("d/g")));
        assert_eq!((s.nlink(&p("f")), s.size(&p("d"))), (Some(2), Some(1)));
        s.apply(&FsOp::Rename(p("d"), p("e"))).unwrap();
        s.apply(&FsOp::Truncate(p("e/g"), 1)).unwrap();
        assert_eq!(
            s.get(&p("f")),
            Some(&FsNode::File { attrs: FsAttrs { mode: 0o600, ..a }, data: b"h".to_vec() })
        );
        s.apply(&FsOp::Remove(p("f"))).unwrap();
        assert_eq!(s.nlink(&p("e/g")), Some(1));
        s.apply(&FsOp::Write(p("e/g"), 0, b"X".to_vec())).unwrap();
        assert!(s.get(&p("f")).is_none(), "a removed name stays removed");
    }

    /// Found by mutating the spec against its own tests (2026-12-04): each assertion failed to
    /// exist while a one-line change passed the two tests above.
    #[test]
    fn sizes_children_parents_and_links_are_exact() {
        let a = FsAttrs { mode: 0o750, uid: 3, gid: 4, mtime_ns: 5 };
        let mut s = FsSpec::new(a);
        s.apply(&FsOp::Mkdir(p("d"), a)).unwrap();
        s.apply(&FsOp::Mkdir(p("d/e"), a)).unwrap();
        s.apply(&FsOp::Create(p("d/f"), a)).unwrap();
        s.apply(&FsOp::Write(p("d/f"), 0, b"12345".to_vec())).unwrap();
        s.apply(&FsOp::Symlink(p("l"), b"target".to_vec(), a)).unwrap();
        assert_eq!(s.get(&p("d/f")).map(FsNode::attrs), Some(a));
        assert_eq!(s.nodes().len(), 5, "root, d, d/e, d/f, l");
        // FS-10: a directory's size counts its direct entries only.
        assert_eq!([p(""), p("d"), p("d/f"), p("l")].map(|x| s.size(&x)), [2, 2, 5, 6].map(Some));
        assert_eq!(s.children(&p("")).collect::<Vec<_>>(), [&b"d"[..], b"l"]);
        // The parent must exist and be a directory.
        assert_eq!(s.apply(&FsOp::Create(p("x/y"), a)), Err(FsReject::NotFound));
        assert_eq!(s.apply(&FsOp::Create(p("d/f/y"), a)), Err(FsReject::NotADirectory));
        assert_eq!(s.apply(&FsOp::Rename(p("l"), p(""))), Err(FsReject::InvalidRename));
        // An empty directory can be removed.
        s.apply(&FsOp::Rmdir(p("d/e"))).unwrap();
        assert!(s.get(&p("d/e")).is_none());
        // Two separate hard-link pairs are two nodes, two names each.
        s.apply(&FsOp::Create(p("g"), a)).unwrap();
        s.apply(&FsOp::Link(p("d/f"), p("f2"))).unwrap();
        s.apply(&FsOp::Link(p("g"), p("g2"))).unwrap();
        assert_eq!([p("d/f"), p("f2"), p("g"), p("g2")].map(|x| s.nlink(&x)), [Some(2); 4]);
    }
}
