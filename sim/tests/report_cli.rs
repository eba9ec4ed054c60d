//! `--report DIR` of `cellar check`, `cellar sim` and `cellar verify`: `summary.json` and
//! `junit.xml` (docs/reports.md). The XML is parsed by an independent parser (roxmltree); the
//! test-case counts and the failure elements are checked, and exit statuses stay as they were.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_model::check::CheckOptions;
use cellar_model::models::{self, ModelKind, Sizes};
use cellar_sim::report::{self, junit};
use std::path::Path;
use std::process::Command;

/// Runs `cellar ARGS --report DIR`; returns the exit code, junit.xml and summary.json.
fn with_report(args: &[&str], dir: &Path) -> (Option<i32>, String, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(args)
        .arg("--report")
        .arg(dir)
        .current_dir(dir.parent().unwrap())
        .output()
        .unwrap();
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    (out.status.code(), xml, serde_json::from_str(&summary).unwrap())
}

/// A test case: its name, its failure's message and text, its system-out.
type Parsed = (String, Option<(String, String)>, String);

/// Every test case of a JUnit document.
fn cases(xml: &str) -> Vec<Parsed> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let total: usize = root.attribute("tests").unwrap().parse().unwrap();
    let found: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let child = |tag: &str| c.children().find(|n| n.has_tag_name(tag));
            let failure = child("failure").map(|f| {
                (f.attribute("message").unwrap().to_string(), f.text().unwrap_or("").to_string())
            });
            let out = child("system-out").and_then(|n| n.text()).unwrap_or("").to_string();
            (c.attribute("name").unwrap().to_string(), failure, out)
        })
        .collect();
    assert_eq!(found.len(), total, "tests attribute counts the test cases");
    let failures: usize = root.attribute("failures").unwrap().parse().unwrap();
    assert_eq!(found.iter().filter(|c| c.1.is_some()).count(), failures);
    found
}

const SMALL_CELL: &[&str] =
    &["--size", "clients=2", "--size", "ops=1", "--size", "losses=0", "--size", "retries=0"];

#[test]
fn check_writes_one_test_case_per_property_with_the_model_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let (code, xml, summary) =
        with_report(&[&["check", "--model", "cell"], SMALL_CELL].concat(), &dir);
    assert_eq!(code, Some(0));
    let cases = cases(&xml);
    assert_eq!(cases.len(), 3, "{xml}");
    assert!(cases.iter().all(|c| c.1.is_none() && c.2.contains("states_generated: ")), "{xml}");
    assert!(cases.iter().any(|c| c.0 == "CELL-1 every history is linearizable"));
    assert_eq!(summary["command"], "check");
    assert_eq!((summary["tests"].as_u64(), summary["passed"].as_bool()), (Some(3), Some(true)));
    assert!(summary["suites"][0]["counts"]["unique_states"].as_u64().unwrap() > 0);
}

#[test]
fn an_impossible_sometimes_property_is_a_failure_with_its_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let small =
        ["--size", "clients=1", "--size", "ops=1", "--size", "losses=0", "--size", "retries=0"];
    let (code, xml, summary) =
        with_report(&[&["check", "--model", "cell"], &small[..]].concat(), &dir);
    assert_eq!(code, Some(1), "exit status unchanged: a property fails");
    let failed: Vec<_> = cases(&xml).into_iter().filter(|c| c.1.is_some()).collect();
    assert_eq!(failed.len(), 1, "{xml}");
    let (message, text) = failed[0].1.clone().unwrap();
    assert!(message.contains("impossible at this size"), "{message}");
    assert!(text.contains("reproduce: cellar check --model cell --size clients=1"), "{text}");
    assert_eq!(summary["passed"], false);
    assert_eq!(summary["failures"], 1);
}

#[test]
fn a_caught_mutant_is_a_passing_case_with_its_shortest_counterexample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let args = [&["check", "--mutant", "cell:cas-without-compare"], SMALL_CELL].concat();
    let (code, xml, summary) = with_report(&args, &dir);
    assert_eq!(code, Some(1), "exit status unchanged: 1 when the mutant is caught");
    let cases = cases(&xml);
    assert_eq!(cases.len(), 1);
    let (name, failure, out) = &cases[0];
    assert_eq!(name, "mutant cell:cas-without-compare");
    assert!(failure.is_none(), "{xml}");
    assert!(out.contains("shortest counterexample (") && out.contains("  1. client "), "{out}");
    assert!(out.contains("reproduce: cellar check --mutant cell:cas-without-compare"), "{out}");
    assert_eq!(summary["passed"], true);
    assert!(
        summary["suites"][0]["cases"][0]["counts"]["counterexample_steps"].as_u64().unwrap() > 0
    );
}

