//! `GossipSpec`: vector clocks and per-key merges for gossip replication (`specs/gossip.md`,
//! GOS-1..GOS-7).
//!
//! Every node keeps, per key, a [`KeyState`]: the key's vector clock (the join of every write
//! of that key the node has seen) and its *versions* — the writes no other seen write causally
//! supersedes, in precedence order. Nodes gossip by announce → want → objects → merge; merging
//! is a join (commutative, associative, idempotent, GOS-7), so nodes that have seen the same
//! writes hold the same state whatever the order messages arrived in (GOS-3, GOS-5).
//!
//! Merge policies, applied to the versions that survive causality (GOS-2):
//! - [`MergePolicy::LastWriteWins`] keeps one: the greatest by *precedence* =
//!   (lamport, writer, value), where lamport is the sum of the write's clock entries. A write
//!   that causally follows another has a strictly larger sum, so causality always wins; among
//!   concurrent writes every node computes the same winner, never by arrival order (GOS-3).
//! - [`MergePolicy::KeepBoth`] keeps every concurrent version as a sibling until a later local
//!   write (whose clock dominates them all) resolves them (GOS-4).
//! - [`MergePolicy::Custom`] keeps siblings like `KeepBoth` and reads them through a
//!   deterministic user function of the sibling values in precedence order, so the resolved
//!   value is a function of the writes seen, like everything else here.
//!
//! Pure functions only: no I/O, no clock, no randomness.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A node (replica) identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// How two vector clocks relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockOrder {
    /// Strictly before: every entry ≤ and at least one <.
    Before,
    /// Strictly after.
    After,
    /// Identical.
    Equal,
    /// Neither covers the other.
    Concurrent,
}

/// A vector clock: per node, how many of that node's writes have been seen. Zero entries are
/// never stored, so equal clocks are equal values.
///
/// **Why there are two `VectorClock`s.** The implementation has its own,
/// `cellar::db::clock::VectorClock`. This crate never depends on `cellar`: it is an independent
/// executable spec, written from `specs/gossip.md` alone, so a bug in the implementation's clock
/// cannot hide by being shared with the spec. The agreement proptest
/// `sim/tests/kv_spec_agreement.rs` (in `cellar-sim`, which depends on both crates) feeds the
/// same histories to both and checks that every clock and key state agrees.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VectorClock {
    entries: BTreeMap<NodeId, u64>,
}

impl VectorClock {
    /// The zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock from (node, count) pairs; zero counts are dropped.
    pub fn from_entries(entries: impl IntoIterator<Item = (NodeId, u64)>) -> Self {
        Self { entries: entries.into_iter().filter(|(_, c)| *c > 0).collect() }
    }

    /// The entry of `node` (zero if absent).
    pub fn get(&self, node: NodeId) -> u64 {
        self.entries.get(&node).copied().unwrap_or(0)
    }

    /// Non-zero entries in node order.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().map(|(n, c)| (*n, *c))
    }

    /// This clock with `node`'s entry incremented (GOS-1).
    #[must_use]
    pub fn incremented(&self, node: NodeId) -> Self {
        let mut next = self.clone();
        let entry = next.entries.entry(node).or_insert(0);
        *entry = entry.saturating_add(1);
        next
    }

    /// The entry-wise maximum.
    #[must_use]
    pub fn join(&self, other: &Self) -> Self {
        let mut joined = self.clone();
        for (node, count) in &other.entries {
            let entry = joined.entries.entry(*node).or_insert(0);
            *entry = (*entry).max(*count);
        }
        joined
    }

    /// True if every entry of `self` is ≤ the same entry of `other`.
    pub fn is_covered_by(&self, other: &Self) -> bool {
        self.entries.iter().all(|(node, count)| *count <= other.get(*node))
    }

    /// The causal order of `self` relative to `other`.
    pub fn compare(&self, other: &Self) -> ClockOrder {
        match (self.is_covered_by(other), other.is_covered_by(self)) {
            (true, true) => ClockOrder::Equal,
            (true, false) => ClockOrder::Before,
            (false, true) => ClockOrder::After,
            (false, false) => ClockOrder::Concurrent,
        }
    }

    /// The sum of all entries: the write's lamport number, the first component of LWW
    /// precedence. Strictly monotone in causal order.
    pub fn lamport(&self) -> u64 {
        self.entries.values().fold(0u64, |sum, c| sum.saturating_add(*c))
    }
}

