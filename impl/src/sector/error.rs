//! `SectorError`: every way an engine operation can fail. Corruption is never folded into I/O,
//! and a corrupt record is reported with its key (SEC-6).

use super::{DeviceError, Key, Version};

/// Errors of sector-engine operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SectorError {
    /// The device refused an operation.
    #[error("device error: {0}")]
    Device(#[from] DeviceError),
    /// The stored record for `key` failed its CRC or framing check; it is not returned (SEC-6).
    #[error("record for key {key} is corrupt: {detail}")]
    Corrupt {
        /// The key whose record is corrupt.
        key: Key,
        /// What was wrong.
        detail: String,
    },
    /// Neither superblock copy is valid: the device holds no engine, or both copies are damaged.
    #[error("device is not a sector-engine image: {0}")]
    NotFormatted(String),
    /// The device or configuration geometry is unusable.
    #[error("bad geometry: {0}")]
    Geometry(String),
    /// A value, batch or range exceeds a limit.
    #[error("{what} of {size} exceeds the maximum of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Size offered.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A conditional write found a different version (or presence) than expected.
    #[error("key {key}: expected {expected}, found {current:?}")]
    VersionMismatch {
        /// The key.
        key: Key,
        /// What the caller expected, as text.
        expected: String,
        /// The key's current version (`None`: absent).
        current: Option<Version>,
    },
    /// No free zone is left and compaction cannot free one.
    #[error("device full: no free zone")]
    DeviceFull,
    /// `revert` or `commit` on a key that has no revertible write pending.
    #[error("key {0} has no revertible write pending")]
    NotRevertible(Key),
    /// A stored value failed to decompress (its CRC passed: the writer stored bad bytes).
    #[error("key {key}: stored value does not decompress: {detail}")]
    Decompress {
        /// The key.
        key: Key,
        /// The decoder's complaint.
        detail: String,
    },
    /// An argument is malformed (e.g. a key twice in one CAS, a CAS across shards).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The engine's shard or worker has stopped (sharded and background shells only).
    #[error("engine stopped: {0}")]
    Stopped(String),
}
