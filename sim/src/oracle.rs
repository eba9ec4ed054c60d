//! The key/value oracle: the model of acknowledged and flushed operations that the real sector
//! engine is judged against, while running and after every recovery (SEC-2, SEC-6, SEC-7,
//! SEC-8, SEC-9).
//!
//! Per key it keeps the *durable* value (as of the last acknowledged flush) and the values
//! written since (unflushed, in order). While running, a read must return exactly the newest
//! value. After a crash the engine must show, per key, the durable value or one of the later
//! ones (SEC-7: the last flushed state plus some later operations, each whole), and every
//! multi-key CAS since the flush all or nothing (SEC-8). A read may fail only if the simulator
//! injected a media fault that it touched, or the key was damaged by one (fault atlas in
//! `ssd.rs`); it must never return bytes that were not written (SEC-6).
//!
//! Values are unique per write (they start with the write's id), so "which write is this" is a
//! byte comparison. Never looks inside the engine: only its public operations' results.

use cellar::sector::{Key, Record, SectorError, Version};
use std::collections::BTreeMap;

/// A broken promise: the run fails with this.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The rule broken (a spec ID and a short name).
    pub rule: String,
    /// What happened.
    pub detail: String,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: &str, detail: String) -> Violation {
        Violation { rule: rule.to_owned(), detail }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

type Val = Option<Vec<u8>>;

#[derive(Debug, Clone, Default)]
struct KeyModel {
    durable: Val,
    pending: Vec<Val>,
    /// The version the engine last reported for the current value.
    version: Option<Version>,
    /// Versions this key had before (a CAS expecting one of them must not commit, SEC-9).
    stale: Vec<Version>,
    /// A media fault was injected into the key's record; reads may fail naming it.
    damaged: bool,
    /// The current value is a plain record (unpacked, uncompressed): corruption may target it.
    plain: bool,
}

impl KeyModel {
    fn current(&self) -> &Val {
        self.pending.last().unwrap_or(&self.durable)
    }
}

/// One committed multi-key CAS since the last flush: (key, index in its pending list, value).
#[derive(Debug, Clone)]
struct CasGroup {
    members: Vec<(Key, usize, Val)>,
}

/// The model of every key the workload uses.
#[derive(Debug, Default)]
pub struct KvModel {
    keys: BTreeMap<Key, KeyModel>,
    groups: Vec<CasGroup>,
}

/// Short text for a value in reports: its write id and length.
pub fn show(v: &Val) -> String {
    match v {
        None => "absent".into(),
        Some(b) if b.len() >= 8 => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&b[..8]);
            format!("w{}/{}B", u64::from_le_bytes(id), b.len())
        }
        Some(b) => format!("{}B:{}", b.len(), hex::encode(b)),
    }
}

impl KvModel {
    /// A model in which every key in `0..keys` is absent and durable.
    pub fn new(keys: u64) -> KvModel {
        KvModel { keys: (0..keys).map(|k| (k, KeyModel::default())).collect(), groups: Vec::new() }
    }

    fn key(&mut self, k: Key) -> &mut KeyModel {
        self.keys.entry(k).or_default()
    }

    /// The newest value of `k`.
    pub fn current(&self, k: Key) -> Val {
        self.keys.get(&k).and_then(|m| m.current().clone())
    }

    /// The version the engine last reported for `k`.
    pub fn version(&self, k: Key) -> Option<Version> {
        self.keys.get(&k).and_then(|m| m.version)
    }

    /// A version `k` had before its current value, if any.
    pub fn stale_version(&self, k: Key, pick: u64) -> Option<Version> {
        let s = &self.keys.get(&k)?.stale;
        (!s.is_empty()).then(|| s[(pick % s.len() as u64) as usize])
    }

