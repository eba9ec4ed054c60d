//! Gossip wire format and protocol rules that no other test pins (`specs/gossip-wire.md`):
//! the frame bytes (GW-1), batching of `Objects` replies (GW-3), push-pull announces (GW-4),
//! complete closures of held blobs during a fetch (GW-6), and the per-peer fetch bound and
//! timeout (GW-7). Each test was seen to fail with its enforcing code broken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::Hash;
use cellar::db::gossip::{
    Envelope, FETCHES_PER_PEER_MAX, GossipConfig, GossipError, GossipNode, Message,
    OBJECTS_BATCH_BYTES_MAX, OBJECTS_BLOBS_MAX, PeerId, WIRE_VERSION, WireError, decode_message,
    encode_message,
};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{MergePolicy, NodeId, VectorClock};
use cellar::db::snapshot;
use cellar::env::DetEntropy;
use cellar::storage::refs::Ref;
use cellar::storage::store::{MemStore, Store};
use std::collections::VecDeque;
use std::sync::Arc;

const SALT: [u8; 32] = [6; 32];

/// Node `i` of a group of `n`, each with its own store.
fn node(i: u32, n: u32) -> GossipNode {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let db = Hkv::new(store, SALT, NodeId(i), MergePolicy::LastWriteWins, None);
    let peers = (0..n).filter(|p| *p != i).map(PeerId).collect();
    GossipNode::new(db, peers, Arc::new(DetEntropy::new(u64::from(i))), GossipConfig::default())
}

/// The announce `n` would send for its current head.
fn announce(n: &GossipNode) -> Message {
    let head = n.db().head().unwrap();
    let clock = snapshot::get(n.db().store().as_ref(), &head).unwrap().clock;
    Message::Announce { head, clock }
}

/// Delivers queued messages one at a time (FIFO), calling `after` after each delivery with
/// the nodes and the message just delivered; returns how many were delivered.
fn deliver(
    nodes: &mut [GossipNode],
    mut queue: VecDeque<(PeerId, Envelope)>,
    mut after: impl FnMut(&[GossipNode], &Envelope),
) -> usize {
    let mut delivered = 0;
    while let Some((from, env)) = queue.pop_front() {
        delivered += 1;
        assert!(delivered < 10_000, "gossip did not settle");
        let to = env.to;
        let bytes = encode_message(&env.message).unwrap();
        let handled = nodes[to.0 as usize].handle_bytes(from, &bytes, 0).unwrap();
        after(nodes, &env);
        queue.extend(handled.replies.into_iter().map(|e| (to, e)));
    }
    delivered
}

/// Node 0 announces its head to node 1, and the exchange runs to the end.
fn pull(nodes: &mut [GossipNode]) {
    let env = Envelope { to: PeerId(1), message: announce(&nodes[0]) };
    deliver(nodes, VecDeque::from([(PeerId(0), env)]), |_, _| {});
    assert_eq!(nodes[1].db().head(), nodes[0].db().head());
}

/// GW-1: `version ‖ variant ‖ fields`, postcard varints, refs and hashes raw; non-canonical
/// clocks, unknown versions or variants and trailing bytes are refused.
#[test]
fn frame_layout_is_byte_exact_gw1() {
    let want = Message::Want { cids: vec![Hash([5; 32])] };
    let bytes = [&[WIRE_VERSION, 1, 1][..], &[5; 32]].concat();
    assert_eq!(encode_message(&want).unwrap(), bytes);
    assert_eq!(decode_message(&bytes).unwrap(), want);

    let objects = Message::Objects { blobs: vec![b"ab".to_vec(), Vec::new()] };
    let bytes = [WIRE_VERSION, 2, 2, 2, b'a', b'b', 0];
    assert_eq!(encode_message(&objects).unwrap(), bytes);
    assert_eq!(decode_message(&bytes).unwrap(), objects);

    let head = Ref::from_array(&[8; 64]);
    let clock = VectorClock::from_entries([(NodeId(1), 2), (NodeId(300), 1)]);
    let announce = Message::Announce { head, clock };
    // clock: two entries, (1, 2) and (300 = varint ac 02, 1).
    let bytes = [&[WIRE_VERSION, 0][..], &[8; 64], &[2, 1, 2, 0xac, 2, 1]].concat();
    assert_eq!(encode_message(&announce).unwrap(), bytes);
    assert_eq!(decode_message(&bytes).unwrap(), announce);

    let refused = |b: &[u8]| matches!(decode_message(b), Err(WireError::Decode(_)));
    let zero_entry = [&[WIRE_VERSION, 0][..], &[8; 64], &[1, 1, 0]].concat();
    assert!(refused(&zero_entry), "a zero clock entry is not canonical");
    let unsorted = [&[WIRE_VERSION, 0][..], &[8; 64], &[2, 5, 1, 1, 1]].concat();
    assert!(refused(&unsorted), "clock entries must be in node order");
    assert!(refused(&[WIRE_VERSION, 3, 0]), "unknown variant");
    assert!(refused(&[WIRE_VERSION, 2, 0, 0]), "trailing byte");
    assert!(matches!(decode_message(&[2, 2, 0]), Err(WireError::Version(2))));
}

