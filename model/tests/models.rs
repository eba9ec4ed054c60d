//! Every model passes at its default size with a pinned state count; every named mutant is
//! caught by the property that names it; the checker agrees with stateright's own BFS.
//!
//! The pinned counts make a model that quietly shrinks (a lost action, a too-eager reduction)
//! fail loudly. If you change a model on purpose, update the count and say why in the commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar_model::check::{CheckOptions, Report};
use cellar_model::models::{self, MUTANTS, ModelKind, Sizes};
use stateright::{Checker, Model};

fn options() -> CheckOptions {
    CheckOptions { threads: 2, ..CheckOptions::default() }
}

fn run_default(kind: ModelKind) -> Report {
    models::run(kind, None, &Sizes::defaults(kind), options()).unwrap()
}

fn assert_all_hold(report: &Report) {
    for v in &report.properties {
        assert!(v.holds && v.decided, "{}: {} failed: {:?}", report.model, v.name, v.trace);
    }
    assert!(report.exhaustive, "default sizes are explored to the end, with no depth cut-off");
}

#[test]
fn volume_default_size_passes_vol1_to_vol4() {
    let r = run_default(ModelKind::Volume);
    assert_all_hold(&r);
    assert_eq!((r.unique_states, r.states_generated, r.max_depth), (2806, 5756, 19));
}

#[test]
fn gossip_default_size_passes_gos2_to_gos5() {
    let r = run_default(ModelKind::Gossip);
    assert_all_hold(&r);
    assert_eq!(r.unique_states, GOSSIP_UNIQUE);
}

#[test]
fn cell_default_size_is_linearizable_cell1() {
    let r = run_default(ModelKind::Cell);
    assert_all_hold(&r);
    assert_eq!(r.unique_states, CELL_UNIQUE);
}

const GOSSIP_UNIQUE: u64 = 257_775;
const CELL_UNIQUE: u64 = 1_682_222;

#[test]
fn every_mutant_is_caught_by_its_property() {
    for m in MUTANTS {
        let opts = CheckOptions { stop_when_violated: Some(m.caught_by), ..options() };
        let r = models::run(m.model, Some(m.name), &Sizes::defaults(m.model), opts).unwrap();
        let v = r
            .verdict(m.caught_by)
            .unwrap_or_else(|| panic!("{}: no property {}", m.name, m.caught_by));
        assert!(!v.holds && v.decided, "mutant {} not caught by {}", m.name, m.caught_by);
        let trace = v.trace.as_ref().unwrap();
        assert!(!trace.steps.is_empty(), "{}: counterexample has steps", m.name);
        assert!(!r.passed(), "{}: the report fails", m.name);
    }
}

#[test]
fn no_mode_exclusion_is_gots_race_vol1_vol2() {
    // The shortest VOL-1 counterexample is Got's race: a cleanup that began before the sync's
    // CAS deletes a blob the sync posted.
    let opts = CheckOptions { stop_when_violated: Some(models::volume::PROP_VOL1), ..options() };
    let sizes = Sizes::defaults(ModelKind::Volume);
    let r = models::run(ModelKind::Volume, Some("volume:no-mode-exclusion"), &sizes, opts).unwrap();
    let vol2 = r.verdict(models::volume::PROP_VOL2).unwrap();
    assert_eq!(vol2.trace.as_ref().unwrap().steps.len(), 2, "take Expand, take Contract");
    let steps = &r.verdict(models::volume::PROP_VOL1).unwrap().trace.as_ref().unwrap().steps;
    assert_eq!(steps.len(), 8, "{steps:#?}");
    assert!(steps.iter().any(|s| s.contains("publishes") && s.contains("swapped")));
    assert!(steps.last().unwrap().contains("deletes blob"));
}

#[test]
fn mutant_names_resolve_and_belong_to_their_model() {
    for m in MUTANTS {
        assert_eq!(models::mutant(m.name).unwrap().model, m.model);
        assert!(m.name.starts_with(m.model.name()));
        let wrong = ModelKind::ALL.into_iter().find(|k| *k != m.model).unwrap();
        assert!(models::run(wrong, Some(m.name), &Sizes::defaults(wrong), options()).is_err());
    }
    assert!(models::mutant("volume:nonsense").is_none());
}

