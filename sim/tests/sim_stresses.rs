//! The gossip workload stresses (`sim/src/world/gossip.rs`, issue 15): `deep-trees` (small tree
//! nodes and more keys, so the code that edits interior nodes runs) and `limits` (a path and a
//! value of exactly the largest legal size, and one byte past each). Each runs clean against
//! the real nodes, reaches what it is for, and catches a planted bug that the simulator
//! without it misses over the same seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_sim::campaign::run_seeds;
use cellar_sim::knobs::{FaultKind, Profile};

mod common;

#[test]
fn the_stresses_run_clean_and_reach_depth_three_and_the_limits() {
    let cfg = common::config(Profile::Gossip, &[], None);
    let (summary, failed) = common::campaign(&cfg, 6);
    assert!(failed.is_none(), "{:?}", failed.and_then(|f| f.failure));
    let f = summary.faults;
    // Level 2 is a root above two levels of nodes: depth 3.
    assert!(f.gossip_tree_level_max >= 2, "trees stay shallow: {f:?}");
    assert!(f.limit_writes > 5 && f.limit_refusals > 5, "limits: {f:?}");
    let old = common::config(Profile::Gossip, &[FaultKind::DeepTrees, FaultKind::Limits], None);
    let (summary, _) = common::campaign(&old, 6);
    let f = summary.faults;
    assert!(f.gossip_tree_level_max == 0 && f.limit_writes == 0, "stresses off: {f:?}");
}

/// (planted bug, the one stress that must catch it). A successor search that stays under one
/// parent only errs in trees of depth ≥ 3 (a depth-2 tree has one parent); it leaves trees
/// that are not the function of their contents, so converged nodes disagree on roots (GOS-5,
/// KV-4). A value limit that refuses the largest legal value errs only at that size.
#[cfg(feature = "planted-bugs")]
const CASES: &[(&str, FaultKind)] = &[
    ("kv:successor-stays-in-parent", FaultKind::DeepTrees),
    ("hkv:value-limit-off-by-one", FaultKind::Limits),
];

#[cfg(feature = "planted-bugs")]
#[test]
fn each_stress_catches_a_bug_the_old_simulator_missed() {
    for (bug, kind) in CASES {
        let other =
            if *kind == FaultKind::Limits { FaultKind::DeepTrees } else { FaultKind::Limits };
        let only_this = common::config(Profile::Gossip, &[other], Some(bug));
        let (_, failed) = common::campaign(&only_this, 40);
        let failed = failed.unwrap_or_else(|| panic!("{bug}: 40 seeds with {kind:?} find it"));
        let seed = failed.seed;
        let old =
            common::config(Profile::Gossip, &[FaultKind::DeepTrees, FaultKind::Limits], Some(bug));
        let (_, missed) = run_seeds(&old, 0..seed + 1, false, &mut |_, _| {});
        assert!(
            missed.is_none(),
            "{bug}: without the stresses seeds 0..={seed} must pass: {:?}",
            missed.and_then(|f| f.failure)
        );
        let clean = common::replay(&common::config(Profile::Gossip, &[other], None), seed);
        assert!(
            clean.failure.is_none(),
            "{bug}: seed {seed} fails without the bug: {:?}",
            clean.failure
        );
    }
}

/// The key/value clients' `limits` stress in the `storage` profile: a value of exactly the
/// engine's largest (a whole zone's worth) is acknowledged and judged like any write, one byte
/// more is refused with `TooLarge`; a limit check that refuses the largest value is found, and
/// missed without the stress.
#[cfg(feature = "planted-bugs")]
#[test]
fn the_engine_value_limit_is_hit_at_and_one_past() {
    let bug = "sector:value-limit-off-by-one";
    let (summary, failed) = common::campaign(&common::config(Profile::Storage, &[], None), 10);
    assert!(failed.is_none(), "{:?}", failed.and_then(|f| f.failure));
    let f = summary.faults;
    assert!(f.limit_writes > 5 && f.limit_refusals > 5, "limits: {f:?}");
    let (_, failed) = common::campaign(&common::config(Profile::Storage, &[], Some(bug)), 40);
    let seed = failed.unwrap_or_else(|| panic!("{bug}: 40 seeds find it")).seed;
    let old = common::config(Profile::Storage, &[FaultKind::Limits], Some(bug));
    let (_, missed) = run_seeds(&old, 0..seed + 1, false, &mut |_, _| {});
    assert!(
        missed.is_none(),
        "{bug}: missed without the stress: {:?}",
        missed.and_then(|f| f.failure)
    );
}

/// The `split-jobs` stress: a sync's or cleanup's first step (read the cell, plan) is its own
/// scheduler event. A cleanup that reads and plans before taking Contract (planted
/// `volume:cleanup-holds-late`) is found with it; when begin and plan share one event, as
/// every job's did before, the window never opens and the same seeds pass.
#[cfg(feature = "planted-bugs")]
#[test]
fn split_jobs_catch_a_late_mode_hold_the_atomic_begin_missed() {
    let bug = "volume:cleanup-holds-late";
    let (summary, failed) = common::campaign(&common::config(Profile::Volume, &[], None), 20);
    assert!(failed.is_none(), "{:?}", failed.and_then(|f| f.failure));
    assert!(summary.passed == 20);
    let (_, failed) = common::campaign(&common::config(Profile::Volume, &[], Some(bug)), 40);
    let found = failed.unwrap_or_else(|| panic!("{bug}: 40 seeds find it"));
    let rule = common::rule(&found).unwrap_or_default().to_owned();
    assert!(rule.contains("VOL"), "{bug}: caught for another reason: {rule}");
    let old = common::config(Profile::Volume, &[FaultKind::SplitJobs], Some(bug));
    let (_, missed) = run_seeds(&old, 0..found.seed + 1, false, &mut |_, _| {});
    assert!(
        missed.is_none(),
        "{bug}: missed without the stress: {:?}",
        missed.and_then(|f| f.failure)
    );
}
