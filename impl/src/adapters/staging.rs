//! The working tree's blobs (`specs/adapters.md` ADP-4): a [`Store`] that keeps every blob
//! posted through it to one side — tree nodes in memory, larger blobs in a spill directory —
//! and reads through to the volume's store for everything else, with a bounded read cache.
//!
//! Nothing reaches the volume's store until a commit *promotes* what the new head reaches
//! ([`StagingStore::promote_head`]), under the volume's Expand mode (VOL-2), right before the cell
//! CAS. So a mount that never commits leaves the volume's store exactly as it found it, the
//! intermediate nodes of every edit between two commits are never written there, and a cleanup
//! running between two commits has nothing of ours to delete.
//!
//! Never: answer a read with bytes that do not hash to the hash asked for (STORE-2, checked on
//! staged and cached bytes as on the backing store's); delete from the backing store; promote a
//! node without everything below it that is staged (a promoted head is complete, VOL-3).

use crate::Hash;
use crate::db::kv::{Kv, KvError};
use crate::db::snapshot;
use crate::fs::record::{AnyRecord, Record, decode_any};
use crate::storage::refs::Ref;
use crate::storage::store::{HashRange, Store, StoreError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Staged blobs at least this large go to the spill directory instead of memory.
pub const STAGING_SPILL_THRESHOLD_BYTES: usize = 32 * 1024;
/// Bytes of backing-store blobs kept in the read cache.
pub const STAGING_READ_CACHE_BYTES: usize = 64 * 1024 * 1024;

enum Staged {
    Mem(Vec<u8>),
    /// In the spill directory, under the hash's hex name.
    Spilled(usize),
}

#[derive(Default)]
struct Inner {
    staged: HashMap<Hash, Staged>,
    mem_bytes: usize,
    spilled_bytes: u64,
    cache: HashMap<Hash, Vec<u8>>,
    cache_order: VecDeque<Hash>,
    cache_bytes: usize,
}

/// What [`StagingStore::promote_head`] copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Promoted {
    /// Blobs copied into the backing store.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Blobs of a working tree, over the volume's store (see the module docs).
pub struct StagingStore {
    backing: std::sync::Arc<dyn Store>,
    spill_dir: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for StagingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingStore").field("spill_dir", &self.spill_dir).finish()
    }
}

