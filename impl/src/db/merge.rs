//! Per-key merges of replicated key states (`specs/gossip.md` GOS-1..GOS-7,
//! `specs/kv.md` KV-9..KV-11), and the merge of two snapshot heads.
//!
//! This is the implementation; `cellar_model::spec::gossip` is the executable spec it must agree
//! with (the agreement proptest lives in `sim/tests/kv_spec_agreement.rs`, which can depend on
//! both crates; `cellar` never depends on `cellar-model`). Every key carries its own
//! [`KeyState`]: the join of the clocks of the writes seen and the versions no seen write
//! supersedes. Merging is a join, so a merge needs no base: the clocks carry the causal history
//! a three-way merge would take from the common ancestor (see `specs/kv.md`, "Merges"). The
//! clocks themselves live in [`crate::db::clock`] and are re-exported here.
//!
//! Never: pick an LWW winner by arrival order (GOS-3), present a causally superseded version
//! (GOS-2), drop a concurrent sibling under KeepBoth (GOS-4).

use crate::db::kv::{Edits, Kv, KvError};
use crate::db::snapshot::{self, Snapshot, SnapshotError};
use crate::storage::refs::Ref;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

pub use crate::db::clock::{CLOCK_ENTRIES_MAX, ClockOrder, NodeId, VectorClock};

/// Most sibling versions a key state may hold (KV-10).
pub const SIBLINGS_MAX: usize = 64;

/// A value as replicated: `None` is a tombstone (a delete is a write of `None`).
pub type Value = Option<Vec<u8>>;

/// One write: its value, its writer, and the key's clock right after it (unique, GOS-1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The value written (`None`: deleted).
    pub value: Value,
    /// Who wrote it.
    pub writer: NodeId,
    /// The key's clock at the writer right after the write.
    pub clock: VectorClock,
}

impl Version {
    /// LWW precedence (GOS-3): (lamport, writer, value), then the clocks. Never arrival order.
    pub fn precedence(&self, other: &Self) -> Ordering {
        self.clock
            .lamport()
            .cmp(&other.clock.lamport())
            .then(self.writer.cmp(&other.writer))
            .then_with(|| self.value.cmp(&other.value))
            .then_with(|| self.clock.cmp(&other.clock))
    }
}

/// How concurrent versions are reconciled.
#[derive(Clone, Copy, Debug)]
pub enum MergePolicy {
    /// Keep the greatest by precedence (GOS-3).
    LastWriteWins,
    /// Keep every concurrent version as a sibling until a write resolves them (GOS-4).
    KeepBoth,
    /// Keep siblings; read them through this deterministic function of the sibling values in
    /// precedence order.
    Custom(fn(&[Value]) -> Value),
}

/// A key's replicated state at one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    clock: VectorClock,
    versions: Vec<Version>,
}

/// Why a stored or received key state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStateError {
    /// postcard refused the bytes (or a clock was not canonical).
    #[error("key state does not decode: {0}")]
    Decode(String),
    /// The state breaks an invariant (KV-10).
    #[error("key state is invalid: {0}")]
    Invalid(&'static str),
}

impl KeyState {
    /// The join of the clocks of every write of this key seen.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Surviving versions in precedence order.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// What a reader sees: LWW → `[winner]`; KeepBoth → every sibling; Custom → `[f(siblings)]`.
    pub fn read(&self, policy: &MergePolicy) -> Vec<Value> {
        let values = || self.versions.iter().map(|v| v.value.clone());
        match (policy, self.versions.last()) {
            (_, None) => Vec::new(),
            (MergePolicy::LastWriteWins, Some(w)) => vec![w.value.clone()],
            (MergePolicy::KeepBoth, Some(_)) => values().collect(),
            (MergePolicy::Custom(f), Some(_)) => vec![f(&values().collect::<Vec<_>>())],
        }
    }

