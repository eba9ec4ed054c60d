//! Refs: 64-byte encrypted references (CID ‖ DEK) with convergent encryption (`specs/refs.md`).
//!
//! A [`Ref`] names a blob *and* carries the key that decrypts it: whoever holds a ref can read
//! the plaintext, whoever holds only the store sees ciphertext. This module owns
//!
//! - the byte form (REF-1): `cid[32] ‖ dek[32]`, [`Ref::to_bytes`] / [`Ref::from_bytes`];
//! - the DEK derivation (REF-2): `dek = BLAKE3-keyed(derive_key(`[`DEK_PURPOSE`]`, salt), plaintext)`;
//! - the encryption (REF-3): ChaCha20-Poly1305 under the DEK with the all-zero nonce
//!   [`REF_NONCE`], empty associated data; `cid = BLAKE3(ciphertext ‖ tag)`;
//! - the read check (REF-4): [`decrypt`] checks the CID, then the tag; corruption is a
//!   [`RefError::Corrupt`], never data;
//! - the text form (REF-5): `cellar:ref:v1:` + 128 lower-case hex digits ([`Ref`]'s
//!   `Display`/`FromStr`);
//! - the serde form (REF-6): postcard encodes a ref as exactly its 64 bytes; human-readable
//!   formats (JSON) use the text form;
//! - the size limit (REF-7): [`post`] refuses a plaintext whose ciphertext would not fit one
//!   blob, [`encrypt`] one beyond the AEAD's limit, before encrypting anything.
//!
//! What it must never do: encrypt two different plaintexts under one DEK (the fixed nonce is
//! safe only because the DEK is a function of the plaintext, REF-3), return bytes that failed
//! the CID or tag check, or print a DEK in `Debug` output.

use crate::Hash;
use crate::storage::hash::HASH_SIZE_BYTES;
use crate::storage::store::{Store, StoreError};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use std::fmt;
use std::str::FromStr;

/// Length of a ref in bytes: CID then DEK (REF-1).
pub const REF_SIZE_BYTES: usize = 64;
/// Length of a data encryption key in bytes.
pub const DEK_SIZE_BYTES: usize = 32;
/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_SIZE_BYTES: usize = 16;
/// BLAKE3 `derive_key` context for the key under which DEKs are derived from a salt (REF-2).
/// Changing it changes every ref: it is part of the format.
pub const DEK_PURPOSE: &str = "cellar 2026 ref dek v1";
/// The fixed ChaCha20-Poly1305 nonce (REF-3): all zero, safe because a DEK encrypts one
/// plaintext only.
pub const REF_NONCE: [u8; 12] = [0; 12];
/// Prefix of the text form of a ref (REF-5).
pub const REF_TEXT_PREFIX: &str = "cellar:ref:v1:";
/// Number of hex digits after [`REF_TEXT_PREFIX`].
pub const REF_TEXT_HEX_CHARS: usize = REF_SIZE_BYTES * 2;
/// Length of the whole text form in bytes (it is ASCII).
pub const REF_TEXT_SIZE_BYTES: usize = REF_TEXT_PREFIX.len() + REF_TEXT_HEX_CHARS;
/// Largest plaintext ChaCha20-Poly1305 can encrypt under one nonce: fewer than 2^32 − 1
/// 64-byte blocks (the 32-bit block counter).
pub const AEAD_PLAINTEXT_SIZE_MAX_BYTES: u64 = 64 * (u32::MAX as u64 - 1) - 1;

// Under RFC 8439's P_MAX (2^38 − 64 bytes), the most one nonce may encrypt.
const _: () = assert!(AEAD_PLAINTEXT_SIZE_MAX_BYTES < (1u64 << 38) - 64);
const _: () = assert!(REF_SIZE_BYTES == HASH_SIZE_BYTES + DEK_SIZE_BYTES);
const _: () = assert!(REF_TEXT_PREFIX.len() == 14 && REF_TEXT_SIZE_BYTES == 142);
const _: () = assert!(REF_TEXT_SIZE_BYTES != REF_SIZE_BYTES, "decode_ref tells forms apart");

