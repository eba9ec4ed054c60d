//! Deferred posts (STORE-6): many blobs made durable by one barrier instead of one fsync each.
//!
//! A commit posts hundreds of blobs and publishes nothing until its last one is stored; only
//! the publish (a cell compare-and-swap) needs every blob durable. [`Store::post_deferred`]
//! stores a blob that is readable at once through the same handle but durable only after the
//! next [`Store::sync`]; [`Deferring`] turns every `post` of a borrowed store into a deferred
//! one, so code written against `&dyn Store` (a file-tree import) batches without knowing.
//!
//! [`PendingBlobs`] is `DirStore`'s side: a deferred blob sits in a temp file (invisible to
//! other handles and processes, never listed) until `sync` flushes the file system once, renames
//! every temp file to its blob name and flushes once more. A crash before then leaves only temp
//! files, which no reader ever sees: a blob name never points at bytes that were not durable.

use super::{HashRange, Store, StoreError};
use crate::Hash;
use crate::storage::fsio::on;
use crate::storage::fsys::FileSystem;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// A borrowed store whose `post` is [`Store::post_deferred`]: call [`Store::sync`] (or
/// [`Deferring::finish`]) before publishing anything that names the blobs (STORE-6).
#[derive(Clone, Copy)]
pub struct Deferring<'a> {
    inner: &'a dyn Store,
}

impl<'a> Deferring<'a> {
    /// Defers every post to `inner` until `sync`.
    pub fn new(inner: &'a dyn Store) -> Self {
        Self { inner }
    }

    /// Makes every blob posted through this handle durable (STORE-6).
    pub fn finish(self) -> Result<(), StoreError> {
        self.inner.sync()
    }
}

impl std::fmt::Debug for Deferring<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferring")
    }
}

impl Store for Deferring<'_> {
    fn max_blob_size_bytes(&self) -> usize {
        self.inner.max_blob_size_bytes()
    }
    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        self.inner.post_deferred(data)
    }
    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        self.inner.get(hash)
    }
    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.inner.exists(hash)
    }
    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        self.inner.delete(hash)
    }
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        self.inner.list(range, limit)
    }
    fn post_deferred(&self, data: &[u8]) -> Result<Hash, StoreError> {
        self.inner.post_deferred(data)
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }
}

/// Blobs posted deferred and not yet synced: blob hash → (temp file, final name).
#[derive(Debug)]
pub(super) struct PendingBlobs {
    fs: Arc<dyn FileSystem>,
    files: Mutex<BTreeMap<Hash, (PathBuf, PathBuf)>>,
}

impl PendingBlobs {
    /// None pending, on `fs`.
    pub(super) fn new(fs: Arc<dyn FileSystem>) -> Self {
        Self { fs, files: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Hash, (PathBuf, PathBuf)>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The temp file of a pending blob.
    pub(super) fn temp_of(&self, hash: &Hash) -> Option<PathBuf> {
        self.lock().get(hash).map(|(temp, _)| temp.clone())
    }

    /// Notes a written (unsynced) temp file; a blob already pending keeps its first file.
    pub(super) fn add(&self, hash: Hash, temp: PathBuf, final_path: PathBuf) {
        match self.lock().entry(hash) {
            std::collections::btree_map::Entry::Occupied(_) => {
                let _ = self.fs.remove_file(&temp);
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((temp, final_path));
            }
        }
    }

    /// Forgets a pending blob (a delete), removing its temp file.
    pub(super) fn remove(&self, hash: &Hash) {
        if let Some((temp, _)) = self.lock().remove(hash) {
            let _ = self.fs.remove_file(&temp);
        }
    }

    /// STORE-6: flush the file system holding `root` (every temp file's bytes), rename each
    /// temp file to its blob name, flush again (the names). On an error the blobs not yet
    /// renamed stay pending, so a later `sync` retries them.
    pub(super) fn sync(&self, root: &Path) -> Result<(), StoreError> {
        let mut files = self.lock();
        if files.is_empty() {
            return Ok(());
        }
        self.fs.sync_fs(root).map_err(on(root))?;
        while let Some((hash, (temp, final_path))) = files.pop_first() {
            if let Err(e) = self.fs.rename(&temp, &final_path) {
                files.insert(hash, (temp, final_path.clone()));
                return Err(on(&final_path)(e).into());
            }
        }
        self.fs.sync_fs(root).map_err(|e| on(root)(e).into())
    }
}

impl Drop for PendingBlobs {
    /// Blobs never synced were never promised: their temp files go.
    fn drop(&mut self) {
        for (temp, _) in self.lock().values() {
            let _ = self.fs.remove_file(temp);
        }
    }
}
