//! `cellar conform vectors` judges the Rust implementation through the black-box protocol
//! (`cellar conform adapter`) exactly like a stranger: every vector passes with strict error
//! kinds, the reports are written, and each planted adapter bug is caught with the failing
//! vector ids printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::path::Path;
use std::process::{Command, Output};

const CELLAR: &str = env!("CARGO_BIN_EXE_cellar");

fn conform(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(CELLAR)
        .arg("conform")
        .arg("vectors")
        .args(args)
        .current_dir(root)
        .output()
        .unwrap()
}

fn adapter(bug: Option<&str>) -> String {
    match bug {
        None => format!("{CELLAR} conform adapter"),
        Some(b) => format!("{CELLAR} conform adapter --bug {b}"),
    }
}

#[test]
fn the_rust_adapter_passes_every_vector_with_strict_error_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = conform(&[
        "--impl",
        &adapter(None),
        "--strict-errors",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PASSED") && stdout.contains("total"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("conform.json")).unwrap())
            .unwrap();
    assert!(json["rows"].as_array().unwrap().len() >= 20);
    let junit = std::fs::read_to_string(report.join("junit.xml")).unwrap();
    assert!(junit.starts_with("<?xml") && junit.contains("<testsuite name=\"ref.text\""));
}

#[test]
fn every_planted_adapter_bug_is_caught_by_vector_id() {
    for (bug, format) in
        [("accepts-flipped-tag", "cell.sealed"), ("accepts-upper-case-ref", "ref.text")]
    {
        let out = conform(&["--impl", &adapter(Some(bug))]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "planted bug {bug} was not caught:\n{stdout}");
        let line = format!("FAIL {format} tcId ");
        assert!(
            stdout.contains(&line),
            "planted bug {bug}: no failing {format} id printed:\n{stdout}"
        );
    }
}

#[test]
fn an_implementation_that_supports_nothing_is_skipped_not_failed() {
    // A stranger that only says hello: everything is reported as skipped.
    let script = r#"while read -r line; do id=$(printf '%s' "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); printf '{"id":%s,"ok":true,"name":"empty","formats":[],"functions":[]}\n' "$id"; done"#;
    let out = conform(&["--impl", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("skipped"), "{stdout}");
}

fn suite(name: &str, implementation: &str, extra: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(CELLAR)
        .args(["conform", name, "--impl", implementation])
        .args(extra)
        .current_dir(root)
        .output()
        .unwrap()
}

#[test]
fn the_rust_adapter_passes_the_cell_store_and_volume_suites() {
    for name in ["cell", "store", "volume"] {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().to_str().unwrap().to_owned();
        let out = suite(name, &adapter(None), &["--seeds", "4", "--report", &report]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
        assert!(std::fs::read_to_string(dir.path().join("junit.xml")).unwrap().contains("seed 3"));
    }
}

#[test]
fn planted_state_bugs_are_caught_with_a_seed_that_reproduces() {
    for (name, bug) in [("cell", "cas-ignores-expected"), ("store", "put-lost-on-restart")] {
        let out = suite(name, &adapter(Some(bug)), &["--seeds", "6"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "planted bug {bug} was not caught:\n{stdout}");
        let seed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("FAILED seed "))
            .and_then(|l| l.split(':').next())
            .unwrap_or_else(|| panic!("{bug}: no seed printed:\n{stdout}"))
            .to_owned();
        let again = suite(name, &adapter(Some(bug)), &["--seed", &seed]);
        assert_eq!(again.status.code(), Some(1), "{bug}: seed {seed} does not reproduce");
    }
}
