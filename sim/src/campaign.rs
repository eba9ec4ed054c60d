//! Campaigns: many seeds in a row, a progress bar (only when stderr is a terminal), and a
//! summary — seeds, simulated operations, simulated seconds, wall seconds, the acceleration
//! factor (simulated time / wall time), operations per wall second, and faults by kind.
//!
//! A failing seed stops the campaign (unless `keep_going`); the command line then prints it,
//! writes its full trace (a deterministic replay with the trace kept) and minimizes it (the
//! minimizer builds on this module, not the other way round). The wall clock is read here only, for the summary; it never reaches
//! a run.

use crate::knobs::{FAULT_KINDS, FaultKind, Knobs};
use crate::oracle::Violation;
use crate::run::{Failure, RunConfig, RunReport, knobs_of, panic_message, run};
use crate::world::FaultCounts;
use std::time::Instant;

/// A campaign's totals.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Profile run.
    pub profile: String,
    /// Planted bug, if any.
    pub bug: Option<String>,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that passed.
    pub passed: u64,
    /// Simulated operations.
    pub ops: u64,
    /// Simulated seconds.
    pub sim_seconds: f64,
    /// Wall seconds.
    pub wall_seconds: f64,
    /// Simulated time per wall time.
    pub acceleration: f64,
    /// Simulated operations per wall second.
    pub ops_per_second: f64,
    /// Faults injected by kind.
    pub faults: FaultCounts,
    /// The failing seed, if any.
    pub failed_seed: Option<u64>,
}

/// Runs seeds `seeds` with `base` settings; stops at the first failure. Returns the summary
/// and the failing run.
///
/// `observe` sees every finished run with the totals so far (the command line draws its
/// progress bar and, with `keep_going`, prints each failing seed from it).
pub fn run_seeds(
    base: &RunConfig,
    seeds: impl Iterator<Item = u64>,
    keep_going: bool,
    observe: &mut dyn FnMut(&RunReport, &Summary),
) -> (Summary, Option<RunReport>) {
    let started = Instant::now();
    let mut s = Summary {
        profile: format!("{:?}", base.profile).to_lowercase(),
        bug: base.bug.clone(),
        ..Summary::default()
    };
    let mut sim_us = 0u64;
    let mut failed = None;
    for seed in seeds {
        let cfg = RunConfig { seed, ..base.clone() };
        let report = run_guarded(&cfg);
        s.seeds += 1;
        s.ops += report.ops;
        sim_us += report.sim_us;
        s.faults.add(&report.faults);
        if report.failure.is_none() {
            s.passed += 1;
        }
        observe(&report, &s);
        if report.failure.is_some() {
            if keep_going {
                s.failed_seed.get_or_insert(seed);
                failed.get_or_insert(report);
                continue;
            }
            s.failed_seed = Some(seed);
            failed = Some(report);
            break;
        }
    }
    s.wall_seconds = started.elapsed().as_secs_f64();
    s.sim_seconds = sim_us as f64 / 1e6;
    s.acceleration = s.sim_seconds / s.wall_seconds.max(1e-9);
    s.ops_per_second = s.ops as f64 / s.wall_seconds.max(1e-9);
    (s, failed)
}

/// Runs one seed, turning a panic inside the implementation into a failure of that seed.
pub fn run_guarded(cfg: &RunConfig) -> RunReport {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cfg)));
    match r {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => panic_report(cfg, format!("{e}")),
        Err(p) => panic_report(cfg, panic_message(p.as_ref())),
    }
}

fn panic_report(cfg: &RunConfig, msg: String) -> RunReport {
    RunReport {
        seed: cfg.seed,
        knobs: knobs_of(cfg),
        ops: 0,
        sim_us: 0,
        events: 0,
        trace_hash: 0,
        faults: FaultCounts::default(),
        failure: Some(Failure {
            violation: Violation::new("no panics", msg),
            at_us: 0,
            tail: Vec::new(),
        }),
        trace: None,
    }
}

/// The command that replays `cfg`.
pub fn replay_command(cfg: &RunConfig) -> String {
    let mut c = String::new();
    if cfg.bug.is_some() {
        c.push_str("cargo run --release --features planted-bugs -- ");
    } else {
        c.push_str("cargo run --release -- ");
    }
    c.push_str(
        &format!("sim --seed {} --profile {:?} --ticks {}", cfg.seed, cfg.profile, cfg.ticks)
            .to_lowercase(),
    );
    for f in &cfg.off {
        c.push_str(&format!(" --no-fault {}", f.name()));
    }
    if let Some(b) = &cfg.bug {
        c.push_str(&format!(" --bug {b}"));
    }
    c
}

/// Fault kinds that are on in a run with these knobs.
pub fn faults_on(k: &Knobs) -> Vec<FaultKind> {
    FAULT_KINDS.iter().copied().filter(|f| k.is_on(*f)).collect()
}
