//! Cleanup (contract): delete every blob unreachable from the cell (VOL-1, VOL-2, VOL-5,
//! VOL-6).

use super::{Mode, ModeHold, Reachability, Volume, VolumeError};
use crate::Hash;
use crate::storage::store::list_all;
use std::collections::BTreeSet;

/// What a finished cleanup did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupOutcome {
    /// Blobs kept because the cell reaches them.
    pub blobs_kept: u64,
    /// Blobs deleted.
    pub blobs_deleted: u64,
}

/// What one [`CleanupJob::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupStep {
    /// Read the cell (after Contract began), computed what it reaches and listed the store:
    /// this many blobs are to be deleted (§5 steps 2–3).
    Planned {
        /// Blobs planned for deletion.
        garbage: usize,
    },
    /// Deleted one unreachable blob.
    Deleted(Hash),
    /// The job is finished.
    Done(CleanupOutcome),
}

/// A cleanup in progress: holds Contract for its whole life (VOL-2), so the cell cannot move
/// under it and the reachable set it computed at its first step stays the truth (VOL-1).
///
/// Every step touches shared state once: [`CleanupJob::begin`] only takes Contract; the first
/// [`CleanupJob::step`] reads the cell and plans; each later step deletes one blob. So a
/// scheduler (the simulator's, loom's) can run other processes between the hold and the read.
pub struct CleanupJob<'a> {
    vol: &'a Volume,
    reach: &'a dyn Reachability,
    /// `None` until the first step has read the cell and planned.
    plan: Option<Plan>,
    /// `None` only under the planted bug `volume:cleanup-holds-late`.
    hold: Option<ModeHold>,
}

struct Plan {
    garbage: Vec<Hash>,
    next: usize,
    blobs_kept: u64,
}

impl<'a> CleanupJob<'a> {
    /// Begins Contract, failing at once with `ModeConflict` if a sync holds Expand (VOL-6).
    /// Nothing is read yet: the first [`CleanupJob::step`] reads the cell and plans.
    pub fn begin(vol: &'a Volume, reach: &'a dyn Reachability) -> Result<Self, VolumeError> {
        if crate::bugs::active("volume:cleanup-holds-late") {
            // Planted bug: read and plan first, take Contract at the first step. A sync may
            // begin, copy and publish in between, and the plan then deletes what it reaches.
            let plan = Some(Self::plan(vol, reach)?);
            return Ok(Self { vol, reach, plan, hold: None });
        }
        // VOL-6: the mode comes first, so a conflict fails before anything is read or deleted.
        let hold = Some(vol.modes.begin(Mode::Contract)?);
        Ok(Self { vol, reach, plan: None, hold })
    }

    /// VOL-5: the value is read after Contract began (the cell cannot move any more), and a
    /// reachable set that cannot be computed completely aborts the job before any deletion.
    fn plan(vol: &Volume, reach: &dyn Reachability) -> Result<Plan, VolumeError> {
        let value = vol.cell.read()?;
        let keep: BTreeSet<Hash> = reach.reachable(&value, vol.store.as_ref())?;
        let all = list_all(vol.store.as_ref())?;
        let blobs_kept = all.iter().filter(|h| keep.contains(h)).count() as u64;
        let garbage: Vec<Hash> = all.into_iter().filter(|h| !keep.contains(h)).collect();
        Ok(Plan { garbage, next: 0, blobs_kept })
    }

    /// Blobs planned for deletion and not yet deleted (0 before the plan).
    pub fn blobs_remaining(&self) -> usize {
        self.plan.as_ref().map_or(0, |p| p.garbage.len() - p.next)
    }

    /// Reads the cell and plans (the first step), deletes one unreachable blob, or reports
    /// that the job is done.
    pub fn step(&mut self) -> Result<CleanupStep, VolumeError> {
        if self.hold.is_none() {
            // Planted bug volume:cleanup-holds-late: the first step takes Contract (the plan
            // was made at `begin`, without it).
            self.hold = Some(self.vol.modes.begin(Mode::Contract)?);
            return Ok(CleanupStep::Planned { garbage: self.blobs_remaining() });
        }
        let Some(plan) = self.plan.as_mut() else {
            let plan = Self::plan(self.vol, self.reach)?;
            let garbage = plan.garbage.len();
            self.plan = Some(plan);
            return Ok(CleanupStep::Planned { garbage });
        };
        let Some(h) = plan.garbage.get(plan.next).copied() else {
            let blobs_deleted = plan.next as u64;
            return Ok(CleanupStep::Done(CleanupOutcome {
                blobs_kept: plan.blobs_kept,
                blobs_deleted,
            }));
        };
        self.vol.store.delete(&h)?;
        plan.next += 1;
        Ok(CleanupStep::Deleted(h))
    }

    /// Steps the job to the end.
    pub fn run(mut self) -> Result<CleanupOutcome, VolumeError> {
        if self.plan.is_none() || self.hold.is_none() {
            self.step()?;
        }
        for _ in 0..=self.blobs_remaining() {
            if let CleanupStep::Done(outcome) = self.step()? {
                return Ok(outcome);
            }
        }
        unreachable!("cleanup finishes within its step bound")
    }
}

/// Cleans up `vol`: deletes every blob not reachable from its cell value.
pub fn cleanup(vol: &Volume, reach: &dyn Reachability) -> Result<CleanupOutcome, VolumeError> {
    CleanupJob::begin(vol, reach)?.run()
}
