//! Gossip tests with an in-memory network: convergence, O(depth) transfer, hostile peers.

use super::*;
use crate::db::hkv::Hkv;
use crate::db::merge::{MergePolicy, NodeId};
use crate::env::DetEntropy;
use crate::storage::store::{MemStore, Store};
use std::collections::VecDeque;

const SALT: [u8; 32] = [4; 32];

fn node(i: u32, n: u32, policy: MergePolicy) -> GossipNode {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let db = Hkv::new(store, SALT, NodeId(i), policy, None);
    let peers = (0..n).filter(|p| *p != i).map(PeerId).collect();
    GossipNode::new(db, peers, Arc::new(DetEntropy::new(u64::from(i))), GossipConfig::default())
}

/// Delivers every message (in FIFO order) until the network is quiet; returns bytes carried.
fn deliver(
    nodes: &mut [GossipNode],
    mut queue: VecDeque<(PeerId, Envelope)>,
    now_ms: u64,
) -> usize {
    let mut bytes = 0;
    let mut steps = 0;
    while let Some((from, env)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 100_000, "gossip did not settle");
        let encoded = encode_message(&env.message).unwrap();
        bytes += encoded.len();
        let to = env.to;
        let handled = nodes[to.0 as usize].handle_bytes(from, &encoded, now_ms).unwrap();
        queue.extend(handled.replies.into_iter().map(|e| (to, e)));
    }
    bytes
}

fn round(nodes: &mut [GossipNode], now_ms: u64) -> usize {
    let mut queue = VecDeque::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        queue.extend(n.tick(now_ms).unwrap().into_iter().map(|e| (PeerId(i as u32), e)));
    }
    deliver(nodes, queue, now_ms)
}

fn contents(n: &GossipNode) -> Vec<(String, Vec<Value>)> {
    let db = n.db();
    db.list_recursive("/")
        .unwrap()
        .into_iter()
        .map(|k| {
            let s = db.siblings(&k).unwrap();
            (k, s)
        })
        .collect()
}

use crate::db::merge::Value;

#[test]
fn three_nodes_converge_after_concurrent_writes_gos5() {
    for policy in [MergePolicy::LastWriteWins, MergePolicy::KeepBoth] {
        let mut nodes: Vec<_> = (0..3).map(|i| node(i, 3, policy)).collect();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.db_mut().set("/shared", format!("from {i}").as_bytes()).unwrap();
            n.db_mut().set(&format!("/own/{i}"), b"mine").unwrap();
            n.db_mut().commit("write").unwrap();
        }
        let mut now = 0;
        for _ in 0..20 {
            round(&mut nodes, now);
            now += 1000;
        }
        let first = contents(&nodes[0]);
        assert_eq!(first.len(), 4, "{first:?}");
        for n in &nodes[1..] {
            assert_eq!(contents(n), first, "GOS-5: converged");
            assert_eq!(
                n.db().head_root().unwrap(),
                nodes[0].db().head_root().unwrap(),
                "equal roots"
            );
        }
        let shared = nodes[0].db().siblings("/shared").unwrap();
        match policy {
            MergePolicy::KeepBoth => assert_eq!(shared.len(), 3, "GOS-4: all three kept"),
            _ => assert_eq!(
                shared,
                vec![Some(b"from 2".to_vec())],
                "GOS-3: highest writer wins the tie"
            ),
        }
    }
}

#[test]
fn only_missing_blobs_travel_one_edit_behind() {
    let mut nodes: Vec<_> = (0..2).map(|i| node(i, 2, MergePolicy::LastWriteWins)).collect();
    for i in 0..5000 {
        nodes[0].db_mut().set(&format!("/k/{i:05}"), b"value").unwrap();
    }
    nodes[0].db_mut().commit("bulk").unwrap();
    let first_sync = round(&mut nodes, 0) + round(&mut nodes, 1000);
    assert_eq!(contents(&nodes[1]).len(), 5000);
    nodes[0].db_mut().set("/k/01234", b"changed").unwrap();
    nodes[0].db_mut().commit("one edit").unwrap();
    let depth = u64::from(
        nodes[0].db().kv().read_node(&nodes[0].db().head_root().unwrap().unwrap()).unwrap().level,
    ) + 1;
    let mut bytes = 0;
    for t in 2..4 {
        bytes += round(&mut nodes, t * 1000);
    }
    assert_eq!(nodes[1].db().get("/k/01234").unwrap(), Some(b"changed".to_vec()));
    // One snapshot plus one node per level, each at most a few KiB, plus announces and wants.
    assert!(bytes as u64 <= (depth + 1) * 12 * 1024 + 4096, "{bytes} bytes for depth {depth}");
    assert!(bytes * 5 < first_sync, "incremental {bytes} vs full {first_sync}");
}

