//! [`SectorClient`]: a blocking client for the sector protocol over a Unix domain socket.
//!
//! It can pipeline: [`SectorClient::send`] writes a request and returns its id without waiting,
//! [`SectorClient::recv`] waits for the reply to one id, keeping replies to other ids that arrive
//! first (PROTO-7: replies may come back in any order). The typed helpers (`read`, `write`, ...)
//! are `send` + `recv` and turn error replies into [`ClientError::Server`].
//!
//! Never trusts the server: a malformed reply frame is a typed [`ClientError`], and the number of
//! stashed early replies is bounded by the number of requests in flight.

use super::client_session::ClientSession;
use super::codec;
use super::{
    CasItem, CasReply, ErrorKind, ErrorReply, Expected, Key, KeyRange, Record, Request, Response,
    StatReply, Version, WriteOptions,
};
use std::io::{BufWriter, Read, Write};
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

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A blocking, pipelining client (see the module docs): the socket shell around a
/// [`ClientSession`], which owns ids, framing and the stash of early replies.
pub struct SectorClient {
    writer: BufWriter<UnixStream>,
    reader: UnixStream,
    session: ClientSession,
    /// The socket's bytes land here, one read at a time (allocated once).
    buf: Vec<u8>,
    /// A reply frame the session refused: the stream cannot be trusted after it.
    broken: Option<codec::FrameError>,
}

impl std::fmt::Debug for SectorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectorClient")
            .field("session", &self.session)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl SectorClient {
    /// Connects to the server listening on `socket`.
    pub fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::from_stream(UnixStream::connect(socket)?)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: UnixStream) -> Result<Self, ClientError> {
        let reader = stream.try_clone()?;
        Ok(Self {
            writer: BufWriter::new(stream),
            reader,
            session: ClientSession::new(),
            buf: vec![0u8; READ_CHUNK_BYTES],
            broken: None,
        })
    }

    /// Sends a request without waiting for its reply and returns its id. Requests are buffered:
    /// call [`SectorClient::recv`] (which flushes) to collect the reply.
    pub fn send(&mut self, request: Request) -> Result<u64, ClientError> {
        let (id, bytes) = self.session.request(request)?;
        if let Err(e) = self.writer.write_all(&bytes) {
            self.session.abandon(id);
            return Err(e.into());
        }
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
        if !self.session.is_in_flight(id) {
            return Err(ClientError::UnknownId(id));
        }
        self.writer.flush()?;
        loop {
            if let Some(response) = self.session.take(id) {
                return Ok(response);
            }
            self.read_some()?;
        }
    }

    /// Waits for the next reply the server cannot attribute to a request id (its answer to a
    /// frame too damaged to name one, PROTO-4).
    pub fn recv_unattributed(&mut self) -> Result<ErrorReply, ClientError> {
        self.writer.flush()?;
        loop {
            if let Some(e) = self.session.take_unattributed() {
                return Ok(e);
            }
            self.read_some()?;
        }
    }

    /// Number of requests sent whose reply has not been collected.
    pub fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// Reads what the socket has and hands it to the session.
    fn read_some(&mut self) -> Result<(), ClientError> {
        if let Some(e) = &self.broken {
            return Err(e.clone().into());
        }
        let n = loop {
            match self.reader.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            // The end of the stream, mid-frame or not (PROTO-5).
            return Err(ClientError::Closed { in_flight: self.session.in_flight() });
        }
        if let Err(e) = self.session.receive(self.buf.get(..n).unwrap_or_default()) {
            self.broken = Some(e.clone());
            return Err(e.into());
        }
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
