//! Trim and compaction (`specs/sector.md` §9, SEC-10, SEC-13, SEC-14): a resumable step
//! function. Each [`Engine::compact_step`] call does one bounded unit of work, so a foreground
//! operation never waits for more than one step; [`BackgroundCompactor`] runs steps on a
//! thread in production, the simulator interleaves them with its own operations.
//!
//! States: `Idle` → pick the zone with the largest dead share past the threshold → `Scan`
//! (read at most `compaction_step_sectors_max` sectors, note live records) → `Move` (re-append
//! them, installing each new location only if the index still points at the old one, SEC-10)
//! → … → `Drain` (flush the copies, then durably replace the zone header by a free header that
//! keeps its epoch (SEC-4), then trim, SEC-14).
//!
//! Never frees a zone before its live records' copies are durable; never resurrects a record
//! overwritten or deleted while it was being moved.

use super::device::{BlockDevice, ReadOp};
use super::engine::Engine;
use super::format::{FLAG_PACKED, FLAG_TXN, Kind, RecordHeader, ZoneHeader};
use super::recovery::{Item, scan};
use super::write::Batch;
use super::zones::{Room, Zone};
use super::{Key, SECTOR_SIZE_BYTES, SectorError};
use crate::bugs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

/// A live record found by a scan, waiting to be moved.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    old_sector: u32,
    h: RecordHeader,
    payload: Vec<u8>,
}

/// Where the compactor is between steps.
#[derive(Debug, Clone, Default)]
pub(crate) enum CompactState {
    /// No zone being compacted.
    #[default]
    Idle,
    /// Reading `zone` from `cursor`.
    Scan { zone: u32, cursor: u64 },
    /// Live records read up to `cursor`, to be re-appended.
    Move { zone: u32, cursor: u64, moves: Vec<Move> },
    /// Every live record moved; flush, free, trim.
    Drain { zone: u32 },
}

impl CompactState {
    /// Is `zone` being compacted?
    pub(crate) fn is_victim(&self, zone: u32) -> bool {
        match self {
            CompactState::Idle => false,
            CompactState::Scan { zone: z, .. }
            | CompactState::Move { zone: z, .. }
            | CompactState::Drain { zone: z } => *z == zone,
        }
    }
}

/// What one compaction step did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum CompactProgress {
    /// No zone is past the dead-share threshold: nothing to do.
    Idle,
    /// Read `sectors` sectors of `zone`, found `live` live records.
    Scanned {
        /// The zone.
        zone: u32,
        /// Sectors read.
        sectors: u64,
        /// Live records found.
        live: u32,
    },
    /// Re-appended `moved` records of `zone`; `skipped` had been overwritten or deleted.
    Moved {
        /// The zone.
        zone: u32,
        /// Records moved.
        moved: u32,
        /// Records no longer current (SEC-10).
        skipped: u32,
    },
    /// The zone was freed and trimmed.
    Freed {
        /// The zone.
        zone: u32,
    },
    /// The zone holds a record that failed its CRC and is still current; it is left alone.
    Abandoned {
        /// The zone.
        zone: u32,
        /// The key whose record is corrupt.
        key: Key,
    },
    /// The scan did not meet every live record and current tombstone the zone holds (SEC-17):
    /// some sector reads back other content than was written there (a misdirected write). The
    /// zone is left alone (not compacted again until the next `open`); the keys concerned get
    /// `Corrupt` on read.
    Damaged {
        /// The zone.
        zone: u32,
        /// Live records the scan did not find.
        live: u32,
        /// Current tombstones the scan did not find.
        tombstones: u32,
    },
}

