//! The node protocol's framing: what `cellar node`s and `cellar kv` clients exchange on a
//! connection (`specs/gossip-wire.md`, "Node transport").
//!
//! On a connection each body is one secure-channel message (`specs/node-protocol.md` NP-1); the
//! `u32 LE length ‖ postcard(body)` frame here carries bare bodies outside a channel (the fuzz
//! corpus). The connecting side sends [`NetFrame`]s: gossip messages (one-way; replies travel
//! on the replying node's own connection to the sender's `reply_to` address) or client
//! [`KvRequest`]s, each answered by one [`KvResponse`].
//!
//! Why sans-IO (bytes in, bytes out, no socket): the format is part of the node's protocol, not
//! of one transport. The TCP loop in `cellar node` reads [`FRAME_PREFIX_BYTES`], asks
//! [`frame_body_len`] (which refuses an oversized frame before a byte of it is allocated), reads
//! the body and calls [`decode_body`]; a transport holding a whole buffer calls
//! [`decode_frame`]; tests check the bytes directly.
//!
//! Never: encode or accept a body over [`FRAME_SIZE_MAX_BYTES`] (GW-2 for the gossip message
//! inside, plus room for the envelope); accept trailing bytes after a body.

use super::MESSAGE_SIZE_MAX_BYTES;
use super::service::{KvRequest, KvResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Bytes of the length prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;
/// Largest frame body accepted or sent, in bytes: a gossip message plus its envelope.
pub const FRAME_SIZE_MAX_BYTES: usize = MESSAGE_SIZE_MAX_BYTES + 64 * 1024;

const _: () = assert!(FRAME_SIZE_MAX_BYTES <= u32::MAX as usize);
const _: () = assert!(FRAME_SIZE_MAX_BYTES > MESSAGE_SIZE_MAX_BYTES);
// A frame body travels as one secure-channel message.
const _: () = assert!(FRAME_SIZE_MAX_BYTES <= crate::net::channel::MESSAGE_SIZE_MAX_BYTES);

/// One frame from the connecting side.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum NetFrame {
    /// A gossip message from the node listening at `reply_to`.
    Gossip {
        /// The sender's listen address.
        reply_to: String,
        /// [`super::encode_message`] bytes.
        message: Vec<u8>,
    },
    /// A client request; answered with a [`KvResponse`] frame.
    Request(KvRequest),
}

/// What may travel as a frame body: [`NetFrame`] one way, [`KvResponse`] back. Sealed, so the
/// framing cannot be used for anything but the node protocol.
pub trait FrameBody: Serialize + DeserializeOwned + sealed::Sealed {}

impl FrameBody for NetFrame {}
impl FrameBody for KvResponse {}

mod sealed {
    /// Implemented only by the frame bodies of this module.
    pub trait Sealed {}
    impl Sealed for super::NetFrame {}
    impl Sealed for super::KvResponse {}
}

/// Why frame bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A body over [`FRAME_SIZE_MAX_BYTES`] (refused before allocating when read).
    #[error("frame of {size_bytes} bytes is over the limit of {FRAME_SIZE_MAX_BYTES} bytes")]
    TooLarge {
        /// The body size, as encoded or as announced by the prefix.
        size_bytes: usize,
    },
    /// postcard could not encode the body.
    #[error("frame does not encode: {0}")]
    Encode(String),
    /// The body does not decode, or leaves bytes over.
    #[error("bad frame: {0}")]
    Decode(String),
}

/// Encodes `body` as one frame: length prefix, then the body.
///
/// # Errors
/// The body does not encode, or is over [`FRAME_SIZE_MAX_BYTES`].
pub fn encode_frame<T: FrameBody>(body: &T) -> Result<Vec<u8>, FrameError> {
    let encoded = postcard::to_allocvec(body).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = checked_len(encoded.len())?;
    let mut out = Vec::with_capacity(FRAME_PREFIX_BYTES + encoded.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&encoded);
    debug_assert_eq!(frame_body_len(len.to_le_bytes()), Ok(encoded.len()));
    Ok(out)
}

/// Encodes `body` without the length prefix: what one secure-channel message carries
/// (`cellar::net::channel`, which frames messages itself).
///
/// # Errors
/// The body does not encode, or is over [`FRAME_SIZE_MAX_BYTES`].
pub fn encode_body<T: FrameBody>(body: &T) -> Result<Vec<u8>, FrameError> {
    let encoded = postcard::to_allocvec(body).map_err(|e| FrameError::Encode(e.to_string()))?;
    checked_len(encoded.len())?;
    Ok(encoded)
}

