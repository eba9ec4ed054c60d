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
    /// Deleted one unreachable blob.
    Deleted(Hash),
    /// The job is finished.
    Done(CleanupOutcome),
}

/// A cleanup in progress: holds Contract for its whole life (VOL-2), so the cell cannot move
/// under it and the reachable set it computed at the start stays the truth (VOL-1).
pub struct CleanupJob<'a> {
    vol: &'a Volume,
    garbage: Vec<Hash>,
    next: usize,
    blobs_kept: u64,
    _hold: ModeHold,
}

impl<'a> CleanupJob<'a> {
    /// Begins Contract (failing at once with `ModeConflict` if a sync holds Expand, VOL-6), reads
    /// the cell, computes the reachable set and plans the deletions. Fails without deleting
    /// anything if the reachable set cannot be computed completely (VOL-5).
    pub fn begin(vol: &'a Volume, reach: &dyn Reachability) -> Result<Self, VolumeError> {
        // VOL-6: the mode comes first, so a conflict fails before anything is read or deleted.
        let hold = vol.modes.begin(Mode::Contract)?;
        // VOL-5: the value is read after Contract began (the cell cannot move any more), and a
        // reachable set that cannot be computed completely aborts the job before any deletion.
        let value = vol.cell.read()?;
        let keep: BTreeSet<Hash> = reach.reachable(&value, vol.store.as_ref())?;
        let all = list_all(vol.store.as_ref())?;
        let blobs_kept = all.iter().filter(|h| keep.contains(h)).count() as u64;
        let garbage: Vec<Hash> = all.into_iter().filter(|h| !keep.contains(h)).collect();
        Ok(Self { vol, garbage, next: 0, blobs_kept, _hold: hold })
    }

    /// Blobs planned for deletion and not yet deleted.
    pub fn blobs_remaining(&self) -> usize {
        self.garbage.len() - self.next
    }

    /// Deletes one unreachable blob, or reports that the job is done.
    pub fn step(&mut self) -> Result<CleanupStep, VolumeError> {
        let Some(h) = self.garbage.get(self.next).copied() else {
            let blobs_deleted = self.next as u64;
            return Ok(CleanupStep::Done(CleanupOutcome {
                blobs_kept: self.blobs_kept,
                blobs_deleted,
            }));
        };
        self.vol.store.delete(&h)?;
        self.next += 1;
        Ok(CleanupStep::Deleted(h))
    }

    /// Steps the job to the end.
    pub fn run(mut self) -> Result<CleanupOutcome, VolumeError> {
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