    /// Encodes for a tree value (KV-10). Refuses what [`KeyState::decode`] refuses: a merge
    /// whose result breaks KV-10 (more than [`SIBLINGS_MAX`] concurrent versions, a clock of
    /// more than [`CLOCK_ENTRIES_MAX`] entries) fails with a typed error instead of storing a
    /// value that no node could read again.
    pub fn encode(&self) -> Result<Vec<u8>, KeyStateError> {
        self.validate()?;
        postcard::to_allocvec(self).map_err(|e| KeyStateError::Decode(e.to_string()))
    }

    /// Decodes and validates a tree value or a received state (KV-10).
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyStateError> {
        let (s, rest): (Self, _) =
            postcard::take_from_bytes(bytes).map_err(|e| KeyStateError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(KeyStateError::Decode("trailing bytes".into()));
        }
        s.validate()?;
        Ok(s)
    }

    /// KV-10's rules for a state, in the spec's order after decoding.
    fn validate(&self) -> Result<(), KeyStateError> {
        if self.clock.entries().count() > CLOCK_ENTRIES_MAX {
            return Err(KeyStateError::Invalid("clock has too many entries"));
        }
        if self.versions.is_empty() || self.versions.len() > SIBLINGS_MAX {
            return Err(KeyStateError::Invalid("version count out of range"));
        }
        if self.versions.windows(2).any(|w| w[0].precedence(&w[1]) != Ordering::Less) {
            return Err(KeyStateError::Invalid("versions not in strict precedence order"));
        }
        if self.versions.iter().any(|v| !v.clock.le(&self.clock)) {
            return Err(KeyStateError::Invalid(
                "a version's clock is not covered by the key clock",
            ));
        }
        Ok(())
    }
}

/// A local write (GOS-1): the key's clock ticks at `node`; the new version replaces all held.
pub fn write(state: &KeyState, node: NodeId, value: Value) -> KeyState {
    let clock = state.clock.incremented(node);
    assert!(
        state.versions.iter().all(|v| v.clock.compare(&clock) == ClockOrder::Before),
        "GOS-1: a write supersedes every version its writer holds"
    );
    KeyState { versions: vec![Version { value, writer: node, clock: clock.clone() }], clock }
}

/// Merges two states of one key (GOS-7: commutative, associative, idempotent).
pub fn merge(policy: &MergePolicy, ours: &KeyState, theirs: &KeyState) -> KeyState {
    let clock = ours.clock.join(&theirs.clock);
    let candidates: Vec<&Version> = ours.versions.iter().chain(&theirs.versions).collect();
    // GOS-2: a version survives only if no candidate causally follows it.
    let survives =
        |v: &Version| !candidates.iter().any(|w| v.clock.compare(&w.clock) == ClockOrder::Before);
    let mut versions: Vec<Version> = Vec::with_capacity(candidates.len());
    for v in &candidates {
        if survives(v) && !versions.contains(v) {
            versions.push((*v).clone());
        }
    }
    versions.sort_by(Version::precedence);
    // GOS-4: KeepBoth and Custom keep every survivor, as siblings in precedence order; only LWW
    // narrows them to one.
    if matches!(policy, MergePolicy::LastWriteWins) {
        let winner = if crate::bugs::active("gossip:lww-by-arrival-order") {
            // Planted bug: the version that arrived (theirs) wins over ours whatever its
            // precedence, as long as it survived causality.
            theirs.versions.iter().rev().find(|v| survives(v)).cloned().or_else(|| versions.pop())
        } else {
            versions.pop() // GOS-3: the greatest precedence.
        };
        versions = winner.into_iter().collect();
    }
    debug_assert!(ours.clock.le(&clock) && theirs.clock.le(&clock), "GOS-7: clocks only grow");
    KeyState { clock, versions }
}

/// Errors of snapshot-level merges.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A tree operation failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A snapshot could not be read or written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A tree value is not a valid key state (corruption), or a merge's result would not be
    /// one (KV-10: more than [`SIBLINGS_MAX`] concurrent versions); nothing is stored.
    #[error("key {key:?}: invalid state: {source}")]
    BadState {
        /// The key, lossily as text.
        key: String,
        /// Why.
        source: KeyStateError,
    },
}

