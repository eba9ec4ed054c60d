//! The index checkpoint (`specs/sector.md` §8.1, SEC-19): on a clean shutdown the engine writes
//! the state recovery would rebuild (index, tombstones, zone accounting, next seq)
//! into free zones under checkpoint headers; `open` loads it instead of scanning every zone in
//! use, but only while every zone header on the device still reads exactly as it did when the
//! checkpoint was written and no header carries a larger epoch.
//!
//! Why that test suffices: after `open` there is no head, so the first record anyone writes
//! opens a zone, whose header (a larger epoch) is durable before that record (SEC-4); the only
//! other header change, a zone freed by the compactor, turns an in-use header into a free one.
//! Headers never change back, so a checkpoint that matches describes every record on the
//! device. A checkpoint that is torn, damaged or stale is reported and the scan runs: it is an
//! optimisation, never the only copy of anything.
//!
//! Never loads a checkpoint that fails its CRC, names a sector outside the data of a zone in
//! use, or disagrees with any zone header on the device.

use super::checkpoint_format::{CheckpointHeader, CheckpointState, HeaderSeen};
use super::compact::CompactState;
use super::device::{BlockDevice, ReadOp};
use super::engine::Engine;
use super::format::{SUPERBLOCK_COPIES, Superblock};
use super::index::Index;
use super::recovery::{Headers, read_zone_headers};
use super::write::Batch;
use super::zones::{Zone, position};
use super::{EngineConfig, Key, RecoveryReport, SECTOR_SIZE_BYTES, SectorError};
use crate::bugs;
use std::collections::HashMap;

/// What [`Engine::checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum CheckpointOutcome {
    /// The checkpoint is durable: the next `open` loads it unless something is written first.
    Written {
        /// The checkpoint's epoch.
        epoch: u32,
        /// Free zones it occupies (still free: the next zone opened may reuse them).
        zones: u32,
        /// Payload bytes.
        bytes: u64,
    },
    /// No checkpoint was written (everything is still flushed): the next `open` scans.
    Skipped {
        /// Why (keys marked corrupt, too few free zones, a zone header that reads back
        /// otherwise than written).
        reason: String,
    },
}

impl<D: BlockDevice> Engine<D> {
    /// Makes everything durable and writes a checkpoint of the engine's state (SEC-19), so the
    /// next `open` need not scan. Call it on a clean shutdown: pending revertible writes become
    /// final (SEC-12), a compaction cycle in progress is abandoned where it stands (what it
    /// moved stays where the index points; the zone is picked again later), and the head zone
    /// is sealed. The engine stays usable; its next write opens a zone, which makes the
    /// checkpoint stale, as any change after it does.
    pub fn checkpoint(&mut self) -> Result<CheckpointOutcome, SectorError> {
        let pending: Vec<Key> = self.reverts.keys().copied().collect();
        for key in pending {
            self.commit(key)?;
        }
        self.compact = CompactState::Idle;
        // The flush's Mark lands at the head's next free sector; the seal overwrites it and
        // carries the mark it witnessed (SEC-18), then is flushed itself.
        self.flush()?;
        let mut batch = Batch::default();
        self.seal_head(&mut batch);
        batch.submit(&mut self.dev)?;
        self.flush_device()?;
        if !self.corrupt.is_empty() {
            // A verdict is not carried over: the scan checks those records again (a read that
            // failed may have met damage that is gone, or more than it names).
            return Ok(CheckpointOutcome::Skipped {
                reason: format!(
                    "{} keys are marked corrupt: the next open re-checks them",
                    self.corrupt.len()
                ),
            });
        }
        let headers = read_zone_headers(&mut self.dev, &self.sb, &mut RecoveryReport::default())?;
        if let Some(reason) = self.differs_from(&headers.seen) {
            return Ok(CheckpointOutcome::Skipped { reason });
        }
        let mut state = self.checkpoint_state(&headers.seen);
        let payload_len = state.encoded_len();
        let per_zone = self.checkpoint_zone_bytes();
        let parts = payload_len.div_ceil(per_zone).max(1);
        // From the top: zones are opened from the bottom, so the first writes after the next
        // open leave a stale checkpoint in place, to be recognised and reported as stale.
        let mut zones: Vec<u32> = (0..self.sb.zone_count)
            .rev()
            .filter(|z| self.zones[*z as usize].epoch == 0)
            .take(parts)
            .collect();
        zones.reverse();
        if zones.len() < parts {
            return Ok(CheckpointOutcome::Skipped {
                reason: format!(
                    "{payload_len} bytes need {parts} free zones, {} are free",
                    zones.len()
                ),
            });
        }
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.checked_add(1).ok_or(SectorError::DeviceFull)?;
        for z in &zones {
            state.zones[*z as usize].0 = HeaderSeen::Checkpoint(epoch);
        }
        let payload = state.encode();
        let payload_crc = crc32c::crc32c(&payload);
        let mut batch = Batch::default();
        for (part, (z, chunk)) in zones.iter().zip(payload.chunks(per_zone)).enumerate() {
            let first = self.sb.zone_first_sector(*z);
            let h = CheckpointHeader {
                zone: *z,
                epoch,
                part: part as u32,
                parts: parts as u32,
                payload_len: payload.len() as u64,
                payload_crc,
            };
            let mut data = chunk.to_vec();
            data.resize(chunk.len().div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES, 0);
            batch.ops.push((first, h.encode()));
            batch.ops.push((first + 1, data));
        }
        batch.submit(&mut self.dev)?;
        self.dev.flush()?;
        Ok(CheckpointOutcome::Written { epoch, zones: parts as u32, bytes: payload.len() as u64 })
    }

