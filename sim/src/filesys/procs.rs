//! The `files` profile's run loop: processes, their operations and the faults between them.

use super::VOLUME_DIR;
use super::check::{check_full_error, get, got_name, temp_files};
use super::model::{Got, Model};
use crate::knobs::Knobs;
use crate::oracle::Violation;
use crate::rng::SimRng;
use crate::simfs::{Pid, SimFs};
use crate::trace::Trace;
use cellar::Hash;
use cellar::env::DetEntropy;
use cellar::storage::cell::CellError;
use cellar::storage::fsio::path_of;
use cellar::storage::volume::{DirVolume, Mode, ModeHold, VolumeError};
use std::path::Path;
use std::sync::Arc;

/// Distinct blobs the processes post (so posts repeat and deletes hit).
const BLOB_POOL: u64 = 40;
/// Largest blob, bytes.
const BLOB_SIZE_MAX_BYTES: u64 = 3_000;
/// Mean simulated time of one event, µs.
const EVENT_US_MEAN: u64 = 100;

/// One simulated process.
pub(super) struct Proc {
    pub(super) pid: Pid,
    vol: Option<DirVolume>,
    hold: Option<ModeHold>,
    /// Blobs this process posted deferred and has not synced.
    deferred: Vec<Deferred>,
}

/// A deferred post not yet synced.
struct Deferred {
    hash: Hash,
    bytes: Vec<u8>,
    /// Posted under the Expand hold the process still holds, and no delete since: its handle
    /// must read it back (STORE-6).
    readback: bool,
    /// No delete of the blob since: the next `sync` makes it durable. (After a delete the
    /// handle's temp file may or may not still be pending, so it may or may not come back.)
    ack_on_sync: bool,
}

/// A run in progress.
pub struct Run {
    pub(super) rng: SimRng,
    pub(super) knobs: Knobs,
    pub(super) fs: SimFs,
    pub(super) model: Model,
    procs: Vec<Proc>,
    next_pid: Pid,
    pub(super) trace: Trace,
    pub(super) now_us: u64,
    pub(super) ops: u64,
    pub(super) kills: u64,
    pub(super) flips: u64,
}

/// The bytes of pool blob `id`: a length and a pattern drawn from the id alone.
fn blob_bytes(id: u64) -> Vec<u8> {
    let mut r = SimRng::new(id ^ 0x0b10_b5ee_d000_0000);
    let len = r.below(BLOB_SIZE_MAX_BYTES + 1) as usize;
    let mut bytes = vec![0u8; len];
    r.fill(&mut bytes);
    bytes
}

/// The outcome of an operation once faults are accounted for.
enum Done {
    /// It returned (successfully or with an error the fault explains).
    Returned,
    /// The machine stopped in the middle: the caller applies the power cut.
    Cut,
}

impl Run {
    pub(super) fn new(rng: SimRng, knobs: Knobs, fs: SimFs, trace: Trace) -> Run {
        Run {
            rng,
            knobs,
            fs,
            model: Model::new(),
            procs: Vec::new(),
            next_pid: 1,
            trace,
            now_us: 0,
            ops: 0,
            kills: 0,
            flips: 0,
        }
    }

    pub(super) fn event(&mut self, what: std::fmt::Arguments<'_>) {
        self.trace.event(self.now_us, what);
    }

    pub(super) fn spawn(&mut self) -> Proc {
        let pid = self.next_pid;
        self.next_pid += 1;
        Proc { pid, vol: None, hold: None, deferred: Vec::new() }
    }

    pub(super) fn open(&mut self, pid: Pid) -> Result<DirVolume, VolumeError> {
        let entropy = Arc::new(DetEntropy::new(self.rng.next_u64()));
        DirVolume::open_in(self.fs.process(pid), Path::new(VOLUME_DIR), entropy)
    }

    pub(super) fn run(&mut self, ticks: u64) -> Result<(), Violation> {
        let entropy = Arc::new(DetEntropy::new(self.rng.next_u64()));
        DirVolume::init_in(self.fs.process(0), Path::new(VOLUME_DIR), entropy)
            .map_err(|e| Violation::new("a volume initialises", e.to_string()))?;
        self.fs.set_full_ppm(self.knobs.files_full_ppm);
        for _ in 0..self.knobs.files_procs {
            let p = self.spawn();
            self.procs.push(p);
        }
        let cut_every_events = self.knobs.crash_every_us / EVENT_US_MEAN;
        let flip_every_events = self.knobs.corrupt_every_us / EVENT_US_MEAN;
        for _ in 0..ticks {
            self.now_us += self.rng.range(EVENT_US_MEAN / 2, EVENT_US_MEAN * 3 / 2);
            if cut_every_events > 0 && self.rng.below(cut_every_events) == 0 {
                if self.rng.coin() {
                    self.power_cut()?;
                } else {
                    let steps = self.rng.below(12);
                    self.event(format_args!("power cut armed after {steps} steps"));
                    self.fs.arm_cut(steps);
                }
            }
            if cut_every_events > 0 && self.rng.below(cut_every_events * 2) == 0 {
                self.kill()?;
            }
            if flip_every_events > 0 && self.rng.below(flip_every_events) == 0 {
                self.flip();
            }
            let i = self.rng.below(self.procs.len() as u64) as usize;
            if let Done::Cut = self.step(i)? {
                self.power_cut()?;
            }
        }
        self.fs.disarm_cut();
        self.check_all()
    }

