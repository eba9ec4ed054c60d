//! With no planted bug, a campaign of at least 200 seeds passes, for each profile; `cellar
//! verify` (simulation part) passes on a short campaign.
//!
//! Known engine bugs the simulator found (reported to the sector engine's owner; details and
//! reproducer seeds in `docs/sim.md`, "Findings"): (1) the compactor's `Abandoned` path drops
//! the index entry without retiring the record, so a later drain trips the SEC-13 debug
//! assertion when corruption is injected; (2) a CAS deleting a key marked corrupt leaves the
//! mark; (3) recovery can resurrect lost unflushed writes (about 4 seeds in 1000). The swarm
//! test here switches corruption off (1 and 2 need it); `known_engine_bugs_are_fixed` runs the
//! full atlas.

use std::process::Command;

fn campaign(args: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .arg("sim")
        .args(args)
        .args(["--json", "--no-minimize", "--trace-dir"])
        .arg(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap();
    (out.status.success(), v)
}

#[test]
fn swarm_200_seeds_pass_without_bugs() {
    let (ok, v) = campaign(&["--seeds", "200", "--no-fault", "corrupt"]);
    assert!(ok, "no-bug campaign failed: {v}");
    let s = &v["summary"];
    assert_eq!(s["passed"], 200);
    assert!(s["ops"].as_u64().unwrap() > 200 * 1000, "each seed runs a few thousand operations");
    let f = &s["faults"];
    for kind in ["crashes", "latent", "net_dropped", "net_duplicated", "partitions", "lost_sectors"]
    {
        assert!(f[kind].as_u64().unwrap() > 0, "the swarm injected {kind}: {f}");
    }
}

#[test]
fn each_profile_passes_a_short_campaign() {
    for profile in ["storage", "network", "volume"] {
        let (ok, v) = campaign(&["--seeds", "30", "--profile", profile, "--no-fault", "corrupt"]);
        assert!(ok, "profile {profile}: {v}");
    }
}

#[test]
#[ignore = "fails until the engine bugs in the module docs are fixed"]
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
