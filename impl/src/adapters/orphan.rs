//! Unlinked files that are still open (`specs/adapters.md` ADP-11).
//!
//! A file tree has no inodes (FS-12): a removed name is a removed file. A process that still
//! has the file open must keep reading and writing it, as on any POSIX file system, so when
//! `unlink` (or a `rename` over it) removes a non-directory whose number has an open handle,
//! the share keeps an *orphan*: the working tree from just before the removal and the file's
//! path there. Operations on the number go to the orphan's tree until the last handle is
//! released; the number is reserved meanwhile (no new path takes it, ADP-2). Orphans are never
//! committed; the staged blobs they reach stay staged until they are released.
//!
//! Never: let an operation on an orphan's number touch the working tree; drop a staged blob an
//! orphan reaches (at a commit or a staging compaction).

use super::share::{ShareFs, State};
use super::types::{Attr, Errno};
use crate::Hash;
use crate::fs::{FsPath, Info};
use crate::storage::refs::Ref;
use std::collections::HashSet;

/// One unlinked, still-open file: a tree that holds it, and its path in that tree.
#[derive(Clone, Debug)]
pub(super) struct Orphan {
    pub(super) root: Ref,
    pub(super) path: FsPath,
}

/// Where an inode number's file lives: the working tree or an orphan's tree.
pub(super) struct Target {
    pub(super) root: Ref,
    pub(super) path: FsPath,
    pub(super) orphan: bool,
}

impl ShareFs {
    /// ADP-11: `path` (held by the working tree `before`) is about to leave the working tree.
    /// If a handle is open on its number, keep it as an orphan and reserve the number.
    pub(super) fn orphan_if_open(&self, st: &mut State, before: Ref, path: &FsPath) {
        let Some(ino) = st.inodes.get(path) else { return };
        if !st.handles.values().any(|(i, _)| *i == ino) {
            return;
        }
        st.inodes.reserve(ino);
        st.orphans.insert(ino, Orphan { root: before, path: path.clone() });
    }

    /// The tree and path inode `ino` names: its orphan's, else the working tree's.
    pub(super) fn target(&self, st: &mut State, ino: u64) -> Result<Target, Errno> {
        if let Some(o) = st.orphans.get(&ino) {
            return Ok(Target { root: o.root, path: o.path.clone(), orphan: true });
        }
        let path = self.path_of(st, ino)?;
        Ok(Target { root: st.root, path, orphan: false })
    }

    /// Stores the edited tree `root` of `t` (an orphan's edit never touches the working tree).
    pub(super) fn put_target(&self, st: &mut State, ino: u64, t: &Target, root: Ref) {
        if root == t.root {
            return;
        }
        match st.orphans.get_mut(&ino) {
            Some(o) if t.orphan => o.root = root,
            _ => self.set_root(st, root),
        }
    }

    /// The attributes of inode `ino` at `t` (an orphan keeps its number and has no link).
    pub(super) fn attr_of(&self, st: &mut State, ino: u64, t: &Target, info: &Info) -> Attr {
        if t.orphan { self.attr_at(st, ino, info, 0) } else { self.attr(st, &t.path, info) }
    }

    /// After a handle on `ino` was released: an orphan with no handle left is gone for good.
    pub(super) fn orphan_released(&self, st: &mut State, ino: u64) {
        if st.handles.values().any(|(i, _)| *i == ino) {
            return;
        }
        if st.orphans.remove(&ino).is_some() {
            st.inodes.unreserve(ino);
        }
    }

    /// The staged blobs the orphans reach: what a commit or a compaction must keep staged.
    pub(super) fn orphan_reach(&self, st: &State) -> HashSet<Hash> {
        let mut keep = HashSet::new();
        if crate::bugs::active("adapters:orphan-dropped-at-commit") {
            return keep;
        }
        for o in st.orphans.values() {
            // A tree that cannot be walked (corrupt) keeps nothing; reads of it then fail, EIO.
            if let Ok(k) = self.staging.staged_reach(&self.salt, &o.root) {
                keep.extend(k);
            }
        }
        keep
    }

    /// Unlinked files still open (ADP-11).
    pub fn orphans(&self) -> usize {
        self.lock().orphans.len()
    }
}
