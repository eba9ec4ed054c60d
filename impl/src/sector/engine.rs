//! [`Engine`]: the sector engine's state, `format` and `open`, and its accessors
//! (`specs/sector.md`). Single-threaded (`&mut self`) and deterministic: it never reads the
//! clock, spawns threads or draws randomness.
//!
//! The operations are split by idea, each file adding an `impl Engine` block:
//! - `read.rs`: the read path (`read`, `read_range`, `read_follow`, `compare`, `verify`);
//!   checks every payload CRC (SEC-5, SEC-6).
//! - `write.rs`: the write path (`write`, `append`, `delete`, `cas`, `flush`, `revert`,
//!   `commit`); acks wait for the flush (SEC-2), a CAS is one contiguous write (SEC-8), revert
//!   state is volatile (SEC-12), a flushed sector is never rewritten (SEC-15).
//! - `zones.rs`: zone placement and accounting (the head, opening and sealing zones, live
//!   counts); a zone's header is durable before its records (SEC-4, SEC-13).
//! - `compact.rs`, `recovery.rs`, `commit.rs`: the compactor step, `open`'s rebuild, the CAS
//!   commit scheme.
//!
//! Never returns bytes whose CRC failed, never writes over a sector that was flushed.

use super::config::{EngineConfig, SECTOR_SIZE_BYTES_U64};
use super::device::{BlockDevice, WriteOp};
use super::format::{self, RECORD_HEADER_SIZE_BYTES, Superblock};
use super::index::Index;
use super::types::{EngineStats, RecoveryReport, ZoneStat};
use super::victim::{OldestPuts, dead_percent};
use super::write::{Batch, Pack};
use super::zones::Zone;
use super::{DEVICE_SECTOR_COUNT_MAX, Key, SECTOR_SIZE_BYTES, SectorError, Version};
use std::collections::HashMap;

/// The sector engine over one device. See the module docs and `specs/sector.md`.
pub struct Engine<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) sb: Superblock,
    pub(crate) cfg: EngineConfig,
    pub(crate) index: Index,
    /// Keys whose newest record is corrupt → (its sector, detail) (SEC-6).
    pub(crate) corrupt: HashMap<Key, (u64, String)>,
    pub(crate) zones: Vec<Zone>,
    pub(crate) head: Option<u32>,
    pub(crate) head_next: u32,
    pub(crate) pack: Option<Pack>,
    pub(crate) next_seq: u64,
    pub(crate) next_epoch: u32,
    pub(crate) durable_mark: u64,
    pub(crate) written_mark: u64,
    /// Keys with a pending revertible write → the previous sector (`None`: was absent).
    pub(crate) reverts: HashMap<Key, Option<u32>>,
    pub(crate) compact: super::compact::CompactState,
    pub(crate) report: RecoveryReport,
    /// Zones with epoch 0 (never used, or freed): what the reserve counts (SEC-16).
    pub(crate) free_zones: u32,
    /// Deleted keys whose tombstone is still on the device → its sector: which copy of a
    /// tombstone is current, so the compactor moves only that one (SEC-16, §6).
    pub(crate) tombs: HashMap<Key, u32>,
    /// Zones whose compaction met a device error since `open`: not picked again (SEC-16).
    pub(crate) compact_failed: Vec<u32>,
}

impl<D: BlockDevice> std::fmt::Debug for Engine<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("keys", &self.index.len()).field("sb", &self.sb).finish()
    }
}

impl<D: BlockDevice> Engine<D> {
    /// Formats `device`: writes both superblocks, zeroes every zone header, flushes.
    pub fn format(mut device: D, config: EngineConfig) -> Result<Engine<D>, SectorError> {
        let sectors = device.sector_count().min(DEVICE_SECTOR_COUNT_MAX);
        let zone_sectors = (config.zone_size_bytes / SECTOR_SIZE_BYTES) as u64;
        let zone_count = sectors.saturating_sub(format::SUPERBLOCK_COPIES) / zone_sectors;
        let sb = Superblock {
            zone_sector_count: zone_sectors as u32,
            zone_count: u32::try_from(zone_count).unwrap_or(u32::MAX),
            device_sector_count: sectors,
        };
        sb.check().map_err(|e| SectorError::Geometry(format!("{e} ({sectors} sectors)")))?;
        // A zone's header sector and its first data sector are blanked: a blank header over a
        // record is then a lost header, never a fresh zone (SEC-4, §3.2).
        let zero = vec![0u8; 2 * SECTOR_SIZE_BYTES];
        let mut batch = Batch::default();
        for z in 0..sb.zone_count {
            batch.ops.push((sb.zone_first_sector(z), zero.clone()));
        }
        batch.submit(&mut device)?;
        device.flush()?;
        // SEC-3: superblocks last: a crash mid-format leaves an unformatted device, never a
        // half one.
        let (a, b) = (sb.encode(0), sb.encode(1));
        device.write_batch(&[
            WriteOp { first_sector: 0, data: &a },
            WriteOp { first_sector: 1, data: &b },
        ])?;
        device.flush()?;
        Engine::open(device, config)
    }

