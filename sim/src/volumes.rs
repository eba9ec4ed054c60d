//! Volume processes: syncers and cleaners on one destination volume, stepped by the scheduler
//! through the real `SyncJob`/`CleanupJob` step functions, and a writer changing the source.
//! The destination volume lives on a sector engine (`SectorCell` + `SectorStore`) over its own
//! `SimSsd`; the source is in memory.
//!
//! Every real step is replayed through the executable spec's `VolumeSpec` (VOL-1..VOL-4): a
//! step the real code took that the spec rejects — or a begin the real code refused that the
//! spec allows — is a violation; so is an effect that differs (a publish that swapped in one
//! and not the other). At the end, VOL-1 is checked on the real volume and the real store and
//! cell are compared with the spec's.
//!
//! Never decides what is allowed itself: the spec does.

use crate::oracle::Violation;
use crate::rng::SimRng;
use cellar::Hash;
use cellar::storage::cell::{Cell, MemCell};
use cellar::storage::store::{MemStore, Store, list_all};
use cellar::storage::volume::{
    CleanupJob, CleanupStep, HashList, ModeGate, SyncJob, SyncOutcome, SyncStep, Volume,
    VolumeError, check_vol1,
};
use cellar_model::spec::{Effect, HolderId, VolumeSpec, VolumeStep};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The reachability of simulated volume values: a list of hashes.
pub static HASH_LIST: HashList = HashList;
/// Syncer slots at most.
pub const SYNCERS_MAX: usize = 2;
/// Blobs the source value reaches at most.
pub const SOURCE_BLOBS_MAX: usize = 6;

type DecideFn<'a> = dyn Fn(&[u8], &[u8]) -> Option<Vec<u8>> + 'a;

/// What each syncer's `decide` saw last: the destination value its CAS will expect.
#[derive(Debug, Default)]
pub struct Seen {
    /// Per slot: (the destination value `decide` saw, the value it chose).
    slots: [RefCell<(Vec<u8>, Vec<u8>)>; SYNCERS_MAX],
}

/// The volumes and the per-slot decide functions; built before the world, which borrows them.
pub struct Fixture<'a> {
    /// The source (memory).
    pub src: Volume,
    /// The destination (sector engine).
    pub dst: Volume,
    /// The destination's mode gate (for holder-count cross-checks).
    pub gate: Arc<ModeGate>,
    decides: Vec<Box<DecideFn<'a>>>,
    seen: &'a Seen,
}

impl<'a> Fixture<'a> {
    /// Volumes over `dst_cell`/`dst_store`; each syncer publishes the source value.
    pub fn new(seen: &'a Seen, dst_cell: Arc<dyn Cell>, dst_store: Arc<dyn Store>) -> Fixture<'a> {
        let gate = Arc::new(ModeGate::new());
        let decides: Vec<Box<DecideFn<'a>>> = seen
            .slots
            .iter()
            .map(|slot| {
                Box::new(move |src: &[u8], dst: &[u8]| {
                    *slot.borrow_mut() = (dst.to_vec(), src.to_vec());
                    Some(src.to_vec())
                }) as Box<DecideFn<'a>>
            })
            .collect();
        Fixture {
            src: Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new())),
            dst: Volume::with_modes(dst_cell, dst_store, gate.clone()),
            gate,
            decides,
            seen,
        }
    }
}

struct SyncRun<'a> {
    job: SyncJob<'a>,
    holder: HolderId,
    verified: bool,
}

struct CleanRun<'a> {
    job: CleanupJob<'a>,
    holder: HolderId,
}

/// The volume processes and the spec replaying them.
pub struct Volumes<'a> {
    fx: &'a Fixture<'a>,
    spec: VolumeSpec<Hash, Vec<u8>>,
    syncs: Vec<Option<SyncRun<'a>>>,
    cleans: Vec<Option<CleanRun<'a>>>,
    next_holder: u32,
    src_blobs: Vec<Hash>,
    /// Steps taken (begins, copies, publishes, deletes).
    pub steps: u64,
    /// Mode conflicts the real gate reported (and the spec agreed with).
    pub conflicts: u64,
    /// Each job's first step (read and plan) is its own scheduler event, so other processes
    /// run between a job's mode hold and its read (the `split-jobs` stress). Off: `begin` and
    /// the plan run in one event, as every job did before jobs were split.
    pub split_jobs: bool,
}