#[test]
fn hostile_peer_cannot_plant_blobs_gw5() {
    let mut a = node(0, 2, MergePolicy::LastWriteWins);
    let mut b = node(1, 2, MergePolicy::LastWriteWins);
    a.db_mut().set("/x", b"1").unwrap();
    let head = a.db_mut().commit("c").unwrap();
    // Unsolicited objects.
    assert!(junk_is_refused(&mut b), "GW-5");
    // Start a fetch, then answer with a blob of another hash: refused and not stored.
    let clock = crate::db::snapshot::get(a.db().store().as_ref(), &head).unwrap().clock;
    let h = b.handle(PeerId(0), Message::Announce { head, clock: clock.clone() }, 0).unwrap();
    assert_eq!(h.replies.last().unwrap().message, Message::Want { cids: vec![head.cid] });
    assert!(junk_is_refused(&mut b), "GW-5");
    assert!(!b.db().store().exists(&crate::Hash::of(b"junk")).unwrap());
    // A head ref with the right CID but a wrong key: the blob fails its tag check.
    let forged = Ref { cid: head.cid, dek: [0; 32] };
    let mut b = node(1, 2, MergePolicy::LastWriteWins);
    b.handle(PeerId(0), Message::Announce { head: forged, clock }, 0).unwrap();
    let blob = a.db().store().get(&head.cid).unwrap();
    let err = b.handle(PeerId(0), Message::Objects { blobs: vec![blob] }, 0).unwrap_err();
    assert!(matches!(err, GossipError::Corrupt { .. }), "{err}");
    assert!(!b.db().store().exists(&head.cid).unwrap());
}

#[test]
fn malformed_and_oversized_messages_are_errors_gw2_gw3() {
    let mut b = node(1, 2, MergePolicy::LastWriteWins);
    for bytes in [&b""[..], &[9, 0], &[1, 7], &[1, 1, 0, 0]] {
        assert!(
            matches!(b.handle_bytes(PeerId(0), bytes, 0), Err(GossipError::Wire(_))),
            "{bytes:?}"
        );
    }
    let huge = vec![0u8; MESSAGE_SIZE_MAX_BYTES + 1];
    assert!(matches!(decode_message(&huge), Err(WireError::TooLarge { .. })));
    let many = Message::Want { cids: vec![crate::Hash::ZERO; WANT_CIDS_MAX + 1] };
    assert!(matches!(encode_message(&many), Err(WireError::TooMany { .. })));
    // Hand-built frame with too many cids is refused by the decoder too.
    let mut bytes = vec![WIRE_VERSION, 1];
    bytes.extend(postcard::to_allocvec(&vec![crate::Hash::ZERO; WANT_CIDS_MAX + 1]).unwrap());
    assert!(matches!(decode_message(&bytes), Err(WireError::TooMany { .. })));
    let ok = Message::Want { cids: vec![crate::Hash::ZERO] };
    assert_eq!(decode_message(&encode_message(&ok).unwrap()).unwrap(), ok);
}

#[test]
fn peer_selection_comes_from_injected_entropy() {
    let picks = |seed| {
        let mut n = node(0, 6, MergePolicy::LastWriteWins);
        n.entropy = Arc::new(DetEntropy::new(seed));
        n.db_mut().set("/a", b"b").unwrap();
        n.db_mut().commit("c").unwrap();
        (0..5).flat_map(|t| n.tick(t * 1000).unwrap()).map(|e| e.to.0).collect::<Vec<_>>()
    };
    assert_eq!(picks(7), picks(7), "same seed, same peers");
    assert_ne!(picks(7), picks(8));
    let p = picks(7);
    assert_eq!(p.len(), 10, "fanout 2 × 5 rounds");
    assert!(p.chunks(2).all(|c| c[0] != c[1] && c[0] != 0));
}

/// Every checker must be seen to fail: a node that stores unwanted blobs fails the GW-5 check.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_store_unwanted_blob_is_caught_gw5() {
    let mut b = node(1, 2, MergePolicy::LastWriteWins);
    let _bug = crate::bugs::plant("gossip:store-unwanted-blob").unwrap();
    assert!(!junk_is_refused(&mut b), "the GW-5 check catches gossip:store-unwanted-blob");
}

/// The GW-5 check: unsolicited bytes are refused with `UnwantedBlob` and not stored.
fn junk_is_refused(b: &mut GossipNode) -> bool {
    let refused = matches!(
        b.handle(PeerId(0), Message::Objects { blobs: vec![b"junk".to_vec()] }, 0),
        Err(GossipError::UnwantedBlob(_))
    );
    refused && !b.db().store().exists(&crate::Hash::of(b"junk")).unwrap()
}
