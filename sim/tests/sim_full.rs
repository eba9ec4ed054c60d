//! The `full` profile (SEC-16, `specs/sector.md` §5.5): the simulated device is filled until
//! writes are refused and drained again, over and over, with power cuts and media faults; no
//! delete may be refused, nothing acknowledged may be lost, and once faults stop a drained
//! device must take writes again. The planted bug `sector:no-reserve` (the reserve switched
//! off) must be found, and its seed must reproduce it. Through the library, like `cellar sim
//! --profile full`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_sim::knobs::Profile;

mod common;

#[test]
fn full_profile_passes_and_cycles_the_device() {
    let (s, failed) = common::campaign(&common::config(Profile::Full, &[], None), 60);
    assert!(failed.is_none(), "full profile failed: {:?}", failed.and_then(|r| r.failure));
    assert!(s.faults.full_fills >= 60, "the device was filled {} times", s.faults.full_fills);
    assert!(s.faults.full_drains >= 60, "and drained {} times", s.faults.full_drains);
    assert!(s.faults.crashes > 0 && s.faults.space_refusals > 0, "{:?}", s.faults);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn no_reserve_is_found_and_reproduced_by_its_seed() {
    let bug = "sector:no-reserve";
    let with_bug = common::config(Profile::Full, &[], Some(bug));
    let (_, failed) = common::campaign(&with_bug, 200);
    let failed = failed.expect("a 200-seed campaign finds the reserve switched off");
    let (seed, rule) = (failed.seed, common::rule(&failed).unwrap().to_owned());
    assert!(rule.starts_with("SEC-16"), "caught by SEC-16, not {rule}");
    let again = common::replay(&with_bug, seed);
    assert_eq!(common::rule(&again), Some(rule.as_str()), "--seed {seed} reproduces");
    let clean = common::replay(&common::config(Profile::Full, &[], None), seed);
    assert!(clean.failure.is_none(), "seed {seed} passes without the bug: {:?}", clean.failure);
}
