//! The `fs` profile: file trees, marks and spaces on sector-engine volumes under crashes and
//! media faults, judged by `FsSpec` (`specs/fs.md`, `specs/marks.md`).
//!
//! Two repositories, `A` and `B` (spaces on their own simulated SSDs, [`repo`]). Per mark of `A`
//! a *writer* edits a working tree in memory, checked against `FsSpec` on every operation
//! ([`tree`]); a *committer* copies the working tree into `A`'s store under Expand, commits it
//! and publishes it with one compare-and-swap of the mark; a *pusher* syncs a mark from `A` to
//! `B` with the real `SyncJob`, one blob per step; a *collector* cleans up either space with the
//! real `CleanupJob` (on `A` after a retention pass), one delete per step. Power cuts, latent
//! sector errors and flipped bits hit either device between any two steps; a crash kills the
//! jobs on that repository (their modes die with them, VOL-4).
//!
//! Oracles:
//! - **a committed snapshot always reads back exactly**: right after each commit, after every
//!   crash and cleanup, and at random, the tree a mark's head (or a kept older commit) names is
//!   read whole from the sector engine and compared with the `FsSpec` recorded at commit time;
//! - **nothing acknowledged is lost**: each mark's value is the last one acknowledged to it;
//! - **corruption is reported, never returned**: a read may fail only once a media fault was
//!   injected into that repository, and a read that returns data must return the right data;
//! - VOL-1 for every mark volume after every cleanup (MARK-8), and mode exclusion: a begin is
//!   refused only when the other mode is really held (VOL-2, VOL-6).
//!
//! Never decides what is allowed itself: `FsSpec` says what a tree holds.

mod jobs;
mod repo;
mod tree;

use crate::knobs::Knobs;
use crate::oracle::Violation;
use crate::rng::SimRng;
use crate::ssd::SimSsd;
use crate::trace::Trace;
use cellar::db::merge::NodeId;
use cellar::db::snapshot;
use cellar::fs::{Fs, FsSnapshotReachability, History, Retention};
use cellar::marks::{MarkName, SpaceReachability};
use cellar::sector::EngineConfig;
use cellar::storage::refs::Ref;
use cellar::storage::store::Store;
use cellar::storage::volume::{
    CleanupJob, CleanupStep, Mode, SyncJob, SyncOutcome, SyncStep, VolumeError, check_vol1,
};
use cellar_model::spec::fs::FsSpec;
use repo::{FS_DEVICE_SECTOR_COUNT, Repo};
use std::collections::BTreeMap;
use std::sync::Arc;
pub use tree::CHUNKS;

type Decide = dyn Fn(&[u8], &[u8]) -> Option<Vec<u8>>;

/// The two repositories and what the jobs borrow; built before the run, which borrows it.
pub struct Fixture {
    a: Repo,
    b: Repo,
    reach: FsSnapshotReachability,
    decides: Vec<Box<Decide>>,
    salts: Vec<[u8; 32]>,
}

fn mark_name(i: usize) -> MarkName {
    let names = ["main", "dev", "topic"];
    #[allow(clippy::expect_used, reason = "constant, valid names")]
    MarkName::new(names[i % names.len()]).expect("valid mark name")
}

impl Fixture {
    /// Two repositories on fresh devices with `marks` marks each (salts drawn from `rng`).
    pub fn new(rng: &mut SimRng, knobs: &Knobs, cfg: &EngineConfig) -> Result<Fixture, Violation> {
        let salts: Vec<[u8; 32]> = (0..knobs.fs_marks)
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill(&mut s);
                s
            })
            .collect();
        let marks: Vec<(MarkName, [u8; 32])> =
            salts.iter().enumerate().map(|(i, s)| (mark_name(i), *s)).collect();
        let mut repo = |name| {
            let ssd = SimSsd::new(FS_DEVICE_SECTOR_COUNT, knobs.ssd, rng.fork());
            Repo::new(name, ssd, cfg.clone(), knobs.ssd, &marks)
        };
        let (a, b) = (repo("A")?, repo("B")?);
        let decides = marks
            .iter()
            .map(|_| {
                let store: Arc<dyn Store> = b.space.volume().store.clone();
                Box::new(move |src: &[u8], dst: &[u8]| fast_forward(store.as_ref(), src, dst))
                    as Box<Decide>
            })
            .collect();
        Ok(Fixture { a, b, reach: FsSnapshotReachability, decides, salts })
    }

    fn repo(&self, r: usize) -> &Repo {
        if r == 0 { &self.a } else { &self.b }
    }
}

/// A push publishes only a fast forward (the destination's head is an ancestor).
fn fast_forward(store: &dyn Store, src: &[u8], dst: &[u8]) -> Option<Vec<u8>> {
    let head = History::decode(src).ok()?.head?;
    match History::decode(dst).ok()?.head {
        None => Some(src.to_vec()),
        Some(d) => snapshot::is_ancestor(store, &d, &head).ok()?.then(|| src.to_vec()),
    }
}