    /// A media fault: one byte of a blob's file flipped (its synced and unsynced bytes alike).
    fn flip(&mut self) {
        let Some(hash) = self.pick_blob() else { return };
        let path = Path::new(VOLUME_DIR)
            .join("store")
            .join(format!("{:02x}", hash.0[0]))
            .join(hash.to_hex());
        let at = self.rng.next_u64();
        if self.fs.flip_byte(&path, at) {
            self.flips += 1;
            self.model.damaged(hash);
            self.event(format_args!("flipped a byte of blob {hash}"));
        }
    }

    /// Kills a random process: its holds and locks go (VOL-4), its unsynced deferred posts are
    /// never promised.
    fn kill(&mut self) -> Result<(), Violation> {
        let i = self.rng.below(self.procs.len() as u64) as usize;
        let fresh = self.spawn();
        let old = std::mem::replace(&mut self.procs[i], fresh);
        self.fs.kill(old.pid);
        self.model.holds.remove(&old.pid);
        self.kills += 1;
        self.event(format_args!("kill -9 process {}", old.pid));
        drop(old);
        Ok(())
    }

    /// A power cut: every process dies; the file system keeps what its crash semantics allow;
    /// a fresh process checks the whole volume.
    fn power_cut(&mut self) -> Result<(), Violation> {
        let pids: Vec<Pid> = self.procs.iter().map(|p| p.pid).collect();
        let fx = self.fs.power_cut(pids);
        self.procs.clear();
        self.model.power_cut();
        self.event(format_args!(
            "power cut: {} directory changes lost, {} files lost unsynced bytes",
            fx.entries_lost, fx.files_reverted
        ));
        for _ in 0..self.knobs.files_procs {
            let p = self.spawn();
            self.procs.push(p);
        }
        self.check_all()
    }

    /// One operation of process `i`.
    fn step(&mut self, i: usize) -> Result<Done, Violation> {
        if self.procs[i].vol.is_none() {
            let pid = self.procs[i].pid;
            let full_before = self.fs.counts().full_refusals;
            match self.open(pid) {
                Ok(v) => self.procs[i].vol = Some(v),
                Err(e) => {
                    return self.explain(full_before, &format!("open: {e}"), "a volume opens");
                }
            }
        }
        self.ops += 1;
        match self.rng.below(20) {
            0..=5 => self.post(i, false),
            6..=7 => self.post(i, true),
            8 => self.sync(i),
            9..=11 => self.get(i),
            12..=13 => self.delete(i),
            14..=16 => self.swap(i),
            _ => self.toggle_mode(i),
        }
    }

    /// An operation failed: fine if the machine stopped (`Cut`) or the disk filled up during
    /// it; otherwise a violation of `rule`.
    fn explain(&self, full_before: u64, what: &str, rule: &str) -> Result<Done, Violation> {
        if self.fs.stopped() {
            return Ok(Done::Cut);
        }
        if self.fs.counts().full_refusals > full_before {
            return Ok(Done::Returned);
        }
        Err(Violation::new(rule, format!("failed with no fault injected: {what}")))
    }

    /// Makes process `i` hold `mode` if it can. `Some(done)` when the operation that wanted it
    /// must stop there: the machine stopped (`Cut`), or the other mode is held (`Returned`).
    fn hold(&mut self, i: usize, mode: Mode) -> Result<Option<Done>, Violation> {
        if let Some(h) = &self.procs[i].hold {
            if h.mode() == mode {
                return Ok(None);
            }
            self.end_hold(i);
        }
        match self.begin(i, mode)? {
            Done::Cut => Ok(Some(Done::Cut)),
            Done::Returned if self.procs[i].hold.is_none() => Ok(Some(Done::Returned)),
            Done::Returned => Ok(None),
        }
    }

