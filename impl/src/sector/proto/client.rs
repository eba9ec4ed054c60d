//! [`SectorClient`]: a blocking client for the sector protocol over a Unix domain socket.
//!
//! It can pipeline: [`SectorClient::send`] writes a request and returns its id without waiting,
//! [`SectorClient::recv`] waits for the reply to one id, keeping replies to other ids that arrive
//! first (PROTO-7: replies may come back in any order). The typed helpers (`read`, `write`, ...)
//! are `send` + `recv` and turn error replies into [`ClientError::Server`].
//!
//! Never trusts the server: a malformed reply frame is a typed [`ClientError`], and the number of
//! stashed early replies is bounded by the number of requests in flight.

use super::codec::{self, ReadFrame};
use super::{
    CasItem, CasReply, ErrorKind, ErrorReply, Expected, Key, KeyRange, REQUEST_ID_NONE, Record,
    Request, RequestFrame, Response, StatReply, Version, WriteOptions,
};
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Errors of client calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket failed.
    #[error("socket I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be encoded or a reply frame could not be decoded.
    #[error("protocol error: {0}")]
    Frame(#[from] codec::FrameError),
    /// The server closed the connection before answering.
    #[error("the server closed the connection with {in_flight} requests unanswered")]
    Closed {
        /// Requests still waiting for a reply.
        in_flight: usize,
    },
    /// The server answered with an error reply.
    #[error("server error: {0}")]
    Server(ErrorReply),
    /// The server answered with a reply of the wrong kind for the request.
    #[error("unexpected reply to {request}: {response:?}")]
    UnexpectedReply {
        /// The request's operation name.
        request: &'static str,
        /// What came back.
        response: Box<Response>,
    },
    /// `recv` was asked for an id that is not in flight.
    #[error("request id {0} is not in flight")]
    UnknownId(u64),
}

impl ClientError {
    /// The server's error kind, if this is an error reply.
    pub fn server_kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Server(e) => Some(e.kind),
            _ => None,
        }
    }
}

/// A blocking, pipelining client (see the module docs).
#[derive(Debug)]
pub struct SectorClient {
    writer: BufWriter<UnixStream>,
    reader: BufReader<UnixStream>,
    next_id: u64,
    in_flight: HashSet<u64>,
    early: HashMap<u64, Response>,
    /// Replies with [`REQUEST_ID_NONE`] (the server could not read a frame's id), oldest first.
    unattributed: Vec<ErrorReply>,
}

