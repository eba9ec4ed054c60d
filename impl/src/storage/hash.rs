//! `Hash`: the 32-byte BLAKE3-256 content address of a blob.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Length of a [`Hash`] in bytes.
pub const HASH_SIZE_BYTES: usize = 32;

/// BLAKE3-256 of a blob's bytes: the blob's address in every [`crate::storage::store::Store`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash(pub [u8; HASH_SIZE_BYTES]);

impl Hash {
    /// The smallest hash (all zero bytes): the start of a full `list` range.
    pub const ZERO: Hash = Hash([0; HASH_SIZE_BYTES]);
    /// The largest hash (all 0xff bytes).
    pub const MAX: Hash = Hash([0xff; HASH_SIZE_BYTES]);

    /// Hashes `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE_BYTES] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; HASH_SIZE_BYTES];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }

    /// The next hash in ascending order, or `None` after [`Hash::MAX`]. Used to page `list`.
    pub fn successor(&self) -> Option<Hash> {
        let mut out = self.0;
        for byte in out.iter_mut().rev() {
            if *byte == 0xff {
                *byte = 0;
            } else {
                *byte += 1;
                return Some(Hash(out));
            }
        }
        None
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_orders_and_wraps() {
        let h = Hash([0xff; 32]);
        assert_eq!(h.successor(), None);
        let mut b = [0u8; 32];
        b[31] = 0xff;
        let mut want = [0u8; 32];
        want[30] = 1;
        assert_eq!(Hash(b).successor(), Some(Hash(want)));
        assert!(Hash(b) < Hash(want));
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let h = Hash::of(b"cellar");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
        assert_eq!(Hash::from_hex(&"0".repeat(63)), None);
    }
}
