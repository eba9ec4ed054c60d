//! The properties the `proto_sessions` fuzz target checks on any input (and this module's tests
//! on chosen ones): both sans-IO sessions read a byte stream the same whatever pieces it
//! arrives in (PROTO-1, PROTO-5: a frame split across reads is the same frame), never panic,
//! and the server's own answers are frames a client can read (PROTO-4: a malformed frame is
//! answered, PROTO-3: an oversize prefix is answered, then nothing more is taken).
//!
//! Input layout: byte 0 says how many cut points follow (`% CUTS_MAX`), each a little-endian
//! `u16` offset into the stream; the rest is the stream, fed to a [`ServerSession`] as requests
//! and to a [`ClientSession`] (with ids `0..CLIENT_IDS` in flight) as replies.

use super::client_session::ClientSession;
use super::codec;
use super::server_session::{ServerEvent, ServerSession};
use super::{Request, Response};

/// Most cut points one input may ask for.
pub const CUTS_MAX: usize = 8;
/// Requests the client has in flight before the stream arrives.
pub const CLIENT_IDS: u64 = 8;

/// Checks the properties above; returns the number of requests the server read, or a
/// description of the broken property.
pub fn check_session_stream(data: &[u8]) -> Result<usize, String> {
    let (pieces, stream) = split_input(data);
    let whole = server_events(&[stream]);
    let cut = server_events(&pieces);
    if whole != cut {
        return Err(format!("server: whole stream gives {whole:?}, in pieces {cut:?}"));
    }
    for event in &whole {
        if let ServerEvent::Send(frame) = event {
            match codec::decode_response_frame(frame) {
                Ok((_, n)) if n == frame.len() => {}
                other => {
                    return Err(format!("server sent a frame a client cannot read: {other:?}"));
                }
            }
        }
    }
    if let Some(i) = whole.iter().position(|e| *e == ServerEvent::Close)
        && i + 1 != whole.len()
    {
        return Err(format!("server took more after closing: {whole:?}"));
    }
    let (c_whole, c_cut) = (client_state(&[stream]), client_state(&pieces));
    if c_whole != c_cut {
        return Err(format!("client: whole stream gives {c_whole:?}, in pieces {c_cut:?}"));
    }
    Ok(whole.iter().filter(|e| matches!(e, ServerEvent::Request { .. })).count())
}

/// The cut points and the stream of an input (see the module docs).
fn split_input(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let n = data.first().map_or(0, |b| usize::from(*b) % (CUTS_MAX + 1));
    let header = (1 + 2 * n).min(data.len());
    let stream = data.get(header..).unwrap_or_default();
    let mut cuts: Vec<usize> = data
        .get(1..header)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts {
        pieces.push(stream.get(at..c).unwrap_or_default());
        at = c;
    }
    pieces.push(stream.get(at..).unwrap_or_default());
    (pieces, stream)
}

fn server_events(pieces: &[&[u8]]) -> Vec<ServerEvent> {
    let mut s = ServerSession::new();
    pieces.iter().flat_map(|p| s.receive(p)).collect()
}

/// What a client holds after reading `pieces` (stopping at its first error, as the shell
/// does): the reply to each id in flight, the unattributed errors, and the error.
type ClientState = (Vec<Option<Response>>, Vec<super::ErrorReply>, Option<codec::FrameError>);

fn client_state(pieces: &[&[u8]]) -> ClientState {
    let mut c = ClientSession::new();
    for _ in 0..CLIENT_IDS {
        // A small request always encodes.
        let _ = c.request(Request::Flush);
    }
    let mut error = None;
    for p in pieces {
        if let Err(e) = c.receive(p) {
            error = Some(e);
            break;
        }
    }
    let replies = (0..CLIENT_IDS).map(|id| c.take(id)).collect();
    let unattributed = std::iter::from_fn(|| c.take_unattributed()).collect();
    (replies, unattributed, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sector::proto::{RequestFrame, ResponseFrame};

    fn input(cuts: &[u16], stream: &[u8]) -> Vec<u8> {
        let mut d = vec![cuts.len() as u8];
        for c in cuts {
            d.extend(c.to_le_bytes());
        }
        d.extend(stream);
        d
    }

    fn requests() -> Vec<u8> {
        let mut s = Vec::new();
        for (id, request) in [(1, Request::Read { key: 9 }), (2, Request::Flush)] {
            s.extend(codec::encode_request_frame(&RequestFrame { id, request }).unwrap());
        }
        s.extend([3, 0, 0, 0, 0xff, 0xff, 0xff]); // malformed: answered, stream goes on
        s.extend(
            codec::encode_request_frame(&RequestFrame { id: 3, request: Request::Stat }).unwrap(),
        );
        s
    }

    #[test]
    fn streams_read_the_same_in_any_pieces() {
        let s = requests();
        for a in 0..s.len() as u16 {
            for b in [a, a + 1, a + 3] {
                assert_eq!(check_session_stream(&input(&[a, b], &s)), Ok(3), "cuts {a}, {b}");
            }
        }
        let mut replies = Vec::new();
        for id in [3, 0] {
            let frame = ResponseFrame { id, response: Response::Flushed };
            replies.extend(codec::encode_response_frame(&frame).unwrap());
        }
        for a in 0..replies.len() as u16 {
            assert!(check_session_stream(&input(&[a], &replies)).is_ok());
        }
        // An oversize prefix, then more: answered, closed, nothing more taken.
        let mut s = u32::MAX.to_le_bytes().to_vec();
        s.extend(requests());
        assert_eq!(check_session_stream(&input(&[2], &s)), Ok(0));
        assert_eq!(check_session_stream(&[]), Ok(0));
        assert_eq!(check_session_stream(&[8, 1]), Ok(0));
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn planted_assembler_drops_split_prefix_is_caught() {
        let _bug = crate::bugs::plant("sector_proto:assembler-drops-split-prefix").unwrap();
        let broken = check_session_stream(&input(&[2], &requests())).unwrap_err();
        assert!(broken.contains("in pieces"), "{broken}");
    }
}