impl<D: BlockDevice> Engine<D> {
    /// Runs one bounded compaction step (see the module docs). A zone whose cycle meets a
    /// device error (a latent sector error, say) is not picked again until the next `open`:
    /// retrying it would copy its live tombstones again and again into the head, using up the
    /// very space the cycle was meant to free (SEC-16; found by the simulator's `full`
    /// profile).
    pub fn compact_step(&mut self) -> Result<CompactProgress, SectorError> {
        let state = std::mem::take(&mut self.compact);
        let zone = match &state {
            CompactState::Idle => self.pick_victim(),
            CompactState::Scan { zone, .. }
            | CompactState::Move { zone, .. }
            | CompactState::Drain { zone } => Some(*zone),
        };
        let r = match (state, zone) {
            (CompactState::Idle, None) => Ok(CompactProgress::Idle),
            (CompactState::Idle, Some(z)) => self.scan_step(z, self.sb.zone_first_sector(z) + 1),
            (CompactState::Scan { zone, cursor }, _) => self.scan_step(zone, cursor),
            (CompactState::Move { zone, cursor, moves }, _) => self.move_step(zone, cursor, moves),
            (CompactState::Drain { zone }, _) => self.drain_step(zone),
        };
        if let (Err(SectorError::Device(_)), Some(z)) = (&r, zone) {
            self.set_aside(z);
        }
        r
    }

    /// `zone` is not picked again until the next `open` (a device error or damage met).
    fn set_aside(&mut self, zone: u32) {
        if !self.compact_failed.contains(&zone) {
            self.compact_failed.push(zone);
        }
    }

    /// Runs steps until the compactor is idle or `steps_max` steps ran; returns zones freed.
    pub fn compact_until_idle(&mut self, steps_max: u32) -> Result<u32, SectorError> {
        let mut freed = 0;
        for _ in 0..steps_max {
            match self.compact_step()? {
                CompactProgress::Idle => break,
                CompactProgress::Freed { .. } => freed += 1,
                _ => {}
            }
        }
        Ok(freed)
    }

    fn scan_step(&mut self, zone: u32, cursor: u64) -> Result<CompactProgress, SectorError> {
        let z = &self.zones[zone as usize];
        let end = self.sb.zone_first_sector(zone) + u64::from(z.used_sectors);
        let epoch = z.epoch;
        if cursor >= end {
            self.compact = CompactState::Drain { zone };
            return Ok(CompactProgress::Scanned { zone, sectors: 0, live: 0 });
        }
        let mut n = (end - cursor).min(u64::from(self.cfg.compaction_step_sectors_max));
        let mut buf = self.read_run(cursor, n)?;
        let mut s = scan(&buf, cursor, epoch, true, false);
        if let Some(at) = s.incomplete_at.filter(|at| *at == cursor) {
            // One record larger than a step: read exactly it.
            n = end - at;
            buf = self.read_run(cursor, n)?;
            s = scan(&buf, cursor, epoch, true, false);
        }
        let next = s.sealed_at.map(|_| end).or(s.incomplete_at).unwrap_or(cursor + n);
        let mut moves = Vec::new();
        for item in s.items {
            let Item::Rec { sector, h, payload_ok, payload } = item else { continue };
            let live = self.is_live(zone, sector as u32, &h);
            if !live
                && h.kind == Kind::Tombstone
                && self.tombs.get(&h.key) == Some(&(sector as u32))
            {
                // Current but no longer needed: it goes with the zone (SEC-16). It can never be
                // needed again: every older value of its key is gone already.
                self.forget_tombstone(h.key);
            }
            if live && !payload_ok {
                self.abandon(sector, h.key);
                return Ok(CompactProgress::Abandoned { zone, key: h.key });
            }
            if live {
                moves.push(Move {
                    old_sector: sector as u32,
                    h,
                    payload: payload.unwrap_or_default(),
                });
            }
        }
        let live = moves.len() as u32;
        self.compact = CompactState::Move { zone, cursor: next, moves };
        Ok(CompactProgress::Scanned { zone, sectors: next - cursor, live })
    }

    /// The live record of `key` at `sector` failed its CRC: the zone is left alone (spec §12).
    /// A current record is marked corrupt (SEC-6) and leaves the index; it is retired with it,
    /// so the zone's live count stays exact (SEC-13) and the zone can be freed once the key is
    /// rewritten or deleted. A corrupt revert target stays where it is (`revert` reports it).
    fn abandon(&mut self, sector: u64, key: Key) {
        self.compact = CompactState::Idle;
        if self.index.get(key) != Some(sector as u32) {
            return;
        }
        self.index.remove(key);
        self.retire(sector as u32);
        self.corrupt
            .insert(key, (sector, format!("sector {sector}: payload CRC failed in compaction")));
        debug_assert!(self.index.get(key).is_none(), "SEC-6: a corrupt record is not indexed");
    }

