//! `cellar-sim`: Cellar's deterministic simulator, as a library (the `cellar` binary in
//! `src/bin/cellar/` is its command line). One `u64` seed drives a world in which
//! the real sector engine, cells over a lossy network, volume jobs and gossip nodes run against
//! a simulated SSD and network with fault injection, judged by `cellar-model`'s executable spec.
//!
//! Modules: [`rng`] (the seeded generator), [`simfs`] (a file system with crash semantics under
//! the real file layers), [`trace`] (event trace and its hash), [`oracle`]
//! (the key/value model), [`gossip`] (gossip nodes and their GOS oracles), [`channels`]
//! (gossip over secure channels, the CH-5 and CH-10 oracles), [`attacker`] (the network
//! attacker of the `gossip` profile), [`ssd`] (`SimSsd`
//! and the fault atlas), [`net`] (network, byte streams with connection semantics), [`cells`] (cell clients and
//! server over the real sector protocol, linearizability),
//! [`volumes`] (syncers/cleaners replayed through `VolumeSpec`), [`knobs`] (swarm knobs and
//! profiles), [`workload`] (key/value operations), [`files`] (the `fs` profile: file trees and
//! marks on sector-engine repositories, judged by `FsSpec`), [`filesys`] (the `files` profile:
//! processes sharing a `DirVolume` on a `SimFs` under power cuts), [`world`] (scheduler, processes, faults,
//! gossip wiring, liveness and final checks), [`run`] (one seed: config in, report out),
//! [`campaign`] (many seeds, summary), [`minimize`] (shrinking a failing run), [`report`]
//! (JSON and JUnit reports of checks, campaigns and suites), [`conform`] (the conformance suite of `specs/conform.md`: formats, vectors, adapter, harness).
//! `docs/sim.md` is the user's guide.
//!
//! Dependency order: a module uses only modules before it in this list, so there are no
//! circles and no arrows back up (`sim/tests/layering.rs` checks it):
//! `rng, simfs, trace, oracle, gossip, channels, attacker, ssd, net, cells, volumes, knobs,
//! workload, files, filesys, world, run, campaign, minimize, report, conform`. This file only declares and re-exports; no module imports from it.
//!
//! Seeds live here: the implementation under test never sees one (it receives its randomness
//! through `cellar::env` and the devices and networks this crate builds). Nothing here parses
//! arguments, prints or draws progress bars: the command line turns flags into a
//! [`RunConfig`] and prints reports.

pub mod attacker;
pub mod campaign;
pub mod cells;
pub mod channels;
pub mod conform;
pub mod files;
pub mod filesys;
pub mod gossip;
pub mod knobs;
pub mod minimize;
pub mod net;
pub mod oracle;
pub mod report;
pub mod rng;
pub mod run;
pub mod simfs;
pub mod ssd;
pub mod trace;
pub mod volumes;
pub mod workload;
pub mod world;

pub use run::{Failure, RunConfig, RunReport, TICKS_DEFAULT, knobs_of, panic_message, run};
