//! Secure-channel wiring (`gossip` profile): gossip packets become channel segments
//! ([`crate::channels::SecureNet`]) carried over the world's lossy network, the network attacker
//! ([`crate::attacker`]) sees and tampers with them, and every segment put on the wire is
//! scanned for refs (CH-10). Other profiles never build a [`SecureNet`], so their runs are
//! unchanged.

use super::{Ev, World, gossip::gossip_violation};
use crate::attacker::Attacker;
use crate::channels::{ATTACKER, ConnId, SecretScan, SecureNet, Segment};
use crate::gossip::{Cluster, Packet};
use crate::oracle::Violation;
use crate::rng::SimRng;
use cellar::net::channel::ChannelPsk;
use std::collections::BTreeMap;

/// Connection directions whose last arrival time is remembered before the delivered ones are
/// forgotten.
const FIFO_ENTRIES_MAX: usize = 1024;

/// The channels, the attacker and the scan of one run.
pub struct Secure {
    pub(super) net: SecureNet,
    pub(super) attacker: Option<Attacker>,
    pub(super) scan: SecretScan,
    /// When the last honest segment of each connection direction arrives, µs (FIFO streams).
    fifo: BTreeMap<(ConnId, bool), u64>,
}

impl Secure {
    /// Channels for `cluster`'s nodes (and an attacker if `attack`), seeded from `rng`.
    pub fn new(cluster: &Cluster, attack: bool, rng: &mut SimRng) -> Result<Self, Violation> {
        let psk = ChannelPsk::from_bytes(crate::gossip::GROUP_SALT);
        let net = SecureNet::new(cluster.node_count(), psk, rng.next_u64());
        let net = net.map_err(gossip_violation)?;
        let attacker = if attack {
            Some(Attacker::new(rng.next_u64()).map_err(gossip_violation)?)
        } else {
            None
        };
        Ok(Self { net, attacker, scan: SecretScan::default(), fifo: BTreeMap::new() })
    }
}

impl World<'_> {
    /// Sends gossip packets over their channels.
    pub(super) fn secure_send(&mut self, packets: Vec<Packet>) -> Result<(), Violation> {
        let now_ms = self.now_us / 1_000;
        let Some(s) = self.secure.as_mut() else { return Ok(()) };
        let mut segs = Vec::new();
        for p in packets {
            segs.extend(s.net.send(p, now_ms).map_err(gossip_violation)?);
        }
        self.segments_send(segs, false)
    }

    /// Puts segments on the network: the attacker sees each, the scan checks each (CH-10);
    /// cut links and loss drop them, each arrives after a seeded delay. A connection is a
    /// stream, as over TCP: an honest segment never overtakes an earlier one of its connection
    /// and is never duplicated (that is the attacker's job); a lost one breaks the connection.
    fn segments_send(&mut self, segs: Vec<Segment>, from_attacker: bool) -> Result<(), Violation> {
        for seg in segs {
            if let (Some(s), Some(g)) = (self.secure.as_mut(), self.gossip.as_ref()) {
                s.scan.learn(g.secrets());
                s.scan.scan(&seg.bytes).map_err(gossip_violation)?;
                if let Some(a) = s.attacker.as_mut().filter(|_| !from_attacker) {
                    a.observe(&seg);
                }
            }
            let cut = self.gossip_cut.contains(&seg.link());
            if !from_attacker && (cut || self.rng.chance_ppm(self.net.drop_ppm)) {
                self.net.dropped += 1;
                continue;
            }
            let delay_max = self.net.delay_us_max.max(1);
            let mut d = 1 + self.rng.below(delay_max);
            if let Some(s) = self.secure.as_mut().filter(|_| !from_attacker) {
                let last = s.fifo.entry((seg.conn, seg.to_responder)).or_default();
                d = d.max(last.saturating_sub(self.now_us));
                *last = self.now_us + d;
                if s.fifo.len() > FIFO_ENTRIES_MAX {
                    let now = self.now_us;
                    s.fifo.retain(|_, t| *t > now); // delivered directions need no entry
                }
            }
            self.at(d, Ev::GossipSeg(seg));
        }
        Ok(())
    }

    /// A segment arrives at its end; whole messages go to their node, whose replies go out.
    pub(super) fn segment_deliver(&mut self, seg: Segment) -> Result<(), Violation> {
        let now_ms = self.now_us / 1_000;
        let Some(s) = self.secure.as_mut() else { return Ok(()) };
        if seg.conn.from == ATTACKER && !seg.to_responder {
            if let Some(a) = s.attacker.as_mut() {
                a.receive(&seg, now_ms);
            }
            return Ok(());
        }
        let (segs, packets) = s.net.deliver(&seg, now_ms).map_err(gossip_violation)?;
        self.ops += 1;
        self.segments_send(segs, false)?;
        for p in packets {
            self.gossip_deliver(p)?;
        }
        Ok(())
    }

    /// The attacker acts once, until the liveness phase.
    pub(super) fn attack(&mut self) -> Result<(), Violation> {
        if self.liveness || self.knobs.attack_every_us == 0 {
            return Ok(());
        }
        let now_ms = self.now_us / 1_000;
        let nodes = self.knobs.gossip_nodes;
        let Some(s) = self.secure.as_mut() else { return Ok(()) };
        let Some(a) = s.attacker.as_mut() else { return Ok(()) };
        let segs = a.act(&mut self.rng, &mut s.net, nodes, now_ms);
        self.faults.attacks += 1;
        self.trace.event(self.now_us, format_args!("FAULT attacker sends {} segments", segs.len()));
        self.segments_send(segs, true)?;
        let d = self.every(self.knobs.attack_every_us);
        self.at(d, Ev::Attack);
        Ok(())
    }

    /// Copies the channel counts into the fault counts.
    pub(super) fn secure_counts(&mut self) {
        if let Some(s) = &self.secure {
            self.faults.channel_established = s.net.counts.established;
            self.faults.channel_refused = s.net.counts.refused;
            self.faults.attacker_seen_bytes =
                s.attacker.as_ref().map_or(0, |a| a.counts.seen_bytes);
        }
    }
}
