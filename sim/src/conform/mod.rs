//! `cellar conform`: a language-agnostic conformance suite (`specs/conform.md`).
//!
//! - [`kinds`]: decoder error kinds (`specs/encoding.md`, ENC-5).
//! - [`formats`]: every format decoded, encoded and evaluated by the Rust implementation in
//!   the JSON forms of ENC-4 (what the vectors pin and what the Rust adapter answers).
//! - [`vectors`]: the Wycheproof-style vector files of `specs/vectors/`, their generator and
//!   their reader.
//! - [`adapter`]: the Rust implementation behind the black-box protocol, with planted bugs.
//! - [`process`]: an implementation under test as a child process speaking JSON lines.
//! - [`run_vectors`]: feeding every vector to an implementation and judging the answers.
//! - [`report`]: JSON and JUnit XML reports.
//! - [`state`]: the adapter's cell and store (CONF-4).
//! - [`suites`]: the cell and store suites: concurrent clients, SIGKILL and restart, histories
//!   judged by `cellar-model`'s `CasRegister`.
//! - [`sector`]: the sector suite: protocol probes and a crash-durability workload against a
//!   sector server on a Unix socket; [`sector_adapter`]: the Rust server with a planted bug.
//! - [`volume`]: the volume suite: syncs, cleanups and held modes across several volumes,
//!   SIGKILL and restart, every step judged by `cellar-model`'s `VolumeSpec`.
//!
//! Nothing here prints; the command line (`src/bin/cellar/conform.rs`) does.

pub mod adapter;
pub mod formats;
pub mod kinds;
pub mod process;
pub mod report;
pub mod run_vectors;
pub mod sector;
pub mod sector_adapter;
pub mod state;
pub mod suites;
pub mod vectors;
pub mod volume;
