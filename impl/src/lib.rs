//! Cellar: a content-addressed, encrypted, versioned storage stack.
//!
//! Layers, top to bottom; folders mirror them (see `docs/architecture.md`):
//! - [`db`]: the versioned database: prolly-tree KV, snapshots, merges, the hierarchical KV API
//!   and gossip replication (`specs/kv.md`, `specs/gossip.md`).
//! - [`marks`]: marks (named volumes with a salt and a head) and spaces (sets of marks kept in a
//!   volume, composable under prefixes), Got's branches (`specs/marks.md`); [`fs`]: encrypted,
//!   versioned file trees over the prolly tree (`specs/fs.md`).
//! - [`storage`]: volumes (Sync/Cleanup, `specs/volume.md`), encrypted refs (`specs/refs.md`),
//!   compare-and-swap cells and content-addressed stores (`specs/cells.md`).
//! - [`sector`]: the Yottastore sector engine on a raw block device and its socket protocol
//!   (`specs/sector.md`, `specs/sector-protocol.md`); it implements the storage traits.
//! - [`registry`]: named stores, cells, volumes and shares from a `cellar.toml` file
//!   (`docs/config.md`); [`pg`]: the PostgreSQL backend (cells, stores, mode locks).
//! - [`adapters`]: the core of the FUSE and NFSv3 adapters that serve shares (`specs/adapters.md`).
//! - [`env`]: the only doors to time and randomness; [`bugs`]: planted bugs for the checkers.
//!
//! What this crate never does: read the wall clock, draw OS randomness or spawn threads inside
//! its logic. Time and randomness arrive through the traits in [`env`]; the simulator supplies
//! deterministic ones, production supplies [`env::OsEntropy`] and [`env::SystemClock`]. The
//! production shells that do own threads ([`sector::ShardedEngine`],
//! [`sector::BackgroundCompactor`], [`sector::proto::server`]) only drive the same step
//! functions.

pub mod adapters;
pub mod bugs;
pub mod db;
pub mod env;
pub mod fs;
pub mod marks;
pub mod net;
#[cfg(not(loom))]
pub mod pg;
#[cfg(not(loom))]
pub mod registry;
pub mod sector;
pub mod storage;
mod sync;

pub use db::gossip::GossipNode;
pub use db::hkv::Hkv;
pub use sector::Engine;
pub use storage::cell::Cell;
pub use storage::hash::Hash;
pub use storage::refs::Ref;
pub use storage::store::Store;
pub use storage::volume::Volume;
