//! Small helpers to read the JSON forms of `specs/encoding.md` (ENC-4).

use crate::conform::kinds::{Failure, Kind, Outcome, unhex, unhex_array};
use serde_json::Value;

fn bad(message: String) -> Failure {
    Failure::new(Kind::InvalidValue, message)
}

/// `v[name]`, which must be present.
pub fn field<'a>(v: &'a Value, name: &str) -> Outcome<&'a Value> {
    v.get(name).ok_or_else(|| bad(format!("missing field {name:?}")))
}

/// `v[name]` as hex bytes.
pub fn bytes(v: &Value, name: &str) -> Outcome<Vec<u8>> {
    unhex(field(v, name)?.as_str().ok_or_else(|| bad(format!("{name} is not a hex string")))?)
}

/// `v[name]` as hex of exactly `N` bytes.
pub fn array<const N: usize>(v: &Value, name: &str) -> Outcome<[u8; N]> {
    unhex_array(field(v, name)?.as_str().ok_or_else(|| bad(format!("{name} is not hex")))?)
}

/// `v[name]` as an unsigned integer.
pub fn uint(v: &Value, name: &str) -> Outcome<u64> {
    field(v, name)?.as_u64().ok_or_else(|| bad(format!("{name} is not an unsigned integer")))
}

/// `v[name]` as an unsigned integer that fits `T`.
pub fn uint_as<T: TryFrom<u64>>(v: &Value, name: &str) -> Outcome<T> {
    T::try_from(uint(v, name)?).map_err(|_| bad(format!("{name} is out of range")))
}

/// `v[name]` as a string.
pub fn string(v: &Value, name: &str) -> Outcome<String> {
    field(v, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{name} is not a string")))
}

/// `v[name]` as an array.
pub fn list<'a>(v: &'a Value, name: &str) -> Outcome<&'a Vec<Value>> {
    field(v, name)?.as_array().ok_or_else(|| bad(format!("{name} is not an array")))
}

/// `v[name]`, or `default` when absent.
pub fn uint_or(v: &Value, name: &str, default: u64) -> Outcome<u64> {
    if v.get(name).is_none() { Ok(default) } else { uint(v, name) }
}
