//! [`SectorSpec`]'s judgments: is this observed outcome one the spec allows?
//!
//! While running, a read must return exactly the newest acknowledged value (SEC-6). After a
//! crash, every key must show its durable value or one of the later ones, each whole (SEC-7),
//! and every multi-key CAS since the last flush all or nothing (SEC-8). An operation may fail
//! only if a media fault it touched, or one that damaged the key, explains it, and a corrupt
//! record must be reported under its own key: never bytes that were not written (SEC-6).

use super::outcome::{
    SectorExpect, SectorFailure, SectorKey, SectorRead, SectorValue, SectorVersion, Violation, show,
};
use super::state::SectorSpec;
use std::collections::BTreeMap;

/// Rule: a read returns the newest value (SEC-6).
pub const RULE_READ: &str = "SEC-6 read returns the newest value";
/// Rule: errors only for injected faults (SEC-6).
pub const RULE_ERRORS: &str = "SEC-6 errors only for injected faults";
/// Rule: `read_range` returns the newest values (SEC-6).
pub const RULE_RANGE: &str = "SEC-6 read_range returns the newest values";
/// Rule: nothing acknowledged lost, nothing half applied (SEC-7).
pub const RULE_RECOVERED: &str = "SEC-7 nothing acknowledged lost, nothing half applied";
/// Rule: recovery without durable faults reads cleanly (SEC-7).
pub const RULE_RECOVERED_CLEAN: &str = "SEC-7 recovery without durable faults reads cleanly";
/// Rule: writes that landed in order recover a prefix of them (SEC-7).
pub const RULE_RECOVERED_PREFIX: &str =
    "SEC-7 writes landed in order recover the state after a prefix of them";
/// Rule: a multi-key CAS is all or nothing (SEC-8).
pub const RULE_CAS_ATOMIC: &str = "SEC-8 a multi-key CAS is all or nothing";
/// Rule: a CAS commits only if every expectation holds (SEC-8, SEC-9).
pub const RULE_CAS_COMMIT: &str = "SEC-8/SEC-9 a CAS commits only if every expectation holds";
/// Rule: a CAS fails only on a false expectation (SEC-8).
pub const RULE_CAS_MISMATCH: &str = "SEC-8 a CAS fails only on a false expectation";

