//! The compactor's choice of victim (`specs/sector.md` §9, SEC-16): which zone the next
//! compaction cycle empties.
//!
//! - **Normal**: the zone with the largest dead share at or past
//!   `compaction_dead_percent_min`.
//! - **Under pressure** (ordinary writes may no longer open a zone, SEC-16): the zone with the
//!   most reclaimable records and sectors, whatever its share; if there is none but tombstones
//!   are kept only because an old zone still holds older Puts, that oldest zone (its values
//!   move with fresh seqs, so after at most one pass over the zones older than the tombstones
//!   they are dead).
//!
//! "Dead" never counts a tombstone that may still hide an older Put in another zone, nor (under
//! pressure) a seal, so the compactor never churns: each cycle it starts under pressure removes
//! a dead record, a cut zone's lost tail, or the oldest Put seq. Never picks the head, a free
//! zone, or a zone holding a key's corrupt current record (SEC-6).

use super::SECTOR_SIZE_BYTES;
use super::device::BlockDevice;
use super::engine::Engine;
use super::format::{PACKED_ALIGN_BYTES, RECORD_HEADER_SIZE_BYTES};
use super::zones::Zone;

/// Packed tombstones (a bare 80-byte header) that share one sector.
const TOMBSTONES_PER_SECTOR: u32 =
    (SECTOR_SIZE_BYTES / RECORD_HEADER_SIZE_BYTES.next_multiple_of(PACKED_ALIGN_BYTES)) as u32;
const _: () = assert!(TOMBSTONES_PER_SECTOR == 51);

/// The two smallest `put_seq_min` of the zones in use, so "the oldest Put in *another* zone" is
/// O(1) per zone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OldestPuts {
    first: (u64, u32),
    second: u64,
}

impl OldestPuts {
    pub(crate) fn of(zones: &[Zone]) -> OldestPuts {
        let mut o = OldestPuts { first: (u64::MAX, u32::MAX), second: u64::MAX };
        for (z, zone) in zones.iter().enumerate().filter(|(_, zone)| zone.epoch != 0) {
            if zone.put_seq_min < o.first.0 {
                o.second = o.first.0;
                o.first = (zone.put_seq_min, z as u32);
            } else if zone.put_seq_min < o.second {
                o.second = zone.put_seq_min;
            }
        }
        o
    }

    /// Smallest Put seq in any zone in use other than `z`.
    fn besides(&self, z: u32) -> u64 {
        if self.first.1 == z { self.second } else { self.first.0 }
    }

    /// May zone `z`'s tombstones still hide a Put elsewhere (so they must be kept)?
    pub(crate) fn blocks(&self, z: u32, zone: &Zone) -> bool {
        zone.tombstones > 0 && self.besides(z) < zone.tomb_seq_max
    }
}

/// Records of `zone` that a compaction would drop: everything not live, except tombstones that
/// may still be needed.
pub(crate) fn reclaimable_records(z: u32, zone: &Zone, oldest: &OldestPuts) -> u32 {
    let dead = zone.records - zone.live.min(zone.records);
    if oldest.blocks(z, zone) { dead.saturating_sub(zone.tombstones) } else { dead }
}

/// Dead share of `zone`'s records, percent (what the normal policy's threshold compares).
pub(crate) fn dead_percent(z: u32, zone: &Zone, oldest: &OldestPuts) -> u8 {
    if zone.records == 0 {
        return 0;
    }
    let dead = u64::from(reclaimable_records(z, zone, oldest));
    (dead * 100 / u64::from(zone.records)) as u8
}

impl<D: BlockDevice> Engine<D> {
    /// The next zone to compact, or `None` (see the module docs).
    pub(crate) fn pick_victim(&self) -> Option<u32> {
        let held: Vec<u32> = self.corrupt.values().filter_map(|(s, _)| self.zone_of(*s)).collect();
        let oldest = OldestPuts::of(&self.zones);
        let eligible = |z: &u32| {
            let zone = &self.zones[*z as usize];
            Some(*z) != self.head && zone.epoch != 0 && zone.records > 0 && !held.contains(z)
        };
        let zones = (0..self.sb.zone_count).filter(eligible);
        if !self.under_pressure() {
            return zones
                .map(|z| (z, dead_percent(z, &self.zones[z as usize], &oldest)))
                .filter(|(_, pct)| *pct >= self.cfg.compaction_dead_percent_min)
                .max_by_key(|(z, pct)| (*pct, std::cmp::Reverse(*z)))
                .map(|(z, _)| z);
        }
        let best = zones
            .map(|z| (z, self.pressure_gain(z, &oldest)))
            .filter(|(_, gain)| *gain > 0)
            .max_by_key(|(z, gain)| (*gain, std::cmp::Reverse(*z)))
            .map(|(z, _)| z);
        best.or_else(|| self.oldest_blocking_zone(&oldest).filter(eligible))
    }

    /// What compacting `z` under pressure gains: dead records other than its seal, the
    /// sectors a cut left unusable after it, and the sectors its kept tombstones spread over
    /// beyond what they need packed.
    fn pressure_gain(&self, z: u32, oldest: &OldestPuts) -> u64 {
        let zone = &self.zones[z as usize];
        let dead = reclaimable_records(z, zone, oldest).saturating_sub(u32::from(zone.sealed));
        let lost_tail =
            if zone.cut { self.sb.zone_sector_count.saturating_sub(zone.used_sectors) } else { 0 };
        let spread = if oldest.blocks(z, zone) {
            zone.tomb_sectors.saturating_sub(zone.tombstones.div_ceil(TOMBSTONES_PER_SECTOR))
        } else {
            0
        };
        u64::from(dead) + u64::from(lost_tail) + u64::from(spread)
    }

    /// The zone with the oldest Put, if tombstones anywhere are kept only because of zones
    /// that old. Not while a revertible write is pending: revert targets keep their seqs when
    /// moved (SEC-12), so moving them would not help.
    fn oldest_blocking_zone(&self, oldest: &OldestPuts) -> Option<u32> {
        if !self.reverts.is_empty() {
            return None;
        }
        let blocked = self
            .zones
            .iter()
            .enumerate()
            .any(|(z, zone)| zone.epoch != 0 && oldest.blocks(z as u32, zone));
        (blocked && oldest.first.0 != u64::MAX).then_some(oldest.first.1)
    }
}
