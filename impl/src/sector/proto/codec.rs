//! Framing (PROTO-1..PROTO-5): `[u32 LE body length][postcard body]`, the body being a
//! [`RequestFrame`] or a [`ResponseFrame`] that fills it exactly.
//!
//! Owns encoding and decoding of frames from byte slices ([`decode_frame`], the fuzz target's
//! entry point) and from streams ([`read_frame_body`]). Never panics and never allocates more than
//! [`FRAME_BODY_BYTES_MAX`] bytes for one frame, whatever the peer sends.

use super::{
    FRAME_BODY_BYTES_MAX, FRAME_PREFIX_BYTES, REQUEST_ID_NONE, Request, RequestFrame, Response,
    ResponseFrame,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{self, Read};

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The buffer ends before the frame does; more bytes may complete it.
    #[error("truncated frame: have {have_bytes} bytes, need {need_bytes}")]
    Truncated {
        /// Bytes available.
        have_bytes: usize,
        /// Bytes the frame needs (prefix included), as far as known.
        need_bytes: usize,
    },
    /// The length prefix exceeds [`FRAME_BODY_BYTES_MAX`] (PROTO-3). The stream cannot be
    /// resynchronised: the connection must be closed.
    #[error("frame body of {length_bytes} bytes exceeds the maximum of {FRAME_BODY_BYTES_MAX}")]
    TooLarge {
        /// The length the prefix announced.
        length_bytes: u32,
    },
    /// The length prefix was valid but the body is not a message (PROTO-4). The frame can be
    /// skipped: the next one starts `frame_bytes` after this one's start.
    #[error("undecodable frame body ({frame_bytes} bytes with prefix): {detail}")]
    Undecodable {
        /// The request id, if the body was readable that far.
        id: Option<u64>,
        /// Size of the whole frame, prefix included.
        frame_bytes: usize,
        /// What was wrong.
        detail: String,
    },
    /// A message to send does not fit in a frame.
    #[error("message of {body_bytes} bytes does not fit in a frame (max {FRAME_BODY_BYTES_MAX})")]
    EncodeTooLarge {
        /// Size of the encoded body.
        body_bytes: usize,
    },
    /// The message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Reads the length prefix at the start of `bytes` and checks it (PROTO-1, PROTO-3).
/// Returns the body length.
pub fn parse_prefix(bytes: &[u8]) -> Result<u32, FrameError> {
    let prefix: [u8; FRAME_PREFIX_BYTES] = bytes
        .get(..FRAME_PREFIX_BYTES)
        .and_then(|p| p.try_into().ok())
        .ok_or(FrameError::Truncated { have_bytes: bytes.len(), need_bytes: FRAME_PREFIX_BYTES })?;
    let length_bytes = u32::from_le_bytes(prefix);
    if length_bytes > FRAME_BODY_BYTES_MAX {
        return Err(FrameError::TooLarge { length_bytes });
    }
    Ok(length_bytes)
}

/// Splits the first complete frame off `bytes`: `(body, frame_bytes)`. PROTO-5: a buffer that
/// ends before the frame does is `Truncated`, never a shorter message.
fn split_frame(bytes: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let length = parse_prefix(bytes)? as usize;
    let frame_bytes = FRAME_PREFIX_BYTES + length;
    let body = bytes
        .get(FRAME_PREFIX_BYTES..frame_bytes)
        .ok_or(FrameError::Truncated { have_bytes: bytes.len(), need_bytes: frame_bytes })?;
    Ok((body, frame_bytes))
}

/// Decodes the first request frame in `bytes`: the frame and how many bytes it took
/// (prefix included). This is the `decode_frame` fuzz target's entry point: any input yields a
/// frame or a [`FrameError`], never a panic.
pub fn decode_frame(bytes: &[u8]) -> Result<(RequestFrame, usize), FrameError> {
    let (body, frame_bytes) = split_frame(bytes)?;
    let frame = decode_request_body(body)?;
    Ok((frame, frame_bytes))
}

/// Decodes the first response frame in `bytes`, as [`decode_frame`] does for requests.
pub fn decode_response_frame(bytes: &[u8]) -> Result<(ResponseFrame, usize), FrameError> {
    let (body, frame_bytes) = split_frame(bytes)?;
    let (id, response) = decode_body::<Response>(body)?;
    Ok((ResponseFrame { id, response }, frame_bytes))
}

/// Decodes a request frame body (the bytes after the prefix). PROTO-2: the id comes first so a
/// reply to an undecodable request can still name it; PROTO-4: the body must be consumed
/// exactly, and [`REQUEST_ID_NONE`] is not a valid request id.
pub fn decode_request_body(body: &[u8]) -> Result<RequestFrame, FrameError> {
    let (id, request) = decode_body::<Request>(body)?;
    // Planted bug sector_proto:accept-reserved-id: the reserved id decodes as a request.
    if id == REQUEST_ID_NONE && !crate::bugs::active("sector_proto:accept-reserved-id") {
        return Err(undecodable(body, None, "request id u64::MAX is reserved".to_owned()));
    }
    Ok(RequestFrame { id, request })
}

/// Decodes a response frame body (the bytes after the prefix).
pub fn decode_response_body(body: &[u8]) -> Result<ResponseFrame, FrameError> {
    let (id, response) = decode_body::<Response>(body)?;
    Ok(ResponseFrame { id, response })
}

fn undecodable(body: &[u8], id: Option<u64>, detail: String) -> FrameError {
    FrameError::Undecodable { id, frame_bytes: FRAME_PREFIX_BYTES + body.len(), detail }
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<(u64, T), FrameError> {
    let (id, rest) = postcard::take_from_bytes::<u64>(body)
        .map_err(|e| undecodable(body, None, format!("request id: {e}")))?;
    let (message, trailing) = postcard::take_from_bytes::<T>(rest)
        .map_err(|e| undecodable(body, Some(id), format!("message: {e}")))?;
    if !trailing.is_empty() && !crate::bugs::active("sector_proto:accept-trailing-bytes") {
        let detail = format!("{} trailing bytes after the message", trailing.len());
        return Err(undecodable(body, Some(id), detail));
    }
    Ok((id, message))
}

/// Encodes a request frame, prefix included.
pub fn encode_request_frame(frame: &RequestFrame) -> Result<Vec<u8>, FrameError> {
    encode_frame(frame)
}

/// Encodes a response frame, prefix included.
pub fn encode_response_frame(frame: &ResponseFrame) -> Result<Vec<u8>, FrameError> {
    encode_frame(frame)
}

/// Encodes any message as a frame. The struct's fields (id first) are laid out by postcard in
/// declaration order, which is what [`decode_body`] reads back (PROTO-2).
fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; FRAME_PREFIX_BYTES];
    out = postcard::to_extend(message, out).map_err(|e| FrameError::Encode(e.to_string()))?;
    let body_bytes = out.len() - FRAME_PREFIX_BYTES;
    let length = u32::try_from(body_bytes)
        .ok()
        .filter(|l| *l <= FRAME_BODY_BYTES_MAX)
        .ok_or(FrameError::EncodeTooLarge { body_bytes })?;
    if let Some(prefix) = out.get_mut(..FRAME_PREFIX_BYTES) {
        prefix.copy_from_slice(&length.to_le_bytes());
    }
    debug_assert_eq!(parse_prefix(&out), Ok(length), "PROTO-1 prefix round-trips");
    Ok(out)
}

