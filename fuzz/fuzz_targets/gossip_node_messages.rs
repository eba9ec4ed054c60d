//! Stateful: a gossip node (`cellar::db::gossip::GossipNode`, the same sans-IO state machine
//! `cellar node` and the simulator drive) fed an arbitrary sequence of messages from a peer:
//! the honest peer's real messages in order, the same messages with a bit flipped or cut short,
//! raw bytes, and time passing.
//!
//! Properties (specs/gossip-wire.md): no input panics; a message that does not decode changes
//! nothing (neither the head nor the store); an `Objects` message stores only blobs the node
//! asked for in a `Want` it sent, each under its own hash (GW-5); the node's head is always
//! readable from its own store (GW-6, closure before merge).
#![no_main]

use arbitrary::Arbitrary;
use cellar::Hash;
use cellar::db::gossip::{
    Envelope, GossipConfig, GossipNode, Message, PeerId, decode_message, encode_message,
};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{MergePolicy, NodeId};
use cellar::env::DetEntropy;
use cellar::storage::refs::Ref;
use cellar::storage::store::{MemStore, Store, list_all};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock};

const SALT: [u8; 32] = [0x5a; 32];
const A: PeerId = PeerId(0);
const B: PeerId = PeerId(1);

#[derive(Debug, Arbitrary)]
enum Op {
    /// Deliver the honest peer's next message.
    Honest,
    /// Deliver the next honest message with one bit flipped (the honest one stays queued).
    Flip { pos: u16, bit: u8 },
    /// Deliver the next honest message cut short (it stays queued).
    Truncate { len: u16 },
    /// Deliver arbitrary bytes.
    Raw(Vec<u8>),
    /// Time passes; the node may announce or time fetches out.
    Tick { ms: u16 },
}

fn node(id: u32, store: Arc<dyn Store>, head: Option<Ref>) -> GossipNode {
    let db = Hkv::new(store, SALT, NodeId(id), MergePolicy::LastWriteWins, head);
    GossipNode::new(
        db,
        vec![PeerId(1 - id)],
        Arc::new(DetEntropy::new(u64::from(id))),
        GossipConfig::default(),
    )
}

fn blobs(store: &dyn Store) -> BTreeSet<Hash> {
    list_all(store).expect("list").into_iter().collect()
}

struct World {
    a: GossipNode,
    a_store: Arc<dyn Store>,
    b: GossipNode,
    to_a: VecDeque<Vec<u8>>,
    wanted: BTreeSet<Hash>,
    now_ms: u64,
}

impl World {
    /// A's replies go to B at once (B is honest); B's answers queue up for A.
    fn route(&mut self, envs: Vec<Envelope>) {
        let mut pending: VecDeque<Envelope> = envs.into();
        while let Some(env) = pending.pop_front() {
            if let Message::Want { cids } = &env.message {
                self.wanted.extend(cids.iter().copied());
            }
            let bytes = encode_message(&env.message).expect("encode");
            let handled = self.b.handle_bytes(A, &bytes, self.now_ms).expect("honest B");
            for reply in handled.replies {
                self.to_a.push_back(encode_message(&reply.message).expect("encode"));
            }
        }
    }

    fn deliver(&mut self, bytes: &[u8]) {
        let head_before = self.a.db().head();
        let blobs_before = blobs(self.a_store.as_ref());
        let decoded = decode_message(bytes);
        let result = self.a.handle_bytes(B, bytes, self.now_ms);
        let blobs_after = blobs(self.a_store.as_ref());
        let new: BTreeSet<Hash> = blobs_after.difference(&blobs_before).copied().collect();
        match (&decoded, &result) {
            (Err(_), _) => {
                assert!(result.is_err(), "an undecodable message was accepted");
                assert_eq!(self.a.db().head(), head_before, "undecodable input moved the head");
                assert!(new.is_empty(), "undecodable input stored blobs");
            }
            (Ok(Message::Objects { .. }), _) => {
                assert!(new.is_subset(&self.wanted), "GW-5: an unwanted blob was stored");
            }
            _ => {}
        }
        for h in &new {
            let data = self.a_store.get(h).expect("stored blob");
            assert_eq!(Hash::of(&data), *h, "a blob is stored under its own hash");
        }
        if result.is_err() {
            assert_eq!(self.a.db().head(), head_before, "a failed message moved the head");
        }
        if let Ok(handled) = result {
            self.route(handled.replies);
        }
        if let Some(head) = self.a.db().head() {
            self.a.db().log(1).unwrap_or_else(|e| panic!("GW-6: head {head} unreadable: {e}"));
        }
    }
}

/// The honest peer's committed 40-key tree: its blobs and head. Built once per process, not per
/// input: building it was about 85 % of an input's time (375 empty inputs a second against 326
/// real ones). Every input starts B afresh from a copy of it, so inputs stay independent.
struct Seeded {
    blobs: Vec<Vec<u8>>,
    head: Ref,
}

fn seeded() -> &'static Seeded {
    static SEEDED: OnceLock<Seeded> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let mut b = node(1, Arc::clone(&store), None);
        for i in 0..40u32 {
            let key = format!("/dir{}/key{i}", i % 4);
            b.db_mut().set(&key, &i.to_le_bytes().repeat(8)).expect("set");
        }
        b.db_mut().commit("seed").expect("commit");
        let head = b.db().head().expect("a head after the commit");
        let blobs = list_all(store.as_ref())
            .expect("list")
            .iter()
            .map(|h| store.get(h).expect("blob"))
            .collect();
        Seeded { blobs, head }
    })
}

/// The honest peer B, holding the seeded tree in a store of its own.
fn honest_peer() -> GossipNode {
    let seeded = seeded();
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    for blob in &seeded.blobs {
        store.post(blob).expect("post");
    }
    let mut b = node(1, store, Some(seeded.head));
    b.announce_soon();
    b
}

fuzz_target!(init: cellar_fuzz::plant_from_env(), |ops: Vec<Op>| {
    let b = honest_peer();
    let a_store: Arc<dyn Store> = Arc::new(MemStore::new());
    let mut w = World {
        a: node(0, Arc::clone(&a_store), None),
        a_store,
        b,
        to_a: VecDeque::new(),
        wanted: BTreeSet::new(),
        now_ms: 0,
    };
    let first = w.b.tick(0).expect("tick");
    for env in first {
        w.to_a.push_back(encode_message(&env.message).expect("encode"));
    }
    for op in ops.into_iter().take(300) {
        match op {
            Op::Honest => {
                if let Some(m) = w.to_a.pop_front() {
                    w.deliver(&m);
                }
            }
            Op::Flip { pos, bit } => {
                if let Some(mut m) = w.to_a.front().cloned() {
                    let i = usize::from(pos) % m.len().max(1);
                    if let Some(byte) = m.get_mut(i) {
                        *byte ^= 1 << (bit % 8);
                    }
                    w.deliver(&m);
                }
            }
            Op::Truncate { len } => {
                if let Some(m) = w.to_a.front().cloned() {
                    w.deliver(&m[..usize::from(len) % m.len().max(1)]);
                }
            }
            Op::Raw(bytes) => w.deliver(&bytes),
            Op::Tick { ms } => {
                w.now_ms += u64::from(ms);
                let envs = w.a.tick(w.now_ms).expect("tick");
                w.route(envs);
                for env in w.b.tick(w.now_ms).expect("tick") {
                    w.to_a.push_back(encode_message(&env.message).expect("encode"));
                }
            }
        }
    }
});
