//! `VolumeSecret`: the 32-byte root secret of a volume, from which every key is derived with
//! BLAKE3 `derive_key` and a purpose string, so no two uses ever share a key.

use crate::env::{Entropy, random_array};

/// Purpose string for the key that seals a volume's cell ([`crate::storage::cell::SealedCell`]).
pub const PURPOSE_CELL_KEY: &str = "cellar 2026 volume cell seal key v1";
/// Purpose string for the salt from which refs derive their DEKs ([`crate::storage::refs`]).
pub const PURPOSE_REF_SALT: &str = "cellar 2026 volume ref salt v1";

/// A volume's root secret. Never written anywhere but the volume's own secret file.
#[derive(Clone, PartialEq, Eq)]
pub struct VolumeSecret([u8; 32]);

impl std::fmt::Debug for VolumeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VolumeSecret(..)")
    }
}

impl VolumeSecret {
    /// Wraps existing secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh secret drawn from `entropy`.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        Self(random_array(entropy))
    }

    /// The raw secret bytes (to persist them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A 32-byte key for `purpose`, independent of every other purpose's key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        blake3::derive_key(purpose, &self.0)
    }

    /// The key that seals this volume's cell.
    pub fn cell_key(&self) -> [u8; 32] {
        self.derive(PURPOSE_CELL_KEY)
    }

    /// The salt this volume's refs derive their DEKs from.
    pub fn ref_salt(&self) -> [u8; 32] {
        self.derive(PURPOSE_REF_SALT)
    }
}
