//! Volumes: a (cell, store) pair, and the two operations defined on them (`specs/volume.md`).
//!
//! - [`SyncJob`] (**expand**): make the destination store a superset of what the source value
//!   needs, then CAS the destination cell to what the caller's `decide` returns.
//! - [`CleanupJob`] (**contract**): read the cell, delete every blob it cannot reach.
//! - [`Volume::publish`] (**expand**): CAS the cell to a value already in the store, after
//!   the same VOL-3 check a sync makes.
//!
//! Syncs may overlap syncs and cleanups may overlap cleanups, but an expand and a contract never
//! overlap (VOL-2): otherwise a cleanup could delete blobs that a sync posted but has not yet
//! published, and the sync's CAS would then publish a value whose blobs are gone (VOL-1). Got
//! stated this rule but never enforced it; here every job holds a [`ModeHold`] from the volume's
//! [`ModeLock`] for its whole life, and a job that meets the other mode fails at once with
//! [`VolumeError::ModeConflict`] and changes nothing (VOL-6). A cleanup deletes only what the
//! value it read under Contract cannot reach, and nothing if that set cannot be computed (VOL-5).
//!
//! Both jobs are resumable step functions, so the simulator and tests can interleave them
//! deterministically; [`sync`] and [`cleanup`] simply run them to the end.
//!
//! Never: change a cell without holding Expand; delete a blob without holding Contract; delete a
//! blob reachable from the cell value read under Contract (VOL-1).

mod cleanup;
mod dir;
mod mode;
mod publish;
mod sync;

pub use cleanup::{CleanupJob, CleanupOutcome, CleanupStep, cleanup};
pub use dir::{
    DirVolume, VOLUME_MAGIC, VOLUME_VERSION, VolumeHeaderError, decode_volume_header,
    encode_volume_header,
};
pub use mode::{FileModeLock, Mode, ModeGate, ModeHold, ModeLock};
pub use sync::{SYNC_CAS_ATTEMPTS_MAX, SyncJob, SyncOutcome, SyncStep, sync};

use crate::Hash;
use crate::storage::cell::{Cell, CellError};
use crate::storage::refs::RefError;
use crate::storage::store::{Store, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A volume: the cell holding the root of a data structure, the store holding its blobs, and
/// the lock that keeps expand and contract apart.
#[derive(Clone)]
pub struct Volume {
    /// The root pointer.
    pub cell: Arc<dyn Cell>,
    /// The content-addressed blobs.
    pub store: Arc<dyn Store>,
    /// Expand/contract mode exclusion (VOL-2).
    pub modes: Arc<dyn ModeLock>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Volume { .. }")
    }
}

impl Volume {
    /// A volume with an in-process [`ModeGate`].
    pub fn new(cell: Arc<dyn Cell>, store: Arc<dyn Store>) -> Self {
        Self { cell, store, modes: Arc::new(ModeGate::new()) }
    }

    /// A volume with the given mode lock (e.g. a [`FileModeLock`] shared between processes).
    pub fn with_modes(
        cell: Arc<dyn Cell>,
        store: Arc<dyn Store>,
        modes: Arc<dyn ModeLock>,
    ) -> Self {
        Self { cell, store, modes }
    }
}

/// Errors of volume operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The other mode is held (VOL-2, VOL-6): a sync met a cleanup, or a cleanup met a sync.
    #[error("mode conflict: cannot begin {wanted} while {held} is in progress on this volume")]
    ModeConflict {
        /// The mode this operation needed.
        wanted: Mode,
        /// The mode somebody else holds.
        held: Mode,
    },
    /// A blob reachable from the value about to be published is missing from the destination
    /// store (VOL-3); nothing was published.
    #[error("refusing to publish: reachable blob {0} is missing from the destination store")]
    MissingBlob(Hash),
    /// The destination cell kept changing under the sync.
    #[error("gave up after {attempts} lost compare-and-swap attempts on the destination cell")]
    CasContention {
        /// How many CAS attempts were made.
        attempts: u32,
    },
    /// A cell value could not be interpreted by the reachability function.
    #[error("cell value is not understood: {0}")]
    BadValue(String),
    /// The cell failed.
    #[error(transparent)]
    Cell(#[from] CellError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A ref failed to resolve.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// The directory does not hold a usable volume.
    #[error("{path}: not a usable volume: {detail}")]
    NotAVolume {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        detail: String,
    },
    /// The mode lock's files could not be used.
    #[error("mode lock I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The set of blobs a cell value needs: everything [`CleanupJob`] must keep and everything a
/// [`SyncJob`] must copy before it may publish.
pub trait Reachability: Send + Sync {
    /// The hashes reachable from `value`, reading whatever blobs it must from `store`. Fails if
    /// a blob on the way is missing or corrupt: an incomplete answer would let a cleanup delete
    /// a needed blob.
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError>;
}

impl<F> Reachability for F
where
    F: Fn(&[u8], &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> + Send + Sync,
{
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        self(value, store)
    }
}

/// Checks VOL-1 for a volume: every blob reachable from the current cell value is present.
/// Returns the first missing hash, if any. Used by tests and the simulator's oracles.
pub fn check_vol1(vol: &Volume, reach: &dyn Reachability) -> Result<Option<Hash>, VolumeError> {
    let value = vol.cell.read()?;
    let needed = match reach.reachable(&value, vol.store.as_ref()) {
        Ok(n) => n,
        Err(VolumeError::Store(StoreError::NotFound(h))) => return Ok(Some(h)),
        Err(VolumeError::Ref(RefError::Store(StoreError::NotFound(h)))) => return Ok(Some(h)),
        Err(e) => return Err(e),
    };
    for h in needed {
        if !vol.store.exists(&h)? {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// The simplest value schema: a cell value is a concatenation of 32-byte blob hashes, and it
/// reaches exactly those blobs. Used by tests, the simulator and conformance harnesses.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashList;

impl HashList {
    /// Encodes a list of hashes as a cell value.
    pub fn encode<'h>(hashes: impl IntoIterator<Item = &'h Hash>) -> Vec<u8> {
        hashes.into_iter().flat_map(|h| h.0).collect()
    }
}

impl Reachability for HashList {
    fn reachable(&self, value: &[u8], _store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        if !value.len().is_multiple_of(crate::storage::hash::HASH_SIZE_BYTES) {
            return Err(VolumeError::BadValue(format!(
                "hash list of {} bytes is not a multiple of 32",
                value.len()
            )));
        }
        let mut out = BTreeSet::new();
        for chunk in value.chunks_exact(crate::storage::hash::HASH_SIZE_BYTES) {
            let mut h = [0u8; crate::storage::hash::HASH_SIZE_BYTES];
            h.copy_from_slice(chunk);
            out.insert(Hash(h));
        }
        Ok(out)
    }
}
