//! Spec agreement for spaces of marks (`specs/marks.md` MARK-4..MARK-6, MARK-8): random
//! sequences of creates, forks, renames, deletes, commits to marks (compare-and-swaps of mark
//! cells, fresh or stale) and cleanups of the whole space go to both `cellar::marks::VolumeSpace`
//! and `cellar_model::spec::SpaceSpec`. After every step the refusals and CAS outcomes must
//! match and the listed marks (names, creation times, salts, values) must be identical; after
//! every cleanup every mark's volume must still hold every blob its history needs (VOL-1 per
//! mark) and every kept tree must scrub clean.
//!
//! The planted bugs `marks:rename-keeps-old` and `marks:gc-skips-marks` must make it fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::merge::NodeId;
use cellar::fs::{Attrs, ChunkerParams, Fs, FsPath, FsSnapshotReachability, History};
use cellar::marks::{MarkError, MarkName, Space, SpaceReachability, VolumeSpace};
use cellar::storage::cell::MemCell;
use cellar::storage::store::MemStore;
use cellar::storage::volume::{Volume, check_vol1, cleanup};
use cellar_model::spec::{SpaceOp, SpaceReject, SpaceRet, SpaceSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::sync::Arc;

const MAP_SALT: [u8; 32] = [0x33; 32];
const TINY: ChunkerParams = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };
const NAMES: [&str; 4] = ["main", "dev", "x", "y"];

#[derive(Clone, Debug)]
enum Step {
    Create(u8, u8),
    Delete(u8),
    Rename(u8, u8),
    Fork(u8, u8),
    /// Commit a file of this byte to the mark (a CAS from its current value).
    Commit(u8, u8),
    /// A CAS from a value the mark does not hold.
    StaleCas(u8),
    Cleanup,
}

fn step() -> impl Strategy<Value = Step> {
    let n = || 0..NAMES.len() as u8;
    prop_oneof![
        3 => (n(), any::<u8>()).prop_map(|(a, s)| Step::Create(a, s)),
        1 => n().prop_map(Step::Delete),
        2 => (n(), n()).prop_map(|(a, b)| Step::Rename(a, b)),
        2 => (n(), n()).prop_map(|(a, b)| Step::Fork(a, b)),
        5 => (n(), any::<u8>()).prop_map(|(a, c)| Step::Commit(a, c)),
        1 => n().prop_map(Step::StaleCas),
        2 => Just(Step::Cleanup),
    ]
}

fn name(i: u8) -> MarkName {
    MarkName::new(NAMES[usize::from(i) % NAMES.len()]).unwrap()
}

fn reject(e: &MarkError) -> Option<SpaceReject> {
    match e {
        MarkError::NotFound { .. } => Some(SpaceReject::NotFound),
        MarkError::AlreadyExists { .. } => Some(SpaceReject::AlreadyExists),
        _ => None,
    }
}

struct Harness {
    space: VolumeSpace,
    spec: SpaceSpec,
    clock: i64,
}

impl Harness {
    fn new() -> Self {
        let vol = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
        Self { space: VolumeSpace::new(vol, MAP_SALT), spec: SpaceSpec::new(), clock: 0 }
    }

    /// Compares a result of the implementation with the spec's.
    fn agree<T>(
        &mut self,
        what: &str,
        got: Result<T, MarkError>,
        op: &SpaceOp,
    ) -> Result<Option<T>, String> {
        let want = self.spec.apply(op);
        match (got, want) {
            (Ok(v), Ok(_)) => Ok(Some(v)),
            (Err(e), Err(r)) if reject(&e) == Some(r) => Ok(None),
            (got, want) => Err(format!(
                "{what}: implementation {:?}, spec {want:?}",
                got.map(|_| ()).map_err(|e| e.to_string())
            )),
        }
    }

