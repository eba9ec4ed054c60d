//! `cellar::fs`: encrypted, deduplicated, versioned file trees (`specs/fs.md`, FS-1..FS-22).
//!
//! A file tree is a prolly tree ([`crate::db::kv`]) with a schema, as in Got's GotFS: the key of
//! a record is the path with `/` mapped to NUL followed by an 8-byte big-endian offset. Offset 0
//! holds the path's [`Info`] (kind, mode, uid/gid, mtime in ns, size, symlink target); a
//! non-zero offset `e` holds an [`Extent`] of a regular file — a blob ref, an offset in the
//! blob and a length — covering the file's bytes `[e − length, e)`. File bytes are cut by a
//! keyed content-defined chunker ([`chunker`]) and stored as encrypted blobs through
//! [`crate::storage::refs`], so equal chunks are stored once.
//!
//! Trees are values: every operation takes a root [`crate::Ref`] and returns a new one; nothing is
//! published until a caller puts a root into a cell, so a failed operation leaves nothing
//! half-done behind (FS-17). Byte streams go through [`FileReader`] and [`Fs::write_stream`],
//! which hold at most one chunk or blob at a time (FS-16).
//!
//! Files: [`path`] (paths, keys), [`record`] (codec), [`chunker`], `tree` (namespace
//! operations), `data` (file bytes), `import` (batched import, small files share blobs),
//! `inode` (hard links: inodes, link entries, back-references), `diff`, `merge`, `reach` (reachable blobs, scrub), `commit` (history, merge of heads,
//! reachability for volume cleanup), `history` (a mark's value, commit times, retention),
//! [`post`] (who posts data blobs), [`workers`] — the only file that spawns threads — and
//! [`host`] — the only file that touches the host file system.
//!
//! Never: read the clock, randomness or host files in the core (time arrives as `mtime_ns`
//! arguments); return bytes whose blob failed its CID or tag check (REF-4); panic on a
//! damaged record (FS-5).

pub mod blob;
pub mod chunker;
mod commit;
mod data;
mod diff;
mod history;
pub mod host;
mod import;
mod inode;
mod merge;
mod merge_inodes;
pub mod path;
pub mod post;
mod reach;
pub mod record;
mod tree;
pub mod workers;

pub use blob::Compression;
pub use chunker::{Chunker, ChunkerParams};
pub use commit::{CommitError, FsSnapshotReachability};
pub use data::FileReader;
pub use diff::{ChangeKind, PathChange};
pub use history::{
    COMMIT_TIME_TRAILER, HISTORY_VALUE_HORIZON_SIZE_BYTES, History, Pruning, Retention,
    commit_message, split_commit_message,
};
pub use import::Importer;
pub use inode::{Home, INODE_NUMBER_CONTEXT, backref_key, inode_key};
pub use merge::{Conflict, ConflictKind, MergeOutcome};
pub use path::FsPath;
pub use post::{DataEncoder, DataPoster, InlinePoster};
pub use reach::{Damage, FsRootReachability, ScrubReport};
pub use record::{AnyRecord, Attrs, Entry, Extent, Info, Kind, Place, Record, RecordError};
pub use tree::DirEntry;

use crate::db::kv::{Kv, KvError};
use crate::storage::refs::RefError;
use crate::storage::store::Store;

/// Largest regular file, in bytes (FS-13): offsets below 2^48 keep a file's extent keys ahead of
/// its descendants' keys (FS-2).
pub const FILE_SIZE_MAX_BYTES: u64 = (1 << 48) - 1;
/// Most entries one directory holds (FS-13).
pub const DIR_ENTRIES_MAX: u64 = 1 << 20;
/// Longest symlink target, in bytes (FS-13).
pub const SYMLINK_TARGET_SIZE_MAX_BYTES: usize = 4095;
/// The permission bits a mode may hold (FS-3).
pub const MODE_MASK: u32 = 0o7777;
/// Largest blob plaintext an extent may point into: a chunk or a pack (FS-4, FS-8).
pub const EXTENT_BLOB_SIZE_MAX_BYTES: u64 = chunker::CHUNK_SIZE_MAX_BYTES as u64;
/// Largest pack of small chunks (FS-8).
pub const PACK_SIZE_MAX_BYTES: usize = 1024 * 1024;
/// Largest single [`Fs::read`] (use [`FileReader`] for more).
pub const READ_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Most records one tree edit batch holds; longer operations apply several (bounded memory).
pub const EDIT_BATCH_RECORDS_MAX: usize = 4096;

const _: () = assert!(PACK_SIZE_MAX_BYTES as u64 <= EXTENT_BLOB_SIZE_MAX_BYTES);
const _: () = assert!(
    EXTENT_BLOB_SIZE_MAX_BYTES + 16 <= crate::storage::store::BLOB_SIZE_MAX_BYTES_DEFAULT as u64
);
const _: () = assert!(FILE_SIZE_MAX_BYTES < 1 << 48, "FS-2: the top two offset bytes are zero");

