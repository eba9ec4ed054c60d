//! What must hold once faults stop. The liveness phase: faults and network loss switch off,
//! a crashed engine restarts, and every pending operation must finish within
//! [`LIVENESS_BOUND_US`] (gossip nodes must converge, GOS-5). The durability check: flush,
//! power cut, recover, and everything acknowledged comes back (SEC-2, SEC-7). The final
//! checks: durability again, linearizable cell histories (CELL-1), the volumes' end state and
//! the gossip oracles (GOS-3, GOS-4).

use super::{World, gossip::gossip_violation, lock};
use crate::oracle::Violation;
use crate::volumes::Volumes;

/// After the fault phase, every pending operation must finish within this much simulated time.
pub const LIVENESS_BOUND_US: u64 = 10_000_000;

impl World<'_> {
    /// Nothing is pending: no cell operation, no volume job, and the gossip nodes agree.
    pub(super) fn settled(&mut self) -> bool {
        self.cells.pending() == 0
            && self.vols.as_ref().is_none_or(|v| v.running() == 0)
            // An unreadable root is reported by the final checks.
            && self.gossip.as_mut().is_none_or(|g| g.converged().unwrap_or(true))
    }

    /// The liveness violation: what was still pending.
    pub(super) fn liveness_failure(&self, why: &str) -> Violation {
        Violation::new(
            "liveness: every pending operation completes once faults stop",
            format!(
                "{why} ({LIVENESS_BOUND_US} µs): {} cell ops and {} volume jobs pending{}",
                self.cells.pending(),
                self.vols.as_ref().map_or(0, Volumes::running),
                if self.gossip.is_some() { ", or gossip nodes not converged (GOS-5)" } else { "" }
            ),
        )
    }

    /// Faults stop: network loss and partitions end, a crashed engine restarts, the device
    /// heals; then the durability check.
    pub(super) fn begin_liveness(&mut self) -> Result<(), Violation> {
        self.liveness = true;
        self.trace.event(self.now_us, format_args!("--- liveness phase: faults stop ---"));
        self.net.drop_ppm = 0;
        self.net.dup_ppm = 0;
        self.net.partitioned.clear();
        self.gossip_cut.clear();
        if self.down.is_some() {
            self.restart()?;
        }
        if let Some(e) = &self.engine {
            lock(e).device_mut().stop_faults();
        }
        self.durability_check()?;
        if self.knobs.fill_drain {
            self.space_check()?;
        }
        Ok(())
    }

    /// Flush, power cut, recover: everything acknowledged must come back (SEC-2, SEC-7).
    pub(super) fn durability_check(&mut self) -> Result<(), Violation> {
        if self.knobs.kv_clients == 0 && self.knobs.cell_clients == 0 {
            return Ok(());
        }
        if let Some(e) = self.engine.clone() {
            lock(&e).flush().map_err(|e| Violation::new("flush", e.to_string()))?;
            self.model.on_flush();
        }
        let (liveness, saved) = (self.liveness, self.knobs.crash_every_us);
        self.liveness = false;
        self.knobs.crash_every_us = 0;
        let r = self.crash().and_then(|()| self.restart());
        self.knobs.crash_every_us = saved;
        self.liveness = liveness;
        r
    }

    /// The end-of-run oracles; also copies the network and gossip counts into the fault counts.
    pub(super) fn final_checks(&mut self) -> Result<(), Violation> {
        self.trace.event(self.now_us, format_args!("--- final checks ---"));
        self.durability_check()?;
        self.cells.check_linearizable().map_err(|d| {
            Violation::new("CELL-1 cell histories are linearizable (CasRegister)", d)
        })?;
        if let Some(v) = &self.vols {
            v.check_end()?;
        }
        if let Some(g) = self.gossip.as_mut() {
            g.check().map_err(gossip_violation)?;
            self.faults.gossip_crashes = g.counts.crashes;
            self.faults.gossip_rejected = g.counts.rejected;
            self.faults.gossip_writes = g.counts.writes;
            self.faults.gossip_delivered = g.counts.delivered;
            self.faults.gossip_tree_level_max = u64::from(g.counts.tree_level_max);
            self.faults.limit_writes += g.counts.limit_writes;
            self.faults.limit_refusals += g.counts.limit_refusals;
        }
        self.faults.full_fills = self.fill_drain.fills;
        self.faults.full_drains = self.fill_drain.drains;
        self.faults.space_refusals = self.fill_drain.refused;
        self.secure_counts();
        self.faults.net_dropped = self.net.dropped;
        self.faults.net_duplicated = self.net.duplicated;
        if let Some(e) = &self.engine {
            self.faults.misdirected += lock(e).device_mut().stats().misdirected;
        }
        self.trace
            .event(self.now_us, format_args!("all checks passed; cells {:?}", self.cells.stats));
        Ok(())
    }
}