/// Most frames [`check_frame_stream`] walks through in one input.
pub const CHECK_FRAMES_MAX: u32 = 1024;

/// The decode properties the `decode_frame` fuzz target and the corpus test check on any input:
/// decoding walks a stream of frames using the resync rule (PROTO-4), every decoded request
/// re-encodes to a frame that decodes to the same request, no request carries the reserved id
/// (PROTO-2), every reported size stays inside
/// the input, and the response decoder is total too. Returns how many frames decoded, or a
/// description of the broken property.
pub fn check_frame_stream(bytes: &[u8]) -> Result<u32, String> {
    let _ = decode_response_frame(bytes);
    let mut rest = bytes;
    let mut decoded = 0;
    for _ in 0..CHECK_FRAMES_MAX {
        let used = match decode_frame(rest) {
            Ok((frame, used)) => {
                if frame.id == REQUEST_ID_NONE {
                    return Err(format!("PROTO-2: the reserved id decoded: {frame:?}"));
                }
                let again = encode_request_frame(&frame).map_err(|e| format!("re-encode: {e}"))?;
                match decode_frame(&again) {
                    Ok((back, n)) if back == frame && n == again.len() => {}
                    other => return Err(format!("{frame:?} re-decodes as {other:?}")),
                }
                decoded += 1;
                used
            }
            Err(FrameError::Undecodable { frame_bytes, .. }) => frame_bytes,
            Err(_) => break,
        };
        if used < FRAME_PREFIX_BYTES || used > rest.len() {
            return Err(format!("frame size {used} outside 4..={}", rest.len()));
        }
        rest = rest.get(used..).unwrap_or_default();
    }
    Ok(decoded)
}

