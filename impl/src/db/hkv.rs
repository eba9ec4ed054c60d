//! Hierarchical versioned KV, GitDb's API (`specs/kv.md`, KV-15..KV-17): keys are paths like
//! `/users/alice/profile`; `set`/`get`/`delete` go to an in-memory working layer over the head
//! snapshot; `commit` writes a snapshot (ticking the node's clock), `rollback` drops the working
//! layer, `log` walks history, `merge_from` merges another head in (gossip calls it). These
//! operations are KV-16; paths are KV-15, listings KV-17.
//!
//! Every key's tree value is its replicated [`KeyState`] (clock + versions), so merges are the
//! per-key join of `specs/gossip.md`; a delete is a write of a tombstone. The working layer holds
//! per-key states too, and reads see `merge(committed, working)`, which is exactly the spec's
//! state when a merge lands between a write and its commit.
//!
//! Never: accept a malformed path or an oversized value (typed errors), or let an uncommitted
//! write survive `rollback`.

use crate::db::kv::{Edits, Kv, KvError, NODE_TARGET_SIZE_BYTES, NodeCache};
use crate::db::merge::{self, KeyState, MergeError, MergeOutcome, MergePolicy, NodeId, Value};
use crate::db::snapshot::{self, Snapshot, SnapshotError};
use crate::storage::refs::Ref;
use crate::storage::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

/// Longest path, in bytes (KV-15).
pub const PATH_SIZE_MAX_BYTES: usize = 1024;
/// Largest value, in bytes (KV-15); a key state with up to fifteen such siblings still fits a
/// tree value.
pub const VALUE_SIZE_MAX_BYTES: usize = 16 * 1024;
/// Most keys the working layer holds before `set` asks for a commit.
pub const WORKING_KEYS_MAX: usize = 1 << 16;

const _: () = assert!(15 * (VALUE_SIZE_MAX_BYTES + 256) < crate::db::kv::VALUE_SIZE_MAX_BYTES);
const _: () = assert!(PATH_SIZE_MAX_BYTES <= crate::db::kv::KEY_SIZE_MAX_BYTES);

/// Errors of hierarchical KV operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HkvError {
    /// The path is not `/component(/component)*` within the limits (KV-15).
    #[error("bad path {path:?}: {reason}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value over [`VALUE_SIZE_MAX_BYTES`].
    #[error("value of {size_bytes} bytes exceeds the maximum of {VALUE_SIZE_MAX_BYTES} bytes")]
    ValueTooLarge {
        /// Size offered.
        size_bytes: usize,
    },
    /// The working layer is full; commit first.
    #[error("{WORKING_KEYS_MAX} uncommitted keys: commit or roll back first")]
    TooManyUncommitted,
    /// Tree failure.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// Merge failure.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// Snapshot failure.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Checks a path (KV-15): `/` then non-empty components separated by single `/`, no `.` or
/// `..` components, no NUL, at most [`PATH_SIZE_MAX_BYTES`]. `allow_root` admits `/` itself
/// (a listing prefix).
pub fn check_path(path: &str, allow_root: bool) -> Result<(), HkvError> {
    let bad = |reason| Err(HkvError::BadPath { path: path.chars().take(80).collect(), reason });
    if path.len() > PATH_SIZE_MAX_BYTES {
        return bad("too long");
    }
    if path == "/" {
        return if allow_root { Ok(()) } else { bad("the root is not a key") };
    }
    let Some(rest) = path.strip_prefix('/') else { return bad("must start with '/'") };
    if path.contains('\0') {
        return bad("contains NUL");
    }
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return bad("empty, '.' or '..' component");
    }
    Ok(())
}

/// One node's versioned hierarchical KV: the head snapshot plus uncommitted changes.
pub struct Hkv {
    store: Arc<dyn Store>,
    salt: [u8; 32],
    node: NodeId,
    policy: MergePolicy,
    head: Option<Ref>,
    working: BTreeMap<Vec<u8>, KeyState>,
    /// Decoded tree nodes (KV-18), shared by every read and edit of this KV.
    cache: Arc<NodeCache>,
    /// The tree's expected node size (KV-3); [`NODE_TARGET_SIZE_BYTES`] unless
    /// [`Hkv::with_node_target_size`] says otherwise.
    node_target_size_bytes: u64,
}

