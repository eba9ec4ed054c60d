//! The gossip wire format (`specs/gossip-wire.md`, GW-1..GW-5): one postcard-encoded
//! [`Frame`] per message, size-checked before decoding, every count bounded.

use crate::Hash;
use crate::db::merge::VectorClock;
use crate::storage::refs::Ref;
use serde::{Deserialize, Serialize};

/// Wire format version (GW-1).
pub const WIRE_VERSION: u8 = 1;
/// Largest encoded message accepted or sent, in bytes (GW-2).
pub const MESSAGE_SIZE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most CIDs in one `Want` (GW-3).
pub const WANT_CIDS_MAX: usize = 4096;
/// Most blobs in one `Objects` (GW-3).
pub const OBJECTS_BLOBS_MAX: usize = 1024;
/// A sender stops adding blobs to an `Objects` message once it holds this many bytes (GW-3).
pub const OBJECTS_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

const _: () = assert!(
    OBJECTS_BATCH_BYTES_MAX + crate::storage::store::BLOB_SIZE_MAX_BYTES_DEFAULT + 1024
        < MESSAGE_SIZE_MAX_BYTES
);
const _: () = assert!(WANT_CIDS_MAX * 40 < MESSAGE_SIZE_MAX_BYTES);

/// A gossip message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "My head is this snapshot, my clock is this." (GW-4)
    Announce {
        /// The sender's head snapshot.
        head: Ref,
        /// The head snapshot's clock.
        clock: VectorClock,
    },
    /// "Send me these blobs." Only blobs the receiver lacks are ever asked for.
    Want {
        /// Ciphertext hashes.
        cids: Vec<Hash>,
    },
    /// Blobs (ciphertexts) answering a want; the receiver checks each against what it asked.
    Objects {
        /// Ciphertexts.
        blobs: Vec<Vec<u8>>,
    },
}

/// The framed form: version then message (GW-1).
#[derive(Serialize, Deserialize)]
struct Frame {
    version: u8,
    message: Message,
}

/// Why message bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Over [`MESSAGE_SIZE_MAX_BYTES`] (GW-2).
    #[error("message of {size_bytes} bytes exceeds {MESSAGE_SIZE_MAX_BYTES} bytes")]
    TooLarge {
        /// Size seen.
        size_bytes: usize,
    },
    /// postcard refused the bytes or left some over.
    #[error("message does not decode: {0}")]
    Decode(String),
    /// Unknown wire version.
    #[error("wire version {0} is not {WIRE_VERSION}")]
    Version(u8),
    /// A count over its limit (GW-3).
    #[error("message carries {count} items, more than the limit {max}")]
    TooMany {
        /// Items seen.
        count: usize,
        /// The limit.
        max: usize,
    },
}

fn check_counts(m: &Message) -> Result<(), WireError> {
    let (count, max) = match m {
        Message::Announce { .. } => (0, 0),
        Message::Want { cids } => (cids.len(), WANT_CIDS_MAX),
        Message::Objects { blobs } => (blobs.len(), OBJECTS_BLOBS_MAX),
    };
    if count > max {
        return Err(WireError::TooMany { count, max });
    }
    Ok(())
}

/// Encodes a message (GW-1); refuses what the decoder would refuse.
pub fn encode_message(m: &Message) -> Result<Vec<u8>, WireError> {
    check_counts(m)?;
    let bytes = postcard::to_allocvec(&Frame { version: WIRE_VERSION, message: m.clone() })
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if bytes.len() > MESSAGE_SIZE_MAX_BYTES {
        return Err(WireError::TooLarge { size_bytes: bytes.len() });
    }
    Ok(bytes)
}

/// Decodes and validates message bytes (GW-1..GW-3). The fuzz target `decode_gossip_message`
/// calls this.
pub fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MESSAGE_SIZE_MAX_BYTES {
        return Err(WireError::TooLarge { size_bytes: bytes.len() });
    }
    let (frame, rest): (Frame, _) =
        postcard::take_from_bytes(bytes).map_err(|e| WireError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Decode(format!("{} trailing bytes", rest.len())));
    }
    if frame.version != WIRE_VERSION {
        return Err(WireError::Version(frame.version));
    }
    // Planted bug gossip:decode-skips-counts: only the encoder checks the count limits (GW-1).
    if !crate::bugs::active("gossip:decode-skips-counts") {
        check_counts(&frame.message)?;
    }
    Ok(frame.message)
}
