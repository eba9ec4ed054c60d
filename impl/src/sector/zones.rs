//! Zone placement and accounting (`specs/sector.md` §3, §5.1, §9): where the next record goes
//! (the head zone, or the lowest free zone opened with a fresh epoch), sealing the head, the
//! log position (epoch, sector), and each zone's record and live counts.
//!
//! Enforces SEC-4 (a zone's header is durable before any record of its epoch is written; epochs
//! are never reused), SEC-7 (a sealed zone's tail is never read) and SEC-13 (a zone's live count
//! is exactly the index entries and revert targets pointing into it). Keeps one zone in reserve
//! for the compactor.
//!
//! Never hands out an epoch twice, never places a record across two zones.

use super::device::BlockDevice;
use super::format::{self, ZoneHeader};
use super::write::{Batch, seal};
use super::{Engine, SECTOR_SIZE_BYTES, SectorError};

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Zone {
    pub(crate) epoch: u32,
    pub(crate) records: u32,
    pub(crate) live: u32,
    pub(crate) used_sectors: u32,
    pub(crate) min_seq: u64,
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

    pub(crate) fn retire(&mut self, sector: u32) {
        if let Some(z) = self.zone_of(u64::from(sector)) {
            let zone = &mut self.zones[z as usize];
            debug_assert!(zone.live > 0, "SEC-13: live count underflow in zone {z}");
            zone.live = zone.live.saturating_sub(1);
        }
    }

    pub(crate) fn note_record(&mut self, sector: u64, n: u32, seq: u64) {
        if let Some(z) = self.zone_of(sector) {
            let zone = &mut self.zones[z as usize];
            zone.records += 1;
            zone.min_seq = zone.min_seq.min(seq);
            self.written_mark = position(zone.epoch, sector + u64::from(n));
        }
    }

    pub(crate) fn head_epoch(&self) -> u32 {
        self.head.map_or(0, |z| self.zones[z as usize].epoch)
    }

    /// Reserves `n` contiguous sectors at the head, opening a new zone if needed.
    pub(crate) fn place(
        &mut self,
        batch: &mut Batch,
        n: u32,
        for_compaction: bool,
    ) -> Result<u64, SectorError> {
        let zs = self.sb.zone_sector_count;
        if n >= zs {
            return Err(SectorError::TooLarge {
                what: "record sectors",
                size: n.into(),
                max: (zs - 1).into(),
            });
        }
        let room = self.head.is_some() && self.head_next + n <= zs;
        if !room {
            self.open_zone(batch, for_compaction)?;
        }
        let z = self.head.ok_or(SectorError::DeviceFull)?;
        let sector = self.sb.zone_first_sector(z) + u64::from(self.head_next);
        self.head_next += n;
        self.zones[z as usize].used_sectors = self.head_next;
        Ok(sector)
    }

    /// Seals the current head (SEC-7) and opens the lowest free zone with a fresh epoch (SEC-4).
    ///
    /// SEC-4: the new header is durable before any record of its epoch is written: everything
    /// batched so far, the seal and the header are submitted and flushed here. Otherwise a
    /// power cut could land records of the epoch but not its header, and the next recovery,
    /// not seeing the epoch anywhere, would hand it out again and revive those records.
    fn open_zone(&mut self, batch: &mut Batch, for_compaction: bool) -> Result<(), SectorError> {
        let free: Vec<u32> = (0..self.sb.zone_count)
            .filter(|z| self.zones[*z as usize].epoch == 0 && !self.compact.is_victim(*z))
            .collect();
        let reserve =
            if for_compaction { 0 } else { self.cfg.zones_reserved_for_compaction as usize };
        let Some(&z) = free.first().filter(|_| free.len() > reserve) else {
            return Err(SectorError::DeviceFull);
        };
        self.seal_head(batch);
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.checked_add(1).ok_or(SectorError::DeviceFull)?;
        batch.ops.push((self.sb.zone_first_sector(z), ZoneHeader { zone: z, epoch }.encode()));
        std::mem::take(batch).submit(&mut self.dev)?;
        self.flush_device()?;
        debug_assert!(batch.ops.is_empty(), "SEC-4: no record of the epoch precedes its header");
        self.zones[z as usize] =
            Zone { epoch, records: 0, live: 0, used_sectors: 1, min_seq: u64::MAX };
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
        let h = seal(self.take_seq(), epoch, self.durable_mark);
        let mut bytes = h.encode().to_vec();
        bytes.resize(SECTOR_SIZE_BYTES, 0);
        batch.ops.push((sector, bytes));
        let zone = &mut self.zones[z as usize];
        zone.records += 1;
        zone.used_sectors = self.head_next + 1;
    }
}

pub(crate) fn dead_percent(z: &Zone) -> u8 {
    if z.records == 0 {
        return 0;
    }
    (u64::from(z.records - z.live.min(z.records)) * 100 / u64::from(z.records)) as u8
}
