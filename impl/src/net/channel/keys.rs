//! The keys a channel needs: the node's static X25519 key pair (kept in its data directory) and
//! the group's pre-shared key, derived from the group secret with its own purpose string (CH-1).
//!
//! Why a derived PSK: the group secret also salts refs and keys the cell seal; deriving the PSK
//! with BLAKE3 `derive_key` and [`PURPOSE_CHANNEL_PSK`] keeps the uses independent, and the
//! secret itself never crosses the wire (the PSK is only mixed into the handshake hash).
//!
//! Never: print a private key or a PSK (their `Debug` is redacted); create a key file others
//! can read (mode 0600).

use super::crypto::{EntropyResolver, KEY_BYTES, params, setup};
use super::error::ChannelError;
use crate::env::Entropy;
use crate::storage::secret::VolumeSecret;
use snow::params::DHChoice;
use snow::resolvers::CryptoResolver;
use std::path::Path;
use std::sync::Arc;

/// Purpose string of the channel PSK (BLAKE3 `derive_key` over the group secret).
pub const PURPOSE_CHANNEL_PSK: &str = "cellar 2026 channel psk v1";

/// The group's pre-shared key: knowing it is what makes a peer a member.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelPsk([u8; 32]);

impl std::fmt::Debug for ChannelPsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelPsk(..)")
    }
}

impl ChannelPsk {
    /// The PSK of the group whose secret is `secret`.
    pub fn from_secret(secret: &VolumeSecret) -> Self {
        Self(secret.derive(PURPOSE_CHANNEL_PSK))
    }

    /// Raw PSK bytes (tests, the simulator's attacker with a wrong key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The PSK bytes handed to the Noise handshake.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A static X25519 key pair: the node's long-term identity on the channel.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    private: [u8; KEY_BYTES],
    public: [u8; KEY_BYTES],
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticKeys {{ public: {} }}", hex::encode(self.public))
    }
}

impl StaticKeys {
    /// A fresh key pair drawn from `entropy`.
    ///
    /// # Errors
    /// [`ChannelError::Setup`] if the Noise library cannot build the key (never in practice).
    pub fn generate(entropy: Arc<dyn Entropy>) -> Result<Self, ChannelError> {
        let builder =
            snow::Builder::with_resolver(params()?, Box::new(EntropyResolver::new(entropy)));
        let kp = builder.generate_keypair().map_err(setup)?;
        let private = kp.private.try_into().map_err(|_| ChannelError::Setup("key size".into()))?;
        Self::from_private(private)
    }

    /// The key pair of `private` (its public half computed).
    ///
    /// # Errors
    /// [`ChannelError::Setup`] if the Noise library has no X25519 (never in practice).
    pub fn from_private(private: [u8; KEY_BYTES]) -> Result<Self, ChannelError> {
        let resolver = EntropyResolver::new(Arc::new(crate::env::DetEntropy::new(0)));
        let mut dh = resolver
            .resolve_dh(&DHChoice::Curve25519)
            .ok_or_else(|| ChannelError::Setup("no X25519".into()))?;
        dh.set(&private);
        let public =
            dh.pubkey().try_into().map_err(|_| ChannelError::Setup("public key size".into()))?;
        Ok(Self { private, public })
    }

    /// The private key (handed to the handshake, and to [`StaticKeys::save`]).
    pub fn private(&self) -> &[u8; KEY_BYTES] {
        &self.private
    }

    /// The public key: what the peer learns at the end of a handshake.
    pub fn public(&self) -> &[u8; KEY_BYTES] {
        &self.public
    }

    /// Loads the key pair from `path` (64 hex digits of the private key), or creates one from
    /// `entropy` and writes it there with mode 0600 if the file does not exist.
    ///
    /// # Errors
    /// An unreadable or malformed key file, or one that cannot be created.
    pub fn load_or_create(path: &Path, entropy: Arc<dyn Entropy>) -> Result<Self, KeyFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| KeyFileError::Malformed)?;
                let private: [u8; KEY_BYTES] =
                    bytes.try_into().map_err(|_| KeyFileError::Malformed)?;
                Ok(Self::from_private(private)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = Self::generate(entropy)?;
                keys.save(path)?;
                Ok(keys)
            }
            Err(e) => Err(KeyFileError::Io(e.to_string())),
        }
    }

    /// Writes the private key to a new file at `path`, readable by its owner only.
    ///
    /// # Errors
    /// The file exists already or cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| KeyFileError::Io(e.to_string()))?;
        writeln!(f, "{}", hex::encode(self.private))
            .and_then(|()| f.sync_all())
            .map_err(|e| KeyFileError::Io(e.to_string()))
    }
}

/// A key file could not be loaded or created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not 64 hex digits.
    #[error("key file is not 64 hex digits")]
    Malformed,
    /// Reading or writing failed.
    #[error("key file: {0}")]
    Io(String),
    /// The key could not be built.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}