/// Decodes a tree value as a key state; a missing value is the empty state.
pub fn state_of(key: &[u8], value: Option<&[u8]>) -> Result<KeyState, MergeError> {
    value.map_or(Ok(KeyState::default()), |v| {
        KeyState::decode(v).map_err(|source| MergeError::BadState {
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        })
    })
}

/// What [`merge_heads`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Ours already contains theirs: head unchanged.
    UpToDate(Ref),
    /// Theirs contains ours (descends from it, or holds the same merged contents): adopt it.
    FastForward(Ref),
    /// A new merge snapshot with both heads as parents.
    Merged(Ref),
}

impl MergeOutcome {
    /// The head after the merge.
    pub fn head(&self) -> Ref {
        match self {
            Self::UpToDate(r) | Self::FastForward(r) | Self::Merged(r) => *r,
        }
    }
}

/// Merges snapshot `theirs` into head `ours` at `node` (KV-11): fast-forward when one descends
/// from the other; otherwise every key that differs between the two roots (a diff that skips
/// equal subtrees) gets the per-key [`merge`]. If the merged contents equal one side, that side
/// is the result (ties broken by (lamport, ref) so two nodes that merge each other's heads pick
/// the same head and gossip settles instead of ping-ponging merge commits).
pub fn merge_heads(
    kv: &Kv<'_>,
    policy: &MergePolicy,
    node: NodeId,
    ours: Option<&Ref>,
    theirs: &Ref,
) -> Result<MergeOutcome, MergeError> {
    let Some(ours) = ours else { return Ok(MergeOutcome::FastForward(*theirs)) };
    if ours == theirs || snapshot::is_ancestor(kv.store(), theirs, ours)? {
        return Ok(MergeOutcome::UpToDate(*ours));
    }
    if snapshot::is_ancestor(kv.store(), ours, theirs)? {
        return Ok(MergeOutcome::FastForward(*theirs));
    }
    let (a, b) = (snapshot::get(kv.store(), ours)?, snapshot::get(kv.store(), theirs)?);
    let mut edits = Edits::new();
    for change in kv.diff(a.root.as_ref(), b.root.as_ref())? {
        let mine = state_of(&change.key, change.old.as_deref())?;
        let merged = merge(policy, &mine, &state_of(&change.key, change.new.as_deref())?);
        if merged != mine {
            let bytes = merged.encode().map_err(|source| MergeError::BadState {
                key: String::from_utf8_lossy(&change.key).into_owned(),
                source,
            })?;
            edits.insert(change.key, Some(bytes));
        }
    }
    let root = kv.edit(a.root.as_ref(), edits)?;
    let (ours_key, theirs_key) = ((a.lamport, *ours), (b.lamport, *theirs));
    match (root == a.root, root == b.root) {
        (true, true) if theirs_key > ours_key => return Ok(MergeOutcome::FastForward(*theirs)),
        (true, _) => return Ok(MergeOutcome::UpToDate(*ours)),
        (false, true) => return Ok(MergeOutcome::FastForward(*theirs)),
        (false, false) => {}
    }
    let snap = Snapshot::merge_of(root, (ours, &a), (theirs, &b), node);
    Ok(MergeOutcome::Merged(snapshot::post(kv, &snap)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);

    fn s(v: u8) -> Value {
        Some(vec![v])
    }

    #[test]
    fn lww_keep_both_custom_gos2_gos3_gos4() {
        let a = write(&KeyState::default(), A, s(10));
        let b = write(&a, B, s(20));
        let c = write(&KeyState::default(), C, s(30));
        let lww = MergePolicy::LastWriteWins;
        assert_eq!(merge(&lww, &a, &b).read(&lww), vec![s(20)], "GOS-2");
        assert_eq!(merge(&lww, &b, &c), merge(&lww, &c, &b), "GOS-3");
        assert_eq!(merge(&lww, &a, &c).read(&lww), vec![s(30)], "higher writer wins a lamport tie");
        let kb = MergePolicy::KeepBoth;
        let m = merge(&kb, &merge(&kb, &a, &c), &b);
        assert_eq!(m.read(&kb), vec![s(30), s(20)], "GOS-4: siblings in precedence order");
        assert_eq!(write(&m, A, None).read(&kb), vec![None], "a write resolves siblings");
        let custom = MergePolicy::Custom(|vs: &[Value]| vs.iter().max().cloned().flatten());
        assert_eq!(merge(&custom, &b, &c).read(&custom), vec![s(30)]);
    }

    /// KV-9: a key state is `clock ‖ count ‖ (value:Option<bytes> ‖ writer ‖ clock) × count`,
    /// every integer a postcard varint.
    #[test]
    fn key_state_layout_is_byte_exact_kv9() {
        let s = write(&KeyState::default(), NodeId(3), s(b'v'));
        assert_eq!(s.encode().unwrap(), [1, 3, 1, 1, 1, 1, b'v', 3, 1, 3, 1]);
        // A tombstone by node 200 (varint c8 01) over it: clock {3: 1, 200: 1}.
        let t = write(&s, NodeId(200), None);
        let clock = [2, 3, 1, 0xc8, 1, 1];
        let version = [&[0, 0xc8, 1][..], &clock].concat();
        assert_eq!(t.encode().unwrap(), [&clock[..], &[1], &version].concat());
        assert_eq!(KeyState::decode(&t.encode().unwrap()).unwrap(), t);
    }

    #[test]
    fn key_state_codec_refuses_invalid_kv10() {
        let a = write(&KeyState::default(), A, s(1));
        let bytes = a.encode().unwrap();
        assert_eq!(KeyState::decode(&bytes).unwrap(), a);
        assert!(KeyState::decode(&[0, 0]).is_err(), "no versions");
        // Invalid states are built with postcard directly: `encode` refuses them (below).
        let raw = |s: &KeyState| postcard::to_allocvec(s).unwrap();
        let bad = KeyState { clock: VectorClock::new(), versions: a.versions.clone() };
        assert!(matches!(KeyState::decode(&raw(&bad)), Err(KeyStateError::Invalid(_))));
        assert_eq!(bad.encode().err(), KeyState::decode(&raw(&bad)).err(), "encode refuses it");
        // Siblings out of precedence order: every case above fails before that check runs.
        let c = write(&KeyState::default(), C, s(3));
        let both = merge(&MergePolicy::KeepBoth, &a, &c);
        assert_eq!(KeyState::decode(&both.encode().unwrap()).unwrap(), both);
        let mut swapped = both.clone();
        swapped.versions.reverse();
        let order = Err(KeyStateError::Invalid("versions not in strict precedence order"));
        assert_eq!(KeyState::decode(&raw(&swapped)), order);
        assert_eq!(swapped.encode().err(), order.err());
    }

    /// `n` pairwise-concurrent writes of one key by nodes 0..n, merged under KeepBoth.
    fn concurrent(n: u32) -> KeyState {
        let kb = MergePolicy::KeepBoth;
        (0..n).fold(KeyState::default(), |m, i| {
            merge(&kb, &m, &write(&KeyState::default(), NodeId(i), s(1)))
        })
    }

    /// KV-10's sibling bound, at and one past it: `SIBLINGS_MAX` concurrent versions encode
    /// and decode; one more is refused by the decoder, and by the encoder too, so a merge that
    /// would keep more fails with a typed error rather than storing a value nobody can read.
    #[test]
    fn the_sibling_bound_holds_at_and_one_past_it_kv10() {
        let at = concurrent(SIBLINGS_MAX as u32);
        assert_eq!(at.versions().len(), SIBLINGS_MAX);
        assert_eq!(KeyState::decode(&at.encode().unwrap()).unwrap(), at);
        let past = concurrent(SIBLINGS_MAX as u32 + 1);
        assert_eq!(past.versions().len(), SIBLINGS_MAX + 1, "GOS-4: merge drops no sibling");
        let count = Err(KeyStateError::Invalid("version count out of range"));
        assert_eq!(KeyState::decode(&postcard::to_allocvec(&past).unwrap()), count);
        assert_eq!(past.encode().err(), count.err());
    }

    /// KV-10's clock bound through the encoder: a key written by more than
    /// `CLOCK_ENTRIES_MAX` nodes in turn (each write supersedes the last) is refused.
    #[test]
    fn the_clock_bound_is_checked_when_encoding_kv10() {
        let chain = |n: u32| (0..n).fold(KeyState::default(), |k, i| write(&k, NodeId(i), s(1)));
        let at = chain(CLOCK_ENTRIES_MAX as u32);
        assert_eq!(KeyState::decode(&at.encode().unwrap()).unwrap(), at);
        let past = chain(CLOCK_ENTRIES_MAX as u32 + 1);
        assert_eq!(past.encode(), Err(KeyStateError::Invalid("clock has too many entries")));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// (node, value; `None` deletes)
        Write(u32, Option<u8>),
        /// (from, to): `to` merges `from`'s state.
        Merge(usize, usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            (0u32..3, prop::option::of(0u8..3)).prop_map(|(n, v)| Op::Write(n, v)),
            (0usize..3, 0usize..3).prop_map(|(from, to)| Op::Merge(from, to)),
        ];
        prop::collection::vec(op, 0..12)
    }

    /// Every state of one key that three nodes pass through while running `ops`.
    fn states(policy: &MergePolicy, ops: &[Op]) -> Vec<KeyState> {
        let mut nodes = vec![KeyState::default(); 3];
        let mut seen = nodes.clone();
        for op in ops {
            match *op {
                Op::Write(n, v) => {
                    let i = n as usize;
                    nodes[i] = write(&nodes[i], NodeId(n), v.map(|v| vec![v]));
                }
                Op::Merge(from, to) => nodes[to] = merge(policy, &nodes[to], &nodes[from]),
            }
            seen.extend(nodes.iter().cloned());
        }
        seen
    }

    proptest! {
        /// GOS-7: over states reachable by writes and merges, `merge` is commutative,
        /// associative and idempotent, and the merged clock covers both inputs.
        #[test]
        fn merge_is_a_join_gos7(
            ops in ops(),
            picks in (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()),
        ) {
            for policy in [MergePolicy::LastWriteWins, MergePolicy::KeepBoth] {
                let pool = states(&policy, &ops);
                let (a, b, c) = (picks.0.get(&pool), picks.1.get(&pool), picks.2.get(&pool));
                let m = |x: &KeyState, y: &KeyState| merge(&policy, x, y);
                prop_assert_eq!(m(a, b), m(b, a), "commutative");
                prop_assert_eq!(m(a, &m(b, c)), m(&m(a, b), c), "associative");
                prop_assert_eq!(&m(a, a), a, "idempotent");
                let ab = m(a, b);
                prop_assert!(a.clock().le(ab.clock()) && b.clock().le(ab.clock()), "covers both");
            }
        }
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn planted_lww_by_arrival_order_breaks_commutativity() {
        let b = write(&write(&KeyState::default(), A, s(10)), B, s(20));
        let c = write(&KeyState::default(), C, s(30));
        let lww = MergePolicy::LastWriteWins;
        assert_eq!(merge(&lww, &c, &b), merge(&lww, &b, &c));
        let _bug = crate::bugs::plant("gossip:lww-by-arrival-order").unwrap();
        assert_ne!(merge(&lww, &c, &b), merge(&lww, &b, &c), "GOS-3 broken by the planted bug");
    }
}
