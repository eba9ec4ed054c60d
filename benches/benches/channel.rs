//! The secure channel's cost on gossip (issue 14, item 6): a full sync of a node from empty and
//! the sync of one edit, each with the gossip messages carried three ways in the same run:
//! `plain` (encoded bytes handed over, the baseline: what the transport cost before the
//! channel), `channel_per_message` (what `cellar node` does: a fresh Noise XXpsk0 handshake per
//! message, then the message encrypted and decrypted), and `channel_persistent` (one channel per
//! direction, reused: what a connection-pooling node would pay).
//!
//! Run: `cargo bench -p cellar-benches --bench channel` (`CHANNEL_BENCH_KEYS=N`, default
//! 100 000). Figures go to `docs/benchmarks.md`. In memory: no sockets, so this is the CPU cost
//! the channel adds, not network latency.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark reports failure by panicking"
)]

use cellar::db::gossip::{Envelope, GossipConfig, GossipNode, PeerId, encode_message};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{self, KeyState, MergePolicy, NodeId};
use cellar::db::snapshot::{self, Snapshot};
use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::{Channel, ChannelConfig, ChannelEvent, ChannelPsk, StaticKeys};
use cellar::storage::store::{MemStore, Store};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::collections::{BTreeMap, VecDeque};
use std::hint::black_box;
use std::sync::Arc;

const SALT: [u8; 32] = [0x5a; 32];

fn keys_n() -> u64 {
    std::env::var("CHANNEL_BENCH_KEYS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000)
}

fn node(i: u32, store: Arc<dyn Store>) -> GossipNode {
    let db = Hkv::new(store, SALT, NodeId(i), MergePolicy::LastWriteWins, None);
    let e = Arc::new(DetEntropy::new(u64::from(i)));
    GossipNode::new(db, vec![PeerId(1 - i)], e, GossipConfig::default())
}

/// How messages travel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    PerMessage,
    Persistent,
}

/// Carries encoded messages from one node to the other.
struct Transport {
    mode: Mode,
    keys: [StaticKeys; 2],
    psk: ChannelPsk,
    entropy: Arc<dyn Entropy>,
    /// Persistent channels: (initiator, responder) per direction.
    open: BTreeMap<usize, (Channel, Channel)>,
}

impl Transport {
    fn new(mode: Mode) -> Self {
        let entropy: Arc<dyn Entropy> = Arc::new(DetEntropy::new(9));
        let keys = [
            StaticKeys::generate(entropy.clone()).unwrap(),
            StaticKeys::generate(entropy.clone()).unwrap(),
        ];
        Self { mode, keys, psk: ChannelPsk::from_bytes([7; 32]), entropy, open: BTreeMap::new() }
    }

    fn pair(&self, from: usize) -> (Channel, Channel) {
        let cfg = ChannelConfig::default();
        let mut i =
            Channel::initiator(&self.keys[from], &self.psk, self.entropy.clone(), cfg, 0).unwrap();
        let mut r =
            Channel::responder(&self.keys[1 - from], &self.psk, self.entropy.clone(), cfg, 0)
                .unwrap();
        r.receive(&i.take_output(), 0).unwrap();
        i.receive(&r.take_output(), 0).unwrap();
        r.receive(&i.take_output(), 0).unwrap();
        (i, r)
    }

    /// The bytes the receiver gets for `bytes` sent by node `from`.
    fn carry(&mut self, from: usize, bytes: Vec<u8>) -> Vec<u8> {
        let (i, r) = match self.mode {
            Mode::Plain => return bytes,
            Mode::PerMessage => {
                let (i, r) = self.pair(from);
                self.open.insert(from, (i, r));
                self.open.get_mut(&from).unwrap()
            }
            Mode::Persistent => {
                if !self.open.contains_key(&from) {
                    let p = self.pair(from);
                    self.open.insert(from, p);
                }
                self.open.get_mut(&from).unwrap()
            }
        };
        i.send(&bytes).unwrap();
        let events = r.receive(&i.take_output(), 0).unwrap();
        match events.into_iter().next() {
            Some(ChannelEvent::Message(m)) => m,
            other => panic!("expected the message, got {other:?}"),
        }
    }
}

/// Gossip rounds until quiet; returns the bytes carried.
fn sync(nodes: &mut [GossipNode; 2], t: &mut Transport, now_ms: &mut u64) -> usize {
    let mut bytes = 0;
    for _ in 0..3 {
        *now_ms += 1000;
        let mut queue: VecDeque<(usize, Envelope)> = VecDeque::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            queue.extend(n.tick(*now_ms).unwrap().into_iter().map(|e| (i, e)));
        }
        while let Some((from, env)) = queue.pop_front() {
            let encoded = encode_message(&env.message).unwrap();
            bytes += encoded.len();
            let arrived = t.carry(from, encoded);
            let to = env.to.0 as usize;
            let h = nodes[to].handle_bytes(PeerId(from as u32), &arrived, *now_ms).unwrap();
            queue.extend(h.replies.into_iter().map(|e| (to, e)));
        }
    }
    bytes
}

/// Node 0 with `n` keys in one snapshot (built once, shared by every run).
fn source(n: u64) -> (Arc<dyn Store>, cellar::Ref) {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let n0 = node(0, store.clone());
    let kv = n0.db().kv();
    let states = (0..n).map(|i| {
        let state = merge::write(&KeyState::default(), NodeId(0), Some(i.to_le_bytes().to_vec()));
        (format!("/users/{i:010}/profile").into_bytes(), state.encode().unwrap())
    });
    let root = kv.build(states).unwrap();
    let head = snapshot::post(&kv, &Snapshot::commit_of(root, None, NodeId(0), "bulk")).unwrap();
    (store, head)
}

const MODES: [(Mode, &str); 3] = [
    (Mode::Plain, "plain"),
    (Mode::PerMessage, "channel_per_message"),
    (Mode::Persistent, "channel_persistent"),
];

fn full_sync(c: &mut Criterion) {
    let n = keys_n();
    let (store, head) = source(n);
    let mut g = c.benchmark_group(format!("gossip_full_sync_{n}_keys"));
    g.sample_size(10);
    for (mode, name) in MODES {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut n0 = node(0, store.clone());
                    n0.db_mut().set_head(Some(head));
                    [n0, node(1, Arc::new(MemStore::new()))]
                },
                |mut nodes| {
                    let mut now = 0;
                    let bytes = sync(&mut nodes, &mut Transport::new(mode), &mut now);
                    assert_eq!(nodes[1].db().head(), Some(head), "synced");
                    black_box(bytes)
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

fn one_edit(c: &mut Criterion) {
    let n = keys_n();
    let (store, head) = source(n);
    let mut g = c.benchmark_group(format!("gossip_one_edit_{n}_keys"));
    g.sample_size(20);
    for (mode, name) in MODES {
        let mut n0 = node(0, store.clone());
        n0.db_mut().set_head(Some(head));
        let mut nodes = [n0, node(1, Arc::new(MemStore::new()))];
        let mut t = Transport::new(mode);
        let mut now = 0;
        sync(&mut nodes, &mut t, &mut now);
        let mut k = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 7919) % n;
                nodes[0].db_mut().set(&format!("/users/{k:010}/profile"), b"edited").unwrap();
                nodes[0].db_mut().commit("one edit").unwrap();
                nodes[0].announce_soon();
                black_box(sync(&mut nodes, &mut t, &mut now))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, full_sync, one_edit);
criterion_main!(benches);
