//! Zone placement and accounting (`specs/sector.md` §3, §5.1, §5.5, §9): where the next record
//! goes (the head zone, or the lowest free zone opened with a fresh epoch), sealing the head,
//! the log position (epoch, sector), each zone's record and live counts, and the space reserve.
//!
//! Enforces SEC-4 (a zone's header is durable before any record of its epoch is written; epochs
//! are never reused), SEC-7 (a sealed zone's tail is never read), SEC-13 (a zone's live count
//! is exactly the index entries and revert targets pointing into it) and SEC-16 (the reserve:
//! ordinary writes leave `C + D` zones free, deletes leave `C`, only the compactor takes the
//! last ones; a delete that finds no room reclaims it by running compaction steps).
//!
//! Never hands out an epoch twice, never places a record across two zones, never lets an
//! ordinary write into the reserve.

use super::compact::CompactProgress;
use super::device::BlockDevice;
use super::format::{self, Kind, RecordHeader, ZoneHeader};
use super::write::{Batch, lone_header_sector, seal};
use super::{Engine, SectorError};
use crate::bugs;

/// Who asks for room (SEC-16): decides how many free zones must stay behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Writes, appends, CASes with a Put member, `revert`'s rewrite: leave `C + D` zones free.
    Grow,
    /// Deletes and CASes whose members all delete: leave `C` zones free.
    Shrink,
    /// The compactor's moves: may take every free zone.
    Compact,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Zone {
    pub(crate) epoch: u32,
    pub(crate) records: u32,
    pub(crate) live: u32,
    pub(crate) used_sectors: u32,
    /// Put records written into the zone (live or dead).
    pub(crate) puts: u32,
    /// Smallest seq of a Put written into the zone (`u64::MAX`: none). While the zone holds a
    /// dead Put, a tombstone with a larger seq elsewhere may still hide it (§9).
    pub(crate) put_seq_min: u64,
    /// Current tombstones in the zone: the side map `Engine::tombs` points here. Like `live`
    /// for values: copies a crashed compaction left behind and tombstones superseded by a later
    /// write are not counted (SEC-13, SEC-16).
    pub(crate) tomb_live: u32,
    /// Largest seq of any tombstone written into the zone.
    pub(crate) tomb_seq_max: u64,
    /// Packing sectors a tombstone opened: a delete flushed on its own leaves its tombstone
    /// alone in a sector, which compaction repacks 51 to a sector (SEC-16).
    pub(crate) tomb_sectors: u32,
    /// The zone ends in a seal record (counted in `records`, never live).
    pub(crate) sealed: bool,
    /// Recovery cut the zone short (§8 step 6): its sectors after the seal stay unusable
    /// until the zone is compacted.
    pub(crate) cut: bool,
}

impl Zone {
    /// A zone just opened with `epoch`: only its header is used.
    pub(crate) fn opened(epoch: u32) -> Zone {
        Zone { epoch, used_sectors: 1, put_seq_min: u64::MAX, ..Zone::default() }
    }

    /// Counts one record written into the zone (SEC-13 keeps `live` apart).
    pub(crate) fn count(&mut self, h: &RecordHeader) {
        if h.kind == Kind::Mark {
            return; // SEC-18: a mark holds nothing and the next record may overwrite it
        }
        self.records += 1;
        match h.kind {
            Kind::Put => {
                self.puts += 1;
                self.put_seq_min = self.put_seq_min.min(h.seq);
            }
            Kind::Tombstone => self.tomb_seq_max = self.tomb_seq_max.max(h.seq),
            Kind::Seal => self.sealed = true,
            Kind::Commit | Kind::Mark => {}
        }
    }
}

/// Log position of `sector` in a zone of epoch `epoch` (spec §3): log order is (epoch, sector).
pub(crate) fn position(epoch: u32, sector: u64) -> u64 {
    (u64::from(epoch) << 32) | (sector & 0xffff_ffff)
}

impl<D: BlockDevice> Engine<D> {
    pub(crate) fn zone_of(&self, sector: u64) -> Option<u32> {
        let rel = sector.checked_sub(format::SUPERBLOCK_COPIES)?;
        let z = rel / u64::from(self.sb.zone_sector_count);
        (z < u64::from(self.sb.zone_count)).then_some(z as u32)
    }

