//! The minimizer: shrinks a failing run while it still fails with the same rule — first by
//! switching fault kinds off one at a time, then by cutting the fault phase short (fewer
//! events, so fewer operations and faults). Every candidate is a full deterministic run, so
//! the result replays by its command line. A candidate is kept only if it fails with the same
//! rule and runs no more operations. Bounded by [`MINIMIZE_RUNS_MAX`] runs.

use crate::campaign::{faults_on, run_guarded};
use crate::knobs::FaultKind;
use crate::run::{RunConfig, knobs_of};

/// Most candidate runs the minimizer tries.
pub const MINIMIZE_RUNS_MAX: u32 = 40;

/// A smaller run that still fails.
#[derive(Debug, Clone)]
pub struct Minimized {
    /// Its configuration (replay with `replay_command`).
    pub config: RunConfig,
    /// Its simulated operations.
    pub ops: u64,
    /// Fault kinds still on.
    pub faults_on: Vec<FaultKind>,
}

fn fails(cfg: &RunConfig, rule: &str, budget: &mut u32) -> Option<u64> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    let r = run_guarded(cfg);
    r.failure.filter(|f| f.violation.rule == rule).map(|_| r.ops)
}

/// Shrinks `cfg`, which fails with `rule`.
pub fn minimize(cfg: &RunConfig, rule: &str) -> Minimized {
    let mut budget = MINIMIZE_RUNS_MAX;
    let mut best = RunConfig { keep_trace: false, ..cfg.clone() };
    let mut best_ops = run_guarded(&best).ops;
    for f in faults_on(&knobs_of(&best)) {
        let mut cand = best.clone();
        cand.off.push(f);
        cand.off.sort();
        // Kept only if the run still fails the same way and is no larger.
        if let Some(ops) = fails(&cand, rule, &mut budget).filter(|ops| *ops <= best_ops) {
            best = cand;
            best_ops = ops;
        }
    }
    // Binary search the shortest fault phase that still fails.
    let (mut lo, mut hi) = (0u64, best.ticks);
    while lo + 1 < hi && budget > 0 {
        let mid = lo + (hi - lo) / 2;
        let cand = RunConfig { ticks: mid, ..best.clone() };
        match fails(&cand, rule, &mut budget).filter(|ops| *ops <= best_ops) {
            Some(ops) => {
                hi = mid;
                best_ops = ops;
            }
            None => lo = mid,
        }
    }
    best.ticks = hi;
    let faults_on = faults_on(&knobs_of(&best));
    Minimized { config: best, ops: best_ops, faults_on }
}
