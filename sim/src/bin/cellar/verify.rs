//! `cellar verify`: the main job. Runs the model check of every stateright model (what
//! `cellar check --model all` runs) and a simulation campaign of [`VERIFY_SEEDS`] seeds of the
//! `swarm` profile, then prints one summary table. Exit status 0 only if both passed. `--report DIR` also
//! writes `summary.json` and `junit.xml` (`docs/reports.md`).

use crate::sim::{FailureOutput, campaign, report_failure};
use cellar_sim::knobs::Profile;
use cellar_sim::report::sim::campaign_suite;
use cellar_sim::report::{self, Suite};
use cellar_sim::{RunConfig, TICKS_DEFAULT};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Seeds of the simulation campaign.
pub const VERIFY_SEEDS: u64 = 500;

/// Arguments of `cellar verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Seeds of the simulation campaign.
    #[arg(long, default_value_t = VERIFY_SEEDS)]
    pub seeds: u64,
    /// Skip the model check (simulation only).
    #[arg(long)]
    pub skip_check: bool,
    /// Also write DIR/summary.json and DIR/junit.xml: every model property and the campaign
    /// as test cases. Exit statuses are unchanged; 2 if the report cannot be written.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Parses `cellar check` arguments the way the command line would, so `verify` follows
/// whatever `CheckArgs` becomes.
#[derive(Parser, Debug)]
struct CheckCli {
    #[command(flatten)]
    args: crate::check::CheckArgs,
}

/// The model check's verdict, seconds and report suites (one per model).
fn model_check() -> (bool, f64, Vec<Suite>) {
    let started = Instant::now();
    let args = CheckCli::try_parse_from(["check", "--model", "all"])
        .or_else(|_| CheckCli::try_parse_from(["check"]));
    let (ok, suites) = match args {
        Ok(a) => {
            let (code, suites) = crate::check::run_collect(&a.args);
            (code == ExitCode::SUCCESS, suites.unwrap_or_default())
        }
        Err(e) => {
            eprintln!("cellar verify: cannot build the check arguments: {e}");
            (false, Vec::new())
        }
    };
    (ok, started.elapsed().as_secs_f64(), suites)
}

/// Runs `cellar verify`.
pub fn run(args: &VerifyArgs) -> ExitCode {
    let started = Instant::now();
    let (check_ok, check_s, mut suites) =
        if args.skip_check { (true, 0.0, Vec::new()) } else { model_check() };
    let base = RunConfig {
        seed: 0,
        profile: Profile::Swarm,
        ticks: TICKS_DEFAULT,
        off: Vec::new(),
        bug: None,
        keep_trace: false,
    };
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (summary, failed, _) = campaign(&base, 0..args.seeds, args.seeds, progress, false);
    let failure = failed.as_ref().and_then(|r| {
        let out =
            FailureOutput { trace_dir: std::path::Path::new("."), minimize: true, json: false };
        report_failure(&out, &RunConfig { seed: r.seed, ..base.clone() }, r)
    });
    suites.push(campaign_suite(&summary, 0, args.seeds, failure.as_slice()));
    let sim_ok = failed.is_none();
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!();
    println!("cellar verify");
    println!("  {:<28} {:<6} details", "step", "result");
    println!(
        "  {:<28} {:<6} {:.1} s{}",
        "model check (all models)",
        verdict(check_ok),
        check_s,
        if args.skip_check { " (skipped)" } else { "" }
    );
    println!(
        "  {:<28} {:<6} {}/{} seeds, {} ops, {:.0} simulated s in {:.1} wall s ({:.0}x, {:.0} ops/s)",
        "simulation (swarm)",
        verdict(sim_ok),
        summary.passed,
        summary.seeds,
        summary.ops,
        summary.sim_seconds,
        summary.wall_seconds,
        summary.acceleration,
        summary.ops_per_second
    );
    if let Some(dir) = &args.report {
        let line = report::quote_words(std::env::args());
        let r = report::Report::new("verify", line, started.elapsed().as_secs_f64(), suites);
        if let Err(e) = report::write(dir, &r) {
            eprintln!("cellar verify: writing the report to {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    if check_ok && sim_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
