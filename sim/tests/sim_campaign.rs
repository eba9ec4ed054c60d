//! With no planted bug, a campaign of at least 200 seeds passes, for each profile. Through the
//! library (`cellar_sim::campaign::run_seeds`, what `cellar sim --seeds N` calls).
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

use cellar_sim::knobs::Profile;

mod common;

#[test]
fn swarm_200_seeds_pass_without_bugs() {
    let (s, failed) = common::campaign(&common::config(Profile::Swarm, &[], None), 200);
    assert!(failed.is_none(), "no-bug campaign failed: {failed:?}");
    assert_eq!(s.passed, 200);
    assert!(s.ops > 200 * 1000, "each seed runs a few thousand operations");
    let f = &s.faults;
    for (kind, n) in [
        ("crashes", f.crashes),
        ("latent", f.latent),
        ("corrupt", f.corrupt),
        ("net_dropped", f.net_dropped),
        ("net_duplicated", f.net_duplicated),
        ("partitions", f.partitions),
        ("lost_sectors", f.lost_sectors),
    ] {
        assert!(n > 0, "the swarm injected {kind}: {f:?}");
    }
}

#[test]
fn each_profile_passes_a_short_campaign() {
    for profile in [Profile::Storage, Profile::Network, Profile::Volume] {
        let (s, failed) = common::campaign(&common::config(profile, &[], None), 30);
        assert!(failed.is_none(), "profile {profile:?}: {failed:?}");
        assert_eq!(s.passed, 30);
    }
}

#[test]
fn known_engine_bugs_are_fixed() {
    let (s, failed) = common::campaign(&common::config(Profile::Swarm, &[], None), 300);
    assert!(failed.is_none(), "{failed:?}");
    assert_eq!(s.passed, 300);
}
