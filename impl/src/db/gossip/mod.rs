//! `cellar::db::gossip`: sans-IO gossip replication of a hierarchical KV between nodes
//! (`specs/gossip-wire.md` GW-1..GW-7, `specs/gossip.md` GOS-*).
//!
//! A [`GossipNode`] is a state machine: the driver (the TCP transport in `cellar node`, or the
//! simulator) feeds it time ([`GossipNode::tick`]) and received messages
//! ([`GossipNode::handle`]), and sends the [`Envelope`]s it returns. It never touches a socket,
//! a clock or the OS random source: peers are chosen with the injected [`Entropy`], time comes
//! in as `now_ms`, blobs go through the injected store.
//!
//! Rounds (GW-4): every `announce_interval_ms` the node announces `(head, clock)` to `fanout`
//! random peers. A receiver that lacks the head starts a fetch (`fetch.rs`): it wants the head's
//! snapshot, then, level by level, only the blobs it does not hold (walking from the announced
//! root and stopping at held blobs, GW-6), and merges the head in once the closure is complete
//! (KV-11). A receiver whose head the announcer lacks announces back (push-pull). Repeated
//! rounds and merges that are joins make every node converge (GOS-5); the spec's per-key want
//! (GOS-6) is realised here as a want of exactly the missing blobs (GW-6).
//!
//! Clients reach a node's KV through [`service::answer`] (request in, response out), and
//! `cellar node` frames gossip messages and client requests on its connections with
//! [`frame`]; both are transport-independent, so the simulator drives the same service.
//!
//! Never: store a blob that was not asked for or whose hash is not the asked CID (GW-5); accept
//! a message over the size limits (GW-2, GW-3); read the clock or draw OS randomness (GW-7).

mod fetch;
pub mod frame;
pub mod service;
mod wire;

pub use fetch::STAGED_BYTES_MAX;
pub use wire::{
    MESSAGE_SIZE_MAX_BYTES, Message, OBJECTS_BATCH_BYTES_MAX, OBJECTS_BLOBS_MAX, WANT_CIDS_MAX,
    WIRE_VERSION, WireError, decode_message, encode_message,
};

use crate::Hash;
use crate::db::hkv::{Hkv, HkvError};
use crate::db::merge::{ClockOrder, MergeOutcome, VectorClock};
use crate::db::snapshot::{self, SnapshotError};
use crate::env::Entropy;
use crate::storage::refs::{Ref, RefError};
use crate::storage::store::StoreError;
use fetch::Fetch;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most fetches in progress from one peer; a new announce drops the oldest (GW-7).
pub const FETCHES_PER_PEER_MAX: usize = 4;

/// A peer, as numbered by the driver (the transport maps ids to addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u32);

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Destination.
    pub to: PeerId,
    /// What to send (encode with [`encode_message`]).
    pub message: Message,
}

/// Errors of gossip handling. The node's state stays consistent after any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GossipError {
    /// Malformed or oversized message (GW-1..GW-3).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A blob nobody asked for, or whose hash matches no wanted CID (GW-5). Not stored.
    #[error("peer sent blob {0}, which was not asked for")]
    UnwantedBlob(Hash),
    /// A received blob failed its CID or tag check, or does not decode.
    #[error("blob {cid} from a peer is corrupt: {detail}")]
    Corrupt {
        /// The blob.
        cid: Hash,
        /// Why.
        detail: String,
    },
    /// A fetch staged more than [`STAGED_BYTES_MAX`].
    #[error("fetch staged {staged_bytes} bytes, over the limit")]
    StagingFull {
        /// Bytes staged.
        staged_bytes: usize,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The KV failed (merging a complete head).
    #[error(transparent)]
    Hkv(#[from] HkvError),
}

impl From<RefError> for GossipError {
    fn from(e: RefError) -> Self {
        match e {
            RefError::Store(s) => Self::Store(s),
            RefError::Corrupt { cid, detail } => Self::Corrupt { cid, detail },
            other => Self::Corrupt { cid: Hash::ZERO, detail: other.to_string() },
        }
    }
}

impl From<SnapshotError> for GossipError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Corrupt { cid, detail } => Self::Corrupt { cid, detail },
            other => Self::Hkv(HkvError::Snapshot(other)),
        }
    }
}

/// Tunables. Defaults suit loopback and the simulator alike.
#[derive(Clone, Copy, Debug)]
pub struct GossipConfig {
    /// How often to announce, in ms. Default 500.
    pub announce_interval_ms: u64,
    /// Peers per announce round. Default 2.
    pub fanout: usize,
    /// A fetch with no progress for this long is dropped, in ms. Default 10 000.
    pub fetch_timeout_ms: u64,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self { announce_interval_ms: 500, fanout: 2, fetch_timeout_ms: 10_000 }
    }
}

