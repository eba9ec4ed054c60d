//! What a tree needs from its store (`specs/fs.md` FS-21): the blobs reachable from a root —
//! every tree node and every blob an extent points into — for volume cleanup (VOL-5) and for
//! scrubbing (re-read and verify all of them, report damage).
//!
//! Never: return an incomplete reachable set (a missing or corrupt node is an error, so a
//! cleanup deletes nothing, VOL-5); stop a scrub at the first damaged blob.

use super::path::FsPath;
use super::record::{AnyRecord, Place, Record, decode_any};
use super::{Fs, FsError, corrupt};
use crate::Hash;
use crate::storage::refs::{self, Ref};
use crate::storage::store::Store;
use crate::storage::volume::{Reachability, VolumeError};
use std::collections::BTreeSet;

/// One damaged blob found by [`Fs::scrub`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The blob's CID.
    pub cid: Hash,
    /// The first path whose bytes live in it (`None`: a tree node).
    pub path: Option<FsPath>,
    /// What was wrong.
    pub detail: String,
}

/// What a scrub read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Tree nodes read and verified.
    pub nodes: u64,
    /// Distinct data blobs read and verified.
    pub blobs: u64,
    /// Every damaged blob, in the order met.
    pub damage: Vec<Damage>,
}

impl Fs<'_> {
    /// Every blob reachable from `root`: tree nodes and extent blobs (FS-21). Fails on the first
    /// missing or damaged node; data blobs are named, not read.
    pub fn reachable(&self, root: &Ref) -> Result<BTreeSet<Hash>, FsError> {
        let mut out = BTreeSet::new();
        self.reachable_into(root, &mut out)?;
        Ok(out)
    }

    /// Adds what `root` reaches to `out`, skipping every node already in it (with everything
    /// below it): over a history of trees that share structure, the cost follows the changes.
    pub fn reachable_into(&self, root: &Ref, out: &mut BTreeSet<Hash>) -> Result<(), FsError> {
        let mut stack = vec![*root];
        while let Some(r) = stack.pop() {
            if !out.insert(r.cid) {
                continue;
            }
            let node = self.kv.read_node(&r)?;
            self.node_children(&node, &mut stack, &mut |e, _| {
                out.insert(e.cid);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Re-reads and verifies every reachable blob (REF-4), collecting damage instead of
    /// stopping. Each data blob is read once however many extents share it.
    pub fn scrub(&self, root: &Ref) -> Result<ScrubReport, FsError> {
        let mut report = ScrubReport::default();
        self.scrub_into(root, &mut BTreeSet::new(), &mut report, &mut || {})?;
        Ok(report)
    }

    /// [`Fs::scrub`] over many trees (a history): `seen` holds the blobs and nodes already
    /// verified — a node in it is skipped with everything below it, a blob is not read again —
    /// and `report` accumulates. `on_blob` is called once per blob or node read (progress).
    pub fn scrub_into(
        &self,
        root: &Ref,
        seen: &mut BTreeSet<Hash>,
        report: &mut ScrubReport,
        on_blob: &mut dyn FnMut(),
    ) -> Result<(), FsError> {
        let store = self.kv.store();
        let mut stack = vec![*root];
        while let Some(r) = stack.pop() {
            if !seen.insert(r.cid) {
                continue;
            }
            report.nodes += 1;
            on_blob();
            let node = match self.kv.read_node(&r) {
                Ok(n) => n,
                Err(e) => {
                    report.damage.push(Damage { cid: r.cid, path: None, detail: e.to_string() });
                    continue;
                }
            };
            let mut blobs = Vec::new();
            self.node_children(&node, &mut stack, &mut |e, p| {
                blobs.push((*e, p.clone()));
                Ok(())
            })?;
            for (e, place) in blobs {
                if !seen.insert(e.cid) {
                    continue;
                }
                report.blobs += 1;
                on_blob();
                if let Err(err) = refs::get(store, &e) {
                    let path = match place {
                        Place::Path(p) => Some(p),
                        // FS-12: an inode's bytes are named by its first link.
                        Place::Inode(n) => self.links_of(root, n)?.into_iter().next(),
                    };
                    report.damage.push(Damage { cid: e.cid, path, detail: err.to_string() });
                }
            }
        }
        Ok(())
    }

    /// Pushes an internal node's children; calls `blob` for each extent of a leaf.
    fn node_children(
        &self,
        node: &crate::db::kv::Node,
        stack: &mut Vec<Ref>,
        blob: &mut dyn FnMut(&Ref, &Place) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        for e in &node.entries {
            if node.level > 0 {
                stack.push(Ref::from_bytes(&e.value)?);
                continue;
            }
            let rec = decode_any(&e.key, &e.value).map_err(|x| corrupt(&FsPath::root(), x))?;
            if let AnyRecord::At(place, _, Record::Extent(x)) = rec {
                blob(&x.blob, &place)?;
            }
        }
        Ok(())
    }
}

/// Reachability for a volume whose cell holds a tree's root ref (64 bytes; empty: nothing),
/// so a volume cleanup keeps every node and data blob of the published tree (VOL-5).
#[derive(Clone, Copy, Debug)]
pub struct FsRootReachability {
    /// The salt the tree was written under.
    pub salt: [u8; 32],
}

impl Reachability for FsRootReachability {
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        if value.is_empty() {
            return Ok(BTreeSet::new());
        }
        let root = Ref::from_bytes(value)?;
        Fs::new(store, self.salt).reachable(&root).map_err(|e| match e {
            FsError::Ref(r) | FsError::Kv(crate::db::kv::KvError::Ref(r)) => VolumeError::Ref(r),
            other => VolumeError::BadValue(other.to_string()),
        })
    }
}
