//! The simulator's part of the mutation-testing gate (`.cargo/mutants.toml`, issue 15 item 3):
//! a short clean campaign of every profile, through the library as `cellar sim` runs it. A
//! mutant of the core that breaks a promise any profile checks makes one of these fail; the
//! unit tests (`--lib`) are the gate's other half. Also an ordinary test: every profile passes a
//! few seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_sim::RunConfig;
use cellar_sim::knobs::Profile;

mod common;

/// Seeds and events per seed of each profile: about 25 s in all in release on one core.
const GATE: &[(Profile, u64, u64)] = &[
    (Profile::Swarm, 40, 3_000),
    (Profile::Storage, 40, 3_000),
    (Profile::Network, 20, 3_000),
    (Profile::Volume, 40, 3_000),
    (Profile::Hostile, 30, 3_000),
    (Profile::Gossip, 8, 3_000),
    (Profile::Full, 20, 3_000),
    (Profile::Fs, 2, 1_200),
    (Profile::Files, 100, 3_000),
];

fn gate(profile: Profile) {
    let &(_, seeds, ticks) = GATE.iter().find(|(p, _, _)| *p == profile).unwrap();
    let cfg = RunConfig { ticks, ..common::config(profile, &[], None) };
    let (_, failed) = common::campaign(&cfg, seeds);
    if let Some(r) = failed {
        let f = r.failure.unwrap();
        panic!("{profile:?} seed {}: {} — {}", r.seed, f.violation.rule, f.violation.detail);
    }
}

#[test]
fn gate_swarm() {
    gate(Profile::Swarm);
}

#[test]
fn gate_storage() {
    gate(Profile::Storage);
}

#[test]
fn gate_network() {
    gate(Profile::Network);
}

#[test]
fn gate_volume() {
    gate(Profile::Volume);
}

#[test]
fn gate_hostile() {
    gate(Profile::Hostile);
}

#[test]
fn gate_gossip() {
    gate(Profile::Gossip);
}

#[test]
fn gate_full() {
    gate(Profile::Full);
}

#[test]
fn gate_fs() {
    gate(Profile::Fs);
}

#[test]
fn gate_files() {
    gate(Profile::Files);
}
