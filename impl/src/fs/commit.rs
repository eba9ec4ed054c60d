//! Versioned file trees (`specs/fs.md` FS-22): a commit is a [`Snapshot`] (`specs/kv.md`
//! KV-12..KV-14) whose root is a file tree, so history, merge bases and clocks come from
//! [`crate::db::snapshot`]; what this file adds is what the snapshot layer cannot know — that a
//! file tree also reaches data blobs through its extents — and the three-way merge of two heads.
//!
//! Never: let a volume cleanup see a commit's tree nodes without its data blobs
//! ([`FsSnapshotReachability`], VOL-5); merge without a base when one exists.

use super::{Attrs, Conflict, Fs, FsError};
use crate::Hash;
use crate::db::merge::NodeId;
use crate::db::snapshot::{self, Snapshot, SnapshotError};
use crate::storage::refs::Ref;
use crate::storage::store::Store;
use crate::storage::volume::{Reachability, VolumeError};
use std::collections::BTreeSet;

/// Errors of commits: the tree's or the history's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The file tree refused or is damaged.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The history refused or is damaged.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A snapshot in the history has no tree (it was not written by this module).
    #[error("snapshot {0} holds no file tree")]
    NoTree(Hash),
}

impl Fs<'_> {
    /// Commits `root` on top of `parent` (`None`: the first commit); returns the new head.
    pub fn commit(
        &self,
        root: &Ref,
        parent: Option<&Ref>,
        author: NodeId,
        message: &str,
    ) -> Result<Ref, CommitError> {
        let store = self.kv.store();
        let parent = parent.map(|r| snapshot::get(store, r).map(|s| (*r, s))).transpose()?;
        let snap =
            Snapshot::commit_of(Some(*root), parent.as_ref().map(|(r, s)| (r, s)), author, message);
        Ok(snapshot::post(&self.kv, &snap)?)
    }

    /// The file tree of the commit `head`.
    pub fn tree_of(&self, head: &Ref) -> Result<Ref, CommitError> {
        snapshot::get(self.kv.store(), head)?.root.ok_or(CommitError::NoTree(head.cid))
    }

    /// Merges the heads `ours` and `theirs` (FS-19 on their trees against their merge base; an
    /// empty tree with `ours`' root attributes when they share no history) and commits the
    /// result with both as parents. `ours` is the first side. Returns the new head and the
    /// conflicts; when one head already contains the other, that head is returned (fast
    /// forward) and nothing is written.
    pub fn merge_heads(
        &self,
        ours: &Ref,
        theirs: &Ref,
        author: NodeId,
    ) -> Result<(Ref, Vec<Conflict>), CommitError> {
        let store = self.kv.store();
        if snapshot::is_ancestor(store, theirs, ours)? {
            return Ok((*ours, Vec::new()));
        }
        if snapshot::is_ancestor(store, ours, theirs)? {
            return Ok((*theirs, Vec::new()));
        }
        let (a, b) = (self.tree_of(ours)?, self.tree_of(theirs)?);
        let base = match snapshot::merge_base(store, ours, theirs)? {
            Some(m) => self.tree_of(&m)?,
            None => {
                let attrs: Attrs = self.stat(&a, &super::FsPath::root())?.attrs();
                self.mkfs(attrs)?
            }
        };
        let outcome = self.merge(&base, &a, &b)?;
        let (so, st) = (snapshot::get(store, ours)?, snapshot::get(store, theirs)?);
        let snap = Snapshot::merge_of(Some(outcome.root), (ours, &so), (theirs, &st), author);
        Ok((snapshot::post(&self.kv, &snap)?, outcome.conflicts))
    }

    /// Every blob the history from `head` needs: snapshots, tree nodes and data blobs.
    pub fn history_reachable(&self, head: &Ref) -> Result<BTreeSet<Hash>, CommitError> {
        let store = self.kv.store();
        let mut out = BTreeSet::new();
        let mut roots = Vec::new();
        snapshot::walk(store, head, |r, s| {
            out.insert(r.cid);
            roots.extend(s.root);
            true
        })?;
        for root in roots {
            self.reachable_into(&root, &mut out)?;
        }
        Ok(out)
    }
}

/// [`Reachability`] for a volume whose cell holds the head commit of a file tree's history
/// (empty, or one 64-byte snapshot ref): snapshots, nodes and data blobs (FS-22, VOL-5).
#[derive(Clone, Copy, Debug, Default)]
pub struct FsSnapshotReachability;

impl Reachability for FsSnapshotReachability {
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        let bad = |e: CommitError| match e {
            CommitError::Fs(FsError::Ref(r)) | CommitError::Snapshot(SnapshotError::Ref(r)) => {
                VolumeError::Ref(r)
            }
            other => VolumeError::BadValue(other.to_string()),
        };
        let head = snapshot::head_from_cell(value).map_err(|e| bad(e.into()))?;
        let Some(head) = head else { return Ok(BTreeSet::new()) };
        // Reads need only the refs, never the salt.
        Fs::new(store, [0; 32]).history_reachable(&head).map_err(bad)
    }
}
