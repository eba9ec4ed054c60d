//! Cellar's executable spec and its stateright models.
//!
//! This crate owns the *meaning* of Cellar's concurrent behaviour, independent of any
//! implementation:
//!
//! - [`spec`] — pure state machines with no I/O: [`spec::CasRegister`] (cells, CELL-1/2),
//!   [`spec::VolumeSpec`] (Sync/Cleanup mode exclusion, VOL-1..4) and [`spec::GossipSpec`]
//!   (vector clocks and merges, GOS-1..7). The simulator (`cellar-sim`) judges the real
//!   implementation step by step with these; harnesses for implementations in other languages
//!   can do the same.
//! - [`models`] — stateright [`stateright::Model`]s (`cell`, `volume`, `gossip`) that explore
//!   every interleaving of the protocols built on the spec, with properties named by spec ID and
//!   named mutants that each property must be seen to catch.
//! - [`check`] — an exhaustive breadth-first checker over those models that reports the
//!   *shortest* counterexample per property in the model's own words (used by `cellar check`).
//!
//! It must never depend on `cellar` (the implementation), never read the clock outside
//! [`check`]'s timing, and never draw randomness: every result is a function of its inputs.

pub mod check;
pub mod models;
pub mod spec;
