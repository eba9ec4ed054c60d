//! The fault injectors: power cuts (the device loses, keeps or tears its unflushed sectors)
//! followed by a restart whose recovery is checked against the model, latent sector errors,
//! payload corruption (only where the fault atlas says a record still lies) and network
//! partitions of the cell clients; and the counts of what was injected.
//!
//! Why faults are events like any other: their times come from the seeded generator and the
//! same queue, so a failing run replays exactly. No fault is injected once the liveness phase
//! has begun.

use super::{Ev, World, lock};
use crate::oracle::Violation;
use crate::ssd::{CrashMode, SimSsd};
use cellar::sector::{Engine, Key, Record, SECTOR_SIZE_BYTES, SectorError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long a crashed engine stays down, at most, µs.
pub const DOWNTIME_US_MAX: u64 = 30_000;

/// Faults injected in one run, by kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FaultCounts {
    /// Power cuts.
    pub crashes: u64,
    /// Unflushed sectors lost at power cuts.
    pub lost_sectors: u64,
    /// Unflushed sectors that landed (possibly out of order or torn) at power cuts.
    pub landed_sectors: u64,
    /// Latent sector errors injected.
    pub latent: u64,
    /// Payload corruptions injected.
    pub corrupt: u64,
    /// Misdirected sector writes.
    pub misdirected: u64,
    /// Header faults while running (record headers, packing sectors).
    pub header: u64,
    /// Of those, flips in a packing sector (more than one record in the sector).
    pub header_packed: u64,
    /// Header damage on the medium at power cuts (a superblock copy, a free header).
    pub header_medium: u64,
    /// Of those, superblock copies.
    pub medium_superblock: u64,
    /// Records flipped on the medium at rest (the cache settled first) at power cuts.
    pub medium_records: u64,
    /// Clean shutdowns (the engine wrote its checkpoint, SEC-19) before power cuts.
    pub clean_shutdowns: u64,
    /// Restarts that loaded a checkpoint instead of scanning.
    pub checkpoint_loads: u64,
    /// Network messages lost.
    pub net_dropped: u64,
    /// Network messages duplicated.
    pub net_duplicated: u64,
    /// Partitions.
    pub partitions: u64,
    /// Gossip node crashes (restarted from their store and persisted head).
    pub gossip_crashes: u64,
    /// Gossip messages rejected by their receiver (e.g. objects of a dropped fetch).
    pub gossip_rejected: u64,
    /// Acknowledged gossip client commits.
    pub gossip_writes: u64,
    /// Gossip messages delivered.
    pub gossip_delivered: u64,
    /// The highest level of a committed gossip tree (depth − 1); over a campaign, the highest
    /// of any run (the `deep-trees` stress).
    pub gossip_tree_level_max: u64,
    /// Acknowledged writes of exactly the largest legal path or value (the `limits` stress).
    pub limit_writes: u64,
    /// Writes one byte past a limit, refused with a typed error (the `limits` stress).
    pub limit_refusals: u64,
    /// `full` profile: times the device was filled until writes were refused.
    pub full_fills: u64,
    /// `full` profile: times it was drained to no key.
    pub full_drains: u64,
    /// Ordinary operations refused for space (`DeviceFull`).
    pub space_refusals: u64,
    /// Secure-channel handshakes finished (either end; `gossip` profile).
    pub channel_established: u64,
    /// Channel ends a node refused or dropped (failed handshake or record, timeout).
    pub channel_refused: u64,
    /// Network attacker actions (replays, flips, truncations, injections, connections).
    pub attacks: u64,
    /// Bytes the network attacker saw (all scanned for refs, CH-10).
    pub attacker_seen_bytes: u64,
    /// `files` profile: power cuts that fell in the middle of an operation.
    pub files_cuts_mid_op: u64,
    /// `files` profile: directory entry changes power cuts lost.
    pub files_entries_lost: u64,
    /// `files` profile: files whose unsynced bytes power cuts lost or cut short.
    pub files_reverted: u64,
    /// `files` profile: file-system steps refused with `StorageFull`.
    pub files_full_refusals: u64,
    /// `files` profile: processes killed.
    pub files_kills: u64,
}