/// One write of a key: its value, its writer and the key's clock right after the write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version<V> {
    /// The value written.
    pub value: V,
    /// The node that wrote it.
    pub writer: NodeId,
    /// The key's clock at the writer right after the write; unique per write (GOS-1).
    pub clock: VectorClock,
}

impl<V: Ord> Version<V> {
    /// LWW precedence (GOS-3): by lamport sum, then writer id, then value. Total and the same
    /// at every node; never depends on arrival order.
    pub fn precedence(&self, other: &Self) -> Ordering {
        (self.clock.lamport(), self.writer, &self.value)
            .cmp(&(other.clock.lamport(), other.writer, &other.value))
            .then_with(|| self.clock.cmp(&other.clock))
    }
}

impl<V: Ord> PartialOrd for Version<V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<V: Ord> Ord for Version<V> {
    /// Precedence order (see [`Version::precedence`]).
    fn cmp(&self, other: &Self) -> Ordering {
        self.precedence(other)
    }
}

/// How concurrent versions of a key are reconciled. (Not `PartialEq`: function pointers have
/// no stable identity to compare.)
#[derive(Clone, Copy, Debug)]
pub enum MergePolicy<V> {
    /// Keep the version with the greatest precedence (GOS-3).
    LastWriteWins,
    /// Keep every concurrent version as a sibling (GOS-4).
    KeepBoth,
    /// Keep siblings; read them through this deterministic function of the sibling values in
    /// precedence order. It must not depend on anything but its argument.
    Custom(fn(&[V]) -> V),
}

/// A key's replicated state at one node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyState<V> {
    clock: VectorClock,
    versions: Vec<Version<V>>,
}

impl<V: Ord> PartialOrd for KeyState<V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<V: Ord> Ord for KeyState<V> {
    /// An arbitrary total order (clock, then versions) so states can live in ordered sets.
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.clock, &self.versions).cmp(&(&other.clock, &other.versions))
    }
}

impl<V> Default for KeyState<V> {
    fn default() -> Self {
        Self { clock: VectorClock::new(), versions: Vec::new() }
    }
}

impl<V: Ord + Clone> KeyState<V> {
    /// The key's clock: the join of every write of it this node has seen.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// The surviving versions in precedence order (one under LWW; siblings otherwise).
    pub fn versions(&self) -> &[Version<V>] {
        &self.versions
    }

    /// What a reader sees: LWW → the winner; KeepBoth → every sibling in precedence order;
    /// Custom → the user function of the siblings. Empty if never written.
    pub fn read(&self, policy: &MergePolicy<V>) -> Vec<V> {
        match (policy, self.versions.last()) {
            (_, None) => Vec::new(),
            (MergePolicy::LastWriteWins, Some(winner)) => vec![winner.value.clone()],
            (MergePolicy::KeepBoth, Some(_)) => {
                self.versions.iter().map(|v| v.value.clone()).collect()
            }
            (MergePolicy::Custom(resolve), Some(_)) => {
                let values: Vec<V> = self.versions.iter().map(|v| v.value.clone()).collect();
                vec![resolve(&values)]
            }
        }
    }

    /// The same clock with other versions (the models' mutants build broken merges with it).
    pub(crate) fn with_versions(mut self, versions: Vec<Version<V>>) -> Self {
        self.versions = versions;
        self
    }

    /// True if `version` is present or superseded by a present version (GOS-4's test).
    pub fn retains(&self, version: &Version<V>) -> bool {
        self.versions.iter().any(|v| {
            matches!(version.clock.compare(&v.clock), ClockOrder::Before | ClockOrder::Equal)
        })
    }
}

/// A local write of `value` at `node` (GOS-1): the key's clock gains one `node` entry and the
/// new version, whose clock dominates every version held, replaces them all.
pub fn write<V: Ord + Clone>(state: &KeyState<V>, node: NodeId, value: V) -> KeyState<V> {
    let clock = state.clock.incremented(node);
    debug_assert!(state.versions.iter().all(|v| v.clock.compare(&clock) == ClockOrder::Before));
    let version = Version { value, writer: node, clock: clock.clone() };
    KeyState { clock, versions: vec![version] }
}

