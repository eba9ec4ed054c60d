//! `cellar conform`: judge an implementation (in any language) through the black-box protocol
//! of `specs/conform.md`; `cellar conform adapter` is the Rust implementation behind it.

use cellar_sim::conform::adapter::{self, AdapterBug};
use cellar_sim::conform::process::Iut;
use cellar_sim::conform::sector::{self, SectorConfig};
use cellar_sim::conform::sector_adapter::SectorBug;
use cellar_sim::conform::suites::{self, SuiteConfig};
use cellar_sim::conform::volume::{self, VolumeConfig};
use cellar_sim::conform::{report, run_vectors, vectors};
use std::path::PathBuf;
use std::process::ExitCode;

/// `cellar conform` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ConformCommand {
    /// Feed every vector of specs/vectors/ to an implementation; report each mismatch by id.
    Vectors(VectorsArgs),
    /// Concurrent clients on one cell, killed and restarted; linearizability against CasRegister.
    Cell(SuiteArgs),
    /// Puts, gets, deletes and lists, killed and restarted; nothing acknowledged lost.
    Store(SuiteArgs),
    /// Syncs, cleanups and held modes on several volumes, killed and restarted; every step
    /// judged by VolumeSpec (VOL-1, VOL-2, VOL-3, VOL-6).
    Volume(SuiteArgs),
    /// Probe a sector server on a Unix socket (PROTO-*) and, with --restart, crash it under a
    /// seeded workload and judge what survived (SEC-2, SEC-7, SEC-8, PROTO-8, PROTO-10).
    Sector(SectorArgs),
    /// Serve the black-box protocol on stdin/stdout with the Rust implementation.
    Adapter(AdapterArgs),
    /// Serve a formatted sector device on a socket like `cellar sector serve`, optionally with
    /// a planted bug (for `cellar conform sector`).
    SectorAdapter(SectorAdapterArgs),
}

