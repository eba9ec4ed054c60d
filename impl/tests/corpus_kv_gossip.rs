//! Runs the seed corpora of the `decode_kv_node` and `decode_gossip_message` fuzz targets
//! (`fuzz/corpus/<target>/`) as ordinary tests: files named `ok-*` must decode and round-trip,
//! files named `err-*` must be refused with an error, and nothing may panic (KV-2, GW-1..GW-3).
//!
//! Regenerate the seeds: `cargo test -p cellar --test corpus_kv_gossip -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::gossip::{Message, decode_message, encode_message};
use cellar::db::kv::{Entry, Kv, NODE_VERSION, Node, decode_node, encode_node};
use cellar::db::merge::{NodeId, VectorClock};
use cellar::storage::store::MemStore;
use std::path::PathBuf;

fn dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn run_corpus(target: &str, ok: impl Fn(&[u8]) -> bool) {
    let mut seen = 0;
    for f in std::fs::read_dir(dir(target)).unwrap() {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let decoded = ok(&bytes);
        if name.starts_with("ok-") {
            assert!(decoded, "{target}/{name} must decode");
        } else if name.starts_with("err-") {
            assert!(!decoded, "{target}/{name} must be refused");
        }
        seen += 1;
    }
    assert!(seen >= 8, "{target} corpus has {seen} files");
}

#[test]
fn decode_kv_node_corpus() {
    run_corpus("decode_kv_node", |b| match decode_node(b) {
        Ok(n) => decode_node(&encode_node(&n).unwrap()).unwrap() == n,
        Err(_) => false,
    });
}

#[test]
fn decode_gossip_message_corpus() {
    run_corpus("decode_gossip_message", |b| match decode_message(b) {
        Ok(m) => decode_message(&encode_message(&m).unwrap()).unwrap() == m,
        Err(_) => false,
    });
}

fn seeds_kv() -> Vec<(&'static str, Vec<u8>)> {
    let leaf = |entries: Vec<(&[u8], &[u8])>| Node {
        version: NODE_VERSION,
        level: 0,
        entries: entries
            .into_iter()
            .map(|(k, v)| Entry { key: k.to_vec(), value: v.to_vec() })
            .collect(),
    };
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, [1; 32], 32);
    let root = kv
        .build((0..64u32).map(|i| (format!("key{i:03}").into_bytes(), vec![1])))
        .unwrap()
        .unwrap();
    let internal = kv.read_node(&root).unwrap();
    let good = encode_node(&leaf(vec![(b"a", b"1"), (b"b", b"")])).unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    vec![
        ("ok-leaf", good.clone()),
        ("ok-leaf-empty-key", encode_node(&leaf(vec![(b"", b"v")])).unwrap()),
        ("ok-internal", encode_node(&internal).unwrap()),
        ("err-empty", Vec::new()),
        ("err-no-entries", vec![1, 0, 0]),
        ("err-version", vec![2, 0, 1, 1, b'a', 0]),
        ("err-unsorted", vec![1, 0, 2, 1, b'b', 0, 1, b'a', 0]),
        ("err-duplicate", vec![1, 0, 2, 1, b'a', 0, 1, b'a', 0]),
        ("err-internal-short-ref", vec![1, 1, 1, 1, b'a', 1, 0]),
        ("err-level", vec![1, 41, 1, 1, b'a', 0]),
        ("err-trailing", trailing),
        ("err-truncated", good[..good.len() - 1].to_vec()),
        ("err-huge-count", vec![1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    ]
}

fn seeds_gossip() -> Vec<(&'static str, Vec<u8>)> {
    let store = MemStore::new();
    let kv = Kv::new(&store, [1; 32]);
    let head = kv.put(None, b"k", b"v").unwrap().unwrap();
    let clock = VectorClock::new().incremented(NodeId(1)).incremented(NodeId(3));
    let announce = encode_message(&Message::Announce { head, clock }).unwrap();
    let want = encode_message(&Message::Want { cids: vec![head.cid] }).unwrap();
    let objects =
        encode_message(&Message::Objects { blobs: vec![b"blob".to_vec(), Vec::new()] }).unwrap();
    let mut bad_clock = announce.clone();
    let n = bad_clock.len();
    bad_clock[n - 1] = 0; // last clock count 0: not canonical
    vec![
        ("ok-announce", announce.clone()),
        ("ok-want", want.clone()),
        ("ok-want-empty", encode_message(&Message::Want { cids: Vec::new() }).unwrap()),
        ("ok-objects", objects.clone()),
        ("err-empty", Vec::new()),
        ("err-version", [&[2u8][..], &want[1..]].concat()),
        ("err-variant", vec![1, 3]),
        ("err-truncated-announce", announce[..announce.len() - 3].to_vec()),
        ("err-trailing", [&want[..], &[0][..]].concat()),
        ("err-clock-zero-entry", bad_clock),
        ("err-too-many-cids", {
            let mut b = vec![1, 1];
            b.extend(postcard::to_allocvec(&vec![cellar::Hash::ZERO; 4097]).unwrap());
            b
        }),
        ("err-huge-blob-len", vec![1, 2, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    ]
}

#[test]
#[ignore = "writes the seed corpora; run with --ignored to regenerate"]
fn regenerate_seed_corpora() {
    for (target, seeds) in
        [("decode_kv_node", seeds_kv()), ("decode_gossip_message", seeds_gossip())]
    {
        std::fs::create_dir_all(dir(target)).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir(target).join(name), bytes).unwrap();
        }
    }
}
