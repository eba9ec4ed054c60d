//! Spec agreement (issue 6, item 4): random histories of writes, deletes, commits and gossip
//! merges are fed both to the implementation (`cellar::db::hkv` / `cellar::db::merge`, snapshot trees
//! in a store) and to the executable spec (`cellar_model::spec::gossip::GossipSpec`); after
//! every step every node's state of every key must be identical (GOS-1..GOS-7, KV-11).
//!
//! The planted bug `gossip:lww-by-arrival-order` must make this check fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::hkv::Hkv;
use cellar::db::merge::{KeyState, MergePolicy, NodeId, Value};
use cellar::storage::store::{MemStore, Store};
use cellar_model::spec;
use proptest::prelude::*;
use std::sync::Arc;

const NODES: u32 = 3;
const KEYS: u8 = 3;

#[derive(Clone, Debug)]
enum Op {
    /// (node, key, value; `None` deletes)
    Write(u32, u8, Option<u8>),
    Commit(u32),
    /// (from, to): `from` commits, then `to` merges `from`'s head.
    Sync(u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NODES, 0..KEYS, prop::option::weighted(0.8, 0u8..4)).prop_map(|(n, k, v)| Op::Write(n, k, v)),
        1 => (0..NODES).prop_map(Op::Commit),
        3 => (0..NODES, 0..NODES).prop_filter("distinct", |(a, b)| a != b).prop_map(|(a, b)| Op::Sync(a, b)),
    ]
}

fn path(k: u8) -> String {
    format!("/k/{k}")
}

fn value(v: Option<u8>) -> Value {
    v.map(|v| vec![v])
}

/// Picks the largest sibling (tombstones sort first); the same function serves both sides.
fn largest(values: &[Value]) -> Value {
    values.iter().max().cloned().flatten()
}

type Plain = (Vec<(u32, u64)>, Vec<(Value, u32, Vec<(u32, u64)>)>);

fn plain_impl(s: &KeyState) -> Plain {
    let clock = |c: &cellar::db::merge::VectorClock| c.entries().map(|(n, v)| (n.0, v)).collect();
    (
        clock(s.clock()),
        s.versions().iter().map(|v| (v.value.clone(), v.writer.0, clock(&v.clock))).collect(),
    )
}

fn plain_spec(s: Option<&spec::KeyState<Value>>) -> Plain {
    let Some(s) = s else { return (Vec::new(), Vec::new()) };
    let clock = |c: &spec::VectorClock| c.entries().map(|(n, v)| (n.0, v)).collect();
    (
        clock(s.clock()),
        s.versions().iter().map(|v| (v.value.clone(), v.writer.0, clock(&v.clock))).collect(),
    )
}

fn spec_policy(p: &MergePolicy) -> spec::MergePolicy<Value> {
    match p {
        MergePolicy::LastWriteWins => spec::MergePolicy::LastWriteWins,
        MergePolicy::KeepBoth => spec::MergePolicy::KeepBoth,
        MergePolicy::Custom(f) => spec::MergePolicy::Custom(*f),
    }
}

/// Runs `ops` on both sides; returns the first disagreement.
fn check_history(policy: MergePolicy, ops: &[Op]) -> Result<(), String> {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let mut imp: Vec<Hkv> =
        (0..NODES).map(|n| Hkv::new(store.clone(), [3; 32], NodeId(n), policy, None)).collect();
    let mut model: Vec<spec::GossipSpec<String, Value>> =
        (0..NODES).map(|n| spec::GossipSpec::new(spec::NodeId(n), spec_policy(&policy))).collect();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Write(n, k, v) => {
                let node = &mut imp[n as usize];
                match v {
                    Some(_) => {
                        node.set(&path(k), &[v.unwrap_or_default()]).map_err(|e| e.to_string())?
                    }
                    None => node.delete(&path(k)).map_err(|e| e.to_string())?,
                }
                model[n as usize].write(path(k), value(v));
            }
            Op::Commit(n) => {
                imp[n as usize].commit("commit").map_err(|e| e.to_string())?;
            }
            Op::Sync(from, to) => {
                let head = imp[from as usize].commit("sync").map_err(|e| e.to_string())?;
                imp[to as usize].merge_from(&head).map_err(|e| e.to_string())?;
                let wants = model[to as usize].wants(&model[from as usize].digest());
                let objects = model[from as usize].objects(&wants);
                model[to as usize].merge_objects(&objects);
            }
        }
        for n in 0..NODES as usize {
            for k in 0..KEYS {
                let got = plain_impl(&imp[n].state(&path(k)).map_err(|e| e.to_string())?);
                let want = plain_spec(model[n].get(&path(k)));
                if got != want {
                    return Err(format!(
                        "step {step} ({op:?}): node {n} key {k}: impl {got:?} != spec {want:?}"
                    ));
                }
                let read = imp[n].state(&path(k)).map_err(|e| e.to_string())?.read(&policy);
                if read != model[n].read(&path(k)) {
                    return Err(format!("step {step}: node {n} key {k}: reads differ"));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn lww_agrees_with_spec(ops in prop::collection::vec(op(), 1..40)) {
        prop_assert_eq!(check_history(MergePolicy::LastWriteWins, &ops), Ok(()));
    }

    #[test]
    fn keep_both_agrees_with_spec(ops in prop::collection::vec(op(), 1..40)) {
        prop_assert_eq!(check_history(MergePolicy::KeepBoth, &ops), Ok(()));
    }

    #[test]
    fn custom_agrees_with_spec(ops in prop::collection::vec(op(), 1..40)) {
        prop_assert_eq!(check_history(MergePolicy::Custom(largest), &ops), Ok(()));
    }
}

/// A fixed history where two nodes write one key concurrently and merge in both directions:
/// node 2's committed write has the greater precedence (equal lamport, higher writer), and node
/// 1's arrives at node 2 afterwards.
fn concurrent_writes() -> Vec<Op> {
    vec![
        Op::Write(2, 0, Some(1)),
        Op::Commit(2),
        Op::Write(1, 0, Some(2)),
        Op::Sync(1, 2),
        Op::Sync(2, 1),
    ]
}

#[test]
fn concurrent_writes_agree() {
    assert_eq!(check_history(MergePolicy::LastWriteWins, &concurrent_writes()), Ok(()));
}

/// Every checker must be seen to fail: the planted LWW-by-arrival-order bug is caught.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_lww_by_arrival_order_is_caught() {
    let _bug = cellar::bugs::plant("gossip:lww-by-arrival-order").unwrap();
    let err = check_history(MergePolicy::LastWriteWins, &concurrent_writes()).unwrap_err();
    assert!(err.contains("impl"), "{err}");
    // KeepBoth does not go through the LWW branch: the bug is invisible there.
    assert_eq!(check_history(MergePolicy::KeepBoth, &concurrent_writes()), Ok(()));
}