fn is_device_full(e: &dyn std::fmt::Display) -> bool {
    e.to_string().contains("device full")
}

/// Faults injected in one run of the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsFaults {
    /// Power cuts.
    pub crashes: u64,
    /// Unflushed sectors that landed at power cuts.
    pub landed_sectors: u64,
    /// Unflushed sectors lost at power cuts.
    pub lost_sectors: u64,
    /// Latent sector errors.
    pub latent: u64,
    /// Flipped bits.
    pub corrupt: u64,
}

/// One run of the profile, borrowing its fixture.
pub struct FsSim<'a> {
    fx: &'a Fixture,
    rng: SimRng,
    knobs: Knobs,
    /// The event trace.
    pub trace: Trace,
    /// Simulated time, µs.
    pub now_us: u64,
    /// Operations so far.
    pub ops: u64,
    /// Faults injected.
    pub faults: FsFaults,
    work: Vec<tree::Workspace>,
    /// The last value acknowledged to each mark, per repository.
    acked: [Vec<History>; 2],
    specs: BTreeMap<Ref, FsSpec>,
    push: Option<(usize, SyncJob<'a>, bool)>,
    clean: [Option<CleanupJob<'a>>; 2],
    next_crash: u64,
    next_latent: u64,
    next_corrupt: u64,
}

/// Which repository: `A` (0) or `B` (1).
const A: usize = 0;
const B: usize = 1;

impl<'a> FsSim<'a> {
    /// A run over `fx` (whose marks are still empty).
    pub fn new(
        fx: &'a Fixture,
        rng: SimRng,
        knobs: Knobs,
        trace: Trace,
    ) -> Result<Self, Violation> {
        let work = fx.salts.iter().map(|s| tree::Workspace::new(*s)).collect::<Result<_, _>>()?;
        let n = fx.salts.len();
        let mut sim = FsSim {
            fx,
            rng,
            knobs,
            trace,
            now_us: 0,
            ops: 0,
            faults: FsFaults::default(),
            work,
            acked: [vec![History::default(); n], vec![History::default(); n]],
            specs: BTreeMap::new(),
            push: None,
            clean: [None, None],
            next_crash: 0,
            next_latent: 0,
            next_corrupt: 0,
        };
        sim.next_crash = sim.every(sim.knobs.crash_every_us);
        sim.next_latent = sim.every(sim.knobs.latent_every_us);
        sim.next_corrupt = sim.every(sim.knobs.corrupt_every_us);
        Ok(sim)
    }

    /// When the next fault of a kind with mean period `mean_us` happens (never if 0).
    fn every(&mut self, mean_us: u64) -> u64 {
        if mean_us == 0 { u64::MAX } else { self.now_us + 1 + self.rng.below(2 * mean_us) }
    }

    fn event(&mut self, what: std::fmt::Arguments<'_>) {
        self.trace.event(self.now_us, what);
    }

    /// Runs `ticks` steps with faults, then the final checks without them.
    pub fn run(&mut self, ticks: u64) -> Result<(), Violation> {
        for _ in 0..ticks {
            self.faults_due()?;
            self.step()?;
            for r in [A, B] {
                self.fx.repo(r).compact();
                self.now_us += self.fx.repo(r).take_elapsed_us();
            }
            self.now_us += 10;
        }
        // Final: the jobs finish without faults, then everything acknowledged reads back.
        self.push = None;
        self.clean = [None, None];
        for r in [A, B] {
            self.check_repo(r, true)?;
        }
        Ok(())
    }

    fn faults_due(&mut self) -> Result<(), Violation> {
        if self.now_us >= self.next_crash {
            let r = self.rng.below(2) as usize;
            self.clean[r] = None;
            if self.push.take().is_some() {
                self.event(format_args!("push killed by the crash"));
            }
            let (line, landed, lost) = self.fx.repo(r).crash(&mut self.rng)?;
            self.faults.crashes += 1;
            self.faults.landed_sectors += landed;
            self.faults.lost_sectors += lost;
            self.event(format_args!("{line}"));
            self.check_repo(r, false)?;
            self.next_crash = self.every(self.knobs.crash_every_us);
        }
        for latent in [true, false] {
            let (due, mean) = if latent {
                (self.next_latent, self.knobs.latent_every_us)
            } else {
                (self.next_corrupt, self.knobs.corrupt_every_us)
            };
            if self.now_us < due {
                continue;
            }
            let r = self.rng.below(2) as usize;
            let line = self.fx.repo(r).media_fault(&mut self.rng, latent);
            self.event(format_args!("{line}"));
            if latent {
                self.faults.latent += 1;
                self.next_latent = self.every(mean);
            } else {
                self.faults.corrupt += 1;
                self.next_corrupt = self.every(mean);
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), Violation> {
        self.ops += 1;
        let marks = self.work.len() as u64;
        let m = self.rng.below(marks) as usize;
        match self.rng.below(20) {
            0..=8 => {
                let line = self.work[m].step(&mut self.rng)?;
                self.event(format_args!("write {}: {line}", mark_name(m)));
            }
            9..=11 => self.commit(m)?,
            12..=14 => self.push_step(m)?,
            15..=17 => {
                let r = self.rng.below(2) as usize;
                self.clean_step(r)?;
            }
            _ => {
                let r = self.rng.below(2) as usize;
                self.check_mark(r, m, false)?;
            }
        }
        Ok(())
    }

    /// An operation failed: allowed for a full device or after a media fault on `repos`.
    fn allowed(
        &mut self,
        what: &str,
        e: &dyn std::fmt::Display,
        repos: &[usize],
    ) -> Result<(), Violation> {
        let faulted = repos.iter().any(|r| self.fx.repo(*r).faulted());
        self.event(format_args!("{what} failed: {e}"));
        if faulted || is_device_full(e) {
            Ok(())
        } else {
            Err(Violation::new(
                "nothing fails without a fault",
                format!("{what} failed with no media fault and space left: {e}"),
            ))
        }
    }

    /// Copies the working tree into A, commits it on the mark's head, publishes it.
    fn commit(&mut self, m: usize) -> Result<(), Violation> {
        let repo = &self.fx.a;
        let hold = match repo.space.volume().modes.begin(Mode::Expand) {
            Ok(h) => h,
            Err(VolumeError::ModeConflict { .. }) if self.clean[A].is_some() => {
                self.event(format_args!(
                    "commit {}: refused, a cleanup runs (VOL-6)",
                    mark_name(m)
                ));
                return Ok(());
            }
            Err(e) => {
                return Err(Violation::new(
                    "VOL-2 a begin is refused only by the other mode",
                    e.to_string(),
                ));
            }
        };
        let ws = &self.work[m];
        let result = (|| -> Result<(History, History, Ref), String> {
            let store = repo.space.store();
            for h in ws.fs().reachable(&ws.root).map_err(|e| e.to_string())? {
                if !store.exists(&h).map_err(|e| e.to_string())? {
                    let blob = ws.store().get(&h).map_err(|e| e.to_string())?;
                    store.post(&blob).map_err(|e| e.to_string())?;
                }
            }
            let vol = &repo.marks[m];
            let old = vol.cell.read().map_err(|e| e.to_string())?;
            let old = History::decode(&old).map_err(|e| e.to_string())?;
            let fs = Fs::with_chunker(store, self.fx.salts[m], CHUNKS);
            let now_ms = i64::try_from(self.now_us / 1000).unwrap_or(i64::MAX);
            let head = fs
                .commit_at(&ws.root, old.head.as_ref(), NodeId(1), "sim", Some(now_ms))
                .map_err(|e| e.to_string())?;
            let new = History { head: Some(head), horizon: old.horizon };
            let cas = vol.cell.cas(&old.encode(), &new.encode()).map_err(|e| e.to_string())?;
            if !cas.swapped {
                return Err(format!("lost the CAS on its own mark (now {:?})", cas.current.len()));
            }
            Ok((old, new, head))
        })();
        drop(hold);
        match result {
            Ok((old, new, head)) => {
                if old != self.acked[A][m] && !self.fx.a.faulted() {
                    return Err(Violation::new(
                        "nothing acknowledged is lost",
                        format!(
                            "mark {} held {old:?}, acknowledged {:?}",
                            mark_name(m),
                            self.acked[A][m]
                        ),
                    ));
                }
                self.acked[A][m] = new;
                self.specs.insert(head, self.work[m].spec.clone());
                self.event(format_args!("commit {} -> {head}", mark_name(m)));
                self.check_mark(A, m, true)
            }
            Err(e) => self.allowed("commit", &e, &[A]),
        }
    }
}

/// What [`run`] reports.
pub struct FsOutcome {
    /// The verdict.
    pub result: Result<(), Violation>,
    /// Simulated time, µs.
    pub now_us: u64,
    /// Operations.
    pub ops: u64,
    /// Faults.
    pub faults: FsFaults,
    /// The trace.
    pub trace: Trace,
}

/// One run of the `fs` profile: `ticks` steps with faults, then the final checks.
pub fn run(
    mut rng: SimRng,
    knobs: Knobs,
    cfg: &EngineConfig,
    trace: Trace,
    ticks: u64,
) -> FsOutcome {
    let fx = match Fixture::new(&mut rng, &knobs, cfg) {
        Ok(fx) => fx,
        Err(v) => {
            return FsOutcome {
                result: Err(v),
                now_us: 0,
                ops: 0,
                faults: FsFaults::default(),
                trace,
            };
        }
    };
    let mut sim = match FsSim::new(&fx, rng, knobs, trace) {
        Ok(s) => s,
        Err(v) => {
            return FsOutcome {
                result: Err(v),
                now_us: 0,
                ops: 0,
                faults: FsFaults::default(),
                trace: Trace::new(false),
            };
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run(ticks)))
        .unwrap_or_else(|p| Err(Violation::new("no panics", panic_text(p.as_ref()))));
    FsOutcome { result, now_us: sim.now_us, ops: sim.ops, faults: sim.faults, trace: sim.trace }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}
