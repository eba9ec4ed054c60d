//! Batched edits (KV-4): rewrite only the nodes whose entries change, level by level.
//!
//! Level `L` of a tree is the sorted entry list `E_L` (leaf entries at 0; at `L+1` one
//! `(first key, ref)` entry per level-`L` node), cut into nodes by the chunker (KV-3). An edit at
//! level `L` loads each touched node, applies its edits, and extends the run with the following
//! nodes while re-chunking the run would not cut right after its last entry; it then re-chunks
//! the run and turns "old nodes out, new nodes in" into edits of `E_{L+1}`, keyed by first key.
//! Every run starts where the old tree had a cut and the new one has one too (after an untouched
//! node, or after a run that ended on a cut), and the chunker's state resets at a cut, so the
//! result equals chunking the edited contents from scratch: the tree is a function of its
//! contents (KV-4).

use super::{
    Edits, Entry, Kv, KvError, LEVEL_MAX, Node, check_edit, child_index, child_ref, chunk_at,
    closes_at,
};
use crate::storage::refs::Ref;
use std::collections::BTreeMap;

impl Kv<'_> {
    /// Applies a batch of puts (`Some`) and deletes (`None`); returns the new root.
    pub fn edit(&self, root: Option<&Ref>, edits: Edits) -> Result<Option<Ref>, KvError> {
        for (k, v) in &edits {
            check_edit(k, v.as_ref())?;
        }
        let Some(root) = root else {
            let entries = edits
                .into_iter()
                .filter_map(|(key, v)| v.map(|value| Entry { key, value }))
                .collect();
            return self.build_up(0, self.chunk(0, entries));
        };
        let root_node = self.load(root)?;
        let top = root_node.level;
        let mut level_edits = edits;
        for level in 0..top {
            if level_edits.is_empty() {
                return Ok(Some(*root));
            }
            level_edits = self.edit_level(&root_node, level, &level_edits)?;
        }
        if level_edits.is_empty() {
            return Ok(Some(*root));
        }
        let entries = apply(root_node.entries.clone(), Some(&level_edits));
        self.build_up(top, self.chunk(top, entries))
    }

    /// Writes `chunks` (the nodes of `level`) and the levels above them until one node is
    /// left; a single-entry internal root collapses into its child (canonical form, KV-4).
    fn build_up(&self, mut level: u8, mut chunks: Vec<Vec<Entry>>) -> Result<Option<Ref>, KvError> {
        loop {
            if chunks.len() <= 1 {
                let Some(only) = chunks.pop() else { return Ok(None) };
                if level > 0
                    && let [single] = only.as_slice()
                {
                    return self.collapse(child_ref(single)?).map(Some);
                }
                let e = self.write_node(level, only)?;
                return child_ref(&e).map(Some);
            }
            let entries = chunks
                .into_iter()
                .map(|c| self.write_node(level, c))
                .collect::<Result<Vec<_>, _>>()?;
            level = level.checked_add(1).filter(|l| *l <= LEVEL_MAX).ok_or_else(|| {
                KvError::Corrupt {
                    cid: crate::Hash::ZERO,
                    detail: format!("tree would exceed {LEVEL_MAX} levels"),
                }
            })?;
            chunks = self.chunk(level, entries);
        }
    }

    /// Follows single-entry internal nodes down to the first node with more than one entry.
    fn collapse(&self, mut r: Ref) -> Result<Ref, KvError> {
        for _ in 0..=LEVEL_MAX {
            let node = self.load(&r)?;
            match node.entries.as_slice() {
                [single] if node.level > 0 => r = child_ref(single)?,
                _ => return Ok(r),
            }
        }
        Err(KvError::Corrupt {
            cid: r.cid,
            detail: "single-entry chain deeper than LEVEL_MAX".into(),
        })
    }

    /// Edits level `level` (below the root's); returns the edits of level `level + 1`.
    fn edit_level(&self, root: &Node, level: u8, edits: &Edits) -> Result<Edits, KvError> {
        let mut touched: BTreeMap<Vec<u8>, Ref> = BTreeMap::new();
        let mut assigned: BTreeMap<Vec<u8>, Edits> = BTreeMap::new();
        for (k, v) in edits {
            let (first, r) = self.locate(root, level, k)?;
            assigned.entry(first.clone()).or_default().insert(k.clone(), v.clone());
            touched.insert(first, r);
        }
        let mut out = Edits::new();
        let mut queue = touched.into_iter().peekable();
        while let Some((first, r)) = queue.next() {
            let mut run = self.load_edited(&r, level, assigned.remove(&first).as_ref())?;
            // Each entry's boundary flag is hashed once, for the run's end and its chunking.
            let mut cuts = self.boundaries(level, &run);
            let mut old = vec![(first, r)];
            // A run that ends on a cut is final: whatever follows starts a node in the old tree
            // and in the new one alike (a touched successor then starts its own run). Only an
            // open tail pulls in the next node, touched or not.
            // Planted bug kv:no-run-extension: never extend, even if the run's end moved.
            while !crate::bugs::active("kv:no-run-extension") && !closes_at(&cuts) {
                let last = old.last().map(|(k, _)| k.clone()).unwrap_or_default();
                let Some((nk, nr)) = self.successor(root, level, &last)? else { break };
                if queue.peek().is_some_and(|(k, _)| *k == nk) {
                    queue.next();
                }
                let more = self.load_edited(&nr, level, assigned.remove(&nk).as_ref())?;
                cuts.extend(self.boundaries(level, &more));
                run.extend(more);
                old.push((nk, nr));
            }
            let new = chunk_at(run, &cuts)
                .into_iter()
                .map(|c| self.write_node(level, c))
                .collect::<Result<Vec<_>, _>>()?;
            let unchanged = new.len() == old.len()
                && new.iter().zip(&old).all(|(n, (k, r))| n.key == *k && n.value == r.to_bytes());
            if unchanged {
                continue;
            }
            for (k, _) in old {
                out.insert(k, None);
            }
            for e in new {
                out.insert(e.key, Some(e.value));
            }
        }
        Ok(out)
    }

    /// A level-`level` node's entries with its assigned edits applied.
    fn load_edited(
        &self,
        r: &Ref,
        level: u8,
        edits: Option<&Edits>,
    ) -> Result<Vec<Entry>, KvError> {
        let node = self.load(r)?;
        if node.level != level {
            return Err(KvError::Corrupt {
                cid: r.cid,
                detail: format!("expected level {level}, found {}", node.level),
            });
        }
        Ok(apply(node.entries.clone(), edits))
    }

    /// The level-`level` node whose key range holds `key` (level below the root's).
    fn locate(&self, root: &Node, level: u8, key: &[u8]) -> Result<(Vec<u8>, Ref), KvError> {
        let mut entry = root.entries[child_index(&root.entries, key)].clone();
        let mut parent_level = root.level;
        while parent_level > level + 1 {
            let (_, child) = self.read_child(parent_level, &entry)?;
            entry = child.entries[child_index(&child.entries, key)].clone();
            parent_level = child.level;
        }
        Ok((entry.key.clone(), child_ref(&entry)?))
    }

    /// The level-`level` node with the smallest first key greater than `key`.
    fn successor(
        &self,
        node: &Node,
        level: u8,
        key: &[u8],
    ) -> Result<Option<(Vec<u8>, Ref)>, KvError> {
        if node.level == level + 1 {
            let i = node.entries.partition_point(|e| e.key.as_slice() <= key);
            return node.entries.get(i).map(|e| Ok((e.key.clone(), child_ref(e)?))).transpose();
        }
        // Planted bug kv:successor-stays-in-parent: only the child holding `key` is searched,
        // so a run never extends across a parent's boundary (seen only in trees of depth ≥ 3).
        let from = child_index(&node.entries, key);
        let to = if crate::bugs::active("kv:successor-stays-in-parent") {
            from + 1
        } else {
            node.entries.len()
        };
        for e in node.entries.get(from..to).unwrap_or_default() {
            let (_, child) = self.read_child(node.level, e)?;
            if let Some(found) = self.successor(&child, level, key)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Applies edits to sorted entries: in place, by binary search, for a few edits; by a merge of
/// the two sorted sequences for many.
fn apply(mut entries: Vec<Entry>, edits: Option<&Edits>) -> Vec<Entry> {
    let Some(edits) = edits.filter(|e| !e.is_empty()) else { return entries };
    if edits.len() <= 8 {
        for (k, v) in edits {
            match (entries.binary_search_by(|e| e.key.as_slice().cmp(k)), v) {
                (Ok(i), Some(v)) => {
                    if let Some(e) = entries.get_mut(i) {
                        e.value.clone_from(v);
                    }
                }
                (Ok(i), None) => {
                    entries.remove(i);
                }
                (Err(i), Some(v)) => entries.insert(i, Entry { key: k.clone(), value: v.clone() }),
                (Err(_), None) => {}
            }
        }
        return entries;
    }
    let mut out = Vec::with_capacity(entries.len() + edits.len());
    let mut old = entries.into_iter().peekable();
    for (k, v) in edits {
        while let Some(e) = old.next_if(|e| e.key < *k) {
            out.push(e);
        }
        old.next_if(|e| e.key == *k);
        if let Some(v) = v {
            out.push(Entry { key: k.clone(), value: v.clone() });
        }
    }
    out.extend(old);
    out
}
