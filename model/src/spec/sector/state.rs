//! [`SectorSpec`]'s state and the acknowledged operations that change it.
//!
//! Per key it keeps the *durable* value (as of the last acknowledged flush) and the values
//! written since (unflushed, in order), the version the engine last reported and the versions
//! the key had before, and whether a media fault damaged its record. Every committed multi-key
//! CAS since the last flush is a [`CasGroup`]. The judgments live in `judge.rs`.

use super::outcome::{SectorKey, SectorValue, SectorVersion};
use std::collections::BTreeMap;

/// Stale versions remembered per key at most (enough for a CAS on an old version, SEC-9).
const STALE_VERSIONS_MAX: usize = 8;

/// What the spec knows about one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct KeySpec {
    /// The value as of the last acknowledged flush (SEC-2).
    pub(super) durable: SectorValue,
    /// Values acknowledged since, oldest first.
    pub(super) pending: Vec<SectorValue>,
    /// The version the engine last reported for the current value.
    pub(super) version: Option<SectorVersion>,
    /// Versions this key had before (a CAS expecting one of them must not commit, SEC-9).
    pub(super) stale: Vec<SectorVersion>,
    /// A media fault was injected into the key's record; reads may fail naming it (SEC-6).
    pub(super) damaged: bool,
    /// The fault is on the medium (a flip at rest, outliving power cycles): recovery may report
    /// the key corrupt, and reads fail naming it until it is rewritten (SEC-6, SEC-18).
    pub(super) medium: bool,
    /// The current value is a plain record (unpacked, uncompressed): corruption may target it.
    pub(super) plain: bool,
}

impl KeySpec {
    /// The newest acknowledged value.
    pub(super) fn current(&self) -> &SectorValue {
        self.pending.last().unwrap_or(&self.durable)
    }
}

/// One committed multi-key CAS since the last flush: (key, index in its pending list, value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CasGroup {
    pub(super) members: Vec<(SectorKey, usize, SectorValue)>,
}

/// The executable spec of the sector engine's observable behaviour (`specs/sector.md` SEC-2,
/// SEC-6, SEC-7, SEC-8, SEC-9): what a read may return while running, after a crash and after
/// media faults. Fed every acknowledged operation; judges every observed outcome.
///
/// It never looks inside an engine: only at its public operations' results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SectorSpec {
    pub(super) keys: BTreeMap<SectorKey, KeySpec>,
    pub(super) groups: Vec<CasGroup>,
    /// Every acknowledged operation since the last flush, in order, as the (key, index in the
    /// key's pending list) pairs it set: the prefixes SEC-7 allows when writes land in order.
    pub(super) log: Vec<Vec<(SectorKey, usize)>>,
}

impl SectorSpec {
    /// A spec in which every key in `0..keys` is absent and durable.
    pub fn new(keys: u64) -> SectorSpec {
        SectorSpec {
            keys: (0..keys).map(|k| (k, KeySpec::default())).collect(),
            groups: Vec::new(),
            log: Vec::new(),
        }
    }

    pub(super) fn key(&mut self, k: SectorKey) -> &mut KeySpec {
        self.keys.entry(k).or_default()
    }

    /// The newest acknowledged value of `k`.
    pub fn current(&self, k: SectorKey) -> SectorValue {
        self.keys.get(&k).and_then(|m| m.current().clone())
    }

    /// The value of `k` as of the last acknowledged flush.
    pub fn durable(&self, k: SectorKey) -> SectorValue {
        self.keys.get(&k).and_then(|m| m.durable.clone())
    }

    /// The version the engine last reported for `k`.
    pub fn version(&self, k: SectorKey) -> Option<SectorVersion> {
        self.keys.get(&k).and_then(|m| m.version)
    }

    /// A version `k` had before its current value, if any (`pick` chooses which).
    pub fn stale_version(&self, k: SectorKey, pick: u64) -> Option<SectorVersion> {
        let s = &self.keys.get(&k)?.stale;
        let len = u64::try_from(s.len()).ok().filter(|n| *n > 0)?;
        s.get(usize::try_from(pick % len).ok()?).copied()
    }

