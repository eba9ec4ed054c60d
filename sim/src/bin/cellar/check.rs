//! `cellar check`: model-check the stateright models in `cellar-model` (and their mutants).
//!
//! For each model it prints states generated, unique states, maximum depth, each property's
//! verdict, seconds and states per second; for a failed property, the shortest counterexample as
//! numbered steps in the model's own words. Exit status: 0 if every property holds, 1 if any
//! fails (so `--mutant NAME` exits 1 when the mutant is caught), 2 for bad arguments. `--json`
//! prints one JSON document instead; `--explore ADDR` serves stateright's Explorer; `--report DIR`
//! also writes `summary.json` and `junit.xml` (`docs/reports.md`).
//!
//! Owns only argument handling and presentation; every verdict comes from
//! `cellar_model::models::run`.

use cellar_model::check::{CheckOptions, Report, THREADS_MAX};
use cellar_model::models::{self, MUTANTS, ModelKind, SetupError, Sizes};
use cellar_sim::report::{self, Suite};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `cellar check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Model to check: cell, volume, gossip, sector or all.
    #[arg(long, default_value = "all")]
    pub model: String,
    /// Check this named mutant (see --list); its model is implied. Exits 1 when caught.
    #[arg(long)]
    pub mutant: Option<String>,
    /// Size parameter KEY=VALUE or MODEL.KEY=VALUE, e.g. --size clients=2 (repeatable).
    #[arg(long = "size", value_parser = parse_size)]
    pub sizes: Vec<(String, u64)>,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Serve stateright's Explorer on ADDR (e.g. 127.0.0.1:3000) instead of checking.
    #[arg(long, value_name = "ADDR")]
    pub explore: Option<String>,
    /// With --mutant: explore the whole space instead of stopping at the first counterexample
    /// of the property that catches the mutant.
    #[arg(long)]
    pub exhaustive: bool,
    /// Do not reduce by symmetry (slower; for cross-checking the reduction).
    #[arg(long)]
    pub no_symmetry: bool,
    /// List models, their sizes and the mutants, then exit.
    #[arg(long)]
    pub list: bool,
    /// Also write DIR/summary.json and DIR/junit.xml: a test case per property (or, with
    /// --mutant, one passing when the mutant is caught). Exit statuses are unchanged; 2 if the
    /// report cannot be written.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<(String, u64), String> {
    let (key, value) =
        text.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    let value = value.trim().parse::<u64>().map_err(|e| format!("size {key}: {e}"))?;
    Ok((key.trim().to_string(), value))
}

/// Runs `cellar check`.
pub fn run(args: &CheckArgs) -> ExitCode {
    if args.list {
        print_list();
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let (code, suites) = run_collect(args);
    if let (Some(dir), Some(suites)) = (&args.report, suites) {
        let line = report::quote_words(std::env::args());
        let r = report::Report::new("check", line, started.elapsed().as_secs_f64(), suites);
        if let Err(e) = report::write(dir, &r) {
            eprintln!("cellar check: writing the report to {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    code
}

/// Runs the check and returns its exit status and the report's suites (`None` for bad
/// arguments and `--explore`): one per model, or the mutant's.
pub fn run_collect(args: &CheckArgs) -> (ExitCode, Option<Vec<Suite>>) {
    match run_checked(args) {
        Ok((passed, reports)) => {
            let suites = match args.mutant.as_deref().and_then(models::mutant) {
                Some(m) => reports
                    .first()
                    .map(|(r, sizes)| vec![report::check::mutant_suite(m, r, sizes)])
                    .unwrap_or_default(),
                None => report::check::property_suites(&reports),
            };
            let code = if passed { ExitCode::SUCCESS } else { ExitCode::from(1) };
            (code, (args.explore.is_none()).then_some(suites))
        }
        Err(e) => {
            eprintln!("cellar check: {e}");
            (ExitCode::from(2), None)
        }
    }
}

/// Which models to run, with their sizes. Errors for unknown names and unused size keys.
fn plan(args: &CheckArgs) -> Result<Vec<(ModelKind, Sizes)>, SetupError> {
    let mut kinds = match args.model.as_str() {
        "all" => ModelKind::ALL.to_vec(),
        name => vec![
            ModelKind::from_name(name).ok_or_else(|| SetupError::UnknownModel(name.to_string()))?,
        ],
    };
    if let Some(name) = &args.mutant {
        let info = models::mutant(name).ok_or_else(|| SetupError::UnknownMutant(name.clone()))?;
        if args.model != "all" && !kinds.contains(&info.model) {
            return Err(SetupError::MutantModelMismatch {
                mutant: name.clone(),
                belongs_to: info.model.name(),
                model: kinds.first().map_or("?", |k| k.name()),
            });
        }
        kinds = vec![info.model];
    }
    let mut plans = Vec::new();
    let mut unknown_per_model = Vec::new();
    for kind in kinds {
        let mut unknown = Vec::new();
        plans.push((kind, Sizes::with(kind, &args.sizes, &mut unknown)?));
        unknown_per_model.push(unknown);
    }
    // A bare key must be known to at least one selected model; `model.key` to its model.
    for (key, _) in &args.sizes {
        let used_somewhere = unknown_per_model.iter().any(|u| !u.contains(key));
        let qualified_elsewhere =
            key.split_once('.').is_some_and(|(m, _)| !plans.iter().any(|(k, _)| k.name() == m));
        if !used_somewhere || qualified_elsewhere {
            let names: Vec<&str> = plans.iter().map(|(k, _)| k.name()).collect();
            return Err(SetupError::UnknownSize { key: key.clone(), model: names.join(", ") });
        }
    }
    Ok(plans)
}

fn run_checked(args: &CheckArgs) -> Result<(bool, Vec<(Report, Sizes)>), SetupError> {
    let plans = plan(args)?;
    if let Some(addr) = &args.explore {
        let Some((kind, sizes)) = plans.first().filter(|_| plans.len() == 1) else {
            return Err(SetupError::UnknownModel(
                "--explore needs one --model (or a --mutant)".into(),
            ));
        };
        eprintln!(
            "serving the {} model's Explorer on http://{addr}/ (Ctrl-C to stop)",
            kind.name()
        );
        models::explore(*kind, args.mutant.as_deref(), sizes, addr)?;
        return Ok((true, Vec::new()));
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, THREADS_MAX);
    // A mutant run stops once the property that must catch it fails (its counterexample is
    // still the shortest); --exhaustive explores the mutant's whole space.
    let stop_when_violated = match (&args.mutant, args.exhaustive) {
        (Some(name), false) => models::mutant(name).map(|m| m.caught_by),
        _ => None,
    };
    let options = CheckOptions { threads, symmetry: !args.no_symmetry, stop_when_violated };
    let mut reports = Vec::new();
    for (kind, sizes) in &plans {
        let report = models::run(*kind, args.mutant.as_deref(), sizes, options)?;
        if !args.json {
            print_report(&report, sizes);
        }
        reports.push((report, sizes.clone()));
    }
    let passed = reports.iter().all(|(r, _)| r.passed());
    if args.json {
        println!("{}", json_document(args, threads, &reports, passed));
    } else {
        print_summary(&reports, passed, args.mutant.as_deref());
    }
    Ok((passed, reports))
}

fn sizes_text(sizes: &Sizes) -> String {
    let parts: Vec<String> = sizes.values().iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

fn print_report(report: &Report, sizes: &Sizes) {
    println!("== model {} ({})", report.model, sizes_text(sizes));
    println!(
        "   states generated {}, unique states {}, max depth {}, {:.2} s, {:.0} states/s{}",
        report.states_generated,
        report.unique_states,
        report.max_depth,
        report.seconds,
        report.states_per_second(),
        if report.exhaustive { "" } else { " (stopped early)" }
    );
    for v in &report.properties {
        let verdict = match (v.holds, v.decided) {
            (true, _) => "ok  ",
            (false, true) => "FAIL",
            (false, false) => "??  ",
        };
        println!("   {verdict} {:<10} {}", v.kind, v.name);
        if let (false, Some(trace)) = (v.holds, &v.trace) {
            println!("        shortest counterexample ({} steps):", trace.steps.len());
            for (i, step) in trace.steps.iter().enumerate() {
                println!("        {:>3}. {step}", i + 1);
            }
            println!("        then: {}", trace.final_state);
        }
        if !v.holds && v.trace.is_none() {
            if v.decided {
                println!("        no reachable state shows this: impossible at this size");
            } else {
                println!("        not reached before checking stopped (undecided)");
            }
        }
    }
}

fn print_summary(reports: &[(Report, Sizes)], passed: bool, mutant: Option<&str>) {
    println!();
    println!(
        "| model  | states generated | unique states | max depth | properties | seconds | states/s |"
    );
    println!(
        "|--------|-----------------:|--------------:|----------:|-----------:|--------:|---------:|"
    );
    for (r, _) in reports {
        let ok = r.properties.iter().filter(|v| v.holds || !v.decided).count();
        println!(
            "| {:<6} | {:>16} | {:>13} | {:>9} | {:>4} of {:<2} | {:>7.2} | {:>8.0} |",
            r.model,
            r.states_generated,
            r.unique_states,
            r.max_depth,
            ok,
            r.properties.len(),
            r.seconds,
            r.states_per_second()
        );
    }
    match (passed, mutant) {
        (true, None) => println!("all properties hold"),
        (false, None) => println!("PROPERTY VIOLATED"),
        (true, Some(m)) => println!("mutant {m} was NOT caught"),
        (false, Some(m)) => println!("mutant {m} caught"),
    }
}

fn json_document(
    args: &CheckArgs,
    threads: usize,
    reports: &[(Report, Sizes)],
    passed: bool,
) -> String {
    let models: Vec<serde_json::Value> = reports
        .iter()
        .map(|(r, sizes)| {
            let size_map: serde_json::Map<String, serde_json::Value> = sizes
                .values()
                .iter()
                .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
                .collect();
            serde_json::json!({
                "model": r.model,
                "sizes": size_map,
                "states_generated": r.states_generated,
                "unique_states": r.unique_states,
                "max_depth": r.max_depth,
                "seconds": r.seconds,
                "states_per_second": r.states_per_second(),
                "exhaustive": r.exhaustive,
                "passed": r.passed(),
                "properties": r.properties,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "mutant": args.mutant,
        "threads": threads,
        "symmetry": !args.no_symmetry,
        "passed": passed,
        "models": models,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn print_list() {
    for kind in ModelKind::ALL {
        println!("model {}", kind.name());
        for k in kind.size_keys() {
            println!("  --size {}={} ({}..={}): {}", k.key, k.default, k.min, k.max, k.what);
        }
    }
    println!("mutants");
    for m in MUTANTS {
        println!("  {:<34} caught by \"{}\": {}", m.name, m.caught_by, m.what);
    }
}
