//! Tree tests: unit cases and the three proptests of issue 6 (KV-4, KV-6, KV-7).

use super::*;
use crate::storage::store::MemStore;
use proptest::prelude::*;
use std::ops::Bound;

const SALT: [u8; 32] = [9; 32];
/// Small nodes so a few hundred keys make trees four or five levels deep.
const SMALL_TARGET_BYTES: u64 = 48;

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn all(kv: &Kv<'_>, root: Option<&Ref>) -> Vec<(Vec<u8>, Vec<u8>)> {
    kv.range(root, Bound::Unbounded, Bound::Unbounded).unwrap().collect::<Result<_, _>>().unwrap()
}

fn depth(kv: &Kv<'_>, root: Option<&Ref>) -> u8 {
    root.map_or(0, |r| kv.read_node(r).unwrap().level + 1)
}

#[test]
fn put_get_delete_and_deep_trees() {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
    let mut root = None;
    for i in 0..500 {
        root = kv.put(root.as_ref(), &key(i), &i.to_le_bytes()).unwrap();
    }
    assert!(depth(&kv, root.as_ref()) >= 3, "small target gives a deep tree");
    for i in 0..500 {
        assert_eq!(kv.get(root.as_ref(), &key(i)).unwrap(), Some(i.to_le_bytes().to_vec()));
    }
    assert_eq!(kv.get(root.as_ref(), b"zzz").unwrap(), None);
    for i in 0..500 {
        root = kv.delete(root.as_ref(), &key(i)).unwrap();
    }
    assert_eq!(root, None, "KV-4: deleting everything gives the empty tree");
}

#[test]
fn limits_are_typed_errors_kv5() {
    let store = MemStore::new();
    let kv = Kv::new(&store, SALT);
    let big_key = vec![0; KEY_SIZE_MAX_BYTES + 1];
    assert!(matches!(kv.put(None, &big_key, b""), Err(KvError::KeyTooLarge { .. })));
    let big_value = vec![0; VALUE_SIZE_MAX_BYTES + 1];
    assert!(matches!(kv.put(None, b"k", &big_value), Err(KvError::ValueTooLarge { .. })));
    let max = kv.put(None, &vec![1; KEY_SIZE_MAX_BYTES], &vec![2; VALUE_SIZE_MAX_BYTES]).unwrap();
    assert!(max.is_some());
}

#[test]
fn corrupt_nodes_are_errors_not_data_kv2() {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
    let root = kv.build((0..200).map(|i| (key(i), vec![1]))).unwrap();
    // A ref to a blob the store does not hold: an error, never "key absent".
    let fake = Ref { cid: crate::Hash::of(b"nope"), dek: [0; 32] };
    assert!(kv.get(Some(&fake), b"k").is_err());
    // A valid node that does not fit its parent (level mismatch) is Corrupt.
    let leaf = kv.put(None, b"k00000", b"x").unwrap().unwrap();
    let root_node = kv.read_node(root.as_ref().unwrap()).unwrap();
    // A leaf under a level-1 node fits, so the mismatch needs a root of level 2 or more (this
    // was an `if` that would have skipped the assertion silently).
    assert!(root_node.level > 1, "root level {} cannot show a level mismatch", root_node.level);
    let mut entries = root_node.entries.clone();
    entries[0].value = leaf.to_bytes().to_vec();
    entries[0].key = b"k00000".to_vec();
    let bad = kv.write_node(root_node.level, entries).unwrap();
    let bad_root = Ref::from_bytes(&bad.value).unwrap();
    let got = kv.get(Some(&bad_root), b"k00000");
    assert!(matches!(got, Err(KvError::Corrupt { .. })), "{got:?}");
}

#[test]
fn prefix_and_range() {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
    let root = kv.build((0..300).map(|i| (key(i), vec![]))).unwrap();
    let p: Vec<_> = kv.prefix(root.as_ref(), b"k001").unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(p, (100..200).map(key).collect::<Vec<_>>());
    let r: Vec<_> = kv
        .range(root.as_ref(), Bound::Excluded(&key(10)[..]), Bound::Included(&key(20)[..]))
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(r, (11..=20).map(key).collect::<Vec<_>>());
    assert_eq!(iter::prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
    assert_eq!(iter::prefix_end(b"\xff"), None);
}

#[test]
fn diff_skips_equal_subtrees_kv6() {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
    let a = kv.build((0..2000).map(|i| (key(i), vec![0]))).unwrap();
    let b = kv.put(a.as_ref(), &key(1234), &[1]).unwrap();
    let counting = CountingStore { inner: &store, gets: Default::default() };
    let kv2 = Kv::with_node_target_size(&counting, SALT, SMALL_TARGET_BYTES);
    let d = kv2.diff(a.as_ref(), b.as_ref()).unwrap();
    assert_eq!(d, vec![Change { key: key(1234), old: Some(vec![0]), new: Some(vec![1]) }]);
    let reads = counting.gets.load(std::sync::atomic::Ordering::Relaxed);
    let levels = u64::from(depth(&kv, a.as_ref()));
    assert!(
        reads <= 6 * levels,
        "diff read {reads} nodes for a one-key change in a {levels}-level tree"
    );
}

struct CountingStore<'a> {
    inner: &'a MemStore,
    gets: std::sync::atomic::AtomicU64,
}

