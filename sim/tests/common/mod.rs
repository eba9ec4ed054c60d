//! Shared by the simulator's integration tests: campaigns and replays through the library
//! (`cellar_sim::campaign`, `cellar_sim::run`), the same calls `cellar sim` makes. The command
//! line itself is tested in `sim_cli.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "a test reports failure by panicking; not every test binary uses every helper"
)]

use cellar_sim::campaign::{Summary, run_guarded, run_seeds};
use cellar_sim::knobs::{FaultKind, Profile};
use cellar_sim::{RunConfig, RunReport, TICKS_DEFAULT};

/// The settings of `cellar sim --profile PROFILE [--no-fault F]... [--bug BUG]`.
pub fn config(profile: Profile, off: &[FaultKind], bug: Option<&str>) -> RunConfig {
    RunConfig {
        seed: 0,
        profile,
        ticks: TICKS_DEFAULT,
        off: off.to_vec(),
        bug: bug.map(str::to_owned),
        keep_trace: false,
    }
}

/// Seeds `0..seeds` with `base`, stopping at the first failure: the summary and the failing run.
pub fn campaign(base: &RunConfig, seeds: u64) -> (Summary, Option<RunReport>) {
    run_seeds(base, 0..seeds, false, &mut |_, _| {})
}

/// Replays one seed with `base`.
pub fn replay(base: &RunConfig, seed: u64) -> RunReport {
    run_guarded(&RunConfig { seed, ..base.clone() })
}

/// The rule a failed run broke.
pub fn rule(r: &RunReport) -> Option<&str> {
    r.failure.as_ref().map(|f| f.violation.rule.as_str())
}