    fn begin(&mut self, i: usize, mode: Mode) -> Result<Done, Violation> {
        let pid = self.procs[i].pid;
        let allowed = self.model.may_begin(mode);
        let full_before = self.fs.counts().full_refusals;
        let r = self.procs[i].vol.as_ref().map(|v| v.volume.modes.begin(mode));
        let Some(r) = r else { return Ok(Done::Returned) };
        self.event(format_args!(
            "process {pid} begins {mode}: {:?}",
            r.as_ref().map(ModeHold::mode)
        ));
        match r {
            Ok(h) if allowed => {
                self.procs[i].hold = Some(h);
                self.model.holds.insert(pid, mode);
                Ok(Done::Returned)
            }
            Ok(_) => Err(Violation::new(
                "VOL-2 modes exclude each other",
                format!(
                    "process {pid} began {mode} while {:?} hold {}",
                    self.model.holders(mode.other()),
                    mode.other()
                ),
            )),
            Err(VolumeError::ModeConflict { .. }) if !allowed => Ok(Done::Returned),
            Err(VolumeError::ModeConflict { .. }) => Err(Violation::new(
                "VOL-6 a begin is refused only while the other mode is held",
                format!("process {pid} was refused {mode}; live holds {:?}", self.model.holds),
            )),
            Err(e) => {
                self.explain(full_before, &e.to_string(), "VOL-6 a begin fails only for a fault")
            }
        }
    }

    /// Process `i` ends its mode. Its handle need no longer read back its unsynced deferred
    /// posts: once Expand ends a cleanup may delete what they named (the volume protocol syncs
    /// before it publishes, so real jobs never end Expand with posts pending).
    fn end_hold(&mut self, i: usize) {
        let p = &mut self.procs[i];
        p.hold = None;
        for d in &mut p.deferred {
            d.readback = false;
        }
        self.model.holds.remove(&p.pid);
        let pid = p.pid;
        self.event(format_args!("process {pid} ends its mode"));
    }

    fn toggle_mode(&mut self, i: usize) -> Result<Done, Violation> {
        if self.procs[i].hold.is_some() {
            self.end_hold(i);
            return Ok(Done::Returned);
        }
        let mode = if self.rng.coin() { Mode::Expand } else { Mode::Contract };
        self.begin(i, mode)
    }

    fn post(&mut self, i: usize, deferred: bool) -> Result<Done, Violation> {
        if let Some(done) = self.hold(i, Mode::Expand)? {
            return Ok(done);
        }
        let bytes = blob_bytes(self.rng.below(BLOB_POOL));
        let hash = Hash::of(&bytes);
        let Some(vol) = self.procs[i].vol.as_ref() else { return Ok(Done::Returned) };
        let fanout = Path::new(VOLUME_DIR).join("store").join(format!("{:02x}", hash.0[0]));
        let temps_before = temp_files(&self.fs, &fanout);
        let full_before = self.fs.counts().full_refusals;
        let r = if deferred {
            vol.volume.store.post_deferred(&bytes)
        } else {
            vol.volume.store.post(&bytes)
        };
        let pid = self.procs[i].pid;
        self.event(format_args!(
            "process {pid} posts{} {hash}: {}",
            if deferred { " deferred" } else { "" },
            r.is_ok()
        ));
        match r {
            Ok(h) if h != hash => {
                Err(Violation::new("STORE-1 a blob is named by its hash", format!("{h} != {hash}")))
            }
            Ok(_) if deferred => {
                self.model.maybe(hash, &bytes);
                let d = Deferred { hash, bytes, readback: true, ack_on_sync: true };
                self.procs[i].deferred.push(d);
                Ok(Done::Returned)
            }
            Ok(_) => {
                self.model.acked(hash, &bytes);
                Ok(Done::Returned)
            }
            Err(e) => {
                self.model.maybe(hash, &bytes);
                let done = self.explain(
                    full_before,
                    &e.to_string(),
                    "STORE-5 a post fails only for a fault",
                )?;
                if let Done::Returned = done {
                    check_full_error(&e)?;
                    if temp_files(&self.fs, &fanout) > temps_before {
                        return Err(Violation::new(
                            "STORE-5 a failed post leaves no temp file",
                            format!("{} after a failed post of {hash}", fanout.display()),
                        ));
                    }
                }
                Ok(done)
            }
        }
    }

    fn sync(&mut self, i: usize) -> Result<Done, Violation> {
        let Some(vol) = self.procs[i].vol.as_ref() else { return Ok(Done::Returned) };
        let full_before = self.fs.counts().full_refusals;
        let r = vol.volume.store.sync();
        let pid = self.procs[i].pid;
        self.event(format_args!(
            "process {pid} syncs {} deferred: {}",
            self.procs[i].deferred.len(),
            r.is_ok()
        ));
        match r {
            Ok(()) => {
                for d in std::mem::take(&mut self.procs[i].deferred) {
                    if d.ack_on_sync {
                        self.model.acked(d.hash, &d.bytes);
                    }
                }
                Ok(Done::Returned)
            }
            Err(e) => {
                self.explain(full_before, &e.to_string(), "STORE-6 a sync fails only for a fault")
            }
        }
    }

