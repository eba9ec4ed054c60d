//! Reports for CI systems: `cellar check`, `cellar sim` and `cellar verify` with `--report DIR`
//! write `DIR/summary.json` and `DIR/junit.xml` (format: `docs/reports.md`).
//!
//! Both files render one [`Report`]: suites of cases, where a case is a model property, a
//! mutant or a simulation campaign (or failing seed), with its counts and, on failure, the
//! counterexample or the reproducing seed and the command line that reproduces it. The JUnit
//! writer ([`junit`]) is shared with the conformance suites' reports.
//!
//! Builds and writes only: the commands measure wall time and pass it in.

pub mod check;
pub mod junit;
pub mod sim;

use serde::Serialize;
use std::path::Path;

/// Version of the `summary.json` format (`docs/reports.md`).
pub const FORMAT_VERSION: u32 = 1;

/// Numbers describing a case or suite (states explored, seeds run, …), by name.
pub type Counts = serde_json::Map<String, serde_json::Value>;

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It passed.
    Passed,
    /// It failed: see `message`, `details` and `reproduce`.
    Failed,
    /// It was not decided (e.g. a `sometimes` property not reached before checking stopped).
    Skipped,
}

/// One test case.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// Its name, e.g. a property's name, `mutant volume:no-mode-exclusion`, `campaign`.
    pub name: String,
    /// Its group, e.g. `check.cell`, `sim.swarm`.
    pub classname: String,
    /// Passed, failed or skipped.
    pub status: Status,
    /// Wall seconds, if measured for this case alone.
    pub time_seconds: Option<f64>,
    /// Its numbers.
    pub counts: Counts,
    /// One line: why it failed or was skipped.
    pub message: Option<String>,
    /// Multi-line text: the counterexample or example, the failing seed's last events…
    pub details: String,
    /// The command line that reproduces it (failures; the mutant's check for mutants).
    pub reproduce: Option<String>,
}

/// A group of cases: one model, one mutant run, one simulation profile.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    /// Its name, e.g. `check cell`, `sim swarm`.
    pub name: String,
    /// Wall seconds, if measured.
    pub time_seconds: Option<f64>,
    /// Numbers of the whole suite (e.g. a model's states explored).
    pub counts: Counts,
    /// The cases.
    pub cases: Vec<Case>,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// `check`, `sim` or `verify`.
    pub command: String,
    /// The command line as run.
    pub command_line: String,
    /// True if no case failed (the command's own verdict; a caught mutant passes).
    pub passed: bool,
    /// Wall seconds of the whole command, as the command measured it.
    pub time_seconds: f64,
    /// Cases in all.
    pub tests: u64,
    /// Failed cases.
    pub failures: u64,
    /// Skipped cases.
    pub skipped: u64,
    /// The suites.
    pub suites: Vec<Suite>,
}

impl Report {
    /// A report of `suites`, with totals counted from their cases.
    pub fn new(command: &str, command_line: String, time_seconds: f64, suites: Vec<Suite>) -> Self {
        let cases = || suites.iter().flat_map(|s| s.cases.iter());
        let count = |st: Status| cases().filter(|c| c.status == st).count() as u64;
        let failures = count(Status::Failed);
        Self {
            format: FORMAT_VERSION,
            command: command.to_string(),
            command_line,
            passed: failures == 0,
            time_seconds,
            tests: cases().count() as u64,
            failures,
            skipped: count(Status::Skipped),
            suites,
        }
    }

    /// The JUnit document.
    pub fn junit(&self) -> junit::TestSuites {
        junit::TestSuites {
            name: format!("cellar {}", self.command),
            suites: self.suites.iter().map(junit_suite).collect(),
        }
    }
}

/// `name: value` lines.
pub fn counts_text(counts: &Counts) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    counts.iter().map(|(k, v)| format!("{k}: {}\n", text(v))).collect()
}

fn junit_suite(s: &Suite) -> junit::TestSuite {
    let cases = s.cases.iter().map(junit_case).collect();
    junit::TestSuite { time_seconds: s.time_seconds, ..junit::TestSuite::of_cases(&s.name, cases) }
}

fn junit_case(c: &Case) -> junit::TestCase {
    let reproduce = c.reproduce.as_ref().map(|r| format!("reproduce: {r}\n")).unwrap_or_default();
    let message = c.message.clone().unwrap_or_default();
    let (outcome, system_out) = match c.status {
        Status::Passed => {
            (junit::Outcome::Passed, format!("{}{}{reproduce}", counts_text(&c.counts), c.details))
        }
        Status::Failed => (
            junit::Outcome::Failed { message, body: format!("{}{reproduce}", c.details) },
            counts_text(&c.counts),
        ),
        Status::Skipped => (
            junit::Outcome::Skipped { message },
            format!("{}{}", counts_text(&c.counts), c.details),
        ),
    };
    junit::TestCase {
        classname: c.classname.clone(),
        name: c.name.clone(),
        time_seconds: c.time_seconds,
        outcome,
        system_out,
    }
}

/// Writes `summary.json` and `junit.xml` into `dir` (created if absent).
///
/// # Errors
/// The directory or a file cannot be written.
pub fn write(dir: &Path, report: &Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit::render(&report.junit()))
}

/// The command line of this process, words with spaces or quotes quoted for a shell.
pub fn quote_words(words: impl IntoIterator<Item = String>) -> String {
    let quote = |w: String| {
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
        {
            w
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    words.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}
