//! Content-addressed blob stores (`specs/cells.md`, STORE-*).
//!
//! You give a store bytes, it gives you their BLAKE3-256 [`Hash`]; you give it a hash, it gives
//! you the bytes back, verified against the hash on every read (STORE-2). Blobs can be deleted
//! and the set of hashes listed in ascending order (STORE-4).

mod deferred;
mod dir;
mod mem;

pub use deferred::Deferring;
pub use dir::DirStore;
pub use mem::MemStore;

use crate::Hash;
use std::ops::Bound;

/// Default largest blob a store accepts: 4 MiB.
pub const BLOB_SIZE_MAX_BYTES_DEFAULT: usize = 4 * 1024 * 1024;

/// Errors of store operations. Corruption is never folded into I/O or "not found".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The blob is larger than the store accepts (STORE-3).
    #[error("blob of {size_bytes} bytes exceeds the store's maximum of {max_bytes} bytes")]
    TooLarge {
        /// Size that was offered.
        size_bytes: usize,
        /// The store's maximum.
        max_bytes: usize,
    },
    /// No blob with this hash is in the store.
    #[error("blob {0} not found")]
    NotFound(Hash),
    /// The bytes stored under this hash do not hash to it (STORE-2).
    #[error("blob {hash} is corrupt: {detail}")]
    Corrupt {
        /// The hash that was asked for.
        hash: Hash,
        /// What was wrong.
        detail: String,
    },
    /// The operating system refused an operation on the store's backing storage.
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A range of hashes for [`Store::list`].
pub type HashRange = (Bound<Hash>, Bound<Hash>);

/// The full range of hashes.
pub const ALL_HASHES: HashRange = (Bound::Unbounded, Bound::Unbounded);

/// A content-addressed store (STORE-1..4).
pub trait Store: Send + Sync {
    /// The largest blob this store accepts, in bytes.
    fn max_blob_size_bytes(&self) -> usize;

    /// Stores `data` and returns its hash. Posting the same bytes twice is harmless (STORE-1).
    fn post(&self, data: &[u8]) -> Result<Hash, StoreError>;

    /// The blob with this hash, verified: bytes that do not hash to `hash` are
    /// [`StoreError::Corrupt`], never returned (STORE-2).
    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError>;

    /// Whether a blob with this hash is stored (without reading or verifying it).
    fn exists(&self, hash: &Hash) -> Result<bool, StoreError>;

    /// Deletes the blob; deleting an absent blob is not an error.
    fn delete(&self, hash: &Hash) -> Result<(), StoreError>;

    /// Up to `limit` hashes within `range`, in ascending order (STORE-4).
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError>;

    /// Stores `data` like [`Store::post`], readable at once through this handle, but durable
    /// (and visible to other handles) only after the next [`Store::sync`] (STORE-6). By default
    /// a plain, durable `post`.
    fn post_deferred(&self, data: &[u8]) -> Result<Hash, StoreError> {
        self.post(data)
    }

    /// Makes every blob this handle posted deferred durable (STORE-6). By default nothing is
    /// ever deferred, so nothing to do.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn max_blob_size_bytes(&self) -> usize {
        (**self).max_blob_size_bytes()
    }
    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        (**self).post(data)
    }
    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        (**self).get(hash)
    }
    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        (**self).exists(hash)
    }
    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        (**self).delete(hash)
    }
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        (**self).list(range, limit)
    }
    fn post_deferred(&self, data: &[u8]) -> Result<Hash, StoreError> {
        (**self).post_deferred(data)
    }
    fn sync(&self) -> Result<(), StoreError> {
        (**self).sync()
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn max_blob_size_bytes(&self) -> usize {
        (**self).max_blob_size_bytes()
    }
    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        (**self).post(data)
    }
    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        (**self).get(hash)
    }
    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        (**self).exists(hash)
    }
    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        (**self).delete(hash)
    }
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        (**self).list(range, limit)
    }
    fn post_deferred(&self, data: &[u8]) -> Result<Hash, StoreError> {
        (**self).post_deferred(data)
    }
    fn sync(&self) -> Result<(), StoreError> {
        (**self).sync()
    }
}

/// Page size used by [`list_all`].
pub const LIST_PAGE_HASHES: usize = 1024;

/// Every hash in the store, ascending, fetched page by page.
pub fn list_all(store: &dyn Store) -> Result<Vec<Hash>, StoreError> {
    let mut out = Vec::new();
    let mut start = Bound::Unbounded;
    loop {
        let page = store.list((start, Bound::Unbounded), LIST_PAGE_HASHES)?;
        let Some(last) = page.last().copied() else { break };
        let full = page.len() == LIST_PAGE_HASHES;
        out.extend(page);
        if !full {
            break;
        }
        start = Bound::Excluded(last);
    }
    Ok(out)
}

/// Refuses a blob over `max_bytes` (STORE-3).
pub fn check_blob_size(size_bytes: usize, max_bytes: usize) -> Result<(), StoreError> {
    if size_bytes > max_bytes {
        return Err(StoreError::TooLarge { size_bytes, max_bytes });
    }
    Ok(())
}

/// Verifies that `data` hashes to `hash` (STORE-2); every `get` ends here.
pub fn verify_blob(hash: &Hash, data: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let actual = Hash::of(&data);
    if actual != *hash {
        return Err(StoreError::Corrupt {
            hash: *hash,
            detail: format!("content hashes to {actual}"),
        });
    }
    Ok(data)
}

/// Whether `h` lies in `range`.
pub fn in_range(h: &Hash, range: &HashRange) -> bool {
    use std::ops::RangeBounds;
    range.contains(h)
}