/// An encrypted reference: the hash of the ciphertext and the key that decrypts it (REF-1).
///
/// `Debug` hides the DEK; `Display` (the text form) does not, because the text form *is* the
/// capability to read the data: treat it like a password.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref {
    /// BLAKE3-256 of the ciphertext: the blob's address in the store.
    pub cid: Hash,
    /// The data encryption key.
    pub dek: [u8; DEK_SIZE_BYTES],
}

/// Why a byte or text form of a ref was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseRefError {
    /// The binary form is not exactly 64 bytes.
    #[error("a binary ref is {REF_SIZE_BYTES} bytes, got {actual_bytes}")]
    WrongByteLength {
        /// Length that was given.
        actual_bytes: usize,
    },
    /// The text does not start with `cellar:ref:v1:`.
    #[error("a text ref starts with {REF_TEXT_PREFIX:?}, found {found:?}")]
    MissingPrefix {
        /// The start of the text (at most as long as the prefix).
        found: String,
    },
    /// A character after the prefix is not a lower-case hex digit.
    #[error("bad character {found:?} at position {position} of the text ref (want 0-9 or a-f)")]
    BadChar {
        /// Byte offset of the character in the whole text, prefix included.
        position: usize,
        /// The character found there.
        found: char,
    },
    /// The hex part is not exactly 128 digits long.
    #[error("a text ref has {REF_TEXT_HEX_CHARS} hex digits after the prefix, got {actual_chars}")]
    WrongTextLength {
        /// Number of hex digits found.
        actual_chars: usize,
    },
    /// [`decode_ref`] input that is neither 64 bytes nor UTF-8 text.
    #[error("{len_bytes} bytes are neither a {REF_SIZE_BYTES}-byte binary ref nor a text ref")]
    Unrecognised {
        /// Length of the input.
        len_bytes: usize,
    },
    /// postcard refused the binary form.
    #[error("binary ref does not decode: {0}")]
    Binary(String),
}

/// Errors of ref operations. Corruption is never folded into store or parse errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The store failed (I/O, or the blob is not there). Store-detected corruption is reported
    /// as [`RefError::Corrupt`] instead.
    #[error(transparent)]
    Store(StoreError),
    /// The ciphertext does not hash to the CID, or its tag does not verify under the DEK
    /// (REF-4).
    #[error("ref {cid} is corrupt: {detail}")]
    Corrupt {
        /// The CID that was asked for.
        cid: Hash,
        /// What was wrong.
        detail: String,
    },
    /// A byte or text form of a ref was malformed.
    #[error("malformed ref: {0}")]
    Parse(#[from] ParseRefError),
    /// The plaintext is larger than one blob can hold.
    #[error("plaintext of {size_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    TooLarge {
        /// Size that was offered.
        size_bytes: u64,
        /// The maximum.
        max_bytes: u64,
    },
}

impl From<StoreError> for RefError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { hash, detail } => {
                RefError::Corrupt { cid: hash, detail: format!("store: {detail}") }
            }
            other => RefError::Store(other),
        }
    }
}

impl Ref {
    /// The byte form: `cid ‖ dek` (REF-1).
    pub fn to_bytes(&self) -> [u8; REF_SIZE_BYTES] {
        let mut out = [0u8; REF_SIZE_BYTES];
        let (cid, dek) = out.split_at_mut(HASH_SIZE_BYTES);
        cid.copy_from_slice(&self.cid.0);
        dek.copy_from_slice(&self.dek);
        out
    }

    /// Parses the byte form; anything but exactly 64 bytes is
    /// [`ParseRefError::WrongByteLength`]. Every 64-byte string is a syntactically valid ref.
    pub fn from_bytes(bytes: &[u8]) -> Result<Ref, RefError> {
        let array: &[u8; REF_SIZE_BYTES] = bytes
            .try_into()
            .map_err(|_| ParseRefError::WrongByteLength { actual_bytes: bytes.len() })?;
        Ok(Ref::from_array(array))
    }

