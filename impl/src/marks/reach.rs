//! What a space needs from its store (`specs/marks.md` MARK-8): the map's nodes and, for every
//! mark, what its value reaches. A cleanup of the space volume driven by [`SpaceReachability`]
//! keeps every mark whole (VOL-1 for each mark volume) and deletes the rest: deleted marks,
//! pruned history, abandoned uploads.
//!
//! Never: return a partial set (a damaged map node or mark record is an error, so the cleanup
//! deletes nothing, VOL-5).

use super::MarkError;
use super::record::{decode_mark, decode_space_value};
use crate::Hash;
use crate::db::kv::Kv;
use crate::storage::refs::{Ref, RefError};
use crate::storage::store::Store;
use crate::storage::volume::{Reachability, VolumeError};
use std::collections::BTreeSet;

/// [`Reachability`] of a space volume's cell value: the map's nodes plus `marks` applied to
/// every mark's value.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpaceReachability<R> {
    /// The reachability of one mark's value (for file-tree histories,
    /// [`crate::fs::FsSnapshotReachability`]).
    pub marks: R,
}

impl<R: Reachability> SpaceReachability<R> {
    /// A space whose marks' values `marks` understands.
    pub fn new(marks: R) -> Self {
        Self { marks }
    }
}

fn bad(e: MarkError) -> VolumeError {
    match e {
        MarkError::Ref(r) => VolumeError::Ref(r),
        MarkError::Kv(crate::db::kv::KvError::Ref(r)) => VolumeError::Ref(r),
        MarkError::Volume(v) => v,
        other => VolumeError::BadValue(other.to_string()),
    }
}

impl<R: Reachability> Reachability for SpaceReachability<R> {
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        let mut out = BTreeSet::new();
        let Some(root) = decode_space_value(value).map_err(bad)? else { return Ok(out) };
        let kv = Kv::new(store, [0; 32]); // reads need only the refs, never the salt
        let mut stack = vec![root];
        let mut first = true;
        while let Some(r) = stack.pop() {
            out.insert(r.cid);
            let node = kv.read_node(&r).map_err(|e| bad(e.into()))?;
            for e in &node.entries {
                if node.level > 0 {
                    stack.push(Ref::from_bytes(&e.value).map_err(|e: RefError| bad(e.into()))?);
                    continue;
                }
                let info = decode_mark(&e.value).map_err(bad)?;
                // Planted bug marks:gc-skips-marks: only the first mark met is kept whole.
                if !first && crate::bugs::active("marks:gc-skips-marks") {
                    continue;
                }
                first = false;
                out.extend(self.marks.reachable(&info.value, store)?);
            }
        }
        Ok(out)
    }
}
