//! The cell server: the real sector protocol server, sans-IO, on the simulated network. One
//! [`ServerSession`] per connection turns the bytes that arrive into requests, the real
//! [`EngineBackend`] executes them on the simulated engine (a flushed `Cas` is its own group
//! commit: the simulator is one thread), and each response goes back as the frame
//! [`ServerSession::reply`] makes. The Unix-socket server (`cellar sector serve`) is the thread
//! and socket shell around the same two pieces.
//!
//! Built when the engine is up and dropped at a crash, with every session: a restarted server
//! knows nothing of the requests it answered before.

use crate::net::ConnId;
use crate::ssd::SimSsd;
use cellar::sector::adapters::SharedEngine;
use cellar::sector::proto::backend::EngineBackend;
use cellar::sector::proto::server::Backend;
use cellar::sector::proto::{Request, ServerEvent, ServerSession};
use std::collections::BTreeMap;

/// What a server did with the bytes of one connection.
#[derive(Debug, Default)]
pub struct Served {
    /// Reply frames to send back on the connection, in order.
    pub replies: Vec<Vec<u8>>,
    /// Requests executed, each with the reply frame it got and whether its I/O met a media
    /// fault (for the judges).
    pub executed: Vec<Executed>,
    /// The session asked to close the connection (PROTO-3).
    pub closed: bool,
}

/// One request the server executed.
#[derive(Debug)]
pub struct Executed {
    /// The request.
    pub request: Request,
    /// Its reply frame, as sent.
    pub reply: Vec<u8>,
    /// Its I/O met an injected media fault (SEC-6: an error is then allowed).
    pub fault_hit: bool,
}

/// The server (see the module docs).
pub struct CellServer {
    backend: EngineBackend<SimSsd>,
    engine: SharedEngine<SimSsd>,
    sessions: BTreeMap<ConnId, ServerSession>,
}

impl CellServer {
    /// A server over `engine`, whose compaction the simulator steps itself.
    pub fn new(engine: SharedEngine<SimSsd>) -> CellServer {
        let backend = EngineBackend::on_shared(engine.clone());
        CellServer { backend, engine, sessions: BTreeMap::new() }
    }

    /// Bytes arrive on `conn`: executes every complete request in them, in order.
    pub fn receive(&mut self, conn: ConnId, bytes: &[u8]) -> Served {
        let mut out = Served::default();
        let session = self.sessions.entry(conn).or_default();
        for event in session.receive(bytes) {
            match event {
                ServerEvent::Request { id, request } => {
                    let before = self.fault_hits();
                    let response = self.backend.handle(request.clone());
                    let fault_hit = self.fault_hits() > before;
                    let reply = ServerSession::reply(id, response).unwrap_or_default();
                    out.replies.push(reply.clone());
                    out.executed.push(Executed { request, reply, fault_hit });
                }
                ServerEvent::Send(frame) => out.replies.push(frame),
                ServerEvent::Close => out.closed = true,
            }
        }
        if out.closed {
            self.sessions.remove(&conn);
        }
        out
    }

    fn fault_hits(&self) -> u64 {
        self.engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .device_mut()
            .fault_hits()
    }
}