    /// The first sector past the zone holding `sector` (`None` outside every zone).
    pub(crate) fn zone_end(&self, sector: u64) -> Option<u64> {
        self.zone_of(sector).map(|z| self.sb.zone_first_sector(z + 1))
    }

    pub(crate) fn retire(&mut self, sector: u32) {
        if let Some(z) = self.zone_of(u64::from(sector)) {
            let zone = &mut self.zones[z as usize];
            debug_assert!(zone.live > 0, "SEC-13: live count underflow in zone {z}");
            zone.live = zone.live.saturating_sub(1);
        }
    }

    /// `key`'s current record is now the tombstone at `sector` (SEC-16 accounting).
    pub(crate) fn note_tombstone(&mut self, key: super::Key, sector: u64) {
        self.tombs.insert(key, sector as u32);
        if let Some(z) = self.zone_of(sector) {
            self.zones[z as usize].tomb_live += 1;
        }
    }

    /// `key` no longer has a current tombstone (rewritten, deleted again, or the tombstone is
    /// no longer needed); returns where it was.
    pub(crate) fn forget_tombstone(&mut self, key: super::Key) -> Option<u32> {
        let sector = self.tombs.remove(&key)?;
        if let Some(z) = self.zone_of(u64::from(sector)) {
            let zone = &mut self.zones[z as usize];
            debug_assert!(zone.tomb_live > 0, "SEC-13: tombstone count underflow in zone {z}");
            zone.tomb_live = zone.tomb_live.saturating_sub(1);
        }
        Some(sector)
    }

    pub(crate) fn note_record(&mut self, sector: u64, n: u32, h: &RecordHeader) {
        if let Some(z) = self.zone_of(sector) {
            let zone = &mut self.zones[z as usize];
            zone.count(h);
            self.written_mark = position(zone.epoch, sector + u64::from(n));
        }
    }

    pub(crate) fn head_epoch(&self) -> u32 {
        self.head.map_or(0, |z| self.zones[z as usize].epoch)
    }

    /// May `zone` hold a dead value that a tombstone of seq `seq` hides? Only if it holds a
    /// dead Put older than the tombstone; every Put counts while a revertible write is
    /// pending (a revert target is live but older than a revertible delete's tombstone).
    pub(crate) fn may_hide(&self, zone: &Zone, seq: u64) -> bool {
        let dead_puts = zone.puts > zone.live || !self.reverts.is_empty();
        dead_puts && zone.put_seq_min < seq
    }

    /// Free zones (never used since format, or freed by the compactor).
    pub(crate) fn free_zone_count(&self) -> u32 {
        self.zones.iter().filter(|z| z.epoch == 0).count() as u32
    }

    /// SEC-16: free zones that must stay behind when `room` places a record.
    pub(crate) fn reserve_floor(&self, room: Room) -> u32 {
        if bugs::active("sector:no-reserve") {
            return 0;
        }
        let (c, d) = (self.cfg.compaction_reserve_zones, self.cfg.delete_reserve_zones);
        match room {
            Room::Grow => c + d,
            Room::Shrink => c,
            Room::Compact => 0,
        }
    }

    /// Is the device so full that ordinary writes may no longer open a zone (SEC-16)? The
    /// compactor then reclaims whatever it can, not only zones past its dead-share threshold.
    pub(crate) fn under_pressure(&self) -> bool {
        self.free_zones <= self.reserve_floor(Room::Grow)
    }

    /// SEC-16: may `room` place `n` contiguous sectors now? Into the head while at least the
    /// floor is free (below it the compactor is using its reserve and the head is its own),
    /// into a fresh zone only if one more than the floor is free.
    pub(crate) fn has_room(&self, n: u32, room: Room) -> bool {
        let floor = self.reserve_floor(room);
        let in_head = self.head.is_some() && self.head_next + n <= self.data_end();
        self.free_zones >= floor && (in_head || self.free_zones > floor)
    }

    /// SEC-18: records end before a zone's last sector, which is kept for the zone's seal or
    /// the mark of a flush that filled the rest, so every flush can be witnessed in its zone.
    pub(crate) fn data_end(&self) -> u32 {
        self.sb.zone_sector_count - 1
    }

