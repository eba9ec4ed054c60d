//! Shared by the simulator's integration tests: run `cellar sim ... --json` and parse its last
//! line (the campaign's JSON document).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::process::Command;

/// Runs `cellar sim ARGS --json --trace-dir TMP`; returns (exit status was 0, the JSON document).
pub fn sim_json(args: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .arg("sim")
        .args(args)
        .args(["--json", "--trace-dir"])
        .arg(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap();
    (out.status.success(), v)
}

/// [`sim_json`] without the minimizer (faster; for campaigns that must pass).
#[allow(dead_code, reason = "not every test binary uses both helpers")]
pub fn sim_json_no_minimize(args: &[&str]) -> (bool, serde_json::Value) {
    sim_json(&[args, &["--no-minimize"]].concat())
}