    /// The ref whose byte form is `bytes`.
    pub fn from_array(bytes: &[u8; REF_SIZE_BYTES]) -> Ref {
        let (cid, dek) = bytes.split_at(HASH_SIZE_BYTES);
        let mut r = Ref { cid: Hash::ZERO, dek: [0; DEK_SIZE_BYTES] };
        r.cid.0.copy_from_slice(cid);
        r.dek.copy_from_slice(dek);
        r
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ref").field("cid", &self.cid).field("dek", &"<redacted>").finish()
    }
}

/// The text form (REF-5): `cellar:ref:v1:` + hex(cid) + hex(dek), lower case. It contains the
/// DEK.
impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REF_TEXT_PREFIX}{}", hex::encode(self.to_bytes()))
    }
}

impl FromStr for Ref {
    type Err = ParseRefError;

    /// Parses the text form (REF-5). Strict: no whitespace, no upper case, so every ref has
    /// exactly one text form.
    fn from_str(s: &str) -> Result<Ref, ParseRefError> {
        let Some(digits) = s.strip_prefix(REF_TEXT_PREFIX) else {
            let found: String = s.chars().take(REF_TEXT_PREFIX.len()).collect();
            return Err(ParseRefError::MissingPrefix { found });
        };
        // Planted bug refs:text-accepts-upper-case: upper-case digits pass (the hex decoder
        // takes them), so a ref has two text forms (REF-5).
        let upper = crate::bugs::active("refs:text-accepts-upper-case");
        if let Some((i, found)) = digits
            .char_indices()
            .find(|(_, c)| !(matches!(c, '0'..='9' | 'a'..='f') || upper && matches!(c, 'A'..='F')))
        {
            return Err(ParseRefError::BadChar { position: REF_TEXT_PREFIX.len() + i, found });
        }
        if digits.len() != REF_TEXT_HEX_CHARS {
            return Err(ParseRefError::WrongTextLength { actual_chars: digits.len() });
        }
        let mut bytes = [0u8; REF_SIZE_BYTES];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|e| ParseRefError::Binary(format!("hex: {e}")))?;
        Ok(Ref::from_array(&bytes))
    }
}

/// REF-6: binary formats (postcard) get the 64 bytes as a fixed-size tuple, so postcard writes
/// exactly `to_bytes()` with no length prefix; human-readable formats (JSON) get the text form.
impl serde::Serialize for Ref {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        if s.is_human_readable() {
            return s.collect_str(self);
        }
        let mut t = s.serialize_tuple(REF_SIZE_BYTES)?;
        for b in &self.to_bytes() {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> serde::Deserialize<'de> for Ref {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ref, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(RefVisitor)
        } else {
            d.deserialize_tuple(REF_SIZE_BYTES, RefVisitor)
        }
    }
}

struct RefVisitor;

impl<'de> serde::de::Visitor<'de> for RefVisitor {
    type Value = Ref;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REF_SIZE_BYTES} ref bytes or a {REF_TEXT_PREFIX}… text ref")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Ref, E> {
        s.parse().map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Ref, A::Error> {
        let mut bytes = [0u8; REF_SIZE_BYTES];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        Ok(Ref::from_array(&bytes))
    }
}

/// Decodes either form of a ref, told apart by length alone: exactly 64 bytes is the postcard
/// binary form (REF-6), anything else must be the 142-byte text form (REF-5). The forms never
/// share a length, so every ref has exactly one binary and one text encoding and each decodes
/// back to it. Non-UTF-8 input of another length is [`ParseRefError::Unrecognised`].
pub fn decode_ref(bytes: &[u8]) -> Result<Ref, RefError> {
    if bytes.len() == REF_SIZE_BYTES {
        let (r, rest) = postcard::take_from_bytes::<Ref>(bytes)
            .map_err(|e| ParseRefError::Binary(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ParseRefError::WrongByteLength { actual_bytes: bytes.len() }.into());
        }
        return Ok(r);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.parse()?),
        Err(_) => Err(ParseRefError::Unrecognised { len_bytes: bytes.len() }.into()),
    }
}