impl std::fmt::Debug for Hkv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hkv")
            .field("node", &self.node)
            .field("head", &self.head)
            .field("uncommitted", &self.working.len())
            .finish()
    }
}

impl Hkv {
    /// A KV at `node` whose head is `head` (e.g. read from the volume's cell).
    pub fn new(
        store: Arc<dyn Store>,
        salt: [u8; 32],
        node: NodeId,
        policy: MergePolicy,
        head: Option<Ref>,
    ) -> Self {
        let cache = Arc::new(NodeCache::default());
        let node_target_size_bytes = NODE_TARGET_SIZE_BYTES;
        Self {
            store,
            salt,
            node,
            policy,
            head,
            working: BTreeMap::new(),
            cache,
            node_target_size_bytes,
        }
    }

    /// The same KV building its trees with another expected node size (KV-3). Every node that
    /// shares a tree must use the same size: equal contents give equal roots only then (KV-4).
    /// This exists so a handful of keys grows a deep tree: the simulator's gossip clusters use
    /// it to run the code that edits interior nodes.
    #[must_use]
    pub fn with_node_target_size(mut self, node_target_size_bytes: u64) -> Self {
        self.node_target_size_bytes = node_target_size_bytes;
        self
    }

    /// Tree access in this KV's store and salt.
    pub fn kv(&self) -> Kv<'_> {
        Kv::with_node_target_size(self.store.as_ref(), self.salt, self.node_target_size_bytes)
            .with_cache(&self.cache)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current head snapshot.
    pub fn head(&self) -> Option<Ref> {
        self.head
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The merge policy.
    pub fn policy(&self) -> &MergePolicy {
        &self.policy
    }

    /// Number of uncommitted keys.
    pub fn uncommitted(&self) -> usize {
        self.working.len()
    }

    /// The head snapshot's tree root.
    pub fn head_root(&self) -> Result<Option<Ref>, HkvError> {
        Ok(match &self.head {
            Some(h) => snapshot::get(self.store.as_ref(), h)?.root,
            None => None,
        })
    }

    fn committed_state(&self, root: Option<&Ref>, key: &[u8]) -> Result<KeyState, HkvError> {
        let v = self.kv().get(root, key)?;
        Ok(merge::state_of(key, v.as_deref())?)
    }

    /// The key's replicated state as this node sees it (committed joined with uncommitted).
    pub fn state(&self, path: &str) -> Result<KeyState, HkvError> {
        check_path(path, false)?;
        let committed = self.committed_state(self.head_root()?.as_ref(), path.as_bytes())?;
        Ok(self.effective(committed, path.as_bytes()))
    }

    fn effective(&self, committed: KeyState, key: &[u8]) -> KeyState {
        match self.working.get(key) {
            Some(w) => merge::merge(&self.policy, &committed, w),
            None => committed,
        }
    }

    fn write(&mut self, path: &str, value: Value) -> Result<(), HkvError> {
        let state = self.state(path)?;
        if !self.working.contains_key(path.as_bytes()) && self.working.len() >= WORKING_KEYS_MAX {
            return Err(HkvError::TooManyUncommitted);
        }
        let next = merge::write(&state, self.node, value); // GOS-1
        self.working.insert(path.as_bytes().to_vec(), next);
        Ok(())
    }

    /// Sets `path` to `value` (uncommitted until [`Hkv::commit`]; KV-16, a GOS-1 write).
    pub fn set(&mut self, path: &str, value: &[u8]) -> Result<(), HkvError> {
        // Planted bug hkv:value-limit-off-by-one: the largest legal value is refused too.
        let at_limit_refused = crate::bugs::active("hkv:value-limit-off-by-one")
            && value.len() == VALUE_SIZE_MAX_BYTES;
        if value.len() > VALUE_SIZE_MAX_BYTES || at_limit_refused {
            return Err(HkvError::ValueTooLarge { size_bytes: value.len() });
        }
        self.write(path, Some(value.to_vec()))
    }

    /// Deletes `path` (a tombstone write; uncommitted until [`Hkv::commit`]; KV-16).
    pub fn delete(&mut self, path: &str) -> Result<(), HkvError> {
        self.write(path, None)
    }

    /// The value a reader sees: LWW → the winner; Custom → the function of the siblings;
    /// KeepBoth → the greatest-precedence live sibling (see [`Hkv::siblings`] for all of them).
    /// `None` if absent or deleted (KV-16).
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>, HkvError> {
        // KV-16: `read` lists siblings in precedence order; the last live one wins.
        Ok(self.state(path)?.read(&self.policy).into_iter().rev().flatten().next())
    }

    /// Every sibling value in precedence order (`None` entries are deletes; KV-16).
    pub fn siblings(&self, path: &str) -> Result<Vec<Value>, HkvError> {
        Ok(self.state(path)?.versions().iter().map(|v| v.value.clone()).collect())
    }

    /// Every live key at or under `prefix` (`/` for all), in order (KV-17).
    pub fn list_recursive(&self, prefix: &str) -> Result<Vec<String>, HkvError> {
        check_path(prefix, true)?;
        let dir = if prefix == "/" { "/".to_owned() } else { format!("{prefix}/") };
        let root = self.head_root()?;
        let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for item in self.kv().prefix(root.as_ref(), dir.as_bytes())? {
            let (k, v) = item?;
            keys.insert(k.clone());
            committed.insert(k, v);
        }
        let end =
            crate::db::kv::prefix_end(dir.as_bytes()).map_or(Bound::Unbounded, Bound::Excluded);
        keys.extend(
            self.working
                .range::<Vec<u8>, _>((Bound::Included(dir.as_bytes().to_vec()), end))
                .map(|(k, _)| k.clone()),
        );
        let mut out = Vec::new();
        for k in keys {
            let state =
                self.effective(merge::state_of(&k, committed.get(&k).map(Vec::as_slice))?, &k);
            // KV-17: live = what a reader sees holds a value that is not a tombstone.
            if state.read(&self.policy).iter().any(Option::is_some) {
                out.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        Ok(out)
    }

    /// The direct children of `prefix`: the next path component of every live key under it
    /// (KV-17).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, HkvError> {
        let skip = if prefix == "/" { 1 } else { prefix.len() + 1 };
        let mut out: Vec<String> = Vec::new();
        for k in self.list_recursive(prefix)? {
            let child = k[skip..].split('/').next().unwrap_or_default().to_owned();
            if out.last() != Some(&child) {
                out.push(child);
            }
        }
        Ok(out)
    }

    /// Commits the working layer as a new snapshot (ticks this node's clock); returns its ref.
    /// The snapshot holds `merge(committed, working)` for every working key, and the working
    /// layer is emptied (KV-16, KV-12).
    pub fn commit(&mut self, message: &str) -> Result<Ref, HkvError> {
        let parent = match &self.head {
            Some(h) => Some((*h, snapshot::get(self.store.as_ref(), h)?)),
            None => None,
        };
        let root = parent.as_ref().and_then(|(_, p)| p.root);
        let mut edits = Edits::new();
        for (k, w) in &self.working {
            let merged = merge::merge(&self.policy, &self.committed_state(root.as_ref(), k)?, w);
            let bytes = merged.encode().map_err(|source| MergeError::BadState {
                key: String::from_utf8_lossy(k).into_owned(),
                source,
            })?;
            edits.insert(k.clone(), Some(bytes));
        }
        let new_root = self.kv().edit(root.as_ref(), edits)?;
        let snap =
            Snapshot::commit_of(new_root, parent.as_ref().map(|(r, s)| (r, s)), self.node, message);
        let head = snapshot::post(&self.kv(), &snap)?;
        self.head = Some(head);
        self.working.clear();
        Ok(head)
    }

    /// Drops every uncommitted change; returns how many keys were dropped (KV-16).
    pub fn rollback(&mut self) -> usize {
        std::mem::take(&mut self.working).len()
    }

    /// History from the head, newest first, at most `limit` snapshots (KV-16, walked as KV-13).
    pub fn log(&self, limit: usize) -> Result<Vec<(Ref, Snapshot)>, HkvError> {
        match &self.head {
            Some(h) => Ok(snapshot::history(self.store.as_ref(), h, limit)?),
            None => Ok(Vec::new()),
        }
    }

    /// Merges the head `theirs` (whose blobs must all be in the store) into this node's head
    /// (KV-11). Uncommitted changes stay uncommitted, on top of the merged head.
    pub fn merge_from(&mut self, theirs: &Ref) -> Result<MergeOutcome, HkvError> {
        let out =
            merge::merge_heads(&self.kv(), &self.policy, self.node, self.head.as_ref(), theirs)?;
        self.head = Some(out.head());
        Ok(out)
    }

    /// Replaces the head (e.g. after reading the cell); keeps uncommitted changes.
    pub fn set_head(&mut self, head: Option<Ref>) {
        self.head = head;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::MemStore;

    fn hkv(node: u32, store: &Arc<dyn Store>, policy: MergePolicy) -> Hkv {
        Hkv::new(store.clone(), [5; 32], NodeId(node), policy, None)
    }

    #[test]
    fn gitdb_api_kv15_kv16() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let mut db = hkv(1, &store, MergePolicy::LastWriteWins);
        db.set("/users/alice/name", b"Alice").unwrap();
        db.set("/users/alice/profile", b"p").unwrap();
        db.set("/users/bob/name", b"Bob").unwrap();
        db.set("/usersx", b"not a child").unwrap();
        assert_eq!(db.get("/users/alice/name").unwrap(), Some(b"Alice".to_vec()));
        assert_eq!(db.list("/users").unwrap(), vec!["alice", "bob"]);
        assert_eq!(db.list("/").unwrap(), vec!["users", "usersx"]);
        let c1 = db.commit("add users").unwrap();
        db.delete("/users/bob/name").unwrap();
        assert_eq!(db.list("/users").unwrap(), vec!["alice"]);
        assert_eq!(db.rollback(), 1);
        assert_eq!(db.list("/users").unwrap(), vec!["alice", "bob"], "rollback drops uncommitted");
        db.delete("/users/bob/name").unwrap();
        let c2 = db.commit("remove bob").unwrap();
        assert_eq!(
            db.list_recursive("/users").unwrap(),
            vec!["/users/alice/name", "/users/alice/profile"]
        );
        let log = db.log(10).unwrap();
        assert_eq!(log.iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![c2, c1]);
        assert_eq!(log[0].1.message, "remove bob");
        assert_eq!(log[0].1.lamport, 2);
        assert_eq!(log[0].1.clock.get(NodeId(1)), 2, "commit ticks the node clock");
        for bad in ["", "users", "/a//b", "/a/", "/a/../b", "/"] {
            assert!(matches!(db.set(bad, b"x"), Err(HkvError::BadPath { .. })), "{bad}");
        }
        assert!(matches!(
            db.set("/big", &vec![0; VALUE_SIZE_MAX_BYTES + 1]),
            Err(HkvError::ValueTooLarge { .. })
        ));
    }

    /// KV-16: `get` reads through the policy. Three nodes write one key concurrently (equal
    /// lamports, so precedence follows the writer): node 1 sets `a`, node 2 sets `b`, node 3
    /// deletes. LWW shows the winner (the delete), KeepBoth the greatest live sibling (`b`, not
    /// `a`, not the tombstone), Custom its function of all three siblings.
    #[test]
    fn get_reads_through_the_policy_kv16() {
        fn count(values: &[Value]) -> Value {
            Some(vec![values.len() as u8])
        }
        let cases = [
            (MergePolicy::LastWriteWins, None, vec![None]),
            (
                MergePolicy::KeepBoth,
                Some(b"b".to_vec()),
                vec![Some(b"a".to_vec()), Some(b"b".to_vec()), None],
            ),
            (
                MergePolicy::Custom(count),
                Some(vec![3]),
                vec![Some(b"a".to_vec()), Some(b"b".to_vec()), None],
            ),
        ];
        for (policy, want, siblings) in cases {
            let store: Arc<dyn Store> = Arc::new(MemStore::new());
            let mut a = hkv(1, &store, policy);
            let mut b = hkv(2, &store, policy);
            let mut c = hkv(3, &store, policy);
            a.set("/x", b"a").unwrap();
            a.commit("a").unwrap();
            b.set("/x", b"b").unwrap();
            let from_b = b.commit("b").unwrap();
            c.delete("/x").unwrap();
            assert_eq!(c.uncommitted(), 1);
            let from_c = c.commit("c deletes").unwrap();
            assert_eq!(c.uncommitted(), 0, "commit empties the working layer");
            a.merge_from(&from_b).unwrap();
            a.merge_from(&from_c).unwrap();
            assert_eq!(a.siblings("/x").unwrap(), siblings, "precedence order");
            assert_eq!(a.get("/x").unwrap(), want);
            assert_eq!(a.list("/").unwrap().is_empty(), want.is_none(), "KV-17 follows get");
        }
    }

    #[test]
    fn merges_fast_forward_and_concurrent_kv11() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let mut a = hkv(1, &store, MergePolicy::KeepBoth);
        let mut b = hkv(2, &store, MergePolicy::KeepBoth);
        a.set("/x", b"1").unwrap();
        let a1 = a.commit("a1").unwrap();
        assert_eq!(b.merge_from(&a1).unwrap(), MergeOutcome::FastForward(a1));
        b.set("/x", b"2").unwrap();
        let b2 = b.commit("b2").unwrap();
        a.set("/x", b"3").unwrap();
        a.set("/y", b"only a").unwrap();
        let a2 = a.commit("a2").unwrap();
        assert_eq!(snapshot::merge_base(store.as_ref(), &a2, &b2).unwrap(), Some(a1));
        let MergeOutcome::Merged(m) = a.merge_from(&b2).unwrap() else {
            panic!("concurrent heads merge")
        };
        assert_eq!(
            a.siblings("/x").unwrap(),
            vec![Some(b"3".to_vec()), Some(b"2".to_vec())],
            "GOS-4"
        );
        assert!(snapshot::is_ancestor(store.as_ref(), &b2, &m).unwrap());
        assert!(!snapshot::is_ancestor(store.as_ref(), &m, &b2).unwrap());
        // b merging a's merge fast-forwards; merging back and forth settles (no ping-pong).
        assert_eq!(b.merge_from(&m).unwrap(), MergeOutcome::FastForward(m));
        assert_eq!(a.merge_from(&b2).unwrap(), MergeOutcome::UpToDate(m));
        // A later write resolves the siblings.
        b.set("/x", b"4").unwrap();
        assert_eq!(b.siblings("/x").unwrap(), vec![Some(b"4".to_vec())]);
    }

    /// KV-10 through a merge: 65 nodes write one key concurrently under KeepBoth. Merging 63
    /// of the others' heads into node 0 gives the key 64 siblings (the bound); the next merge
    /// would make 65, which no decoder accepts, so it fails with a typed error naming the key
    /// and leaves the head as it was (before the encoder checked, it stored the state and the
    /// key could never be read again).
    #[test]
    fn a_merge_past_the_sibling_bound_fails_and_keeps_the_head_kv10() {
        use crate::db::merge::SIBLINGS_MAX;
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let heads: Vec<Ref> = (0..=SIBLINGS_MAX as u32)
            .map(|n| {
                let mut node = hkv(n, &store, MergePolicy::KeepBoth);
                node.set("/x", &n.to_le_bytes()).unwrap();
                node.commit("w").unwrap()
            })
            .collect();
        let mut a = hkv(0, &store, MergePolicy::KeepBoth);
        a.set_head(Some(heads[0]));
        for h in &heads[1..SIBLINGS_MAX] {
            a.merge_from(h).unwrap();
        }
        assert_eq!(a.siblings("/x").unwrap().len(), SIBLINGS_MAX);
        let before = a.head();
        let e = a.merge_from(&heads[SIBLINGS_MAX]).unwrap_err();
        assert!(e.to_string().contains("\"/x\"") && e.to_string().contains("version count"), "{e}");
        assert_eq!(a.head(), before, "nothing stored");
        assert_eq!(a.siblings("/x").unwrap().len(), SIBLINGS_MAX);
    }

    /// KV-11: two nodes that merge each other's concurrent heads at the same time get two merge
    /// snapshots with equal roots; merging those settles both nodes on the one with the greater
    /// `(lamport, ref)` instead of writing merge commits forever.
    #[test]
    fn crossed_merges_settle_on_one_head_kv11() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let mut a = hkv(1, &store, MergePolicy::LastWriteWins);
        let mut b = hkv(2, &store, MergePolicy::LastWriteWins);
        a.set("/x", b"a").unwrap();
        let a1 = a.commit("a1").unwrap();
        b.set("/y", b"b").unwrap();
        let b1 = b.commit("b1").unwrap();
        let MergeOutcome::Merged(ma) = a.merge_from(&b1).unwrap() else { panic!("a merges b1") };
        let MergeOutcome::Merged(mb) = b.merge_from(&a1).unwrap() else { panic!("b merges a1") };
        assert_ne!(ma, mb);
        assert_eq!(a.head_root().unwrap(), b.head_root().unwrap(), "merge is a join");
        a.merge_from(&mb).unwrap();
        b.merge_from(&ma).unwrap();
        assert_eq!(a.head(), b.head(), "both settle on one head");
        let key = |r: &Ref| (snapshot::get(store.as_ref(), r).unwrap().lamport, *r);
        assert_eq!(a.head(), Some(if key(&ma) > key(&mb) { ma } else { mb }));
        assert!(matches!(a.merge_from(&b.head().unwrap()).unwrap(), MergeOutcome::UpToDate(_)));
    }