impl Store for CountingStore<'_> {
    fn max_blob_size_bytes(&self) -> usize {
        self.inner.max_blob_size_bytes()
    }
    fn post(&self, data: &[u8]) -> Result<crate::Hash, crate::storage::store::StoreError> {
        self.inner.post(data)
    }
    fn get(&self, hash: &crate::Hash) -> Result<Vec<u8>, crate::storage::store::StoreError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.get(hash)
    }
    fn exists(&self, hash: &crate::Hash) -> Result<bool, crate::storage::store::StoreError> {
        self.inner.exists(hash)
    }
    fn delete(&self, hash: &crate::Hash) -> Result<(), crate::storage::store::StoreError> {
        self.inner.delete(hash)
    }
    fn list(
        &self,
        range: crate::storage::store::HashRange,
        limit: usize,
    ) -> Result<Vec<crate::Hash>, crate::storage::store::StoreError> {
        self.inner.list(range, limit)
    }
}

/// Random batches of edits over a small key space (so deletes hit existing keys).
fn batches() -> impl Strategy<Value = Vec<Vec<(u16, Option<u8>)>>> {
    prop::collection::vec(
        prop::collection::vec((0u16..400, prop::option::weighted(0.7, any::<u8>())), 1..40),
        1..12,
    )
}

fn kb(k: u16) -> Vec<u8> {
    format!("key/{k:04}").into_bytes()
}

fn value(k: u16, v: u8) -> Vec<u8> {
    vec![v; usize::from(k % 7)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// KV-7: the tree behaves like a BTreeMap under random edit sequences.
    #[test]
    fn differential_against_btreemap(batches in batches()) {
        let store = MemStore::new();
        let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
        let mut model = BTreeMap::new();
        let mut root = None;
        for batch in batches {
            let mut edits = Edits::new();
            for (k, v) in batch {
                let v = v.map(|v| value(k, v));
                match &v { Some(v) => { model.insert(kb(k), v.clone()); } None => { model.remove(&kb(k)); } }
                edits.insert(kb(k), v);
            }
            root = kv.edit(root.as_ref(), edits).unwrap();
            let got = all(&kv, root.as_ref());
            let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want);
        }
        for k in (0..400).step_by(37) {
            prop_assert_eq!(kv.get(root.as_ref(), &kb(k)).unwrap(), model.get(&kb(k)).cloned());
        }
        let lo = kb(100);
        let hi = kb(200);
        let ranged: Vec<_> = kv.range(root.as_ref(), Bound::Included(&lo[..]), Bound::Excluded(&hi[..])).unwrap().map(|r| r.unwrap()).collect();
        let want: Vec<_> = model.range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(ranged, want);
    }

    /// KV-4: equal contents give equal root refs whatever the order of the edits.
    #[test]
    fn equal_contents_equal_root(batches in batches(), seed in any::<u64>()) {
        let store = MemStore::new();
        let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
        let mut root = None;
        let mut model = BTreeMap::new();
        for batch in &batches {
            let mut edits = Edits::new();
            for (k, v) in batch {
                let v = v.map(|v| value(*k, v));
                match &v { Some(v) => { model.insert(kb(*k), v.clone()); } None => { model.remove(&kb(*k)); } }
                edits.insert(kb(*k), v);
            }
            root = kv.edit(root.as_ref(), edits).unwrap();
        }
        // The same contents built in one batch, and one key at a time in a shuffled order.
        let bulk = kv.build(model.clone()).unwrap();
        prop_assert_eq!(bulk, root);
        let mut items: Vec<_> = model.into_iter().collect();
        let n = items.len();
        for i in 0..n {
            let j = (seed.wrapping_mul(i as u64 + 1).rotate_left(17) % n as u64) as usize;
            items.swap(i, j);
        }
        let mut one_by_one = None;
        for (k, v) in items {
            one_by_one = kv.put(one_by_one.as_ref(), &k, &v).unwrap();
        }
        prop_assert_eq!(one_by_one, root);
    }

    /// KV-6: diff equals the naive diff of the two full listings.
    #[test]
    fn diff_equals_naive_diff(base in batches(), change in batches()) {
        let store = MemStore::new();
        let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
        let mut a = None;
        for batch in base.iter() {
            let edits = batch.iter().map(|(k, v)| (kb(*k), v.map(|v| value(*k, v)))).collect();
            a = kv.edit(a.as_ref(), edits).unwrap();
        }
        let mut b = a;
        for batch in change.iter().take(2) {
            let edits = batch.iter().map(|(k, v)| (kb(*k), v.map(|v| value(*k, v)))).collect();
            b = kv.edit(b.as_ref(), edits).unwrap();
        }
        let ma: BTreeMap<_, _> = all(&kv, a.as_ref()).into_iter().collect();
        let mb: BTreeMap<_, _> = all(&kv, b.as_ref()).into_iter().collect();
        let keys: std::collections::BTreeSet<_> = ma.keys().chain(mb.keys()).cloned().collect();
        let naive: Vec<Change> = keys.into_iter().filter_map(|k| {
            let (old, new) = (ma.get(&k).cloned(), mb.get(&k).cloned());
            (old != new).then_some(Change { key: k, old, new })
        }).collect();
        prop_assert_eq!(kv.diff(a.as_ref(), b.as_ref()).unwrap(), naive.clone());
        let reversed: Vec<Change> = naive.into_iter().map(|c| Change { key: c.key, old: c.new, new: c.old }).collect();
        prop_assert_eq!(kv.diff(b.as_ref(), a.as_ref()).unwrap(), reversed);
    }
}

