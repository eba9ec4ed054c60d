//! Reports for CI systems (`--report DIR`): `conform.json` and JUnit XML `junit.xml`, written
//! by the shared writer in [`crate::report::junit`].

use crate::conform::run_vectors::VectorsReport;
use crate::report::junit::{Outcome, TestCase, TestSuite, TestSuites, render};
use std::path::Path;

/// JUnit XML: one test suite per format, one test case per failed vector plus one passing case
/// for the rest (counts carry the totals). A vector whose error kind alone differs passes, its
/// expected and actual kinds in `system-out`.
pub fn junit(r: &VectorsReport) -> String {
    let suites = r
        .rows
        .iter()
        .map(|row| {
            let mut cases: Vec<TestCase> = r
                .mismatches
                .iter()
                .filter(|m| m.format == row.format)
                .map(|m| {
                    let what = format!("expected {}, got {}", m.expected, m.got);
                    let (outcome, system_out) = if m.kind_only {
                        (Outcome::Passed, what)
                    } else {
                        (Outcome::Failed { message: what, body: String::new() }, String::new())
                    };
                    TestCase {
                        classname: m.format.clone(),
                        name: format!("tcId {}: {}", m.tc_id, m.comment),
                        time_seconds: None,
                        outcome,
                        system_out,
                    }
                })
                .collect();
            if row.skipped > 0 {
                cases.push(TestCase {
                    classname: row.format.clone(),
                    name: "all".into(),
                    outcome: Outcome::Skipped { message: "format not supported".into() },
                    ..TestCase::default()
                });
            }
            TestSuite {
                name: row.format.clone(),
                tests: row.tests as u64,
                failures: row.failed as u64,
                skipped: row.skipped as u64,
                time_seconds: None,
                cases,
            }
        })
        .collect();
    render(&TestSuites { name: "cellar conform vectors".into(), suites })
}

fn failure(f: &Option<String>) -> Outcome {
    match f {
        Some(m) => Outcome::Failed { message: m.clone(), body: String::new() },
        None => Outcome::Passed,
    }
}

/// One suite of `cases` in a document named after it.
fn one_suite(suite: &str, cases: Vec<TestCase>) -> String {
    render(&TestSuites {
        name: format!("cellar conform {suite}"),
        suites: vec![TestSuite::of_cases(suite, cases)],
    })
}

/// Writes `conform.json` and `junit.xml` into `dir` (created if absent).
pub fn write(dir: &Path, r: &VectorsReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("conform.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit(r))
}

/// JUnit XML of a cell or store suite run: one test case per seed.
pub fn junit_suite(suite: &str, outcomes: &[crate::conform::suites::SeedOutcome]) -> String {
    let cases = outcomes
        .iter()
        .map(|o| TestCase {
            classname: suite.to_string(),
            name: format!("seed {}", o.seed),
            outcome: failure(&o.failure),
            ..TestCase::default()
        })
        .collect();
    one_suite(suite, cases)
}

/// Writes `conform.json` and `junit.xml` of a suite run into `dir`.
pub fn write_suite(
    dir: &Path,
    suite: &str,
    outcomes: &[crate::conform::suites::SeedOutcome],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json =
        serde_json::to_string_pretty(&serde_json::json!({"suite": suite, "seeds": outcomes}))
            .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("conform.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit_suite(suite, outcomes))
}

/// JUnit XML of a run made of named cases (probes, seeds, checks): one test case each.
pub fn junit_cases(suite: &str, cases: &[crate::conform::sector::Case]) -> String {
    let cases = cases
        .iter()
        .map(|c| TestCase {
            classname: suite.to_string(),
            name: c.name.clone(),
            outcome: failure(&c.failure),
            system_out: if c.failure.is_none() { c.info.clone() } else { String::new() },
            time_seconds: None,
        })
        .collect();
    one_suite(suite, cases)
}

/// Writes `conform.json` and `junit.xml` of a run made of named cases into `dir`.
pub fn write_cases(
    dir: &Path,
    suite: &str,
    cases: &[crate::conform::sector::Case],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&serde_json::json!({"suite": suite, "cases": cases}))
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("conform.json"), json + "\n")?;
    std::fs::write(dir.join("junit.xml"), junit_cases(suite, cases))
}
