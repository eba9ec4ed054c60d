//! The inode table (ADP-2): inode numbers ↔ paths of the working tree.
//!
//! A node with one name keeps its records under its path (FS-12). The adapters give each path a
//! number derived from the path itself — the first 48 bits of BLAKE3 of its encoded form, so a
//! number names the same path in every process and after every restart (NFS file handles carry
//! it) — and keep the number when the path is renamed, so an open file follows its rename. Root
//! is [`ROOT_INO`]. A collision (two live paths with one hash) takes the next free number.
//!
//! Hard links (FS-12): every name of one inode shares one number. A linked node first seen
//! gets a number derived from its inode ([`node_ino`]); a name linked while the mount runs takes
//! the number its source already has, so the kernel sees one inode. The table keeps every name
//! of a shared number, so the number survives the removal or rename of any one of them.

use crate::fs::FsPath;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The root directory's inode number.
pub const ROOT_INO: u64 = 1;
/// Inode numbers fit in this many bits (the NFS adapter puts a share tag above them).
pub const INO_BITS: u32 = 48;

/// The number a path gets when it is first seen and the number is free.
pub fn path_ino(path: &FsPath) -> u64 {
    if path.is_root() {
        return ROOT_INO;
    }
    let h = blake3::hash(path.encoded());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    let n = u64::from_le_bytes(b) & ((1 << INO_BITS) - 1);
    if n <= ROOT_INO { n + 2 } else { n }
}

/// The number a linked node (file-tree inode `n`, FS-12) gets when first seen and it is free.
pub fn node_ino(n: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"cellar adapters inode of a linked node");
    h.update(&n.to_be_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    let n = u64::from_le_bytes(b) & ((1 << INO_BITS) - 1);
    if n <= ROOT_INO { n + 2 } else { n }
}

/// Inode numbers ↔ paths (see the module docs).
#[derive(Debug, Default)]
pub struct Inodes {
    /// A number → one live name of it.
    by_ino: HashMap<u64, FsPath>,
    by_path: HashMap<FsPath, u64>,
    /// Numbers held by more than one name (hard links): every name.
    shared: HashMap<u64, BTreeSet<FsPath>>,
    /// Numbers of unlinked files still open (ADP-11): no path takes them.
    reserved: HashSet<u64>,
}

impl Inodes {
    /// A table holding the root.
    pub fn new() -> Self {
        let mut t = Self::default();
        t.by_ino.insert(ROOT_INO, FsPath::root());
        t.by_path.insert(FsPath::root(), ROOT_INO);
        t
    }

    /// The path of `ino`, if known.
    pub fn path(&self, ino: u64) -> Option<&FsPath> {
        self.by_ino.get(&ino)
    }

    /// The number of `path`, assigning one if it has none.
    pub fn ino(&mut self, path: &FsPath) -> u64 {
        self.ino_from(path, path_ino(path))
    }

    /// The number of `path`, assigning one starting from `first` if it has none.
    pub fn ino_from(&mut self, path: &FsPath, first: u64) -> u64 {
        if let Some(i) = self.by_path.get(path) {
            return *i;
        }
        let mut n = first;
        while self.by_ino.contains_key(&n) || self.reserved.contains(&n) {
            n = if n + 1 >= 1 << INO_BITS { 2 } else { n + 1 };
        }
        self.by_ino.insert(n, path.clone());
        self.by_path.insert(path.clone(), n);
        n
    }

    /// The number `path` holds, if any.
    pub fn get(&self, path: &FsPath) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// Records that `ino` names `path` (recovering a number after a restart).
    pub fn bind(&mut self, ino: u64, path: &FsPath) {
        if let Some(old) = self.by_path.remove(path) {
            self.by_ino.remove(&old);
        }
        if let Some(old) = self.by_ino.remove(&ino) {
            self.by_path.remove(&old);
        }
        self.by_ino.insert(ino, path.clone());
        self.by_path.insert(path.clone(), ino);
    }

    /// Gives `path` the number `ino` as well: a further name of the same node (FS-12).
    pub fn share(&mut self, ino: u64, path: &FsPath) {
        if self.by_path.get(path) == Some(&ino) {
            return;
        }
        self.forget_one(path);
        let Some(first) = self.by_ino.get(&ino).cloned() else {
            self.by_ino.insert(ino, path.clone());
            self.by_path.insert(path.clone(), ino);
            return;
        };
        let names = self.shared.entry(ino).or_insert_with(|| BTreeSet::from([first]));
        names.insert(path.clone());
        self.by_path.insert(path.clone(), ino);
    }

    /// Forgets one name; a shared number moves to another of its names.
    fn forget_one(&mut self, path: &FsPath) {
        let Some(i) = self.by_path.remove(path) else { return };
        let Some(names) = self.shared.get_mut(&i) else {
            self.by_ino.remove(&i);
            return;
        };
        names.remove(path);
        match names.iter().next().cloned() {
            Some(other) => {
                if self.by_ino.get(&i) == Some(path) {
                    self.by_ino.insert(i, other);
                }
                if names.len() == 1 {
                    self.shared.remove(&i);
                }
            }
            None => {
                self.shared.remove(&i);
                self.by_ino.remove(&i);
            }
        }
    }

    /// Keeps `ino` from every path until [`Inodes::unreserve`] (an unlinked file still open).
    pub fn reserve(&mut self, ino: u64) {
        self.reserved.insert(ino);
    }

    /// Gives `ino` back.
    pub fn unreserve(&mut self, ino: u64) {
        self.reserved.remove(&ino);
    }

    /// Forgets `path` and everything below it (removed).
    pub fn forget_subtree(&mut self, path: &FsPath) {
        let gone: Vec<FsPath> =
            self.by_path.keys().filter(|p| p.starts_with(path)).cloned().collect();
        for p in gone {
            self.forget_one(&p);
        }
    }

    /// Moves `from` and everything below it to `to`, keeping their numbers (rename). Whatever
    /// `to` held before is forgotten.
    pub fn rename(&mut self, from: &FsPath, to: &FsPath) {
        self.forget_subtree(to);
        let moved: Vec<(FsPath, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moved {
            let Ok(np) = p.rebase(from, to) else {
                self.forget_one(&p);
                continue;
            };
            self.by_path.remove(&p);
            self.by_path.insert(np.clone(), i);
            if let Some(names) = self.shared.get_mut(&i) {
                names.remove(&p);
                names.insert(np.clone());
            }
            if self.by_ino.get(&i).is_none_or(|q| *q == p) {
                self.by_ino.insert(i, np);
            }
        }
    }

    /// How many numbers are held.
    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    /// Never true: the root is always held.
    pub fn is_empty(&self) -> bool {
        self.by_ino.is_empty()
    }
}
