//! [`ClientSession`]: the client's side of one connection as a sans-IO state machine: requests
//! in, frames out; bytes in, replies out (PROTO-1..PROTO-3, PROTO-7). The blocking
//! [`SectorClient`](super::SectorClient) is a thin shell that writes its frames to a Unix socket
//! and feeds it what the socket returns; the simulator drives it over its lossy network.
//!
//! What it keeps: the next request id (counting up from 0 and wrapping before the reserved
//! [`REQUEST_ID_NONE`], PROTO-2), the ids in flight, replies that arrived for ids in flight but
//! were not collected yet (PROTO-7: replies come back in any order), and replies the server could
//! not attribute to an id (PROTO-4).
//!
//! Never trusts the server: a malformed reply frame is a typed error, a reply to an id not in
//! flight (a duplicate, or one for a request given up with [`ClientSession::abandon`]) is
//! dropped, so the stash never holds more replies than there are requests in flight.

use super::assembler::{Assembled, FrameAssembler};
use super::codec::{self, FrameError};
use super::{ErrorReply, REQUEST_ID_NONE, Request, RequestFrame, Response};
use std::collections::{HashMap, HashSet};

/// The client's side of one connection (see the module docs).
#[derive(Debug, Default)]
pub struct ClientSession {
    frames: FrameAssembler,
    next_id: u64,
    in_flight: HashSet<u64>,
    early: HashMap<u64, Response>,
    /// Replies with [`REQUEST_ID_NONE`], oldest first.
    unattributed: Vec<ErrorReply>,
}

impl ClientSession {
    /// A session at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `request` in flight and returns its id and the frame to send.
    pub fn request(&mut self, request: Request) -> Result<(u64, Vec<u8>), FrameError> {
        let id = self.next_id;
        let bytes = codec::encode_request_frame(&RequestFrame { id, request })?;
        // Ids count up from 0 and wrap before the reserved id (PROTO-2).
        self.next_id = if id + 1 == REQUEST_ID_NONE { 0 } else { id + 1 };
        self.in_flight.insert(id);
        Ok((id, bytes))
    }

