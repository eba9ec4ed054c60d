//! The cell service over the real sector protocol: cell clients issue reads and CASes on cells
//! held by the sector engine, speaking `cellar::sector::proto` through [`ClientSession`]s over
//! the simulated network's connections ([`crate::net::Streams`]), to a server that is the real
//! [`ServerSession`](cellar::sector::proto::ServerSession) in front of the real
//! [`EngineBackend`](cellar::sector::proto::backend::EngineBackend) ([`server`]). Every client
//! operation is recorded in [`history`] and judged against the executable spec's
//! `CasRegister` (CELL-1, CELL-2).
//!
//! A cell is the engine key `id | CELL_KEY_BIT`, as for `SectorCell`. A cell CAS is two protocol
//! requests, as any remote client must do it: `Read` (value and version), then, if the value
//! is the expected one, a flushed single-item `Cas` on that version. A `Conflict` sends the
//! client back to `Read`.
//!
//! Retry rule (why the history stays judgeable): the server keeps no table of answered
//! requests, so a retried or hedged `Cas` may find an earlier copy of itself applied. Values
//! are unique per operation and versions never go back, so at most one copy of a swap ever
//! applies, and a `Read` returning the client's own `new` means its operation swapped. A
//! conflict after *one* copy of the swap was sent is a definite "not swapped"; after more than
//! one, a value that is someone else's is ambiguous (an earlier copy may have applied and been
//! overwritten since): the client reports the outcome as unknown, the operation stays open in
//! the history (stateright linearizes it or not, as suits), and the client continues under a
//! new history thread id. This is what a real client must do too.
//!
//! Never uses real sockets, threads or time.

pub mod history;
pub mod server;

use crate::net::{ConnId, Msg};
use crate::rng::SimRng;
use cellar::sector::adapters::CELL_KEY_BIT;
use cellar::sector::proto::{
    CasItem, CasReply, ClientSession, Expected, Request, Response, WriteOptions,
};
use cellar_model::spec::{CasOp, CasRet};
use history::{Histories, Invoked};
use std::collections::BTreeMap;

/// How long a client waits for a reply before it gives up its connections and sends again
/// on a new one, µs.
pub const CLIENT_RETRY_TIMEOUT_US: u64 = 20_000;
/// Simulated time a client thinks between operations, at most, µs.
pub const CLIENT_THINK_US_MAX: u64 = 5_000;
/// Most CAS operations a run may leave open (see the retry rule in the module docs). Bounds
/// the linearizability search, which is exponential in the number of open operations; reads go
/// on after the cap.
pub const AMBIGUOUS_OPS_MAX: u64 = 4;
/// Filler after the 8-byte id of a key/value write through the protocol, at most.
pub const DATA_VALUE_BYTES_MAX: u64 = 1_200;

/// Which request of a cell operation is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the cell's value and version.
    Read,
    /// Swapping, expecting the key at this version (or absent).
    Swap(Expected),
}

#[derive(Debug, Clone)]
struct Pending {
    cell: u32,
    op: CasOp<Vec<u8>>,
    at: Invoked,
    phase: Phase,
    /// Copies of the current phase's request in flight: (connection number, request id).
    sent: Vec<(u32, u64)>,
    /// Copies of the swap sent so far (retries and hedges): above one, a conflict is ambiguous.
    swaps_sent: u32,
    /// The retry timer that is current (older timers are stale).
    timer: u64,
}

#[derive(Debug)]
struct Client {
    thread: u32,
    issued: u32,
    pending: Option<Pending>,
    last_seen: BTreeMap<u32, Vec<u8>>,
    /// A key/value request in flight (see [`Cells::issue`]): its copies and its timer.
    data: Option<(Vec<(u32, u64)>, u64)>,
    /// Open connections, by connection number.
    conns: BTreeMap<u32, ClientSession>,
    next_conn: u32,
    next_timer: u64,
}

/// Outcome counters of the cell service.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CellStats {
    /// Operations that completed with a definite answer.
    pub completed: u64,
    /// CASes whose outcome stayed unknown (left open in the history).
    pub ambiguous: u64,
    /// Requests the server executed (including retries and hedged copies).
    pub served: u64,
    /// Request copies sent (retries and hedges included).
    pub requests_sent: u64,
    /// Hedged copies (a second copy of a request on another connection).
    pub hedged: u64,
    /// Frames sent in two pieces.
    pub split_frames: u64,
    /// Key/value requests (writes and reads of the workload's keys) answered.
    pub data_answered: u64,
    /// Key/value requests given up after a timeout.
    pub data_given_up: u64,
}

