//! Following the mark (`specs/adapters.md` ADP-13): a working tree with nothing uncommitted
//! fast-forwards to the mark's current value before it serves a read, at most once every
//! `refresh_ms` on the share's clock, so a share served by several processes (two `cellar
//! serve` on one PostgreSQL volume) shows every process's commits without writing anything
//! itself. A tree with uncommitted changes never moves here: it meets the other commits at its
//! next commit, which merges (ADP-5).
//!
//! Never: read the clock except through [`crate::env::Clock`]; drop an uncommitted change; fail
//! a read because the look failed (the tree served is then the last one seen, itself a
//! committed head, and the next read looks again).

use super::share::{ShareFs, State};
use super::types::AdapterError;
use crate::fs::History;
use crate::storage::refs::Ref;
use crate::storage::volume::VolumeError;
use std::sync::MutexGuard;

impl ShareFs {
    /// The share's state, after looking for newer commits of the mark if the last look is at
    /// least `refresh_ms` old (ADP-13).
    pub(super) fn fresh(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        let now = self.opts.clock.now_ms();
        let due = match st.checked_ms {
            None => true,
            // A clock that went back counts as due: the look is cheap, a missed one is not.
            Some(t) => now < t || now - t >= self.opts.refresh_ms,
        };
        // Planted bug adapters:no-refresh: a clean tree never follows other processes' commits.
        if due && !crate::bugs::active("adapters:no-refresh") {
            st.checked_ms = match self.catch_up(&mut st) {
                Ok(_) => Some(now),
                Err(_) => None,
            };
        }
        st
    }

    /// Moves a working tree with nothing uncommitted to the mark's current value if it changed
    /// (ADP-3's clean commit, ADP-13's refresh); returns the head the tree is now based on.
    pub(super) fn catch_up(&self, st: &mut State) -> Result<Option<Ref>, AdapterError> {
        let movable = !st.dirty || self.opts.read_only || (st.pristine && st.base.is_none());
        if !movable {
            return Ok(st.base);
        }
        let value = self.volume.cell.read().map_err(VolumeError::from)?;
        let current = History::decode(&value)?;
        if current == st.history {
            return Ok(st.base);
        }
        if let Some(h) = current.head
            && current.head != st.base
        {
            st.root = self.fs().tree_of(&h)?;
            st.base = Some(h);
            st.subdirs.clear();
            st.outside += 1; // ADP-14: cached pages may be stale
            st.dirty = false;
            st.pristine = false;
        }
        st.history = current;
        Ok(st.base)
    }
}