/// Errors of file-tree operations: one variant per way a request can be refused, corruption
/// kept apart from everything else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// A malformed path (FS-13).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An encoded path over `PATH_SIZE_MAX_BYTES` (FS-13).
    #[error(
        "path of {size_bytes} bytes exceeds the maximum of {} bytes",
        path::PATH_SIZE_MAX_BYTES
    )]
    PathTooLong {
        /// Encoded size.
        size_bytes: usize,
    },
    /// A name over `NAME_SIZE_MAX_BYTES` (FS-13).
    #[error(
        "name of {size_bytes} bytes exceeds the maximum of {} bytes",
        path::NAME_SIZE_MAX_BYTES
    )]
    NameTooLong {
        /// Size given.
        size_bytes: usize,
    },
    /// A file would grow past [`FILE_SIZE_MAX_BYTES`] (FS-13).
    #[error("file size {size_bytes} exceeds the maximum of {FILE_SIZE_MAX_BYTES} bytes")]
    FileTooLarge {
        /// The size asked for.
        size_bytes: u64,
    },
    /// A directory already holds [`DIR_ENTRIES_MAX`] entries (FS-13).
    #[error("directory {path} is full ({DIR_ENTRIES_MAX} entries)")]
    DirectoryFull {
        /// The directory.
        path: String,
    },
    /// A symlink target that is empty, holds NUL or exceeds the limit (FS-13).
    #[error("invalid symlink target of {size_bytes} bytes")]
    InvalidTarget {
        /// Its size.
        size_bytes: usize,
    },
    /// A mode with bits outside 0o7777 (FS-3).
    #[error("mode {mode:o} has bits outside 0o7777")]
    InvalidMode {
        /// The mode given.
        mode: u32,
    },
    /// A read larger than [`READ_SIZE_MAX_BYTES`].
    #[error("read of {size_bytes} bytes exceeds {READ_SIZE_MAX_BYTES}; stream it instead")]
    ReadTooLarge {
        /// The length asked for.
        size_bytes: u64,
    },
    /// No such path.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The path exists already.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path.
        path: String,
    },
    /// A directory was required.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A directory was not allowed here.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path.
        path: String,
    },
    /// A regular file was required.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The path.
        path: String,
    },
    /// A symlink was required.
    #[error("{path}: not a symbolic link")]
    NotASymlink {
        /// The path.
        path: String,
    },
    /// rmdir of a directory that still has entries.
    #[error("{path}: directory not empty")]
    NotEmpty {
        /// The path.
        path: String,
    },
    /// A rename of the root, or of a directory into itself (FS-11).
    #[error("cannot rename {from} to {to}: {reason}")]
    InvalidRename {
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// Why.
        reason: &'static str,
    },
    /// The schema cannot express the operation (hard links, FS-12).
    #[error("{operation} is not supported: {reason}")]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A record or the tree around it is damaged (FS-5, FS-14): never returned as data.
    #[error("{path}: file tree is corrupt: {detail}")]
    Corrupt {
        /// The path whose records are damaged.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The byte stream given to a write failed.
    #[error("reading the data to write failed: {0}")]
    Source(#[from] std::io::Error),
    /// The prolly tree refused or could not read a node (corrupt nodes included).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A data blob could not be read or verified (REF-4).
    #[error(transparent)]
    Ref(#[from] RefError),
}

impl FsError {
    /// Is this damage to stored data (as opposed to a refused request)?
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            FsError::Corrupt { .. }
                | FsError::Ref(RefError::Corrupt { .. })
                | FsError::Kv(KvError::Corrupt { .. } | KvError::Ref(RefError::Corrupt { .. }))
        )
    }
}

pub(crate) fn corrupt(path: &FsPath, detail: impl std::fmt::Display) -> FsError {
    FsError::Corrupt { path: path.to_string(), detail: detail.to_string() }
}

/// A handle on file trees in one store under one salt. Trees are named by their root
/// [`crate::Ref`]:
/// a tree always holds at least its root directory (FS-9).
#[derive(Clone, Debug)]
pub struct Fs<'s> {
    kv: Kv<'s>,
    chunker: Chunker,
    /// Decoded data blobs (FS-27), shared by clones.
    blobs: blob::BlobCache,
    /// Whether new data blobs are compressed (FS-27).
    compression: Compression,
}

impl<'s> Fs<'s> {
    /// File trees in `store` encrypted under `salt`, cut with the specified chunker (FS-6).
    pub fn new(store: &'s dyn Store, salt: [u8; 32]) -> Self {
        Self::with_chunker(store, salt, ChunkerParams::SPEC)
    }

    /// Like [`Fs::new`] with other chunker sizes (tests: many extents from few bytes).
    pub fn with_chunker(store: &'s dyn Store, salt: [u8; 32], params: ChunkerParams) -> Self {
        Self {
            kv: Kv::new(store, salt),
            chunker: Chunker::new(&salt, params),
            blobs: blob::BlobCache::new(),
            compression: Compression::Zstd,
        }
    }

    /// The same handle reading and writing tree nodes through `cache` (KV-18).
    pub fn with_cache(mut self, cache: &'s crate::db::kv::NodeCache) -> Self {
        self.kv = self.kv.with_cache(cache);
        self
    }

    /// The same handle writing data blobs under `compression` (FS-27; reads take either).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Shares `blobs` (decoded data blobs) with every `Fs` given the same cache: a long-lived
    /// caller that builds an `Fs` per request (an adapter's share) keeps its recent blobs.
    pub fn with_blob_cache(mut self, blobs: &blob::BlobCache) -> Self {
        self.blobs = blobs.clone();
        self
    }

    /// The prolly tree underneath.
    pub fn kv(&self) -> &Kv<'s> {
        &self.kv
    }

    /// The chunker in force.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }
}
