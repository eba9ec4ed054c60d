//! `cellar::db::kv`: a persistent, copy-on-write prolly tree over a [`Store`], every node an
//! encrypted blob behind a [`Ref`] (`specs/kv.md`, KV-1..KV-8).
//!
//! Entries are sorted by key. Node boundaries are content-defined (KV-3): an entry ends its node
//! when a keyed hash of `(level, key)` falls under a threshold proportional to the entry's size,
//! so nodes hold about [`NODE_TARGET_SIZE_BYTES`] whatever the entry sizes, and the tree is a
//! function of its contents alone (KV-4): equal contents under one salt give equal root refs,
//! whatever the order of the edits that built them. The hash is keyed by a key derived from the
//! volume's ref salt, so nobody without the secret can craft keys that make huge nodes.
//!
//! Operations: [`Kv::get`], [`Kv::put`], [`Kv::delete`], batched [`Kv::edit`], [`Kv::range`] and
//! [`Kv::prefix`] iteration, and [`Kv::diff`], which skips subtrees whose refs are equal (KV-6).
//!
//! Never: write a node that its own decoder refuses (KV-2), return bytes from a node whose CID or
//! tag fails (REF-4), or let an edit's result depend on anything but the old tree and the edits.

mod cache;
mod diff;
mod edit;
mod iter;
mod node;

pub use cache::{NODE_CACHE_BYTES_DEFAULT, NodeCache};
pub use diff::Change;
pub use iter::{Iter, prefix_end};
pub use node::{Entry, NODE_VERSION, Node, NodeError, decode_node, encode_node};

use crate::Hash;
use crate::storage::refs::{self, Ref, RefError};
use crate::storage::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest key, in bytes (KV-5).
pub const KEY_SIZE_MAX_BYTES: usize = 4096;
/// Largest value, in bytes (KV-5).
pub const VALUE_SIZE_MAX_BYTES: usize = 256 * 1024;
/// The expected encoded size of a node (KV-3): each entry of `s` bytes is a boundary with
/// probability `s / NODE_TARGET_SIZE_BYTES`.
pub const NODE_TARGET_SIZE_BYTES: u64 = 4096;
/// Fewest entries a node ends with before a boundary may cut it (KV-3).
pub const NODE_ENTRIES_MIN: usize = 2;
/// Highest node level a decoder accepts (a tree of 2^40 leaves is far beyond any store).
pub const LEVEL_MAX: u8 = 40;
/// BLAKE3 `derive_key` context for the boundary-hash key, derived from the ref salt (KV-3).
pub const BOUNDARY_PURPOSE: &str = "cellar 2026 kv boundary v1";

const _: () = assert!(
    KEY_SIZE_MAX_BYTES + VALUE_SIZE_MAX_BYTES
        < crate::storage::store::BLOB_SIZE_MAX_BYTES_DEFAULT / 4
);
const _: () =
    assert!(NODE_TARGET_SIZE_BYTES > 0 && (NODE_TARGET_SIZE_BYTES as usize) < VALUE_SIZE_MAX_BYTES);

/// Errors of tree operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// A key over [`KEY_SIZE_MAX_BYTES`] (KV-5).
    #[error("key of {size_bytes} bytes exceeds the maximum of {KEY_SIZE_MAX_BYTES} bytes")]
    KeyTooLarge {
        /// Size offered.
        size_bytes: usize,
    },
    /// A value over [`VALUE_SIZE_MAX_BYTES`] (KV-5).
    #[error("value of {size_bytes} bytes exceeds the maximum of {VALUE_SIZE_MAX_BYTES} bytes")]
    ValueTooLarge {
        /// Size offered.
        size_bytes: usize,
    },
    /// A node came out larger than one blob (probability below e^-1000 with the default store).
    #[error("a node of {size_bytes} bytes exceeds the store's blob limit of {max_bytes} bytes")]
    NodeTooLarge {
        /// Encoded node size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A node decoded but does not fit the tree around it, or does not decode (corruption).
    #[error("tree node {cid} is corrupt: {detail}")]
    Corrupt {
        /// The node's CID.
        cid: Hash,
        /// What was wrong.
        detail: String,
    },
    /// The node's blob could not be read or verified.
    #[error(transparent)]
    Ref(#[from] RefError),
}

/// A handle on trees in one store under one salt. Trees are named by their root:
/// `Option<Ref>`, `None` being the empty tree.
#[derive(Clone, Copy)]
pub struct Kv<'s> {
    store: &'s dyn Store,
    salt: [u8; 32],
    boundary_key: [u8; 32],
    node_target_size_bytes: u64,
    cache: Option<&'s NodeCache>,
}

