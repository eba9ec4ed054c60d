//! Gossip over a hostile in-memory network (issue 6 groundwork for item 6): the real
//! `cellar::gossip::GossipNode`s exchange encoded messages that are lost, duplicated, reordered
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

use cellar::env::DetEntropy;
use cellar::gossip::{GossipConfig, GossipNode, PeerId, encode_message};
use cellar::hkv::Hkv;
use cellar::merge::{KeyState, MergePolicy, NodeId};
use cellar::store::{MemStore, Store};
use cellar_model::spec;
use std::collections::BTreeMap;
use std::sync::Arc;

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

type Packet = (u32, u32, Vec<u8>); // (from, to, bytes)
type Written = BTreeMap<String, Vec<spec::Version<Option<Vec<u8>>>>>;

struct World {
    nodes: Vec<GossipNode>,
    /// Per node: its durable store and its cell (the persisted head).
    disks: Vec<(Arc<dyn Store>, Option<cellar::refs::Ref>)>,
    policy: MergePolicy,
    seed: u64,
    crashes: u32,
    net: Vec<Packet>,
    /// Blocked (from, to) pairs.
    cut: Vec<(u32, u32)>,
    written: Written,
    now_ms: u64,
    rejected: u64,
}

fn spec_clock(c: &cellar::merge::VectorClock) -> spec::VectorClock {
    spec::VectorClock::from_entries(c.entries().map(|(n, v)| (spec::NodeId(n.0), v)))
}

impl World {
    fn new(policy: MergePolicy, seed: u64) -> Self {
        let disks: Vec<(Arc<dyn Store>, _)> =
            (0..NODES).map(|_| (Arc::new(MemStore::new()) as Arc<dyn Store>, None)).collect();
        let mut w = Self {
            nodes: Vec::new(),
            disks,
            policy,
            seed,
            crashes: 0,
            net: Vec::new(),
            cut: Vec::new(),
            written: Written::new(),
            now_ms: 0,
            rejected: 0,
        };
        w.nodes = (0..NODES).map(|i| w.boot(i)).collect();
        w
    }

    /// Starts node `i` from its disk: the store and the persisted head.
    fn boot(&self, i: u32) -> GossipNode {
        let (store, head) = &self.disks[i as usize];
        let db = Hkv::new(store.clone(), [8; 32], NodeId(i), self.policy, *head);
        let peers = (0..NODES).filter(|p| *p != i).map(PeerId).collect();
        let entropy_seed =
            self.seed.wrapping_mul(31).wrapping_add(u64::from(i) + 1000 * u64::from(self.crashes));
        GossipNode::new(db, peers, Arc::new(DetEntropy::new(entropy_seed)), GossipConfig::default())
    }

    /// Persists node `n`'s head (what a crash keeps).
    fn persist(&mut self, n: usize) {
        self.disks[n].1 = self.nodes[n].db().head();
    }

    /// Node `n` crashes and restarts: in-flight fetches are lost, its disk survives.
    fn crash(&mut self, n: usize) {
        self.crashes += 1;
        self.nodes[n] = self.boot(n as u32);
    }

    fn send(&mut self, from: u32, envs: Vec<cellar::gossip::Envelope>) {
        for e in envs {
            self.net.push((from, e.to.0, encode_message(&e.message).unwrap()));
        }
    }

    fn client_write(&mut self, rng: &mut Rng) {
        let n = rng.below(u64::from(NODES)) as usize;
        let path = format!("/k/{}", rng.below(KEYS));
        let db = self.nodes[n].db_mut();
        if rng.chance(20) {
            db.delete(&path).unwrap();
        } else {
            db.set(&path, &rng.below(5).to_le_bytes()).unwrap();
        }
        db.commit("write").unwrap();
        self.persist(n);
        let db = self.nodes[n].db();
        // Acknowledged: record the write (the single version the write left).
        let state = db.state(&path).unwrap();
        let v = state.versions().iter().find(|v| v.clock == *state.clock()).unwrap();
        let version = spec::Version {
            value: v.value.clone(),
            writer: spec::NodeId(v.writer.0),
            clock: spec_clock(&v.clock),
        };
        self.written.entry(path).or_default().push(version);
        self.nodes[n].announce_soon();
    }