/// What the world must do after a cell-service step.
#[derive(Debug)]
pub enum Action {
    /// Send bytes on a connection.
    Send(Msg),
    /// Wake the client after its retry timeout (`timer` names the wait).
    Timer {
        /// The client.
        client: u32,
        /// The timer.
        timer: u64,
    },
    /// Wake the client to issue its next operation after thinking.
    Think {
        /// The client.
        client: u32,
    },
}

/// The clients and the histories.
pub struct Cells {
    clients: Vec<Client>,
    /// The key/value workload's keys (`0..data_keys`), which clients also write and read
    /// through the protocol, judged by `SectorSpec` where the server executes them.
    data_keys: u64,
    histories: Histories,
    ops_per_client_max: u32,
    /// Counters.
    pub stats: CellStats,
}

impl Cells {
    /// `clients` clients on `cells` cells, each issuing at most `ops_per_client_max`; with
    /// `data_keys` > 0, a third of the operations are writes and reads of those keys.
    pub fn new(clients: u32, cells: u32, ops_per_client_max: u32, data_keys: u64) -> Cells {
        Cells {
            data_keys,
            clients: (0..clients)
                .map(|i| Client {
                    thread: i,
                    issued: 0,
                    pending: None,
                    last_seen: BTreeMap::new(),
                    data: None,
                    conns: BTreeMap::new(),
                    next_conn: 0,
                    next_timer: 0,
                })
                .collect(),
            histories: Histories::new(cells),
            ops_per_client_max,
            stats: CellStats::default(),
        }
    }

    /// Operations still waiting for an answer.
    pub fn pending(&self) -> usize {
        self.clients.iter().filter(|c| c.pending.is_some() || c.data.is_some()).count()
    }

    /// CELL-1: every cell's history is linearizable (see [`Histories::check_linearizable`]).
    pub fn check_linearizable(&self) -> Result<(), String> {
        self.histories.check_linearizable()
    }

    /// Client `i` issues its next operation (if it may). `hedge_ppm`: the chance that a request
    /// is also sent on a second connection.
    pub fn issue(
        &mut self,
        i: u32,
        rng: &mut SimRng,
        uid: u64,
        now_us: u64,
        hedge_ppm: u32,
    ) -> Vec<Action> {
        let cells = u64::from(self.histories.cells());
        let max = self.ops_per_client_max;
        let Some(c) = self.clients.get_mut(i as usize) else { return Vec::new() };
        if c.pending.is_some() || c.data.is_some() || c.issued >= max {
            return Vec::new();
        }
        if self.data_keys > 0 && rng.below(3) == 0 {
            c.issued += 1;
            let key = rng.below(self.data_keys);
            let request = if rng.coin() {
                // Unique per write: the id first, then filler up to a drawn length.
                let mut value = uid.to_le_bytes().to_vec();
                value.resize(8 + rng.below(DATA_VALUE_BYTES_MAX) as usize, 0x5a);
                let flush = rng.coin();
                Request::Write { key, value, options: WriteOptions { flush, ..Default::default() } }
            } else {
                Request::Read { key }
            };
            let (mut out, sent) = send_request(i, c, &request, &mut self.stats, rng, 0);
            c.next_timer += 1;
            c.data = Some((sent, c.next_timer));
            out.push(Action::Timer { client: i, timer: c.next_timer });
            return out;
        }
        let cell = rng.below(cells) as u32;
        // Past the cap on ambiguous (open) CASes only reads are issued: every open operation
        // multiplies the linearizability search, and seeds 7235 and 1666 once ran for hours.
        let cas_allowed = self.stats.ambiguous < AMBIGUOUS_OPS_MAX;
        let op = if !cas_allowed || rng.below(3) == 0 {
            CasOp::Read
        } else {
            let seen = c.last_seen.get(&cell).cloned().unwrap_or_default();
            // Mostly the value last seen (likely to swap), sometimes a guess that must lose.
            let expected = if rng.below(4) == 0 { uid.to_le_bytes()[..4].to_vec() } else { seen };
            CasOp::Cas { expected, new: uid.to_le_bytes().to_vec() }
        };
        self.start(i, cell, op, now_us, rng, hedge_ppm)
    }

