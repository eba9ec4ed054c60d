//! [`ServerSession`]: the server's side of one connection as a sans-IO state machine: bytes in,
//! requests for the backend and reply frames out (PROTO-1..PROTO-5, PROTO-7). It reads no socket,
//! spawns no thread and keeps no time: the Unix-socket server (`conn.rs`) feeds it what `read`
//! returned and writes what it hands back, and the simulator feeds it frames carried by its
//! lossy network (`cellar-sim`'s `net.rs`), so both run the same protocol code.
//!
//! What it decides: where frames start and end, which bodies are malformed (answered with a
//! `MalformedFrame` error that names the request id when it can be read, PROTO-4), which
//! requests are invalid (answered with their validation error, never reaching the backend),
//! when the stream cannot be resynchronised (a prefix over the maximum: answer and close,
//! PROTO-3), and how a response becomes a frame (a reply too large for a frame becomes an
//! `InvalidRequest` error, so every request gets exactly one reply).
//!
//! What it leaves to its shell: back-pressure and the PROTO-13 limits (they need a clock and a
//! count of replies not yet written), and executing requests (the backend's).

use super::assembler::{Assembled, FrameAssembler};
use super::codec::{self, FrameError};
use super::{ErrorKind, ErrorReply, REQUEST_ID_NONE, Request, Response, ResponseFrame};

/// What the shell must do with what a [`ServerSession`] took out of the bytes it was given, in
/// order.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A well-formed, valid request: execute it and pass its response to
    /// [`ServerSession::reply`] (in any order relative to other requests, PROTO-7).
    Request {
        /// The id its reply must carry (PROTO-2).
        id: u64,
        /// The request.
        request: Request,
    },
    /// A reply frame to send as it is (the answer to a malformed or invalid frame).
    Send(Vec<u8>),
    /// Nothing after this point of the stream can be trusted: send what is queued, then close
    /// the connection. The session ignores any bytes it is given afterwards.
    Close,
}

/// The server's side of one connection (see the module docs).
#[derive(Debug, Default)]
pub struct ServerSession {
    frames: FrameAssembler,
    closed: bool,
    /// Planted bug `sector_proto:close-on-malformed` (PROTO-4), captured by the shell on the
    /// thread that owns the planted-bug set.
    close_on_malformed: bool,
}

impl ServerSession {
    /// A session at the start of a connection's byte stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// A session with the planted bug `sector_proto:close-on-malformed` set as given (the shell
    /// captures planted bugs where they are set, see `crate::bugs`).
    pub fn with_close_on_malformed(close_on_malformed: bool) -> Self {
        Self { close_on_malformed, ..Self::default() }
    }

    /// Takes `bytes`, the next piece of the connection's stream (any length, any boundaries),
    /// and returns what the complete frames in it ask for, in stream order.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        if self.closed {
            return events;
        }
        self.frames.push(bytes);
        while let Some(piece) = self.frames.next_frame() {
            let body = match piece {
                Assembled::Body(body) => body,
                Assembled::TooLarge { length_bytes } => {
                    // PROTO-3: the stream cannot be resynchronised; answer and close.
                    let e = FrameError::TooLarge { length_bytes };
                    events.push(error_frame(REQUEST_ID_NONE, ErrorKind::FrameTooLarge, &e));
                    self.close(&mut events);
                    break;
                }
            };
            events.push(self.body(&body));
            if self.close_on_malformed && matches!(events.last(), Some(ServerEvent::Send(_))) {
                // Planted bug: breaks PROTO-4 (a malformed frame must not end the connection).
                self.close(&mut events);
                break;
            }
        }
        events
    }

    /// Is part of a frame (at least one byte) waiting for the rest (PROTO-13's frame timeout)?
    pub fn frame_in_progress(&self) -> bool {
        !self.closed && self.frames.in_progress()
    }

    /// Has the session asked for the connection to close?
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The reply frame for request `id` (PROTO-2). A response too large for a frame becomes an
    /// error reply asking for less; `None` only if not even that could be encoded (it always
    /// can: the error is a few bytes).
    pub fn reply(id: u64, response: Response) -> Option<Vec<u8>> {
        match codec::encode_response_frame(&ResponseFrame { id, response }) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                // A reply too large for a frame (a read_range over many big values): the
                // client must ask for fewer keys.
                let message = format!("reply does not fit in a frame, ask for less: {e}");
                let fallback = Response::Error(ErrorReply::new(ErrorKind::InvalidRequest, message));
                codec::encode_response_frame(&ResponseFrame { id, response: fallback }).ok()
            }
        }
    }

    fn close(&mut self, events: &mut Vec<ServerEvent>) {
        self.closed = true;
        events.push(ServerEvent::Close);
    }

    /// Decodes and checks one frame body.
    fn body(&self, body: &[u8]) -> ServerEvent {
        let frame = match codec::decode_request_body(body) {
            Ok(frame) => frame,
            Err(e) => {
                // PROTO-4: the prefix was valid, so skipping this body resynchronises.
                let id = match &e {
                    FrameError::Undecodable { id: Some(id), .. } => *id,
                    _ => REQUEST_ID_NONE,
                };
                return error_frame(id, ErrorKind::MalformedFrame, &e);
            }
        };
        match frame.request.validate() {
            Ok(()) => ServerEvent::Request { id: frame.id, request: frame.request },
            Err(e) => reply_event(frame.id, Response::Error(e)),
        }
    }
}