impl std::fmt::Debug for Kv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kv { .. }")
    }
}

/// A batch of edits: key → `Some(value)` to put, `None` to delete.
pub type Edits = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

impl<'s> Kv<'s> {
    /// Trees in `store` whose nodes are encrypted under `salt` (the volume's
    /// [`crate::storage::secret::VolumeSecret::ref_salt`]).
    pub fn new(store: &'s dyn Store, salt: [u8; 32]) -> Self {
        Self::with_node_target_size(store, salt, NODE_TARGET_SIZE_BYTES)
    }

    /// Like [`Kv::new`] with another expected node size. Trees built with a different target are
    /// different trees: this exists so tests can grow deep trees from few keys. A target of 0 is
    /// taken as 1.
    pub fn with_node_target_size(
        store: &'s dyn Store,
        salt: [u8; 32],
        node_target_size_bytes: u64,
    ) -> Self {
        let boundary_key = blake3::derive_key(BOUNDARY_PURPOSE, &salt);
        Self {
            store,
            salt,
            boundary_key,
            node_target_size_bytes: node_target_size_bytes.max(1),
            cache: None,
        }
    }

    /// The same handle reading and writing nodes through `cache` (KV-18). Results are the same
    /// with or without it; only the time differs.
    pub fn with_cache(mut self, cache: &'s NodeCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The salt nodes are encrypted under.
    pub fn salt(&self) -> &[u8; 32] {
        &self.salt
    }

    /// The store the trees live in.
    pub fn store(&self) -> &'s dyn Store {
        self.store
    }

