//! `cellar conform`: a language-agnostic conformance suite (`specs/conform.md`).
//!
//! - [`kinds`]: decoder error kinds (`specs/encoding.md`, ENC-5).
//! - [`formats`]: every format decoded, encoded and evaluated by the Rust implementation in
//!   the JSON forms of ENC-4 (what the vectors pin and what the Rust adapter answers).
//! - [`vectors`]: the Wycheproof-style vector files of `specs/vectors/`, their generator and
//!   their checker.
//!
//! Nothing here prints; the command line (`src/bin/cellar/conform.rs`) does.

pub mod formats;
pub mod kinds;
pub mod vectors;
