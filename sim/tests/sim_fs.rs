//! The `fs` profile (`cellar sim --profile fs`): file trees, marks and spaces on sector-engine
//! repositories under power cuts and media faults pass their oracles (every committed snapshot
//! reads back as `FsSpec` recorded it, nothing acknowledged is lost, corruption is reported and
//! never returned, VOL-1 for every mark after every cleanup), and the planted fs and marks bugs
//! are caught with a seed that reproduces them. Through the library, as `cellar sim` calls it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_sim::RunConfig;
use cellar_sim::knobs::Profile;

mod common;

fn short(bug: Option<&str>) -> RunConfig {
    RunConfig { ticks: 1200, ..common::config(Profile::Fs, &[], bug) }
}

#[test]
fn fs_profile_passes_and_injects_faults() {
    let (s, failed) = common::campaign(&short(None), 3);
    assert!(failed.is_none(), "{failed:?}");
    let f = &s.faults;
    assert!(f.crashes > 0 && f.latent + f.corrupt > 0, "faults must be exercised: {f:?}");
}

#[test]
fn fs_profile_is_deterministic() {
    let a = common::replay(&short(None), 11);
    let b = common::replay(&short(None), 11);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.ops, b.ops);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn fs_profile_catches_the_planted_fs_and_marks_bugs() {
    for bug in ["fs:extent-keyed-by-start", "fs:rename-leaves-old-subtree", "marks:gc-skips-marks"]
    {
        let with_bug = short(Some(bug));
        let (_, failed) = common::campaign(&with_bug, 20);
        let failed = failed.unwrap_or_else(|| panic!("{bug}: 20 seeds did not find it"));
        let rule = common::rule(&failed).unwrap().to_owned();
        let again = common::replay(&with_bug, failed.seed);
        assert_eq!(
            common::rule(&again),
            Some(rule.as_str()),
            "{bug}: seed {} reproduces",
            failed.seed
        );
        let clean = common::replay(&short(None), failed.seed);
        assert!(clean.failure.is_none(), "{bug}: seed {} passes without the bug", failed.seed);
    }
}
