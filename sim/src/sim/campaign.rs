//! Campaigns: many seeds in a row, a progress bar (only when stderr is a terminal), and a
//! summary — seeds, simulated operations, simulated seconds, wall seconds, the acceleration
//! factor (simulated time / wall time), operations per wall second, and faults by kind.
//!
//! A failing seed stops the campaign: its seed, knobs and last events are printed, the full
//! trace (a deterministic replay with the trace kept) is written to a file, the run is
//! minimized, and the exit status is 1. The wall clock is read here only, for the summary; it
//! never reaches a run.

use super::knobs::FaultKind;
use super::minimize::minimize;
use super::world::FaultCounts;
use super::{RunConfig, RunReport, SimArgs, run};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
pub fn run_seeds(
    base: &RunConfig,
    seeds: impl Iterator<Item = u64>,
    count: u64,
    progress: bool,
    keep_going: bool,
) -> (Summary, Option<RunReport>) {
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(count);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} seeds {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
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
        if let Some(b) = &bar {
            b.inc(1);
            b.set_message(format!("{} ops", s.ops));
        }
        if let Some(f) = &report.failure {
            if keep_going {
                eprintln!("seed {seed} FAILED: {}", f.violation);
                s.failed_seed.get_or_insert(seed);
                failed.get_or_insert(report);
                continue;
            }
            s.failed_seed = Some(seed);
            failed = Some(report);
            break;
        }
        s.passed += 1;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
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
        Err(p) => panic_report(cfg, super::panic_message(p.as_ref())),
    }
}

fn panic_report(cfg: &RunConfig, msg: String) -> RunReport {
    RunReport {
        seed: cfg.seed,
        knobs: super::knobs_of(cfg),
        ops: 0,
        sim_us: 0,
        events: 0,
        trace_hash: 0,
        faults: FaultCounts::default(),
        failure: Some(super::Failure {
            violation: super::oracle::Violation::new("no panics", msg),
            at_us: 0,
            tail: Vec::new(),
        }),
        trace: None,
    }
}

/// Prints the summary table.
pub fn print_summary(s: &Summary) {
    println!(
        "cellar sim — profile {}{}",
        s.profile,
        s.bug.as_ref().map(|b| format!(", planted bug {b}")).unwrap_or_default()
    );
    println!("  seeds               {} ({} passed)", s.seeds, s.passed);
    println!("  simulated ops       {}", s.ops);
    println!("  simulated seconds   {:.1}", s.sim_seconds);
    println!("  wall seconds        {:.2}", s.wall_seconds);
    println!("  acceleration        {:.1}x", s.acceleration);
    println!("  ops per wall second {:.0}", s.ops_per_second);
    let f = &s.faults;
    println!(
        "  faults              crashes {} (sectors lost {}, landed {}), latent {}, corrupt {}, misdirected {}, net dropped {}, duplicated {}, partitions {}",
        f.crashes,
        f.lost_sectors,
        f.landed_sectors,
        f.latent,
        f.corrupt,
        f.misdirected,
        f.net_dropped,
        f.net_duplicated,
        f.partitions
    );
    println!(
        "  gossip              commits {}, messages delivered {}, rejected {}, node crashes {}",
        f.gossip_writes, f.gossip_delivered, f.gossip_rejected, f.gossip_crashes
    );
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
        c.push_str(&format!(" --no-fault {f:?}").to_lowercase());
    }
    if let Some(b) = &cfg.bug {
        c.push_str(&format!(" --bug {b}"));
    }
    c
}

fn write_trace(dir: &Path, cfg: &RunConfig) -> Result<PathBuf, String> {
    let report = run_guarded(&RunConfig { keep_trace: true, ..cfg.clone() });
    let path = dir.join(format!("cellar-sim-{}.trace", cfg.seed));
    let mut text = report.trace.unwrap_or_default().join("\n");
    if let Some(f) = &report.failure {
        text.push_str(&format!("\nFAILURE {}\n", f.violation));
    }
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Prints a failure: seed, knobs, last events, trace file, minimized replay.
pub fn report_failure(args: &SimArgs, cfg: &RunConfig, report: &RunReport) -> serde_json::Value {
    let Some(f) = &report.failure else { return serde_json::Value::Null };
    let knobs = serde_json::to_string_pretty(&report.knobs).unwrap_or_default();
    let trace_file = write_trace(&args.trace_dir, cfg);
    let min = (!args.no_minimize).then(|| minimize(cfg, &f.violation.rule));
    if !args.json {
        eprintln!("FAILED seed {}: {}", cfg.seed, f.violation);
        eprintln!("fault knobs: {knobs}");
        eprintln!("last events:");
        for line in &f.tail {
            eprintln!("  {line}");
        }
        match &trace_file {
            Ok(p) => eprintln!("full trace written to {}", p.display()),
            Err(e) => eprintln!("could not write the trace: {e}"),
        }
        eprintln!("replay: {}", replay_command(cfg));
        if let Some(m) = &min {
            eprintln!(
                "minimized ({} → {} ops, faults on: {:?}): {}",
                report.ops,
                m.ops,
                m.faults_on,
                replay_command(&m.config)
            );
        }
    }
    serde_json::json!({
        "seed": cfg.seed,
        "rule": f.violation.rule,
        "detail": f.violation.detail,
        "knobs": report.knobs,
        "last_events": f.tail,
        "trace_file": trace_file.ok().map(|p| p.display().to_string()),
        "replay": replay_command(cfg),
        "minimized": min.map(|m| serde_json::json!({ "ops": m.ops, "replay": replay_command(&m.config) })),
    })
}

/// `cellar sim` itself.
pub fn run_cli(args: &SimArgs) -> ExitCode {
    let base = RunConfig {
        seed: 0,
        profile: args.profile,
        ticks: args.ticks,
        off: args.no_fault.clone(),
        bug: args.bug.clone(),
        keep_trace: false,
    };
    if let Some(seed) = args.seed {
        return replay(args, &RunConfig { seed, keep_trace: args.trace, ..base });
    }
    let progress = !args.json && std::io::stderr().is_terminal();
    let (summary, failed) =
        run_seeds(&base, args.base..args.base + args.seeds, args.seeds, progress, args.keep_going);
    let failure = failed
        .as_ref()
        .map(|r| report_failure(args, &RunConfig { seed: r.seed, ..base.clone() }, r));
    if args.json {
        println!("{}", serde_json::json!({ "summary": summary, "failure": failure }));
    } else {
        print_summary(&summary);
    }
    if failed.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn replay(args: &SimArgs, cfg: &RunConfig) -> ExitCode {
    let report = run_guarded(cfg);
    if let Some(t) = &report.trace {
        for line in t {
            println!("{line}");
        }
    }
    let ok = report.failure.is_none();
    let failure = (!ok).then(|| report_failure(args, cfg, &report));
    if args.json {
        println!("{}", serde_json::json!({ "run": report, "failure": failure }));
    } else {
        println!(
            "seed {}: {} — {} ops, {:.2} simulated s, {} events, trace hash {:016x}",
            cfg.seed,
            if ok { "passed" } else { "FAILED" },
            report.ops,
            report.sim_us as f64 / 1e6,
            report.events,
            report.trace_hash
        );
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Fault kinds that are on in a run with these knobs.
pub fn faults_on(k: &super::knobs::Knobs) -> Vec<FaultKind> {
    super::knobs::FAULT_KINDS.iter().copied().filter(|f| k.is_on(*f)).collect()
}