/// The key under which DEKs are derived from `salt` (REF-2).
fn dek_derivation_key(salt: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(DEK_PURPOSE, salt)
}

/// The DEK of `plaintext` under `salt` (REF-2): equal plaintexts under one salt get equal DEKs
/// (convergence), anything else gets independent-looking keys.
pub fn derive_dek(salt: &[u8; 32], plaintext: &[u8]) -> [u8; DEK_SIZE_BYTES] {
    *blake3::keyed_hash(&dek_derivation_key(salt), plaintext).as_bytes()
}

fn cipher(dek: &[u8; DEK_SIZE_BYTES]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(dek))
}

/// REF-7: beyond the AEAD's block-counter limit, refused before anything is encrypted. Its own
/// function so the bound is tested at and one past it without 256 GiB of plaintext.
fn check_aead_size(size_bytes: u64) -> Result<(), RefError> {
    if size_bytes > AEAD_PLAINTEXT_SIZE_MAX_BYTES {
        return Err(RefError::TooLarge { size_bytes, max_bytes: AEAD_PLAINTEXT_SIZE_MAX_BYTES });
    }
    Ok(())
}

/// Encrypts `plaintext` convergently (REF-2, REF-3): returns its ref and the ciphertext
/// (`ChaCha20(plaintext) ‖ tag`, 16 bytes longer than the plaintext). Pure: no store involved.
pub fn encrypt(salt: &[u8; 32], plaintext: &[u8]) -> Result<(Ref, Vec<u8>), RefError> {
    let size_bytes = plaintext.len() as u64;
    check_aead_size(size_bytes)?;
    let dek = derive_dek(salt, plaintext);
    let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_SIZE_BYTES);
    ciphertext.extend_from_slice(plaintext);
    // REF-3: the fixed nonce is safe because `dek` is derived from this very plaintext.
    let tag = cipher(&dek)
        .encrypt_in_place_detached(Nonce::from_slice(&REF_NONCE), b"", &mut ciphertext)
        .map_err(|_| RefError::TooLarge { size_bytes, max_bytes: AEAD_PLAINTEXT_SIZE_MAX_BYTES })?;
    ciphertext.extend_from_slice(&tag);
    let cid = Hash::of(&ciphertext);
    assert_eq!(
        ciphertext.len(),
        plaintext.len() + TAG_SIZE_BYTES,
        "REF-3: ciphertext = body ‖ tag"
    );
    Ok((Ref { cid, dek }, ciphertext))
}

/// Decrypts `ciphertext` with `r` (REF-4): first checks that it hashes to `r.cid`, then that its
/// tag verifies under `r.dek`. Either failure is [`RefError::Corrupt`]; no unverified byte is
/// ever returned.
pub fn decrypt(r: &Ref, ciphertext: &[u8]) -> Result<Vec<u8>, RefError> {
    let corrupt = |detail: String| RefError::Corrupt { cid: r.cid, detail };
    let actual = Hash::of(ciphertext);
    if actual != r.cid && !crate::bugs::active("refs:skip-cid-check") {
        return Err(corrupt(format!("ciphertext hashes to {actual}")));
    }
    let Some(body_len) = ciphertext.len().checked_sub(TAG_SIZE_BYTES) else {
        return Err(corrupt(format!(
            "ciphertext of {} bytes is shorter than the {TAG_SIZE_BYTES}-byte tag",
            ciphertext.len()
        )));
    };
    let (body, tag) = ciphertext.split_at(body_len);
    let mut plaintext = body.to_vec();
    let nonce = Nonce::from_slice(&REF_NONCE);
    if crate::bugs::active("refs:skip-tag-check") {
        // Mutant: ChaCha20 is its own inverse, so "encrypting" the body yields the plaintext
        // without looking at the tag.
        let _ = cipher(&r.dek).encrypt_in_place_detached(nonce, b"", &mut plaintext);
        return Ok(plaintext);
    }
    cipher(&r.dek)
        .decrypt_in_place_detached(nonce, b"", &mut plaintext, Tag::from_slice(tag))
        .map_err(|_| corrupt("authentication tag does not verify under the DEK".to_owned()))?;
    Ok(plaintext)
}

