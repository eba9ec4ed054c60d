//! Frames out of a byte stream that arrives in pieces (PROTO-1, PROTO-3, PROTO-5), without
//! blocking: the server's reader feeds whatever `read` returned and takes out every complete
//! frame, so between reads it can tell whether a frame is half-way in (PROTO-13's frame
//! timeout) and wake up on a read timeout without losing bytes. Holds at most one incomplete
//! frame plus one read's worth of bytes: never more than
//! [`FRAME_BODY_BYTES_MAX`](super::FRAME_BODY_BYTES_MAX) plus the read buffer, whatever the
//! peer sends.

use super::FRAME_PREFIX_BYTES;
use super::codec::{FrameError, parse_prefix};

/// What the next complete piece of the stream is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Assembled {
    /// A frame body (its prefix was valid and it is complete).
    Body(Vec<u8>),
    /// A prefix above the maximum (PROTO-3): nothing after it can be trusted.
    TooLarge {
        /// The length the prefix announced.
        length_bytes: u32,
    },
}

/// Bytes received but not yet taken out as frames.
#[derive(Debug, Default)]
pub(crate) struct FrameAssembler {
    pending: Vec<u8>,
    /// Bytes of `pending` already taken out (dropped by [`FrameAssembler::compact`]).
    start: usize,
}

impl FrameAssembler {
    /// Appends bytes just read.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.compact();
        if crate::bugs::active("sector_proto:assembler-drops-split-prefix")
            && self.pending.len() < FRAME_PREFIX_BYTES
        {
            // Planted bug: a length prefix split across reads is forgotten (breaks PROTO-1).
            self.pending.clear();
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Takes out the next complete frame, if there is one.
    pub(crate) fn next_frame(&mut self) -> Option<Assembled> {
        let rest = self.pending.get(self.start..)?;
        let length = match parse_prefix(rest) {
            Ok(length) => length as usize,
            Err(FrameError::TooLarge { length_bytes }) => {
                return Some(Assembled::TooLarge { length_bytes });
            }
            Err(_) => return None, // fewer than FRAME_PREFIX_BYTES so far
        };
        let body = rest.get(FRAME_PREFIX_BYTES..FRAME_PREFIX_BYTES + length)?.to_vec();
        self.start += FRAME_PREFIX_BYTES + length;
        Some(Assembled::Body(body))
    }

    /// Is part of a frame (at least one byte of it) waiting for the rest?
    pub(crate) fn in_progress(&self) -> bool {
        self.pending.len() > self.start
    }

    /// Drops the bytes already taken out.
    fn compact(&mut self) {
        self.pending.drain(..self.start.min(self.pending.len()));
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_come_out_whatever_the_pieces() {
        let mut stream = frame(b"one");
        stream.extend(frame(b""));
        stream.extend(frame(b"three"));
        for piece in [1, 2, 3, 5, 7, stream.len()] {
            let mut a = FrameAssembler::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                a.push(chunk);
                while let Some(f) = a.next_frame() {
                    got.push(f);
                }
            }
            let want: Vec<Assembled> =
                [&b"one"[..], b"", b"three"].iter().map(|b| Assembled::Body(b.to_vec())).collect();
            assert_eq!(got, want, "pieces of {piece}");
            assert!(!a.in_progress());
        }
    }

    #[test]
    fn a_partial_frame_is_in_progress() {
        let mut a = FrameAssembler::default();
        a.push(&[3]);
        assert!(a.in_progress());
        assert_eq!(a.next_frame(), None);
        a.push(&[0, 0, 0, b'a', b'b']);
        assert_eq!(a.next_frame(), None);
        a.push(b"c");
        assert_eq!(a.next_frame(), Some(Assembled::Body(b"abc".to_vec())));
        assert!(!a.in_progress());
    }

    #[test]
    fn an_oversize_prefix_is_reported() {
        let mut a = FrameAssembler::default();
        a.push(&u32::MAX.to_le_bytes());
        assert_eq!(a.next_frame(), Some(Assembled::TooLarge { length_bytes: u32::MAX }));
    }
}
