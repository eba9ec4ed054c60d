//! `cellar::marks`: marks and spaces (`specs/marks.md`, MARK-1..MARK-10), Got's branches and
//! spaces over Cellar's volumes.
//!
//! A **mark** is a named volume with metadata ([`MarkInfo`]: when it was created, the salt its
//! data is written under, and its volume's cell value — for a file tree, the head commit). A
//! **space** is a set of marks: [`VolumeSpace`] keeps them in its own volume, as an encrypted
//! prolly-tree map name → mark record whose root the space's (sealed) cell holds, and every
//! mark's blobs in the space's store. A [`CompositeSpace`] mounts spaces under name prefixes
//! (`origin/` → another repository's space). Create, fork (same salt, same value), rename and
//! delete are one compare-and-swap of the space cell each; a mark's own cell ([`MarkCell`]) is a
//! view of its entry, so moving a mark's head is also one space CAS, and nothing is ever
//! half-done.
//!
//! Moving a mark between spaces is a plain [`crate::storage::volume::sync`] of the two mark
//! volumes ([`sync_mark`]): the destination's Expand mode is held for the whole copy (VOL-2), and
//! nothing is published before every blob it reaches is there (VOL-3, so VOL-1). A space's
//! garbage is collected by cleaning up the *space* volume with [`SpaceReachability`] — the union
//! of every mark's reachable set — never a single mark (a mark's store refuses deletes).
//!
//! Files: `name.rs` (MARK-1), `record.rs` (MARK-2, MARK-3), `space.rs` (`Space`, `VolumeSpace`,
//! `MarkCell`), `composite.rs`, `reach.rs`, `sync.rs`.
//!
//! Never: read the clock or draw randomness (creation times and salts are arguments); edit the
//! map without holding Expand on the space; delete a blob another mark reaches.

mod composite;
mod name;
mod reach;
mod record;
mod space;
mod sync;

pub use composite::CompositeSpace;
pub use name::{MARK_COMPONENT_SIZE_MAX_BYTES, MARK_NAME_SIZE_MAX_BYTES, MarkName};
pub use reach::SpaceReachability;
pub use record::{
    MARK_RECORD_FIXED_SIZE_BYTES, MARK_RECORD_VERSION, MARK_VALUE_SIZE_MAX_BYTES, MarkInfo,
    SPACE_VALUE_SIZE_BYTES, SPACE_VALUE_VERSION, decode_mark, decode_space_value, encode_mark,
    encode_space_value,
};
pub use space::{MarkCell, SPACE_CAS_ATTEMPTS_MAX, Space, UPGRADED_MARK, VolumeSpace};
pub use sync::{DecideMark, sync_mark};

use crate::db::kv::KvError;
use crate::storage::cell::CellError;
use crate::storage::refs::RefError;
use crate::storage::volume::VolumeError;

/// Errors of space operations: one variant per way a request is refused, corruption apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarkError {
    /// A name that breaks MARK-1 (or a `/` in a name a volume space should hold).
    #[error("invalid mark name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No mark of that name.
    #[error("no mark named {name}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The name is taken.
    #[error("a mark named {name} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// A composite space has no mount for the name.
    #[error("no space is mounted for the mark name {name}")]
    NoMount {
        /// The name.
        name: String,
    },
    /// A rename or fork between two different mounted spaces (use [`sync_mark`]).
    #[error("{from} and {to} live in different spaces: {operation} stays within one space")]
    CrossSpace {
        /// The operation.
        operation: &'static str,
        /// Source name.
        from: String,
        /// Destination name.
        to: String,
    },
    /// A mark value over [`MARK_VALUE_SIZE_MAX_BYTES`].
    #[error("mark value of {size_bytes} bytes exceeds {MARK_VALUE_SIZE_MAX_BYTES} bytes")]
    ValueTooLarge {
        /// Its size.
        size_bytes: usize,
    },
    /// The space cell kept changing under an edit.
    #[error("gave up after {attempts} lost compare-and-swaps on the space cell")]
    Contention {
        /// How many attempts were made.
        attempts: u32,
    },
    /// The space's cell value, map or a mark record is damaged.
    #[error("space is corrupt: {detail}")]
    Corrupt {
        /// What was wrong.
        detail: String,
    },
    /// The volume refused (a mode conflict with a cleanup, VOL-6) or failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The map refused or could not read a node.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A ref failed.
    #[error(transparent)]
    Ref(#[from] RefError),
}

impl From<CellError> for MarkError {
    fn from(e: CellError) -> Self {
        MarkError::Volume(VolumeError::Cell(e))
    }
}

impl MarkError {
    /// Is this damage to stored data (as opposed to a refused request)?
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            MarkError::Corrupt { .. }
                | MarkError::Ref(RefError::Corrupt { .. })
                | MarkError::Kv(KvError::Corrupt { .. } | KvError::Ref(RefError::Corrupt { .. }))
        )
    }
}