    /// Takes `bytes`, the next piece of the server's stream (any length, any boundaries), and
    /// stashes every complete reply in it. A frame that cannot be read is an error; the
    /// replies before it are kept.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.frames.push(bytes);
        while let Some(piece) = self.frames.next_frame() {
            let body = match piece {
                Assembled::Body(body) => body,
                Assembled::TooLarge { length_bytes } => {
                    return Err(FrameError::TooLarge { length_bytes });
                }
            };
            let frame = codec::decode_response_body(&body)?;
            if frame.id == REQUEST_ID_NONE {
                if let Response::Error(e) = frame.response {
                    self.unattributed.push(e);
                }
                continue;
            }
            // A reply to an id not in flight is dropped: the server sends one reply per
            // request (PROTO-7), so it is a duplicate or for an abandoned request, and keeping
            // it would let a faulty server grow the map without bound.
            if self.in_flight.contains(&frame.id) {
                self.early.insert(frame.id, frame.response);
            }
        }
        Ok(())
    }

    /// The reply to request `id`, if it has arrived; `id` is then no longer in flight.
    pub fn take(&mut self, id: u64) -> Option<Response> {
        let response = self.early.remove(&id)?;
        self.in_flight.remove(&id);
        Some(response)
    }

    /// The oldest reply the server could not attribute to a request (PROTO-4), if any.
    pub fn take_unattributed(&mut self) -> Option<ErrorReply> {
        (!self.unattributed.is_empty()).then(|| self.unattributed.remove(0))
    }

    /// Gives up on request `id` (a timeout): a reply that still arrives for it is dropped.
    pub fn abandon(&mut self, id: u64) {
        self.in_flight.remove(&id);
        self.early.remove(&id);
    }

    /// Is request `id` in flight (sent, reply not taken, not abandoned)?
    pub fn is_in_flight(&self, id: u64) -> bool {
        self.in_flight.contains(&id)
    }

    /// Requests sent whose reply has not been taken.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Is part of a reply frame waiting for the rest?
    pub fn frame_in_progress(&self) -> bool {
        self.frames.in_progress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sector::proto::ResponseFrame;

    fn reply(id: u64, response: Response) -> Vec<u8> {
        codec::encode_response_frame(&ResponseFrame { id, response }).unwrap()
    }

    #[test]
    fn replies_in_any_order_reach_their_requests_proto7() {
        let mut c = ClientSession::new();
        let (a, fa) = c.request(Request::Flush).unwrap();
        let (b, _) = c.request(Request::Stat).unwrap();
        assert_eq!((a, b), (0, 1));
        assert_eq!(codec::decode_frame(&fa).unwrap().0.id, 0);
        let mut stream = reply(b, Response::Done);
        stream.extend(reply(a, Response::Flushed));
        for cut in 0..stream.len() {
            let mut c2 = ClientSession::new();
            c2.request(Request::Flush).unwrap();
            c2.request(Request::Stat).unwrap();
            c2.receive(&stream[..cut]).unwrap();
            c2.receive(&stream[cut..]).unwrap();
            assert_eq!(c2.take(a), Some(Response::Flushed), "cut at {cut}");
            assert_eq!(c2.take(b), Some(Response::Done));
            assert_eq!(c2.in_flight(), 0);
        }
    }

    #[test]
    fn duplicates_and_replies_to_abandoned_ids_are_dropped() {
        let mut c = ClientSession::new();
        let (a, _) = c.request(Request::Flush).unwrap();
        let (b, _) = c.request(Request::Flush).unwrap();
        c.abandon(a);
        c.receive(&reply(a, Response::Flushed)).unwrap();
        c.receive(&reply(9, Response::Flushed)).unwrap();
        assert_eq!(c.take(a), None);
        c.receive(&reply(b, Response::Flushed)).unwrap();
        c.receive(&reply(b, Response::Done)).unwrap(); // a duplicate overwrites, never grows
        assert_eq!(c.take(b), Some(Response::Done));
        assert_eq!(c.take(b), None, "taken once");
        c.receive(&reply(b, Response::Flushed)).unwrap();
        assert_eq!(c.take(b), None, "not in flight any more");
        assert!(c.early.is_empty());
    }

    #[test]
    fn unattributed_errors_and_bad_frames() {
        let mut c = ClientSession::new();
        let e = ErrorReply::new(super::super::ErrorKind::MalformedFrame, "x");
        c.receive(&reply(REQUEST_ID_NONE, Response::Error(e.clone()))).unwrap();
        assert_eq!(c.take_unattributed(), Some(e));
        assert_eq!(c.take_unattributed(), None);
        assert!(matches!(
            c.receive(&[2, 0, 0, 0, 0xff, 0xff]),
            Err(FrameError::Undecodable { .. })
        ));
        let mut c = ClientSession::new();
        assert!(matches!(c.receive(&u32::MAX.to_le_bytes()), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn in_flight_and_partial_frames_are_reported() {
        let mut c = ClientSession::new();
        assert!(!c.is_in_flight(0), "nothing sent yet");
        let (a, _) = c.request(Request::Flush).unwrap();
        let (b, _) = c.request(Request::Flush).unwrap();
        assert!(c.is_in_flight(a) && c.is_in_flight(b) && !c.is_in_flight(b + 1));
        let f = reply(a, Response::Flushed);
        c.receive(&f[..5]).unwrap();
        assert!(c.frame_in_progress(), "part of a reply is waiting");
        c.receive(&f[5..]).unwrap();
        assert!(!c.frame_in_progress());
        assert!(c.is_in_flight(a), "in flight until taken");
        c.take(a).unwrap();
        c.abandon(b);
        assert!(!c.is_in_flight(a) && !c.is_in_flight(b));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn ids_wrap_before_the_reserved_id_proto2() {
        let mut c = ClientSession { next_id: REQUEST_ID_NONE - 1, ..ClientSession::default() };
        assert_eq!(c.request(Request::Flush).unwrap().0, REQUEST_ID_NONE - 1);
        assert_eq!(c.request(Request::Flush).unwrap().0, 0);
    }
}
