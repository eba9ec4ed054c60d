//! The values the adapters exchange with their shells (`specs/adapters.md`): errno values and
//! the mapping from file-tree errors (ADP-6), the errors of opening and committing a share,
//! how a share is served, attributes, and what a commit did.

use super::staging::{PromoteError, Promoted};
use crate::db::merge::NodeId;
use crate::db::snapshot::SnapshotError;
use crate::env::Clock;
use crate::fs::{CommitError, Conflict, FsError, Kind};
use crate::marks::MarkError;
use crate::storage::refs::{Ref, RefError};
use crate::storage::store::StoreError;
use crate::storage::volume::VolumeError;
use std::path::PathBuf;
use std::sync::Arc;

/// An errno value (`libc::E*`), what an adapter answers a refused request with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// The errno for a refused or failed file-tree operation (ADP-6).
pub fn errno_of(e: &FsError) -> Errno {
    Errno(match e {
        FsError::InvalidPath { .. } => libc::EINVAL,
        FsError::PathTooLong { .. } | FsError::NameTooLong { .. } => libc::ENAMETOOLONG,
        FsError::FileTooLarge { .. } => libc::EFBIG,
        FsError::DirectoryFull { .. } => libc::ENOSPC,
        FsError::InvalidTarget { size_bytes: 0 } => libc::ENOENT,
        FsError::InvalidTarget { .. } => libc::ENAMETOOLONG,
        FsError::InvalidMode { .. } | FsError::ReadTooLarge { .. } => libc::EINVAL,
        FsError::NotFound { .. } => libc::ENOENT,
        FsError::AlreadyExists { .. } => libc::EEXIST,
        FsError::NotADirectory { .. } => libc::ENOTDIR,
        FsError::IsADirectory { .. } => libc::EISDIR,
        FsError::NotAFile { .. } | FsError::NotASymlink { .. } => libc::EINVAL,
        FsError::NotEmpty { .. } => libc::ENOTEMPTY,
        FsError::InvalidRename { .. } => libc::EINVAL,
        FsError::Unsupported { .. } => libc::EPERM,
        _ => libc::EIO,
    })
}

/// Errors of opening a share and of commits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The volume's cell or mode lock refused.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The share's mark could not be opened or created (ADP-1).
    #[error(transparent)]
    Mark(#[from] MarkError),
    /// The file tree refused or is damaged.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A commit or merge failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The history is damaged.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Copying the new head's blobs into the volume's store failed.
    #[error(transparent)]
    Promote(#[from] PromoteError),
    /// The spill directory.
    #[error("spill directory: {0}")]
    Io(#[from] std::io::Error),
    /// A cleanup holds Contract: the commit can be retried once it ends (VOL-2).
    #[error("a cleanup of the volume is running (Contract held); commit again later")]
    Busy,
    /// Someone emptied the mark's value under us.
    #[error("the mark's value was emptied by another writer; refusing to commit over it")]
    CellEmptied,
    /// Other writers kept winning the CAS.
    #[error("lost the cell CAS {0} times in a row; commit again")]
    Contended(u32),
    /// A buffered write could not be applied to the working tree (ADP-12); reported once.
    #[error("a buffered write failed (errno {})", .0.0)]
    WriteBack(Errno),
}

impl AdapterError {
    /// The errno an adapter answers a failed commit with.
    pub fn errno(&self) -> Errno {
        match self {
            AdapterError::Busy | AdapterError::Contended(_) => Errno(libc::EAGAIN),
            AdapterError::Fs(e) => errno_of(e),
            AdapterError::WriteBack(e) => *e,
            _ => Errno(libc::EIO),
        }
    }
}

/// How many lost CASes one [`ShareFs::commit`] merges through before giving up.
pub const COMMIT_CAS_ATTEMPTS_MAX: u32 = 8;
/// Staged bytes after which unreachable staged blobs are dropped (ADP-4).
pub const STAGING_COMPACT_BYTES: u64 = 256 * 1024 * 1024;

/// How a share is served.
#[derive(Clone)]
pub struct ShareOptions {
    /// Refuse every change with `EROFS`.
    pub read_only: bool,
    /// Where staged blobs of 32 KiB and more are spilled (emptied on open).
    pub spill_dir: PathBuf,
    /// The author of this server's commits.
    pub author: NodeId,
    /// Time for mtimes and ctimes.
    pub clock: Arc<dyn Clock>,
    /// Owner of the root directory of an empty volume.
    pub root_owner: (u32, u32),
    /// Prefix of commit messages (`cellar mount SHARE`).
    pub label: String,
    /// A clean working tree looks for newer commits of its mark before a read once this many
    /// ms (on `clock`) have passed since it last looked; 0: before every read (ADP-13).
    pub refresh_ms: u64,
    /// How data blobs written through the share are encoded (FS-27).
    pub compression: crate::fs::Compression,
}

impl std::fmt::Debug for ShareOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareOptions")
            .field("read_only", &self.read_only)
            .field("spill_dir", &self.spill_dir)
            .field("label", &self.label)
            .field("refresh_ms", &self.refresh_ms)
            .field("compression", &self.compression)
            .finish()
    }
}

/// Attributes of one inode, as both adapters report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number ([`super::inode`]).
    pub ino: u64,
    /// File, directory or symlink.
    pub kind: Kind,
    /// Bytes (file), target length (symlink), entries (directory), device number (device),
    /// 0 (FIFO, socket).
    pub size: u64,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count: 1, or for a directory 2 plus its subdirectories (no hard links, FS-12).
    pub nlink: u32,
    /// Modification time (ns since the epoch), stored in the tree.
    pub mtime_ns: i64,
    /// Status change time: kept in memory by this server only (ADP-7).
    pub ctime_ns: i64,
    /// Access time: kept in memory by this server only (ADP-7).
    pub atime_ns: i64,
}

/// A time to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// The server's clock now.
    Now,
    /// This many ns since the epoch.
    At(i64),
}

/// What `setattr` changes (every `None` stays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend with a hole).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
}

/// Who asks (new files are theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// The head now in the cell (`None`: nothing was ever committed).
    pub head: Option<Ref>,
    /// True if a new head was published.
    pub published: bool,
    /// Lost CASes merged through.
    pub merges: u32,
    /// Conflicts of those merges (theirs kept beside ours).
    pub conflicts: Vec<Conflict>,
    /// Blobs copied into the volume's store.
    pub promoted: Promoted,
}

impl From<RefError> for AdapterError {
    fn from(e: RefError) -> Self {
        AdapterError::Fs(FsError::Ref(e))
    }
}

impl From<StoreError> for AdapterError {
    fn from(e: StoreError) -> Self {
        AdapterError::Promote(PromoteError::Store(e))
    }
}
