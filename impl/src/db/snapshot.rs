//! Snapshots: versions of a KV tree with their history (`specs/kv.md`, KV-12..KV-14).
//!
//! A [`Snapshot`] names a tree root, its parent snapshots (two or more for a merge), the
//! committing node's vector clock, its author, a message and a logical timestamp (`lamport`,
//! one more than its highest parent). Snapshots are encrypted blobs like tree nodes; a volume's
//! cell holds the 64-byte ref of the current snapshot (or nothing), and
//! [`SnapshotReachability`] tells sync and cleanup which blobs that value needs.
//!
//! History walks go newest first (by lamport, then ref) and are bounded by
//! [`HISTORY_WALK_MAX`]. Never: return a snapshot that fails its CID/tag check or decode
//! validation, or follow a history longer than the bound.

use crate::Hash;
use crate::db::clock::{NodeId, VectorClock};
use crate::db::kv::{Kv, KvError};
use crate::storage::refs::{self, REF_SIZE_BYTES, Ref, RefError};
use crate::storage::store::Store;
use crate::storage::volume::{Reachability, VolumeError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, BinaryHeap};

/// Snapshot format version (KV-12).
pub const SNAPSHOT_VERSION: u8 = 1;
/// Most parents a snapshot may have.
pub const PARENTS_MAX: usize = 16;
/// Longest commit message, in bytes.
pub const MESSAGE_SIZE_MAX_BYTES: usize = 4096;
/// Most snapshots one history walk visits before giving up with an error.
pub const HISTORY_WALK_MAX: usize = 1 << 20;

/// One version of a tree and where it came from (KV-12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Must be [`SNAPSHOT_VERSION`].
    pub version: u8,
    /// The tree's root (`None`: empty tree).
    pub root: Option<Ref>,
    /// Parent snapshots: none for the first, one for a commit, two or more for a merge.
    pub parents: Vec<Ref>,
    /// The author's node clock: the join of the parents' clocks, ticked at the author.
    pub clock: VectorClock,
    /// Who made it.
    pub author: NodeId,
    /// Why.
    pub message: String,
    /// Logical timestamp: 1 + the highest parent's (KV-13).
    pub lamport: u64,
}

/// Errors of snapshot reads, writes and walks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The blob could not be fetched or verified.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// A tree operation failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The bytes are not a valid snapshot.
    #[error("snapshot {cid} is corrupt: {detail}")]
    Corrupt {
        /// Its CID.
        cid: Hash,
        /// What was wrong.
        detail: String,
    },
    /// A history walk exceeded [`HISTORY_WALK_MAX`].
    #[error("history walk exceeded {HISTORY_WALK_MAX} snapshots")]
    HistoryTooLong,
}

impl Snapshot {
    /// A commit on top of `parent` (or the first commit) by `node` (ticks its clock).
    pub fn commit_of(
        root: Option<Ref>,
        parent: Option<(&Ref, &Snapshot)>,
        node: NodeId,
        message: &str,
    ) -> Self {
        let (parents, clock, lamport) = match parent {
            Some((r, p)) => (vec![*r], p.clock.incremented(node), p.lamport.saturating_add(1)),
            None => (Vec::new(), VectorClock::new().incremented(node), 1),
        };
        Self {
            version: SNAPSHOT_VERSION,
            root,
            parents,
            clock,
            author: node,
            message: truncate(message),
            lamport,
        }
    }

    /// A merge of `ours` and `theirs` by `node`.
    pub fn merge_of(
        root: Option<Ref>,
        ours: (&Ref, &Snapshot),
        theirs: (&Ref, &Snapshot),
        node: NodeId,
    ) -> Self {
        Self {
            version: SNAPSHOT_VERSION,
            root,
            parents: vec![*ours.0, *theirs.0],
            clock: ours.1.clock.join(&theirs.1.clock).incremented(node),
            author: node,
            message: "merge".to_owned(),
            lamport: ours.1.lamport.max(theirs.1.lamport).saturating_add(1),
        }
    }

