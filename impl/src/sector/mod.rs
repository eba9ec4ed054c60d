//! The Yottastore sector engine (`specs/sector.md`, SEC-*): a log-structured key/value store on a
//! raw block device, with a compact in-memory hash index, multi-key CAS that is atomic across a
//! crash, trim/compaction as a resumable step function, and recovery that cuts torn tails.
//!
//! Layers, top to bottom (directories mirror them):
//! - [`proto`]: the socket protocol (`specs/sector-protocol.md`): messages, framing, client,
//!   server shell and the engine backend.
//! - [`adapters`]: [`SectorStore`] (the `Store` trait) and [`SectorCell`] (the `Cell` trait);
//!   [`remote`]: the same over a server's socket ([`RemoteSectorStore`], [`RemoteSectorCell`]).
//! - `shard`: [`ShardedEngine`], one single-threaded [`Engine`] per shard behind channels.
//! - `engine`: [`Engine`], every operation; single-threaded (`&mut self`), deterministic.
//! - `compact`, `recovery`, `index`, `format`: the compactor step, the index rebuild, the
//!   in-memory index and the byte-level on-disk format.
//! - [`device`]: the [`BlockDevice`] trait and its implementations (memory, file, io_uring,
//!   fault injection).
//!
//! What this module never does: read the clock, draw randomness or spawn threads inside the
//! engine ([`ShardedEngine`] and [`BackgroundCompactor`] are the production shells that do), or
//! return bytes whose CRC failed (SEC-6).

pub mod adapters;
mod commit;
mod compact;
pub mod device;
mod engine;
mod error;
pub mod format;
pub mod fuzzing;
mod index;
pub mod proto;
mod recovery;
pub mod remote;
mod shard;

pub use adapters::{SectorCell, SectorStore};
pub use compact::{BACKGROUND_IDLE_SLEEP_MS, BackgroundCompactor, CompactProgress};
pub use device::{BlockDevice, DeviceError, FileDevice, MemDevice, ReadOp, WriteOp};
pub use engine::{
    CasNew, CasOp, CasResult, Engine, EngineConfig, EngineStats, Expect, KeyRange, Record,
    RecoveryReport, WriteOptions, ZoneStat,
};
pub use error::SectorError;
pub use index::{INDEX_SLOT_SIZE_BYTES, Index};
pub use remote::{RemoteSectorCell, RemoteSectorStore};
pub use shard::{ShardedEngine, shard_of};

/// A key: any unsigned 64-bit integer.
pub type Key = u64;

/// Size of a device sector, the unit of every device I/O (SEC-1).
pub const SECTOR_SIZE_BYTES: usize = 4096;
/// Default size of a zone, the unit of allocation, compaction and trim.
pub const ZONE_SIZE_BYTES_DEFAULT: usize = 1024 * 1024;
/// Smallest zone the engine accepts: a header sector plus at least seven data sectors.
pub const ZONE_SIZE_BYTES_MIN: usize = 8 * SECTOR_SIZE_BYTES;
/// Largest zone the engine accepts (recovery and compaction buffer whole zones).
pub const ZONE_SIZE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Largest value a single record may hold (before compression).
pub const VALUE_SIZE_MAX_BYTES_DEFAULT: usize = 16 * 1024 * 1024;
/// Most sectors a device may have: locations are `u32` in the index, `u32::MAX` is "empty".
pub const DEVICE_SECTOR_COUNT_MAX: u64 = u32::MAX as u64 - 1;
/// Most keys one `read_range` call may touch (ranges are expanded key by key).
pub const READ_RANGE_KEYS_MAX: u64 = 65_536;
/// Most records one `read_follow` call may return.
pub const READ_FOLLOW_RECORDS_MAX: usize = 4096;
/// Most operations in one `cas` (all records plus the commit record must fit in one zone).
pub const CAS_OPS_MAX: usize = 256;

const _: () = assert!(ZONE_SIZE_BYTES_DEFAULT.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(ZONE_SIZE_BYTES_MIN.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(ZONE_SIZE_BYTES_DEFAULT >= ZONE_SIZE_BYTES_MIN);
const _: () = assert!(ZONE_SIZE_BYTES_MAX >= ZONE_SIZE_BYTES_DEFAULT);
const _: () = assert!(SECTOR_SIZE_BYTES.is_power_of_two());

/// The version of a key's value: names one physical copy of one write, never reused (SEC-9).
///
/// Encoding: the high 32 bits are the epoch of the zone the record lives in (zone epochs are
/// never reused), the low 32 bits the record's first sector. Two writes of the same key never
/// share a version. Compaction moves a record and therefore changes its version (SEC-10): a
/// `compare` against a version taken before the move reports `false`, and the caller re-reads.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Version(pub u64);

impl Version {
    /// Builds a version from a zone epoch and a sector index.
    pub fn new(zone_epoch: u32, sector: u32) -> Version {
        Version((u64::from(zone_epoch) << 32) | u64::from(sector))
    }

    /// The zone epoch part.
    pub fn zone_epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The sector part.
    pub fn sector(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