/// The largest plaintext [`post`] accepts into `store`: one blob minus the tag.
pub fn max_plaintext_size_bytes(store: &dyn Store) -> usize {
    store.max_blob_size_bytes().saturating_sub(TAG_SIZE_BYTES)
}

/// Encrypts `plaintext` under `salt` and posts the ciphertext; returns its ref. A plaintext over
/// [`max_plaintext_size_bytes`] is [`RefError::TooLarge`] before anything is encrypted or written
/// (REF-7).
pub fn post(store: &dyn Store, salt: &[u8; 32], plaintext: &[u8]) -> Result<Ref, RefError> {
    // REF-7: the ciphertext (plaintext + tag) must fit one blob; check before encrypting.
    let max_bytes = max_plaintext_size_bytes(store);
    if plaintext.len() > max_bytes {
        return Err(RefError::TooLarge {
            size_bytes: plaintext.len() as u64,
            max_bytes: max_bytes as u64,
        });
    }
    let (r, ciphertext) = encrypt(salt, plaintext)?;
    let stored = store.post(&ciphertext)?;
    if stored != r.cid {
        return Err(RefError::Corrupt {
            cid: r.cid,
            detail: format!("store filed the ciphertext under {stored}"),
        });
    }
    Ok(r)
}

/// Fetches the ciphertext of `r` and decrypts it (REF-4). A missing blob is
/// `RefError::Store(StoreError::NotFound)`; damaged bytes are [`RefError::Corrupt`].
pub fn get(store: &dyn Store, r: &Ref) -> Result<Vec<u8>, RefError> {
    let ciphertext = store.get(&r.cid)?;
    decrypt(r, &ciphertext)
}

#[cfg(all(test, not(loom)))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests report failure by panicking"
)]
mod tests {
    use super::*;
    use crate::storage::store::MemStore;

    const SALT: [u8; 32] = [7; 32];

    #[test]
    fn post_get_round_trips_and_converges() {
        let s = MemStore::new();
        let a = post(&s, &SALT, b"hello").unwrap();
        assert_eq!(get(&s, &a).unwrap(), b"hello");
        assert_eq!(post(&s, &SALT, b"hello").unwrap(), a, "REF-2: convergent");
        assert_ne!(post(&s, &[8; 32], b"hello").unwrap(), a, "REF-2: salt separates");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn debug_hides_the_dek() {
        let r = Ref { cid: Hash::ZERO, dek: [0xab; 32] };
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("abab"), "{dbg}");
        assert!(dbg.contains("redacted"));
        assert!(r.to_string().contains(&"ab".repeat(32)));
    }

    #[test]
    fn postcard_is_exactly_the_64_bytes() {
        let r = Ref { cid: Hash::of(b"c"), dek: [3; 32] };
        let enc = postcard::to_allocvec(&r).unwrap();
        assert_eq!(enc, r.to_bytes(), "REF-6");
        assert_eq!(postcard::from_bytes::<Ref>(&enc).unwrap(), r);
        assert!(postcard::from_bytes::<Ref>(&enc[..63]).is_err());
    }

