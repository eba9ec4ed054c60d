//! The compactor's choice of victim (`specs/sector.md` §9, SEC-16): which zone the next
//! compaction cycle empties.
//!
//! - **Normal**: the zone with the largest dead share at or past
//!   `compaction_dead_percent_min`; if none, the zone holding the oldest dead value when that
//!   keeps tombstones elsewhere alive (a few dead values in a mostly live zone can otherwise
//!   keep whole zones of tombstones until the device is full).
//! - **Under pressure** (ordinary writes may no longer open a zone, SEC-16): first a zone that
//!   can be freed without moving anything (no live record, no tombstone still needed), then the
//!   zone with the most to gain, whatever its share.
//!
//! "Dead" never counts a tombstone that may still hide a dead value in another zone, nor
//! (under pressure) a seal, so every cycle started under pressure removes something: a dead
//! record, the lost tail of a zone recovery cut, or tombstones spread over more sectors than
//! they need. Never picks the head, a free zone, a zone holding a key's corrupt current record
//! (SEC-6), or a zone whose compaction met a device error since `open`.

use super::SECTOR_SIZE_BYTES;
use super::device::BlockDevice;
use super::engine::Engine;
use super::format::{PACKED_ALIGN_BYTES, RECORD_HEADER_SIZE_BYTES};
use super::zones::Zone;

/// Packed tombstones (a bare 80-byte header) that share one sector.
const TOMBSTONES_PER_SECTOR: u32 =
    (SECTOR_SIZE_BYTES / RECORD_HEADER_SIZE_BYTES.next_multiple_of(PACKED_ALIGN_BYTES)) as u32;
const _: () = assert!(TOMBSTONES_PER_SECTOR == 51);

/// The two smallest `put_seq_min` among the zones in use that may hold a dead value
/// ([`Engine::may_hide`]), so "may another zone hide something from this tombstone" is O(1)
/// per zone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OldestPuts {
    first: (u64, u32),
    second: u64,
}

impl OldestPuts {
    /// The zones' oldest dead-value seqs (`reverts_pending`: every Put counts, as in
    /// [`Engine::may_hide`]).
    pub(crate) fn of(zones: &[Zone], reverts_pending: bool) -> OldestPuts {
        let mut o = OldestPuts { first: (u64::MAX, u32::MAX), second: u64::MAX };
        let may_hide = |zone: &Zone| zone.puts > zone.live || reverts_pending;
        for (z, zone) in zones.iter().enumerate().filter(|(_, zone)| zone.epoch != 0) {
            if !may_hide(zone) {
                continue;
            }
            if zone.put_seq_min < o.first.0 {
                o.second = o.first.0;
                o.first = (zone.put_seq_min, z as u32);
            } else if zone.put_seq_min < o.second {
                o.second = zone.put_seq_min;
            }
        }
        o
    }

    /// May zone `z`'s tombstones still be needed (another zone may hold a dead value older
    /// than its newest tombstone)?
    pub(crate) fn blocks(&self, z: u32, zone: &Zone) -> bool {
        let besides = if self.first.1 == z { self.second } else { self.first.0 };
        zone.tomb_live > 0 && besides < zone.tomb_seq_max
    }
}

/// Records of `zone` that a compaction would drop: everything not live, except tombstones that
/// may still be needed.
pub(crate) fn reclaimable_records(z: u32, zone: &Zone, oldest: &OldestPuts) -> u32 {
    let dead = zone.records - zone.live.min(zone.records);
    if oldest.blocks(z, zone) { dead.saturating_sub(zone.tomb_live) } else { dead }
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
        let oldest = OldestPuts::of(&self.zones, !self.reverts.is_empty());
        let eligible = |z: &u32| {
            let zone = &self.zones[*z as usize];
            Some(*z) != self.head
                && zone.epoch != 0
                && zone.records > 0
                && !held.contains(z)
                && !self.compact_failed.contains(z)
        };
        let zones = (0..self.sb.zone_count).filter(eligible);
        if !self.under_pressure() {
            let best = zones
                .map(|z| (z, dead_percent(z, &self.zones[z as usize], &oldest)))
                .filter(|(_, pct)| *pct >= self.cfg.compaction_dead_percent_min)
                .max_by_key(|(z, pct)| (*pct, std::cmp::Reverse(*z)))
                .map(|(z, _)| z);
            return best.or_else(|| self.blocker(&oldest).filter(eligible));
        }
        // SEC-16: a zone freed without moves needs no room, so it comes first: after a crash
        // in the middle of a cycle the zone the copies went to is such a zone.
        zones
            .map(|z| {
                let zone = &self.zones[z as usize];
                let no_moves = zone.live == 0 && !oldest.blocks(z, zone);
                (z, no_moves, self.pressure_gain(z, &oldest))
            })
            .filter(|(_, no_moves, gain)| *gain > 0 || *no_moves)
            .max_by_key(|(z, no_moves, gain)| (*no_moves, *gain, std::cmp::Reverse(*z)))
            .map(|(z, _, _)| z)
    }

    /// The zone holding the oldest dead value, if it keeps tombstones elsewhere alive: however
    /// small its dead share, compacting it drops those values and lets the tombstones go
    /// (each such cycle removes a dead record, so this never churns).
    fn blocker(&self, oldest: &OldestPuts) -> Option<u32> {
        let z = oldest.first.1;
        let blocks_any = self
            .zones
            .iter()
            .enumerate()
            .any(|(w, zone)| zone.epoch != 0 && w as u32 != z && oldest.blocks(w as u32, zone));
        (oldest.first.0 != u64::MAX && blocks_any).then_some(z)
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
            zone.tomb_sectors.saturating_sub(zone.tomb_live.div_ceil(TOMBSTONES_PER_SECTOR))
        } else {
            0
        };
        u64::from(dead) + u64::from(lost_tail) + u64::from(spread)
    }
}
