//! The `full` profile's fill/drain cycle and its SEC-16 checks (`specs/sector.md` §5.5).
//!
//! The key/value clients fill the device until the engine has refused
//! [`REFUSALS_TO_DRAIN`] ordinary writes, then delete until no key is left, then fill again.
//! Judged here (the per-operation rule, "a delete is never refused for space", is judged in
//! [`crate::workload`] with `cellar_model::spec::may_refuse_for_space`):
//! - in the fault phase, once the device is drained, writes must be admitted again before
//!   [`REFUSALS_DRAINED_MAX`] per zone have been refused;
//! - at the start of the liveness phase (faults off), every key is deleted — none may be
//!   refused — compaction runs until idle, and the device must take at least
//!   [`REFILL_PERCENT_MIN`] % of its capacity (outside the reserve) in one-sector values again.

use super::{World, lock};
use crate::knobs::ZONE_SECTOR_COUNT;
use crate::oracle::Violation;
use crate::ssd::SimSsd;
use crate::workload::{KvMode, KvTally, RULE_DELETE_REFUSED, value};
use cellar::sector::{
    COMPACTION_RESERVE_ZONES_DEFAULT, CompactProgress, DELETE_RESERVE_ZONES_DEFAULT, Engine,
    SECTOR_SIZE_BYTES, SectorError, WriteOptions,
};

/// Ordinary operations refused while filling before the clients start draining.
pub const REFUSALS_TO_DRAIN: u64 = 6;
/// Refusals per zone tolerated after a drain before writes must be admitted again.
pub const REFUSALS_DRAINED_MAX: u64 = 50;
/// Share of the capacity outside the reserve that writes must fill again after the liveness
/// phase's drain, percent.
pub const REFILL_PERCENT_MIN: u64 = 75;
/// The SEC-16 liveness rule.
pub const RULE_WRITES_COME_BACK: &str = "SEC-16 writes are admitted again once space is freed";

/// Where the fill/drain cycle is.
#[derive(Debug, Clone, Default)]
pub struct FillDrain {
    /// Ordinary operations the engine refused for space, in all.
    pub refused: u64,
    /// Times the device was filled until writes were refused.
    pub fills: u64,
    /// Times it was drained to no key.
    pub drains: u64,
    /// Refused in the current fill phase.
    refused_in_phase: u64,
    /// Accepted writes in the current fill phase.
    written_in_phase: u64,
    /// The current fill phase started on a drained device.
    after_drain: bool,
}

impl World<'_> {
    /// The mode the key/value clients run in now.
    pub(super) fn kv_mode(&self) -> KvMode {
        match (self.knobs.fill_drain, self.draining) {
            (false, _) => KvMode::Mixed,
            (true, false) => KvMode::Fill,
            (true, true) => KvMode::Drain,
        }
    }

    /// After a key/value operation (what it did: `tally`), switches between filling and
    /// draining, and judges whether writes come back after a drain.
    pub(super) fn after_kv(&mut self, tally: KvTally) -> Result<(), Violation> {
        self.faults.limit_writes += tally.at_limit;
        self.faults.limit_refusals += tally.past_limit;
        if !self.knobs.fill_drain {
            return Ok(());
        }
        let fd = &mut self.fill_drain;
        fd.refused += tally.refused;
        if self.draining {
            if self.model.present_keys() == 0 {
                self.draining = false;
                fd.drains += 1;
                fd.refused_in_phase = 0;
                fd.written_in_phase = 0;
                fd.after_drain = true;
                self.trace.event(self.now_us, format_args!("--- drained: filling again ---"));
            }
            return Ok(());
        }
        fd.refused_in_phase += tally.refused;
        fd.written_in_phase += tally.stored;
        if fd.after_drain
            && fd.written_in_phase == 0
            && fd.refused_in_phase > REFUSALS_DRAINED_MAX * self.knobs.zone_count
        {
            return Err(Violation::new(
                RULE_WRITES_COME_BACK,
                format!("{} writes refused after a drain, none accepted", fd.refused_in_phase),
            ));
        }
        if fd.written_in_phase > 0 && fd.refused_in_phase >= REFUSALS_TO_DRAIN {
            self.draining = true;
            fd.fills += 1;
            self.trace.event(self.now_us, format_args!("--- full: draining ---"));
        }
        Ok(())
    }

    /// The liveness phase's SEC-16 check (see the module docs).
    pub(super) fn space_check(&mut self) -> Result<(), Violation> {
        let Some(engine) = self.engine.clone() else { return Ok(()) };
        let mut e = lock(&engine);
        for k in 0..self.knobs.kv_keys {
            if self.model.current(k).is_none() && !self.model.is_damaged(k) {
                continue;
            }
            if let Err(err) = e.delete(k, WriteOptions::default()) {
                let st = e.stat();
                let detail = format!("delete {k} after faults: {err}; {st:?}");
                return Err(Violation::new(RULE_DELETE_REFUSED, detail));
            }
            self.model.on_write(k, None, None, false);
        }
        e.flush().map_err(|err| Violation::new("flush", err.to_string()))?;
        self.model.on_flush();
        let steps_max = self.knobs.zone_count * 4 * ZONE_SECTOR_COUNT;
        self.ops += compact_until_idle(&mut e, steps_max)?;
        let reserve = u64::from(COMPACTION_RESERVE_ZONES_DEFAULT + DELETE_RESERVE_ZONES_DEFAULT);
        let capacity = (self.knobs.zone_count - reserve) * (ZONE_SECTOR_COUNT - 1);
        let want = (capacity * REFILL_PERCENT_MIN / 100).min(self.knobs.kv_keys);
        let mut written = 0;
        for k in 0..self.knobs.kv_keys {
            self.uid += 16;
            let v = value(self.uid, SECTOR_SIZE_BYTES - 80);
            // A refused write lets the compactor run (as it does in the background) and is
            // tried once more: the device is full only if that does not help.
            let mut r = e.write(k, &v, WriteOptions::default());
            if matches!(r, Err(SectorError::DeviceFull)) {
                self.ops += compact_until_idle(&mut e, steps_max)?;
                r = e.write(k, &v, WriteOptions::default());
            }
            match r {
                Ok(version) => self.model.on_write(k, Some(v), Some(version), true),
                Err(SectorError::DeviceFull) => break,
                Err(err) => {
                    return Err(Violation::new("writes fail only when full", err.to_string()));
                }
            }
            written += 1;
        }
        e.flush().map_err(|err| Violation::new("flush", err.to_string()))?;
        self.model.on_flush();
        let stat = e.stat();
        drop(e);
        self.trace.event(
            self.now_us,
            format_args!(
                "space check: refilled {written} one-sector values (want {want}), {} free zones",
                stat.free_zones
            ),
        );
        if written < want {
            return Err(Violation::new(
                RULE_WRITES_COME_BACK,
                format!(
                    "after a drain and compaction only {written} of {want} values fit; {stat:?}"
                ),
            ));
        }
        Ok(())
    }
}

/// Runs compaction steps until the compactor is idle or `steps_max` ran; returns the steps.
fn compact_until_idle(e: &mut Engine<SimSsd>, steps_max: u64) -> Result<u64, Violation> {
    for step in 0..steps_max {
        match e.compact_step() {
            Ok(CompactProgress::Idle) => return Ok(step),
            Ok(_) => {}
            Err(err) => {
                return Err(Violation::new(RULE_WRITES_COME_BACK, format!("compaction: {err}")));
            }
        }
    }
    Ok(steps_max)
}