    #[test]
    fn snapshot_reachability_drives_sync_and_cleanup_kv14() {
        use crate::storage::cell::{Cell, MemCell};
        use crate::storage::volume::{Volume, check_vol1, cleanup, sync};
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let mut db = hkv(1, &store, MergePolicy::LastWriteWins);
        for i in 0..300 {
            db.set(&format!("/k/{i}"), b"v").unwrap();
        }
        db.commit("one").unwrap();
        db.set("/k/1", b"w").unwrap();
        let head = db.commit("two").unwrap();
        let src = Volume::new(Arc::new(MemCell::new()), store.clone());
        src.cell.cas(b"", &head.to_bytes()).unwrap();
        let dst = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
        let reach = snapshot::SnapshotReachability;
        sync(&src, &dst, Some(&reach), &|src_value: &[u8], _: &[u8]| Some(src_value.to_vec()))
            .unwrap();
        assert_eq!(check_vol1(&dst, &reach).unwrap(), None);
        // An orphan blob goes away, everything reachable stays.
        let orphan = dst.store.post(b"orphan").unwrap();
        cleanup(&dst, &reach).unwrap();
        assert!(!dst.store.exists(&orphan).unwrap());
        assert_eq!(check_vol1(&dst, &reach).unwrap(), None);
        let copy =
            Hkv::new(dst.store.clone(), [5; 32], NodeId(1), MergePolicy::LastWriteWins, Some(head));
        assert_eq!(copy.get("/k/1").unwrap(), Some(b"w".to_vec()));
        assert_eq!(copy.log(10).unwrap().len(), 2);
    }
}