/// Merges two states of one key (GOS-7: a join — commutative, associative, idempotent).
///
/// Clocks join; a version survives unless another seen version causally follows it (GOS-2);
/// under LWW only the survivor with the greatest precedence remains (GOS-3).
pub fn merge<V: Ord + Clone>(
    policy: &MergePolicy<V>,
    ours: &KeyState<V>,
    theirs: &KeyState<V>,
) -> KeyState<V> {
    let clock = ours.clock.join(&theirs.clock);
    let all: Vec<&Version<V>> = ours.versions.iter().chain(theirs.versions.iter()).collect();
    let mut versions: Vec<Version<V>> = all
        .iter()
        .filter(|v| !all.iter().any(|w| v.clock.compare(&w.clock) == ClockOrder::Before))
        .map(|v| (*v).clone())
        .collect();
    versions.sort();
    versions.dedup();
    if matches!(policy, MergePolicy::LastWriteWins) {
        versions.drain(..versions.len().saturating_sub(1));
    }
    debug_assert!(
        ours.clock.is_covered_by(&clock) && theirs.clock.is_covered_by(&clock),
        "GOS-7: clocks only grow"
    );
    KeyState { clock, versions }
}

/// One node's replicated map: key → [`KeyState`], under one merge policy.
#[derive(Clone, Debug)]
pub struct GossipSpec<K, V> {
    node: NodeId,
    policy: MergePolicy<V>,
    keys: BTreeMap<K, KeyState<V>>,
}

impl<K: Ord + Clone, V: Ord + Clone> GossipSpec<K, V> {
    /// An empty replica.
    pub fn new(node: NodeId, policy: MergePolicy<V>) -> Self {
        Self { node, policy, keys: BTreeMap::new() }
    }

    /// This replica's node id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The key's state, if it was ever written or merged.
    pub fn get(&self, key: &K) -> Option<&KeyState<V>> {
        self.keys.get(key)
    }

    /// What a reader of `key` sees (see [`KeyState::read`]).
    pub fn read(&self, key: &K) -> Vec<V> {
        self.keys.get(key).map(|s| s.read(&self.policy)).unwrap_or_default()
    }

    /// A local write (GOS-1).
    pub fn write(&mut self, key: K, value: V) {
        let state = self.keys.entry(key).or_default();
        *state = write(state, self.node, value);
    }

    /// The announce digest: per key, its clock (GOS-6).
    pub fn digest(&self) -> BTreeMap<K, VectorClock> {
        self.keys.iter().map(|(k, s)| (k.clone(), s.clock.clone())).collect()
    }

