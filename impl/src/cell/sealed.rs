//! `SealedCell`: XChaCha20-Poly1305 over any cell.
//! TODO(helper: cells) — replace this stub.

use super::{CasOutcome, Cell, CellError};
use crate::env::Entropy;
use crate::secret::VolumeSecret;
use std::sync::Arc;

/// Bytes a sealed value adds to its plaintext (24-byte nonce + 16-byte tag + framing).
pub const SEAL_OVERHEAD_BYTES: usize = 24 + 16;

/// A cell whose contents are sealed under a key derived from the volume secret.
pub struct SealedCell<C> {
    inner: C,
    key: [u8; 32],
    entropy: Arc<dyn Entropy>,
}

impl<C: Cell> SealedCell<C> {
    /// Seals `inner` under `secret`'s cell key; nonces come from `entropy`.
    pub fn new(inner: C, secret: &VolumeSecret, entropy: Arc<dyn Entropy>) -> Self {
        Self { inner, key: secret.cell_key(), entropy }
    }
}

impl<C: Cell> Cell for SealedCell<C> {
    fn max_size_bytes(&self) -> usize {
        self.inner.max_size_bytes().saturating_sub(SEAL_OVERHEAD_BYTES)
    }
    fn read(&self) -> Result<Vec<u8>, CellError> {
        let _ = (&self.key, &self.entropy);
        unimplemented!()
    }
    fn cas(&self, _expected: &[u8], _new: &[u8]) -> Result<CasOutcome, CellError> {
        unimplemented!()
    }
}
