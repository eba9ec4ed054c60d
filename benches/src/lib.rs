//! Shared benchmark harness: one trait, [`kv::KvBench`], implemented by the raw baseline, the
//! sector engine and the peers (redb, fjall), so one criterion run measures them side by side
//! on the same file system with the same durability (every batch durable before it counts).
//!
//! This crate is measurement code, not a product: errors are `std::io::Error` and abort the
//! run, and nothing here is part of Cellar's API.

pub mod engine;
pub mod kv;
