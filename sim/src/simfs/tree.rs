//! The simulated file system's state: inodes, directories with their durable entries and the
//! log of entry changes since the last `fsync` of the directory, files with their durable
//! bytes, and what a power cut leaves of them.
//!
//! Crash semantics (the weakest POSIX allows, as `cellar::storage::fsys` states them):
//! - a file's bytes written since its last `fsync` are kept, lost (the last synced bytes come
//!   back) or kept only in part (a prefix: a write flushed halfway);
//! - a directory's entry changes since its last `fsync` survive as a *prefix* of their order
//!   (the entries of one directory are journaled in order; each rename is one atomic change),
//!   chosen independently for each directory;
//! - everything `sync_fs` covered survives.
//!
//! Deterministic: every choice comes from the `SimRng` the caller passes, in inode order.

use crate::rng::SimRng;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path};

/// An inode number.
pub type Ino = u64;
/// The root directory's inode.
pub const ROOT: Ino = 1;

/// One change of a directory's entries.
#[derive(Debug, Clone)]
pub enum DirOp {
    /// `name` now names `ino` (create, or the target of a rename replaced).
    Link(OsString, Ino),
    /// `name` is gone.
    Unlink(OsString),
    /// `from` moved to `to` atomically.
    Rename(OsString, OsString, Ino),
}

impl DirOp {
    fn apply(&self, entries: &mut BTreeMap<OsString, Ino>) {
        match self {
            DirOp::Link(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Unlink(name) => {
                entries.remove(name);
            }
            DirOp::Rename(from, to, ino) => {
                entries.remove(from);
                entries.insert(to.clone(), *ino);
            }
        }
    }
}

/// A file or a directory.
#[derive(Debug, Clone)]
pub enum Node {
    /// A regular file.
    File {
        /// Its bytes now.
        data: Vec<u8>,
        /// Its bytes as of its last `fsync`.
        durable: Vec<u8>,
    },
    /// A directory.
    Dir {
        /// Its entries now.
        entries: BTreeMap<OsString, Ino>,
        /// Its entries as of its last `fsync`.
        durable: BTreeMap<OsString, Ino>,
        /// The changes since, in order.
        log: Vec<DirOp>,
    },
}

/// Every inode.
#[derive(Debug)]
pub struct Tree {
    /// Inode → node (unlinked inodes linger until a power cut: a lost unlink brings them back).
    pub nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
}

fn empty_dir() -> Node {
    Node::Dir { entries: BTreeMap::new(), durable: BTreeMap::new(), log: Vec::new() }
}

/// What a power cut did, for the trace and the fault counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct CutEffects {
    /// Directory entry changes lost.
    pub entries_lost: u64,
    /// Files whose unsynced bytes were lost or cut short.
    pub files_reverted: u64,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree::new()
    }
}

impl Tree {
    /// An empty file system (a durable root directory).
    pub fn new() -> Tree {
        Tree { nodes: BTreeMap::from([(ROOT, empty_dir())]), next_ino: ROOT + 1 }
    }

    /// The inode `path` names.
    pub fn resolve(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => ino = self.child(ino, name)?,
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "no `..` here"));
                }
            }
        }
        Ok(ino)
    }

    /// The directory holding `path`, and the last component's name.
    pub fn parent_of<'p>(&self, path: &'p Path) -> io::Result<(Ino, &'p OsStr)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no name"))?;
        let parent = path.parent().unwrap_or(Path::new("/"));
        let ino = self.resolve(parent)?;
        self.entries(ino)?;
        Ok((ino, name))
    }

    fn child(&self, dir: Ino, name: &OsStr) -> io::Result<Ino> {
        self.entries(dir)?
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// A directory's current entries.
    pub fn entries(&self, ino: Ino) -> io::Result<&BTreeMap<OsString, Ino>> {
        match self.nodes.get(&ino) {
            Some(Node::Dir { entries, .. }) => Ok(entries),
            Some(Node::File { .. }) => Err(io::Error::from(io::ErrorKind::NotADirectory)),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    /// The entry `name` of `dir`, if any.
    pub fn lookup(&self, dir: Ino, name: &OsStr) -> io::Result<Option<Ino>> {
        Ok(self.entries(dir)?.get(name).copied())
    }

    /// Applies a change to `dir`'s entries and logs it (durable only after `sync_dir`).
    pub fn change(&mut self, dir: Ino, op: DirOp) {
        if let Some(Node::Dir { entries, log, .. }) = self.nodes.get_mut(&dir) {
            op.apply(entries);
            log.push(op);
        }
    }

    /// A new inode.
    pub fn alloc(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// A new, empty directory.
    pub fn alloc_dir(&mut self) -> Ino {
        self.alloc(empty_dir())
    }

    /// `fsync` of a directory: its entries as they are now are what a power cut keeps.
    pub fn sync_dir(&mut self, ino: Ino) {
        if let Some(Node::Dir { entries, durable, log }) = self.nodes.get_mut(&ino) {
            *durable = entries.clone();
            log.clear();
        }
    }

    /// `fsync` of a file.
    pub fn sync_file(&mut self, ino: Ino) {
        if let Some(Node::File { data, durable }) = self.nodes.get_mut(&ino) {
            *durable = data.clone();
        }
    }

    /// `syncfs`: everything is durable.
    pub fn sync_all(&mut self) {
        let inos: Vec<Ino> = self.nodes.keys().copied().collect();
        for ino in inos {
            self.sync_dir(ino);
            self.sync_file(ino);
        }
    }

    /// A power cut: each directory keeps a prefix of its unsynced changes, each file its
    /// synced bytes, its new bytes or a prefix of them; unreachable inodes are freed; what is
    /// left is all durable.
    pub fn power_cut(&mut self, rng: &mut SimRng) -> CutEffects {
        let mut fx = CutEffects::default();
        for node in self.nodes.values_mut() {
            match node {
                Node::Dir { entries, durable, log } => {
                    let kept = rng.below(log.len() as u64 + 1) as usize;
                    fx.entries_lost += (log.len() - kept) as u64;
                    let mut survived = durable.clone();
                    for op in &log[..kept] {
                        op.apply(&mut survived);
                    }
                    *entries = survived.clone();
                    *durable = survived;
                    log.clear();
                }
                Node::File { data, durable } => {
                    if data != durable {
                        match rng.below(3) {
                            0 => {}
                            1 => {
                                *data = durable.clone();
                                fx.files_reverted += 1;
                            }
                            _ => {
                                let keep = rng.below(data.len() as u64 + 1) as usize;
                                data.truncate(keep);
                                fx.files_reverted += 1;
                            }
                        }
                        *durable = data.clone();
                    }
                }
            }
        }
        self.free_unreachable();
        fx
    }

    fn free_unreachable(&mut self) {
        let mut reachable = std::collections::BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if let Some(Node::Dir { entries, .. }) = self.nodes.get(&ino) {
                for child in entries.values() {
                    if reachable.insert(*child) {
                        todo.push(*child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
    }
}