impl SectorClient {
    /// Connects to the server listening on `socket`.
    pub fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::from_stream(UnixStream::connect(socket)?)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: UnixStream) -> Result<Self, ClientError> {
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Self {
            writer: BufWriter::new(stream),
            reader,
            next_id: 0,
            in_flight: HashSet::new(),
            early: HashMap::new(),
            unattributed: Vec::new(),
        })
    }

    /// Sends a request without waiting for its reply and returns its id. Requests are buffered:
    /// call [`SectorClient::recv`] (which flushes) to collect the reply.
    pub fn send(&mut self, request: Request) -> Result<u64, ClientError> {
        let id = self.next_id;
        // Ids count up from 0 and wrap before the reserved id (PROTO-2).
        self.next_id = if id + 1 == REQUEST_ID_NONE { 0 } else { id + 1 };
        let bytes = codec::encode_request_frame(&RequestFrame { id, request })?;
        self.writer.write_all(&bytes)?;
        self.in_flight.insert(id);
        Ok(id)
    }

    /// Writes raw bytes to the socket (for tests of the server's handling of malformed
    /// frames). The caller is responsible for what they mean.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        Ok(())
    }

    /// Waits for the reply to request `id`, stashing replies to other requests.
    pub fn recv(&mut self, id: u64) -> Result<Response, ClientError> {
        if !self.in_flight.contains(&id) {
            return Err(ClientError::UnknownId(id));
        }
        self.writer.flush()?;
        loop {
            if let Some(response) = self.early.remove(&id) {
                self.in_flight.remove(&id);
                return Ok(response);
            }
            self.read_one()?;
        }
    }

    /// Waits for the next reply the server cannot attribute to a request id (its answer to a
    /// frame too damaged to name one, PROTO-4).
    pub fn recv_unattributed(&mut self) -> Result<ErrorReply, ClientError> {
        self.writer.flush()?;
        while self.unattributed.is_empty() {
            self.read_one()?;
        }
        Ok(self.unattributed.remove(0))
    }

    /// Number of requests sent whose reply has not been collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn read_one(&mut self) -> Result<(), ClientError> {
        let body = match codec::read_frame_body(&mut self.reader)? {
            ReadFrame::Body(body) => body,
            ReadFrame::TooLarge { length_bytes } => {
                return Err(codec::FrameError::TooLarge { length_bytes }.into());
            }
            ReadFrame::Eof | ReadFrame::Truncated => {
                return Err(ClientError::Closed { in_flight: self.in_flight.len() });
            }
        };
        let frame = codec::decode_response_body(&body)?;
        if frame.id == REQUEST_ID_NONE {
            if let Response::Error(e) = frame.response {
                self.unattributed.push(e);
            }
            return Ok(());
        }
        if self.in_flight.contains(&frame.id) {
            self.early.insert(frame.id, frame.response);
        }
        // A reply to an id not in flight is dropped: the server never sends one (PROTO-7), and
        // keeping it would let a faulty server grow the map without bound.
        Ok(())
    }

    /// Sends `request` and waits for its reply; error replies become [`ClientError::Server`].
    pub fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.send(request)?;
        match self.recv(id)? {
            Response::Error(e) => Err(ClientError::Server(e)),
            other => Ok(other),
        }
    }

    /// The current record of `key`, or `None`.
    pub fn read(&mut self, key: Key) -> Result<Option<Record>, ClientError> {
        match self.call(Request::Read { key })? {
            Response::Record(r) => Ok(r),
            other => unexpected("read", other),
        }
    }

    /// The records of many keys and ranges (absent keys left out).
    pub fn read_range(&mut self, ranges: Vec<KeyRange>) -> Result<Vec<Record>, ClientError> {
        match self.call(Request::ReadRange { ranges })? {
            Response::Records(r) => Ok(r),
            other => unexpected("read_range", other),
        }
    }

    /// A record and the chain its `next` pointers lead to.
    pub fn read_follow(&mut self, key: Key, records_max: u32) -> Result<Vec<Record>, ClientError> {
        match self.call(Request::ReadFollow { key, records_max })? {
            Response::Records(r) => Ok(r),
            other => unexpected("read_follow", other),
        }
    }

    /// Replaces `key`'s value; returns the new version.
    pub fn write(
        &mut self,
        key: Key,
        value: Vec<u8>,
        options: WriteOptions,
    ) -> Result<Version, ClientError> {
        self.written("write", Request::Write { key, value, options })
    }

    /// Extends `key`'s value; returns the new version.
    pub fn append(
        &mut self,
        key: Key,
        value: Vec<u8>,
        options: WriteOptions,
    ) -> Result<Version, ClientError> {
        self.written("append", Request::Append { key, value, options })
    }

    /// Restores the version a revertible write replaced.
    pub fn revert(&mut self, key: Key) -> Result<(), ClientError> {
        match self.call(Request::Revert { key })? {
            Response::Done => Ok(()),
            other => unexpected("revert", other),
        }
    }

    /// Makes a revertible write permanent.
    pub fn commit(&mut self, key: Key) -> Result<(), ClientError> {
        match self.call(Request::Commit { key })? {
            Response::Done => Ok(()),
            other => unexpected("commit", other),
        }
    }

    fn written(&mut self, op: &'static str, request: Request) -> Result<Version, ClientError> {
        match self.call(request)? {
            Response::Written { version } => Ok(version),
            other => unexpected(op, other),
        }
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(
        &mut self,
        key: Key,
        expected: Option<Expected>,
        flush: bool,
    ) -> Result<bool, ClientError> {
        match self.call(Request::Delete { key, expected, flush })? {
            Response::Deleted { existed } => Ok(existed),
            other => unexpected("delete", other),
        }
    }

    /// Is `key` as `expected`?
    pub fn compare(&mut self, key: Key, expected: Expected) -> Result<bool, ClientError> {
        match self.call(Request::Compare { key, expected })? {
            Response::Compared { matches } => Ok(matches),
            other => unexpected("compare", other),
        }
    }

    /// Multi-key compare-and-swap, all or nothing.
    pub fn cas(&mut self, items: Vec<CasItem>, flush: bool) -> Result<CasReply, ClientError> {
        match self.call(Request::Cas { items, flush })? {
            Response::Cas(r) => Ok(r),
            other => unexpected("cas", other),
        }
    }

    /// Group commit: everything acknowledged before this call is durable when it returns.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        match self.call(Request::Flush)? {
            Response::Flushed => Ok(()),
            other => unexpected("flush", other),
        }
    }

    /// Re-reads `key`'s sectors and checks their CRCs; returns the verified version.
    pub fn verify(&mut self, key: Key) -> Result<Version, ClientError> {
        match self.call(Request::Verify { key })? {
            Response::Verified { version } => Ok(version),
            other => unexpected("verify", other),
        }
    }

    /// Engine statistics.
    pub fn stat(&mut self) -> Result<StatReply, ClientError> {
        match self.call(Request::Stat)? {
            Response::Stat(s) => Ok(s),
            other => unexpected("stat", other),
        }
    }
}

fn unexpected<T>(request: &'static str, response: Response) -> Result<T, ClientError> {
    Err(ClientError::UnexpectedReply { request, response: Box::new(response) })
}
