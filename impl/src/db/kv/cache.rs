//! A bounded cache of decoded tree nodes (`specs/kv.md` KV-18).
//!
//! Reading a node costs a store fetch, a BLAKE3 CID check, a ChaCha20-Poly1305 decryption and a
//! decode (about 20 µs for 4 KiB); a `get` pays it once per level and an edit several times per
//! level. Nodes are immutable and named by their ref, so a decoded node can be kept and shared:
//! the cache maps a whole [`Ref`] — CID *and* key — to the node read through it. Keyed by the
//! CID alone, a ref carrying a wrong key would be served the node instead of failing its tag
//! check (REF-4); keyed by the whole ref, it misses and fails as before.
//!
//! What enters: a node after it was read, verified (REF-4) and validated (KV-2), or a node this
//! process just encoded and posted (write-through: the next edit of a chain starts from it).
//! Bounded by the nodes' encoded sizes ([`NODE_CACHE_BYTES_DEFAULT`]); eviction is
//! `quick_cache`'s (CLOCK-Pro: scan-resistant, so one `range` over a big tree does not flush
//! the hot upper levels). Concurrent: one cache may back many [`super::Kv`] handles and
//! threads.
//!
//! Never: return a node for a ref it was not read or written under; grow past its bound.

use super::Node;
use crate::storage::refs::Ref;
use std::sync::Arc;

/// Default bound of a cache: the encoded bytes of the nodes it holds. 64 MiB holds every node
/// of a 1 M-key tree (≈ 31 MiB); decoded nodes take about twice their encoded size in memory.
pub const NODE_CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Typical encoded node size, used only to size the cache's hash table.
const NODE_BYTES_TYPICAL: u64 = 4096;

#[derive(Clone)]
struct Cached {
    node: Arc<Node>,
    weight: u64,
}

#[derive(Clone)]
struct ByEncodedSize;

impl quick_cache::Weighter<Ref, Cached> for ByEncodedSize {
    fn weight(&self, _key: &Ref, val: &Cached) -> u64 {
        val.weight
    }
}

/// The whole ref (KV-18). Planted bug `kv:cache-by-cid`: the CID alone, so a ref with the right
/// CID and a wrong key is served a cached node instead of failing its tag check (REF-4).
fn cache_key(r: &Ref) -> Ref {
    if crate::bugs::active("kv:cache-by-cid") {
        return Ref { cid: r.cid, dek: Default::default() };
    }
    *r
}

/// Decoded nodes by ref, bounded in bytes. See the module documentation.
pub struct NodeCache {
    inner: quick_cache::sync::Cache<Ref, Cached, ByEncodedSize>,
    capacity_bytes: u64,
}

impl std::fmt::Debug for NodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodeCache({} nodes, {} of {} bytes)",
            self.len(),
            self.weight(),
            self.capacity_bytes
        )
    }
}

impl Default for NodeCache {
    fn default() -> Self {
        Self::new(NODE_CACHE_BYTES_DEFAULT)
    }
}

impl NodeCache {
    /// A cache holding nodes of at most `capacity_bytes` encoded bytes in all.
    pub fn new(capacity_bytes: u64) -> Self {
        let items = usize::try_from(capacity_bytes / NODE_BYTES_TYPICAL).unwrap_or(usize::MAX);
        let inner =
            quick_cache::sync::Cache::with_weighter(items.max(16), capacity_bytes, ByEncodedSize);
        Self { inner, capacity_bytes }
    }

    /// The node read or written under exactly `r`, if held.
    pub fn get(&self, r: &Ref) -> Option<Arc<Node>> {
        self.inner.get(&cache_key(r)).map(|c| c.node)
    }

    /// Keeps `node`, of `encoded_bytes` encoded bytes, under `r` (KV-18: only a verified node
    /// or one just written).
    pub fn insert(&self, r: Ref, node: Arc<Node>, encoded_bytes: usize) {
        let weight = u64::try_from(encoded_bytes).unwrap_or(u64::MAX).max(1);
        self.inner.insert(cache_key(&r), Cached { node, weight });
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Encoded bytes held (never above the capacity).
    pub fn weight(&self) -> u64 {
        self.inner.weight()
    }

    /// The bound, in encoded bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}