    /// KV-3: does `entry` at `level` end its node?
    pub fn is_boundary(&self, level: u8, entry: &Entry) -> bool {
        let mut h = blake3::Hasher::new_keyed(&self.boundary_key);
        h.update(&[level]);
        h.update(&entry.key);
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.finalize().as_bytes()[..8]);
        let draw = u128::from(u64::from_le_bytes(first));
        let size_bytes = (entry.key.len() + entry.value.len()) as u128;
        let threshold = (size_bytes << 64) / u128::from(self.node_target_size_bytes);
        draw < threshold
    }

    /// Splits a sorted run of entries into nodes (KV-3): cut after every boundary entry that is
    /// not its node's first, so every node but a level's last has at least two entries and each
    /// level has at most half the entries of the one below (the tree always terminates).
    fn chunk(&self, level: u8, entries: Vec<Entry>) -> Vec<Vec<Entry>> {
        let cuts = self.boundaries(level, &entries);
        chunk_at(entries, &cuts)
    }

    /// [`Kv::is_boundary`] of each entry, in order.
    fn boundaries(&self, level: u8, entries: &[Entry]) -> Vec<bool> {
        entries.iter().map(|e| self.is_boundary(level, e)).collect()
    }

    /// Encrypts and stores one node under the salt (KV-8); returns its entry for the level above.
    fn write_node(&self, level: u8, entries: Vec<Entry>) -> Result<Entry, KvError> {
        let key = entries.first().map(|e| e.key.clone()).unwrap_or_default();
        let node = Node { version: NODE_VERSION, level, entries };
        let bytes = encode_node(&node).map_err(|e| KvError::Corrupt {
            cid: Hash::ZERO,
            detail: format!("refusing to write an invalid node: {e}"),
        })?;
        let max_bytes = refs::max_plaintext_size_bytes(self.store);
        if bytes.len() > max_bytes {
            return Err(KvError::NodeTooLarge { size_bytes: bytes.len(), max_bytes });
        }
        let r = refs::post(self.store, &self.salt, &bytes)?;
        if let Some(cache) = self.cache {
            // KV-18: write-through; the next edit of a chain starts from these nodes.
            cache.insert(r, Arc::new(node), bytes.len());
        }
        Ok(Entry { key, value: r.to_bytes().to_vec() })
    }

    /// Reads, decrypts and validates one node (KV-2, KV-8, REF-4).
    pub fn read_node(&self, r: &Ref) -> Result<Node, KvError> {
        self.load(r).map(Arc::unwrap_or_clone)
    }

    /// [`Kv::read_node`], shared: from the cache when it holds `r`, else read, verified,
    /// validated and then cached (KV-18).
    fn load(&self, r: &Ref) -> Result<Arc<Node>, KvError> {
        if let Some(node) = self.cache.and_then(|c| c.get(r)) {
            return Ok(node);
        }
        let bytes = refs::get(self.store, r)?;
        let node = decode_node(&bytes)
            .map_err(|e| KvError::Corrupt { cid: r.cid, detail: e.to_string() })?;
        let node = Arc::new(node);
        if let Some(cache) = self.cache {
            cache.insert(*r, node.clone(), bytes.len());
        }
        Ok(node)
    }

    /// Reads the child behind an internal entry and checks it fits its parent (KV-2).
    fn read_child(&self, parent_level: u8, e: &Entry) -> Result<(Ref, Arc<Node>), KvError> {
        let r = child_ref(e)?;
        let node = self.load(&r)?;
        let first = node.entries.first().map(|f| &f.key);
        if node.level.checked_add(1) != Some(parent_level) || first != Some(&e.key) {
            return Err(KvError::Corrupt {
                cid: r.cid,
                detail: format!("child at level {} does not fit its parent's entry", node.level),
            });
        }
        Ok((r, node))
    }

    /// The value of `key`, if present (KV-7).
    pub fn get(&self, root: Option<&Ref>, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let Some(root) = root else { return Ok(None) };
        let mut node = self.load(root)?;
        while node.level > 0 {
            let i = child_index(&node.entries, key);
            node = self.read_child(node.level, &node.entries[i])?.1;
        }
        Ok(node
            .entries
            .binary_search_by(|e| e.key.as_slice().cmp(key))
            .ok()
            .and_then(|i| node.entries.get(i))
            .map(|e| e.value.clone()))
    }

    /// Puts one key.
    pub fn put(
        &self,
        root: Option<&Ref>,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Ref>, KvError> {
        self.edit(root, BTreeMap::from([(key.to_vec(), Some(value.to_vec()))]))
    }

    /// Deletes one key (absent keys are fine).
    pub fn delete(&self, root: Option<&Ref>, key: &[u8]) -> Result<Option<Ref>, KvError> {
        self.edit(root, BTreeMap::from([(key.to_vec(), None)]))
    }

    /// Builds a tree from sorted, distinct entries (the bulk path: benches, imports).
    pub fn build(
        &self,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<Option<Ref>, KvError> {
        let mut edits = Edits::new();
        for (k, v) in entries {
            edits.insert(k, Some(v));
        }
        self.edit(None, edits)
    }
}

/// Splits `entries` into nodes given each entry's boundary flag (KV-3; see [`Kv::chunk`]).
fn chunk_at(entries: Vec<Entry>, cuts: &[bool]) -> Vec<Vec<Entry>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (e, cut) in entries.into_iter().zip(cuts) {
        cur.push(e);
        if *cut && cur.len() >= NODE_ENTRIES_MIN {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Does chunking entries with these boundary flags cut right after the last one (or are there
/// none)?
fn closes_at(cuts: &[bool]) -> bool {
    let mut open = 0usize;
    for cut in cuts {
        open += 1;
        if open >= NODE_ENTRIES_MIN && *cut {
            open = 0;
        }
    }
    open == 0
}

/// The ref an internal entry points at.
fn child_ref(e: &Entry) -> Result<Ref, KvError> {
    Ref::from_bytes(&e.value).map_err(KvError::Ref)
}

/// Index of the child whose range holds `key`: the last entry with key ≤ `key`, or the first.
fn child_index(entries: &[Entry], key: &[u8]) -> usize {
    entries.partition_point(|e| e.key.as_slice() <= key).saturating_sub(1)
}

/// Refuses an oversized key or value before anything is written (KV-5).
fn check_edit(key: &[u8], value: Option<&Vec<u8>>) -> Result<(), KvError> {
    if key.len() > KEY_SIZE_MAX_BYTES {
        return Err(KvError::KeyTooLarge { size_bytes: key.len() });
    }
    if let Some(v) = value
        && v.len() > VALUE_SIZE_MAX_BYTES
    {
        return Err(KvError::ValueTooLarge { size_bytes: v.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
