//! `DirStore`: a content-addressed store in a directory.
//! TODO(helper: stores) — replace this stub.

use super::{HashRange, Store, StoreError};
use crate::Hash;
use std::path::PathBuf;

/// A store in a directory with fan-out subdirectories.
#[derive(Debug)]
pub struct DirStore {
    root: PathBuf,
    max_blob_size_bytes: usize,
}

impl DirStore {
    /// Opens (creating if absent) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Self { root: root.into(), max_blob_size_bytes: super::BLOB_SIZE_MAX_BYTES_DEFAULT })
    }
}

impl Store for DirStore {
    fn max_blob_size_bytes(&self) -> usize {
        self.max_blob_size_bytes
    }
    fn post(&self, _data: &[u8]) -> Result<Hash, StoreError> {
        let _ = &self.root;
        unimplemented!()
    }
    fn get(&self, _hash: &Hash) -> Result<Vec<u8>, StoreError> {
        unimplemented!()
    }
    fn exists(&self, _hash: &Hash) -> Result<bool, StoreError> {
        unimplemented!()
    }
    fn delete(&self, _hash: &Hash) -> Result<(), StoreError> {
        unimplemented!()
    }
    fn list(&self, _range: HashRange, _limit: usize) -> Result<Vec<Hash>, StoreError> {
        unimplemented!()
    }
}