fn error_frame(id: u64, kind: ErrorKind, e: &FrameError) -> ServerEvent {
    reply_event(id, Response::Error(ErrorReply::new(kind, e.to_string())))
}

fn reply_event(id: u64, response: Response) -> ServerEvent {
    // The error replies built here are small, so they always encode.
    ServerEvent::Send(ServerSession::reply(id, response).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sector::proto::RequestFrame;

    fn frame(id: u64, request: Request) -> Vec<u8> {
        codec::encode_request_frame(&RequestFrame { id, request }).unwrap()
    }

    fn reply_of(event: &ServerEvent) -> ResponseFrame {
        let ServerEvent::Send(bytes) = event else { panic!("not a reply: {event:?}") };
        codec::decode_response_frame(bytes).unwrap().0
    }

    #[test]
    fn requests_come_out_whatever_the_pieces() {
        let mut stream = frame(7, Request::Read { key: 1 });
        stream.extend(frame(8, Request::Flush));
        for cut in 0..stream.len() {
            let mut s = ServerSession::new();
            let mut events = s.receive(&stream[..cut]);
            events.extend(s.receive(&stream[cut..]));
            assert_eq!(
                events,
                vec![
                    ServerEvent::Request { id: 7, request: Request::Read { key: 1 } },
                    ServerEvent::Request { id: 8, request: Request::Flush },
                ],
                "cut at {cut}"
            );
            assert!(!s.frame_in_progress());
        }
    }

    #[test]
    fn a_malformed_body_is_answered_and_the_stream_goes_on_proto4() {
        let mut s = ServerSession::new();
        let mut stream = vec![3, 0, 0, 0, 0xff, 0xff, 0xff];
        stream.extend(frame(2, Request::Flush));
        let events = s.receive(&stream);
        assert_eq!(events.len(), 2, "{events:?}");
        let r = reply_of(&events[0]);
        assert_eq!(r.id, REQUEST_ID_NONE);
        assert!(matches!(r.response, Response::Error(e) if e.kind == ErrorKind::MalformedFrame));
        assert_eq!(events[1], ServerEvent::Request { id: 2, request: Request::Flush });
        assert!(!s.is_closed());
        // The planted bug closes instead, and so drops the request behind the bad frame.
        let mut s = ServerSession::with_close_on_malformed(true);
        let events = s.receive(&stream);
        assert!(matches!(events.as_slice(), [ServerEvent::Send(_), ServerEvent::Close]));
        assert!(s.is_closed());
    }

    #[test]
    fn an_oversize_prefix_is_answered_then_closes_proto3() {
        let mut s = ServerSession::new();
        let events = s.receive(&u32::MAX.to_le_bytes());
        assert_eq!(events.len(), 2, "{events:?}");
        let r = reply_of(&events[0]);
        assert!(matches!(r.response, Response::Error(e) if e.kind == ErrorKind::FrameTooLarge));
        assert_eq!(events[1], ServerEvent::Close);
        assert!(s.receive(&frame(1, Request::Flush)).is_empty(), "nothing after a close");
    }

    #[test]
    fn an_invalid_request_is_answered_without_reaching_the_backend() {
        let mut s = ServerSession::new();
        let events = s.receive(&frame(5, Request::Cas { items: Vec::new(), flush: false }));
        let [event] = events.as_slice() else { panic!("{events:?}") };
        let r = reply_of(event);
        assert_eq!(r.id, 5);
        assert!(matches!(r.response, Response::Error(_)), "{r:?}");
    }

    #[test]
    fn a_partial_frame_is_in_progress() {
        let mut s = ServerSession::new();
        let f = frame(1, Request::Flush);
        assert!(s.receive(&f[..3]).is_empty());
        assert!(s.frame_in_progress());
        assert_eq!(s.receive(&f[3..]).len(), 1);
        assert!(!s.frame_in_progress());
    }
}