    /// The keys to ask for after an announce: those whose announced clock is not covered by
    /// ours, i.e. the announcer has seen a write we have not (GOS-6).
    pub fn wants(&self, digest: &BTreeMap<K, VectorClock>) -> Vec<K> {
        let zero = VectorClock::new();
        digest
            .iter()
            .filter(|(k, clock)| {
                !clock.is_covered_by(self.keys.get(*k).map_or(&zero, |s| &s.clock))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The objects answering a want: the full state of each wanted key we hold.
    pub fn objects(&self, wanted: &[K]) -> BTreeMap<K, KeyState<V>> {
        wanted.iter().filter_map(|k| self.keys.get(k).map(|s| (k.clone(), s.clone()))).collect()
    }

    /// Merges received objects key by key (GOS-7).
    pub fn merge_objects(&mut self, objects: &BTreeMap<K, KeyState<V>>) {
        for (key, theirs) in objects {
            let state = self.keys.entry(key.clone()).or_default();
            *state = merge(&self.policy, state, theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);

    #[test]
    fn clock_order() {
        let a = VectorClock::new().incremented(A);
        let ab = a.incremented(B);
        let c = VectorClock::new().incremented(C);
        assert_eq!(a.compare(&ab), ClockOrder::Before);
        assert_eq!(ab.compare(&a), ClockOrder::After);
        assert_eq!(a.compare(&a.clone()), ClockOrder::Equal);
        assert_eq!(a.compare(&c), ClockOrder::Concurrent);
        assert_eq!(a.join(&c), VectorClock::from_entries([(A, 1), (C, 1), (B, 0)]));
        assert_eq!(ab.lamport(), 2);
    }

    fn three_writes() -> [KeyState<u8>; 3] {
        let a = write(&KeyState::default(), A, 10);
        // B saw A's write and overwrote it: causally later.
        let b = write(&a, B, 20);
        // C wrote concurrently with both.
        let c = write(&KeyState::default(), C, 30);
        [a, b, c]
    }

    #[test]
    fn lww_respects_causality_then_precedence_gos2_gos3() {
        let [a, b, c] = three_writes();
        let lww = MergePolicy::LastWriteWins;
        // GOS-2: the causally later write wins, whatever the writer ids and values.
        assert_eq!(merge(&lww, &a, &b).read(&lww), vec![20]);
        // GOS-3: b (lamport 2) beats c (lamport 1) whatever the order of arrival.
        assert_eq!(merge(&lww, &b, &c).read(&lww), vec![20]);
        assert_eq!(merge(&lww, &c, &b), merge(&lww, &b, &c));
        // Equal lamport: the higher writer id wins.
        assert_eq!(merge(&lww, &a, &c).read(&lww), vec![30]);
    }

    #[test]
    fn keep_both_keeps_concurrent_siblings_gos4() {
        let [a, b, c] = three_writes();
        let kb = MergePolicy::KeepBoth;
        let m = merge(&kb, &merge(&kb, &a, &c), &b);
        assert_eq!(m.read(&kb), vec![30, 20], "a is superseded by b; b and c are siblings");
        assert!(m.retains(&a.versions()[0]) && m.retains(&c.versions()[0]));
        // A later local write resolves the siblings.
        let w = write(&m, A, 40);
        assert_eq!(w.read(&kb), vec![40]);
        assert!(w.retains(&b.versions()[0]));
        let custom = MergePolicy::Custom(|vs: &[u8]| vs.iter().copied().max().unwrap_or(0));
        assert_eq!(merge(&custom, &b, &c).read(&custom), vec![30]);
    }

    #[test]
    fn merge_is_a_join_gos7() {
        let [a, b, c] = three_writes();
        for policy in [MergePolicy::LastWriteWins, MergePolicy::KeepBoth] {
            let m = |x: &KeyState<u8>, y: &KeyState<u8>| merge(&policy, x, y);
            for x in [&a, &b, &c] {
                assert_eq!(m(x, x), *x, "idempotent");
                for y in [&a, &b, &c] {
                    assert_eq!(m(x, y), m(y, x), "commutative");
                    for z in [&a, &b, &c] {
                        assert_eq!(m(&m(x, y), z), m(x, &m(y, z)), "associative");
                    }
                }
            }
        }
    }

    /// Found by mutating the spec against its own tests (2026-12-04): the accessors and
    /// orderings the models and the simulator use, each of which a one-line change could
    /// break with every other unit test passing.
    #[test]
    fn accessors_and_orderings_are_exact() {
        let [a, _, c] = three_writes();
        let kb = MergePolicy::KeepBoth;
        let m = merge(&kb, &a, &c);
        assert_eq!(m.clock().entries().collect::<Vec<_>>(), vec![(A, 1), (C, 1)]);
        assert_eq!(m.versions().len(), 2);
        assert!(!a.retains(&c.versions()[0]), "a concurrent version is not retained");
        assert!(m.retains(&a.versions()[0]) && a.retains(&a.versions()[0]));
        assert_eq!(a.partial_cmp(&c), Some(a.cmp(&c)));
        assert!(a < c || c < a, "a total order");
        let swapped = a.clone().with_versions(c.versions().to_vec());
        assert_eq!((swapped.clock(), swapped.versions()), (a.clock(), c.versions()));
    }

    #[test]
    fn announce_want_objects_merge_gos6() {
        let mut n0 = GossipSpec::<&str, u8>::new(A, MergePolicy::LastWriteWins);
        let mut n1 = GossipSpec::<&str, u8>::new(B, MergePolicy::LastWriteWins);
        n0.write("x", 1);
        n1.write("y", 2);
        let wants = n1.wants(&n0.digest());
        assert_eq!(wants, vec!["x"]);
        assert!(n1.get(&"x").is_none() && n1.get(&"y").is_some_and(|s| s.versions().len() == 1));
        n1.merge_objects(&n0.objects(&wants));
        assert_eq!(n1.read(&"x"), vec![1]);
        assert!(n1.wants(&n0.digest()).is_empty(), "nothing more to want");
        assert_eq!(n0.wants(&n1.digest()), vec!["y"]);
    }
}
