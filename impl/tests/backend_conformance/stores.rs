//! The store half of the suite: each function takes a fixture and checks STORE-* behaviour.

use super::fixtures::StoreFixture;
use cellar::Hash;
use cellar::storage::store::{ALL_HASHES, Store, StoreError, list_all};
use std::ops::Bound;
use std::sync::{Arc, Barrier};

fn blob(i: u32, size_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_bytes);
    let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < size_bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size_bytes);
    out
}

/// STORE-1/2: post returns BLAKE3 of the bytes; get returns them; exists and delete agree;
/// deleting an absent blob is not an error.
pub fn post_get_exists_delete(f: &dyn StoreFixture) {
    let s = f.handle();
    let data = blob(1, 1000);
    let h = s.post(&data).unwrap();
    assert_eq!(h, Hash::of(&data), "STORE-1: the name is the BLAKE3 hash");
    assert_eq!(s.get(&h).unwrap(), data);
    assert!(s.exists(&h).unwrap());
    assert_eq!(f.handle().get(&h).unwrap(), data, "another handle reads it");
    let empty = s.post(b"").unwrap();
    assert_eq!(s.get(&empty).unwrap(), b"", "the empty blob is a blob");
    s.delete(&h).unwrap();
    assert!(!s.exists(&h).unwrap());
    assert!(matches!(s.get(&h), Err(StoreError::NotFound(x)) if x == h));
    s.delete(&h).unwrap();
    assert!(s.exists(&empty).unwrap(), "deleting one blob leaves the others");
}

/// STORE-1: posting the same bytes again returns the same hash and leaves one blob.
pub fn idempotent_post(f: &dyn StoreFixture) {
    let s = f.handle();
    let data = blob(2, 5000);
    let a = s.post(&data).unwrap();
    let b = f.handle().post(&data).unwrap();
    assert_eq!(a, b);
    assert_eq!(list_all(s.as_ref()).unwrap(), vec![a], "one blob, not two");
    assert_eq!(s.get(&a).unwrap(), data);
}

/// STORE-4: list is ascending, bounded by `limit`, and honours inclusive, exclusive and
/// unbounded ends.
pub fn list_order_and_ranges(f: &dyn StoreFixture) {
    let s = f.handle();
    let mut hs: Vec<Hash> = (0..40).map(|i| s.post(&blob(100 + i, 64)).unwrap()).collect();
    hs.sort();
    assert_eq!(s.list(ALL_HASHES, 1000).unwrap(), hs);
    assert_eq!(list_all(s.as_ref()).unwrap(), hs);
    assert_eq!(s.list(ALL_HASHES, 10).unwrap(), hs[..10]);
    assert_eq!(s.list(ALL_HASHES, 0).unwrap(), Vec::<Hash>::new());
    assert_eq!(s.list((Bound::Excluded(hs[9]), Bound::Unbounded), 1000).unwrap(), hs[10..]);
    assert_eq!(s.list((Bound::Included(hs[5]), Bound::Excluded(hs[8])), 1000).unwrap(), hs[5..8]);
    assert_eq!(s.list((Bound::Unbounded, Bound::Included(hs[3])), 1000).unwrap(), hs[..=3]);
    assert_eq!(s.list((Bound::Included(hs[20]), Bound::Unbounded), 5).unwrap(), hs[20..25]);
}

/// STORE-3: a blob over the maximum is refused before any change; one well under it is kept.
pub fn size_limits(f: &dyn StoreFixture) {
    let s = f.handle();
    let max = s.max_blob_size_bytes();
    match s.post(&vec![7u8; max + 1]) {
        Err(StoreError::TooLarge { size_bytes, max_bytes }) => {
            assert_eq!((size_bytes, max_bytes), (max + 1, max));
        }
        other => panic!("{}: oversized post gave {other:?}", f.name()),
    }
    assert!(list_all(s.as_ref()).unwrap().is_empty(), "STORE-3: nothing stored");
    let big = blob(3, 256 * 1024);
    let h = s.post(&big).unwrap();
    assert_eq!(s.get(&h).unwrap(), big);
}

/// STORE-2: bytes damaged through the backend's side door are `Corrupt` on `get`, never data.
pub fn corruption_is_detected(f: &dyn StoreFixture) {
    let s = f.handle();
    let data = blob(4, 300);
    let h = s.post(&data).unwrap();
    assert!(f.corrupt(&h, b"not the bytes that were posted"), "{}: side door", f.name());
    match s.get(&h) {
        Err(StoreError::Corrupt { hash, .. }) => assert_eq!(hash, h),
        other => panic!("{}: damaged blob read as {other:?}", f.name()),
    }
    assert!(s.exists(&h).unwrap(), "exists does not verify, and the damaged blob is there");
}

/// STORE-1 under contention: threads with their own handles post the same blobs and distinct
/// blobs at once; every post returns its hash, each blob is stored once and reads back intact.
pub fn concurrent_posts(f: &dyn StoreFixture) {
    const THREADS: u32 = 4;
    const BLOBS: u32 = 8;
    let handles: Vec<Arc<dyn Store>> = (0..THREADS).map(|_| f.handle()).collect();
    let barrier = Barrier::new(THREADS as usize);
    std::thread::scope(|sc| {
        for (t, s) in handles.iter().enumerate() {
            let barrier = &barrier;
            sc.spawn(move || {
                barrier.wait();
                for i in 0..BLOBS {
                    let shared = blob(1000 + i, 512);
                    assert_eq!(s.post(&shared).unwrap(), Hash::of(&shared));
                    let own = blob(2000 + t as u32 * BLOBS + i, 512);
                    assert_eq!(s.post(&own).unwrap(), Hash::of(&own));
                }
            });
        }
    });
    let s = &handles[0];
    let mut want: Vec<Vec<u8>> = (0..BLOBS).map(|i| blob(1000 + i, 512)).collect();
    want.extend((0..THREADS * BLOBS).map(|i| blob(2000 + i, 512)));
    let mut hs: Vec<Hash> = want.iter().map(|b| Hash::of(b)).collect();
    hs.sort();
    assert_eq!(list_all(s.as_ref()).unwrap(), hs, "{}: each blob exactly once", f.name());
    for b in &want {
        assert_eq!(&s.get(&Hash::of(b)).unwrap(), b);
    }
}
