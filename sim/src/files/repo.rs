//! One repository of the `fs` profile: a space (`cellar::marks::VolumeSpace`) whose cell and
//! store live on a sector engine over a `SimSsd`, and the faults done to it: power cuts with
//! recovery, latent sector errors and flipped bytes.
//!
//! The volumes hold the engine through one `SharedEngine` for the whole run; a power cut swaps
//! the engine out of it, cuts the device's power, recovers it and swaps the recovered engine
//! back in, so the volumes (and what borrows them) outlive every crash. Jobs of the crashed
//! process are dropped by the caller first: their modes die with them (VOL-4).

use crate::oracle::Violation;
use crate::rng::SimRng;
use crate::ssd::{CrashMode, SimSsd, SsdConfig};
use cellar::marks::{MarkInfo, MarkName, Space, VolumeSpace};
use cellar::sector::adapters::{SharedEngine, share};
use cellar::sector::{Engine, EngineConfig, SectorCell, SectorStore};
use cellar::storage::volume::{ModeGate, Volume};
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks a mutex; the simulator is single-threaded, so poisoning carries no information.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sectors of each repository's device: two superblocks and 1024 zones of 8.
pub const FS_DEVICE_SECTOR_COUNT: u64 = 2 + 1024 * 8;
/// The salt of each repository's map.
const MAP_SALT: [u8; 32] = [0x4d; 32];

/// One repository.
pub struct Repo {
    /// `A` or `B`.
    pub name: &'static str,
    engine: SharedEngine<SimSsd>,
    cfg: EngineConfig,
    spare_ssd: SsdConfig,
    /// The space.
    pub space: VolumeSpace,
    /// Each mark's volume, opened for creation (marks are created by the first publish).
    pub marks: Vec<Volume>,
    /// Media faults injected so far: reads may fail (never lie) once this is non-zero.
    pub media_faults: std::cell::Cell<u64>,
}

impl Repo {
    /// A repository on a fresh device; `marks` are the mark names and salts it may hold.
    pub fn new(
        name: &'static str,
        ssd: SimSsd,
        cfg: EngineConfig,
        spare_ssd: SsdConfig,
        marks: &[(MarkName, [u8; 32])],
    ) -> Result<Repo, Violation> {
        let engine = Engine::format(ssd, cfg.clone())
            .map_err(|e| Violation::new("format", e.to_string()))?;
        let engine = share(engine);
        let vol = Volume::with_modes(
            Arc::new(SectorCell::new(engine.clone(), 0)),
            Arc::new(SectorStore::new(engine.clone())),
            Arc::new(ModeGate::new()),
        );
        let space = VolumeSpace::new(vol, MAP_SALT);
        let mut vols = Vec::new();
        for (m, salt) in marks {
            let template = MarkInfo::new(*salt, 0);
            let v = space
                .open(m, Some(&template))
                .map_err(|e| Violation::new("MARK-6 open", e.to_string()))?;
            vols.push(v);
        }
        Ok(Repo {
            name,
            engine,
            cfg,
            spare_ssd,
            space,
            marks: vols,
            media_faults: Default::default(),
        })
    }

    /// Has a media fault been injected (so a read may fail, but never lie)?
    pub fn faulted(&self) -> bool {
        self.media_faults.get() > 0
    }

    /// One compaction step of the engine (errors are the engine's to report, not ours).
    pub fn compact(&self) {
        let _ = lock(&self.engine).compact_step();
    }

    /// Simulated device time spent since the last call, µs.
    pub fn take_elapsed_us(&self) -> u64 {
        lock(&self.engine).device_mut().take_elapsed_us()
    }

    /// Power cut and restart: the device keeps a random part of its unflushed writes, and the
    /// engine recovers from it (SEC-7). Returns a line for the trace.
    pub fn crash(&self, rng: &mut SimRng) -> Result<(String, u64, u64), Violation> {
        // A throwaway engine holds the slot while the real one is down.
        let spare = SimSsd::new(2 + 8 * 8, self.spare_ssd, rng.fork());
        let spare = Engine::format(spare, self.cfg.clone())
            .map_err(|e| Violation::new("simulator", format!("spare engine: {e}")))?;
        let engine = std::mem::replace(&mut *lock(&self.engine), spare);
        let mut ssd = engine.into_device();
        let mode = match rng.below(3) {
            0 => CrashMode::DropAll,
            1 => CrashMode::Prefix,
            _ => CrashMode::Subset,
        };
        let (landed, lost) = ssd.crash(mode);
        let engine = Engine::open(ssd, self.cfg.clone())
            .map_err(|e| Violation::new("SEC-7 recovery opens the device", e.to_string()))?;
        let rep = engine.recovery_report();
        let damaged = !rep.corrupt_sectors.is_empty()
            || !rep.corrupt_keys.is_empty()
            || !rep.corrupt_zone_headers.is_empty();
        if damaged && self.media_faults.get() == 0 {
            return Err(Violation::new(
                "SEC-7 recovery reports corruption only where faults were injected",
                format!("{rep:?}"),
            ));
        }
        *lock(&self.engine) = engine;
        let line =
            format!("CRASH {} {mode:?}: {landed} unflushed sectors landed, {lost} lost", self.name);
        Ok((line, landed, lost))
    }

    /// A latent sector error or a flipped byte at a random sector of the zones.
    pub fn media_fault(&self, rng: &mut SimRng, latent: bool) -> String {
        let sector = 2 + rng.below(FS_DEVICE_SECTOR_COUNT - 2);
        let mut e = lock(&self.engine);
        if latent {
            e.device_mut().inject_latent(sector);
        } else {
            let offset = rng.below(cellar::sector::SECTOR_SIZE_BYTES as u64) as usize;
            e.device_mut().inject_corrupt(sector, offset, 1 << rng.below(8));
        }
        drop(e);
        self.media_faults.set(self.media_faults.get() + 1);
        let kind = if latent { "latent error" } else { "flipped bit" };
        format!("FAULT {} {kind} at sector {sector}", self.name)
    }
}
