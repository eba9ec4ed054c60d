//! Decoder error kinds (`specs/encoding.md`, ENC-5) and the helpers that map the
//! implementation's errors onto them.

use serde::{Deserialize, Serialize};

/// Why a decoder refused its input (ENC-5). The JSON form is the snake-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The input ends before the structure does.
    Truncated,
    /// Bytes are left after a complete structure.
    TrailingBytes,
    /// A fixed-size input has another length.
    BadLength,
    /// The magic bytes are wrong.
    BadMagic,
    /// A version this spec does not define.
    UnsupportedVersion,
    /// A CRC-32C does not match.
    BadChecksum,
    /// An AEAD tag or a CID does not verify.
    AuthFailed,
    /// An enum tag the variant table does not list.
    UnknownVariant,
    /// A field holds a forbidden value.
    InvalidValue,
    /// A value not in its canonical form.
    NonCanonical,
    /// A length, count or size over its limit.
    TooLarge,
    /// A text form without its prefix.
    BadPrefix,
    /// A text form with a character outside its alphabet.
    BadChar,
}

impl Kind {
    /// The snake-case name used in JSON.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A refusal: its kind and a line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The ENC-5 kind.
    pub kind: Kind,
    /// What was wrong.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// Result of a decode, encode or derive.
pub type Outcome<T> = Result<T, Failure>;

/// The kind of a postcard error; `custom` is the kind a serde custom error (an unknown enum
/// variant, or a validating deserializer) stands for in the caller's context.
pub fn postcard_kind(e: &postcard::Error, custom: Kind) -> Failure {
    let kind = match e {
        postcard::Error::DeserializeUnexpectedEnd => Kind::Truncated,
        postcard::Error::SerdeDeCustom => custom,
        _ => Kind::InvalidValue,
    };
    Failure::new(kind, e.to_string())
}

/// Decodes exactly one `T` from `bytes`: postcard's errors mapped, leftovers `trailing_bytes`.
pub fn take_exact<T: serde::de::DeserializeOwned>(bytes: &[u8], custom: Kind) -> Outcome<T> {
    let (v, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| postcard_kind(&e, custom))?;
    if !rest.is_empty() {
        return Err(Failure::new(Kind::TrailingBytes, format!("{} trailing bytes", rest.len())));
    }
    Ok(v)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// Parses lower- or upper-case hex.
pub fn unhex(s: &str) -> Outcome<Vec<u8>> {
    ::hex::decode(s).map_err(|e| Failure::new(Kind::InvalidValue, format!("bad hex: {e}")))
}

/// Parses hex of exactly `N` bytes.
pub fn unhex_array<const N: usize>(s: &str) -> Outcome<[u8; N]> {
    let v = unhex(s)?;
    v.try_into().map_err(|v: Vec<u8>| {
        Failure::new(Kind::BadLength, format!("{} bytes where {N} are needed", v.len()))
    })
}
