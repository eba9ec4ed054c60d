//! `diff(a, b)` (KV-6): walks both trees side by side and skips every pair of subtrees with
//! equal refs, so its cost follows the size of the change, not the size of the trees.

use super::{Entry, Kv, KvError, child_ref};
use crate::storage::refs::Ref;
use std::collections::VecDeque;

/// One key that differs between two trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Vec<u8>,
    /// Its value in the first tree (`None`: absent).
    pub old: Option<Vec<u8>>,
    /// Its value in the second tree (`None`: absent).
    pub new: Option<Vec<u8>>,
}

/// A pending piece of one side: a whole subtree (first key, ref, level) or one leaf entry.
enum Item {
    Tree(Vec<u8>, Ref, u8),
    Leaf(Entry),
}

impl Item {
    fn key(&self) -> &[u8] {
        match self {
            Item::Tree(k, _, _) | Item::Leaf(Entry { key: k, .. }) => k,
        }
    }
    /// Leaves rank below every subtree so the taller side expands first.
    fn rank(&self) -> i16 {
        match self {
            Item::Tree(_, _, level) => i16::from(*level),
            Item::Leaf(_) => -1,
        }
    }
}

impl Kv<'_> {
    /// The keys whose values differ from `a` to `b`, in key order (KV-6).
    pub fn diff(&self, a: Option<&Ref>, b: Option<&Ref>) -> Result<Vec<Change>, KvError> {
        let mut out = Vec::new();
        if a == b {
            return Ok(out);
        }
        let mut left = self.root_items(a)?;
        let mut right = self.root_items(b)?;
        loop {
            match (left.front(), right.front()) {
                (None, None) => return Ok(out),
                (Some(Item::Tree(_, r1, _)), Some(Item::Tree(_, r2, _))) if r1 == r2 => {
                    left.pop_front();
                    right.pop_front();
                }
                (Some(x), Some(y)) if x.key() == y.key() && x.rank() == y.rank() => {
                    if let (Item::Leaf(e1), Item::Leaf(e2)) = (x, y) {
                        if e1.value != e2.value {
                            out.push(Change {
                                key: e1.key.clone(),
                                old: Some(e1.value.clone()),
                                new: Some(e2.value.clone()),
                            });
                        }
                        left.pop_front();
                        right.pop_front();
                    } else {
                        self.expand(&mut left)?;
                        self.expand(&mut right)?;
                    }
                }
                (Some(x), y)
                    if y.is_none_or(|y| {
                        x.key() < y.key() || (x.key() == y.key() && x.rank() > y.rank())
                    }) =>
                {
                    if let Some(Item::Leaf(e)) = left.front() {
                        out.push(Change {
                            key: e.key.clone(),
                            old: Some(e.value.clone()),
                            new: None,
                        });
                        left.pop_front();
                    } else {
                        self.expand(&mut left)?;
                    }
                }
                _ => {
                    if let Some(Item::Leaf(e)) = right.front() {
                        out.push(Change {
                            key: e.key.clone(),
                            old: None,
                            new: Some(e.value.clone()),
                        });
                        right.pop_front();
                    } else {
                        self.expand(&mut right)?;
                    }
                }
            }
        }
    }

    fn root_items(&self, root: Option<&Ref>) -> Result<VecDeque<Item>, KvError> {
        let mut items = VecDeque::new();
        if let Some(r) = root {
            let node = self.read_node(r)?;
            push_entries(&mut items, node.level, node.entries)?;
        }
        Ok(items)
    }

    /// Replaces the front subtree with its entries.
    fn expand(&self, items: &mut VecDeque<Item>) -> Result<(), KvError> {
        let Some(Item::Tree(key, r, level)) = items.pop_front() else { return Ok(()) };
        let (_, node) = self.read_child(level + 1, &Entry { key, value: r.to_bytes().to_vec() })?;
        let node = std::sync::Arc::unwrap_or_clone(node);
        push_entries(items, node.level, node.entries)
    }
}

fn push_entries(items: &mut VecDeque<Item>, level: u8, entries: Vec<Entry>) -> Result<(), KvError> {
    for e in entries.into_iter().rev() {
        let item = if level == 0 {
            Item::Leaf(e)
        } else {
            let r = child_ref(&e)?;
            Item::Tree(e.key, r, level - 1)
        };
        items.push_front(item);
    }
    Ok(())
}