/// `cellar conform cell|store` arguments.
#[derive(clap::Args, Debug)]
pub struct SuiteArgs {
    /// The implementation: a shell command speaking JSON lines (`specs/conform.md`).
    #[arg(long = "impl")]
    pub implementation: String,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Run only this seed (reproduce a failure).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Processes sharing the state directory (volume: processes per volume).
    #[arg(long, default_value_t = 3)]
    pub clients: usize,
    /// Volumes (volume suite only).
    #[arg(long, default_value_t = 3)]
    pub volumes: usize,
    /// Operations per seed.
    #[arg(long, default_value_t = 40)]
    pub ops: usize,
    /// Chance of a kill per step, parts per million.
    #[arg(long, default_value_t = 150_000)]
    pub kill_ppm: u32,
    /// Write conform.json and junit.xml into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `cellar conform sector` arguments.
#[derive(clap::Args, Debug)]
pub struct SectorArgs {
    /// The server's Unix socket.
    #[arg(long)]
    pub socket: PathBuf,
    /// The command that starts the server in the foreground (e.g. 'exec cellar sector serve
    /// --path DEV --socket SOCK'); the harness runs it, SIGKILLs and restarts it. Without it
    /// only the probes run, against a server already listening.
    #[arg(long)]
    pub restart: Option<String>,
    /// Seeds 0..N of the crash workload.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Run only this seed (reproduce a failure).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Connections of the crash workload.
    #[arg(long, default_value_t = 3)]
    pub connections: usize,
    /// Crashes per seed.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Write conform.json and junit.xml into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `cellar conform sector-adapter` arguments.
#[derive(clap::Args, Debug)]
pub struct SectorAdapterArgs {
    /// The device file (formatted with `cellar sector format`).
    #[arg(long)]
    pub path: PathBuf,
    /// The Unix socket to listen on.
    #[arg(long)]
    pub socket: PathBuf,
    /// A planted bug: flushed-write-lost-on-crash.
    #[arg(long = "bug")]
    pub bug: Option<String>,
}

/// `cellar conform vectors` arguments.
#[derive(clap::Args, Debug)]
pub struct VectorsArgs {
    /// The implementation: a shell command speaking JSON lines (`specs/conform.md`).
    #[arg(long = "impl")]
    pub implementation: String,
    /// The vector directory.
    #[arg(long, default_value = "specs/vectors")]
    pub vectors: PathBuf,
    /// Only these formats (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// Count a refusal with another error kind than the vector's as a failure.
    #[arg(long)]
    pub strict_errors: bool,
    /// Write conform.json and junit.xml into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `cellar conform adapter` arguments.
#[derive(clap::Args, Debug)]
pub struct AdapterArgs {
    /// A planted bug (repeatable): accepts-flipped-tag, accepts-upper-case-ref,
    /// cas-ignores-expected, put-lost-on-restart, cleanup-ignores-mode.
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
}

/// Runs a `cellar conform` subcommand.
pub fn run(cmd: ConformCommand) -> ExitCode {
    match cmd {
        ConformCommand::Vectors(args) => run_vectors_cmd(&args),
        ConformCommand::Cell(args) => run_suite("cell", &args),
        ConformCommand::Store(args) => run_suite("store", &args),
        ConformCommand::Volume(args) => run_suite("volume", &args),
        ConformCommand::Sector(args) => run_sector(&args),
        ConformCommand::Adapter(args) => run_adapter(&args),
        ConformCommand::SectorAdapter(args) => run_sector_adapter(&args),
    }
}

fn run_suite(suite: &str, args: &SuiteArgs) -> ExitCode {
    let cfg = SuiteConfig {
        cmd: args.implementation.clone(),
        clients: args.clients,
        ops: args.ops,
        kill_ppm: args.kill_ppm,
    };
    let vcfg = VolumeConfig {
        cmd: args.implementation.clone(),
        volumes: args.volumes,
        procs_per_volume: args.clients,
        ops: args.ops,
        kill_ppm: args.kill_ppm,
    };
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (0..args.seeds).collect(),
    };
    let mut outcomes = Vec::new();
    for seed in seeds {
        let r = match suite {
            "cell" => suites::cell_seed(&cfg, seed),
            "store" => suites::store_seed(&cfg, seed),
            _ => volume::volume_seed(&vcfg, seed),
        };
        match r {
            Ok(o) => {
                if let Some(f) = &o.failure {
                    println!("FAILED seed {seed}: {f}");
                    println!(
                        "reproduce: cellar conform {suite} --impl '{}' --seed {seed}",
                        args.implementation
                    );
                }
                outcomes.push(o);
            }
            Err(e) => {
                println!("FAILED seed {seed}: the implementation misbehaved: {e}");
                outcomes.push(suites::SeedOutcome {
                    seed,
                    ops: 0,
                    kills: 0,
                    open: 0,
                    failure: Some(e.to_string()),
                });
            }
        }
    }
    print!("{}", suites::table(suite, &outcomes));
    if let Some(dir) = &args.report
        && let Err(e) = report::write_suite(dir, suite, &outcomes)
    {
        eprintln!("cellar conform {suite}: writing the report: {e}");
        return ExitCode::FAILURE;
    }
    if outcomes.iter().any(|o| o.failure.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn run_sector(args: &SectorArgs) -> ExitCode {
    let cfg = SectorConfig {
        socket: args.socket.clone(),
        restart: args.restart.clone(),
        connections: args.connections,
        rounds: args.rounds,
    };
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (0..args.seeds).collect(),
    };
    let cases = sector::run(&cfg, &seeds);
    for c in &cases {
        let Some(f) = &c.failure else { continue };
        match c.seed {
            Some(seed) => {
                println!("FAILED seed {seed}: {f}");
                println!(
                    "reproduce: cellar conform sector --socket '{}' --restart '{}' --seed {seed}",
                    args.socket.display(),
                    args.restart.as_deref().unwrap_or("")
                );
            }
            None => println!("FAIL {}: {f}", c.name),
        }
    }
    print!("{}", sector::table("sector", &cases));
    if args.restart.is_none() {
        println!("(no --restart: the crash workload and the shutdown check did not run)");
    }
    if let Some(dir) = &args.report
        && let Err(e) = report::write_cases(dir, "sector", &cases)
    {
        eprintln!("cellar conform sector: writing the report: {e}");
        return ExitCode::FAILURE;
    }
    if cases.iter().any(|c| c.failure.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn run_sector_adapter(args: &SectorAdapterArgs) -> ExitCode {
    let bug = match args.bug.as_deref().map(|b| (b, SectorBug::from_name(b))) {
        None => None,
        Some((_, Some(b))) => Some(b),
        Some((name, None)) => {
            eprintln!("cellar conform sector-adapter: unknown bug {name:?}");
            return ExitCode::from(2);
        }
    };
    match crate::sector::serve_with(&args.path, &args.socket, bug) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cellar conform sector-adapter: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_adapter(args: &AdapterArgs) -> ExitCode {
    let mut bugs = Vec::new();
    for name in &args.bugs {
        match AdapterBug::from_name(name) {
            Some(b) => bugs.push(b),
            None => {
                eprintln!("cellar conform adapter: unknown bug {name:?}");
                return ExitCode::from(2);
            }
        }
    }
    match adapter::serve(std::io::stdin().lock(), std::io::stdout().lock(), &bugs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar conform adapter: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_vectors_cmd(args: &VectorsArgs) -> ExitCode {
    let mut files = match vectors::read_dir(&args.vectors) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cellar conform vectors: reading {}: {e}", args.vectors.display());
            return ExitCode::from(2);
        }
    };
    if !args.only.is_empty() {
        files.retain(|f| args.only.contains(&f.format));
    }
    let state = std::env::temp_dir().join(format!("cellar-conform-{}", std::process::id()));
    let result = Iut::start(&args.implementation, &state).and_then(|mut iut| {
        let r = run_vectors::run(&mut iut, &files, args.strict_errors);
        iut.finish();
        r
    });
    let _ = std::fs::remove_dir_all(&state);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cellar conform vectors: {e}");
            return ExitCode::FAILURE;
        }
    };
    for m in &report.mismatches {
        let what = if m.kind_only { "KIND" } else { "FAIL" };
        println!(
            "{what} {} tcId {}: {}: expected {}, got {}",
            m.format, m.tc_id, m.comment, m.expected, m.got
        );
    }
    print!("{}", run_vectors::table(&report));
    if let Some(dir) = &args.report
        && let Err(e) = report::write(dir, &report)
    {
        eprintln!("cellar conform vectors: writing the report: {e}");
        return ExitCode::FAILURE;
    }
    if report.failed() > 0 {
        println!("FAILED: {} vectors", report.failed());
        return ExitCode::FAILURE;
    }
    println!("PASSED");
    ExitCode::SUCCESS
}