/// The model checked at small sizes, with or without a mutant.
fn model_report(mutant: Option<&str>) -> (cellar_model::check::Report, Sizes) {
    let pairs: Vec<(String, u64)> = [("clients", 2), ("ops", 1), ("losses", 0), ("retries", 0)]
        .map(|(k, v)| (k.into(), v))
        .into();
    let sizes = Sizes::with(ModelKind::Cell, &pairs, &mut Vec::new()).unwrap();
    (models::run(ModelKind::Cell, mutant, &sizes, CheckOptions::default()).unwrap(), sizes)
}

#[test]
fn a_violated_property_fails_with_its_counterexample() {
    let reports = [model_report(Some("cell:cas-without-compare"))];
    let r =
        report::Report::new("check", "test".into(), 0.0, report::check::property_suites(&reports));
    let xml = junit::render(&r.junit());
    let failed: Vec<_> = cases(&xml).into_iter().filter_map(|c| c.1).collect();
    let (message, text) = failed.first().unwrap_or_else(|| panic!("no failure: {xml}"));
    assert!(message.contains("shortest counterexample of"), "{message}");
    assert!(text.contains("  1. client ") && text.contains("then: "), "{text}");
    assert!(text.contains("reproduce: cellar check --model cell --size clients=2"), "{text}");
}

#[test]
fn a_mutant_that_is_not_caught_is_a_failure() {
    let (clean, sizes) = model_report(None);
    let mutant = models::mutant("cell:cas-without-compare").unwrap();
    let suite = report::check::mutant_suite(mutant, &clean, &sizes);
    let r = report::Report::new("check", "test".into(), 0.0, vec![suite]);
    let xml = junit::render(&r.junit());
    let cases = cases(&xml);
    let (message, text) = cases[0].1.clone().unwrap_or_else(|| panic!("no failure: {xml}"));
    assert_eq!(message, "mutant cell:cas-without-compare was NOT caught");
    assert!(text.contains("reproduce: cellar check --mutant cell:cas-without-compare"), "{text}");
}

#[test]
fn a_passing_campaign_is_one_case_with_its_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let (code, xml, summary) =
        with_report(&["sim", "--seeds", "2", "--base", "5", "--profile", "storage"], &dir);
    assert_eq!(code, Some(0));
    let cases = cases(&xml);
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].0, "campaign seeds 5..7");
    assert!(cases[0].2.contains("seeds: 2\n") && cases[0].2.contains("faults.crashes: "), "{xml}");
    assert_eq!(summary["suites"][0]["name"], "sim storage");
    assert_eq!(summary["suites"][0]["cases"][0]["counts"]["seeds_passed"], 2);
}

#[test]
fn verify_reports_the_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let (code, xml, summary) = with_report(&["verify", "--seeds", "2", "--skip-check"], &dir);
    assert_eq!(code, Some(0));
    assert_eq!(cases(&xml).len(), 1);
    assert_eq!(summary["command"], "verify");
    assert_eq!(summary["suites"][0]["name"], "sim swarm");
}

#[test]
fn special_characters_survive_a_round_trip() {
    let nasty = "a<b>&\"c'\n\u{1}end";
    let case = junit::TestCase {
        classname: nasty.into(),
        name: nasty.into(),
        outcome: junit::Outcome::Failed { message: nasty.into(), body: nasty.into() },
        system_out: nasty.into(),
        time_seconds: Some(1.0),
    };
    let doc = junit::TestSuites {
        name: nasty.into(),
        suites: vec![junit::TestSuite::of_cases(nasty, vec![case])],
    };
    let cases = cases(&junit::render(&doc));
    let expected = "a<b>&\"c'\n\u{fffd}end";
    assert_eq!(cases[0].0, expected);
    assert_eq!(cases[0].1, Some((expected.to_string(), expected.to_string())));
    assert_eq!(cases[0].2, expected);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_planted_bug_fails_the_campaign_with_its_reproducing_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let bug = "sector:ack-before-flush";
    let args = ["sim", "--bug", bug, "--base", "6", "--seeds", "1", "--no-minimize"];
    let (code, xml, summary) = with_report(&args, &dir);
    assert_eq!(code, Some(1), "exit status unchanged");
    let cases = cases(&xml);
    let (message, text) = cases[0].1.clone().unwrap_or_else(|| panic!("no failure: {xml}"));
    assert!(message.starts_with("seed 6: SEC-7"), "{message}");
    assert!(text.contains("last events:"), "{text}");
    let replay = "reproduce: cargo run --release --features planted-bugs -- sim --seed 6";
    assert!(text.contains(replay) && text.contains(&format!("--bug {bug}")), "{text}");
    assert_eq!(summary["suites"][0]["name"], format!("sim swarm bug {bug}"));
    assert_eq!(summary["failures"], 1);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_replayed_failing_seed_is_a_failing_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let args = ["sim", "--bug", "sector:ack-before-flush", "--seed", "6", "--no-minimize"];
    let (code, xml, _) = with_report(&args, &dir);
    assert_eq!(code, Some(1));
    let cases = cases(&xml);
    assert_eq!(cases[0].0, "seed 6");
    assert!(cases[0].1.as_ref().unwrap().1.contains("--seed 6"), "{xml}");
}