/// What handling one message did besides replying.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handled {
    /// Messages to send.
    pub replies: Vec<Envelope>,
    /// A complete head was merged (the driver persists the new head to its cell).
    pub merged: Option<MergeOutcome>,
}

/// One gossiping replica.
pub struct GossipNode {
    db: Hkv,
    peers: Vec<PeerId>,
    entropy: Arc<dyn Entropy>,
    config: GossipConfig,
    next_announce_ms: u64,
    /// Fetches in progress, by (peer, head CID).
    fetches: BTreeMap<(PeerId, Hash), Fetch>,
}

impl std::fmt::Debug for GossipNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipNode")
            .field("db", &self.db)
            .field("peers", &self.peers)
            .field("fetches", &self.fetches.len())
            .finish()
    }
}

impl GossipNode {
    /// A node over `db` gossiping with `peers`; randomness only from `entropy`.
    pub fn new(
        db: Hkv,
        peers: Vec<PeerId>,
        entropy: Arc<dyn Entropy>,
        config: GossipConfig,
    ) -> Self {
        Self { db, peers, entropy, config, next_announce_ms: 0, fetches: BTreeMap::new() }
    }

    /// The KV (read it, write it; call [`GossipNode::announce_soon`] after a commit).
    pub fn db(&self) -> &Hkv {
        &self.db
    }

    /// The KV, mutably.
    pub fn db_mut(&mut self) -> &mut Hkv {
        &mut self.db
    }

    /// Adds a peer (idempotent).
    pub fn add_peer(&mut self, peer: PeerId) {
        if !self.peers.contains(&peer) {
            self.peers.push(peer);
        }
    }

    /// Makes the next tick announce.
    pub fn announce_soon(&mut self) {
        self.next_announce_ms = 0;
    }

    /// Number of fetches in progress.
    pub fn fetches_in_progress(&self) -> usize {
        self.fetches.len()
    }

    fn announce(&self) -> Result<Option<Message>, GossipError> {
        let Some(head) = self.db.head() else { return Ok(None) };
        let clock = snapshot::get(self.db.store().as_ref(), &head)?.clock;
        Ok(Some(Message::Announce { head, clock }))
    }

    /// Advances time: drops stalled fetches (GW-7) and, when due, announces to `fanout` random
    /// peers (GW-4).
    pub fn tick(&mut self, now_ms: u64) -> Result<Vec<Envelope>, GossipError> {
        let timeout = self.config.fetch_timeout_ms;
        self.fetches.retain(|_, f| now_ms.saturating_sub(f.started_ms) < timeout);
        if now_ms < self.next_announce_ms {
            return Ok(Vec::new());
        }
        self.next_announce_ms = now_ms.saturating_add(self.config.announce_interval_ms);
        let Some(message) = self.announce()? else { return Ok(Vec::new()) };
        Ok(self
            .pick_peers()
            .into_iter()
            .map(|to| Envelope { to, message: message.clone() })
            .collect())
    }

    /// `fanout` distinct peers, uniformly at random from the injected entropy (GW-4, GW-7).
    fn pick_peers(&self) -> Vec<PeerId> {
        let mut pool = self.peers.clone();
        let n = self.config.fanout.min(pool.len());
        for i in 0..n {
            let mut draw = [0u8; 8];
            self.entropy.fill(&mut draw);
            let span = (pool.len() - i) as u64;
            let j = i + (u64::from_le_bytes(draw) % span) as usize;
            pool.swap(i, j);
        }
        pool.truncate(n);
        pool
    }