    fn commit(&mut self, n: &MarkName, byte: u8) -> Result<(), String> {
        let vol = match self.space.open(n, None) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .agree("open", Err::<(), _>(e), &SpaceOp::Cas(n.to_string(), vec![], vec![]))
                    .map(|_| ());
            }
        };
        let info = self.space.inspect(n).map_err(|e| e.to_string())?;
        let old = vol.cell.read().map_err(|e| e.to_string())?;
        let history = History::decode(&old).map_err(|e| e.to_string())?;
        let store = self.space.store();
        let fs = Fs::with_chunker(store, info.salt, TINY);
        let p = FsPath::new("/f").unwrap();
        let tree = fs.mkfs(Attrs::default()).map_err(|e| e.to_string())?;
        let tree = fs.create(&tree, &p, Attrs::default()).map_err(|e| e.to_string())?;
        let data: Vec<u8> = (0..300u32).map(|i| byte.wrapping_add((i / 7) as u8)).collect();
        let tree = fs.write(&tree, &p, 0, &data).map_err(|e| e.to_string())?;
        self.clock += 1;
        let head = fs
            .commit_at(&tree, history.head.as_ref(), NodeId(1), "c", Some(self.clock))
            .map_err(|e| e.to_string())?;
        let new = History { head: Some(head), horizon: history.horizon }.encode();
        let got = vol.cell.cas(&old, &new).map_err(|e| e.to_string())?;
        let want = self.spec.apply(&SpaceOp::Cas(n.to_string(), old, new));
        match want {
            Ok(SpaceRet::Cas { swapped, current })
                if swapped == got.swapped && current == got.current =>
            {
                Ok(())
            }
            other => Err(format!("commit to {n}: implementation {got:?}, spec {other:?}")),
        }
    }

    fn step(&mut self, s: &Step) -> Result<(), String> {
        self.clock += 1;
        let t = self.clock;
        match *s {
            Step::Create(a, salt) => {
                let n = name(a);
                let got = self.space.create(&n, [salt; 32], t);
                self.agree("create", got, &SpaceOp::Create(n.to_string(), [salt; 32], t))?;
            }
            Step::Delete(a) => {
                let n = name(a);
                let got = self.space.delete(&n);
                self.agree("delete", got, &SpaceOp::Delete(n.to_string()))?;
            }
            Step::Rename(a, b) => {
                let (a, b) = (name(a), name(b));
                let got = self.space.rename(&a, &b);
                self.agree("rename", got, &SpaceOp::Rename(a.to_string(), b.to_string()))?;
            }
            Step::Fork(a, b) => {
                let (a, b) = (name(a), name(b));
                let got = self.space.fork(&a, &b, t);
                self.agree("fork", got, &SpaceOp::Fork(a.to_string(), b.to_string(), t))?;
            }
            Step::Commit(a, byte) => self.commit(&name(a), byte)?,
            Step::StaleCas(a) => {
                let n = name(a);
                let bogus = vec![0xEE; 64];
                let got = self.space.open(&n, None).and_then(|v| {
                    Ok(v.cell
                        .cas(&bogus, &[])
                        .map_err(cellar::storage::volume::VolumeError::from)?)
                });
                let op = SpaceOp::Cas(n.to_string(), bogus, Vec::new());
                let want = self.spec.apply(&op);
                match (got, want) {
                    (Ok(g), Ok(SpaceRet::Cas { swapped, current }))
                        if g.swapped == swapped && g.current == current => {}
                    (Err(e), Err(r)) if reject(&e) == Some(r) => {}
                    (g, w) => return Err(format!("stale cas on {n}: {g:?} vs {w:?}")),
                }
            }
            Step::Cleanup => {
                self.spec.apply(&SpaceOp::Cleanup).unwrap();
                let reach = SpaceReachability::new(FsSnapshotReachability);
                cleanup(self.space.volume(), &reach).map_err(|e| format!("cleanup: {e}"))?;
                self.check_every_mark_whole()?;
            }
        }
        self.check_listing()
    }

    fn check_listing(&self) -> Result<(), String> {
        let got = self.space.list().map_err(|e| e.to_string())?;
        let want = self.spec.marks();
        let same = got.len() == want.len()
            && got.iter().zip(want).all(|((gn, gi), (wn, wm))| {
                gn.as_str() == wn
                    && gi.created_ns == wm.created_ns
                    && gi.salt == wm.salt
                    && gi.value == wm.value
            });
        if same {
            Ok(())
        } else {
            let names: Vec<_> = got.iter().map(|(n, _)| n.to_string()).collect();
            Err(format!("listing differs: implementation {names:?}, spec {:?}", want.keys()))
        }
    }

    /// MARK-8: after a space cleanup every mark's volume still satisfies VOL-1 and every tree it
    /// keeps reads back without damage.
    fn check_every_mark_whole(&self) -> Result<(), String> {
        for (n, info) in self.space.list().map_err(|e| e.to_string())? {
            let vol = self.space.open(&n, None).map_err(|e| e.to_string())?;
            if let Some(h) = check_vol1(&vol, &FsSnapshotReachability).map_err(|e| e.to_string())? {
                return Err(format!("VOL-1 broken for mark {n}: blob {h} is gone"));
            }
            let history = History::decode(&info.value).map_err(|e| e.to_string())?;
            if let Some(head) = history.head {
                let fs = Fs::new(self.space.store(), info.salt);
                let tree = fs.tree_of(&head).map_err(|e| e.to_string())?;
                let rep = fs.scrub(&tree).map_err(|e| e.to_string())?;
                if !rep.damage.is_empty() {
                    return Err(format!("mark {n}: {:?}", rep.damage));
                }
            }
        }
        Ok(())
    }
}

fn run(steps: &[Step]) -> Result<(), String> {
    let mut h = Harness::new();
    for (i, s) in steps.iter().enumerate() {
        h.step(s).map_err(|e| format!("step {i} {s:?}: {e}"))?;
    }
    Ok(())
}

fn scripted() -> Vec<Step> {
    vec![
        Step::Create(0, 1),
        Step::Commit(0, 10),
        Step::Fork(0, 1),
        Step::Commit(1, 20),
        Step::Create(2, 2),
        Step::Commit(2, 30),
        Step::Rename(1, 3),
        Step::Create(1, 4),
        Step::StaleCas(3),
        Step::Cleanup,
        Step::Delete(0),
        Step::Cleanup,
        Step::Commit(3, 40),
        Step::Cleanup,
    ]
}

fn deterministic_runner(cases: u32) -> TestRunner {
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    TestRunner::new_with_rng(Config { cases, ..Config::default() }, rng)
}

#[test]
fn scripted_space_agrees() {
    run(&scripted()).unwrap();
}

#[test]
fn random_space_histories_agree() {
    let mut runner = deterministic_runner(96);
    runner
        .run(&prop::collection::vec(step(), 1..40), |steps| {
            run(&steps).map_err(TestCaseError::fail)
        })
        .unwrap();
}

/// Every checker must be seen to fail: each planted marks bug breaks the scripted history.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_marks_bugs_are_caught() {
    for bug in ["marks:rename-keeps-old", "marks:gc-skips-marks"] {
        let _planted = cellar::bugs::plant(bug).unwrap();
        let err = run(&scripted()).expect_err(bug);
        eprintln!("{bug}: {err}");
        let mut runner = deterministic_runner(96);
        let found = runner.run(&prop::collection::vec(step(), 1..40), |steps| {
            run(&steps).map_err(TestCaseError::fail)
        });
        assert!(found.is_err(), "{bug}: 96 random histories did not catch it");
    }
}