    fn read_run(&mut self, first: u64, n: u64) -> Result<Vec<u8>, SectorError> {
        let mut buf = vec![0u8; n as usize * SECTOR_SIZE_BYTES];
        self.dev.read_batch(&mut [ReadOp { first_sector: first, buf: &mut buf }])?;
        Ok(buf)
    }

    /// Is this record still needed? A value: if the index (or a pending revert) points at it.
    /// A tombstone: if it is its key's current one (`tombs`; not a copy left by a crashed
    /// cycle, not superseded) and another zone in use may hold an older, dead value of the
    /// key (`Engine::may_hide`, §9).
    fn is_live(&self, victim: u32, sector: u32, h: &RecordHeader) -> bool {
        match h.kind {
            Kind::Put => {
                self.index.get(h.key) == Some(sector)
                    || self.reverts.get(&h.key) == Some(&Some(sector))
            }
            Kind::Tombstone => {
                self.tombs.get(&h.key) == Some(&sector)
                    && self.zones.iter().enumerate().any(|(z, zone)| {
                        z as u32 != victim && zone.epoch != 0 && self.may_hide(zone, h.seq)
                    })
            }
            Kind::Commit | Kind::Seal | Kind::Mark => false,
        }
    }

    fn move_step(
        &mut self,
        zone: u32,
        cursor: u64,
        moves: Vec<Move>,
    ) -> Result<CompactProgress, SectorError> {
        let mut batch = Batch::default();
        let (mut moved, mut skipped) = (0u32, 0u32);
        let mut installs = Vec::new();
        for m in moves {
            // SEC-10: move only what is still current; a record overwritten or deleted since
            // the scan must not come back.
            let current = self.is_live(zone, m.old_sector, &m.h);
            if !current && !bugs::active("sector:compactor-resurrects") {
                skipped += 1;
                continue;
            }
            let mut h = m.h;
            h.flags &= !FLAG_TXN; // a moved member is committed: it no longer needs its commit
            h.txn = 0;
            // SEC-10: the copy keeps its seq. Until the victim is freed both are on the
            // device; recovery keeps the original on a tie, so after a crash in the middle of
            // the cycle the copies are dead and the zone they went to is freed without moving
            // anything (SEC-16).
            if h.kind == Kind::Tombstone {
                // Tombstones move packed (80 bytes), whether they were written packed or, as
                // CAS members, a sector each: the delete reserve's room comes back (SEC-16).
                h.flags |= FLAG_PACKED;
            }
            let new = self.append_record(&mut batch, h, &m.payload, Room::Compact)?;
            installs.push((h, m.old_sector, new as u32));
            moved += 1;
        }
        batch.submit(&mut self.dev)?;
        for (h, old, new) in installs {
            self.relocate(h, old, new);
        }
        self.compact = CompactState::Scan { zone, cursor };
        Ok(CompactProgress::Moved { zone, moved, skipped })
    }

    fn relocate(&mut self, h: RecordHeader, old: u32, new: u32) {
        if h.kind == Kind::Tombstone && self.tombs.get(&h.key) == Some(&old) {
            self.forget_tombstone(h.key);
            self.note_tombstone(h.key, u64::from(new));
            return;
        }
        if h.kind != Kind::Put {
            return;
        }
        let Some(nz) = self.zone_of(u64::from(new)) else { return };
        self.zones[nz as usize].live += 1;
        if self.reverts.get(&h.key) == Some(&Some(old)) {
            self.reverts.insert(h.key, Some(new));
        } else {
            self.index.insert(h.key, new);
        }
        self.retire(old);
    }