    /// SEC-16: a delete or delete-only CAS that finds no room runs compaction steps (pressure
    /// mode, §9) until it has room, the compactor finds nothing left to reclaim, or a bound of
    /// steps enough for one pass over every zone ran out. Runs before the operation takes its
    /// seqs, so a record the compactor moves never outranks the operation's own records.
    pub(crate) fn reclaim(&mut self, n: u32, room: Room) -> Result<(), SectorError> {
        if bugs::active("sector:no-reserve") {
            return Ok(());
        }
        let zone_data_sectors = u64::from(self.sb.zone_sector_count - 1);
        let steps_per_zone =
            2 * zone_data_sectors.div_ceil(u64::from(self.cfg.compaction_step_sectors_max)) + 3;
        let steps_max = u64::from(self.sb.zone_count) * steps_per_zone;
        for _ in 0..steps_max {
            if self.has_room(n, room) {
                break;
            }
            if self.compact_step()? == CompactProgress::Idle {
                break;
            }
        }
        Ok(())
    }

    /// SEC-16: refuses `room` with `DeviceFull` while fewer zones than its floor are free.
    pub(crate) fn check_floor(&self, room: Room) -> Result<(), SectorError> {
        if self.free_zones < self.reserve_floor(room) {
            return Err(SectorError::DeviceFull);
        }
        Ok(())
    }

    /// Reserves `n` contiguous sectors at the head, opening a new zone if needed and allowed
    /// (SEC-16).
    pub(crate) fn place(
        &mut self,
        batch: &mut Batch,
        n: u32,
        room: Room,
    ) -> Result<u64, SectorError> {
        let end = self.data_end();
        if n >= end {
            return Err(SectorError::TooLarge {
                what: "record sectors",
                size: n.into(),
                max: (end - 1).into(),
            });
        }
        if !self.has_room(n, room) {
            return Err(SectorError::DeviceFull);
        }
        let in_head = self.head.is_some() && self.head_next + n <= end;
        if !in_head {
            self.open_zone(batch)?;
        }
        let z = self.head.ok_or(SectorError::DeviceFull)?;
        let sector = self.sb.zone_first_sector(z) + u64::from(self.head_next);
        self.head_next += n;
        self.zones[z as usize].used_sectors = self.head_next;
        Ok(sector)
    }

    /// Seals the current head (SEC-7) and opens the lowest free zone with a fresh epoch (SEC-4).
    /// Whether the caller may take a zone at all is `place`'s decision (SEC-16).
    ///
    /// SEC-4: the new header is durable before any record of its epoch is written: everything
    /// batched so far, the seal and the header are submitted and flushed here. Otherwise a
    /// power cut could land records of the epoch but not its header, and the next recovery,
    /// not seeing the epoch anywhere, would hand it out again and revive those records.
    fn open_zone(&mut self, batch: &mut Batch) -> Result<(), SectorError> {
        let Some(z) = (0..self.sb.zone_count)
            .find(|z| self.zones[*z as usize].epoch == 0 && !self.compact.is_victim(*z))
        else {
            return Err(SectorError::DeviceFull);
        };
        self.seal_head(batch);
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.checked_add(1).ok_or(SectorError::DeviceFull)?;
        batch.ops.push((self.sb.zone_first_sector(z), ZoneHeader { zone: z, epoch }.encode()));
        std::mem::take(batch).submit(&mut self.dev)?;
        self.flush_device()?;
        debug_assert!(batch.ops.is_empty(), "SEC-4: no record of the epoch precedes its header");
        self.zones[z as usize] = Zone::opened(epoch);
        self.free_zones -= 1;
        debug_assert_eq!(self.free_zones, self.free_zone_count(), "SEC-16: free zone count");
        self.head = Some(z);
        self.head_next = 1;
        self.written_mark = position(epoch, self.sb.zone_first_sector(z) + 1);
        Ok(())
    }

    /// Writes a seal record after the head's data if a sector is left (SEC-7).
    pub(crate) fn seal_head(&mut self, batch: &mut Batch) {
        self.pack = None; // SEC-15: the zone is left, so its packing sector is closed too
        let Some(z) = self.head.take() else { return };
        if self.head_next >= self.sb.zone_sector_count {
            return;
        }
        let sector = self.sb.zone_first_sector(z) + u64::from(self.head_next);
        let epoch = self.zones[z as usize].epoch;
        let h = RecordHeader { sector, ..seal(self.take_seq(), epoch, self.durable_mark) };
        batch.ops.push((sector, lone_header_sector(&h)));
        let zone = &mut self.zones[z as usize];
        zone.count(&h);
        zone.used_sectors = self.head_next + 1;
    }
}