impl SectorSpec {
    /// Judges a read of `k` while running. `fault_hit`: the read's I/O met a media fault.
    ///
    /// # Errors
    /// [`RULE_READ`] for any value but the newest; see [`SectorSpec::check_error`].
    pub fn check_read(
        &mut self,
        k: SectorKey,
        got: &SectorRead,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        let want = self.current(k);
        match got {
            Ok(r) => {
                let have = r.as_ref().map(|r| r.value.clone());
                if have != want {
                    return Err(Violation::new(
                        RULE_READ,
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

    /// Is this failed operation on `k` explained by an injected fault? A corruption report
    /// must name `k` and needs a fault the operation hit or one that damaged `k`; a device
    /// error needs a fault the operation hit (SEC-6). An allowed corruption marks `k` damaged.
    ///
    /// # Errors
    /// [`RULE_ERRORS`] for an unexplained failure.
    pub fn check_error(
        &mut self,
        k: SectorKey,
        e: &SectorFailure,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        let allowed = match e {
            SectorFailure::Corrupt { key, .. } => *key == k && (fault_hit || self.is_damaged(k)),
            SectorFailure::Device(_) => fault_hit,
            SectorFailure::Other(_) => false,
        };
        if !allowed {
            return Err(Violation::new(
                RULE_ERRORS,
                format!("key {k}: {e} (fault hit: {fault_hit}, damaged: {})", self.is_damaged(k)),
            ));
        }
        if matches!(e, SectorFailure::Corrupt { .. }) {
            self.damage(k);
        }
        Ok(())
    }

    /// Judges `read_range(start..=end)` that returned `got` (ascending keys with values).
    ///
    /// # Errors
    /// [`RULE_RANGE`] for a wrong or missing value; "read_range stays in its span".
    pub fn check_range(
        &self,
        start: SectorKey,
        end: SectorKey,
        got: &[(SectorKey, Vec<u8>)],
    ) -> Result<(), Violation> {
        let mut it = got.iter().peekable();
        for key in start..=end {
            let have = match it.peek() {
                Some((rk, v)) if *rk == key => {
                    it.next();
                    Some(v.clone())
                }
                _ => None,
            };
            let want = self.current(key);
            if have != want {
                return Err(Violation::new(
                    RULE_RANGE,
                    format!("key {key}: got {} want {}", show(&have), show(&want)),
                ));
            }
        }
        if it.next().is_some() {
            return Err(Violation::new("read_range stays in its span", format!("{start}..={end}")));
        }
        Ok(())
    }

    /// Judges a failed `read_range(start..=end)`: the failure is charged to the key it names
    /// if that key is in the span, else to `start` ([`SectorSpec::check_error`]).
    ///
    /// # Errors
    /// [`RULE_ERRORS`] for an unexplained failure.
    pub fn check_range_error(
        &mut self,
        start: SectorKey,
        end: SectorKey,
        e: &SectorFailure,
        fault_hit: bool,
    ) -> Result<(), Violation> {
        let key = match e {
            SectorFailure::Corrupt { key, .. } if (start..=end).contains(key) => *key,
            _ => start,
        };
        self.check_error(key, e, fault_hit)
    }

    /// Judges `delete(k)` answering `present` (a damaged key may answer either way).
    ///
    /// # Errors
    /// "delete reports presence".
    pub fn check_delete(&self, k: SectorKey, present: bool) -> Result<(), Violation> {
        let want = self.current(k).is_some();
        if present != want && !self.is_damaged(k) {
            return Err(Violation::new(
                "delete reports presence",
                format!("delete {k} said present={present}, model {want}"),
            ));
        }
        Ok(())
    }

    /// Judges `verify(k)` answering `present`.
    ///
    /// # Errors
    /// "verify reports presence".
    pub fn check_verify(&self, k: SectorKey, present: bool) -> Result<(), Violation> {
        if present != self.current(k).is_some() {
            return Err(Violation::new(
                "verify reports presence",
                format!("verify {k} -> {present}"),
            ));
        }
        Ok(())
    }

    /// Judges a CAS that committed: every member's expectation must hold. `members`: (key,
    /// expectation, the expectation named a version the key had *before*, which must lose).
    ///
    /// # Errors
    /// [`RULE_CAS_COMMIT`] for a member whose expectation is false.
    pub fn check_cas_committed(
        &self,
        members: &[(SectorKey, SectorExpect, bool)],
    ) -> Result<(), Violation> {
        for (k, expected, stale) in members {
            let ok = match expected {
                SectorExpect::Any => true,
                SectorExpect::Absent => self.current(*k).is_none(),
                SectorExpect::Version(v) => !*stale && self.version(*k) == Some(*v),
            };
            if !ok {
                return Err(Violation::new(
                    RULE_CAS_COMMIT,
                    format!(
                        "key {k} expected {expected:?}, model {} v{:?}",
                        show(&self.current(*k)),
                        self.version(*k)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Judges a CAS that answered "mismatch at member `index`, whose current version is
    /// `current`", and adopts that version. A version expectation may always fail: compaction
    /// moves records and changes versions (SEC-10).
    ///
    /// # Errors
    /// [`RULE_CAS_MISMATCH`] for a member whose expectation held; "cas mismatch names a
    /// member" for an index out of range.
    pub fn check_cas_mismatch(
        &mut self,
        members: &[(SectorKey, SectorExpect)],
        index: usize,
        current: Option<SectorVersion>,
    ) -> Result<(), Violation> {
        let Some((k, expected)) = members.get(index).copied() else {
            return Err(Violation::new("cas mismatch names a member", format!("index {index}")));
        };
        let plausible = match expected {
            SectorExpect::Any => false,
            SectorExpect::Absent => self.current(k).is_some() || self.is_damaged(k),
            SectorExpect::Version(_) => true,
        };
        if !plausible {
            return Err(Violation::new(
                RULE_CAS_MISMATCH,
                format!(
                    "member {index} key {k} expected {expected:?}, model {}",
                    show(&self.current(k))
                ),
            ));
        }
        self.on_read_version(k, current);
        Ok(())
    }

    /// The values SEC-7 allows `k` to show after a crash: its durable value, then each later
    /// acknowledged one.
    pub fn allowed_after_crash(&self, k: SectorKey) -> Vec<SectorValue> {
        let m = self.keys.get(&k).cloned().unwrap_or_default();
        std::iter::once(m.durable).chain(m.pending).collect()
    }

    /// Judges the engine's state after a recovery against every key's acceptable values
    /// (SEC-7) and every CAS since the last flush (SEC-8), then adopts it as durable.
    ///
    /// # Errors
    /// [`RULE_RECOVERED_CLEAN`] for a failed read, [`RULE_RECOVERED`] for a value SEC-7 does
    /// not allow, [`RULE_CAS_ATOMIC`] for a half-applied CAS.
    pub fn check_recovered(
        &mut self,
        observed: &BTreeMap<SectorKey, SectorRead>,
    ) -> Result<(), Violation> {
        let mut seen: BTreeMap<SectorKey, SectorValue> = BTreeMap::new();
        let mut corrupt = Vec::new();
        for (k, got) in observed {
            let have = match got {
                Ok(r) => r.as_ref().map(|r| r.value.clone()),
                // SEC-18: a record flipped on the medium is reported, naming its key.
                Err(SectorFailure::Corrupt { key, .. })
                    if key == k && self.keys.get(k).is_some_and(|m| m.medium) =>
                {
                    corrupt.push(*k);
                    continue;
                }
                Err(e) => {
                    return Err(Violation::new(RULE_RECOVERED_CLEAN, format!("key {k}: {e}")));
                }
            };
            let allowed = self.allowed_after_crash(*k);
            if !allowed.contains(&have) {
                let acceptable: Vec<String> = allowed.iter().map(show).collect();
                return Err(Violation::new(
                    RULE_RECOVERED,
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
            m.medium = false;
            m.plain = false;
            self.set_version(k, version);
        }
        for k in corrupt {
            // Corrupt until a rewrite is flushed (a crash before that brings the damaged record
            // back): reads fail naming the key (SEC-6); writes since the last flush were lost.
            let m = self.key(k);
            m.pending.clear();
            m.damaged = true;
            m.medium = true;
            m.plain = false;
            self.set_version(k, None);
        }
        self.groups.clear();
        self.log.clear();
        Ok(())
    }

    /// Judges a recovery after a crash in which unflushed writes landed in order (dropped from
    /// some point on, or torn at a sector boundary): the state must be exactly the last flushed
    /// state plus a prefix of the operations since (SEC-7) — with `none_landed`, the empty
    /// prefix. Then judges and adopts it as [`SectorSpec::check_recovered`] does.
    ///
    /// # Errors
    /// [`RULE_RECOVERED_PREFIX`]; then as [`SectorSpec::check_recovered`].
    pub fn check_recovered_in_order(
        &mut self,
        observed: &BTreeMap<SectorKey, SectorRead>,
        none_landed: bool,
    ) -> Result<(), Violation> {
        let have: BTreeMap<SectorKey, SectorValue> = observed
            .iter()
            .map(|(k, r)| (*k, r.as_ref().ok().and_then(|r| r.as_ref().map(|r| r.value.clone()))))
            .collect();
        let prefixes = if none_landed { 0 } else { self.unflushed_ops() };
        let matches = (0..=prefixes).any(|n| {
            let state = self.state_after(n);
            have.iter().all(|(k, v)| state.get(k).cloned().flatten() == *v)
        });
        if !matches {
            let shown: Vec<String> = have.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
            return Err(Violation::new(
                RULE_RECOVERED_PREFIX,
                format!(
                    "recovered [{}] is not the flushed state plus a prefix of the {} operations \
                     since (at most {prefixes} may have landed)",
                    shown.join(", "),
                    self.unflushed_ops()
                ),
            ));
        }
        self.check_recovered(observed)
    }

    /// SEC-8: a CAS whose members were not overwritten since shows all its values or none.
    fn check_groups(&self, seen: &BTreeMap<SectorKey, SectorValue>) -> Result<(), Violation> {
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
                let Some(m) = self.keys.get(k).filter(|_| seen.contains_key(k)) else { continue };
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
                    RULE_CAS_ATOMIC,
                    format!("after recovery, members applied: {applied:?}"),
                ));
            }
        }
        Ok(())
    }
}