    fn drain_step(&mut self, zone: u32) -> Result<CompactProgress, SectorError> {
        // SEC-17: the scan must have accounted for every live record and current tombstone of
        // the zone (SEC-13's exact counts). One it did not meet is damage the scan could not
        // see as such: a record whose write went astray, a packing sector read back in an
        // older form, another sector's content in its place. Freeing the zone would lose it,
        // so the zone is left alone and the damage reported.
        let (live, tomb_live) =
            (self.zones[zone as usize].live, self.zones[zone as usize].tomb_live);
        if (live, tomb_live) != (0, 0) && !bugs::active("sector:drain-ignores-live-count") {
            self.set_aside(zone);
            return Ok(CompactProgress::Damaged { zone, live, tombstones: tomb_live });
        }
        // SEC-14: the copies are durable before the zone is freed, and the free (a free header
        // keeping the zone's epoch, SEC-4) is durable before its sectors are trimmed and reused.
        self.flush_device()?;
        let first = self.sb.zone_first_sector(zone);
        let epoch = self.zones[zone as usize].epoch;
        debug_assert!(epoch != 0, "SEC-4: only a zone in use is freed");
        let mut batch = Batch::default();
        batch.ops.push((first, ZoneHeader { zone, epoch }.encode_free()));
        batch.submit(&mut self.dev)?;
        self.flush_device()?;
        self.dev.trim(first + 1, u64::from(self.sb.zone_sector_count) - 1)?;
        debug_assert_eq!(
            (self.zones[zone as usize].live, self.zones[zone as usize].tomb_live),
            (0, 0),
            "SEC-13: a freed zone holds no live record and no current tombstone"
        );
        self.zones[zone as usize] = Zone::default();
        self.free_zones += 1;
        debug_assert_eq!(self.free_zones, self.free_zone_count(), "SEC-16: free zone count");
        Ok(CompactProgress::Freed { zone })
    }
}

/// Runs `compact_step` on a thread until stopped: the production shell around the step
/// function. Each step holds the engine lock for one step only, and after a step that did work
/// the thread pauses as long as the step held the lock (at least
/// [`BACKGROUND_STEP_PAUSE_MIN_US`]) before taking it again: a released `std` mutex is not handed
/// to a waiter, so a thread that re-locks at once keeps it for as long as it has work, and reads
/// queued behind a long compaction waited for all of it (4 s behind 200 zones of dead data at a
/// 10 ms `fdatasync`; a conformance run on a slow disk timed out after 15 s). The pause bounds a
/// foreground request's wait to about one step, and compaction to half the lock's time while
/// it has work. A step that fails (a device
/// error, or `DeviceFull` while the compactor's reserve is used up, SEC-16) does not stop the
/// thread: it sleeps and tries again, so a full device is compacted as soon as room appears;
/// [`BackgroundCompactor::stop`] reports the error if the last step failed.
#[derive(Debug)]
pub struct BackgroundCompactor {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<(), SectorError>>>,
}

/// How long the background compactor sleeps when there is nothing to compact (or a step failed).
pub const BACKGROUND_IDLE_SLEEP_MS: u64 = 50;

/// Shortest pause of the background compactor between two steps that did work (see
/// [`BackgroundCompactor`]): long enough for a woken waiter to be scheduled and take the lock.
pub const BACKGROUND_STEP_PAUSE_MIN_US: u64 = 500;

impl BackgroundCompactor {
    /// Starts the thread.
    pub fn spawn<D: BlockDevice + 'static>(engine: Arc<Mutex<Engine<D>>>) -> BackgroundCompactor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut last_error = None;
            while !flag.load(Ordering::Relaxed) {
                let (progress, held) = {
                    let mut e = match engine.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    let start = Instant::now();
                    (e.compact_step(), start.elapsed())
                };
                last_error = progress.as_ref().err().map(|e| e.to_string());
                if matches!(progress, Ok(ref p) if *p != CompactProgress::Idle) {
                    std::thread::sleep(
                        held.max(Duration::from_micros(BACKGROUND_STEP_PAUSE_MIN_US)),
                    );
                    continue;
                }
                std::thread::sleep(Duration::from_millis(BACKGROUND_IDLE_SLEEP_MS));
            }
            last_error.map_or(Ok(()), |e| Err(SectorError::Stopped(format!("last step: {e}"))))
        });
        BackgroundCompactor { stop, handle: Some(handle) }
    }

    /// Stops the thread; an error if its last step failed.
    pub fn stop(mut self) -> Result<(), SectorError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(SectorError::Stopped("compactor thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundCompactor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
