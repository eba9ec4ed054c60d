//! Cellar: a content-addressed, encrypted, versioned storage stack.
//!
//! Layers, top to bottom (see `docs/architecture.md`):
//! - [`volume`]: a (cell, store) pair with Sync (expand) and Cleanup (contract), mode-exclusive
//!   (`specs/volume.md`, VOL-*).
//! - [`refs`]: 64-byte encrypted references, convergent encryption (`specs/refs.md`, REF-*).
//! - [`cell`]: compare-and-swap cells (`specs/cells.md`, CELL-*).
//! - [`store`]: content-addressed blob stores (`specs/cells.md`, STORE-*).
//!
//! What this crate never does: read the wall clock, draw OS randomness or spawn threads inside
//! its logic. Time and randomness arrive through the traits in [`env`]; the simulator supplies
//! deterministic ones, production supplies [`env::OsEntropy`] and [`env::SystemClock`].

pub mod bugs;
pub mod cell;
pub mod env;
pub mod files;
pub mod gossip;
pub mod hash;
pub mod hkv;
pub mod kv;
pub mod merge;
pub mod refs;
pub mod secret;
pub mod sector;
pub mod sector_proto;
pub mod snapshot;
pub mod store;
pub mod sync;
pub mod volume;

pub use hash::Hash;
