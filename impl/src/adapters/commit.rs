//! [`ShareFs::commit`] (`specs/adapters.md` ADP-3, ADP-5): the working tree becomes a snapshot
//! on top of the head it was based on, its blobs are promoted into the space's store under
//! Expand, and the mark's value is compare-and-swapped from the history the tree was based on;
//! a lost CAS merges at file granularity and tries again.
//!
//! Never: publish a head whose blobs are not all in the store (VOL-3); change the mark without
//! holding Expand (VOL-2); overwrite a head we did not base our work on.

use super::share::ShareFs;
use super::types::{AdapterError, COMMIT_CAS_ATTEMPTS_MAX, CommitReport};
use crate::fs::History;
use crate::storage::volume::{Mode, VolumeError};

impl ShareFs {
    /// Commits the working tree (ADP-3): a snapshot on top of the base head carrying the
    /// commit time (FS-24), its blobs promoted into the space's store under Expand, then one
    /// CAS of the mark's value from the base history to the new one (same horizon); a lost CAS
    /// merges (ADP-5) and tries again, at most [`COMMIT_CAS_ATTEMPTS_MAX`] times. A clean
    /// working tree only catches up with the mark (fast forward to a newer head; nothing
    /// written).
    pub fn commit(&self, message: &str) -> Result<CommitReport, AdapterError> {
        let mut st = self.lock();
        Self::check_writes(&mut st)?; // ADP-12: never publish past a failed buffered write
        let mut report = CommitReport { head: st.base, ..CommitReport::default() };
        if self.opts.read_only || !st.dirty {
            report.head = self.catch_up(&mut st)?;
            return Ok(report);
        }
        let _hold = match self.volume.modes.begin(Mode::Expand) {
            Ok(h) => h,
            Err(VolumeError::ModeConflict { .. }) => return Err(AdapterError::Busy),
            Err(e) => return Err(e.into()),
        };
        let fs = self.fs();
        let msg = format!("{}: {message}", self.opts.label);
        let time_ms = i64::try_from(self.opts.clock.now_ms()).ok();
        let head = fs.commit_at(&st.root, st.base.as_ref(), self.opts.author, &msg, time_ms)?;
        let mut ours = History { head: Some(head), horizon: st.history.horizon };
        let mut expected = st.history.encode();
        for attempt in 0..COMMIT_CAS_ATTEMPTS_MAX {
            let Some(head) = ours.head else { return Err(AdapterError::CellEmptied) };
            let p = self.staging.promote_head(&self.salt, &head)?;
            report.promoted.blobs += p.blobs;
            report.promoted.bytes += p.bytes;
            let cas = self.volume.cell.cas(&expected, &ours.encode()).map_err(VolumeError::from)?;
            if cas.swapped {
                st.root = fs.tree_of(&head)?;
                st.base = Some(head);
                st.history = ours;
                st.dirty = false;
                // Keep what unlinked-but-open files still read (ADP-11); the rest is promoted.
                let keep = self.orphan_reach(&st);
                self.staging.retain(&keep);
                report.head = Some(head);
                report.published = true;
                report.merges = attempt;
                return Ok(report);
            }
            // ADP-5: someone else committed first. Merge theirs into ours (ours first); the
            // merged history keeps the higher horizon (FS-22).
            let theirs = History::decode(&cas.current)?;
            if theirs.head.is_none() {
                return Err(AdapterError::CellEmptied);
            }
            let (merged, conflicts) =
                fs.merge_histories(&ours, &theirs, self.opts.author, time_ms)?;
            report.conflicts.extend(conflicts);
            ours = History { head: Some(merged), horizon: ours.horizon.max(theirs.horizon) };
            expected = cas.current;
            st.root = fs.tree_of(&merged)?;
            st.subdirs.clear();
            st.outside += 1; // ADP-14: the merge brought in the other side's files
        }
        Err(AdapterError::Contended(COMMIT_CAS_ATTEMPTS_MAX))
    }
}
