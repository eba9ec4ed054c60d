//! One run: a [`RunConfig`] (seed, profile, fault switches, planted bug) in, a [`RunReport`]
//! (operations, simulated time, trace hash, faults, the failure if any) out.
//!
//! Why it is its own module: everything above it (campaigns, the minimizer, the command line)
//! sees a run only through these types, and everything below it (the world, its processes and
//! oracles) never sees them, so the arrows only point down. The same seed gives the same
//! report: knobs, the devices' fault streams and the gossip nodes' entropy are all forked from
//! one `SimRng`.

use crate::knobs::{DEVICE_SECTOR_COUNT, FaultKind, Knobs, Profile};
use crate::oracle::Violation;
use crate::rng::SimRng;
use crate::ssd::SimSsd;
use crate::trace::Trace;
use crate::world::{FaultCounts, World, engine_config};
use cellar::sector::adapters::share;
use cellar::sector::{Engine, SectorCell, SectorStore};
use std::sync::Arc;

/// Events of the fault phase by default: a few thousand operations per seed, so CI can run a
/// thousand seeds in a couple of minutes.
pub const TICKS_DEFAULT: u64 = 3_000;

/// Everything that determines one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// The seed.
    pub seed: u64,
    /// The profile.
    pub profile: Profile,
    /// Events of the fault phase.
    pub ticks: u64,
    /// Fault kinds switched off.
    pub off: Vec<FaultKind>,
    /// Planted bug, if any.
    pub bug: Option<String>,
    /// Keep the whole trace.
    pub keep_trace: bool,
}

/// A failed run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// The broken rule and what happened.
    pub violation: Violation,
    /// Simulated time of the failure, µs.
    pub at_us: u64,
    /// The last events before it.
    pub tail: Vec<String>,
}

/// What one run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Its knobs.
    pub knobs: Knobs,
    /// Simulated operations (engine operations, served cell requests, volume steps,
    /// compaction steps).
    pub ops: u64,
    /// Simulated time, µs.
    pub sim_us: u64,
    /// Events handled.
    pub events: u64,
    /// Hash of the whole event trace.
    pub trace_hash: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// The failure, if the run failed.
    pub failure: Option<Failure>,
    /// Every event, if kept.
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
}

/// The knobs `cfg` draws (same draws as [`run`]).
pub fn knobs_of(cfg: &RunConfig) -> Knobs {
    let mut rng = SimRng::new(cfg.seed);
    Knobs::draw(&mut rng, cfg.profile, &cfg.off)
}

