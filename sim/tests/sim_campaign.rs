//! With no planted bug, a campaign of at least 200 seeds passes, for each profile; `cellar
//! verify` (simulation part) passes on a short campaign.
//!
//! Engine bugs the simulator found (details, reproducer seeds and fixes in `docs/sim.md`,
//! "Findings"; regression tests in `impl/tests/sector_findings.rs`) are fixed, so every
//! campaign here runs the full fault atlas, corruption included; `known_engine_bugs_are_fixed`
//! runs it over 300 seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::process::Command;

mod common;

fn campaign(args: &[&str]) -> (bool, serde_json::Value) {
    common::sim_json_no_minimize(args)
}

#[test]
fn swarm_200_seeds_pass_without_bugs() {
    let (ok, v) = campaign(&["--seeds", "200"]);
    assert!(ok, "no-bug campaign failed: {v}");
    let s = &v["summary"];
    assert_eq!(s["passed"], 200);
    assert!(s["ops"].as_u64().unwrap() > 200 * 1000, "each seed runs a few thousand operations");
    let f = &s["faults"];
    for kind in [
        "crashes",
        "latent",
        "corrupt",
        "net_dropped",
        "net_duplicated",
        "partitions",
        "lost_sectors",
    ] {
        assert!(f[kind].as_u64().unwrap() > 0, "the swarm injected {kind}: {f}");
    }
}

#[test]
fn each_profile_passes_a_short_campaign() {
    for profile in ["storage", "network", "volume"] {
        let (ok, v) = campaign(&["--seeds", "30", "--profile", profile]);
        assert!(ok, "profile {profile}: {v}");
    }
}

#[test]
fn known_engine_bugs_are_fixed() {
    let (ok, v) = campaign(&["--seeds", "300"]);
    assert!(ok, "{v}");
}

#[test]
fn verify_runs_the_simulation_and_prints_a_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["verify", "--seeds", "3", "--skip-check"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("simulation (swarm)"), "{text}");
    assert!(text.contains("model check"), "{text}");
}