    /// Keys whose current value may be the target of an injected payload corruption.
    pub fn plain_keys(&self) -> Vec<SectorKey> {
        self.keys
            .iter()
            .filter(|(_, m)| m.plain && m.current().as_ref().is_some_and(|v| !v.is_empty()))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Number of keys whose newest value is present.
    pub fn present_keys(&self) -> u64 {
        self.keys.values().filter(|m| m.current().is_some()).count() as u64
    }

    /// Length of `k`'s current value (0 if absent).
    pub fn len_of(&self, k: SectorKey) -> usize {
        self.keys.get(&k).and_then(|m| m.current().as_ref().map(Vec::len)).unwrap_or(0)
    }

    /// A media fault now touches `k`'s record (SEC-6: reads of `k` may fail naming it).
    pub fn damage(&mut self, k: SectorKey) {
        self.key(k).damaged = true;
    }

    /// A flip on the medium, at rest, now touches `k`'s record: recovery may find it corrupt
    /// (SEC-18), and reads of `k` may fail naming it until it is rewritten.
    pub fn damage_on_medium(&mut self, k: SectorKey) {
        let m = self.key(k);
        m.damaged = true;
        m.medium = true;
    }

    /// Is `k` damaged by an injected media fault?
    pub fn is_damaged(&self, k: SectorKey) -> bool {
        self.keys.get(&k).is_some_and(|m| m.damaged)
    }

    /// Does a flip on the medium still touch `k`'s record (until a rewrite is flushed)?
    pub fn is_damaged_on_medium(&self, k: SectorKey) -> bool {
        self.keys.get(&k).is_some_and(|m| m.medium)
    }

    pub(super) fn set_version(&mut self, k: SectorKey, v: Option<SectorVersion>) {
        let m = self.key(k);
        if let Some(old) = m.version
            && Some(old) != v
        {
            m.stale.push(old);
            if m.stale.len() > STALE_VERSIONS_MAX {
                m.stale.remove(0);
            }
        }
        // A version becomes current again when the write that replaced it was lost in a crash.
        if let Some(cur) = v {
            m.stale.retain(|s| *s != cur);
        }
        m.version = v;
    }

    /// An acknowledged write (or append, or delete: `value` `None`). `plain`: stored as one
    /// unpacked, uncompressed record.
    pub fn on_write(
        &mut self,
        k: SectorKey,
        value: SectorValue,
        version: Option<SectorVersion>,
        plain: bool,
    ) {
        let at = self.apply_write(k, value, version, plain);
        self.log.push(vec![(k, at)]);
    }

    fn apply_write(
        &mut self,
        k: SectorKey,
        value: SectorValue,
        version: Option<SectorVersion>,
        plain: bool,
    ) -> usize {
        let m = self.key(k);
        m.pending.push(value);
        let at = m.pending.len().saturating_sub(1);
        // A rewrite replaces the damaged record (SEC-6); a crash may still bring the damaged one
        // back until the rewrite is flushed (`medium` stays until then).
        m.damaged = false;
        m.plain = plain;
        self.set_version(k, version);
        at
    }

    /// An acknowledged flush (the `flush` option or `flush()`): everything before is durable
    /// (SEC-2).
    pub fn on_flush(&mut self) {
        for m in self.keys.values_mut() {
            if let Some(v) = m.pending.pop() {
                m.durable = v;
                m.pending.clear();
                m.medium = false; // the damaged record is durably superseded
            }
        }
        self.groups.clear();
        self.log.clear();
    }

    /// An acknowledged, committed multi-key CAS: `members` (key, new value) with the versions
    /// the engine reported, in the same order (SEC-8).
    pub fn on_cas(
        &mut self,
        members: &[(SectorKey, SectorValue)],
        versions: &[Option<SectorVersion>],
    ) {
        let mut group = CasGroup { members: Vec::with_capacity(members.len()) };
        for ((k, v), ver) in members.iter().zip(versions) {
            let idx = self.apply_write(*k, v.clone(), *ver, true);
            group.members.push((*k, idx, v.clone()));
        }
        self.log.push(group.members.iter().map(|(k, idx, _)| (*k, *idx)).collect());
        self.groups.push(group);
    }

    /// The state after the last flush plus the first `n` operations since, key by key (the
    /// keys the spec knows).
    pub fn state_after(&self, n: usize) -> BTreeMap<SectorKey, SectorValue> {
        let mut state: BTreeMap<SectorKey, SectorValue> =
            self.keys.iter().map(|(k, m)| (*k, m.durable.clone())).collect();
        for op in self.log.iter().take(n) {
            for (k, at) in op {
                let v = self.keys.get(k).and_then(|m| m.pending.get(*at)).cloned().flatten();
                state.insert(*k, v);
            }
        }
        state
    }

    /// Operations acknowledged since the last flush.
    pub fn unflushed_ops(&self) -> usize {
        self.log.len()
    }

    /// A version the engine reported by a read (compaction may have moved the record, SEC-10).
    pub fn on_read_version(&mut self, k: SectorKey, version: Option<SectorVersion>) {
        self.set_version(k, version);
    }
}