/// GW-3: a node answering a `Want` closes each `Objects` batch at `OBJECTS_BLOBS_MAX` blobs or
/// once it holds `OBJECTS_BATCH_BYTES_MAX` bytes, so every reply encodes and nothing is lost.
#[test]
fn objects_replies_are_batched_within_the_counts_gw3() {
    let mut a = node(0, 2);
    let store = a.db().store().clone();
    let small: Vec<Hash> = (0..OBJECTS_BLOBS_MAX as u32 + 500)
        .map(|i| store.post(&i.to_le_bytes()).unwrap())
        .collect();
    let big: Vec<Hash> = (0..5u8).map(|i| store.post(&vec![i; 1024 * 1024]).unwrap()).collect();
    for (cids, blobs_total) in [(small, OBJECTS_BLOBS_MAX + 500), (big, 5)] {
        let replies = a.handle(PeerId(1), Message::Want { cids }, 0).unwrap().replies;
        assert!(replies.len() >= 2, "the want needs more than one batch");
        let mut seen = 0;
        for r in &replies {
            let Message::Objects { blobs } = &r.message else { panic!("{r:?}") };
            assert!(blobs.len() <= OBJECTS_BLOBS_MAX, "GW-3: {} blobs", blobs.len());
            let batch_bytes: usize = blobs.iter().map(Vec::len).sum();
            assert!(batch_bytes <= OBJECTS_BATCH_BYTES_MAX, "GW-3: {batch_bytes} bytes");
            encode_message(&r.message).unwrap();
            seen += blobs.len();
        }
        assert_eq!(seen, blobs_total, "every wanted blob is sent once");
    }
}

/// GW-4: a receiver holding the announced head merges at once, and announces back only when the
/// announcer's clock is strictly before its own; never when the two are concurrent.
#[test]
fn announce_back_only_to_a_strictly_older_head_gw4() {
    let mut nodes = vec![node(0, 2), node(1, 2)];
    nodes[0].db_mut().set("/x", b"1").unwrap();
    nodes[0].db_mut().commit("a1").unwrap();
    pull(&mut nodes);
    nodes[1].db_mut().set("/y", b"2").unwrap();
    let b2 = nodes[1].db_mut().commit("b2").unwrap();
    // Node 0 is strictly behind node 1: node 1 already holds the head and announces back.
    let old = announce(&nodes[0]);
    let handled = nodes[1].handle(PeerId(0), old, 0).unwrap();
    assert!(handled.merged.is_some(), "a held head is merged at once");
    let back = handled.replies.iter().find(|e| matches!(e.message, Message::Announce { .. }));
    let Some(Envelope { to: PeerId(0), message: Message::Announce { head, .. } }) = back else {
        panic!("GW-4: no announce back to the older node: {:?}", handled.replies)
    };
    assert_eq!(*head, b2);
    // Concurrent heads: a want for the new head, but no announce back.
    nodes[0].db_mut().set("/x", b"3").unwrap();
    nodes[0].db_mut().commit("a3").unwrap();
    let newer = announce(&nodes[0]);
    let handled = nodes[1].handle(PeerId(0), newer, 0).unwrap();
    assert!(
        handled.replies.iter().all(|e| matches!(e.message, Message::Want { .. })),
        "GW-4: concurrent heads are not announced back: {:?}",
        handled.replies
    );
}

