//! Stateful: an arbitrary sequence of puts, deletes, batches and range reads on the prolly tree
//! (`cellar::db::kv`) against a `BTreeMap`. Small target node sizes make trees several levels
//! deep within a few dozen keys, so interior-node edits (splits, merges, boundary moves) run.
//!
//! After every operation: each touched key reads as in the map (KV-7) and the ranges agree; at
//! the end the whole tree iterates as the map does and its root equals the root built from
//! scratch from the same entries (KV-4: one content, one tree, whatever the edit history).
#![no_main]

use arbitrary::Arbitrary;
use cellar::db::kv::Kv;
use cellar::storage::store::MemStore;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Arbitrary)]
enum Op {
    Put { key: u16, value: Vec<u8> },
    Delete { key: u16 },
    Batch { edits: Vec<(u16, Option<Vec<u8>>)> },
    Range { from: u16, to: u16 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Node target size in bytes, mapped to 16..=1039: deep trees when small.
    target: u16,
    ops: Vec<Op>,
}

/// Keys cluster in a small space so edits hit existing keys, with a length that varies.
fn key(k: u16) -> Vec<u8> {
    let n = k % 512;
    let mut v = format!("k{n:03}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', usize::from(k >> 13)));
    v
}

fn value(v: &[u8]) -> Vec<u8> {
    v.iter().copied().take(64).collect()
}

fuzz_target!(init: cellar_fuzz::plant_from_env(), |input: Input| {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, [7; 32], 16 + u64::from(input.target % 1024));
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut root = None;
    for op in input.ops.iter().take(200) {
        let touched: Vec<Vec<u8>> = match op {
            Op::Put { key: k, value: v } => {
                root = kv.put(root.as_ref(), &key(*k), &value(v)).expect("put");
                model.insert(key(*k), value(v));
                vec![key(*k)]
            }
            Op::Delete { key: k } => {
                root = kv.delete(root.as_ref(), &key(*k)).expect("delete");
                model.remove(&key(*k));
                vec![key(*k)]
            }
            Op::Batch { edits } => {
                let mut batch = BTreeMap::new();
                for (k, v) in edits.iter().take(64) {
                    batch.insert(key(*k), v.as_deref().map(value));
                }
                root = kv.edit(root.as_ref(), batch.clone()).expect("edit");
                for (k, v) in &batch {
                    match v {
                        Some(v) => model.insert(k.clone(), v.clone()),
                        None => model.remove(k),
                    };
                }
                batch.into_keys().collect()
            }
            Op::Range { from, to } => {
                let (a, b) = (key(*from), key(*to));
                let got: Vec<(Vec<u8>, Vec<u8>)> = kv
                    .range(root.as_ref(), Bound::Included(&a), Bound::Excluded(&b))
                    .expect("range")
                    .collect::<Result<_, _>>()
                    .expect("range entries");
                let want: Vec<(Vec<u8>, Vec<u8>)> = if a < b {
                    model.range(a.clone()..b.clone()).map(|(k, v)| (k.clone(), v.clone())).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want, "KV-7: range [{a:?}, {b:?})");
                Vec::new()
            }
        };
        for k in touched {
            assert_eq!(kv.get(root.as_ref(), &k).expect("get"), model.get(&k).cloned(), "KV-7: {k:?}");
        }
        assert_eq!(root.is_none(), model.is_empty(), "an empty map is the empty tree");
    }
    let all: Vec<(Vec<u8>, Vec<u8>)> = kv
        .range(root.as_ref(), Bound::Unbounded, Bound::Unbounded)
        .expect("scan")
        .collect::<Result<_, _>>()
        .expect("scan entries");
    assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>(), "KV-7: a full scan");
    let rebuilt = kv.build(model.clone()).expect("build");
    assert_eq!(rebuilt, root, "KV-4: the tree depends on its contents only");
});
