//! Ordered iteration over a key range (KV-7): a stack of nodes, one blob read per node visited.

use super::{Entry, Kv, KvError, child_index};
use crate::storage::refs::Ref;
use std::ops::Bound;
use std::sync::Arc;

/// Iterates `(key, value)` pairs in key order. Yields an error (then stops) if a node is
/// missing or corrupt.
pub struct Iter<'s> {
    kv: Kv<'s>,
    /// (entries, index of the next entry / current child, level)
    stack: Vec<(Vec<Entry>, usize, u8)>,
    end: Bound<Vec<u8>>,
    done: bool,
}

impl std::fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").field("depth", &self.stack.len()).finish()
    }
}

impl<'s> Kv<'s> {
    /// Entries with keys in `(start, end)`, in order.
    pub fn range(
        &self,
        root: Option<&Ref>,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> Result<Iter<'s>, KvError> {
        let mut it =
            Iter { kv: *self, stack: Vec::new(), end: end.map(<[u8]>::to_vec), done: false };
        let Some(root) = root else {
            it.done = true;
            return Ok(it);
        };
        let mut node = self.read_node(root)?;
        loop {
            let idx = match (start, node.level) {
                (Bound::Unbounded, _) => 0,
                (Bound::Included(k) | Bound::Excluded(k), l) if l > 0 => {
                    child_index(&node.entries, k)
                }
                (Bound::Included(k), _) => node.entries.partition_point(|e| e.key.as_slice() < k),
                (Bound::Excluded(k), _) => node.entries.partition_point(|e| e.key.as_slice() <= k),
            };
            let level = node.level;
            let child = node.entries.get(idx).filter(|_| level > 0).cloned();
            it.stack.push((node.entries, idx, level));
            let Some(child) = child else { return Ok(it) };
            node = Arc::unwrap_or_clone(self.read_child(level, &child)?.1);
        }
    }

    /// Every entry whose key starts with `prefix`, in order.
    pub fn prefix(&self, root: Option<&Ref>, prefix: &[u8]) -> Result<Iter<'s>, KvError> {
        let end = prefix_end(prefix);
        let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.range(root, Bound::Included(prefix), end_bound)
    }
}

/// The smallest key greater than every key starting with `prefix` (None: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Iterator for Iter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), KvError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some((entries, idx, level)) = self.stack.last_mut() else { break };
            let Some(e) = entries.get(*idx) else {
                self.stack.pop();
                if let Some(parent) = self.stack.last_mut() {
                    parent.1 += 1;
                }
                continue;
            };
            if *level == 0 {
                let e = e.clone();
                *idx += 1;
                let past = match &self.end {
                    Bound::Unbounded => false,
                    Bound::Included(k) => e.key > *k,
                    Bound::Excluded(k) => e.key >= *k,
                };
                if past {
                    break;
                }
                return Some(Ok((e.key, e.value)));
            }
            let (e, level) = (e.clone(), *level);
            match self.kv.read_child(level, &e) {
                Ok((_, child)) => {
                    let child = Arc::unwrap_or_clone(child);
                    self.stack.push((child.entries, 0, child.level))
                }
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        self.done = true;
        None
    }
}