/// GW-6: during a fetch, a blob is in the store only once its whole closure is; a node one edit
/// behind is sent only what it lacks.
#[test]
fn a_held_blob_always_has_its_closure_gw6() {
    let mut nodes = vec![node(0, 2), node(1, 2)];
    for i in 0..3000 {
        nodes[0].db_mut().set(&format!("/k/{i:05}"), b"value").unwrap();
    }
    let head = nodes[0].db_mut().commit("bulk").unwrap();
    let root = nodes[0].db().head_root().unwrap().unwrap();
    assert!(nodes[0].db().kv().read_node(&root).unwrap().level >= 1, "a tree two levels deep");
    let mut objects_delivered = 0;
    let env = Envelope { to: PeerId(1), message: announce(&nodes[0]) };
    deliver(&mut nodes, VecDeque::from([(PeerId(0), env)]), |nodes, env| {
        if env.to == PeerId(1) && matches!(env.message, Message::Objects { .. }) {
            objects_delivered += 1;
            let store = nodes[1].db().store();
            if store.exists(&head.cid).unwrap() {
                snapshot::reachable(store.as_ref(), &head)
                    .unwrap_or_else(|e| panic!("GW-6: head held without its closure: {e}"));
            }
        }
    });
    assert!(objects_delivered >= 3, "the fetch went level by level");
    assert_eq!(nodes[1].db().head(), Some(head));
    // One edit later, only the changed path travels: a snapshot and one node per level.
    // Same length as before, so no boundary moves (KV-3 weighs entries by size).
    nodes[0].db_mut().set("/k/01234", b"VALUE").unwrap();
    nodes[0].db_mut().commit("one edit").unwrap();
    let depth = usize::from(nodes[0].db().kv().read_node(&root).unwrap().level) + 1;
    let mut blobs_sent = 0;
    let env = Envelope { to: PeerId(1), message: announce(&nodes[0]) };
    deliver(&mut nodes, VecDeque::from([(PeerId(0), env)]), |_, env| {
        if let Message::Objects { blobs } = &env.message {
            blobs_sent += blobs.len();
        }
    });
    assert_eq!(blobs_sent, 1 + depth, "GW-6: one snapshot plus one node per level");
}

/// GW-7: at most `FETCHES_PER_PEER_MAX` fetches per peer (a new announce drops the oldest), and
/// a fetch with no progress for `fetch_timeout_ms` is dropped on the next tick.
#[test]
fn fetches_are_bounded_per_peer_and_time_out_gw7() {
    let mut a = node(0, 2);
    let mut b = node(1, 2);
    let mut heads = Vec::new();
    for i in 0..=FETCHES_PER_PEER_MAX as u64 {
        a.db_mut().set("/x", &i.to_le_bytes()).unwrap();
        a.db_mut().commit("c").unwrap();
        heads.push(a.db().head().unwrap());
        b.handle(PeerId(0), announce(&a), i).unwrap();
    }
    assert_eq!(b.fetches_in_progress(), FETCHES_PER_PEER_MAX, "GW-7: bounded per peer");
    // The oldest fetch was dropped: its head's blob is no longer wanted.
    let oldest = a.db().store().get(&heads[0].cid).unwrap();
    let err = b.handle(PeerId(0), Message::Objects { blobs: vec![oldest] }, 10).unwrap_err();
    assert!(matches!(err, GossipError::UnwantedBlob(_)), "{err}");
    let timeout_ms = GossipConfig::default().fetch_timeout_ms;
    b.tick(timeout_ms).unwrap();
    assert_eq!(b.fetches_in_progress(), FETCHES_PER_PEER_MAX, "not stalled long enough yet");
    b.tick(FETCHES_PER_PEER_MAX as u64 + timeout_ms).unwrap();
    assert_eq!(b.fetches_in_progress(), 0, "GW-7: stalled fetches time out");
}
