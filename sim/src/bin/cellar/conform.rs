//! `cellar conform`: judge an implementation (in any language) through the black-box protocol
//! of `specs/conform.md`; `cellar conform adapter` is the Rust implementation behind it.

use cellar_sim::conform::adapter::{self, AdapterBug};
use cellar_sim::conform::process::Iut;
use cellar_sim::conform::{report, run_vectors, vectors};
use std::path::PathBuf;
use std::process::ExitCode;

/// `cellar conform` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ConformCommand {
    /// Feed every vector of specs/vectors/ to an implementation; report each mismatch by id.
    Vectors(VectorsArgs),
    /// Serve the black-box protocol on stdin/stdout with the Rust implementation.
    Adapter(AdapterArgs),
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
    /// A planted bug (repeatable): accepts-flipped-tag, accepts-upper-case-ref.
    #[arg(long = "bug")]
    pub bugs: Vec<String>,
}

/// Runs a `cellar conform` subcommand.
pub fn run(cmd: ConformCommand) -> ExitCode {
    match cmd {
        ConformCommand::Vectors(args) => run_vectors_cmd(&args),
        ConformCommand::Adapter(args) => run_adapter(&args),
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
