//! The Noise suite and where its randomness comes from (CH-1).
//!
//! Pattern `Noise_XXpsk0_25519_ChaChaPoly_BLAKE2s`: each side proves it holds its static key
//! (XX: both statics travel, encrypted) and that it knows the group's pre-shared key (psk0: the
//! PSK is mixed in before the first message, so a connector without it fails on message 1 and a
//! responder never answers it; the responder's static key never reaches such a connector).
//! Ephemeral and static keys are drawn through [`EntropyResolver`] from the injected
//! [`Entropy`], so the simulator's handshakes are deterministic; the primitives themselves are
//! snow's pure-Rust defaults.

use super::error::ChannelError;
use crate::env::Entropy;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::sync::Arc;

/// The Noise protocol name of every channel.
pub const NOISE_PATTERN: &str = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2s";
/// Prologue: binds the protocol and its version into the handshake hash, so a peer of another
/// version fails the handshake instead of misreading records.
pub const PROLOGUE: &[u8] = b"cellar 2026 channel v1";
/// Bytes of an X25519 key.
pub const KEY_BYTES: usize = 32;

/// snow's randomness, drawn from an injected [`Entropy`].
struct EntropyRandom(Arc<dyn Entropy>);

impl Random for EntropyRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

/// snow's default pure-Rust primitives with randomness from an injected [`Entropy`].
pub struct EntropyResolver {
    entropy: Arc<dyn Entropy>,
}

impl EntropyResolver {
    /// A resolver drawing from `entropy`.
    pub fn new(entropy: Arc<dyn Entropy>) -> Self {
        Self { entropy }
    }
}

impl CryptoResolver for EntropyResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(EntropyRandom(self.entropy.clone())))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// The parsed [`NOISE_PATTERN`].
pub fn params() -> Result<NoiseParams, ChannelError> {
    NOISE_PATTERN.parse().map_err(|e: snow::Error| ChannelError::Setup(e.to_string()))
}

/// A snow error during setup, as a [`ChannelError::Setup`].
pub fn setup(e: snow::Error) -> ChannelError {
    ChannelError::Setup(e.to_string())
}
