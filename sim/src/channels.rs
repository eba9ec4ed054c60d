//! Gossip over secure channels in the simulator (`specs/channel.md`): every gossip message a
//! node sends travels as records of a real `cellar::net::channel::Channel`, one connection per
//! ordered pair of nodes (re-opened after a failure or a crash), so the simulated network, and
//! the attacker on it (`attacker.rs`), see only channel bytes.
//!
//! The caller (the world) carries the [`Segment`]s this module hands out over its lossy network
//! and calls [`SecureNet::deliver`] on arrival; a whole, authenticated message comes back as a
//! [`Packet`] for [`crate::gossip::Cluster::deliver`]. Lost, duplicated, reordered or tampered
//! records end their connection (CH-4, CH-5, CH-7): the gossip above sees lost messages only.
//!
//! Oracles:
//! - **CH-5** (checked on every delivery): a message a channel hands to a node is exactly the
//!   next message the authenticated initiator of that connection sent; a connection opened by
//!   the attacker never delivers one. So no frame that fails authentication reaches, let alone
//!   changes, a node.
//! - **CH-10** ([`SecretScan`]): no byte string the network carried contains the key half of a
//!   ref any node has held (the simulator knows them all).
//!
//! Never: reads the clock, draws OS randomness or spawns threads; seeds come from the caller.

use crate::gossip::{Broken, Packet};
use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::{Channel, ChannelConfig, ChannelEvent, ChannelPsk, StaticKeys};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

/// The initiator id of connections the attacker opens.
pub const ATTACKER: u32 = u32::MAX;
/// The simulated channels' handshake deadline, ms (simulated runs last a fraction of a second,
/// so the 5 s default is scaled down like the gossip timers).
pub const SIM_HANDSHAKE_TIMEOUT_MS: u64 = 20;
/// Most responder ends one node keeps; the oldest is dropped past it (bounds what an attacker
/// opening connections can make a node hold).
pub const RESPONDERS_PER_NODE_MAX: usize = 16;

/// One connection: its initiator, its responder and a number unique to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    /// The connecting node ([`ATTACKER`] for the attacker's connections).
    pub from: u32,
    /// The accepting node.
    pub to: u32,
    /// Unique per connection.
    pub epoch: u64,
}

/// Channel bytes in flight on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The connection.
    pub conn: ConnId,
    /// Towards the responder (else towards the initiator).
    pub to_responder: bool,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Segment {
    /// The (sender, receiver) nodes of this segment, for link cuts.
    pub fn link(&self) -> (u32, u32) {
        if self.to_responder {
            (self.conn.from, self.conn.to)
        } else {
            (self.conn.to, self.conn.from)
        }
    }
}

/// Counters of the secure network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Connections opened by nodes.
    pub opened: u64,
    /// Handshakes that finished (either end).
    pub established: u64,
    /// Connections a node's end refused or dropped (failed handshake or record, timeout).
    pub refused: u64,
}

struct Initiator {
    epoch: u64,
    channel: Channel,
}

/// The secure network: every node's keys and channel ends.
pub struct SecureNet {
    keys: Vec<StaticKeys>,
    psk: ChannelPsk,
    entropy: Arc<dyn Entropy>,
    config: ChannelConfig,
    out: BTreeMap<(u32, u32), Initiator>,
    inbound: BTreeMap<ConnId, Channel>,
    /// Messages each honest connection's initiator sent and its responder has not yet
    /// delivered, in order (CH-5 oracle).
    sent: BTreeMap<ConnId, VecDeque<Vec<u8>>>,
    next_epoch: u64,
    /// Counters.
    pub counts: ChannelCounts,
}

fn broken(rule: &'static str, detail: String) -> Broken {
    Broken { rule, detail }
}

const CH5: &str = "CH-5 a node acts only on messages its authenticated peer sent";