    /// Payload bytes one checkpoint zone holds: every sector after its header.
    fn checkpoint_zone_bytes(&self) -> usize {
        (self.sb.zone_sector_count as usize - 1) * SECTOR_SIZE_BYTES
    }

    /// Does any zone header on the device say otherwise than memory? (A misdirected or lost
    /// header write, or damage on the medium: the next `open` must scan and report it.)
    fn differs_from(&self, seen: &[HeaderSeen]) -> Option<String> {
        for (z, (zone, seen)) in self.zones.iter().zip(seen).enumerate() {
            let agrees = match *seen {
                HeaderSeen::InUse(e) => zone.epoch == e,
                HeaderSeen::Blank | HeaderSeen::Free(_) | HeaderSeen::Checkpoint(_) => {
                    zone.epoch == 0
                }
                HeaderSeen::Damaged => false,
            };
            if !agrees {
                return Some(format!(
                    "zone {z}: header reads {seen:?}, the engine has epoch {}",
                    zone.epoch
                ));
            }
        }
        None
    }

    /// The state a checkpoint holds, with every zone's header as read back.
    fn checkpoint_state(&self, seen: &[HeaderSeen]) -> CheckpointState {
        let mut tombs: Vec<(Key, u32)> = self.tombs.iter().map(|(k, s)| (*k, *s)).collect();
        tombs.sort_unstable();
        CheckpointState {
            next_seq: self.next_seq,
            zones: seen
                .iter()
                .zip(&self.zones)
                .map(|(s, z)| (*s, if z.epoch == 0 { Zone::default() } else { *z }))
                .collect(),
            index: self.index.iter().collect(),
            tombs,
        }
    }
}

/// A checkpoint read, checked and ready to become the engine's state.
pub(crate) struct Loaded {
    epoch: u32,
    next_epoch: u32,
    next_seq: u64,
    zones: Vec<Zone>,
    index: Index,
    tombs: HashMap<Key, u32>,
}

/// Reads the newest checkpoint, if any, and checks it against the device (SEC-19). `Ok(None)`:
/// there is none; `Err(reason)`: there is one, but it is torn, damaged or stale.
pub(crate) fn load<D: BlockDevice>(
    dev: &mut D,
    sb: &Superblock,
    headers: &Headers,
) -> Result<Option<Loaded>, String> {
    let Some(epoch) = headers.checkpoints.iter().map(|c| c.epoch).max() else {
        return Ok(None);
    };
    let blind = bugs::active("sector:checkpoint-trusted-blindly");
    // A zone or free header of the checkpoint's epoch or later was written after it (the
    // epoch was handed out again after its header was lost, say).
    let newer = headers.seen.iter().any(|s| match s {
        HeaderSeen::InUse(e) | HeaderSeen::Free(e) => *e >= epoch,
        HeaderSeen::Checkpoint(_) | HeaderSeen::Blank => false,
        HeaderSeen::Damaged => true,
    });
    if newer && !blind {
        return Err(format!("checkpoint {epoch} is stale: a zone header is newer or damaged"));
    }
    let parts = part_zones(headers, epoch)?;
    let payload = read_payload(dev, sb, &parts)?;
    let state = CheckpointState::decode(&payload)
        .map_err(|e| format!("checkpoint {epoch}: payload does not decode: {e}"))?;
    if state.zones.len() != sb.zone_count as usize {
        return Err(format!(
            "checkpoint {epoch}: {} zones, device has {}",
            state.zones.len(),
            sb.zone_count
        ));
    }
    if !blind
        && let Some(z) = (0..state.zones.len()).find(|z| state.zones[*z].0 != headers.seen[*z])
    {
        return Err(format!(
            "checkpoint {epoch} is stale: zone {z} was {:?}, reads {:?}",
            state.zones[z].0, headers.seen[z]
        ));
    }
    check_and_build(sb, epoch, state, headers).map(Some)
}

/// The zones of checkpoint `epoch`, in part order: every part exactly once, all agreeing on the
/// payload's length and CRC.
fn part_zones(headers: &Headers, epoch: u32) -> Result<Vec<CheckpointHeader>, String> {
    let mut mine: Vec<CheckpointHeader> =
        headers.checkpoints.iter().filter(|c| c.epoch == epoch).copied().collect();
    mine.sort_unstable_by_key(|c| c.part);
    let first = mine[0];
    let whole = mine.len() == first.parts as usize
        && mine.iter().enumerate().all(|(i, c)| {
            c.part == i as u32
                && (c.parts, c.payload_len, c.payload_crc)
                    == (first.parts, first.payload_len, first.payload_crc)
        });
    if !whole {
        return Err(format!(
            "checkpoint {epoch}: {} of {} parts found, or parts disagree",
            mine.len(),
            first.parts
        ));
    }
    Ok(mine)
}