/// Runs one seed. Plants `cfg.bug` for this thread for the run's duration.
///
/// # Errors
/// The bug name is unknown (or the binary lacks the `planted-bugs` feature).
pub fn run(cfg: &RunConfig) -> Result<RunReport, cellar::bugs::UnknownBug> {
    let _planted = cfg.bug.as_deref().map(cellar::bugs::plant).transpose()?;
    let mut rng = SimRng::new(cfg.seed);
    let knobs = Knobs::draw(&mut rng, cfg.profile, &cfg.off);
    let trace = Trace::new(cfg.keep_trace);
    if cfg.profile == crate::knobs::Profile::Fs {
        return Ok(run_fs(cfg, rng, knobs, trace));
    }
    if cfg.profile == crate::knobs::Profile::Files {
        return Ok(run_files(cfg, rng, knobs, trace));
    }
    let vol_ssd = SimSsd::new(
        DEVICE_SECTOR_COUNT,
        crate::ssd::SsdConfig { misdirect_ppm: 0, ..knobs.ssd },
        rng.fork(),
    );
    let seen = crate::volumes::Seen::default();
    let vol_engine = Engine::format(vol_ssd, engine_config(&knobs)).map(share);
    let mut report = RunReport {
        seed: cfg.seed,
        knobs: knobs.clone(),
        ops: 0,
        sim_us: 0,
        events: 0,
        trace_hash: 0,
        faults: FaultCounts::default(),
        failure: None,
        trace: None,
    };
    let vol_engine = match vol_engine {
        Ok(e) => e,
        Err(e) => {
            report.failure = Some(Failure {
                violation: Violation::new("format", e.to_string()),
                at_us: 0,
                tail: Vec::new(),
            });
            return Ok(report);
        }
    };
    let fx = crate::volumes::Fixture::new(
        &seen,
        Arc::new(SectorCell::new(vol_engine.clone(), 0)),
        Arc::new(SectorStore::new(vol_engine.clone())),
    );
    let vols = (knobs.syncers > 0).then(|| {
        let mut v = crate::volumes::Volumes::new(&fx, knobs.syncers, knobs.cleaners);
        v.split_jobs = knobs.vol_split_jobs;
        (v, vol_engine.clone())
    });
    let outcome = World::new(rng, knobs, trace, vols).map(|mut w| {
        // A panic inside the implementation fails the run, keeping the trace up to it.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run(cfg.ticks)))
            .unwrap_or_else(|p| Err(Violation::new("no panics", panic_message(p.as_ref()))));
        (r, w)
    });
    match outcome {
        Ok((r, w)) => {
            report.ops = w.ops;
            report.sim_us = w.now_us;
            report.events = w.trace.len();
            report.trace_hash = w.trace.hash();
            report.faults = w.faults;
            if let Err(v) = r {
                report.failure =
                    Some(Failure { violation: v, at_us: w.now_us, tail: w.trace.tail() });
            }
            report.trace = w.trace.full().map(<[String]>::to_vec);
        }
        Err(v) => report.failure = Some(Failure { violation: v, at_us: 0, tail: Vec::new() }),
    }
    Ok(report)
}

/// A run of the `fs` profile ([`crate::files`]), reported like any other.
fn run_fs(cfg: &RunConfig, rng: SimRng, knobs: Knobs, trace: Trace) -> RunReport {
    let engine_cfg = engine_config(&knobs);
    let out = crate::files::run(rng, knobs.clone(), &engine_cfg, trace, cfg.ticks);
    let f = out.faults;
    let faults = FaultCounts {
        crashes: f.crashes,
        landed_sectors: f.landed_sectors,
        lost_sectors: f.lost_sectors,
        latent: f.latent,
        corrupt: f.corrupt,
        ..FaultCounts::default()
    };
    let outcome = Standalone { ops: out.ops, now_us: out.now_us, trace: &out.trace, faults };
    outcome.report(cfg, knobs, out.result)
}

/// A run of the `files` profile ([`crate::filesys`]), reported like any other.
fn run_files(cfg: &RunConfig, rng: SimRng, knobs: Knobs, trace: Trace) -> RunReport {
    let out = crate::filesys::run(rng, knobs.clone(), trace, cfg.ticks);
    let faults = FaultCounts {
        crashes: out.fs.power_cuts,
        files_cuts_mid_op: out.fs.cuts_mid_op,
        files_entries_lost: out.fs.entries_lost,
        files_reverted: out.fs.files_reverted,
        files_full_refusals: out.fs.full_refusals,
        files_kills: out.kills,
        corrupt: out.flips,
        ..FaultCounts::default()
    };
    let outcome = Standalone { ops: out.ops, now_us: out.now_us, trace: &out.trace, faults };
    outcome.report(cfg, knobs, out.result)
}

/// What a profile that runs a world of its own (`fs`, `files`) hands back to be reported.
struct Standalone<'t> {
    ops: u64,
    now_us: u64,
    trace: &'t Trace,
    faults: FaultCounts,
}

impl Standalone<'_> {
    /// The run's report, like any other profile's.
    fn report(self, cfg: &RunConfig, knobs: Knobs, result: Result<(), Violation>) -> RunReport {
        RunReport {
            seed: cfg.seed,
            knobs,
            ops: self.ops,
            sim_us: self.now_us,
            events: self.trace.len(),
            trace_hash: self.trace.hash(),
            faults: self.faults,
            failure: result.err().map(|violation| Failure {
                violation,
                at_us: self.now_us,
                tail: self.trace.tail(),
            }),
            trace: self.trace.full().map(<[String]>::to_vec),
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}
