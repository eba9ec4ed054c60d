//! Sync (expand): copy what the source needs into the destination, then CAS the destination
//! cell to the caller's decision (VOL-2, VOL-3, VOL-6).

use super::publish::check_vol3;
use super::{Mode, ModeHold, Reachability, Volume, VolumeError};
use crate::Hash;
use crate::storage::store::list_all;

/// How many times a sync re-reads the destination and retries a lost CAS before giving up.
pub const SYNC_CAS_ATTEMPTS_MAX: u32 = 8;

/// The caller's decision: given (source value, destination value), the value to publish, or
/// `None` to decline.
pub type Decide<'a> = dyn Fn(&[u8], &[u8]) -> Option<Vec<u8>> + 'a;

/// What a finished sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The destination cell now holds this value.
    Published {
        /// The value published.
        value: Vec<u8>,
        /// Blobs copied into the destination store.
        blobs_copied: u64,
    },
    /// `decide` declined; blobs may have been copied, the cell is unchanged.
    Declined {
        /// Blobs copied into the destination store.
        blobs_copied: u64,
    },
}

/// What one [`SyncJob::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStep {
    /// Read the source value (after Expand began) and planned the copy: this many blobs are
    /// missing from the destination (§4 steps 2–3).
    Planned {
        /// Blobs to copy.
        blobs: usize,
    },
    /// Copied one blob (or found it already present).
    Copied(Hash),
    /// Decided the value to publish and checked that the destination holds every blob it
    /// reaches (VOL-3); the next step makes the CAS.
    Verified,
    /// A CAS on the destination lost; the next step decides again.
    CasLost,
    /// The job is finished.
    Done(SyncOutcome),
}

enum Phase {
    Plan,
    Copy { todo: Vec<Hash>, next: usize },
    Decide { attempts: u32 },
    Cas { attempts: u32, expected: Vec<u8>, new: Vec<u8> },
    Done,
}

/// A sync in progress: holds Expand on the destination for its whole life (VOL-2).
///
/// Every step touches shared state once: [`SyncJob::begin`] only takes Expand; the first
/// [`SyncJob::step`] reads the source value and plans; then one blob per step, one decision
/// per step, one CAS per step. So a scheduler can run other processes between any two.
pub struct SyncJob<'a> {
    src: &'a Volume,
    dst: &'a Volume,
    reach: Option<&'a dyn Reachability>,
    decide: &'a Decide<'a>,
    src_value: Vec<u8>,
    phase: Phase,
    blobs_copied: u64,
    _hold: ModeHold,
}

impl<'a> SyncJob<'a> {
    /// Begins Expand on `dst`, failing at once with `ModeConflict` if a cleanup holds Contract
    /// (VOL-6). Nothing is read yet: the first [`SyncJob::step`] reads the source value and
    /// plans the copy.
    pub fn begin(
        src: &'a Volume,
        dst: &'a Volume,
        reach: Option<&'a dyn Reachability>,
        decide: &'a Decide<'a>,
    ) -> Result<Self, VolumeError> {
        // VOL-6: the mode comes first, so a conflict fails before any blob is copied.
        let hold = dst.modes.begin(Mode::Expand)?;
        Ok(Self {
            src,
            dst,
            reach,
            decide,
            src_value: Vec::new(),
            phase: Phase::Plan,
            blobs_copied: 0,
            _hold: hold,
        })
    }

    /// Reads the source value and plans the copy: the blobs `reach` says it needs, or every
    /// blob of the source store if `reach` is `None`; minus those `dst` already has.
    fn plan(&mut self) -> Result<SyncStep, VolumeError> {
        self.src_value = self.src.cell.read()?;
        let wanted: Vec<Hash> = match self.reach {
            Some(r) => r.reachable(&self.src_value, self.src.store.as_ref())?.into_iter().collect(),
            None => list_all(self.src.store.as_ref())?,
        };
        let mut todo = Vec::with_capacity(wanted.len());
        for h in wanted {
            if !self.dst.store.exists(&h)? {
                todo.push(h);
            }
        }
        let blobs = todo.len();
        self.phase = Phase::Copy { todo, next: 0 };
        Ok(SyncStep::Planned { blobs })
    }

    /// Blobs still to copy before the job can publish.
    pub fn blobs_remaining(&self) -> usize {
        match &self.phase {
            Phase::Copy { todo, next } => todo.len() - next,
            _ => 0,
        }
    }

