//! Storage primitives (Got's lower layers): what every higher layer stores its bytes through.
//!
//! Top to bottom:
//! - [`volume`]: a (cell, store) pair with Sync (expand) and Cleanup (contract) that never
//!   overlap (`specs/volume.md`, VOL-*); [`files`] is the blob-tree schema `cellar vol put`
//!   stores a file as.
//! - [`refs`]: 64-byte encrypted references, convergent encryption (`specs/refs.md`, REF-*),
//!   keyed by a [`secret::VolumeSecret`].
//! - [`cell`]: compare-and-swap cells (`specs/cells.md`, CELL-*).
//! - [`store`]: content-addressed blob stores (`specs/cells.md`, STORE-*), addressed by
//!   [`hash::Hash`].
//!
//! [`fsys`] is the file system the file-based layers stand on (the operating system's, or the
//! simulator's); [`fsio`] makes every I/O error of theirs name its path.
//!
//! Nothing here knows about key/value trees or gossip (`crate::db`) or about block devices
//! (`crate::sector` implements [`cell::Cell`] and [`store::Store`] on top of its engine).

pub mod cell;
pub mod files;
pub mod fsio;
pub mod fsys;
pub mod hash;
pub mod refs;
pub mod secret;
pub mod store;
pub mod volume;