    /// Client `i` starts `op` on `cell` (if it has no operation pending).
    pub fn start(
        &mut self,
        i: u32,
        cell: u32,
        op: CasOp<Vec<u8>>,
        now_us: u64,
        rng: &mut SimRng,
        hedge_ppm: u32,
    ) -> Vec<Action> {
        let Some(c) = self.clients.get_mut(i as usize) else { return Vec::new() };
        if c.pending.is_some() {
            return Vec::new();
        }
        c.issued += 1;
        let at = self.histories.invoke(cell, c.thread, &op, now_us);
        let p =
            Pending { cell, op, at, phase: Phase::Read, sent: Vec::new(), swaps_sent: 0, timer: 0 };
        c.pending = Some(p);
        send_phase(i, c, &mut self.stats, rng, hedge_ppm)
    }

    /// Client `i`'s retry timer `timer` fired: if its operation is still waiting on that timer,
    /// it closes its connections and sends the current request again on a new one.
    pub fn timeout(&mut self, i: u32, timer: u64, rng: &mut SimRng, hedge_ppm: u32) -> Vec<Action> {
        let Some(c) = self.clients.get_mut(i as usize) else { return Vec::new() };
        if c.data.as_ref().is_some_and(|(_, t)| *t == timer) {
            // Not retried: a write sent again would be a second write of the same value (the
            // server judges each one it executes; the client needs no answer).
            c.data = None;
            c.conns.clear();
            self.stats.data_given_up += 1;
            return vec![Action::Think { client: i }];
        }
        if c.pending.as_ref().is_none_or(|p| p.timer != timer) {
            return Vec::new();
        }
        c.conns.clear();
        send_phase(i, c, &mut self.stats, rng, hedge_ppm)
    }

    /// Bytes from the server reach client `conn.0` on its connection `conn.1`. A reply frame
    /// the client cannot read, or a reply of the wrong kind, is a protocol violation by the
    /// server (`Err`).
    pub fn on_bytes(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        now_us: u64,
        rng: &mut SimRng,
        hedge_ppm: u32,
    ) -> Result<Vec<Action>, String> {
        let (i, n) = conn;
        let Some(c) = self.clients.get_mut(i as usize) else { return Ok(Vec::new()) };
        let Some(session) = c.conns.get_mut(&n) else {
            return Ok(Vec::new()); // a connection the client closed: nobody reads it
        };
        session.receive(bytes).map_err(|e| format!("client {i} conn {n}: bad reply frame: {e}"))?;
        if let Some((sent, _)) = &c.data {
            let Some(response) = take_reply(session, sent, n) else {
                return Ok(Vec::new());
            };
            // What it says was judged where the server executed it; here only its kind.
            if !matches!(
                response,
                Response::Written { .. } | Response::Record(_) | Response::Error(_)
            ) {
                return Err(format!("client {i}: reply {response:?} to a write or read"));
            }
            c.data = None;
            self.stats.data_answered += 1;
            return Ok(vec![Action::Think { client: i }]);
        }
        let Some(p) = c.pending.as_mut() else { return Ok(Vec::new()) };
        let Some(response) = take_reply(session, &p.sent, n) else {
            return Ok(Vec::new());
        };
        let ret = match (p.phase, response) {
            // The server could not serve it (down, device error): the timer sends it again.
            (_, Response::Error(_)) => return Ok(Vec::new()),
            (Phase::Read, Response::Record(r)) => {
                let (value, version) = r.map_or((Vec::new(), Expected::Absent), |r| {
                    (r.value, Expected::Version(r.version))
                });
                match &p.op {
                    CasOp::Read => CasRet::Read(value),
                    CasOp::Cas { new, .. } if value == *new => {
                        CasRet::Cas { swapped: true, current: value } // a copy of ours applied
                    }
                    CasOp::Cas { expected, .. } if value == *expected => {
                        p.phase = Phase::Swap(version);
                        return Ok(send_phase(i, c, &mut self.stats, rng, hedge_ppm));
                    }
                    CasOp::Cas { .. } if p.swaps_sent > 1 => {
                        // Ambiguous: leave the operation open; continue as a new thread.
                        c.pending = None;
                        c.thread += 1_000;
                        self.stats.ambiguous += 1;
                        return Ok(vec![Action::Think { client: i }]);
                    }
                    CasOp::Cas { .. } => CasRet::Cas { swapped: false, current: value },
                }
            }
            (Phase::Swap(_), Response::Cas(CasReply::Applied { .. })) => {
                let CasOp::Cas { new, .. } = &p.op else {
                    return Err(format!("client {i}: a swap phase for a read"));
                };
                CasRet::Cas { swapped: true, current: new.clone() }
            }
            (Phase::Swap(_), Response::Cas(CasReply::Conflict { .. })) => {
                p.phase = Phase::Read; // read again: whose value is it now?
                return Ok(send_phase(i, c, &mut self.stats, rng, hedge_ppm));
            }
            (phase, other) => {
                return Err(format!("client {i}: reply {other:?} to a {phase:?} request"));
            }
        };
        let current = match &ret {
            CasRet::Read(v) | CasRet::Cas { current: v, .. } => v.clone(),
        };
        c.last_seen.insert(p.cell, current);
        self.histories.ret(p.at, ret, now_us);
        abandon(c);
        c.pending = None;
        self.stats.completed += 1;
        Ok(vec![Action::Think { client: i }])
    }

