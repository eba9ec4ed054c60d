//! The simulated network attacker of the `gossip` profile: it sees every channel segment on the
//! simulated network ([`crate::channels`]) and, at the run's `attack_every_us` rate, replays,
//! reorders (replays late), truncates and bit-flips captured segments, injects forged records
//! into live connections, replays a captured first handshake message as a connection of its
//! own, and opens connections with a key that is not the group's. It never knows the group
//! secret.
//!
//! What it must not achieve is judged elsewhere: CH-5 (no forged frame reaches a node) by
//! [`crate::channels::SecureNet::deliver`], CH-10 (it learns no ref) by
//! [`crate::channels::SecretScan`] over everything it saw, and convergence after it stops
//! (GOS-5) by the gossip oracles. It stops when the liveness phase starts.
//!
//! Never: reads the clock or draws OS randomness; its choices come from the world's generator.

use crate::channels::{ATTACKER, ConnId, SecureNet, Segment};
use crate::gossip::Broken;
use crate::rng::SimRng;
use cellar::db::gossip::{Message, encode_message};
use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::record::{FLAG_LAST, TAG_BYTES, put_record};
use cellar::net::channel::{Channel, ChannelConfig, ChannelPsk, StaticKeys};
use std::collections::VecDeque;
use std::sync::Arc;

/// Segments the attacker remembers (the oldest are forgotten).
pub const CAPTURED_MAX: usize = 64;
/// Connections of its own the attacker keeps open.
pub const OWN_CONNECTIONS_MAX: usize = 8;

/// What the attacker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackCounts {
    /// Captured segments sent again to their destination (replay; late, so also reordering).
    pub replayed: u64,
    /// Captured segments sent with one bit flipped.
    pub flipped: u64,
    /// Captured segments sent cut short.
    pub truncated: u64,
    /// Forged records injected into live connections.
    pub injected: u64,
    /// Connections opened with the wrong key, or with a replayed first message.
    pub connects: u64,
    /// Bytes seen on the network.
    pub seen_bytes: u64,
}

/// The attacker. See the module documentation.
pub struct Attacker {
    captured: VecDeque<Segment>,
    keys: StaticKeys,
    /// Not the group's PSK.
    psk: ChannelPsk,
    entropy: Arc<DetEntropy>,
    own: VecDeque<(ConnId, Channel)>,
    /// Counters.
    pub counts: AttackCounts,
}

impl Attacker {
    /// An attacker whose keys and wrong PSK come from `seed`.
    ///
    /// # Errors
    /// Its key could not be generated (never in practice).
    pub fn new(seed: u64) -> Result<Self, Broken> {
        let entropy = Arc::new(DetEntropy::new(seed));
        let keys = StaticKeys::generate(entropy.clone())
            .map_err(|e| Broken { rule: "attacker keys", detail: e.to_string() })?;
        let psk = ChannelPsk::from_bytes(cellar::env::random_array(&*entropy));
        Ok(Self {
            captured: VecDeque::new(),
            keys,
            psk,
            entropy,
            own: VecDeque::new(),
            counts: AttackCounts::default(),
        })
    }

    /// A segment passes on the network: the attacker keeps a copy.
    pub fn observe(&mut self, seg: &Segment) {
        self.counts.seen_bytes += seg.bytes.len() as u64;
        if self.captured.len() == CAPTURED_MAX {
            self.captured.pop_front();
        }
        self.captured.push_back(seg.clone());
    }

    /// A segment addressed to one of the attacker's own connections.
    pub fn receive(&mut self, seg: &Segment, now_ms: u64) {
        if let Some((_, ch)) = self.own.iter_mut().find(|(c, _)| *c == seg.conn) {
            // Its handshake with the wrong PSK cannot finish; the node answers nothing.
            let _ = ch.receive(&seg.bytes, now_ms);
        }
    }

    /// One attack: the segments it puts on the network.
    pub fn act(
        &mut self,
        rng: &mut SimRng,
        net: &mut SecureNet,
        nodes: u32,
        now_ms: u64,
    ) -> Vec<Segment> {
        let pick = rng.below(self.captured.len() as u64) as usize;
        let Some(mut seg) = self.captured.get(pick).cloned() else {
            return self.connect(rng, net, nodes, now_ms);
        };
        match rng.below(6) {
            0 => self.counts.replayed += 1,
            1 => {
                let bit = rng.below(seg.bytes.len() as u64 * 8) as usize;
                if let Some(b) = seg.bytes.get_mut(bit / 8) {
                    *b ^= 1 << (bit % 8);
                }
                self.counts.flipped += 1;
            }
            2 => {
                let keep = rng.below(seg.bytes.len() as u64) as usize;
                seg.bytes.truncate(keep.max(1));
                self.counts.truncated += 1;
            }
            3 => return self.inject(rng, seg.conn),
            4 if seg.to_responder => {
                // A recorded segment (a first handshake message, when it is one) replayed as a
                // connection of the attacker's own.
                seg.conn = ConnId { from: ATTACKER, to: seg.conn.to, epoch: net.epoch() };
                self.counts.connects += 1;
            }
            _ => return self.connect(rng, net, nodes, now_ms),
        }
        vec![seg]
    }

    /// A forged transport record into a live connection: a real gossip message as plaintext,
    /// a made-up tag. Only a channel that skips the tag check would take it.
    fn inject(&mut self, rng: &mut SimRng, conn: ConnId) -> Vec<Segment> {
        let Ok(forged) = encode_message(&Message::Want { cids: Vec::new() }) else {
            return Vec::new();
        };
        let mut body = vec![FLAG_LAST];
        body.extend_from_slice(&forged);
        body.extend((0..TAG_BYTES).map(|_| rng.below(256) as u8));
        let mut bytes = Vec::new();
        if put_record(&mut bytes, &body).is_err() {
            return Vec::new();
        }
        self.counts.injected += 1;
        vec![Segment { conn, to_responder: true, bytes }]
    }

    /// A connection of its own to a node, with the wrong PSK.
    fn connect(
        &mut self,
        rng: &mut SimRng,
        net: &mut SecureNet,
        nodes: u32,
        now_ms: u64,
    ) -> Vec<Segment> {
        let to = rng.below(u64::from(nodes.max(1))) as u32;
        let conn = ConnId { from: ATTACKER, to, epoch: net.epoch() };
        let cfg = ChannelConfig::default();
        let entropy: Arc<dyn Entropy> = self.entropy.clone();
        let Ok(mut ch) = Channel::initiator(&self.keys, &self.psk, entropy, cfg, now_ms) else {
            return Vec::new();
        };
        let bytes = ch.take_output();
        if self.own.len() == OWN_CONNECTIONS_MAX {
            self.own.pop_front();
        }
        self.own.push_back((conn, ch));
        self.counts.connects += 1;
        vec![Segment { conn, to_responder: true, bytes }]
    }
}