    /// Decodes and handles one message from `from` (GW-1..GW-5).
    pub fn handle_bytes(
        &mut self,
        from: PeerId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Handled, GossipError> {
        let message = decode_message(bytes)?;
        self.handle(from, message, now_ms)
    }

    /// Handles one message from `from`.
    pub fn handle(
        &mut self,
        from: PeerId,
        message: Message,
        now_ms: u64,
    ) -> Result<Handled, GossipError> {
        self.add_peer(from);
        match message {
            Message::Announce { head, clock } => self.on_announce(from, head, &clock, now_ms),
            Message::Want { cids } => self.on_want(from, &cids),
            Message::Objects { blobs } => self.on_objects(from, blobs, now_ms),
        }
    }

    fn on_announce(
        &mut self,
        from: PeerId,
        head: Ref,
        clock: &VectorClock,
        now_ms: u64,
    ) -> Result<Handled, GossipError> {
        let mut out = Handled::default();
        if self.db.head() == Some(head) {
            return Ok(out);
        }
        // GW-4 push-pull: if the announcer is strictly behind us, announce back so it pulls.
        // (Not when concurrent: both would answer each other forever; our merge announces later.)
        if let Some(Message::Announce { head: ours, clock: our_clock }) = self.announce()?
            && clock.compare(&our_clock) == ClockOrder::Before
        {
            out.replies.push(Envelope {
                to: from,
                message: Message::Announce { head: ours, clock: our_clock },
            });
        }
        if self.db.store().exists(&head.cid)? {
            out.merged = Some(self.db.merge_from(&head)?); // closure held (GW-6): merge now
            return Ok(out);
        }
        if self.fetches.keys().any(|(_, h)| *h == head.cid) {
            return Ok(out); // already fetching this head
        }
        // GW-7: at most FETCHES_PER_PEER_MAX fetches per peer; a new announce drops the oldest.
        if self.fetches.keys().filter(|(p, _)| *p == from).count() >= FETCHES_PER_PEER_MAX {
            let oldest = self
                .fetches
                .iter()
                .filter(|((p, _), _)| *p == from)
                .min_by_key(|(_, f)| f.started_ms)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.fetches.remove(&k);
            }
        }
        let (fetch, wants) = Fetch::new(head, now_ms);
        self.fetches.insert((from, head.cid), fetch);
        out.replies.push(Envelope { to: from, message: Message::Want { cids: wants } });
        Ok(out)
    }

    fn on_want(&self, from: PeerId, cids: &[Hash]) -> Result<Handled, GossipError> {
        let mut out = Handled::default();
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0usize;
        for cid in cids {
            let blob = match self.db.store().get(cid) {
                Ok(b) => b,
                Err(StoreError::NotFound(_)) => continue, // the asker times out and retries
                Err(e) => return Err(e.into()),
            };
            // GW-3: close the batch at OBJECTS_BLOBS_MAX blobs or OBJECTS_BATCH_BYTES_MAX bytes.
            if !batch.is_empty()
                && (batch_bytes + blob.len() > OBJECTS_BATCH_BYTES_MAX
                    || batch.len() == OBJECTS_BLOBS_MAX)
            {
                out.replies.push(Envelope {
                    to: from,
                    message: Message::Objects { blobs: std::mem::take(&mut batch) },
                });
                batch_bytes = 0;
            }
            batch_bytes += blob.len();
            batch.push(blob);
        }
        if !batch.is_empty() {
            out.replies.push(Envelope { to: from, message: Message::Objects { blobs: batch } });
        }
        Ok(out)
    }

    fn on_objects(
        &mut self,
        from: PeerId,
        blobs: Vec<Vec<u8>>,
        now_ms: u64,
    ) -> Result<Handled, GossipError> {
        let mut out = Handled::default();
        let store = self.db.store().clone();
        let mut wants: BTreeMap<Hash, Vec<Hash>> = BTreeMap::new();
        for blob in blobs {
            let cid = Hash::of(&blob);
            let key = self
                .fetches
                .iter()
                .find(|((p, _), f)| *p == from && f.wants(&cid))
                .map(|(k, _)| *k);
            let Some(key) = key else {
                // Duplicates of something held or staged are harmless; anything else was never
                // asked for and is not stored (GW-5).
                if store.exists(&cid)? || self.fetches.values().any(|f| f.stages(&cid)) {
                    continue;
                }
                if crate::bugs::active("gossip:store-unwanted-blob") {
                    store.post(&blob)?; // planted bug: GW-5 broken
                    continue;
                }
                return Err(GossipError::UnwantedBlob(cid));
            };
            let Some(fetch) = self.fetches.get_mut(&key) else { continue };
            fetch.started_ms = now_ms; // progress keeps the fetch alive
            match fetch.receive(store.as_ref(), blob) {
                Ok(w) => wants.entry(key.1).or_default().extend(w),
                Err(e) => {
                    self.fetches.remove(&key);
                    return Err(e);
                }
            }
        }
        for cids in wants.values() {
            for chunk in cids.chunks(WANT_CIDS_MAX) {
                out.replies
                    .push(Envelope { to: from, message: Message::Want { cids: chunk.to_vec() } });
            }
        }
        let done: Vec<_> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.is_complete())
            .map(|(k, f)| (*k, f.head))
            .collect();
        for (key, head) in done {
            self.fetches.remove(&key);
            out.merged = Some(self.db.merge_from(&head)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
