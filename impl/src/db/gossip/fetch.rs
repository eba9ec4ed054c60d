//! One fetch session: pulling the blobs of an announced head that this node lacks (GW-5, GW-6).
//!
//! Walks from the announced snapshot: parents and the root tree of each snapshot, the children
//! of each internal node, stopping at blobs the store already holds (a held blob's whole closure
//! is held: blobs are posted only after all their children are, so the invariant survives
//! crashes). Blobs whose children are still missing wait in memory ("staged"), bounded by
//! [`STAGED_BYTES_MAX`]. A received blob is accepted only if its hash is a CID this session
//! asked for, so a peer cannot make the node store anything else.
//!
//! GW-6 (only missing blobs travel; closures stay complete) is enforced in `Fetch::receive`
//! (children already held are not wanted) and `Fetch::complete` (a blob is posted only once
//! all its children are). This is also how the implementation meets GOS-6 (want is exact): a
//! want names exactly the blobs the node lacks.

use super::GossipError;
use crate::Hash;
use crate::db::snapshot::Snapshot;
use crate::storage::refs::{self, Ref};
use crate::storage::store::Store;
use std::collections::BTreeMap;

/// Most ciphertext bytes one session holds in memory while their children are fetched.
pub const STAGED_BYTES_MAX: usize = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Node,
}

struct Staged {
    ciphertext: Vec<u8>,
    missing: usize,
}

/// The state of one fetch.
pub(super) struct Fetch {
    pub(super) head: Ref,
    pub(super) started_ms: u64,
    waiting: BTreeMap<Hash, (Ref, Kind)>,
    staged: BTreeMap<Hash, Staged>,
    waiters: BTreeMap<Hash, Vec<Hash>>,
    staged_bytes: usize,
}

impl Fetch {
    /// A fetch of `head` (not held); the first want is `[head.cid]`.
    pub(super) fn new(head: Ref, now_ms: u64) -> (Self, Vec<Hash>) {
        let fetch = Self {
            head,
            started_ms: now_ms,
            waiting: BTreeMap::from([(head.cid, (head, Kind::Snapshot))]),
            staged: BTreeMap::new(),
            waiters: BTreeMap::new(),
            staged_bytes: 0,
        };
        (fetch, vec![head.cid])
    }

    /// Is `cid` one of this fetch's outstanding wants?
    pub(super) fn wants(&self, cid: &Hash) -> bool {
        self.waiting.contains_key(cid)
    }

    /// Is `cid` held in memory waiting for its children?
    pub(super) fn stages(&self, cid: &Hash) -> bool {
        self.staged.contains_key(cid)
    }

    /// True once every blob of the head's closure is in the store.
    pub(super) fn is_complete(&self) -> bool {
        self.waiting.is_empty() && self.staged.is_empty()
    }

    /// Takes one received blob; returns the CIDs to want next. A blob already held or staged
    /// (a duplicate delivery) is ignored.
    pub(super) fn receive(
        &mut self,
        store: &dyn Store,
        blob: Vec<u8>,
    ) -> Result<Vec<Hash>, GossipError> {
        let cid = Hash::of(&blob);
        let Some((r, kind)) = self.waiting.remove(&cid) else {
            if store.exists(&cid)? || self.staged.contains_key(&cid) {
                return Ok(Vec::new()); // duplicate delivery
            }
            return Err(GossipError::UnwantedBlob(cid)); // GW-5: never stored
        };
        let plaintext = refs::decrypt(&r, &blob)?; // REF-4: CID and tag
        let children = children_of(cid, kind, &plaintext)?;
        let mut wants = Vec::new();
        let mut missing = 0;
        for (child, child_kind) in children {
            if store.exists(&child.cid)? {
                continue; // GW-6: a held blob's closure is held, so stop here
            }
            missing += 1;
            self.waiters.entry(child.cid).or_default().push(cid);
            if !self.waiting.contains_key(&child.cid) && !self.staged.contains_key(&child.cid) {
                self.waiting.insert(child.cid, (child, child_kind));
                wants.push(child.cid);
            }
        }
        if missing == 0 {
            self.complete(store, cid, blob)?;
        } else {
            // GW-6: not posted until every child is; it waits in memory.
            self.staged_bytes += blob.len();
            if self.staged_bytes > STAGED_BYTES_MAX {
                return Err(GossipError::StagingFull { staged_bytes: self.staged_bytes });
            }
            self.staged.insert(cid, Staged { ciphertext: blob, missing });
        }
        Ok(wants)
    }

    /// Posts a blob whose children are all held, then any staged parent this completes (GW-6).
    fn complete(&mut self, store: &dyn Store, cid: Hash, blob: Vec<u8>) -> Result<(), GossipError> {
        let mut work = vec![(cid, blob)];
        while let Some((cid, blob)) = work.pop() {
            let stored = store.post(&blob)?;
            if stored != cid {
                return Err(GossipError::UnwantedBlob(stored));
            }
            for parent in self.waiters.remove(&cid).unwrap_or_default() {
                let done = match self.staged.get_mut(&parent) {
                    Some(s) => {
                        s.missing = s.missing.saturating_sub(1);
                        s.missing == 0
                    }
                    None => false,
                };
                if done && let Some(s) = self.staged.remove(&parent) {
                    self.staged_bytes = self.staged_bytes.saturating_sub(s.ciphertext.len());
                    work.push((parent, s.ciphertext));
                }
            }
        }
        Ok(())
    }
}

/// The refs a blob points at: a snapshot's parents and root; an internal node's children.
fn children_of(cid: Hash, kind: Kind, plaintext: &[u8]) -> Result<Vec<(Ref, Kind)>, GossipError> {
    match kind {
        Kind::Snapshot => {
            let s = Snapshot::decode(cid, plaintext)?;
            let mut out: Vec<(Ref, Kind)> =
                s.parents.iter().map(|p| (*p, Kind::Snapshot)).collect();
            out.extend(s.root.map(|r| (r, Kind::Node)));
            Ok(out)
        }
        Kind::Node => {
            let node = crate::db::kv::decode_node(plaintext)
                .map_err(|e| GossipError::Corrupt { cid, detail: e.to_string() })?;
            if node.level == 0 {
                return Ok(Vec::new());
            }
            node.entries.iter().map(|e| Ok((Ref::from_bytes(&e.value)?, Kind::Node))).collect()
        }
    }
}