impl FaultCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &FaultCounts) {
        self.crashes += o.crashes;
        self.lost_sectors += o.lost_sectors;
        self.landed_sectors += o.landed_sectors;
        self.latent += o.latent;
        self.corrupt += o.corrupt;
        self.misdirected += o.misdirected;
        self.header += o.header;
        self.header_packed += o.header_packed;
        self.header_medium += o.header_medium;
        self.medium_superblock += o.medium_superblock;
        self.medium_records += o.medium_records;
        self.clean_shutdowns += o.clean_shutdowns;
        self.checkpoint_loads += o.checkpoint_loads;
        self.net_dropped += o.net_dropped;
        self.net_duplicated += o.net_duplicated;
        self.partitions += o.partitions;
        self.gossip_crashes += o.gossip_crashes;
        self.gossip_rejected += o.gossip_rejected;
        self.gossip_writes += o.gossip_writes;
        self.gossip_delivered += o.gossip_delivered;
        self.gossip_tree_level_max = self.gossip_tree_level_max.max(o.gossip_tree_level_max);
        self.limit_writes += o.limit_writes;
        self.limit_refusals += o.limit_refusals;
        self.full_fills += o.full_fills;
        self.full_drains += o.full_drains;
        self.space_refusals += o.space_refusals;
        self.channel_established += o.channel_established;
        self.channel_refused += o.channel_refused;
        self.attacks += o.attacks;
        self.attacker_seen_bytes += o.attacker_seen_bytes;
        self.files_cuts_mid_op += o.files_cuts_mid_op;
        self.files_entries_lost += o.files_entries_lost;
        self.files_reverted += o.files_reverted;
        self.files_full_refusals += o.files_full_refusals;
        self.files_kills += o.files_kills;
    }
}

/// Reads every key of the workload (after a recovery).
fn read_all(
    engine: &mut Engine<SimSsd>,
    keys: u64,
) -> BTreeMap<Key, Result<Option<Record>, SectorError>> {
    (0..keys).map(|k| (k, engine.read(k))).collect()
}

