//! `SimSsd`: a simulated SSD implementing the sector engine's [`BlockDevice`], driven entirely
//! by the run's seed: a volatile write cache with an explicit flush, a latency drawn per I/O in
//! simulated microseconds, and faults.
//!
//! # Fault atlas
//!
//! What each fault does, where it may strike, and why the oracle can still tell an engine bug
//! from an allowed, reported loss. The atlas follows `specs/sector.md` §12: every fault the
//! simulator injects in the default profiles is one the spec promises to *survive* or *detect*.
//!
//! | fault | where | lasts | spec promise | oracle allows |
//! |-------|-------|-------|--------------|---------------|
//! | lost writes at crash (cache dropped) | any unflushed sector | — | survived (SEC-2, SEC-7) | an unflushed op may vanish, whole |
//! | torn write at crash (in-order prefix, cut at a sector boundary) | any unflushed sector | — | survived (SEC-1, SEC-7) | same |
//! | unflushed writes land in any subset and order | any unflushed sector | — | survived (SEC-2, SEC-8) | same; a CAS stays all or nothing |
//! | latent sector error (reads fail, repeatably) | any sector, while running | until the sector is rewritten or trimmed, or power cycles | detected: the read fails with a device error | a read (or compaction step) whose I/O touched the sector fails |
//! | corruption (a payload byte flipped, repeatably) | payload bytes of a live, unpacked, uncompressed record's first sector, while running | until rewritten, trimmed, or power cycle | detected: `Corrupt{key}` (SEC-6) | that key's reads fail naming it until it is rewritten |
//! | trim reads back stale data | freed zones | — | survived (SEC-4, SEC-14) | nothing |
//! | misdirected write (lands on another sector of the same zone; the intended sector keeps what it physically held) | any data sector; profile `swarm` (half its runs) and `hostile` | until rewritten, or power cycle | detected (SEC-17) | a read or compaction step that met such a sector may fail naming the key (`Corrupt`, `Damaged`); never an older value, never another key's bytes |
//! | header flip (one byte of a record header, or of any record in a packing sector) | the first sector of a key's current record, while running | until rewritten, or power cycle | detected: `Corrupt{key}` (SEC-5, SEC-6) | every key whose current record lies in that sector may fail naming itself; never wrong bytes |
//! | superblock copy flipped on the medium | sector 0 or 1 (always the same one in a run), at a power cut | until rewritten | survived (SEC-3) | recovery exact, `superblock_copies_valid` = 1 |
//! | free header flipped on the medium | a zone header sector holding a free header, at a power cut | until the zone is reopened | detected: `corrupt_zone_headers` names the zone; survived: no record is lost (SEC-4, SEC-14) | recovery exact; the zone reported until reused |
//!
//! Media faults (latent, corruption, misdirection) live in an overlay that a power cycle clears:
//! the engine is a single copy, and §12 says a damaged record above the newest durable mark is
//! indistinguishable from a torn tail, so a flushed-but-unwitnessed record damaged on the medium
//! could be cut at recovery without breaking the spec. Keeping media faults out of recovery
//! keeps the oracle exact ("nothing acknowledged lost"); the running engine still meets every
//! one of them. A replicated deployment would repair such sectors from a peer.
//!
//! Never touches the host: no threads, no clock, no OS randomness; all state is in memory.

use crate::rng::SimRng;
use cellar::sector::device::{check_io, check_range};
use cellar::sector::{BlockDevice, DeviceError, ReadOp, SECTOR_SIZE_BYTES, WriteOp};
use std::collections::BTreeMap;
use std::collections::BTreeSet;

const SECTOR: usize = SECTOR_SIZE_BYTES;

/// Latency and fault knobs of one simulated SSD (drawn per run by the swarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SsdConfig {
    /// Latency of one read I/O, microseconds (a batch costs its slowest I/O plus a per-sector
    /// transfer cost).
    pub read_latency_us_max: u64,
    /// Latency of one write I/O, microseconds.
    pub write_latency_us_max: u64,
    /// Latency of a flush, microseconds.
    pub flush_latency_us_max: u64,
    /// Chance (ppm) that one written sector is misdirected (profile `hostile` only).
    pub misdirect_ppm: u32,
    /// Chance (ppm) that a trim leaves the old bytes readable.
    pub trim_stale_ppm: u32,
    /// Sectors per zone (misdirected writes stay inside a zone) and the first zone's sector.
    pub zone_sector_count: u64,
    /// First sector of zone 0.
    pub zone_base_sector: u64,
}

