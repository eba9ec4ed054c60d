//! `cellar sim --profile gossip`: the real gossip nodes under loss, duplication, partitions and
//! node crashes pass the spec's oracles (GOS-3, GOS-4, GOS-5), and the planted bug
//! `gossip:lww-by-arrival-order` is caught by GOS-3 with a seed that reproduces it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

mod common;

fn sim(args: &[&str]) -> (bool, serde_json::Value) {
    common::sim_json_no_minimize(args)
}

#[test]
fn gossip_profile_passes_and_injects_faults() {
    let (ok, v) = sim(&["--profile", "gossip", "--seeds", "20"]);
    assert!(ok, "{v}");
    let f = &v["summary"]["faults"];
    for k in ["gossip_writes", "gossip_delivered", "gossip_crashes", "net_dropped", "partitions"] {
        assert!(f[k].as_u64().unwrap_or(0) > 0, "{k} must be exercised: {v}");
    }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn gossip_profile_catches_lww_by_arrival_order() {
    let bug = "gossip:lww-by-arrival-order";
    let (ok, v) = sim(&["--profile", "gossip", "--bug", bug, "--seeds", "50"]);
    assert!(!ok, "{v}");
    let rule = v["failure"]["rule"].as_str().unwrap().to_owned();
    assert!(rule.starts_with("GOS-3"), "{rule}");
    let seed = v["failure"]["seed"].as_u64().unwrap().to_string();
    let (ok, again) = sim(&["--profile", "gossip", "--bug", bug, "--seed", &seed]);
    assert!(!ok, "--seed {seed} reproduces: {again}");
    let (clean, _) = sim(&["--profile", "gossip", "--seed", &seed]);
    assert!(clean, "seed {seed} passes without the bug");
}