    #[test]
    fn decode_ref_tells_the_two_forms_apart_by_length_ref5_ref6() {
        let (r, _) = encrypt(&[7; 32], b"decode me").unwrap();
        let (bytes, text) = (r.to_bytes(), r.to_string());
        assert_eq!(decode_ref(&bytes).unwrap(), r, "the 64-byte binary form");
        assert_eq!(decode_ref(text.as_bytes()).unwrap(), r, "the 142-byte text form");
        assert!(decode_ref(&bytes[..REF_SIZE_BYTES - 1]).is_err());
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(decode_ref(&long).is_err());
        assert!(decode_ref(&text.as_bytes()[..REF_TEXT_SIZE_BYTES - 1]).is_err());
    }

    #[test]
    fn a_json_ref_of_the_wrong_type_names_both_forms() {
        let err = serde_json::from_str::<Ref>("5").unwrap_err().to_string();
        assert!(err.contains("64 ref bytes or a cellar:ref:v1:"), "{err}");
    }

    #[test]
    fn a_ciphertext_the_ref_does_not_name_is_corrupt_even_with_a_valid_tag_ref4() {
        // The tag alone would accept it (same DEK): only the CID check refuses it.
        let (r, ciphertext) = encrypt(&[1; 32], b"attack at dawn").unwrap();
        let other = Ref { cid: Hash::of(b"some other blob"), dek: r.dek };
        let err = decrypt(&other, &ciphertext).unwrap_err();
        assert!(matches!(&err, RefError::Corrupt { detail, .. } if detail.contains("hashes to")));
    }

    #[test]
    fn the_aead_limit_is_the_specs_number_ref7() {
        // specs/refs.md REF-7: 64 × (2³² − 2) − 1 bytes, under RFC 8439's P_MAX (2³⁸ − 64).
        // Too large to test by allocation, so the constant itself is pinned: an
        // implementation in another language must refuse from the same byte.
        assert_eq!(AEAD_PLAINTEXT_SIZE_MAX_BYTES, 274_877_906_815);
        check_aead_size(AEAD_PLAINTEXT_SIZE_MAX_BYTES).unwrap();
        let err = check_aead_size(AEAD_PLAINTEXT_SIZE_MAX_BYTES + 1).unwrap_err();
        assert!(matches!(err, RefError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn too_large_is_refused_before_encrypting() {
        let s = MemStore::with_max_blob_size(20);
        assert_eq!(max_plaintext_size_bytes(&s), 4);
        assert!(post(&s, &SALT, &[0; 4]).is_ok());
        assert!(matches!(post(&s, &SALT, &[0; 5]), Err(RefError::TooLarge { size_bytes: 5, .. })));
    }

    #[test]
    fn parse_errors_are_typed() {
        let r = Ref { cid: Hash::of(b"x"), dek: [1; 32] };
        let text = r.to_string();
        assert_eq!(text.parse::<Ref>(), Ok(r));
        assert!(matches!("ref:".parse::<Ref>(), Err(ParseRefError::MissingPrefix { .. })));
        assert_eq!(
            text[..text.len() - 1].parse::<Ref>(),
            Err(ParseRefError::WrongTextLength { actual_chars: 127 })
        );
        let upper = format!("{REF_TEXT_PREFIX}{}", &text[14..].to_uppercase());
        assert!(matches!(upper.parse::<Ref>(), Err(ParseRefError::BadChar { position: 14.., .. })));
        let mut bad = text.clone();
        bad.replace_range(20..21, "g");
        assert_eq!(bad.parse::<Ref>(), Err(ParseRefError::BadChar { position: 20, found: 'g' }));
        assert!(matches!(
            Ref::from_bytes(&[0; 63]),
            Err(RefError::Parse(ParseRefError::WrongByteLength { actual_bytes: 63 }))
        ));
    }

    #[test]
    fn json_uses_the_text_form() {
        let r = Ref { cid: Hash::of(b"j"), dek: [9; 32] };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{r}\""));
        assert_eq!(serde_json::from_str::<Ref>(&json).unwrap(), r);
    }
}