impl StagingStore {
    /// Stages over `backing`, spilling large blobs into `spill_dir` (created; emptied first: a
    /// spill directory belongs to one working tree).
    pub fn new(backing: std::sync::Arc<dyn Store>, spill_dir: &Path) -> std::io::Result<Self> {
        if spill_dir.exists() {
            std::fs::remove_dir_all(spill_dir)?;
        }
        std::fs::create_dir_all(spill_dir)?;
        Ok(Self {
            backing,
            spill_dir: spill_dir.to_path_buf(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spill_path(&self, h: &Hash) -> PathBuf {
        self.spill_dir.join(h.to_string())
    }

    /// Is this blob staged (posted since the last promotion and not yet dropped)?
    pub fn is_staged(&self, h: &Hash) -> bool {
        self.lock().staged.contains_key(h)
    }

    /// (blobs staged, bytes in memory, bytes spilled).
    pub fn usage(&self) -> (usize, usize, u64) {
        let g = self.lock();
        (g.staged.len(), g.mem_bytes, g.spilled_bytes)
    }

    fn staged_bytes(&self, h: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        let spilled = {
            let g = self.lock();
            match g.staged.get(h) {
                None => return Ok(None),
                Some(Staged::Mem(b)) => return Ok(Some(b.clone())),
                Some(Staged::Spilled(_)) => true,
            }
        };
        debug_assert!(spilled);
        Ok(Some(std::fs::read(self.spill_path(h))?))
    }

    /// Drops every staged blob that is not in `keep`.
    pub fn retain(&self, keep: &HashSet<Hash>) {
        let mut g = self.lock();
        let drop: Vec<Hash> = g.staged.keys().filter(|h| !keep.contains(h)).copied().collect();
        for h in drop {
            match g.staged.remove(&h) {
                Some(Staged::Mem(b)) => g.mem_bytes -= b.len(),
                Some(Staged::Spilled(n)) => {
                    g.spilled_bytes -= n as u64;
                    let _ = std::fs::remove_file(self.spill_path(&h));
                }
                None => {}
            }
        }
    }

    /// The staged blobs the tree `root` reaches: its staged nodes and the staged blobs their
    /// extents point into. A node that is not staged is in the backing store with everything
    /// below it (it was reached from a committed tree), so the walk stops there.
    pub fn staged_reach(&self, salt: &[u8; 32], root: &Ref) -> Result<HashSet<Hash>, KvError> {
        let mut out = HashSet::new();
        self.walk_tree(salt, root, &mut out)?;
        Ok(out)
    }

    fn walk_tree(
        &self,
        salt: &[u8; 32],
        root: &Ref,
        out: &mut HashSet<Hash>,
    ) -> Result<(), KvError> {
        let kv = Kv::new(self, *salt);
        let mut stack = vec![*root];
        while let Some(r) = stack.pop() {
            if !self.is_staged(&r.cid) || !out.insert(r.cid) {
                continue;
            }
            let node = kv.read_node(&r)?;
            for e in &node.entries {
                if node.level > 0 {
                    stack.push(Ref::from_bytes(&e.value)?);
                    continue;
                }
                let rec = decode_any(&e.key, &e.value)
                    .map_err(|x| KvError::Corrupt { cid: r.cid, detail: x.to_string() })?;
                if let AnyRecord::At(_, _, Record::Extent(x)) = rec
                    && self.is_staged(&x.blob.cid)
                {
                    out.insert(x.blob.cid);
                }
            }
        }
        Ok(())
    }

    /// The staged blobs the commit `head` reaches: staged snapshots of its history and the
    /// staged part of their trees.
    pub fn staged_reach_head(
        &self,
        salt: &[u8; 32],
        head: &Ref,
    ) -> Result<HashSet<Hash>, snapshot::SnapshotError> {
        let mut out = HashSet::new();
        let mut stack = vec![*head];
        while let Some(r) = stack.pop() {
            if !self.is_staged(&r.cid) || !out.insert(r.cid) {
                continue;
            }
            let s = snapshot::get(self, &r)?;
            if let Some(root) = s.root {
                self.walk_tree(salt, &root, &mut out)?;
            }
            stack.extend(s.parents);
        }
        Ok(out)
    }

    /// Copies every staged blob the commit `head` reaches into the backing store (deferred,
    /// then synced once: STORE-6), then drops
    /// every staged blob (all that the head needs is in the backing store now). The caller holds
    /// Expand and publishes `head` afterwards (VOL-2, VOL-3).
    pub fn promote_head(&self, salt: &[u8; 32], head: &Ref) -> Result<Promoted, PromoteError> {
        let need = self.staged_reach_head(salt, head)?;
        let mut done = Promoted::default();
        for h in &need {
            let bytes = self.staged_bytes(h)?.ok_or(StoreError::NotFound(*h))?;
            // STORE-6: one barrier for the whole promotion (below), not one per blob.
            let stored = self.backing.post_deferred(&bytes)?;
            if stored != *h {
                return Err(PromoteError::Store(StoreError::Corrupt {
                    hash: *h,
                    detail: format!("the backing store filed it under {stored}"),
                }));
            }
            done.blobs += 1;
            done.bytes += bytes.len() as u64;
        }
        self.backing.sync()?; // durable before the caller publishes `head`
        Ok(done)
    }

    fn cache_get(&self, h: &Hash) -> Option<Vec<u8>> {
        self.lock().cache.get(h).cloned()
    }

    fn cache_put(&self, h: Hash, bytes: &[u8]) {
        if bytes.len() > STAGING_READ_CACHE_BYTES / 16 {
            return;
        }
        let mut g = self.lock();
        if g.cache.contains_key(&h) {
            return;
        }
        while g.cache_bytes + bytes.len() > STAGING_READ_CACHE_BYTES {
            let Some(old) = g.cache_order.pop_front() else { break };
            if let Some(b) = g.cache.remove(&old) {
                g.cache_bytes -= b.len();
            }
        }
        g.cache_bytes += bytes.len();
        g.cache.insert(h, bytes.to_vec());
        g.cache_order.push_back(h);
    }
}

/// Errors of a promotion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromoteError {
    /// A store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A staged tree node or snapshot did not decode.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
}

fn verify(h: &Hash, bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if Hash::of(&bytes) != *h {
        return Err(StoreError::Corrupt { hash: *h, detail: "staged bytes changed".into() });
    }
    Ok(bytes)
}

impl Store for StagingStore {
    fn max_blob_size_bytes(&self) -> usize {
        self.backing.max_blob_size_bytes()
    }

    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        crate::storage::store::check_blob_size(data.len(), self.max_blob_size_bytes())?;
        let h = Hash::of(data);
        if self.is_staged(&h) {
            return Ok(h);
        }
        if data.len() >= STAGING_SPILL_THRESHOLD_BYTES {
            let path = self.spill_path(&h);
            let mut f = std::fs::File::create(&path)?;
            f.write_all(data)?;
            let mut g = self.lock();
            g.spilled_bytes += data.len() as u64;
            g.staged.insert(h, Staged::Spilled(data.len()));
        } else {
            let mut g = self.lock();
            g.mem_bytes += data.len();
            g.staged.insert(h, Staged::Mem(data.to_vec()));
        }
        Ok(h)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        if let Some(b) = self.staged_bytes(hash)? {
            return verify(hash, b);
        }
        if let Some(b) = self.cache_get(hash) {
            return Ok(b);
        }
        let b = self.backing.get(hash)?;
        self.cache_put(*hash, &b);
        Ok(b)
    }

    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.is_staged(hash) || self.backing.exists(hash)?)
    }

    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        // Only ever drops a staged blob: the backing store belongs to the volume's cleanup.
        self.retain(&HashSet::from_iter(self.lock().staged.keys().filter(|h| *h != hash).copied()));
        Ok(())
    }

    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        let mut out: Vec<Hash> =
            self.lock().staged.keys().filter(|h| range_contains(&range, h)).copied().collect();
        out.extend(self.backing.list(range, limit)?);
        out.sort();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }
}

fn range_contains(r: &HashRange, h: &Hash) -> bool {
    use std::ops::Bound::*;
    let lo = match &r.0 {
        Included(a) => h >= a,
        Excluded(a) => h > a,
        Unbounded => true,
    };
    let hi = match &r.1 {
        Included(b) => h <= b,
        Excluded(b) => h < b,
        Unbounded => true,
    };
    lo && hi
}

impl Drop for StagingStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spill_dir);
    }
}
