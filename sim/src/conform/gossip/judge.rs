//! Judging a gossip run against `cellar-model`'s executable spec (`specs/gossip.md`): every
//! acknowledged write becomes the spec's state right after it (GOS-1), an observer
//! [`GossipSpec`] merges them all (GOS-7, a join), and after convergence every member must
//! present exactly the observer's state of every written key — clock, surviving versions in
//! precedence order (GOS-2, GOS-3 under LWW, GOS-4 under KeepBoth) — and read it as the spec
//! reads it (KV-16).

use crate::conform::gossip::members::{SeenRead, SeenState, SeenVersion, show_value};
use cellar_model::spec::{self, GossipSpec, KeyState, NodeId};
use std::collections::BTreeMap;

/// A value as the spec sees it: `None` is a tombstone.
type V = Option<Vec<u8>>;

/// Most single writes a replayed clock may take (a larger clock is implausible for the run).
const REPLAY_WRITES_MAX: u64 = 1_000_000;

/// The spec's view of every acknowledged write.
pub struct Observer {
    spec: GossipSpec<String, V>,
    lww: bool,
    /// Acknowledged writes.
    pub writes: usize,
}

/// The spec's state right after the write `v` at its writer: `v.clock` replayed as single
/// writes (GOS-1), the writer's last one carrying `v.value`.
fn replay(v: &SeenVersion) -> Result<KeyState<V>, String> {
    let total: u64 = v.clock.iter().map(|(_, k)| *k).sum();
    let own = v.clock.iter().find(|(n, _)| *n == v.writer).map_or(0, |(_, k)| *k);
    if own == 0 || total > REPLAY_WRITES_MAX {
        return Err(format!(
            "GOS-1: write clock {:?} of writer {} is impossible",
            v.clock, v.writer
        ));
    }
    let mut s = KeyState::default();
    for (n, k) in &v.clock {
        let count = if *n == v.writer { k - 1 } else { *k };
        for _ in 0..count {
            s = spec::write(&s, NodeId(*n), None);
        }
    }
    Ok(spec::write(&s, NodeId(v.writer), v.value.clone()))
}

fn seen(s: &KeyState<V>) -> SeenState {
    let clock = |c: &spec::VectorClock| c.entries().map(|(n, k)| (n.0, k)).collect();
    SeenState {
        clock: clock(s.clock()),
        versions: s
            .versions()
            .iter()
            .map(|v| SeenVersion {
                value: v.value.clone(),
                writer: v.writer.0,
                clock: clock(&v.clock),
            })
            .collect(),
    }
}

fn show(v: &V) -> String {
    show_value(v.as_deref())
}

fn show_state(s: Option<&SeenState>) -> String {
    s.map_or_else(|| "no state".to_owned(), ToString::to_string)
}

impl Observer {
    /// An observer under LWW (`lww`) or KeepBoth.
    pub fn new(lww: bool) -> Self {
        let policy =
            if lww { spec::MergePolicy::LastWriteWins } else { spec::MergePolicy::KeepBoth };
        Self { spec: GossipSpec::new(NodeId(u32::MAX), policy), lww, writes: 0 }
    }

    /// Records the acknowledged write of `value` at `key` by `node`, given the key's state the
    /// node presents right after it: the version carrying the key's clock must be that write
    /// (GOS-1: a write supersedes what its node saw).
    pub fn acknowledged(
        &mut self,
        node: u32,
        key: &str,
        value: Option<&[u8]>,
        state: Option<SeenState>,
    ) -> Result<(), String> {
        let want: V = value.map(<[u8]>::to_vec);
        let found = state.as_ref().and_then(|s| s.versions.iter().find(|v| v.clock == s.clock));
        let Some(v) = found.filter(|v| v.writer == node && v.value == want) else {
            return Err(format!(
                "GOS-1 a write supersedes what its node saw: node {node} wrote {} at {key}, then presents {}",
                show(&want),
                show_state(state.as_ref())
            ));
        };
        let after = replay(v)?;
        self.spec.merge_objects(&BTreeMap::from([(key.to_owned(), after)]));
        self.writes += 1;
        Ok(())
    }

    /// The spec's state of `key` (the join of every acknowledged write of it).
    pub fn expected(&self, key: &str) -> Option<SeenState> {
        self.spec.get(&key.to_owned()).map(seen)
    }

    /// Judges member `node`'s final state and read of `key` against the spec.
    pub fn judge(
        &self,
        node: u32,
        key: &str,
        state: Option<&SeenState>,
        read: &SeenRead,
    ) -> Result<(), String> {
        let rule = if self.lww {
            "GOS-3 every node presents the spec's LWW winner of the acknowledged writes"
        } else {
            "GOS-4 every acknowledged write not superseded is retained at every node"
        };
        let want = self.expected(key);
        if state != want.as_ref() {
            return Err(format!(
                "{rule}: node {node} key {key}: {}; the spec's join of the acknowledged writes: {}",
                show_state(state),
                show_state(want.as_ref())
            ));
        }
        let k = key.to_owned();
        let spec_read = self.spec.read(&k);
        let value = spec_read.iter().rev().flatten().next().cloned();
        let siblings: Vec<V> = self
            .spec
            .get(&k)
            .map(|s| s.versions().iter().map(|v| v.value.clone()).collect())
            .unwrap_or_default();
        if read.0 != value || read.1 != siblings {
            return Err(format!(
                "KV-16 a read sees the spec's winner: node {node} key {key}: kv.get answered {} with siblings {:?}, the spec reads {} with siblings {:?}",
                show_value(read.0.as_deref()),
                read.1.iter().map(show).collect::<Vec<_>>(),
                show(&value),
                siblings.iter().map(show).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }
}