impl World<'_> {
    /// Power cut: the engine's device keeps a random part of its unflushed writes; the
    /// engine restarts after a seeded downtime.
    pub(super) fn crash(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        // The server goes down with the engine: its sessions, and every connection to it.
        self.cell_server = None;
        self.streams.break_all();
        let Some(shared) = self.engine.take() else { return Ok(()) };
        let mut engine = match Arc::try_unwrap(shared) {
            Ok(m) => m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            Err(_) => {
                return Err(Violation::new("simulator", "engine still shared at a crash".into()));
            }
        };
        self.clean_shutdown(&mut engine);
        // SEC-18: sometimes the device first comes to rest (every write lands), and then a
        // byte of a key's current record flips on the medium.
        let rest = self.knobs.medium_at_rest
            && self.knobs.medium_ppm > 0
            && self.rng.chance_ppm(self.knobs.medium_ppm / 2);
        let located = if rest { self.located(&engine) } else { Vec::new() };
        let mut ssd = engine.into_device();
        if rest {
            ssd.settle();
        }
        let mode = match self.rng.below(3) {
            0 => CrashMode::DropAll,
            1 => CrashMode::Prefix,
            _ => CrashMode::Subset,
        };
        let pending = ssd.pending_sectors();
        let (landed, lost) = ssd.crash(mode);
        self.damage_medium(&mut ssd);
        if rest {
            self.damage_at_rest(&mut ssd, &located);
        }
        self.faults.crashes += 1;
        self.faults.landed_sectors += landed;
        self.faults.lost_sectors += lost;
        self.trace.event(
            self.now_us,
            format_args!(
                "CRASH {mode:?}: {pending} unflushed sectors, {landed} landed, {lost} lost"
            ),
        );
        self.down = Some(ssd);
        let d = 1 + self.rng.below(DOWNTIME_US_MAX);
        self.at(d, Ev::Restart);
        Ok(())
    }

    /// SEC-19: sometimes the power cut follows a clean shutdown: everything written is flushed
    /// (the model is told) and the checkpoint is written. The decision is a hash of the run's
    /// knobs and the crash count, not a draw, so a run's other draws do not move.
    fn clean_shutdown(&mut self, engine: &mut Engine<SimSsd>) {
        let ppm = self.knobs.clean_shutdown_ppm;
        let h = (self.faults.crashes + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(ppm).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        if ppm == 0 || (h >> 20) % 1_000_000 >= u64::from(ppm) {
            return;
        }
        match engine.checkpoint() {
            Ok(outcome) => {
                self.model.on_flush();
                self.faults.clean_shutdowns += 1;
                self.trace.event(self.now_us, format_args!("SHUTDOWN clean: {outcome:?}"));
            }
            // A device error on the way: as a power cut in the middle of it (the writes it
            // flushed are durable, which the model, not told, allows either way).
            Err(e) => self.trace.event(self.now_us, format_args!("SHUTDOWN failed: {e}")),
        }
    }

    /// The engine restarts; what it recovers must be what the model allows (SEC-7).
    pub(super) fn restart(&mut self) -> Result<(), Violation> {
        let Some(mut ssd) = self.down.take() else { return Ok(()) };
        let mut engine;
        let mut observed;
        let mut cycles = 0;
        loop {
            let astray = ssd.stats().misdirected;
            engine = self.open(ssd)?;
            observed = read_all(&mut engine, self.knobs.kv_keys);
            // SEC-17: recovery's own writes (the seals of §8 step 6) can go astray, and a read
            // meeting one fails naming its key, as it must. The recovered state is then
            // observed after one more power cut, which shows where the writes really landed.
            let wrote_astray = engine.device_mut().stats().misdirected > astray;
            if cycles == 3 || !wrote_astray || observed.values().all(Result::is_ok) {
                break;
            }
            cycles += 1;
            ssd = engine.into_device();
            ssd.crash(CrashMode::DropAll);
            self.trace.event(
                self.now_us,
                format_args!("CRASH again: a read met a recovery write that went astray"),
            );
        }
        // SEC-19: an open that loaded a checkpoint checked nothing on the medium: a flip at
        // rest that no read met is still there, and a later scan may report it (for a packed
        // sector, on every record after the damage, §12).
        let latent: Vec<Key> = if engine.recovery_report().checkpoint.is_some() {
            (0..self.knobs.kv_keys).filter(|k| self.model.is_damaged_on_medium(*k)).collect()
        } else {
            Vec::new()
        };
        self.model.check_recovered(&observed)?;
        for k in latent {
            if observed.get(&k).is_some_and(Result::is_ok) {
                self.model.damage_on_medium(k);
            }
        }
        if self.rng.below(4) == 0 {
            engine = self.reopen(engine, &observed)?;
        }
        let _ = engine.device_mut().take_elapsed_us();
        self.engine = Some(cellar::sector::adapters::share(engine));
        if !self.liveness && self.knobs.crash_every_us > 0 {
            let d = self.every(self.knobs.crash_every_us);
            self.at(d, Ev::Crash);
        }
        Ok(())
    }

    /// Opens the device and checks the recovery report (SEC-7).
    fn open(&mut self, ssd: SimSsd) -> Result<Engine<SimSsd>, Violation> {
        let damaged = self.damaged_headers(&ssd);
        let engine = Engine::open(ssd, self.engine_cfg.clone())
            .map_err(|e| Violation::new("SEC-7 recovery opens the device", e.to_string()))?;
        let rep = engine.recovery_report();
        self.trace.event(self.now_us, format_args!("RESTART: {rep:?}"));
        self.faults.checkpoint_loads += u64::from(rep.checkpoint.is_some());
        self.check_report(rep, &damaged)?;
        Ok(engine)
    }

    /// SEC-7 "recovery is idempotent": a second power cut right after recovery, with no new
    /// operation, must recover the same state.
    fn reopen(
        &mut self,
        engine: Engine<SimSsd>,
        first: &BTreeMap<Key, Result<Option<Record>, SectorError>>,
    ) -> Result<Engine<SimSsd>, Violation> {
        let mut ssd = engine.into_device();
        let (landed, lost) = ssd.crash(CrashMode::DropAll);
        self.trace
            .event(self.now_us, format_args!("CRASH again at once ({landed} landed, {lost} lost)"));
        let mut engine = self.open(ssd)?;
        let again = read_all(&mut engine, self.knobs.kv_keys);
        for (k, a) in first {
            let va = a.as_ref().ok().map(|r| r.as_ref().map(|r| &r.value));
            let vb =
                again.get(k).and_then(|b| b.as_ref().ok()).map(|r| r.as_ref().map(|r| &r.value));
            if va != vb {
                return Err(Violation::new(
                    "SEC-7 recovery is idempotent",
                    format!(
                        "key {k}: first recovery {:?}, second {:?}",
                        va.map(|v| v.map(Vec::len)),
                        vb.map(|v| v.map(Vec::len))
                    ),
                ));
            }
        }
        Ok(engine)
    }

    /// A latent sector error, mostly under a live record.
    pub(super) fn inject_latent(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        if let Some(engine) = self.engine.clone() {
            let k = self.rng.below(self.knobs.kv_keys);
            let mut e = lock(&engine);
            let sector = match e.version(k) {
                Some(v) if self.rng.below(4) != 0 => u64::from(v.sector()),
                _ => 2 + self.rng.below(self.knobs.device_sector_count() - 2),
            };
            e.device_mut().inject_latent(sector);
            drop(e);
            self.faults.latent += 1;
            self.trace.event(self.now_us, format_args!("FAULT latent sector error at {sector}"));
        }
        let d = self.every(self.knobs.latent_every_us);
        self.at(d, Ev::Latent);
        Ok(())
    }

    /// One flipped payload bit of a record that has not moved since it was written.
    pub(super) fn inject_corrupt(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let keys = self.model.plain_keys();
        if let (Some(engine), false) = (self.engine.clone(), keys.is_empty()) {
            let k = keys[self.rng.below(keys.len() as u64) as usize];
            let mut e = lock(&engine);
            // Only a record that has not moved since it was written: its payload starts right
            // after the 80-byte header of the version's sector (fault atlas).
            if let Some(v) = e.version(k).filter(|v| Some(*v) == self.model.version(k)) {
                let span = self.model.len_of(k).min(SECTOR_SIZE_BYTES - 80) as u64;
                let offset = 80 + self.rng.below(span) as usize;
                let mask = 1u8 << self.rng.below(8);
                e.device_mut().inject_corrupt(u64::from(v.sector()), offset, mask);
                drop(e);
                self.model.damage(k);
                self.faults.corrupt += 1;
                self.trace.event(
                    self.now_us,
                    format_args!("FAULT corrupt key {k} sector {} byte {offset}", v.sector()),
                );
            }
        }
        let d = self.every(self.knobs.corrupt_every_us);
        self.at(d, Ev::Corrupt);
        Ok(())
    }

    /// Cuts a random set of cell clients off the server until a heal.
    pub(super) fn partition(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let cut: Vec<u32> = (0..self.knobs.cell_clients).filter(|_| self.rng.coin()).collect();
        self.trace
            .event(self.now_us, format_args!("FAULT partition clients {cut:?} from the server"));
        self.net.partitioned = cut.into_iter().collect();
        self.faults.partitions += 1;
        let heal = 1_000 + self.rng.below(100_000);
        self.at(heal, Ev::Heal);
        let d = heal + self.every(self.knobs.partition_every_us);
        self.at(d, Ev::Partition);
        Ok(())
    }

    /// The cell network partition heals.
    pub(super) fn heal(&mut self) -> Result<(), Violation> {
        self.net.partitioned.clear();
        self.trace.event(self.now_us, format_args!("partition healed"));
        Ok(())
    }
}
