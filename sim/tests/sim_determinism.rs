//! The simulator is deterministic: one seed, one run. Each seed is run twice and the hash of
//! its full event trace compared; different seeds give different runs. Through the library
//! (`cellar_sim::run`); `sim_cli.rs` checks that `cellar sim --trace` prints the same events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_sim::knobs::Profile;
use cellar_sim::{RunConfig, run};

mod common;

#[test]
fn same_seed_same_trace_hash() {
    let base = common::config(Profile::Swarm, &[], None);
    let mut hashes = Vec::new();
    for seed in [0u64, 1, 7, 42, 1234] {
        let a = common::replay(&base, seed);
        let b = common::replay(&base, seed);
        assert_eq!(common::rule(&a), common::rule(&b), "seed {seed}: same verdict");
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed}: the same seed replays the same events"
        );
        assert_eq!((a.ops, a.events, a.sim_us), (b.ops, b.events, b.sim_us));
        assert!(a.events > 100, "a run does real work");
        hashes.push(a.trace_hash);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 5, "different seeds give different runs");
}

#[test]
fn a_kept_trace_has_every_event() {
    let cfg = RunConfig {
        seed: 7,
        ticks: 300,
        keep_trace: true,
        ..common::config(Profile::Storage, &[], None)
    };
    let report = run(&cfg).unwrap();
    let trace = report.trace.as_ref().expect("the trace was kept");
    assert_eq!(trace.len() as u64, report.events, "one line per event");
    assert!(trace.len() > 300);
    assert!(trace.iter().any(|l| l.contains("kv0 kv ")), "key/value operations are traced");
    assert!(trace.iter().any(|l| l.contains("--- liveness phase: faults stop ---")));
    let again = run(&RunConfig { keep_trace: false, ..cfg }).unwrap();
    assert_eq!(again.trace_hash, report.trace_hash, "keeping the trace changes nothing");
}