#[test]
fn sizes_are_validated() {
    let mut unknown = Vec::new();
    let s = Sizes::with(
        ModelKind::Cell,
        &[("clients".into(), 2), ("volume.blobs".into(), 4)],
        &mut unknown,
    )
    .unwrap();
    assert_eq!(s.get("clients"), 2);
    assert!(unknown.is_empty());
    assert!(Sizes::with(ModelKind::Cell, &[("clients".into(), 99)], &mut unknown).is_err());
    Sizes::with(ModelKind::Cell, &[("nodes".into(), 2)], &mut unknown).unwrap();
    assert_eq!(unknown, vec!["nodes".to_string()]);
}

/// Our level-synchronous checker and stateright's BFS see the same state space (without
/// symmetry, which stateright's BFS does not apply).
#[test]
fn checker_agrees_with_stateright_bfs() {
    let no_sym = CheckOptions { symmetry: false, ..options() };
    let sizes = Sizes::defaults(ModelKind::Volume);
    let ours = models::run(ModelKind::Volume, None, &sizes, no_sym).unwrap();
    let model = models::volume::VolumeModel::new(&sizes, None).unwrap();
    let theirs = model.checker().threads(1).spawn_bfs().join();
    theirs.assert_properties();
    assert_eq!(ours.unique_states, theirs.unique_state_count() as u64);
    // Symmetry (interchangeable syncers) reduces the space.
    assert!(run_default(ModelKind::Volume).unique_states < ours.unique_states);

    let mut unknown = Vec::new();
    let small = Sizes::with(ModelKind::Cell, &[("clients".into(), 2)], &mut unknown).unwrap();
    let ours = models::run(ModelKind::Cell, None, &small, no_sym).unwrap();
    let model = models::cell::CellModel::new(&small, None).unwrap();
    let theirs = model.checker().threads(1).spawn_bfs().join();
    theirs.assert_properties();
    assert_eq!(ours.unique_states, theirs.unique_state_count() as u64);
}

#[test]
fn sector_default_size_passes_sec4_sec7() {
    let r = run_default(ModelKind::Sector);
    assert_all_hold(&r);
    assert_eq!((r.unique_states, r.states_generated, r.max_depth), (13_681, 19_991, 11));
}

fn sector_mutant_trace(mutant: &str, property: &'static str) -> Vec<String> {
    let opts = CheckOptions { stop_when_violated: Some(property), ..options() };
    let sizes = Sizes::defaults(ModelKind::Sector);
    let r = models::run(ModelKind::Sector, Some(mutant), &sizes, opts).unwrap();
    let v = r.verdict(property).unwrap();
    assert!(!v.holds && v.decided, "{mutant} not caught by {property}");
    v.trace.as_ref().unwrap().steps.clone()
}

#[test]
fn record_before_zone_header_reuses_an_epoch_sec_4() {
    // Shortest: open a zone without flushing its header and write; the power cut lands the
    // record but not the header; recovery hands the record's epoch out again.
    let steps = sector_mutant_trace("sector:record-before-zone-header", models::sector::PROP_SEC4);
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert!(steps[0].contains("NOT flushed"), "{steps:#?}");
    assert!(steps[2].contains("SEC-4"), "{steps:#?}");
}

#[test]
fn recovery_reusing_an_epoch_revives_a_dropped_write_finding_3_sec_7() {
    let steps = sector_mutant_trace("sector:recovery-reuses-epoch", models::sector::PROP_SEC7);
    assert!(steps.iter().filter(|s| s.contains("power cut")).count() == 2, "{steps:#?}");
    assert!(steps.last().unwrap().contains("SEC-7"), "{steps:#?}");
}

#[test]
fn a_free_header_that_forgets_its_epoch_reuses_it_sec_4() {
    let steps = sector_mutant_trace("sector:free-header-forgets-epoch", models::sector::PROP_SEC4);
    assert!(steps.iter().any(|s| s.starts_with("free zone")), "{steps:#?}");
    assert!(steps.last().unwrap().contains("SEC-4"), "{steps:#?}");
}