impl SecureNet {
    /// `n` nodes sharing `psk`; keys and handshakes draw from `seed`.
    ///
    /// # Errors
    /// A key could not be generated (never in practice).
    pub fn new(n: u32, psk: ChannelPsk, seed: u64) -> Result<Self, Broken> {
        let keys = (0..n)
            .map(|i| StaticKeys::generate(Arc::new(DetEntropy::new(seed ^ (u64::from(i) << 40)))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| broken("channel keys generate", e.to_string()))?;
        let config =
            ChannelConfig { handshake_timeout_ms: SIM_HANDSHAKE_TIMEOUT_MS, ..Default::default() };
        Ok(Self {
            keys,
            psk,
            entropy: Arc::new(DetEntropy::new(seed.wrapping_add(1))),
            config,
            out: BTreeMap::new(),
            inbound: BTreeMap::new(),
            sent: BTreeMap::new(),
            next_epoch: 1,
            counts: ChannelCounts::default(),
        })
    }

    /// A fresh connection number (the attacker's connections draw from it too).
    pub fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// Sends a gossip packet over its pair's connection, opening one if needed.
    ///
    /// # Errors
    /// A channel could not be set up (never in practice).
    pub fn send(&mut self, p: Packet, now_ms: u64) -> Result<Vec<Segment>, Broken> {
        let pair = (p.from, p.to);
        let reusable = self.out.get(&pair).is_some_and(|i| !i.channel.is_failed());
        if !reusable {
            self.open(pair, now_ms)?;
        }
        let Some(init) = self.out.get_mut(&pair) else { return Ok(Vec::new()) };
        let conn = ConnId { from: p.from, to: p.to, epoch: init.epoch };
        if init.channel.send(&p.bytes).is_err() {
            // A backlog while the handshake is slow: the message is lost, as over TCP.
            return Ok(Vec::new());
        }
        self.sent.entry(conn).or_default().push_back(p.bytes);
        let bytes = init.channel.take_output();
        Ok(segment(conn, true, bytes))
    }

    fn open(&mut self, pair: (u32, u32), now_ms: u64) -> Result<(), Broken> {
        let epoch = self.epoch();
        let keys = &self.keys[pair.0 as usize];
        let channel =
            Channel::initiator(keys, &self.psk, self.entropy.clone(), self.config, now_ms)
                .map_err(|e| broken("channels open", e.to_string()))?;
        // The old connection's record of sent messages stays while its responder end may
        // still deliver them ([`SecureNet::tick`] prunes it).
        self.out.insert(pair, Initiator { epoch, channel });
        self.counts.opened += 1;
        Ok(())
    }

    /// A segment arrives at its end: the segments it answers with and the gossip packets it
    /// completes.
    ///
    /// # Errors
    /// The CH-5 oracle: a delivered message is not the next one its peer sent.
    pub fn deliver(
        &mut self,
        seg: &Segment,
        now_ms: u64,
    ) -> Result<(Vec<Segment>, Vec<Packet>), Broken> {
        if seg.to_responder {
            self.at_responder(seg, now_ms)
        } else {
            self.at_initiator(seg, now_ms);
            Ok((self.initiator_output(seg.conn), Vec::new()))
        }
    }

    fn at_responder(
        &mut self,
        seg: &Segment,
        now_ms: u64,
    ) -> Result<(Vec<Segment>, Vec<Packet>), Broken> {
        let conn = seg.conn;
        if conn.to as usize >= self.keys.len() {
            return Ok((Vec::new(), Vec::new()));
        }
        if !self.inbound.contains_key(&conn) {
            self.accept(conn, now_ms)?;
        }
        let Some(ch) = self.inbound.get_mut(&conn) else { return Ok((Vec::new(), Vec::new())) };
        let events = match ch.receive(&seg.bytes, now_ms) {
            Ok(ev) => ev,
            Err(_) => {
                // Dropped: the driver closes the connection, and the initiator learns it (as a
                // TCP reset) and reconnects for its next message. The failed end stays until
                // the next tick, so the rest of this connection's bytes are refused too.
                self.counts.refused += 1;
                if self.out.get(&(conn.from, conn.to)).is_some_and(|i| i.epoch == conn.epoch) {
                    self.out.remove(&(conn.from, conn.to));
                }
                return Ok((Vec::new(), Vec::new()));
            }
        };
        let back = segment(conn, false, ch.take_output());
        let mut packets = Vec::new();
        for e in events {
            match e {
                ChannelEvent::Established { .. } => self.counts.established += 1,
                ChannelEvent::Message(m) => packets.push(self.check_provenance(conn, m)?),
            }
        }
        Ok((back, packets))
    }

    /// CH-5: `m` must be the next message the honest initiator of `conn` sent.
    fn check_provenance(&mut self, conn: ConnId, m: Vec<u8>) -> Result<Packet, Broken> {
        if conn.from == ATTACKER {
            return Err(broken(CH5, format!("a connection of the attacker delivered {m:02x?}")));
        }
        let want = self.sent.get_mut(&conn).and_then(VecDeque::pop_front);
        if want.as_ref() != Some(&m) {
            return Err(broken(
                CH5,
                format!(
                    "node {} accepted {} bytes its peer {} never sent",
                    conn.to,
                    m.len(),
                    conn.from
                ),
            ));
        }
        Ok(Packet { from: conn.from, to: conn.to, bytes: m })
    }

    fn accept(&mut self, conn: ConnId, now_ms: u64) -> Result<(), Broken> {
        let keys = &self.keys[conn.to as usize];
        let ch = Channel::responder(keys, &self.psk, self.entropy.clone(), self.config, now_ms)
            .map_err(|e| broken("channels accept", e.to_string()))?;
        self.inbound.insert(conn, ch);
        // An honest peer's new connection replaces its older ones; past the cap, the oldest go.
        if conn.from != ATTACKER {
            self.inbound.retain(|c, _| !(c.from == conn.from && c.to == conn.to && *c < conn));
        }
        let mine: Vec<ConnId> = self.inbound.keys().filter(|c| c.to == conn.to).copied().collect();
        let over = mine.len().saturating_sub(RESPONDERS_PER_NODE_MAX);
        let mut oldest = mine;
        oldest.sort_by_key(|c| c.epoch);
        for c in oldest.into_iter().take(over) {
            self.inbound.remove(&c);
        }
        Ok(())
    }

    fn at_initiator(&mut self, seg: &Segment, now_ms: u64) {
        let pair = (seg.conn.from, seg.conn.to);
        let Some(init) = self.out.get_mut(&pair) else { return };
        if init.epoch != seg.conn.epoch || init.channel.is_failed() {
            return;
        }
        match init.channel.receive(&seg.bytes, now_ms) {
            Ok(events) => {
                let n = events.iter().filter(|e| matches!(e, ChannelEvent::Established { .. }));
                self.counts.established += n.count() as u64;
            }
            Err(_) => self.counts.refused += 1,
        }
    }

    fn initiator_output(&mut self, conn: ConnId) -> Vec<Segment> {
        let Some(init) = self.out.get_mut(&(conn.from, conn.to)) else { return Vec::new() };
        if init.epoch != conn.epoch {
            return Vec::new();
        }
        segment(conn, true, init.channel.take_output())
    }

    /// Ends handshakes past their deadline (CH-8) and forgets failed ends.
    pub fn tick(&mut self, now_ms: u64) {
        for init in self.out.values_mut() {
            if init.channel.tick(now_ms).is_err() && !init.channel.is_failed() {
                self.counts.refused += 1;
            }
        }
        let before = self.inbound.len();
        self.inbound.retain(|_, ch| ch.tick(now_ms).is_ok());
        self.counts.refused += (before - self.inbound.len()) as u64;
        // A connection whose initiator is gone and whose responder is gone delivers nothing.
        let (out, inbound) = (&self.out, &self.inbound);
        self.sent.retain(|c, _| {
            out.get(&(c.from, c.to)).is_some_and(|i| i.epoch == c.epoch) || inbound.contains_key(c)
        });
    }

    /// Node `n` crashed: its channel ends are gone.
    pub fn crash(&mut self, n: u32) {
        // Its own ends are gone, and its peers' connections to it are reset.
        self.out.retain(|(from, to), _| *from != n && *to != n);
        self.inbound.retain(|c, _| c.to != n);
    }

    /// Connections a node's responder end holds (for tests).
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }
}