    /// Keys whose current value may be the target of an injected payload corruption.
    pub fn plain_keys(&self) -> Vec<Key> {
        self.keys
            .iter()
            .filter(|(_, m)| m.plain && m.current().as_ref().is_some_and(|v| !v.is_empty()))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Keys whose newest value is present.
    pub fn present_keys(&self) -> u64 {
        self.keys.values().filter(|m| m.current().is_some()).count() as u64
    }

    /// Length of `k`'s current value.
    pub fn len_of(&self, k: Key) -> usize {
        self.keys.get(&k).and_then(|m| m.current().as_ref().map(Vec::len)).unwrap_or(0)
    }

    /// A media fault now touches `k`'s record.
    pub fn damage(&mut self, k: Key) {
        self.key(k).damaged = true;
    }

    /// Is `k` damaged by an injected media fault?
    pub fn is_damaged(&self, k: Key) -> bool {
        self.keys.get(&k).is_some_and(|m| m.damaged)
    }

    fn set_version(&mut self, k: Key, v: Option<Version>) {
        let m = self.key(k);
        if let Some(old) = m.version
            && Some(old) != v
        {
            m.stale.push(old);
            if m.stale.len() > 8 {
                m.stale.remove(0);
            }
        }
        // A version becomes current again when the write that replaced it was lost in a crash.
        if let Some(cur) = v {
            m.stale.retain(|s| *s != cur);
        }
        m.version = v;
    }

    /// An acknowledged write (or append, or delete: `value` `None`).
    pub fn on_write(&mut self, k: Key, value: Val, version: Option<Version>, plain: bool) {
        let m = self.key(k);
        m.pending.push(value);
        m.damaged = false;
        m.plain = plain;
        self.set_version(k, version);
    }

    /// An acknowledged flush (the `flush` option or `flush()`): everything before is durable.
    pub fn on_flush(&mut self) {
        for m in self.keys.values_mut() {
            if let Some(v) = m.pending.pop() {
                m.durable = v;
                m.pending.clear();
            }
        }
        self.groups.clear();
    }

    /// An acknowledged, committed multi-key CAS.
    pub fn on_cas(&mut self, members: &[(Key, Val)], versions: &[Option<Version>]) {
        let mut group = CasGroup { members: Vec::with_capacity(members.len()) };
        for ((k, v), ver) in members.iter().zip(versions) {
            self.on_write(*k, v.clone(), *ver, true);
            let idx = self.key(*k).pending.len() - 1;
            group.members.push((*k, idx, v.clone()));
        }
        self.groups.push(group);
    }

    /// A version the engine reported by a read (compaction may have moved the record, SEC-10).
    pub fn on_read_version(&mut self, k: Key, version: Option<Version>) {
        self.set_version(k, version);
    }

    /// Judges a read of `k` while running. `fault_hit`: the read's I/O met a media fault.
    pub fn check_read(
        &mut self,
        k: Key,
        got: &Result<Option<Record>, SectorError>,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        let want = self.current(k);
        match got {
            Ok(r) => {
                let have = r.as_ref().map(|r| r.value.clone());
                if have != want {
                    return Err(Violation::new(
                        "SEC-6 read returns the newest value",
                        format!(
                            "key {k}: read {} but the model holds {}",
                            show(&have),
                            show(&want)
                        ),
                    ));
                }
                self.on_read_version(k, r.as_ref().map(|r| r.version));
                Ok(())
            }
            Err(e) => self.check_error(k, e, fault_hit),
        }
    }

    /// Is this failed operation on `k` explained by an injected fault?
    pub fn check_error(
        &mut self,
        k: Key,
        e: &SectorError,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        let allowed = match e {
            SectorError::Corrupt { key, .. } => *key == k && (fault_hit || self.is_damaged(k)),
            SectorError::Device(_) => fault_hit,
            _ => false,
        };
        if !allowed {
            return Err(Violation::new(
                "SEC-6 errors only for injected faults",
                format!("key {k}: {e} (fault hit: {fault_hit}, damaged: {})", self.is_damaged(k)),
            ));
        }
        if matches!(e, SectorError::Corrupt { .. }) {
            self.damage(k);
        }
        Ok(())
    }

    /// Judges the engine's state after a recovery against every key's acceptable values
    /// (SEC-7) and every CAS since the last flush (SEC-8), then adopts it as durable.
    pub fn check_recovered(
        &mut self,
        observed: &BTreeMap<Key, Result<Option<Record>, SectorError>>,
    ) -> Result<(), Violation> {
        let mut seen: BTreeMap<Key, Val> = BTreeMap::new();
        for (k, got) in observed {
            let m = self.keys.get(k).cloned().unwrap_or_default();
            let have = match got {
                Ok(r) => r.as_ref().map(|r| r.value.clone()),
                Err(e) => {
                    return Err(Violation::new(
                        "SEC-7 recovery without durable faults reads cleanly",
                        format!("key {k}: {e}"),
                    ));
                }
            };
            if have != m.durable && !m.pending.contains(&have) {
                let acceptable: Vec<String> =
                    std::iter::once(&m.durable).chain(&m.pending).map(show).collect();
                return Err(Violation::new(
                    "SEC-7 nothing acknowledged lost, nothing half applied",
                    format!(
                        "key {k}: recovered {} but only {acceptable:?} are allowed",
                        show(&have)
                    ),
                ));
            }
            seen.insert(*k, have);
        }
        self.check_groups(&seen)?;
        for (k, have) in seen {
            let version = observed
                .get(&k)
                .and_then(|r| r.as_ref().ok())
                .and_then(|r| r.as_ref().map(|r| r.version));
            let m = self.key(k);
            m.durable = have;
            m.pending.clear();
            m.damaged = false;
            m.plain = false;
            self.set_version(k, version);
        }
        self.groups.clear();
        Ok(())
    }

    /// SEC-8: a CAS whose members were not overwritten since shows all its values or none.
    fn check_groups(&self, seen: &BTreeMap<Key, Val>) -> Result<(), Violation> {
        for g in &self.groups {
            let untouched = g
                .members
                .iter()
                .all(|(k, idx, _)| self.keys.get(k).is_some_and(|m| m.pending.len() == idx + 1));
            if !untouched {
                continue;
            }
            let mut applied = Vec::new();
            for (k, idx, new) in &g.members {
                let Some(m) = self.keys.get(k) else { continue };
                // Informative only if no other allowed state of the key looks the same (a
                // deleting member and a key that was absent before cannot tell).
                let ambiguous = m.durable == *new
                    || m.pending.iter().enumerate().any(|(j, v)| j != *idx && v == new);
                if ambiguous {
                    continue;
                }
                applied.push((*k, seen.get(k) == Some(new)));
            }
            if applied.iter().any(|(_, a)| *a) && applied.iter().any(|(_, a)| !*a) {
                return Err(Violation::new(
                    "SEC-8 a multi-key CAS is all or nothing",
                    format!("after recovery, members applied: {applied:?}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &[u8]) -> Result<Option<Record>, SectorError> {
        Ok(Some(Record { value: v.to_vec(), version: Version(1), next: None }))
    }

    #[test]
    fn recovery_must_keep_flushed_values_and_may_drop_unflushed_ones() {
        let mut m = KvModel::new(2);
        m.on_write(0, Some(b"a".to_vec()), Some(Version(1)), true);
        m.on_flush();
        m.on_write(0, Some(b"b".to_vec()), Some(Version(2)), true);
        let ok: BTreeMap<Key, _> = [(0, rec(b"a")), (1, Ok(None))].into_iter().collect();
        assert!(m.check_recovered(&ok).is_ok(), "SEC-7: the unflushed write may vanish");
        let mut m2 = KvModel::new(1);
        m2.on_write(0, Some(b"a".to_vec()), None, true);
        m2.on_flush();
        let lost: BTreeMap<Key, _> = [(0, Ok(None))].into_iter().collect();
        assert!(m2.check_recovered(&lost).is_err(), "SEC-7: an acknowledged flushed write is lost");
    }

    #[test]
    fn a_half_applied_cas_is_caught() {
        let mut m = KvModel::new(2);
        m.on_cas(&[(0, Some(b"x".to_vec())), (1, Some(b"y".to_vec()))], &[None, None]);
        let half: BTreeMap<Key, _> = [(0, rec(b"x")), (1, Ok(None))].into_iter().collect();
        let e = m.check_recovered(&half).unwrap_err();
        assert!(e.rule.starts_with("SEC-8"), "{e}");
    }

    #[test]
    fn errors_need_an_injected_fault() {
        let mut m = KvModel::new(1);
        let err = SectorError::Corrupt { key: 0, detail: "crc".into() };
        assert!(m.check_error(0, &err, false).is_err(), "SEC-6: corruption nobody injected");
        m.damage(0);
        assert!(m.check_error(0, &err, false).is_ok());
        let wrong = SectorError::Corrupt { key: 5, detail: "crc".into() };
        assert!(m.check_error(0, &wrong, true).is_err(), "the error must name the key");
    }
}