/// Every checker must be seen to fail: without run extension (KV-4) edits stop matching the
/// canonical tree, and the equal-contents check sees it.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_run_extension_is_caught_kv4() {
    let store = MemStore::new();
    let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
    let _bug = crate::bugs::plant("kv:no-run-extension").unwrap();
    let mut root = None;
    let mut model = BTreeMap::new();
    let mut caught = false;
    for i in 0..400u16 {
        let k = kb(i.wrapping_mul(7919) % 400);
        let edit = if i % 3 == 0 { None } else { Some(vec![1u8; usize::from(i % 5)]) };
        match &edit {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(&k),
        };
        root = kv.edit(root.as_ref(), Edits::from([(k, edit)])).unwrap();
        if kv.build(model.clone()).unwrap() != root {
            caught = true;
            break;
        }
    }
    assert!(caught, "KV-4 check must catch kv:no-run-extension");
}

/// KV-18: a cache changes nothing but time — the same roots, the same reads — even when it is
/// far too small and evicts constantly, and it never holds more than its bound.
#[test]
fn cached_and_uncached_agree_kv18() {
    let store = MemStore::new();
    let plain = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES);
    let big = NodeCache::default();
    let tiny = NodeCache::new(600);
    let cached = plain.with_cache(&big);
    let starved = plain.with_cache(&tiny);
    let (mut a, mut b, mut c) = (None, None, None);
    for i in 0..600u32 {
        let k = key(i.wrapping_mul(7919) % 300);
        let edit = if i % 4 == 0 { None } else { Some(i.to_le_bytes().to_vec()) };
        let e = Edits::from([(k.clone(), edit)]);
        a = plain.edit(a.as_ref(), e.clone()).unwrap();
        b = cached.edit(b.as_ref(), e.clone()).unwrap();
        c = starved.edit(c.as_ref(), e).unwrap();
        assert_eq!(a, b, "step {i}");
        assert_eq!(a, c, "step {i}");
        assert_eq!(plain.get(a.as_ref(), &k).unwrap(), cached.get(b.as_ref(), &k).unwrap());
        assert_eq!(plain.get(a.as_ref(), &k).unwrap(), starved.get(c.as_ref(), &k).unwrap());
    }
    assert_eq!(all(&plain, a.as_ref()), all(&cached, b.as_ref()));
    assert_eq!(plain.diff(None, a.as_ref()).unwrap(), cached.diff(None, b.as_ref()).unwrap());
    assert!(!big.is_empty());
    assert!(tiny.weight() <= tiny.capacity_bytes(), "{tiny:?}");
}

/// KV-18: the cache is keyed by the whole ref, so a ref with the right CID and a wrong key
/// still fails its tag check (REF-4) after the node was cached.
#[test]
fn a_wrong_key_is_not_served_from_the_cache_kv18() {
    let store = MemStore::new();
    let cache = NodeCache::default();
    let kv = Kv::with_node_target_size(&store, SALT, SMALL_TARGET_BYTES).with_cache(&cache);
    let root = kv.build((0..50u32).map(|i| (key(i), vec![1]))).unwrap().unwrap();
    assert_eq!(kv.get(Some(&root), &key(3)).unwrap(), Some(vec![1]), "the path is cached");
    let forged = Ref { cid: root.cid, dek: [0x42; 32] };
    assert!(kv.get(Some(&forged), &key(3)).is_err(), "served a cached node to a wrong key");
}

#[test]
#[cfg(feature = "planted-bugs")]
fn planted_cache_by_cid_is_caught_kv18() {
    let _bug = crate::bugs::plant("kv:cache-by-cid").unwrap();
    let caught = std::panic::catch_unwind(a_wrong_key_is_not_served_from_the_cache_kv18).is_err();
    assert!(caught, "the wrong-key test passed with the cache keyed by CID alone");
}
