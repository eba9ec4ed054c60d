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
//! - The engine: [`Engine`], every operation; single-threaded (`&mut self`), deterministic.
//!   One idea per file: `engine` (state, `format`/`open`, accessors), `config` ([`EngineConfig`]
//!   and the limits), `types` (the API types: [`Record`], [`Version`], [`WriteOptions`],
//!   [`CasOp`], …), `read` (the read path), `write` (the write path, `cas`, `flush`, revertible
//!   writes), `zones` (zone placement and accounting), `commit` (the CAS commit scheme),
//!   `compact` (the compactor step), `recovery` (the index rebuild at `open`), `checkpoint`
//!   (the clean-shutdown checkpoint `open` loads instead of scanning) and `repair` (naming the
//!   key of a header with one damaged byte).
//! - `index`, [`mod@format`], [`checkpoint_format`]: the in-memory index and the byte-level
//!   on-disk format.
//! - [`device`]: the [`BlockDevice`] trait and its implementations (memory, file, io_uring,
//!   fault injection).
//!
//! What this module never does: read the clock, draw randomness or spawn threads inside the
//! engine ([`ShardedEngine`] and [`BackgroundCompactor`] are the production shells that do), or
//! return bytes whose CRC failed (SEC-6).

pub mod adapters;
mod checkpoint;
pub mod checkpoint_format;
mod commit;
mod compact;
mod config;
pub mod device;
mod engine;
mod error;
pub mod format;
pub mod fuzzing;
mod index;
pub mod proto;
mod read;
mod recovery;
pub mod remote;
mod repair;
mod shard;
mod types;
mod victim;
mod write;
mod zones;

pub use adapters::{SectorCell, SectorStore};
pub use checkpoint::CheckpointOutcome;
pub use compact::{BACKGROUND_IDLE_SLEEP_MS, BackgroundCompactor, CompactProgress};
pub use config::{
    CAS_OPS_MAX, COMPACTION_RESERVE_ZONES_DEFAULT, DELETE_RESERVE_ZONES_DEFAULT,
    DEVICE_SECTOR_COUNT_MAX, EngineConfig, READ_FOLLOW_RECORDS_MAX, READ_RANGE_KEYS_MAX,
    SECTOR_SIZE_BYTES, VALUE_SIZE_MAX_BYTES_DEFAULT, ZONE_SIZE_BYTES_DEFAULT, ZONE_SIZE_BYTES_MAX,
    ZONE_SIZE_BYTES_MIN,
};
pub use device::{BlockDevice, DeviceError, DeviceSync, FileDevice, MemDevice, ReadOp, WriteOp};
pub use engine::Engine;
pub use error::SectorError;
pub use index::{INDEX_SLOT_SIZE_BYTES, Index};
pub use remote::{RemoteSectorCell, RemoteSectorStore};
pub use shard::{ShardedEngine, shard_of};
pub use types::{
    CasNew, CasOp, CasResult, EngineStats, Expect, Key, KeyRange, Record, RecoveryReport, Version,
    WriteOptions, ZoneStat,
};
pub use write::FlushStart;