    /// The server executed a request.
    pub fn served(&mut self) {
        self.stats.served += 1;
    }
}

/// The reply, arrived on connection `n`, to one of the request copies `sent`, if any.
fn take_reply(session: &mut ClientSession, sent: &[(u32, u64)], n: u32) -> Option<Response> {
    sent.iter().filter(|(sn, _)| *sn == n).find_map(|(_, id)| session.take(*id))
}

/// Forgets the requests of the current phase: replies still coming for them are dropped.
fn abandon(c: &mut Client) {
    let Some(p) = c.pending.as_mut() else { return };
    for (n, id) in p.sent.drain(..) {
        if let Some(s) = c.conns.get_mut(&n) {
            s.abandon(id);
        }
    }
}

/// Sends the request of the pending operation's current phase (on the newest open connection,
/// or a new one; sometimes a hedged copy on another new one) and arms a fresh retry timer.
fn send_phase(
    i: u32,
    c: &mut Client,
    stats: &mut CellStats,
    rng: &mut SimRng,
    hedge_ppm: u32,
) -> Vec<Action> {
    abandon(c);
    let Some(p) = c.pending.as_ref() else { return Vec::new() };
    let key = u64::from(p.cell) | CELL_KEY_BIT;
    let request = match (p.phase, &p.op) {
        (Phase::Swap(expected), CasOp::Cas { new, .. }) => Request::Cas {
            items: vec![CasItem { key, expected, new_value: Some(new.clone()) }],
            flush: true,
        },
        _ => Request::Read { key },
    };
    let (mut out, sent) = send_request(i, c, &request, stats, rng, hedge_ppm);
    let Some(p) = c.pending.as_mut() else { return Vec::new() };
    if matches!(p.phase, Phase::Swap(_)) {
        p.swaps_sent += sent.len() as u32;
    }
    p.sent = sent;
    c.next_timer += 1;
    p.timer = c.next_timer;
    out.push(Action::Timer { client: i, timer: p.timer });
    out
}

#[cfg(test)]
mod tests;

/// Sends `request` on client `i`'s newest open connection (or a new one), and sometimes a
/// hedged copy on another new one; returns the sends and the copies (connection, request id).
fn send_request(
    i: u32,
    c: &mut Client,
    request: &Request,
    stats: &mut CellStats,
    rng: &mut SimRng,
    hedge_ppm: u32,
) -> (Vec<Action>, Vec<(u32, u64)>) {
    let hedge = rng.chance_ppm(hedge_ppm);
    let (mut out, mut sent) = (Vec::new(), Vec::new());
    for copy in 0..if hedge { 2u64 } else { 1 } {
        let n = match c.conns.keys().next_back() {
            Some(n) if copy == 0 => *n,
            _ => {
                let n = c.next_conn;
                c.next_conn += 1;
                c.conns.insert(n, ClientSession::new());
                n
            }
        };
        let Some(session) = c.conns.get_mut(&n) else { continue };
        // Requests built here are small and always encode.
        let Ok((id, bytes)) = session.request(request.clone()) else { continue };
        sent.push((n, id));
        stats.requests_sent += 1;
        stats.hedged += copy;
        // Sometimes the frame leaves in two pieces, so the server assembles it.
        let cut = if bytes.len() > 1 && rng.below(4) == 0 {
            stats.split_frames += 1;
            1 + rng.below(bytes.len() as u64 - 1) as usize
        } else {
            bytes.len()
        };
        let (a, b) = bytes.split_at(cut);
        for piece in [a, b].into_iter().filter(|p| !p.is_empty()) {
            out.push(Action::Send(Msg { conn: (i, n), to_server: true, bytes: piece.to_vec() }));
        }
    }
    (out, sent)
}
