//! `MemStore`: a content-addressed store in memory.

use super::{
    BLOB_SIZE_MAX_BYTES_DEFAULT, HashRange, Store, StoreError, check_blob_size, verify_blob,
};
use crate::Hash;
use crate::sync::{Mutex, lock};
use std::collections::BTreeMap;

/// An in-memory store; `BTreeMap` keeps `list` ascending (STORE-4).
#[derive(Debug)]
pub struct MemStore {
    blobs: Mutex<BTreeMap<Hash, Vec<u8>>>,
    max_blob_size_bytes: usize,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    /// An empty store with the default 4 MiB blob limit.
    pub fn new() -> Self {
        Self::with_max_blob_size(BLOB_SIZE_MAX_BYTES_DEFAULT)
    }

    /// An empty store accepting blobs up to `max_blob_size_bytes`.
    pub fn with_max_blob_size(max_blob_size_bytes: usize) -> Self {
        Self { blobs: Mutex::new(BTreeMap::new()), max_blob_size_bytes }
    }

    /// Test and simulator hook: overwrite the bytes stored under `hash` without rehashing, to
    /// plant corruption that `get` must detect. Returns false if the blob is absent.
    pub fn tamper(&self, hash: &Hash, data: Vec<u8>) -> bool {
        match lock(&self.blobs).get_mut(hash) {
            Some(v) => {
                *v = data;
                true
            }
            None => false,
        }
    }

    /// Number of blobs held.
    pub fn len(&self) -> usize {
        lock(&self.blobs).len()
    }

    /// Whether the store holds no blobs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for MemStore {
    fn max_blob_size_bytes(&self) -> usize {
        self.max_blob_size_bytes
    }

    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        check_blob_size(data.len(), self.max_blob_size_bytes)?; // STORE-3
        let hash = Hash::of(data);
        lock(&self.blobs).entry(hash).or_insert_with(|| data.to_vec()); // STORE-1: idempotent
        Ok(hash)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        let data = lock(&self.blobs).get(hash).cloned().ok_or(StoreError::NotFound(*hash))?;
        verify_blob(hash, data) // STORE-2
    }

    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(lock(&self.blobs).contains_key(hash))
    }

    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        lock(&self.blobs).remove(hash);
        Ok(())
    }

    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        Ok(lock(&self.blobs).range(range).take(limit).map(|(h, _)| *h).collect())
    }
}

#[cfg(all(test, not(loom)))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests report failure by panicking"
)]
mod tests {
    use super::*;
    use crate::storage::store::{ALL_HASHES, LIST_PAGE_HASHES, list_all};
    use std::ops::Bound;

    #[test]
    fn post_get_list_delete() {
        let s = MemStore::with_max_blob_size(8);
        let a = s.post(b"a").unwrap();
        let b = s.post(b"b").unwrap();
        assert_eq!(s.get(&a).unwrap(), b"a");
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(s.list(ALL_HASHES, 10).unwrap(), want);
        assert_eq!(list_all(&s).unwrap(), want);
        assert!(matches!(s.post(&[0; 9]), Err(StoreError::TooLarge { .. })));
        s.delete(&a).unwrap();
        assert!(matches!(s.get(&a), Err(StoreError::NotFound(_))));
        assert!(s.tamper(&b, b"x".to_vec()));
        assert!(matches!(s.get(&b), Err(StoreError::Corrupt { .. })));
    }

    /// `list_all` pages by [`LIST_PAGE_HASHES`]: with two blobs (all the test above posts) only
    /// the first page is ever fetched, so the page-continuation bound was never used.
    #[test]
    fn list_all_pages_past_the_first_page() {
        let s = MemStore::new();
        let n = 2 * LIST_PAGE_HASHES + 3;
        let mut want: Vec<_> = (0..n as u32).map(|i| s.post(&i.to_le_bytes()).unwrap()).collect();
        want.sort();
        assert_eq!(list_all(&s).unwrap(), want);
        assert_eq!(s.list(ALL_HASHES, 5).unwrap(), want[..5], "the limit binds");
        let after = (Bound::Excluded(want[0]), Bound::Unbounded);
        assert_eq!(s.list(after, 1).unwrap(), want[1..2]);
    }
}
