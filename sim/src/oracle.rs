//! The key/value oracle: a thin adapter that converts the real engine's types (`cellar::sector`)
//! into `cellar-model`'s and asks [`SectorSpec`] — the executable spec of the sector engine's
//! observable behaviour (SEC-2, SEC-6, SEC-7, SEC-8, SEC-9) — whether each outcome is allowed.
//! Every rule lives in the spec (`model/src/spec/sector/`); this file owns none.
//!
//! Values are unique per write (they start with the write's id), so "which write is this" is a
//! byte comparison. Never looks inside the engine: only its public operations' results.

use cellar::sector::{Expect, Key, Record, SectorError, Version};
use cellar_model::spec::{
    SectorExpect, SectorFailure, SectorRead, SectorRecord, SectorSpec, SectorValue,
};
use std::collections::BTreeMap;

pub use cellar_model::spec::{Violation, show};

/// The engine's error in the spec's terms.
pub fn failure(e: &SectorError) -> SectorFailure {
    match e {
        SectorError::Corrupt { key, detail } => {
            SectorFailure::Corrupt { key: *key, detail: detail.clone() }
        }
        SectorError::Device(d) => SectorFailure::Device(d.to_string()),
        other => SectorFailure::Other(other.to_string()),
    }
}

/// The engine's read outcome in the spec's terms.
pub fn read_outcome(got: &Result<Option<Record>, SectorError>) -> SectorRead {
    match got {
        Ok(r) => {
            Ok(r.as_ref().map(|r| SectorRecord { value: r.value.clone(), version: r.version.0 }))
        }
        Err(e) => Err(failure(e)),
    }
}

/// A CAS expectation in the spec's terms.
pub fn expect(e: Expect) -> SectorExpect {
    match e {
        Expect::Any => SectorExpect::Any,
        Expect::Absent => SectorExpect::Absent,
        Expect::Version(v) => SectorExpect::Version(v.0),
    }
}

fn versions(v: &[Option<Version>]) -> Vec<Option<u64>> {
    v.iter().map(|v| v.map(|v| v.0)).collect()
}

/// The spec of every key the workload uses, fed and asked in the engine's types.
#[derive(Debug, Default)]
pub struct KvModel {
    spec: SectorSpec,
}

impl KvModel {
    /// A model in which every key in `0..keys` is absent and durable.
    pub fn new(keys: u64) -> KvModel {
        KvModel { spec: SectorSpec::new(keys) }
    }

    /// The spec itself, for queries.
    pub fn spec(&self) -> &SectorSpec {
        &self.spec
    }

    /// The newest value of `k`.
    pub fn current(&self, k: Key) -> SectorValue {
        self.spec.current(k)
    }

    /// The version the engine last reported for `k`.
    pub fn version(&self, k: Key) -> Option<Version> {
        self.spec.version(k).map(Version)
    }

    /// A version `k` had before its current value, if any.
    pub fn stale_version(&self, k: Key, pick: u64) -> Option<Version> {
        self.spec.stale_version(k, pick).map(Version)
    }

    /// Keys whose current value may be the target of an injected payload corruption.
    pub fn plain_keys(&self) -> Vec<Key> {
        self.spec.plain_keys()
    }

    /// Keys whose newest value is present.
    pub fn present_keys(&self) -> u64 {
        self.spec.present_keys()
    }

    /// Length of `k`'s current value.
    pub fn len_of(&self, k: Key) -> usize {
        self.spec.len_of(k)
    }

    /// A media fault now touches `k`'s record.
    pub fn damage(&mut self, k: Key) {
        self.spec.damage(k);
    }

    /// A flip on the medium, at rest, now touches `k`'s record (SEC-18).
    pub fn damage_on_medium(&mut self, k: Key) {
        self.spec.damage_on_medium(k);
    }

    /// Is `k` damaged by an injected media fault?
    pub fn is_damaged(&self, k: Key) -> bool {
        self.spec.is_damaged(k)
    }

    /// Does a flip on the medium still touch `k`'s record?
    pub fn is_damaged_on_medium(&self, k: Key) -> bool {
        self.spec.is_damaged_on_medium(k)
    }

    /// An acknowledged write (or append, or delete: `value` `None`).
    pub fn on_write(&mut self, k: Key, value: SectorValue, version: Option<Version>, plain: bool) {
        self.spec.on_write(k, value, version.map(|v| v.0), plain);
    }

