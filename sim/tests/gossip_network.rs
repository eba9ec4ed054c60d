//! Gossip over a hostile in-memory network (issue 6 groundwork for item 6): the real
//! `cellar::db::gossip::GossipNode`s exchange encoded messages that are lost, duplicated, reordered
//! and partitioned, nodes crash (losing in-flight fetches; the store and the persisted head
//! survive) and restart, while clients write and commit; then a liveness phase heals the
//! network.
//! Oracles, from the executable spec's primitives (`cellar_model::spec`):
//! - convergence (GOS-5): all nodes end with equal roots and equal key states;
//! - the converged state of every key is the spec's join of every acknowledged write: clock =
//!   join of their clocks, versions = the writes no other write follows, in precedence order;
//!   under LWW only the greatest (GOS-2, GOS-3, GOS-4).
//!
//! The planted bug `gossip:lww-by-arrival-order` must be caught by these oracles.
//!
//! The nodes, their disks and the oracles are the simulator's own (`cellar_sim::gossip`); this
//! test drives them from its own small chaos loop, while `cellar sim` drives them from its event
//! queue.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::gossip::GossipConfig;
use cellar::db::merge::MergePolicy;
use cellar_sim::gossip::{Cluster, Packet};

const NODES: u32 = 3;
const KEYS: u64 = 4;
const CHAOS_STEPS: u32 = 300;
const LIVENESS_ROUNDS_MAX: u64 = 60;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct World {
    cluster: Cluster,
    net: Vec<Packet>,
    /// Blocked (from, to) pairs.
    cut: Vec<(u32, u32)>,
    now_ms: u64,
}

impl World {
    fn deliver(&mut self, i: usize) {
        let p = self.net.swap_remove(i);
        let replies = self.cluster.deliver(&p, self.now_ms).unwrap();
        self.net.extend(replies);
    }

    fn chaos_step(&mut self, rng: &mut Rng) {
        self.now_ms += rng.below(200);
        match rng.below(10) {
            0 | 1 => {
                let n = rng.below(u64::from(NODES)) as u32;
                let k = rng.below(KEYS);
                let v = rng.below(5).to_le_bytes();
                let value = if rng.chance(20) { None } else { Some(&v[..]) };
                self.cluster.client_write(n, k, value).unwrap();
            }
            2 | 3 => {
                let n = rng.below(u64::from(NODES)) as u32;
                let out = self.cluster.tick(n, self.now_ms).unwrap();
                self.net.extend(out);
            }
            4 if rng.chance(30) => {
                self.cluster.crash(rng.below(u64::from(NODES)) as u32).unwrap();
            }
            4 => {
                let pair = (rng.below(u64::from(NODES)) as u32, rng.below(u64::from(NODES)) as u32);
                if let Some(p) = self.cut.iter().position(|c| *c == pair) {
                    self.cut.swap_remove(p);
                } else {
                    self.cut.push(pair);
                }
            }
            _ if !self.net.is_empty() => {
                let i = rng.below(self.net.len() as u64) as usize;
                let p = &self.net[i];
                if rng.chance(20) || self.cut.contains(&(p.from, p.to)) {
                    self.net.swap_remove(i); // lost
                } else {
                    if rng.chance(10) {
                        let dup = self.net[i].clone();
                        self.net.push(dup); // duplicated
                    }
                    self.deliver(i); // swap_remove + random pick = reordering
                }
            }
            _ => {}
        }
    }

    /// Healed network, every message delivered, rounds until roots agree.
    fn liveness(&mut self) -> Result<(), String> {
        self.cut.clear();
        for _ in 0..LIVENESS_ROUNDS_MAX {
            self.now_ms += 1000;
            for n in 0..NODES {
                let out = self.cluster.tick(n, self.now_ms).unwrap();
                self.net.extend(out);
            }
            let mut steps = 0;
            while !self.net.is_empty() {
                steps += 1;
                assert!(steps < 1_000_000, "message storm");
                self.deliver(0);
            }
            if self.cluster.converged().unwrap() {
                return Ok(());
            }
        }
        Err("GOS-5: no convergence after the liveness phase".into())
    }
}

/// One chaos run; returns how many crashes it had.
fn run(policy: MergePolicy, seed: u64) -> Result<u64, String> {
    let mut rng = Rng(seed);
    let mut w = World {
        cluster: Cluster::new(NODES, policy, GossipConfig::default(), seed),
        net: Vec::new(),
        cut: Vec::new(),
        now_ms: 0,
    };
    for _ in 0..CHAOS_STEPS {
        w.chaos_step(&mut rng);
    }
    w.liveness()?;
    w.cluster.check().map_err(|b| format!("seed {seed}: {}: {}", b.rule, b.detail))?;
    Ok(w.cluster.counts.crashes)
}

#[test]
fn converges_to_the_spec_join_under_loss_duplication_reordering_partitions() {
    let mut crashes = 0;
    for seed in 0..40 {
        crashes += run(MergePolicy::LastWriteWins, seed).unwrap();
        crashes += run(MergePolicy::KeepBoth, seed).unwrap();
    }
    assert!(crashes >= 100, "the runs must crash nodes ({crashes} crashes)");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_lww_by_arrival_order_is_caught_on_the_network() {
    let _bug = cellar::bugs::plant("gossip:lww-by-arrival-order").unwrap();
    let failing: Vec<u64> =
        (0..40).filter(|s| run(MergePolicy::LastWriteWins, *s).is_err()).collect();
    assert!(failing.len() >= 4, "the oracles must catch gossip:lww-by-arrival-order: {failing:?}");
}
