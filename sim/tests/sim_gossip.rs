//! The gossip profile: the real gossip nodes under loss, duplication, partitions and node
//! crashes pass the spec's oracles (GOS-3, GOS-4, GOS-5), and the planted bug
//! `gossip:lww-by-arrival-order` is caught by GOS-3 with a seed that reproduces it. Through the
//! library (what `cellar sim --profile gossip` calls).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_sim::knobs::Profile;

mod common;

#[test]
fn gossip_profile_passes_and_injects_faults() {
    let (s, failed) = common::campaign(&common::config(Profile::Gossip, &[], None), 20);
    assert!(failed.is_none(), "{failed:?}");
    let f = &s.faults;
    for (k, n) in [
        ("gossip_writes", f.gossip_writes),
        ("gossip_delivered", f.gossip_delivered),
        ("gossip_crashes", f.gossip_crashes),
        ("net_dropped", f.net_dropped),
        ("partitions", f.partitions),
    ] {
        assert!(n > 0, "{k} must be exercised: {f:?}");
    }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn gossip_profile_catches_lww_by_arrival_order() {
    let bug = "gossip:lww-by-arrival-order";
    let with_bug = common::config(Profile::Gossip, &[], Some(bug));
    let (_, failed) = common::campaign(&with_bug, 50);
    let failed = failed.expect("a 50-seed campaign finds the bug");
    let rule = common::rule(&failed).unwrap().to_owned();
    assert!(rule.starts_with("GOS-3"), "{rule}");
    let again = common::replay(&with_bug, failed.seed);
    assert_eq!(common::rule(&again), Some(rule.as_str()), "seed {} reproduces", failed.seed);
    let clean = common::replay(&common::config(Profile::Gossip, &[], None), failed.seed);
    assert!(clean.failure.is_none(), "seed {} passes without the bug", failed.seed);
}