/// How a power cut treats the unflushed writes in the cache (SEC-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CrashMode {
    /// Every unflushed write is lost.
    DropAll,
    /// Unflushed sector writes land in order up to a random point (a torn write at a sector
    /// boundary), the rest are lost.
    Prefix,
    /// A random subset lands, in a random order.
    Subset,
}

/// Counters of what the device did and suffered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SsdStats {
    /// Read I/Os.
    pub reads: u64,
    /// Sectors written.
    pub sectors_written: u64,
    /// Flushes.
    pub flushes: u64,
    /// Trims.
    pub trims: u64,
    /// Reads that failed on a latent sector error.
    pub latent_hits: u64,
    /// Sector reads that returned a flipped byte.
    pub corrupt_hits: u64,
    /// Sectors written to the wrong place.
    pub misdirected: u64,
    /// Unflushed sector writes lost at a crash.
    pub lost_sectors: u64,
    /// Unflushed sector writes that landed at a crash.
    pub landed_sectors: u64,
    /// Power cuts.
    pub crashes: u64,
}

/// The simulated SSD. See the module docs for the fault atlas.
#[derive(Debug)]
pub struct SimSsd {
    sector_count: u64,
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<(u64, Box<[u8]>)>,
    latent: BTreeSet<u64>,
    corrupt: BTreeMap<u64, (usize, u8)>,
    ghost: BTreeMap<u64, Box<[u8]>>,
    rng: SimRng,
    cfg: SsdConfig,
    elapsed_us: u64,
    fault_hits: u64,
    stats: SsdStats,
}

impl SimSsd {
    /// A zeroed device of `sector_count` sectors whose latencies and faults come from `rng`.
    pub fn new(sector_count: u64, cfg: SsdConfig, rng: SimRng) -> SimSsd {
        let bytes = sector_count as usize * SECTOR;
        SimSsd {
            sector_count,
            durable: vec![0; bytes],
            current: vec![0; bytes],
            pending: Vec::new(),
            latent: BTreeSet::new(),
            corrupt: BTreeMap::new(),
            ghost: BTreeMap::new(),
            rng,
            cfg,
            elapsed_us: 0,
            fault_hits: 0,
            stats: SsdStats::default(),
        }
    }

    /// Simulated time spent in I/O since the last call; resets the counter.
    pub fn take_elapsed_us(&mut self) -> u64 {
        std::mem::take(&mut self.elapsed_us)
    }

    /// Reads that met a media fault (latent, corrupt, misdirected) so far.
    pub fn fault_hits(&self) -> u64 {
        self.fault_hits
    }

    /// The device's counters.
    pub fn stats(&self) -> SsdStats {
        self.stats
    }

    /// Unflushed sector writes in the cache.
    pub fn pending_sectors(&self) -> usize {
        self.pending.len()
    }

    /// The device at rest: every unflushed write lands, in order, as a drive's cache drains
    /// when it is idle (the at-rest medium fault, `world/headers.rs`, needs it: SEC-18's
    /// witness is written, not flushed).
    pub fn settle(&mut self) {
        for (s, data) in std::mem::take(&mut self.pending) {
            let at = s as usize * SECTOR;
            self.durable[at..at + SECTOR].copy_from_slice(&data);
        }
    }

    /// Makes reads of `sector` fail until it is rewritten, trimmed, or power cycles.
    pub fn inject_latent(&mut self, sector: u64) {
        if sector < self.sector_count {
            self.latent.insert(sector);
        }
    }

    /// Makes reads of `sector` return byte `offset` XOR `mask` (`mask != 0`) until it is
    /// rewritten, trimmed, or power cycles.
    pub fn inject_corrupt(&mut self, sector: u64, offset: usize, mask: u8) {
        debug_assert!(mask != 0 && offset < SECTOR, "a flip changes one byte of the sector");
        if sector < self.sector_count && mask != 0 && offset < SECTOR {
            self.corrupt.insert(sector, (offset, mask));
        }
    }