    /// An acknowledged flush (the `flush` option or `flush()`): everything before is durable.
    pub fn on_flush(&mut self) {
        self.spec.on_flush();
    }

    /// An acknowledged, committed multi-key CAS.
    pub fn on_cas(&mut self, members: &[(Key, SectorValue)], v: &[Option<Version>]) {
        self.spec.on_cas(members, &versions(v));
    }

    /// A version the engine reported by a read (compaction may have moved the record, SEC-10).
    pub fn on_read_version(&mut self, k: Key, version: Option<Version>) {
        self.spec.on_read_version(k, version.map(|v| v.0));
    }

    /// Judges a read of `k` while running. `fault_hit`: the read's I/O met a media fault.
    pub fn check_read(
        &mut self,
        k: Key,
        got: &Result<Option<Record>, SectorError>,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        self.spec.check_read(k, &read_outcome(got), fault_hit)
    }

    /// Judges a read of `k` given in the spec's terms (a read through the sector protocol,
    /// whose wire types are not the engine's).
    pub fn check_read_spec(
        &mut self,
        k: Key,
        got: &SectorRead,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        self.spec.check_read(k, got, fault_hit)
    }

    /// Is this failed operation on `k` explained by an injected fault?
    pub fn check_error(
        &mut self,
        k: Key,
        e: &SectorError,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        self.spec.check_error(k, &failure(e), fault_hit)
    }

    /// Judges `read_range(start..=end)`'s result (or failure).
    pub fn check_range(
        &mut self,
        start: Key,
        end: Key,
        got: &Result<Vec<(Key, Record)>, SectorError>,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        match got {
            Ok(recs) => {
                let recs: Vec<(Key, Vec<u8>)> =
                    recs.iter().map(|(k, r)| (*k, r.value.clone())).collect();
                self.spec.check_range(start, end, &recs)
            }
            Err(e) => self.spec.check_range_error(start, end, &failure(e), fault_hit),
        }
    }

    /// Judges `delete(k)` answering `present`.
    pub fn check_delete(&self, k: Key, present: bool) -> Result<(), Violation> {
        self.spec.check_delete(k, present)
    }

    /// Judges `verify(k)` answering `present`.
    pub fn check_verify(&self, k: Key, present: bool) -> Result<(), Violation> {
        self.spec.check_verify(k, present)
    }

    /// Judges a committed CAS: (key, expectation, the expectation is a stale version).
    pub fn check_cas_committed(&self, members: &[(Key, Expect, bool)]) -> Result<(), Violation> {
        let m: Vec<_> = members.iter().map(|(k, e, s)| (*k, expect(*e), *s)).collect();
        self.spec.check_cas_committed(&m)
    }

    /// Judges a CAS mismatch at `index` reporting `current`.
    pub fn check_cas_mismatch(
        &mut self,
        members: &[(Key, Expect)],
        index: usize,
        current: Option<Version>,
    ) -> Result<(), Violation> {
        let m: Vec<_> = members.iter().map(|(k, e)| (*k, expect(*e))).collect();
        self.spec.check_cas_mismatch(&m, index, current.map(|v| v.0))
    }

    /// Judges the engine's state after a recovery (SEC-7, SEC-8), then adopts it as durable.
    pub fn check_recovered(
        &mut self,
        observed: &BTreeMap<Key, Result<Option<Record>, SectorError>>,
    ) -> Result<(), Violation> {
        let observed: BTreeMap<Key, SectorRead> =
            observed.iter().map(|(k, r)| (*k, read_outcome(r))).collect();
        self.spec.check_recovered(&observed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapter_converts_engine_types_faithfully() {
        let mut m = KvModel::new(2);
        m.on_write(0, Some(b"a".to_vec()), Some(Version(1)), true);
        m.on_flush();
        let lost: BTreeMap<Key, _> = [(0, Ok(None)), (1, Ok(None))].into_iter().collect();
        assert!(m.check_recovered(&lost).is_err(), "SEC-7: a flushed write is lost");
        let err = SectorError::Corrupt { key: 0, detail: "crc".into() };
        assert!(m.check_error(0, &err, false).is_err(), "SEC-6: corruption nobody injected");
        assert!(m.check_error(0, &err, true).is_ok());
        assert!(m.is_damaged(0));
        assert_eq!(expect(Expect::Version(Version(9))), SectorExpect::Version(9));
    }
}
