//! Refs: 64-byte encrypted references (CID ‖ DEK), convergent encryption (`specs/refs.md`).
//! TODO(helper: refs) — replace this stub.

use crate::Hash;
use crate::store::{Store, StoreError};

/// Length of a ref in bytes.
pub const REF_SIZE_BYTES: usize = 64;

/// An encrypted reference: the hash of the ciphertext and the key that decrypts it.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Ref {
    /// BLAKE3-256 of the ciphertext: the blob's address in the store.
    pub cid: Hash,
    /// The data encryption key.
    pub dek: [u8; 32],
}

/// Errors of ref operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Encrypts and posts `plaintext`.
pub fn post(_store: &dyn Store, _salt: &[u8; 32], _plaintext: &[u8]) -> Result<Ref, RefError> {
    unimplemented!()
}

/// Fetches and decrypts.
pub fn get(_store: &dyn Store, _r: &Ref) -> Result<Vec<u8>, RefError> {
    unimplemented!()
}

impl Ref {
    /// Parses the 64-byte form.
    pub fn from_bytes(_b: &[u8]) -> Result<Ref, RefError> {
        unimplemented!()
    }
    /// The 64-byte form.
    pub fn to_bytes(&self) -> [u8; 64] {
        unimplemented!()
    }
}

/// Largest plaintext.
pub fn max_plaintext_size_bytes(store: &dyn Store) -> usize {
    store.max_blob_size_bytes() - 16
}

impl std::str::FromStr for Ref {
    type Err = RefError;
    fn from_str(_s: &str) -> Result<Ref, RefError> {
        unimplemented!()
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        unimplemented!()
    }
}