    /// What a read of `sector` would return now, media faults aside: the bytes that landed
    /// there (an astray write included). For choosing where a fault strikes.
    pub fn peek(&self, sector: u64) -> &[u8] {
        match self.ghost.get(&sector) {
            Some(g) => g,
            None => {
                let at = sector as usize * SECTOR;
                &self.current[at..at + SECTOR]
            }
        }
    }

    /// Flips byte `offset` of `sector` by `mask` on the medium itself, durably: unlike the
    /// overlay faults it outlives power cycles, until the sector is rewritten (the header
    /// atlas's damage at a power cut: a superblock copy, a free header). Only between a crash
    /// and the next open, when the cache is empty.
    pub fn flip_on_medium(&mut self, sector: u64, offset: usize, mask: u8) {
        debug_assert!(self.pending.is_empty(), "flips on the medium only while powered off");
        if sector < self.sector_count && offset < SECTOR {
            let at = sector as usize * SECTOR + offset;
            self.durable[at] ^= mask;
            self.current[at] ^= mask;
        }
    }

    /// Zeroes `sector` on the medium, like [`SimSsd::flip_on_medium`]: a sector the drive lost
    /// and now reads back as zeros (the header atlas's zeroed free header).
    pub fn zero_on_medium(&mut self, sector: u64) {
        debug_assert!(self.pending.is_empty(), "zeroes on the medium only while powered off");
        if sector < self.sector_count {
            let at = sector as usize * SECTOR;
            self.durable[at..at + SECTOR].fill(0);
            self.current[at..at + SECTOR].fill(0);
        }
    }

    /// The liveness phase: every media fault goes and no write goes astray any more.
    pub fn stop_faults(&mut self) {
        self.cfg.misdirect_ppm = 0;
        self.heal();
    }

    /// Removes every media fault (a power cycle).
    pub fn heal(&mut self) {
        self.latent.clear();
        self.corrupt.clear();
        self.ghost.clear();
    }

    /// Power cut: the cache loses or lands its unflushed writes according to `mode`, media
    /// faults are cleared (see the atlas), and the device reads back its durable image.
    /// Returns (sectors landed, sectors lost).
    pub fn crash(&mut self, mode: CrashMode) -> (u64, u64) {
        let pending = std::mem::take(&mut self.pending);
        let total = pending.len();
        let landed: Vec<(u64, Box<[u8]>)> = match mode {
            CrashMode::DropAll => Vec::new(),
            CrashMode::Prefix => {
                let keep = self.rng.below(total as u64 + 1) as usize;
                pending.into_iter().take(keep).collect()
            }
            CrashMode::Subset => {
                let mut chosen: Vec<(u64, Box<[u8]>)> =
                    pending.into_iter().filter(|_| self.rng.coin()).collect();
                // Any order: Fisher-Yates, so an older copy of a rewritten sector may win.
                for i in (1..chosen.len()).rev() {
                    let j = self.rng.below(i as u64 + 1) as usize;
                    chosen.swap(i, j);
                }
                chosen
            }
        };
        let n = landed.len();
        for (s, data) in landed {
            let at = s as usize * SECTOR;
            self.durable[at..at + SECTOR].copy_from_slice(&data);
        }
        self.current.copy_from_slice(&self.durable);
        self.heal();
        self.stats.crashes += 1;
        self.stats.landed_sectors += n as u64;
        self.stats.lost_sectors += (total - n) as u64;
        (n as u64, (total - n) as u64)
    }

    fn charge(&mut self, max_us: u64, sectors: usize) {
        // One I/O's latency plus a transfer cost of ~1 µs per sector (≈ 4 GB/s).
        self.elapsed_us += 1 + self.rng.below(max_us.max(1)) + sectors as u64;
    }

