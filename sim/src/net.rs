//! The simulated network: loss, random delays (so messages overtake each other), duplication
//! and partitions, for the gossip nodes' messages ([`Net::send`]), and byte streams with
//! connection semantics for the sector protocol's cell clients ([`Streams`]).
//!
//! A stream never duplicates or reorders within a connection, as a Unix or TCP socket does
//! not; its faults are the connection's: a loss breaks the connection, and what was sent after
//! the break never arrives (so the peer received a prefix of the bytes, possibly ending inside
//! a frame). Reordering happens between connections: a request sent on a connection the client
//! gave up may still reach the server after the retry sent on a new one. Duplication is the
//! client's doing (a retry, or a hedged second copy on another connection), as it is for real
//! clients: the transport never duplicates.
//!
//! Never uses real sockets, threads or time.

use crate::rng::SimRng;
use std::collections::{BTreeMap, BTreeSet};

/// The network's fault knobs and its partition state.
#[derive(Debug, Clone)]
pub struct Net {
    /// Loss chance, ppm.
    pub drop_ppm: u32,
    /// Duplication chance, ppm (for a stream: the chance that a client hedges a request).
    pub dup_ppm: u32,
    /// Largest one-way delay, µs.
    pub delay_us_max: u64,
    /// Cell clients cut off from the server.
    pub partitioned: BTreeSet<u32>,
    /// Messages lost.
    pub dropped: u64,
    /// Messages duplicated.
    pub duplicated: u64,
}

impl Net {
    /// Delivery times of one datagram from `client` (none: lost; two: duplicated). Delays are
    /// random, so messages overtake each other.
    pub fn send(&mut self, rng: &mut SimRng, client: u32) -> Vec<u64> {
        if self.partitioned.contains(&client) || rng.chance_ppm(self.drop_ppm) {
            self.dropped += 1;
            return Vec::new();
        }
        let mut out = vec![1 + rng.below(self.delay_us_max.max(1))];
        if rng.chance_ppm(self.dup_ppm) {
            self.duplicated += 1;
            out.push(1 + rng.below(self.delay_us_max.max(1) * 2));
        }
        out
    }
}

/// One connection: its client and the client's connection number.
pub type ConnId = (u32, u32);

/// Bytes on one connection, in one direction.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The connection.
    pub conn: ConnId,
    /// True: from the client to the server.
    pub to_server: bool,
    /// The bytes (a frame, or a piece of one).
    pub bytes: Vec<u8>,
}

/// The cell service's connections: FIFO delivery per connection and direction, and which
/// connections are broken.
#[derive(Debug, Default)]
pub struct Streams {
    /// When the last message in each direction of each connection is delivered.
    last_delivery_us: BTreeMap<(ConnId, bool), u64>,
    broken: BTreeSet<ConnId>,
    /// Connections broken by a loss or a partition.
    pub breaks: u64,
}

impl Streams {
    /// The delay after which `msg`, sent at `now_us`, arrives; `None` if it never does (the
    /// connection is broken, or breaks now).
    pub fn send(&mut self, net: &mut Net, rng: &mut SimRng, now_us: u64, msg: &Msg) -> Option<u64> {
        if self.broken.contains(&msg.conn) {
            return None;
        }
        if net.partitioned.contains(&msg.conn.0) || rng.chance_ppm(net.drop_ppm) {
            net.dropped += 1;
            self.breaks += 1;
            self.broken.insert(msg.conn);
            return None;
        }
        let last = self.last_delivery_us.entry((msg.conn, msg.to_server)).or_default();
        let at = (now_us + 1 + rng.below(net.delay_us_max.max(1))).max(*last + 1);
        *last = at;
        Some(at - now_us)
    }

    /// Is `msg` still deliverable (its connection did not break while it travelled)?
    pub fn deliverable(&self, msg: &Msg) -> bool {
        !self.broken.contains(&msg.conn)
    }

    /// Breaks connection `conn` (a peer closed it, or the server crashed).
    pub fn break_conn(&mut self, conn: ConnId) {
        self.broken.insert(conn);
    }

    /// Breaks every connection used so far (the server crashed).
    pub fn break_all(&mut self) {
        let all: Vec<ConnId> = self.last_delivery_us.keys().map(|(c, _)| *c).collect();
        self.broken.extend(all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(drop_ppm: u32) -> Net {
        Net {
            drop_ppm,
            dup_ppm: 0,
            delay_us_max: 1_000,
            partitioned: BTreeSet::new(),
            dropped: 0,
            duplicated: 0,
        }
    }

    #[test]
    fn a_connection_delivers_in_order_and_a_loss_breaks_it() {
        let (mut n, mut s, mut rng) = (net(0), Streams::default(), SimRng::new(7));
        let m = |b: u8| Msg { conn: (0, 1), to_server: true, bytes: vec![b] };
        let mut at = Vec::new();
        for b in 0..50 {
            at.push(s.send(&mut n, &mut rng, 10, &m(b)).unwrap() + 10);
        }
        assert!(at.windows(2).all(|w| w[0] < w[1]), "FIFO within a connection: {at:?}");
        n.drop_ppm = 1_000_000;
        assert_eq!(s.send(&mut n, &mut rng, 10, &m(0)), None);
        assert!(!s.deliverable(&m(0)), "in-flight bytes after the break are lost");
        n.drop_ppm = 0;
        assert_eq!(s.send(&mut n, &mut rng, 10, &m(0)), None, "broken for good");
        let other = Msg { conn: (0, 2), to_server: true, bytes: vec![] };
        assert!(s.send(&mut n, &mut rng, 10, &other).is_some(), "a new connection works");
        s.break_all();
        assert!(!s.deliverable(&other));
    }
}
