//! Property tests for every `Store`: a random sequence of posts and deletes agrees with a
//! `BTreeMap` model on `get`, `exists` and `list` (STORE-1, STORE-2, STORE-4), for `MemStore`
//! and `DirStore` alike.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::Hash;
use cellar::storage::store::{DirStore, MemStore, Store, StoreError, list_all};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone)]
enum Op {
    Post(Vec<u8>),
    /// Delete the n-th blob of the model (mod its size), or an absent hash if empty.
    Delete(usize),
    /// List from the n-th blob (mod size) with this limit.
    List(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Op::Post),
        1 => any::<usize>().prop_map(Op::Delete),
        1 => (any::<usize>(), 0usize..8).prop_map(|(i, l)| Op::List(i, l)),
    ]
}

fn nth_key(model: &BTreeMap<Hash, Vec<u8>>, n: usize) -> Option<Hash> {
    if model.is_empty() { None } else { model.keys().nth(n % model.len()).copied() }
}

fn check_against_model(store: &dyn Store, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model: BTreeMap<Hash, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Post(data) => {
                let h = store.post(data)?;
                prop_assert_eq!(h, Hash::of(data));
                model.insert(h, data.clone());
            }
            Op::Delete(n) => {
                let h = nth_key(&model, *n).unwrap_or(Hash::of(b"never posted"));
                store.delete(&h)?;
                model.remove(&h);
                prop_assert!(matches!(store.get(&h), Err(StoreError::NotFound(_))));
            }
            Op::List(n, limit) => {
                let start = nth_key(&model, *n).map_or(Bound::Unbounded, Bound::Included);
                let got = store.list((start, Bound::Unbounded), *limit)?;
                let want: Vec<Hash> =
                    model.range((start, Bound::Unbounded)).map(|(h, _)| *h).take(*limit).collect();
                prop_assert_eq!(got, want, "STORE-4");
            }
        }
    }
    for (h, data) in &model {
        prop_assert_eq!(&store.get(h)?, data, "STORE-2 round trip");
        prop_assert!(store.exists(h)?);
    }
    prop_assert_eq!(list_all(store)?, model.keys().copied().collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mem_store_agrees_with_model(ops in proptest::collection::vec(op(), 0..40)) {
        check_against_model(&MemStore::new(), &ops)?;
    }

}

proptest! {
    // Every DirStore post fsyncs a file and a directory: fewer cases keep CI quick.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn dir_store_agrees_with_model(ops in proptest::collection::vec(op(), 0..40)) {
        let dir = tempfile::tempdir().unwrap();
        check_against_model(&DirStore::open(dir.path()).unwrap(), &ops)?;
    }

    #[test]
    fn dir_store_round_trips_any_blob(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::open(dir.path()).unwrap();
        let h = s.post(&data)?;
        prop_assert_eq!(s.get(&h)?, data);
    }
}