    fn read_sector(&mut self, s: u64, out: &mut [u8]) -> Result<(), DeviceError> {
        if self.latent.contains(&s) {
            self.fault_hits += 1;
            self.stats.latent_hits += 1;
            return Err(DeviceError::Io(std::io::Error::other(format!(
                "simulated latent sector error at sector {s}"
            ))));
        }
        let at = s as usize * SECTOR;
        match self.ghost.get(&s) {
            Some(g) => {
                self.fault_hits += 1;
                out.copy_from_slice(g);
            }
            None => out.copy_from_slice(&self.current[at..at + SECTOR]),
        }
        if let Some((off, mask)) = self.corrupt.get(&s) {
            self.fault_hits += 1;
            self.stats.corrupt_hits += 1;
            out[*off] ^= *mask;
        }
        Ok(())
    }

    fn write_sector(&mut self, s: u64, data: &[u8]) {
        self.latent.remove(&s);
        self.corrupt.remove(&s);
        let seen = self.ghost.remove(&s);
        let at = s as usize * SECTOR;
        if let Some(t) = self.misdirect_target(s) {
            // The truth (what a power cycle reveals) is the intended write; while running, the
            // intended sector reads back its old bytes and the target reads the new ones.
            // What `s` physically holds: an earlier write that went astray onto it stays there
            // when this one goes astray too.
            let old: Box<[u8]> = match seen {
                Some(g) => g,
                None => self.current[at..at + SECTOR].into(),
            };
            self.ghost.insert(s, old);
            self.ghost.insert(t, data.into());
            self.stats.misdirected += 1;
        }
        self.current[at..at + SECTOR].copy_from_slice(data);
        self.pending.push((s, data.into()));
        self.stats.sectors_written += 1;
    }

    fn misdirect_target(&mut self, s: u64) -> Option<u64> {
        if self.cfg.misdirect_ppm == 0 || !self.rng.chance_ppm(self.cfg.misdirect_ppm) {
            return None;
        }
        let (base, zs) = (self.cfg.zone_base_sector, self.cfg.zone_sector_count);
        if s < base || zs < 3 {
            return None;
        }
        let zone_first = base + (s - base) / zs * zs;
        if s == zone_first {
            return None; // zone headers are written in place
        }
        // Another data sector of the zone (never the header, never the sector itself).
        let mut t = zone_first + 1 + self.rng.below(zs - 2);
        if t >= s {
            t += 1;
        }
        (t < self.sector_count).then_some(t)
    }
}

