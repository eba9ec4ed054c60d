//! Versioned file trees (`specs/fs.md` FS-22): a commit is a [`Snapshot`] (`specs/kv.md`
//! KV-12..KV-14) whose root is a file tree, so history, merge bases and clocks come from
//! [`crate::db::snapshot`]; what this file adds is what the snapshot layer cannot know — that a
//! file tree also reaches data blobs through its extents — and the three-way merge of two heads.
//!
//! A mark's value is a [`History`] (FS-23): the head and a retention horizon below which
//! commits keep their snapshot but not their tree; reachability follows it.
//!
//! Never: let a volume cleanup see a commit's tree nodes without its data blobs
//! ([`FsSnapshotReachability`], VOL-5); merge without a base when one exists and its tree is
//! kept by either side.

use super::history::{History, commit_message};
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
    /// The commit is older than its mark's retention horizon: its tree was pruned (FS-25).
    #[error("commit {commit} was pruned by retention (its lamport {lamport} is below {horizon})")]
    Pruned {
        /// The commit's CID.
        commit: Hash,
        /// Its lamport.
        lamport: u64,
        /// The mark's horizon.
        horizon: u64,
    },
    /// A mark value that is not a history (FS-23).
    #[error("not a file-tree history value: {0}")]
    BadValue(String),
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
        self.commit_at(root, parent, author, message, None)
    }

    /// [`Fs::commit`] recording the commit time `time_ms` (ms since the epoch) in the message
    /// (FS-24), for time-based retention.
    pub fn commit_at(
        &self,
        root: &Ref,
        parent: Option<&Ref>,
        author: NodeId,
        message: &str,
        time_ms: Option<i64>,
    ) -> Result<Ref, CommitError> {
        let store = self.kv.store();
        let parent = parent.map(|r| snapshot::get(store, r).map(|s| (*r, s))).transpose()?;
        let message = commit_message(message, time_ms);
        let snap = Snapshot::commit_of(
            Some(*root),
            parent.as_ref().map(|(r, s)| (r, s)),
            author,
            &message,
        );
        Ok(snapshot::post(&self.kv, &snap)?)
    }

    /// The tree of `commit`, which must still have it under `history`'s horizon (FS-25).
    pub fn tree_in(&self, history: &History, commit: &Ref) -> Result<Ref, CommitError> {
        let snap = snapshot::get(self.kv.store(), commit)?;
        if !history.keeps(snap.lamport) {
            return Err(CommitError::Pruned {
                commit: commit.cid,
                lamport: snap.lamport,
                horizon: history.horizon,
            });
        }
        snap.root.ok_or(CommitError::NoTree(commit.cid))
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
        self.merge_histories(&History::at(*ours), &History::at(*theirs), author, None)
    }

    /// [`Fs::merge_heads`] of two marks' histories (FS-22, FS-25): the merge base's tree is
    /// used when either side's horizon keeps it; when both pruned it, the merge runs against an
    /// empty tree as if there were no base. The merge commit records `time_ms` (FS-24).
    pub fn merge_histories(
        &self,
        ours: &History,
        theirs: &History,
        author: NodeId,
        time_ms: Option<i64>,
    ) -> Result<(Ref, Vec<Conflict>), CommitError> {
        let (Some(ours_head), Some(theirs_head)) = (ours.head, theirs.head) else {
            return Err(CommitError::BadValue("merging a mark with no commits".into()));
        };
        let (ours, theirs, sides) = (&ours_head, &theirs_head, (ours, theirs));
        let store = self.kv.store();
        if snapshot::is_ancestor(store, theirs, ours)? {
            return Ok((*ours, Vec::new()));
        }
        if snapshot::is_ancestor(store, ours, theirs)? {
            return Ok((*theirs, Vec::new()));
        }
        let (a, b) = (self.tree_in(sides.0, ours)?, self.tree_in(sides.1, theirs)?);
        let base = snapshot::merge_base(store, ours, theirs)?
            .map(|m| snapshot::get(store, &m).map(|s| (m, s)))
            .transpose()?
            .filter(|(_, s)| sides.0.keeps(s.lamport) || sides.1.keeps(s.lamport));
        let base = match base {
            Some((m, s)) => s.root.ok_or(CommitError::NoTree(m.cid))?,
            None => {
                let attrs: Attrs = self.stat(&a, &super::FsPath::root())?.attrs();
                self.mkfs(attrs)?
            }
        };
        let outcome = self.merge(&base, &a, &b)?;
        let (so, st) = (snapshot::get(store, ours)?, snapshot::get(store, theirs)?);
        let mut snap = Snapshot::merge_of(Some(outcome.root), (ours, &so), (theirs, &st), author);
        snap.message = commit_message(&snap.message, time_ms);
        Ok((snapshot::post(&self.kv, &snap)?, outcome.conflicts))
    }

    /// Every blob the history from `head` needs: snapshots, tree nodes and data blobs.
    pub fn history_reachable(&self, head: &Ref) -> Result<BTreeSet<Hash>, CommitError> {
        self.history_value_reachable(&History::at(*head))
    }

    /// Every blob a history value needs (FS-23): every snapshot of the history, and the tree
    /// nodes and data blobs of the commits at or above its horizon.
    pub fn history_value_reachable(
        &self,
        history: &History,
    ) -> Result<BTreeSet<Hash>, CommitError> {
        let store = self.kv.store();
        let mut out = BTreeSet::new();
        let Some(head) = history.head else { return Ok(out) };
        let mut roots = Vec::new();
        let mut top = None;
        snapshot::walk(store, &head, |r, s| {
            top.get_or_insert(s.lamport);
            out.insert(r.cid);
            if history.keeps(s.lamport) {
                roots.extend(s.root);
            }
            true
        })?;
        if top.is_some_and(|t| !history.keeps(t)) {
            return Err(CommitError::BadValue(format!(
                "the horizon {} is above the head's lamport",
                history.horizon
            )));
        }
        for root in roots {
            self.reachable_into(&root, &mut out)?;
        }
        Ok(out)
    }
}

/// [`Reachability`] for a volume whose cell holds a file tree's [`History`] (FS-23: empty, the
/// head's 64-byte ref, or the head and a horizon): every snapshot, and the nodes and data blobs
/// of every commit the horizon keeps (FS-22, VOL-5).
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
        let history = History::decode(value).map_err(bad)?;
        // Reads need only the refs, never the salt.
        Fs::new(store, [0; 32]).history_value_reachable(&history).map_err(bad)
    }
}
