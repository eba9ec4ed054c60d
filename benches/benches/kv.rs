//! KV benchmarks (issue 6, item 8): put / get / diff on a 1 M-key prolly tree, and the bytes a
//! gossip sync moves to bring a node that is one edit behind up to date (must be O(depth)).
//!
//! Run: `cargo bench -p cellar-benches --bench kv`. Figures go to `docs/kv.md`.
//! `KV_BENCH_KEYS` overrides the key count (default 1 000 000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::gossip::{Envelope, GossipConfig, GossipNode, PeerId, encode_message};
use cellar::db::hkv::Hkv;
use cellar::db::kv::{Edits, Kv, NodeCache};
use cellar::db::merge::{self, KeyState, MergePolicy, NodeId};
use cellar::db::snapshot::{self, Snapshot};
use cellar::env::DetEntropy;
use cellar::storage::refs::Ref;
use cellar::storage::store::{MemStore, Store};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;

const SALT: [u8; 32] = [0x5a; 32];

fn keys_n() -> u64 {
    std::env::var("KV_BENCH_KEYS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
}

fn key(i: u64) -> Vec<u8> {
    format!("user/{i:010}/profile").into_bytes()
}

/// A deterministic key index stream (splitmix64), no randomness dependency.
fn pick(state: &mut u64, n: u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % n
}

fn build(store: &MemStore, n: u64) -> Option<Ref> {
    let kv = Kv::new(store, SALT);
    kv.build((0..n).map(|i| (key(i), i.to_le_bytes().to_vec()))).expect("build")
}

fn tree_benches(c: &mut Criterion) {
    let n = keys_n();
    let store = MemStore::new();
    let root = build(&store, n);
    let kv = Kv::new(&store, SALT);
    let depth = root.map_or(0, |r| kv.read_node(&r).expect("root").level + 1);
    eprintln!(
        "kv: {n} keys, depth {depth}, {} blobs",
        cellar::storage::store::list_all(&store).map_or(0, |l| l.len())
    );
    let mut g = c.benchmark_group(format!("kv_{n}_keys"));
    g.sample_size(20);
    let mut s = 1;
    g.bench_function("get", |b| {
        b.iter(|| black_box(kv.get(root.as_ref(), &key(pick(&mut s, n))).expect("get")))
    });
    g.bench_function("put_one", |b| {
        b.iter(|| {
            black_box(kv.put(root.as_ref(), &key(pick(&mut s, n)), b"new value").expect("put"))
        })
    });
    // KV-18: the same operations through a node cache (default bound, 64 MiB), warmed by the
    // benchmark's own warm-up; a 1 M-key tree fits in it.
    let cache = NodeCache::default();
    let cached = kv.with_cache(&cache);
    for _ in 0..20_000 {
        cached.get(root.as_ref(), &key(pick(&mut s, n))).expect("warm");
    }
    g.bench_function("get_cached", |b| {
        b.iter(|| black_box(cached.get(root.as_ref(), &key(pick(&mut s, n))).expect("get")))
    });
    g.bench_function("put_one_cached", |b| {
        b.iter(|| {
            black_box(cached.put(root.as_ref(), &key(pick(&mut s, n)), b"new value").expect("put"))
        })
    });
    eprintln!("kv: node cache after the cached benchmarks: {cache:?}");
    g.bench_function("edit_batch_1000", |b| {
        b.iter_batched(
            || {
                (0..1000)
                    .map(|_| (key(pick(&mut s, n)), Some(b"batched".to_vec())))
                    .collect::<Edits>()
            },
            |edits| black_box(kv.edit(root.as_ref(), edits).expect("edit")),
            BatchSize::SmallInput,
        )
    });
    let one = kv.put(root.as_ref(), &key(n / 2), b"changed").expect("put");
    g.bench_function("diff_one_change", |b| {
        b.iter(|| black_box(kv.diff(root.as_ref(), one.as_ref()).expect("diff")))
    });
    let edits: Edits = (0..100).map(|i| (key(i * (n / 100)), Some(b"changed".to_vec()))).collect();
    let hundred = kv.edit(root.as_ref(), edits).expect("edit");
    g.bench_function("diff_100_changes", |b| {
        b.iter(|| black_box(kv.diff(root.as_ref(), hundred.as_ref()).expect("diff")))
    });
    g.finish();
}

fn gossip_node(i: u32) -> GossipNode {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let db = Hkv::new(store, SALT, NodeId(i), MergePolicy::LastWriteWins, None);
    GossipNode::new(
        db,
        vec![PeerId(1 - i)],
        Arc::new(DetEntropy::new(u64::from(i))),
        GossipConfig::default(),
    )
}

/// One gossip round between the two nodes; returns (bytes, blobs) carried.
fn round(nodes: &mut [GossipNode; 2], now_ms: u64) -> (usize, usize) {
    let mut queue: VecDeque<(usize, Envelope)> = VecDeque::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        queue.extend(n.tick(now_ms).expect("tick").into_iter().map(|e| (i, e)));
    }
    let (mut bytes, mut blobs) = (0, 0);
    while let Some((from, env)) = queue.pop_front() {
        let encoded = encode_message(&env.message).expect("encode");
        bytes += encoded.len();
        if let cellar::db::gossip::Message::Objects { blobs: b } = &env.message {
            blobs += b.len();
        }
        let to = env.to.0 as usize;
        let h = nodes[to].handle_bytes(PeerId(from as u32), &encoded, now_ms).expect("handle");
        queue.extend(h.replies.into_iter().map(|e| (to, e)));
    }
    (bytes, blobs)
}