/// What [`read_frame_body`] found on a stream.
#[derive(Debug)]
pub enum ReadFrame {
    /// A complete frame body (its prefix was valid).
    Body(Vec<u8>),
    /// The stream ended cleanly between frames.
    Eof,
    /// The stream ended inside a frame.
    Truncated,
    /// The prefix announced a body larger than [`FRAME_BODY_BYTES_MAX`] (PROTO-3).
    TooLarge {
        /// The announced length.
        length_bytes: u32,
    },
}

/// Reads one frame body from a stream. I/O errors other than a clean or mid-frame end of
/// stream are returned as errors.
pub fn read_frame_body(reader: &mut impl Read) -> io::Result<ReadFrame> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    match read_full(reader, &mut prefix)? {
        0 => return Ok(ReadFrame::Eof),
        n if n < FRAME_PREFIX_BYTES => return Ok(ReadFrame::Truncated),
        _ => {}
    }
    let length = match parse_prefix(&prefix) {
        Ok(length) => length,
        Err(FrameError::TooLarge { length_bytes }) => {
            return Ok(ReadFrame::TooLarge { length_bytes });
        }
        Err(_) => return Ok(ReadFrame::Truncated),
    };
    let mut body = vec![0u8; length as usize];
    if read_full(reader, &mut body)? < body.len() {
        return Ok(ReadFrame::Truncated); // PROTO-5: cut short by the end of the stream
    }
    Ok(ReadFrame::Body(body))
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sector::proto::{CasItem, Expected, WriteOptions};

    fn write_req(id: u64) -> RequestFrame {
        RequestFrame {
            id,
            request: Request::Write {
                key: 7,
                value: b"hello".to_vec(),
                options: WriteOptions { flush: true, ..WriteOptions::default() },
            },
        }
    }

    #[test]
    fn request_round_trips_proto_1_2() {
        let frame = write_req(42);
        let bytes = encode_request_frame(&frame).unwrap();
        assert_eq!(parse_prefix(&bytes).unwrap() as usize, bytes.len() - 4);
        let (back, used) = decode_frame(&bytes).unwrap();
        assert_eq!(back, frame);
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn two_frames_back_to_back_proto_1() {
        let mut bytes = encode_request_frame(&write_req(1)).unwrap();
        let cas = RequestFrame {
            id: 2,
            request: Request::Cas {
                items: vec![CasItem { key: 1, expected: Expected::Absent, new_value: None }],
                flush: false,
            },
        };
        bytes.extend(encode_request_frame(&cas).unwrap());
        let (first, used) = decode_frame(&bytes).unwrap();
        assert_eq!(first.id, 1);
        let (second, _) = decode_frame(&bytes[used..]).unwrap();
        assert_eq!(second, cas);
    }

    #[test]
    fn every_truncation_is_truncated_proto_5() {
        let bytes = encode_request_frame(&write_req(9)).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                matches!(decode_frame(&bytes[..cut]), Err(FrameError::Truncated { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversize_prefix_is_too_large_proto_3() {
        let mut bytes = (FRAME_BODY_BYTES_MAX + 1).to_le_bytes().to_vec();
        bytes.extend([0u8; 16]);
        assert_eq!(
            decode_frame(&bytes),
            Err(FrameError::TooLarge { length_bytes: FRAME_BODY_BYTES_MAX + 1 })
        );
    }

    #[test]
    fn garbage_body_keeps_the_id_proto_4() {
        // id 5 (one varint byte), then variant index 200: not a Request.
        let bytes = [2, 0, 0, 0, 5, 200];
        match decode_frame(&bytes) {
            Err(FrameError::Undecodable { id, frame_bytes, .. }) => {
                assert_eq!(id, Some(5));
                assert_eq!(frame_bytes, 6);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_bytes_are_rejected_proto_4() {
        let mut bytes =
            encode_request_frame(&RequestFrame { id: 3, request: Request::Flush }).unwrap();
        bytes.push(0);
        let len = (bytes.len() - 4) as u32;
        bytes[..4].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(decode_frame(&bytes), Err(FrameError::Undecodable { id: Some(3), .. })));
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn planted_accept_trailing_bytes_is_caught() {
        let _bug = crate::bugs::plant("sector_proto:accept-trailing-bytes").unwrap();
        let caught = std::panic::catch_unwind(trailing_bytes_are_rejected_proto_4);
        assert!(caught.is_err(), "the trailing-bytes test must fail with the bug planted");
    }

    #[test]
    fn reserved_id_is_rejected_proto_2() {
        let bytes =
            encode_request_frame(&RequestFrame { id: REQUEST_ID_NONE, request: Request::Flush })
                .unwrap();
        assert!(matches!(decode_frame(&bytes), Err(FrameError::Undecodable { id: None, .. })));
    }

    /// PROTO-2 byte for byte: the id as a varint, then the message with enum variants as their
    /// declaration index, integers as varints, `Option` and `bool` as one byte. Reordering a
    /// variant or a field breaks every client in another language, so the bytes are pinned.
    #[test]
    fn wire_bytes_are_pinned_proto_2() {
        let write = RequestFrame {
            id: 300,
            request: Request::Write {
                key: 5,
                value: b"ab".to_vec(),
                options: WriteOptions {
                    compressed: false,
                    compact: true,
                    revertible: false,
                    expected: Some(Expected::Version(1)),
                    flush: true,
                    next: Some(9),
                },
            },
        };
        let body = [0xac, 0x02, 3, 5, 2, b'a', b'b', 0, 1, 0, 1, 1, 1, 1, 1, 9];
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        assert_eq!(encode_request_frame(&write).unwrap(), frame);
        assert_eq!(decode_frame(&frame).unwrap(), (write, frame.len()));
        let variants = [
            (Request::Read { key: 1 }, 0u8),
            (Request::Flush, 8),
            (Request::Verify { key: 1 }, 9),
            (Request::Commit { key: 1 }, 11),
            (Request::Stat, 12),
        ];
        for (request, index) in variants {
            let bytes = encode_request_frame(&RequestFrame { id: 0, request }).unwrap();
            assert_eq!(bytes.get(5), Some(&index), "{bytes:?}");
        }
        let written = ResponseFrame { id: 7, response: Response::Written { version: 300 } };
        assert_eq!(encode_response_frame(&written).unwrap(), [4, 0, 0, 0, 7, 2, 0xac, 0x02]);
        let flushed = ResponseFrame { id: 1, response: Response::Flushed };
        assert_eq!(encode_response_frame(&flushed).unwrap(), [2, 0, 0, 0, 1, 6]);
    }

    #[test]
    fn empty_body_is_undecodable_proto_4() {
        assert!(matches!(
            decode_frame(&[0, 0, 0, 0]),
            Err(FrameError::Undecodable { id: None, frame_bytes: 4, .. })
        ));
    }

    #[test]
    fn stream_reader_reports_each_case() {
        let good = encode_request_frame(&write_req(1)).unwrap();
        let mut r = &good[..];
        match read_frame_body(&mut r).unwrap() {
            ReadFrame::Body(b) => assert_eq!(b.len(), good.len() - 4),
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_frame_body(&mut r).unwrap(), ReadFrame::Eof));
        let mut r = &good[..good.len() - 1];
        assert!(matches!(read_frame_body(&mut r).unwrap(), ReadFrame::Truncated));
        let big = u32::MAX.to_le_bytes();
        assert!(matches!(
            read_frame_body(&mut &big[..]).unwrap(),
            ReadFrame::TooLarge { length_bytes: u32::MAX }
        ));
    }
}
