//! The simulator is deterministic: one seed, one run. Each seed is run twice and the hash of
//! its full event trace compared; different seeds give different runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::process::Command;

fn run_seed(seed: u64) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["sim", "--seed", &seed.to_string(), "--json", "--no-minimize", "--trace-dir"])
        .arg(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap_or_default().to_owned();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    (out.status.success(), v)
}

#[test]
fn same_seed_same_trace_hash() {
    let mut hashes = Vec::new();
    for seed in [0u64, 1, 7, 42, 1234] {
        let (ok_a, a) = run_seed(seed);
        let (ok_b, b) = run_seed(seed);
        assert_eq!(ok_a, ok_b, "seed {seed}: same verdict");
        let (ha, hb) = (&a["run"]["trace_hash"], &b["run"]["trace_hash"]);
        assert!(ha.as_u64().is_some(), "seed {seed}: a trace hash is reported: {a}");
        assert_eq!(ha, hb, "seed {seed}: the same seed replays the same events");
        assert_eq!(a["run"]["ops"], b["run"]["ops"]);
        assert!(a["run"]["events"].as_u64().unwrap() > 100, "a run does real work");
        hashes.push(ha.as_u64().unwrap());
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 5, "different seeds give different runs");
}

#[test]
fn trace_flag_prints_every_event() {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["sim", "--seed", "3", "--trace", "--profile", "storage", "--ticks", "300"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().count() > 300, "one line per event");
    assert!(text.contains("kv0 kv "), "key/value operations are traced");
    assert!(text.contains("--- liveness phase: faults stop ---"));
}
