//! `cellar node`'s outgoing side (`specs/node-protocol.md` NP-1, NP-4): one persistent secure
//! channel per peer address, reused for every gossip message to that peer, so the Noise
//! handshake is paid once per peer instead of once per message (docs/benchmarks.md, "Secure
//! channel on gossip").
//!
//! Each peer has a writer thread fed by a bounded queue: the threads that read and handle
//! messages only queue their replies, so a node never blocks reading because it is blocked
//! writing to a peer that is blocked writing to it. A full queue drops the message (gossip
//! repeats itself: announces are periodic, and a `Want` whose `Objects` never come is asked
//! again), and says so on stderr.

use crate::link::{Credentials, Link};
use cellar::net::limits::ConnectionLimits;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};

/// Most peer addresses with an outgoing channel and a writer thread (NP-4).
pub const OUTGOING_PEERS_MAX: usize = 128;
/// Most bodies queued for one peer; more are dropped (NP-4).
pub const QUEUE_BODIES_MAX: usize = 256;

/// The outgoing channels of one node.
pub struct Outbox {
    creds: Credentials,
    limits: ConnectionLimits,
    queues: Mutex<HashMap<String, SyncSender<Vec<u8>>>>,
}

impl Outbox {
    /// No channel is opened until the first message to a peer.
    pub fn new(creds: Credentials, limits: ConnectionLimits) -> Self {
        Self { creds, limits, queues: Mutex::new(HashMap::new()) }
    }

    /// Queues `body` (one node-protocol body) for the node listening at `addr`.
    ///
    /// # Errors
    /// The message was dropped: the peer's queue is full, or there are already
    /// [`OUTGOING_PEERS_MAX`] peers, or its writer could not be started.
    pub fn send(&self, addr: &str, body: Vec<u8>) -> Result<(), String> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if !queues.contains_key(addr) {
            if queues.len() >= OUTGOING_PEERS_MAX {
                return Err(format!("dropped: already {OUTGOING_PEERS_MAX} peers"));
            }
            let (tx, rx) = sync_channel(QUEUE_BODIES_MAX);
            let (peer, creds, limits) = (addr.to_owned(), self.creds.clone(), self.limits);
            std::thread::Builder::new()
                .name(format!("send {addr}"))
                .spawn(move || writer(&peer, &creds, limits, &rx))
                .map_err(|e| format!("dropped: no writer thread: {e}"))?;
            queues.insert(addr.to_owned(), tx);
        }
        let Some(queue) = queues.get(addr) else { return Err("dropped: no queue".into()) };
        match queue.try_send(body) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                Err(format!("dropped: {QUEUE_BODIES_MAX} messages already queued"))
            }
            Err(TrySendError::Disconnected(_)) => {
                queues.remove(addr);
                Err("dropped: the writer stopped".into())
            }
        }
    }
}

/// Opens a channel to `addr` and waits for its handshake to finish.
fn open(addr: &str, creds: &Credentials, limits: ConnectionLimits) -> std::io::Result<Link> {
    let mut link = Link::connect(addr, creds, limits)?;
    link.establish()?;
    Ok(link)
}

/// Sends every queued body on one channel, reopening it when the peer closed it, it failed,
/// or it sat idle long enough that the peer may be closing it (NP-4). A body that cannot be
/// sent on a fresh channel either is dropped.
fn writer(addr: &str, creds: &Credentials, limits: ConnectionLimits, queue: &Receiver<Vec<u8>>) {
    let mut link: Option<Link> = None;
    for body in queue {
        if let Some(l) = link.as_mut() {
            if l.usable(limits.idle_timeout_ms) && l.send(&body).is_ok() {
                continue;
            }
            link = None;
        }
        match open(addr, creds, limits).and_then(|mut l| l.send(&body).map(|()| l)) {
            Ok(l) => link = Some(l),
            Err(e) => eprintln!("send to {addr}: {e}"),
        }
    }
}
