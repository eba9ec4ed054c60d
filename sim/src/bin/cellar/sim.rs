//! `cellar sim`: flags → [`RunConfig`], a campaign or a replay through the `cellar_sim`
//! library, then the summary, the failing seed, its trace file and its minimized replay.

use cellar_sim::campaign::{Summary, replay_command, run_guarded, run_seeds};
use cellar_sim::knobs::{FaultKind, Profile};
use cellar_sim::minimize::minimize;
use cellar_sim::report::sim::{FailedSeed, campaign_suite, replay_suite};
use cellar_sim::report::{self, Suite};
use cellar_sim::{RunConfig, RunReport, TICKS_DEFAULT};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `cellar sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Run this many seeds (`base`, `base + 1`, …).
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    pub seeds: u64,
    /// Replay exactly this seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// First seed of a campaign.
    #[arg(long, default_value_t = 0)]
    pub base: u64,
    /// Which processes and faults the swarm draws from: swarm, storage, network, volume,
    /// hostile, gossip, full, fs, files.
    #[arg(long, default_value = "swarm", value_parser = parse_profile)]
    pub profile: Profile,
    /// Events in the fault phase of each run.
    #[arg(long, default_value_t = TICKS_DEFAULT)]
    pub ticks: u64,
    /// Print the summary (and any failure) as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Plant a named bug (binary built with `--features planted-bugs`).
    #[arg(long)]
    pub bug: Option<String>,
    /// Print every event of the run (with `--seed`).
    #[arg(long)]
    pub trace: bool,
    /// Switch a fault kind or a workload stress off (repeatable; crash, latent, corrupt,
    /// misdirect, drop, dup, partition, attack, header, medium, deep-trees, limits); the
    /// minimizer prints these.
    #[arg(long = "no-fault", value_parser = parse_fault)]
    pub no_fault: Vec<FaultKind>,
    /// Where a failing run's full trace is written.
    #[arg(long, default_value = ".")]
    pub trace_dir: PathBuf,
    /// Run every seed even after failures; print each failing seed and its rule.
    #[arg(long)]
    pub keep_going: bool,
    /// Do not shrink a failing run.
    #[arg(long)]
    pub no_minimize: bool,
    /// Also write DIR/summary.json and DIR/junit.xml: the campaign (or replayed seed) as a test
    /// case, failing with the reproducing seed. Exit statuses are unchanged; 2 if the report
    /// cannot be written.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
}

fn parse_fault(s: &str) -> Result<FaultKind, String> {
    s.parse()
}

/// How a failing run is reported.
pub struct FailureOutput<'a> {
    /// Where its full trace is written.
    pub trace_dir: &'a Path,
    /// Shrink it first.
    pub minimize: bool,
    /// Print nothing on stderr (the caller prints the returned JSON).
    pub json: bool,
}

/// Runs `cellar sim`.
pub fn run(args: &SimArgs) -> ExitCode {
    let started = Instant::now();
    let (code, suite) = run_collect(args);
    if let (Some(dir), Some(suite)) = (&args.report, suite) {
        let line = report::quote_words(std::env::args());
        let r = report::Report::new("sim", line, started.elapsed().as_secs_f64(), vec![suite]);
        if let Err(e) = report::write(dir, &r) {
            eprintln!("cellar sim: writing the report to {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    code
}

fn run_collect(args: &SimArgs) -> (ExitCode, Option<Suite>) {
    if let Some(b) = &args.bug
        && let Err(e) = cellar::bugs::plant(b)
    {
        eprintln!(
            "cellar sim: {e} (known: {:?}; the binary needs --features planted-bugs)",
            cellar::bugs::ALL
        );
        return (ExitCode::from(2), None);
    }
    let base = RunConfig {
        seed: 0,
        profile: args.profile,
        ticks: args.ticks,
        off: args.no_fault.clone(),
        bug: args.bug.clone(),
        keep_trace: false,
    };
    let out =
        FailureOutput { trace_dir: &args.trace_dir, minimize: !args.no_minimize, json: args.json };
    if let Some(seed) = args.seed {
        return replay(&out, &RunConfig { seed, keep_trace: args.trace, ..base });
    }
    let progress = !args.json && std::io::stderr().is_terminal();
    let seeds = args.base..args.base.saturating_add(args.seeds);
    let (summary, failed, more) = campaign(&base, seeds, args.seeds, progress, args.keep_going);
    let failure = failed
        .as_ref()
        .and_then(|r| report_failure(&out, &RunConfig { seed: r.seed, ..base.clone() }, r));
    if args.json {
        println!("{}", serde_json::json!({ "summary": summary, "failure": failure }));
    } else {
        print_summary(&summary);
    }
    let failures: Vec<FailedSeed> = failure.into_iter().chain(more).collect();
    let suite = campaign_suite(&summary, args.base, args.seeds, &failures);
    (if failed.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }, Some(suite))
}

/// A campaign with a progress bar on a terminal and, with `keep_going`, one line per failing
/// seed. Returns the summary, the first failing run and the further failing seeds.
pub fn campaign(
    base: &RunConfig,
    seeds: impl Iterator<Item = u64>,
    count: u64,
    progress: bool,
    keep_going: bool,
) -> (Summary, Option<RunReport>, Vec<FailedSeed>) {
    let mut failures = Vec::new();
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
    let result = run_seeds(base, seeds, keep_going, &mut |report, s| {
        if let Some(b) = &bar {
            b.inc(1);
            b.set_message(format!("{} ops", s.ops));
        }
        if keep_going && let Some(f) = &report.failure {
            eprintln!("seed {} FAILED: {}", report.seed, f.violation);
            let cfg = RunConfig { seed: report.seed, ..base.clone() };
            failures.push(FailedSeed::brief(&cfg, &f.violation.rule, &f.violation.detail));
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // The first failure is reported in full by the caller.
    (result.0, result.1, failures.into_iter().skip(1).collect())
}

fn replay(out: &FailureOutput<'_>, cfg: &RunConfig) -> (ExitCode, Option<Suite>) {
    let report = run_guarded(cfg);
    if let Some(t) = &report.trace {
        for line in t {
            println!("{line}");
        }
    }
    let ok = report.failure.is_none();
    let failure = report_failure(out, cfg, &report);
    if out.json {
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
    let suite = replay_suite(cfg, &report, failure.as_ref());
    (if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }, Some(suite))
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
    if f.clean_shutdowns > 0 {
        println!(
            "  checkpoints         {} clean shutdowns, {} restarts loaded a checkpoint",
            f.clean_shutdowns, f.checkpoint_loads
        );
    }
    if f.gossip_tree_level_max > 0 || f.limit_writes > 0 || f.limit_refusals > 0 {
        println!(
            "  stresses            deepest gossip tree {} levels; {} writes at a size limit, {} one past it refused",
            if f.gossip_writes > 0 { f.gossip_tree_level_max + 1 } else { 0 },
            f.limit_writes,
            f.limit_refusals
        );
    }
    if f.files_kills > 0 || f.files_entries_lost > 0 || f.files_full_refusals > 0 {
        println!(
            "  file system         {} power cuts mid-operation, {} directory changes lost, {} files lost unsynced bytes, {} steps refused as full, {} processes killed",
            f.files_cuts_mid_op,
            f.files_entries_lost,
            f.files_reverted,
            f.files_full_refusals,
            f.files_kills
        );
    }
    if f.header > 0 || f.header_medium > 0 || f.medium_records > 0 {
        println!(
            "  header atlas        {} record sector flips ({} in packing sectors), {} on the medium at power cuts ({} superblock copies, {} free headers), {} flushed records flipped at rest",
            f.header,
            f.header_packed,
            f.header_medium,
            f.medium_superblock,
            f.header_medium - f.medium_superblock,
            f.medium_records
        );
    }
    if f.full_fills > 0 || f.space_refusals > 0 {
        println!(
            "  full device         filled {} times, drained {} times, {} writes refused for space",
            f.full_fills, f.full_drains, f.space_refusals
        );
    }
    if f.channel_established > 0 || f.attacks > 0 {
        println!(
            "  channels            handshakes {}, ends refused {}, attacks {}, attacker saw {} bytes (no ref)",
            f.channel_established, f.channel_refused, f.attacks, f.attacker_seen_bytes
        );
    }
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

/// Prints a failure: seed, knobs, last events, trace file, minimized replay. Returns it (for
/// `--json` and the report); `None` if the run passed.
pub fn report_failure(
    args: &FailureOutput<'_>,
    cfg: &RunConfig,
    report: &RunReport,
) -> Option<FailedSeed> {
    let f = report.failure.as_ref()?;
    let trace_file = write_trace(args.trace_dir, cfg);
    let min = args.minimize.then(|| minimize(cfg, &f.violation.rule));
    if !args.json {
        let knobs = serde_json::to_string_pretty(&report.knobs).unwrap_or_default();
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
    let trace_file = trace_file.ok().map(|p| p.display().to_string());
    FailedSeed::of(cfg, report, trace_file, min.as_ref())
}