fn segment(conn: ConnId, to_responder: bool, bytes: Vec<u8>) -> Vec<Segment> {
    if bytes.is_empty() { Vec::new() } else { vec![Segment { conn, to_responder, bytes }] }
}

/// The CH-10 oracle: scans every byte string the network carried for secrets — the key half
/// (`dek`) of every ref a node has held.
#[derive(Debug, Default)]
pub struct SecretScan {
    secrets: HashSet<[u8; 32]>,
    /// Bytes scanned.
    pub scanned_bytes: u64,
}

const CH10: &str = "CH-10 an observer without the group key learns no ref or value";

impl SecretScan {
    /// Adds secrets (ref key halves) the network must never show.
    pub fn learn(&mut self, secrets: &BTreeSet<[u8; 32]>) {
        self.secrets.extend(secrets.iter().copied());
    }

    /// Checks one byte string seen on the network.
    ///
    /// # Errors
    /// The CH-10 oracle: it contains a secret.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<(), Broken> {
        self.scanned_bytes += bytes.len() as u64;
        if self.secrets.is_empty() {
            return Ok(());
        }
        for (at, w) in bytes.windows(32).enumerate() {
            if let Ok(w) = <[u8; 32]>::try_from(w)
                && self.secrets.contains(&w)
            {
                return Err(broken(CH10, format!("a ref's key at byte {at} of {}", bytes.len())));
            }
        }
        Ok(())
    }
}