fn sync_benches(c: &mut Criterion) {
    let n = keys_n();
    let mut nodes = [gossip_node(0), gossip_node(1)];
    // The base state in one bulk build: each key written once by node 0 (GOS-1), one snapshot.
    let head = {
        let db = nodes[0].db();
        let kv = db.kv();
        let states = (0..n).map(|i| {
            let state =
                merge::write(&KeyState::default(), NodeId(0), Some(i.to_le_bytes().to_vec()));
            (format!("/users/{i:010}/profile").into_bytes(), state.encode().expect("encode"))
        });
        let root = kv.build(states).expect("build");
        snapshot::post(&kv, &Snapshot::commit_of(root, None, NodeId(0), "bulk")).expect("snapshot")
    };
    nodes[0].db_mut().set_head(Some(head));
    let (full_bytes, full_blobs) =
        (0..3).map(|t| round(&mut nodes, t * 1000)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let db = nodes[0].db();
    let root = db.head_root().expect("root").expect("non-empty");
    let depth = db.kv().read_node(&root).expect("root").level + 1;
    let mut t = 100_000;
    let mut edit_sync = |nodes: &mut [GossipNode; 2], k: u64| {
        nodes[0].db_mut().set(&format!("/users/{k:010}/profile"), b"edited").expect("set");
        nodes[0].db_mut().commit("one edit").expect("commit");
        nodes[0].announce_soon();
        let mut total = (0, 0);
        for _ in 0..2 {
            t += 1000;
            let r = round(nodes, t);
            total = (total.0 + r.0, total.1 + r.1);
        }
        total
    };
    let (bytes, blobs) = edit_sync(&mut nodes, n / 3);
    eprintln!(
        "kv sync: {n} keys, depth {depth}: full sync {full_bytes} bytes / {full_blobs} blobs; \
         one edit behind: {bytes} bytes / {blobs} blobs"
    );
    let mut g = c.benchmark_group(format!("kv_sync_{n}_keys"));
    g.sample_size(10);
    let mut s = 7;
    g.bench_function("sync_one_edit_behind", |b| {
        b.iter(|| black_box(edit_sync(&mut nodes, pick(&mut s, n))))
    });
    g.finish();
}

criterion_group!(benches, tree_benches, sync_benches);
criterion_main!(benches);
