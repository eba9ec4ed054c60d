//! KV test vectors (`specs/vectors/kv.json`, `specs/kv.md` KV-1, KV-3, KV-4, KV-12).
//!
//! Boundary vectors are computed twice: by a from-scratch reference written here against the
//! `blake3` crate (following KV-3, not `cellar::db::kv`) and by `Kv::is_boundary`; they must agree.
//! Tree vectors pin the root ref, depth and node count of trees whose contents are given by a
//! formula, plus the exact bytes of a small leaf, so an implementation in another language can
//! check its chunking, node encoding and convergent encryption end to end. The file on disk
//! must equal what this test produces.
//!
//! Regenerate after a deliberate format change:
//! `CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test kv_vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::kv::{Entry, Kv, NODE_TARGET_SIZE_BYTES, NODE_VERSION, Node, encode_node};
use cellar::storage::refs::{self, Ref};
use cellar::storage::store::{MemStore, list_all};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const REGEN_COMMAND: &str = "CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test kv_vectors";
const SALT: [u8; 32] = [0x11; 32];

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct VectorFile {
    format: String,
    spec: String,
    regenerate: String,
    salt_hex: String,
    boundary_key_hex: String,
    node_target_size_bytes: u64,
    boundaries: Vec<Boundary>,
    leaf: Leaf,
    trees: Vec<Tree>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Boundary {
    level: u8,
    key_hex: String,
    value_len_bytes: usize,
    hash_u64: u64,
    threshold: String,
    boundary: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Leaf {
    entries: Vec<(String, String)>,
    node_hex: String,
    ref_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Tree {
    name: String,
    formula: String,
    keys: u32,
    node_target_size_bytes: u64,
    root_ref_hex: String,
    depth: u8,
    blobs: usize,
}

/// KV-3 from scratch.
fn reference_boundary(level: u8, key: &[u8], value_len: usize, target: u64) -> (u64, u128, bool) {
    let bk = blake3::derive_key("cellar 2026 kv boundary v1", &SALT);
    let mut input = vec![level];
    input.extend_from_slice(key);
    let h = blake3::keyed_hash(&bk, &input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    let draw = u64::from_le_bytes(first);
    let threshold = (((key.len() + value_len) as u128) << 64) / u128::from(target);
    (draw, threshold, u128::from(draw) < threshold)
}

fn tree(name: &str, keys: u32, target: u64) -> Tree {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, SALT, target);
    let root = kv
        .build((0..keys).map(|i| (format!("key/{i:06}").into_bytes(), i.to_le_bytes().to_vec())))
        .unwrap();
    let root = root.unwrap();
    Tree {
        name: name.into(),
        formula: "key i = UTF-8 \"key/\" + i as 6 decimal digits; value = i as u32 little-endian"
            .into(),
        keys,
        node_target_size_bytes: target,
        root_ref_hex: hex::encode(root.to_bytes()),
        depth: kv.read_node(&root).unwrap().level + 1,
        blobs: list_all(&store).unwrap().len(),
    }
}

fn generate() -> VectorFile {
    let store = MemStore::new();
    let kv = Kv::new(&store, SALT);
    let mut boundaries = Vec::new();
    for (level, key, value_len) in [
        (0u8, &b""[..], 0usize),
        (0, b"a", 1),
        (0, b"key/000001", 4),
        (1, b"key/000001", 64),
        (0, b"big", 5000),
        (3, b"/users/alice/profile", 64),
    ] {
        let (hash_u64, threshold, boundary) =
            reference_boundary(level, key, value_len, NODE_TARGET_SIZE_BYTES);
        let entry = Entry { key: key.to_vec(), value: vec![0; value_len] };
        assert_eq!(
            kv.is_boundary(level, &entry),
            boundary,
            "KV-3 reference and implementation agree"
        );
        boundaries.push(Boundary {
            level,
            key_hex: hex::encode(key),
            value_len_bytes: value_len,
            hash_u64,
            threshold: threshold.to_string(),
            boundary,
        });
    }
    // Every boundary decision below must also agree on many generated keys.
    for i in 0..2000u32 {
        let key = format!("key/{i:06}").into_bytes();
        let e = Entry { key: key.clone(), value: vec![1; (i % 300) as usize] };
        assert_eq!(
            kv.is_boundary((i % 3) as u8, &e),
            reference_boundary((i % 3) as u8, &key, e.value.len(), NODE_TARGET_SIZE_BYTES).2
        );
    }
    let entries = vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), Vec::new())];
    let node = Node {
        version: NODE_VERSION,
        level: 0,
        entries: entries.iter().map(|(k, v)| Entry { key: k.clone(), value: v.clone() }).collect(),
    };
    let node_bytes = encode_node(&node).unwrap();
    let leaf_ref = refs::post(&store, &SALT, &node_bytes).unwrap();
    assert_eq!(kv.build(entries.clone()).unwrap(), Some(leaf_ref), "a two-entry tree is one leaf");
    VectorFile {
        format: "cellar kv test vectors v1".into(),
        spec: "specs/kv.md".into(),
        regenerate: REGEN_COMMAND.into(),
        salt_hex: hex::encode(SALT),
        boundary_key_hex: hex::encode(blake3::derive_key("cellar 2026 kv boundary v1", &SALT)),
        node_target_size_bytes: NODE_TARGET_SIZE_BYTES,
        boundaries,
        leaf: Leaf {
            entries: entries.iter().map(|(k, v)| (hex::encode(k), hex::encode(v))).collect(),
            node_hex: hex::encode(&node_bytes),
            ref_hex: hex::encode(leaf_ref.to_bytes()),
        },
        trees: vec![tree("small-nodes", 500, 64), tree("default", 20_000, NODE_TARGET_SIZE_BYTES)],
    }
}

#[test]
fn kv_vectors_match_the_file() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/kv.json");
    let generated = generate();
    if std::env::var_os("CELLAR_REGEN_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
    }
    let on_disk: VectorFile =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(on_disk, generated, "specs/vectors/kv.json is stale: {REGEN_COMMAND}");
    // Data-driven: the pinned leaf decrypts to the pinned node bytes.
    let r = Ref::from_bytes(&hex::decode(&on_disk.leaf.ref_hex).unwrap()).unwrap();
    let (again, ciphertext) =
        refs::encrypt(&SALT, &hex::decode(&on_disk.leaf.node_hex).unwrap()).unwrap();
    assert_eq!(again, r);
    assert_eq!(
        refs::decrypt(&r, &ciphertext).unwrap(),
        hex::decode(&on_disk.leaf.node_hex).unwrap()
    );
}