    /// Encodes (KV-12).
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        self.validate()
            .map_err(|detail| SnapshotError::Corrupt { cid: Hash::ZERO, detail: detail.into() })?;
        postcard::to_allocvec(self)
            .map_err(|e| SnapshotError::Corrupt { cid: Hash::ZERO, detail: e.to_string() })
    }

    /// Decodes and validates (KV-12); `cid` names the blob in errors.
    pub fn decode(cid: Hash, bytes: &[u8]) -> Result<Self, SnapshotError> {
        let corrupt = |detail: String| SnapshotError::Corrupt { cid, detail };
        let (s, rest): (Self, _) =
            postcard::take_from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes".into()));
        }
        s.validate().map_err(|d| corrupt(d.into()))?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), &'static str> {
        if self.version != SNAPSHOT_VERSION {
            return Err("unknown snapshot version");
        }
        if self.parents.len() > PARENTS_MAX || self.message.len() > MESSAGE_SIZE_MAX_BYTES {
            return Err("too many parents or message too long");
        }
        if self.lamport == 0 || self.clock.get(self.author) == 0 {
            return Err("lamport must be positive and the author's clock entry ticked");
        }
        Ok(())
    }
}

fn truncate(message: &str) -> String {
    let mut end = message.len().min(MESSAGE_SIZE_MAX_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

/// Stores a snapshot encrypted under the tree's salt.
pub fn post(kv: &Kv<'_>, snap: &Snapshot) -> Result<Ref, SnapshotError> {
    Ok(refs::post(kv.store(), kv.salt(), &snap.encode()?)?)
}

/// Reads and validates a snapshot.
pub fn get(store: &dyn Store, r: &Ref) -> Result<Snapshot, SnapshotError> {
    Snapshot::decode(r.cid, &refs::get(store, r)?)
}

/// Walks the history from `head`, newest first (by lamport, then ref), each snapshot once.
/// Stops early when `visit` returns false.
pub fn walk(
    store: &dyn Store,
    head: &Ref,
    mut visit: impl FnMut(&Ref, &Snapshot) -> bool,
) -> Result<(), SnapshotError> {
    let first = get(store, head)?;
    let mut seen = BTreeSet::from([*head]);
    let mut heap = BinaryHeap::from([(first.lamport, *head)]);
    let mut pending = std::collections::BTreeMap::from([(*head, first)]);
    while let Some((_, r)) = heap.pop() {
        if seen.len() > HISTORY_WALK_MAX {
            return Err(SnapshotError::HistoryTooLong);
        }
        let Some(snap) = pending.remove(&r) else { continue };
        if !visit(&r, &snap) {
            return Ok(());
        }
        for p in &snap.parents {
            if !seen.insert(*p) {
                continue;
            }
            let parent = get(store, p)?;
            if parent.lamport >= snap.lamport {
                return Err(SnapshotError::Corrupt {
                    cid: p.cid,
                    detail: "parent's lamport is not below its child's (KV-13)".into(),
                });
            }
            heap.push((parent.lamport, *p));
            pending.insert(*p, parent);
        }
    }
    Ok(())
}

/// The history from `head`, newest first, at most `limit` snapshots.
pub fn history(
    store: &dyn Store,
    head: &Ref,
    limit: usize,
) -> Result<Vec<(Ref, Snapshot)>, SnapshotError> {
    let mut out = Vec::new();
    walk(store, head, |r, s| {
        out.push((*r, s.clone()));
        out.len() < limit
    })?;
    Ok(out)
}

/// Is `a` an ancestor of `b` (or `b` itself)? Stops below `a`'s lamport (KV-13).
pub fn is_ancestor(store: &dyn Store, a: &Ref, b: &Ref) -> Result<bool, SnapshotError> {
    if a == b {
        return Ok(true);
    }
    let floor = get(store, a)?.lamport;
    let mut found = false;
    walk(store, b, |r, s| {
        found = r == a;
        !found && s.lamport >= floor
    })?;
    Ok(found)
}

/// A lowest common ancestor of `a` and `b` (the one with the highest lamport), if any.
pub fn merge_base(store: &dyn Store, a: &Ref, b: &Ref) -> Result<Option<Ref>, SnapshotError> {
    let mut ours = BTreeSet::new();
    walk(store, a, |r, _| ours.insert(*r))?;
    let mut base = None;
    walk(store, b, |r, _| {
        if ours.contains(r) {
            base = Some(*r);
        }
        base.is_none()
    })?;
    Ok(base)
}

/// A cell value as a head: empty (no snapshot yet) or exactly one 64-byte ref.
pub fn head_from_cell(value: &[u8]) -> Result<Option<Ref>, SnapshotError> {
    match value.len() {
        0 => Ok(None),
        REF_SIZE_BYTES => Ok(Some(Ref::from_bytes(value)?)),
        n => Err(SnapshotError::Corrupt {
            cid: Hash::ZERO,
            detail: format!("cell value of {n} bytes is not a snapshot ref"),
        }),
    }
}

/// Every blob a head needs: its snapshots and each snapshot's tree nodes (KV-14).
pub fn reachable(store: &dyn Store, head: &Ref) -> Result<BTreeSet<Hash>, SnapshotError> {
    let kv = Kv::new(store, [0; 32]); // reads need only the refs, never the salt
    let mut out = BTreeSet::new();
    let mut roots = Vec::new();
    walk(store, head, |r, s| {
        out.insert(r.cid);
        roots.extend(s.root);
        true
    })?;
    let mut stack = roots;
    while let Some(r) = stack.pop() {
        if !out.insert(r.cid) {
            continue;
        }
        let node = kv.read_node(&r)?;
        if node.level > 0 {
            for e in &node.entries {
                stack.push(Ref::from_bytes(&e.value)?);
            }
        }
    }
    Ok(out)
}

/// [`Reachability`] for volumes whose cell holds a snapshot ref (KV-14), so `volume::sync` and
/// `volume::cleanup` work on KV volumes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotReachability;

impl Reachability for SnapshotReachability {
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        let bad = |e: SnapshotError| match e {
            SnapshotError::Ref(r) => VolumeError::Ref(r),
            SnapshotError::Kv(KvError::Ref(r)) => VolumeError::Ref(r),
            other => VolumeError::BadValue(other.to_string()),
        };
        match head_from_cell(value).map_err(bad)? {
            None => Ok(BTreeSet::new()),
            Some(head) => reachable(store, &head).map_err(bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::MemStore;

    #[test]
    fn forged_history_is_refused_kv13() {
        let store = MemStore::new();
        let kv = Kv::new(&store, [2; 32]);
        let a = Snapshot::commit_of(None, None, NodeId(1), "a");
        let ra = post(&kv, &a).unwrap();
        // A child claiming a lamport not above its parent's (a cycle or forgery).
        let mut b = Snapshot::commit_of(None, Some((&ra, &a)), NodeId(1), "b");
        b.lamport = a.lamport;
        let rb = post(&kv, &b).unwrap();
        assert!(matches!(history(&store, &rb, 10), Err(SnapshotError::Corrupt { .. })));
        // A well-formed chain walks newest first.
        let c = Snapshot::commit_of(None, Some((&ra, &a)), NodeId(2), "c");
        let rc = post(&kv, &c).unwrap();
        let h: Vec<Ref> = history(&store, &rc, 10).unwrap().into_iter().map(|(r, _)| r).collect();
        assert_eq!(h, vec![rc, ra]);
        assert!(is_ancestor(&store, &ra, &rc).unwrap() && !is_ancestor(&store, &rc, &ra).unwrap());
    }

    /// KV-12: `version ‖ root:Option<Ref> ‖ parents ‖ clock ‖ author ‖ message ‖ lamport`.
    #[test]
    fn snapshot_layout_is_byte_exact_kv12() {
        let first = Snapshot::commit_of(None, None, NodeId(1), "m");
        assert_eq!(first.encode().unwrap(), [1, 0, 0, 1, 1, 1, 1, 1, b'm', 1]);
        let (root, parent) = (Ref::from_array(&[7; 64]), Ref::from_array(&[9; 64]));
        let second = Snapshot::commit_of(Some(root), Some((&parent, &first)), NodeId(1), "");
        let want = [&[1, 1][..], &[7; 64], &[1], &[9; 64], &[1, 1, 2, 1, 0, 2]].concat();
        assert_eq!(second.encode().unwrap(), want);
        assert_eq!(Snapshot::decode(Hash::ZERO, &want).unwrap(), second);
    }

    #[test]
    fn snapshot_and_cell_values_are_validated_kv12() {
        let s = Snapshot::commit_of(None, None, NodeId(1), "x");
        let bytes = s.encode().unwrap();
        assert_eq!(Snapshot::decode(Hash::ZERO, &bytes).unwrap(), s);
        let mut bad = s.clone();
        bad.lamport = 0;
        assert!(bad.encode().is_err());
        assert!(Snapshot::decode(Hash::ZERO, &[&bytes[..], &[0][..]].concat()).is_err());
        assert!(Snapshot::decode(Hash::ZERO, &[2]).is_err());
        assert_eq!(head_from_cell(b"").unwrap(), None);
        assert!(head_from_cell(&[0; 63]).is_err());
        let long = "é".repeat(MESSAGE_SIZE_MAX_BYTES);
        assert!(
            Snapshot::commit_of(None, None, NodeId(1), &long).message.len()
                <= MESSAGE_SIZE_MAX_BYTES
        );
    }
}
