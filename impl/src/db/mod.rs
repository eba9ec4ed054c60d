//! The versioned database (GitDb's API over GotKV, GoatDB's replication): everything above the
//! storage primitives that gives stored bytes a history.
//!
//! Top to bottom:
//! - [`gossip`]: a sans-IO replica that announces heads, fetches missing blobs and merges
//!   (`specs/gossip.md`, `specs/gossip-wire.md`, GOS-*).
//! - [`hkv`]: the hierarchical key/value API (paths, working layer, commit, log) (KV-15..17).
//! - [`merge`]: per-key replicated states and the merge of two heads (GOS-1..7, KV-9..11).
//! - [`clock`]: vector clocks, the causal history every key state and snapshot carries.
//! - [`snapshot`]: versions of a tree with their parents and clocks (KV-12..14).
//! - [`kv`]: the GotKV-style prolly tree of encrypted nodes (KV-1..8).
//!
//! Everything here stores through [`crate::storage`]'s `Store` and `Cell` traits and never sees
//! a file, a socket or the clock.

pub mod clock;
pub mod gossip;
pub mod hkv;
pub mod kv;
pub mod merge;
pub mod snapshot;