    /// The engine before recovery fills it in: no keys, every zone free, no head.
    pub(crate) fn blank(
        dev: D,
        sb: Superblock,
        cfg: EngineConfig,
        report: RecoveryReport,
    ) -> Engine<D> {
        Engine {
            dev,
            sb,
            cfg,
            index: Index::new(),
            corrupt: HashMap::new(),
            zones: vec![Zone::default(); sb.zone_count as usize],
            head: None,
            head_next: 0,
            pack: None,
            next_seq: 1,
            next_epoch: 1,
            durable_mark: 0,
            written_mark: 0,
            // SEC-12: revert state is volatile: after a crash nothing is revertible (the
            // REVERTIBLE flag on disk is informational only).
            reverts: HashMap::new(),
            compact: super::compact::CompactState::Idle,
            report,
            free_zones: 0,
            tombs: HashMap::new(),
            compact_failed: Vec::new(),
        }
    }

    /// Opens a formatted device and rebuilds the index (SEC-7). See [`Engine::recovery_report`].
    pub fn open(device: D, config: EngineConfig) -> Result<Engine<D>, SectorError> {
        super::recovery::recover(device, config)
    }

    /// What the last `open` found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The device (tests and the simulator inspect it).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Consumes the engine, returning its device without flushing (a crash, for tests).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Largest value `write` accepts: a record fits between the zone header and the zone's
    /// last sector, which is kept for its seal or a flush's mark (SEC-18).
    pub fn value_size_max_bytes(&self) -> usize {
        let zone_bytes = (self.sb.zone_sector_count as usize - 2) * SECTOR_SIZE_BYTES;
        self.cfg.value_size_max_bytes.min(zone_bytes - RECORD_HEADER_SIZE_BYTES)
    }

    /// The current version of `key`, if present.
    pub fn version(&self, key: Key) -> Option<Version> {
        self.index.get(key).map(|s| self.version_at(s))
    }

    pub(crate) fn version_at(&self, sector: u32) -> Version {
        let epoch = self.zone_of(u64::from(sector)).map_or(0, |z| self.zones[z as usize].epoch);
        Version::new(epoch, sector)
    }

    /// Keys, live bytes and dead share per zone.
    pub fn stat(&self) -> EngineStats {
        let oldest = OldestPuts::of(&self.zones, !self.reverts.is_empty());
        let zones: Vec<ZoneStat> = self
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| z.epoch != 0)
            .map(|(i, z)| ZoneStat {
                zone: i as u32,
                epoch: z.epoch,
                records: z.records,
                live_records: z.live,
                live_tombstones: z.tomb_live,
                used_sectors: z.used_sectors,
                dead_percent: dead_percent(i as u32, z, &oldest),
            })
            .collect();
        let live_bytes_estimate = zones
            .iter()
            .map(|z| {
                u64::from(z.used_sectors) * SECTOR_SIZE_BYTES_U64 * u64::from(z.live_records)
                    / u64::from(z.records.max(1))
            })
            .sum();
        EngineStats {
            keys: self.index.len() as u64,
            corrupt_keys: self.corrupt.len() as u64,
            live_bytes_estimate,
            index_bytes: self.index.heap_bytes() as u64,
            free_zones: self.free_zones,
            reserved_zones: self.reserve_floor(super::zones::Room::Grow),
            zones,
        }
    }

    /// Every live key (unordered). O(keys).
    pub fn keys(&self) -> Vec<Key> {
        self.index.iter().map(|(k, _)| k).collect()
    }
}