/// The body length a prefix announces, refused if over [`FRAME_SIZE_MAX_BYTES`].
///
/// # Errors
/// [`FrameError::TooLarge`].
pub fn frame_body_len(prefix: [u8; FRAME_PREFIX_BYTES]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > FRAME_SIZE_MAX_BYTES {
        return Err(FrameError::TooLarge { size_bytes: len });
    }
    Ok(len)
}

/// Decodes a frame body (the bytes after the prefix).
///
/// # Errors
/// Over the size limit, not a `T`, or trailing bytes.
pub fn decode_body<T: FrameBody>(body: &[u8]) -> Result<T, FrameError> {
    checked_len(body.len())?;
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Decodes the first frame of `bytes`: `Ok(None)` while the frame is incomplete, else the body
/// and the number of bytes it used (prefix included).
///
/// # Errors
/// The prefix announces an oversized body, or the body does not decode.
pub fn decode_frame<T: FrameBody>(bytes: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some((prefix, rest)) = bytes.split_first_chunk::<FRAME_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let len = frame_body_len(*prefix)?;
    let Some(body) = rest.get(..len) else { return Ok(None) };
    Ok(Some((decode_body(body)?, FRAME_PREFIX_BYTES + len)))
}

/// `size_bytes` as a prefix value, if within the limit.
fn checked_len(size_bytes: usize) -> Result<u32, FrameError> {
    if size_bytes > FRAME_SIZE_MAX_BYTES {
        return Err(FrameError::TooLarge { size_bytes });
    }
    u32::try_from(size_bytes).map_err(|_| FrameError::TooLarge { size_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_are_pinned() {
        // u32 LE length, then postcard: variant index, then fields (strings length-prefixed).
        let status = encode_frame(&NetFrame::Request(KvRequest::Status)).unwrap();
        assert_eq!(status, [2, 0, 0, 0, 1, 7]);
        let gossip = NetFrame::Gossip { reply_to: "a:1".into(), message: vec![9, 8] };
        assert_eq!(encode_frame(&gossip).unwrap(), [8, 0, 0, 0, 0, 3, b'a', b':', b'1', 2, 9, 8]);
        let set = NetFrame::Request(KvRequest::Set("/k".into(), b"v".to_vec()));
        assert_eq!(encode_frame(&set).unwrap(), [7, 0, 0, 0, 1, 0, 2, b'/', b'k', 1, b'v']);
        assert_eq!(encode_frame(&KvResponse::Ok).unwrap(), [1, 0, 0, 0, 0]);
    }

    #[test]
    fn frames_round_trip_whole_and_in_pieces() {
        let frames = [
            NetFrame::Request(KvRequest::Log(5)),
            NetFrame::Gossip { reply_to: "127.0.0.1:7001".into(), message: vec![1; 300] },
        ];
        let mut buf = Vec::new();
        for f in &frames {
            buf.extend(encode_frame(f).unwrap());
        }
        let first_len = encode_frame(&frames[0]).unwrap().len();
        for cut in 0..first_len {
            assert_eq!(decode_frame::<NetFrame>(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        let (a, used) = decode_frame::<NetFrame>(&buf).unwrap().unwrap();
        assert_eq!((a, used), (frames[0].clone(), first_len));
        let (b, rest) = decode_frame::<NetFrame>(&buf[used..]).unwrap().unwrap();
        assert_eq!((b, used + rest), (frames[1].clone(), buf.len()));
        let resp = KvResponse::Value(Some(b"x".to_vec()), vec![None, Some(b"x".to_vec())]);
        let bytes = encode_frame(&resp).unwrap();
        assert_eq!(decode_body::<KvResponse>(&bytes[FRAME_PREFIX_BYTES..]), Ok(resp));
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let over = u32::try_from(FRAME_SIZE_MAX_BYTES + 1).unwrap();
        let err = FrameError::TooLarge { size_bytes: over as usize };
        assert_eq!(frame_body_len(over.to_le_bytes()), Err(err.clone()));
        assert_eq!(frame_body_len((over - 1).to_le_bytes()), Ok(FRAME_SIZE_MAX_BYTES));
        // Refused from the prefix alone, before the body is there.
        assert_eq!(decode_frame::<NetFrame>(&over.to_le_bytes()), Err(err));
        let big =
            NetFrame::Gossip { reply_to: String::new(), message: vec![0; FRAME_SIZE_MAX_BYTES] };
        assert!(matches!(encode_frame(&big), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn bad_bodies_get_typed_errors() {
        assert!(matches!(decode_body::<NetFrame>(&[]), Err(FrameError::Decode(_))));
        assert!(matches!(decode_body::<NetFrame>(&[9]), Err(FrameError::Decode(_))));
        assert!(matches!(decode_body::<NetFrame>(&[1, 7, 0]), Err(FrameError::Decode(_))));
        assert!(matches!(decode_body::<KvResponse>(&[0]), Ok(KvResponse::Ok)));
    }
}