    fn get(&mut self, i: usize) -> Result<Done, Violation> {
        let Some(hash) = self.pick_blob() else { return Ok(Done::Returned) };
        let Some(vol) = self.procs[i].vol.as_ref() else { return Ok(Done::Returned) };
        let got = get(vol, &hash);
        if self.fs.stopped() {
            return Ok(Done::Cut);
        }
        let pid = self.procs[i].pid;
        self.event(format_args!("process {pid} gets {hash}: {}", got_name(&got)));
        let own = self.procs[i].deferred.iter().find(|d| d.hash == hash && d.readback);
        if let Some(Deferred { bytes, .. }) = own {
            // STORE-6: the handle that posted a deferred blob reads it back.
            let damaged = self.model.damaged.contains(&hash);
            if got != Got::Bytes(bytes.clone()) && !(damaged && matches!(got, Got::Corrupt(_))) {
                return Err(Violation::new(
                    "STORE-6 a deferred blob reads back through its handle",
                    format!("process {pid}, blob {hash}: {}", got_name(&got)),
                ));
            }
            return Ok(Done::Returned);
        }
        self.model.check_get(&hash, &got)?;
        Ok(Done::Returned)
    }

    fn delete(&mut self, i: usize) -> Result<Done, Violation> {
        if let Some(done) = self.hold(i, Mode::Contract)? {
            return Ok(done);
        }
        let Some(hash) = self.pick_blob() else { return Ok(Done::Returned) };
        let Some(vol) = self.procs[i].vol.as_ref() else { return Ok(Done::Returned) };
        let r = vol.volume.store.delete(&hash);
        let pid = self.procs[i].pid;
        self.event(format_args!("process {pid} deletes {hash}: {}", r.is_ok()));
        self.procs[i].deferred.retain(|d| d.hash != hash); // its own pending blob goes
        let mut pending_elsewhere = false;
        for d in self.procs.iter_mut().flat_map(|p| p.deferred.iter_mut()) {
            if d.hash == hash {
                (d.readback, d.ack_on_sync) = (false, false);
                pending_elsewhere = true;
            }
        }
        if pending_elsewhere {
            self.model.delete_unknown(hash); // another process's sync may name it again
            return Ok(Done::Returned);
        }
        match r {
            Ok(()) => {
                self.model.deleted(hash);
                Ok(Done::Returned)
            }
            Err(e) => {
                self.model.delete_unknown(hash);
                self.explain(
                    self.fs.counts().full_refusals,
                    &e.to_string(),
                    "a delete fails only for a fault",
                )
            }
        }
    }

    fn swap(&mut self, i: usize) -> Result<Done, Violation> {
        if let Some(done) = self.hold(i, Mode::Expand)? {
            return Ok(done);
        }
        let Some(vol) = self.procs[i].vol.as_ref() else { return Ok(Done::Returned) };
        let pid = self.procs[i].pid;
        let full_before = self.fs.counts().full_refusals;
        let old = match vol.volume.cell.read() {
            Ok(v) => v,
            Err(e) => {
                return self.explain(
                    full_before,
                    &e.to_string(),
                    "CELL-4 a read fails only for a fault",
                );
            }
        };
        self.model.check_cell(&old, "a read")?;
        let mut new = vec![0u8; self.rng.range(1, 64) as usize];
        self.rng.fill(&mut new);
        let r = vol.volume.cell.cas(&old, &new);
        self.event(format_args!(
            "process {pid} swaps the cell: {:?}",
            r.as_ref().map(|o| o.swapped)
        ));
        match r {
            Ok(o) if o.swapped => {
                self.model.swapped(&new);
                Ok(Done::Returned)
            }
            Ok(o) => Err(Violation::new(
                "CELL-1 a swap from the value just read succeeds (no other process ran)",
                format!("process {pid}: lost, current {} bytes", o.current.len()),
            )),
            Err(e) => {
                self.model.swap_unknown(&new);
                let done = self.explain(
                    full_before,
                    &e.to_string(),
                    "CELL-4 a swap fails only for a fault",
                )?;
                if let (Done::Returned, CellError::Io(io)) = (&done, &e)
                    && path_of(io).is_none()
                {
                    return Err(Violation::new(
                        "CELL-4 a full file system's error names its path",
                        e.to_string(),
                    ));
                }
                Ok(done)
            }
        }
    }

    /// A blob the processes have posted (or none yet).
    fn pick_blob(&mut self) -> Option<Hash> {
        let n = self.model.blobs.len() as u64;
        (n > 0).then(|| {
            let k = self.rng.below(n) as usize;
            self.model.blobs.keys().nth(k).copied()
        })?
    }
}
