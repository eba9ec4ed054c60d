//! Every format of `specs/encoding.md` (ENC-6), decoded, encoded and evaluated by the Rust
//! implementation, in the JSON forms of ENC-4 and with the error kinds of ENC-5. The vector
//! generator and the Rust adapter (`cellar conform adapter`) both answer through here.

mod db;
pub mod json;
mod proto;
mod sector;
mod storage;

use crate::conform::kinds::{Failure, Kind, Outcome};
use serde_json::Value;

/// Decodes `bytes` as `format` with `params`.
pub fn decode(format: &str, params: &Value, bytes: &[u8]) -> Outcome<Value> {
    storage::decode(format, params, bytes)
        .or_else(|| sector::decode(format, params, bytes))
        .or_else(|| proto::decode(format, bytes))
        .or_else(|| db::decode(format, bytes))
        .unwrap_or_else(|| Err(unknown(format)))
}

/// Encodes the JSON form `value` as `format` with `params` (the canonical encoding).
pub fn encode(format: &str, params: &Value, value: &Value) -> Outcome<Vec<u8>> {
    storage::encode(format, params, value)
        .or_else(|| sector::encode(format, params, value))
        .unwrap_or_else(|| Err(unknown(format)))
}

/// Evaluates the function `name` (e.g. `ref.post`) on `input`.
pub fn derive(name: &str, input: &Value) -> Outcome<Value> {
    storage::derive(name, input).unwrap_or_else(|| Err(unknown(name)))
}

/// Whether [`encode`] knows `format`.
pub fn can_encode(format: &str) -> bool {
    ENCODABLE.contains(&format)
}

/// Formats with a canonical encoder here.
const ENCODABLE: &[&str] = &[
    "ref.binary",
    "ref.text",
    "cell.file",
    "volume.header",
    "file.index",
    "sector.superblock",
    "sector.zone_header",
    "sector.record_header",
    "sector.commit_payload",
];

fn unknown(name: &str) -> Failure {
    Failure::new(Kind::InvalidValue, format!("unknown format or function {name:?}"))
}

pub use db::{clock_json, key_state_json};
pub use proto::{request_json, response_json};
pub use sector::header_json;