impl BlockDevice for SimSsd {
    fn sector_count(&self) -> u64 {
        self.sector_count
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        let mut sectors = 0;
        for r in reads.iter() {
            sectors += check_io(r.first_sector, r.buf.len(), self.sector_count)? as usize;
        }
        self.stats.reads += reads.len() as u64;
        self.charge(self.cfg.read_latency_us_max, sectors);
        for r in reads.iter_mut() {
            for (i, chunk) in r.buf.chunks_mut(SECTOR).enumerate() {
                self.read_sector(r.first_sector + i as u64, chunk)?;
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        let mut sectors = 0;
        for w in writes {
            sectors += check_io(w.first_sector, w.data.len(), self.sector_count)? as usize;
        }
        self.charge(self.cfg.write_latency_us_max, sectors);
        for w in writes {
            for (i, chunk) in w.data.chunks(SECTOR).enumerate() {
                self.write_sector(w.first_sector + i as u64, chunk);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.charge(self.cfg.flush_latency_us_max, 0);
        for (s, data) in self.pending.drain(..) {
            let at = s as usize * SECTOR;
            self.durable[at..at + SECTOR].copy_from_slice(&data);
        }
        self.stats.flushes += 1;
        Ok(())
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        check_range(first_sector, sector_count, self.sector_count)?;
        self.charge(self.cfg.write_latency_us_max, 0);
        self.stats.trims += 1;
        if self.rng.chance_ppm(self.cfg.trim_stale_ppm) {
            return Ok(()); // the old bytes stay readable: allowed (SEC-14)
        }
        let zero = [0u8; SECTOR];
        for s in first_sector..first_sector + sector_count {
            self.write_sector_plain(s, &zero);
        }
        Ok(())
    }
}

impl SimSsd {
    fn write_sector_plain(&mut self, s: u64, data: &[u8]) {
        self.latent.remove(&s);
        self.corrupt.remove(&s);
        self.ghost.remove(&s);
        let at = s as usize * SECTOR;
        self.current[at..at + SECTOR].copy_from_slice(data);
        self.pending.push((s, data.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SsdConfig {
        SsdConfig {
            read_latency_us_max: 10,
            write_latency_us_max: 10,
            flush_latency_us_max: 100,
            misdirect_ppm: 0,
            trim_stale_ppm: 0,
            zone_sector_count: 8,
            zone_base_sector: 2,
        }
    }

    fn write(d: &mut SimSsd, s: u64, b: u8) {
        d.write_batch(&[WriteOp { first_sector: s, data: &[b; SECTOR] }]).unwrap();
    }

    fn read(d: &mut SimSsd, s: u64) -> Result<u8, DeviceError> {
        let mut buf = vec![0u8; SECTOR];
        d.read_batch(&mut [ReadOp { first_sector: s, buf: &mut buf }])?;
        Ok(buf[0])
    }

    #[test]
    fn flushed_writes_survive_and_unflushed_ones_may_not() {
        let mut d = SimSsd::new(20, cfg(), SimRng::new(1));
        write(&mut d, 3, 7);
        d.flush().unwrap();
        write(&mut d, 4, 9);
        assert_eq!(read(&mut d, 4).unwrap(), 9, "the cache serves unflushed writes");
        d.crash(CrashMode::DropAll);
        assert_eq!(read(&mut d, 3).unwrap(), 7, "SEC-2: flushed survives");
        assert_eq!(read(&mut d, 4).unwrap(), 0, "unflushed is dropped");
        assert!(d.take_elapsed_us() > 0, "I/O costs simulated time");
    }

    #[test]
    fn media_faults_repeat_until_rewritten_and_clear_at_power_cycle() {
        let mut d = SimSsd::new(20, cfg(), SimRng::new(2));
        write(&mut d, 5, 1);
        d.inject_latent(5);
        assert!(read(&mut d, 5).is_err());
        assert!(read(&mut d, 5).is_err(), "latent errors are repeatable");
        write(&mut d, 5, 2);
        assert_eq!(read(&mut d, 5).unwrap(), 2, "a rewrite remaps the sector");
        d.inject_corrupt(5, 0, 0xff);
        assert_eq!(read(&mut d, 5).unwrap(), 2 ^ 0xff);
        assert_eq!(read(&mut d, 5).unwrap(), 2 ^ 0xff, "corruption is repeatable");
        d.flush().unwrap();
        d.crash(CrashMode::Subset);
        assert_eq!(read(&mut d, 5).unwrap(), 2);
        assert_eq!(d.fault_hits(), 4);
    }

    #[test]
    fn misdirected_writes_stay_in_the_zone_and_heal() {
        let mut c = cfg();
        c.misdirect_ppm = 1_000_000;
        let mut d = SimSsd::new(2 + 16, c, SimRng::new(3));
        write(&mut d, 4, 5);
        assert_eq!(read(&mut d, 4).unwrap(), 0, "the intended sector keeps its old bytes");
        let hits: Vec<u64> = (3..10).filter(|s| read(&mut d, *s).unwrap() == 5).collect();
        assert_eq!(hits.len(), 1, "the write landed on exactly one other sector of zone 0");
        d.flush().unwrap();
        d.crash(CrashMode::DropAll);
        assert_eq!(read(&mut d, 4).unwrap(), 5, "the truth appears at power cycle");
    }

    #[test]
    fn flips_on_the_medium_outlive_power_cycles_until_rewritten() {
        let mut d = SimSsd::new(8, cfg(), SimRng::new(4));
        write(&mut d, 1, 7);
        d.flush().unwrap();
        d.crash(CrashMode::DropAll);
        d.flip_on_medium(1, 0, 0x10);
        assert_eq!(d.peek(1)[0], 7 ^ 0x10);
        d.crash(CrashMode::DropAll);
        assert_eq!(read(&mut d, 1).unwrap(), 7 ^ 0x10, "a power cycle does not heal the medium");
        assert_eq!(d.fault_hits(), 0, "a flip on the medium is data, not an overlay fault");
        write(&mut d, 1, 9);
        d.flush().unwrap();
        d.crash(CrashMode::DropAll);
        assert_eq!(read(&mut d, 1).unwrap(), 9, "a rewrite replaces it");
    }
}