fn reach(v: &[u8]) -> BTreeSet<Hash> {
    v.chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect()
}

/// A full device is an allowed, reported failure of a store or cell write. `SectorStore` and
/// `SectorCell` report every engine error as `Io` with the engine's message, so this matches
/// the text.
fn device_full(e: &VolumeError) -> bool {
    matches!(e, VolumeError::Store(_) | VolumeError::Cell(_))
        && e.to_string().contains("device full")
}

fn vio(rule: &str, detail: String) -> Violation {
    Violation::new(rule, detail)
}

impl<'a> Volumes<'a> {
    /// `syncers` syncer slots and `cleaners` cleaner slots on `fx`.
    pub fn new(fx: &'a Fixture<'a>, syncers: u32, cleaners: u32) -> Volumes<'a> {
        let spec = VolumeSpec::new(Vec::new(), BTreeSet::new(), BTreeSet::new())
            .unwrap_or_else(|_| unreachable!("an empty volume satisfies VOL-1"));
        Volumes {
            fx,
            spec,
            syncs: (0..syncers.min(SYNCERS_MAX as u32)).map(|_| None).collect(),
            cleans: (0..cleaners).map(|_| None).collect(),
            next_holder: 0,
            src_blobs: Vec::new(),
            steps: 0,
            conflicts: 0,
            split_jobs: false,
        }
    }

    /// Processes: the writer, then syncer slots, then cleaner slots.
    pub fn processes(&self) -> u32 {
        1 + self.syncs.len() as u32 + self.cleans.len() as u32
    }

    /// Jobs still running.
    pub fn running(&self) -> usize {
        self.syncs.iter().flatten().count() + self.cleans.iter().flatten().count()
    }

    fn apply(&mut self, step: VolumeStep<Hash, Vec<u8>>) -> Result<Effect, Violation> {
        let text = format!("{step:?}");
        self.spec
            .apply(step)
            .map_err(|e| vio("VOL spec rejects a real step", format!("{e} (step {text})")))
    }

    /// Runs one step of process `p`; returns a line for the trace. `finish`: liveness phase,
    /// start nothing new.
    pub fn step(&mut self, p: u32, rng: &mut SimRng, finish: bool) -> Result<String, Violation> {
        self.steps += 1;
        let ns = self.syncs.len() as u32;
        let out = if p == 0 {
            if finish {
                return Ok("writer idle".into());
            }
            self.write_source(rng)?
        } else if p <= ns {
            self.sync_step((p - 1) as usize, rng, finish)?
        } else {
            self.clean_step((p - 1 - ns) as usize, rng, finish)?
        };
        let (e, c) = self.fx.gate.holders();
        let spec_e = self
            .spec
            .holders()
            .values()
            .filter(|h| h.mode == cellar_model::spec::Mode::Expand)
            .count();
        let spec_c = self.spec.holders().len() - spec_e;
        if (e as usize, c as usize) != (spec_e, spec_c) {
            return Err(vio(
                "VOL-2 holders agree",
                format!("gate holds {e}/{c}, spec {spec_e}/{spec_c}"),
            ));
        }
        Ok(out)
    }

    fn write_source(&mut self, rng: &mut SimRng) -> Result<String, Violation> {
        let mut blob = vec![0u8; rng.range(16, 300) as usize];
        rng.fill(&mut blob);
        let h = self.fx.src.store.post(&blob).map_err(|e| vio("source store", e.to_string()))?;
        self.src_blobs.push(h);
        if self.src_blobs.len() > 3 * SOURCE_BLOBS_MAX {
            self.src_blobs.remove(0);
        }
        let mut chosen: Vec<Hash> =
            self.src_blobs.iter().copied().filter(|_| rng.coin()).take(SOURCE_BLOBS_MAX).collect();
        chosen.sort();
        let value = HashList::encode(&chosen);
        let old = self.fx.src.cell.read().map_err(|e| vio("source cell", e.to_string()))?;
        self.fx.src.cell.cas(&old, &value).map_err(|e| vio("source cell", e.to_string()))?;
        Ok(format!("vol writer: source now reaches {} blobs", chosen.len()))
    }

    fn holder(&mut self) -> HolderId {
        self.next_holder += 1;
        HolderId(self.next_holder)
    }

    fn sync_step(
        &mut self,
        slot: usize,
        rng: &mut SimRng,
        finish: bool,
    ) -> Result<String, Violation> {
        let Some(run) = self.syncs[slot].as_mut() else {
            if finish {
                return Ok(format!("syncer {slot} idle"));
            }
            return self.sync_begin(slot);
        };
        let holder = run.holder;
        if !finish && rng.below(40) == 0 {
            // The syncer process dies mid-job; its mode is released (in-process gate: the drop),
            // which the spec calls Crash then Recover (VOL-4).
            self.syncs[slot] = None;
            self.apply(VolumeStep::Crash { holder })?;
            self.apply(VolumeStep::Recover { holder })?;
            return Ok(format!("syncer {slot} ({holder:?}) crashed"));
        }
        let was_verified = run.verified;
        run.verified = false;
        let res = run.job.step();
        match res {
            Ok(SyncStep::Planned { blobs }) => Ok(format!("syncer {slot} planned {blobs} blobs")),
            Ok(SyncStep::Copied(h)) => {
                self.apply(VolumeStep::PostBlob { holder, blob: h })?;
                Ok(format!("syncer {slot} copied {}", &h.to_hex()[..8]))
            }
            Ok(SyncStep::Verified) => {
                if let Some(r) = self.syncs[slot].as_mut() {
                    r.verified = true
                }
                Ok(format!("syncer {slot} verified"))
            }
            Ok(SyncStep::CasLost) => {
                self.publish(slot, holder, false)?;
                Ok(format!("syncer {slot} lost its CAS"))
            }
            Ok(SyncStep::Done(out)) => {
                if let (true, SyncOutcome::Published { .. }) = (was_verified, &out) {
                    self.publish(slot, holder, true)?;
                }
                self.syncs[slot] = None;
                self.apply(VolumeStep::EndExpand { holder })?;
                Ok(format!("syncer {slot} done: {out:?}").chars().take(120).collect())
            }
            Err(VolumeError::CasContention { .. }) => {
                self.syncs[slot] = None;
                self.apply(VolumeStep::EndExpand { holder })?;
                Ok(format!("syncer {slot} gave up (contention)"))
            }
            Err(e) if device_full(&e) => {
                self.syncs[slot] = None;
                self.apply(VolumeStep::Crash { holder })?;
                self.apply(VolumeStep::Recover { holder })?;
                Ok(format!("syncer {slot} failed: {e}"))
            }
            Err(e) => Err(vio("volume steps fail only for faults", format!("syncer {slot}: {e}"))),
        }
    }

    fn sync_begin(&mut self, slot: usize) -> Result<String, Violation> {
        let holder = self.holder();
        let fx = self.fx;
        let decide: &'a DecideFn<'a> = fx.decides[slot].as_ref();
        let begun = SyncJob::begin(&fx.src, &fx.dst, Some(&HASH_LIST), decide);
        // Without split jobs the plan is part of the begin's event.
        let begun = begun.and_then(|mut job| match self.split_jobs {
            true => Ok((job, String::new())),
            false => job.step().map(|s| (job, format!(", {s:?}"))),
        });
        match begun {
            Ok((job, planned)) => {
                self.apply(VolumeStep::BeginExpand { holder })?;
                self.syncs[slot] = Some(SyncRun { job, holder, verified: false });
                Ok(format!("syncer {slot} began ({holder:?}){planned}"))
            }
            Err(VolumeError::ModeConflict { .. }) => {
                self.refused(VolumeStep::BeginExpand { holder })
            }
            Err(e) => Err(vio("volume steps fail only for faults", format!("sync begin: {e}"))),
        }
    }

    fn refused(&mut self, step: VolumeStep<Hash, Vec<u8>>) -> Result<String, Violation> {
        self.conflicts += 1;
        match self.spec.allowed(&step) {
            Err(_) => Ok(format!("refused as the spec requires: {step:?}")),
            Ok(()) => Err(vio(
                "VOL-2 only the other mode refuses a begin",
                format!("real gate refused {step:?}"),
            )),
        }
    }

    fn publish(&mut self, slot: usize, holder: HolderId, swapped: bool) -> Result<(), Violation> {
        let (expected, new) = self.fx.seen.slots[slot].borrow().clone();
        let new_reachable = reach(&new);
        let effect = self.apply(VolumeStep::Publish { holder, expected, new, new_reachable })?;
        if effect != (Effect::Published { swapped }) {
            return Err(vio(
                "CELL-2 publish outcome matches the spec",
                format!("real swapped={swapped}, spec {effect:?}"),
            ));
        }
        Ok(())
    }

    fn clean_step(
        &mut self,
        slot: usize,
        rng: &mut SimRng,
        finish: bool,
    ) -> Result<String, Violation> {
        let Some(run) = self.cleans[slot].as_mut() else {
            if finish {
                return Ok(format!("cleaner {slot} idle"));
            }
            return self.clean_begin(slot);
        };
        let holder = run.holder;
        if !finish && rng.below(40) == 0 {
            self.cleans[slot] = None;
            self.apply(VolumeStep::Crash { holder })?;
            self.apply(VolumeStep::Recover { holder })?;
            return Ok(format!("cleaner {slot} ({holder:?}) crashed"));
        }
        match run.job.step() {
            Ok(CleanupStep::Planned { garbage }) => {
                Ok(format!("cleaner {slot} planned {garbage} deletions"))
            }
            Err(VolumeError::ModeConflict { .. }) => {
                // Only a job that took its mode late meets this here: the spec was told at
                // `begin` that Contract began.
                Err(vio(
                    "VOL-2 a cleanup holds Contract from its begin",
                    format!("cleaner {slot}: the mode was refused at a later step"),
                ))
            }
            Ok(CleanupStep::Deleted(h)) => {
                self.apply(VolumeStep::DeleteBlob { holder, blob: h })?;
                Ok(format!("cleaner {slot} deleted {}", &h.to_hex()[..8]))
            }
            Ok(CleanupStep::Done(out)) => {
                self.cleans[slot] = None;
                self.apply(VolumeStep::EndContract { holder })?;
                Ok(format!("cleaner {slot} done: {out:?}"))
            }
            Err(e) if device_full(&e) => {
                self.cleans[slot] = None;
                self.apply(VolumeStep::Crash { holder })?;
                self.apply(VolumeStep::Recover { holder })?;
                Ok(format!("cleaner {slot} failed: {e}"))
            }
            Err(e) => Err(vio("volume steps fail only for faults", format!("cleaner {slot}: {e}"))),
        }
    }

    fn clean_begin(&mut self, slot: usize) -> Result<String, Violation> {
        let holder = self.holder();
        let fx = self.fx;
        let begun = CleanupJob::begin(&fx.dst, &HASH_LIST);
        // Without split jobs the plan is part of the begin's event.
        let begun = begun.and_then(|mut job| match self.split_jobs {
            true => Ok((job, String::new())),
            false => job.step().map(|s| (job, format!(", {s:?}"))),
        });
        match begun {
            Ok((job, planned)) => {
                self.apply(VolumeStep::BeginContract { holder })?;
                self.cleans[slot] = Some(CleanRun { job, holder });
                Ok(format!("cleaner {slot} began ({holder:?}){planned}"))
            }
            Err(VolumeError::ModeConflict { .. }) => {
                self.refused(VolumeStep::BeginContract { holder })
            }
            Err(e) => Err(vio("volume steps fail only for faults", format!("cleanup begin: {e}"))),
        }
    }

    /// End of run: VOL-1 on the real volume; real cell and store equal the spec's.
    pub fn check_end(&self) -> Result<(), Violation> {
        if let Some(h) =
            check_vol1(&self.fx.dst, &HASH_LIST).map_err(|e| vio("VOL-1", e.to_string()))?
        {
            return Err(vio(
                "VOL-1 everything reachable is stored",
                format!("blob {h} is missing"),
            ));
        }
        let real: BTreeSet<Hash> = list_all(self.fx.dst.store.as_ref())
            .map_err(|e| vio("store", e.to_string()))?
            .into_iter()
            .collect();
        if real != *self.spec.store() {
            return Err(vio(
                "VOL spec store matches",
                format!("real {} blobs, spec {}", real.len(), self.spec.store().len()),
            ));
        }
        let cell = self.fx.dst.cell.read().map_err(|e| vio("cell", e.to_string()))?;
        if cell != *self.spec.cell() {
            return Err(vio(
                "VOL spec cell matches",
                "the real cell differs from the spec's".into(),
            ));
        }
        Ok(())
    }
}
