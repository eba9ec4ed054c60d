//! Vector clocks (`specs/gossip.md`, "Data"; wire and tree form in `specs/kv.md` KV-9/KV-10):
//! [`NodeId`], [`ClockOrder`] and [`VectorClock`], the causal history every replicated key state
//! and every snapshot carries.
//!
//! **Why there are two `VectorClock`s.** `cellar_model::spec::VectorClock` is the executable
//! spec's copy and this is the implementation's. The model crate never depends on `cellar`
//! (`docs/architecture.md`, invariants), so its clock is written independently from the text of
//! `specs/gossip.md` and does not share this file's code or its bugs; this one adds what an
//! implementation needs and a spec does not (serde with canonical-form checks, KV-10, and the
//! [`CLOCK_ENTRIES_MAX`] bound). The agreement proptest `sim/tests/kv_spec_agreement.rs`, which
//! depends on both crates, checks that the two agree on the clocks and states of the same
//! histories.
//!
//! Never: store a zero entry (equal clocks must be equal values), or accept a non-canonical clock
//! from bytes (KV-10).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node (replica) id, unique in its gossip group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// How two clocks relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockOrder {
    /// Strictly before.
    Before,
    /// Strictly after.
    After,
    /// Identical.
    Equal,
    /// Neither covers the other.
    Concurrent,
}

/// Most entries a clock may have on the wire or in a tree value.
pub const CLOCK_ENTRIES_MAX: usize = 1024;
/// A vector clock; zero entries are never stored, so equal clocks are equal values.
///
/// One of two on purpose: `cellar_model::spec::VectorClock` is the executable spec's
/// independent copy (the model crate never depends on `cellar`), and
/// `sim/tests/kv_spec_agreement.rs` checks that the two agree (see the module comment).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VectorClock {
    entries: BTreeMap<NodeId, u64>,
}

impl VectorClock {
    /// The zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock from (node, count) pairs; zero counts are dropped, repeated nodes keep the max.
    pub fn from_entries(entries: impl IntoIterator<Item = (NodeId, u64)>) -> Self {
        let mut c = Self::new();
        for (n, v) in entries.into_iter().filter(|(_, v)| *v > 0) {
            let e = c.entries.entry(n).or_insert(0);
            *e = (*e).max(v);
        }
        c
    }

    /// The entry of `node` (0 if absent).
    pub fn get(&self, node: NodeId) -> u64 {
        self.entries.get(&node).copied().unwrap_or(0)
    }

    /// Non-zero entries in node order.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().map(|(n, c)| (*n, *c))
    }

    /// This clock with `node` ticked once (GOS-1).
    #[must_use]
    pub fn incremented(&self, node: NodeId) -> Self {
        let mut next = self.clone();
        let e = next.entries.entry(node).or_insert(0);
        *e = e.saturating_add(1);
        next
    }

    /// Entry-wise maximum.
    #[must_use]
    pub fn join(&self, other: &Self) -> Self {
        Self::from_entries(self.entries().chain(other.entries()))
    }

    /// Every entry of `self` ≤ the same entry of `other`.
    pub fn le(&self, other: &Self) -> bool {
        self.entries().all(|(n, c)| c <= other.get(n))
    }

    /// Causal order of `self` relative to `other`.
    pub fn compare(&self, other: &Self) -> ClockOrder {
        match (self.le(other), other.le(self)) {
            (true, true) => ClockOrder::Equal,
            (true, false) => ClockOrder::Before,
            (false, true) => ClockOrder::After,
            (false, false) => ClockOrder::Concurrent,
        }
    }

    /// Sum of the entries: the first component of LWW precedence.
    pub fn lamport(&self) -> u64 {
        self.entries.values().fold(0, |s, c| s.saturating_add(*c))
    }
}

impl Serialize for VectorClock {
    /// Refuses what `deserialize` refuses (KV-10): a clock of more than [`CLOCK_ENTRIES_MAX`]
    /// entries is never written, so no stored snapshot or key state becomes unreadable.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.entries.len() > CLOCK_ENTRIES_MAX {
            let n = self.entries.len();
            return Err(serde::ser::Error::custom(format!("clock of {n} entries")));
        }
        let pairs: Vec<(u32, u64)> = self.entries().map(|(n, c)| (n.0, c)).collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for VectorClock {
    /// Refuses non-canonical clocks: zero entries, unsorted or repeated nodes, too many entries.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let pairs = Vec::<(u32, u64)>::deserialize(d)?;
        if pairs.len() > CLOCK_ENTRIES_MAX {
            return Err(D::Error::custom(format!("clock of {} entries", pairs.len())));
        }
        if pairs.iter().any(|(_, c)| *c == 0) || pairs.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(D::Error::custom("clock is not canonical"));
        }
        Ok(Self::from_entries(pairs.into_iter().map(|(n, c)| (NodeId(n), c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);

    #[test]
    fn order_join_and_lamport() {
        let a = VectorClock::new().incremented(A);
        let b = VectorClock::new().incremented(B);
        let ab = a.join(&b);
        assert_eq!(a.compare(&ab), ClockOrder::Before);
        assert_eq!(ab.compare(&a), ClockOrder::After);
        assert_eq!(a.compare(&b), ClockOrder::Concurrent);
        assert_eq!(ab.compare(&ab.clone()), ClockOrder::Equal);
        assert_eq!(ab.lamport(), 2);
        assert_eq!(VectorClock::from_entries([(A, 0)]), VectorClock::new(), "no zero entries");
    }

    #[test]
    fn decoding_refuses_non_canonical_clocks_kv10() {
        let ab = VectorClock::from_entries([(A, 5), (B, 1)]);
        let bytes = postcard::to_allocvec(&ab).unwrap();
        assert_eq!(postcard::from_bytes::<VectorClock>(&bytes).unwrap(), ab);
        // A clock with a zero entry, and one with a repeated node, are not canonical.
        assert!(postcard::from_bytes::<VectorClock>(&[1, 5, 0]).is_err());
        assert!(postcard::from_bytes::<VectorClock>(&[2, 5, 1, 5, 1]).is_err());
    }

    /// The entry bound at and one past it, both ways: `serialize` refuses what `deserialize`
    /// refuses, so no stored value holds a clock that cannot be read back.
    #[test]
    fn the_entry_bound_holds_both_ways_at_and_one_past_it_kv10() {
        let pairs = |n: u32| (0..n).map(|i| (i, 1u64)).collect::<Vec<_>>();
        let clock =
            |n: u32| VectorClock::from_entries(pairs(n).into_iter().map(|(i, c)| (NodeId(i), c)));
        let at = clock(CLOCK_ENTRIES_MAX as u32);
        assert_eq!(
            postcard::from_bytes::<VectorClock>(&postcard::to_allocvec(&at).unwrap()).unwrap(),
            at
        );
        assert!(postcard::to_allocvec(&clock(CLOCK_ENTRIES_MAX as u32 + 1)).is_err());
        let past = postcard::to_allocvec(&pairs(CLOCK_ENTRIES_MAX as u32 + 1)).unwrap();
        assert!(postcard::from_bytes::<VectorClock>(&past).is_err());
    }
}