    /// Does one bounded unit of work: read the source value and plan (the first step), copy
    /// one blob, decide, or make one CAS attempt.
    pub fn step(&mut self) -> Result<SyncStep, VolumeError> {
        match &mut self.phase {
            Phase::Plan => self.plan(),
            Phase::Copy { todo, next } => {
                let Some(h) = todo.get(*next).copied() else {
                    self.phase = Phase::Decide { attempts: 0 };
                    return self.step();
                };
                *next += 1;
                // `get` verifies the hash (STORE-2): corrupt source data is never copied.
                let data = self.src.store.get(&h)?;
                let posted = self.dst.store.post(&data)?;
                assert_eq!(posted, h, "STORE-1: a verified blob must post under its own hash");
                self.blobs_copied += 1;
                Ok(SyncStep::Copied(h))
            }
            Phase::Decide { attempts } => {
                let attempt = *attempts + 1;
                self.decide_attempt(attempt)
            }
            Phase::Cas { .. } => self.cas_attempt(),
            Phase::Done => Err(VolumeError::BadValue("sync job stepped after it finished".into())),
        }
    }

    /// Re-reads the destination, asks `decide`, and checks VOL-3 for the answer.
    fn decide_attempt(&mut self, attempt: u32) -> Result<SyncStep, VolumeError> {
        let dst_value = self.dst.cell.read()?;
        let Some(new) = (self.decide)(&self.src_value, &dst_value) else {
            return Ok(self.finish(SyncOutcome::Declined { blobs_copied: self.blobs_copied }));
        };
        if new == dst_value {
            let blobs_copied = self.blobs_copied;
            return Ok(self.finish(SyncOutcome::Published { value: new, blobs_copied }));
        }
        self.check_vol3(&new)?;
        self.phase = Phase::Cas { attempts: attempt, expected: dst_value, new };
        Ok(SyncStep::Verified)
    }

    /// Makes the CAS decided by the previous step; a lost CAS goes back to deciding.
    fn cas_attempt(&mut self) -> Result<SyncStep, VolumeError> {
        let Phase::Cas { attempts, expected, new } =
            std::mem::replace(&mut self.phase, Phase::Done)
        else {
            unreachable!("cas_attempt is only called in the Cas phase");
        };
        let outcome = self.dst.cell.cas(&expected, &new)?;
        if outcome.swapped {
            let blobs_copied = self.blobs_copied;
            return Ok(self.finish(SyncOutcome::Published { value: new, blobs_copied }));
        }
        if attempts >= SYNC_CAS_ATTEMPTS_MAX {
            return Err(VolumeError::CasContention { attempts });
        }
        self.phase = Phase::Decide { attempts };
        Ok(SyncStep::CasLost)
    }

    /// VOL-3: never publish a value whose reachable blobs are missing from the destination.
    fn check_vol3(&self, new: &[u8]) -> Result<(), VolumeError> {
        let Some(reach) = self.reach else {
            // Without a reachability function every source blob was copied; the caller's
            // decision must only name values backed by the source store (documented contract).
            return Ok(());
        };
        check_vol3(self.dst.store.as_ref(), reach, new)
    }

    fn finish(&mut self, outcome: SyncOutcome) -> SyncStep {
        self.phase = Phase::Done;
        SyncStep::Done(outcome)
    }

    /// Steps the job to the end.
    pub fn run(mut self) -> Result<SyncOutcome, VolumeError> {
        if matches!(self.phase, Phase::Plan) {
            self.plan()?;
        }
        // Each blob is one step and each CAS attempt one more; this bounds the loop.
        let steps_max = self.blobs_remaining() + 2 * SYNC_CAS_ATTEMPTS_MAX as usize + 2;
        for _ in 0..steps_max {
            if let SyncStep::Done(outcome) = self.step()? {
                return Ok(outcome);
            }
        }
        unreachable!("sync finishes within its step bound")
    }
}

/// Syncs `src` into `dst`: copy, then publish `decide(src_value, dst_value)` by CAS.
pub fn sync(
    src: &Volume,
    dst: &Volume,
    reach: Option<&dyn Reachability>,
    decide: &Decide<'_>,
) -> Result<SyncOutcome, VolumeError> {
    SyncJob::begin(src, dst, reach, decide)?.run()
}