/// Reads the payload from the parts' data sectors and checks its CRC.
fn read_payload<D: BlockDevice>(
    dev: &mut D,
    sb: &Superblock,
    parts: &[CheckpointHeader],
) -> Result<Vec<u8>, String> {
    let per_zone = (sb.zone_sector_count as usize - 1) * SECTOR_SIZE_BYTES;
    let len = parts[0].payload_len;
    if len > (per_zone as u64).saturating_mul(parts.len() as u64) || len == 0 {
        return Err(format!("checkpoint: {len} payload bytes cannot be in {} zones", parts.len()));
    }
    let len = len as usize;
    let mut bufs: Vec<Vec<u8>> = parts
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let bytes = (len - (i * per_zone).min(len)).min(per_zone);
            vec![0u8; bytes.div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES]
        })
        .collect();
    let mut ops: Vec<ReadOp<'_>> = parts
        .iter()
        .zip(bufs.iter_mut())
        .filter(|(_, b)| !b.is_empty())
        .map(|(c, buf)| ReadOp { first_sector: sb.zone_first_sector(c.zone) + 1, buf })
        .collect();
    dev.read_batch(&mut ops).map_err(|e| format!("checkpoint: reading it failed: {e}"))?;
    let mut payload: Vec<u8> = bufs.concat();
    payload.truncate(len);
    let computed = crc32c::crc32c(&payload);
    if computed != parts[0].payload_crc {
        return Err(format!(
            "checkpoint {}: payload CRC {computed:#010x}, header says {:#010x}",
            parts[0].epoch, parts[0].payload_crc
        ));
    }
    Ok(payload)
}

/// Checks that every sector the checkpoint names lies in the written part of a zone in use,
/// that no key is indexed twice, and builds the state.
fn check_and_build(
    sb: &Superblock,
    epoch: u32,
    state: CheckpointState,
    headers: &Headers,
) -> Result<Loaded, String> {
    let zones: Vec<Zone> = state
        .zones
        .iter()
        .map(|(seen, z)| if let HeaderSeen::InUse(_) = seen { *z } else { Zone::default() })
        .collect();
    for (i, z) in zones.iter().enumerate() {
        if z.epoch != 0 && !(1..=sb.zone_sector_count).contains(&z.used_sectors) {
            return Err(format!("checkpoint {epoch}: zone {i} uses {} sectors", z.used_sectors));
        }
    }
    let inside = |sector: u64| {
        let Some(rel) = sector.checked_sub(SUPERBLOCK_COPIES) else { return false };
        let z = rel / u64::from(sb.zone_sector_count);
        let off = rel % u64::from(sb.zone_sector_count);
        zones
            .get(z as usize)
            .is_some_and(|zone| zone.epoch != 0 && off >= 1 && off < u64::from(zone.used_sectors))
    };
    let bad = |what: &str, k: Key, s: u64| format!("checkpoint {epoch}: {what} {k} at sector {s}");
    let mut index = Index::with_capacity(state.index.len());
    for (k, s) in &state.index {
        if !inside(u64::from(*s)) || index.insert(*k, *s).is_some() {
            return Err(bad("key", *k, u64::from(*s)));
        }
    }
    let mut tombs = HashMap::with_capacity(state.tombs.len());
    for (k, s) in &state.tombs {
        if !inside(u64::from(*s)) || tombs.insert(*k, *s).is_some() {
            return Err(bad("tombstone of", *k, u64::from(*s)));
        }
    }
    let epoch_max = headers.seen.iter().map(|s| s.epoch()).max().unwrap_or(0).max(epoch);
    Ok(Loaded {
        epoch,
        next_epoch: epoch_max.checked_add(1).ok_or("checkpoint: epochs exhausted")?,
        next_seq: state.next_seq.max(1),
        zones,
        index,
        tombs,
    })
}

impl Loaded {
    /// The engine, as recovery would have left it: no head, everything on the device durable.
    pub(crate) fn install<D: BlockDevice>(
        self,
        dev: D,
        sb: Superblock,
        cfg: EngineConfig,
        mut report: RecoveryReport,
    ) -> Engine<D> {
        report.checkpoint = Some(self.epoch);
        report.zones_in_use = self.zones.iter().filter(|z| z.epoch != 0).count() as u32;
        let mut e = Engine::blank(dev, sb, cfg, report);
        e.zones = self.zones;
        e.index = self.index;
        e.tombs = self.tombs;
        e.next_seq = self.next_seq;
        e.next_epoch = self.next_epoch;
        let top = position(e.next_epoch - 1, u64::from(u32::MAX));
        e.durable_mark = top;
        e.written_mark = top;
        e.free_zones = e.free_zone_count();
        e
    }
}