    fn deliver(&mut self, i: usize) {
        let (from, to, bytes) = self.net.swap_remove(i);
        match self.nodes[to as usize].handle_bytes(PeerId(from), &bytes, self.now_ms) {
            Ok(h) => {
                if h.merged.is_some() {
                    self.persist(to as usize);
                }
                self.send(to, h.replies)
            }
            Err(_) => self.rejected += 1, // e.g. objects of a fetch that was dropped
        }
    }

    fn chaos_step(&mut self, rng: &mut Rng) {
        self.now_ms += rng.below(200);
        match rng.below(10) {
            0 | 1 => self.client_write(rng),
            2 | 3 => {
                let n = rng.below(u64::from(NODES)) as usize;
                let envs = self.nodes[n].tick(self.now_ms).unwrap();
                self.send(n as u32, envs);
            }
            4 if rng.chance(30) => self.crash(rng.below(u64::from(NODES)) as usize),
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
                let (from, to, _) = &self.net[i];
                if rng.chance(20) || self.cut.contains(&(*from, *to)) {
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
            for n in 0..NODES as usize {
                let envs = self.nodes[n].tick(self.now_ms).unwrap();
                self.send(n as u32, envs);
            }
            let mut steps = 0;
            while !self.net.is_empty() {
                steps += 1;
                assert!(steps < 1_000_000, "message storm");
                self.deliver(0);
            }
            let roots: Vec<_> = self.nodes.iter().map(|n| n.db().head_root().unwrap()).collect();
            if roots.windows(2).all(|w| w[0] == w[1]) {
                return Ok(());
            }
        }
        Err("GOS-5: no convergence after the liveness phase".into())
    }
}

/// The spec's join of a set of writes of one key.
fn expected(
    policy: &MergePolicy,
    writes: &[spec::Version<Option<Vec<u8>>>],
) -> (spec::VectorClock, Vec<spec::Version<Option<Vec<u8>>>>) {
    let clock = writes.iter().fold(spec::VectorClock::new(), |c, w| c.join(&w.clock));
    let mut max: Vec<_> = writes
        .iter()
        .filter(|v| !writes.iter().any(|w| v.clock.compare(&w.clock) == spec::ClockOrder::Before))
        .cloned()
        .collect();
    max.sort();
    max.dedup();
    if matches!(policy, MergePolicy::LastWriteWins) {
        max.drain(..max.len().saturating_sub(1));
    }
    (clock, max)
}

fn same(state: &KeyState, want: &(spec::VectorClock, Vec<spec::Version<Option<Vec<u8>>>>)) -> bool {
    spec_clock(state.clock()) == want.0
        && state.versions().len() == want.1.len()
        && state.versions().iter().zip(&want.1).all(|(a, b)| {
            a.value == b.value
                && spec::NodeId(a.writer.0) == b.writer
                && spec_clock(&a.clock) == b.clock
        })
}

/// One chaos run; returns how many crashes it had.
fn run(policy: MergePolicy, seed: u64) -> Result<u32, String> {
    let mut rng = Rng(seed);
    let mut w = World::new(policy, seed);
    for _ in 0..CHAOS_STEPS {
        w.chaos_step(&mut rng);
    }
    w.liveness()?;
    for (path, writes) in &w.written {
        let want = expected(&policy, writes);
        for (i, n) in w.nodes.iter().enumerate() {
            let got = n.db().state(path).unwrap();
            if !same(&got, &want) {
                return Err(format!(
                    "seed {seed}: node {i} key {path}: {got:?} is not the spec's join {want:?}"
                ));
            }
        }
    }
    Ok(w.crashes)
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
