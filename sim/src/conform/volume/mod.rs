//! The volume suite (`specs/conform.md`, CONF-5): several volumes, each a directory served by
//! several processes of the implementation; seeded puts, publishes, syncs between volumes,
//! cleanups, modes held across requests (`volume.begin` / `volume.end`) and SIGKILLs, every
//! step judged by `cellar-model`'s [`VolumeSpec`] (`specs/volume.md`).
//!
//! How a black-box history becomes `VolumeSpec` steps: the harness sends one request at a time
//! (so each operation is one atomic step of the history, and modes overlap in time only through
//! holders that `volume.begin` keeps across requests), and after every request it *observes* the
//! volume: `cell.read` and `store.list` through a process of that volume. From the state before,
//! the answer and the state after it derives the steps the operation took — `BeginExpand`,
//! `PostBlob` for every blob that appeared, `Publish` if the cell moved, `DeleteBlob` for every
//! blob that vanished, `End…` — and applies them to the volume's `VolumeSpec`. A step the spec
//! rejects is a failure naming the rule (VOL-1 a reachable blob deleted, VOL-2 a mode taken
//! while a live holder holds the other, VOL-3 a value published before its blobs). The answers
//! themselves are checked too: a `mode_conflict` needs a holder of the other mode (VOL-6), a
//! sync must leave the destination holding the source's value and every blob it reaches, a
//! cleanup must delete exactly the unreachable blobs (§5) and say how many.
//!
//! Kills: a process killed idle that held a mode becomes a dead holder (`Crash`); a process
//! killed with an operation in flight took whatever steps the observation shows, then crashed.
//! A dead holder's mode may have been released any time since (the kernel drops a dead
//! process's `flock`, VOL-4), so a later `mode_conflict` it explains is justified, and a later
//! success of the other mode applies `Recover` first. At the end every process is killed and a
//! fresh one must be able to clean up each volume (a dead holder never blocks a volume for
//! good) and read back every reachable blob, verified.

mod ops;

use crate::conform::kinds::{hex, unhex};
use crate::conform::process::{Iut, ProcessError};
use crate::conform::suites::SeedOutcome;
use crate::rng::SimRng;
use cellar_model::spec::{HolderId, Mode, VolumeReject, VolumeSpec, VolumeStep};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// A blob's name: its BLAKE3-256 hash.
type Blob = [u8; 32];
type Spec = VolumeSpec<Blob, Vec<u8>>;

/// How one seed of the volume suite runs.
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// The implementation's command.
    pub cmd: String,
    /// Volumes (directories).
    pub volumes: usize,
    /// Processes serving each volume.
    pub procs_per_volume: usize,
    /// Operations per seed.
    pub ops: usize,
    /// Chance that an operation is a kill, parts per million.
    pub kill_ppm: u32,
}

/// Distinct blobs the workload draws from.
const POOL_BLOBS: u64 = 10;
/// Most hashes in one published value.
const VALUE_HASHES_MAX: u64 = 4;
/// How often the final cleanup is retried while a dead holder's mode is still being released.
const FINAL_CLEANUP_ATTEMPTS: u32 = 50;
/// History lines kept for a failure message.
const HISTORY_LINES: usize = 12;

struct Proc {
    iut: Option<Iut>,
    /// The holder `volume.begin` made this process, alive while the process is.
    holding: Option<(HolderId, Mode)>,
}

struct Vol {
    dir: PathBuf,
    procs: Vec<Proc>,
    spec: Spec,
}

/// The hashes a cell value reaches: it is a concatenation of 32-byte hashes (CONF-4).
fn reach(value: &[u8]) -> Option<BTreeSet<Blob>> {
    if !value.len().is_multiple_of(32) {
        return None;
    }
    Some(value.chunks_exact(32).filter_map(|c| <Blob>::try_from(c).ok()).collect())
}

fn is_ok(v: &Value) -> bool {
    v.get("ok") == Some(&Value::Bool(true))
}

fn error_kind(v: &Value) -> &str {
    v.pointer("/error/kind").and_then(Value::as_str).unwrap_or("")
}

fn short(b: &[u8]) -> String {
    hex(b.get(..4).unwrap_or(b))
}

fn value_text(v: &[u8]) -> String {
    if v.is_empty() {
        return "empty".to_owned();
    }
    v.chunks(32).map(short).collect::<Vec<_>>().join("+")
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Expand => "expand",
        Mode::Contract => "contract",
    }
}

fn other(m: Mode) -> Mode {
    match m {
        Mode::Expand => Mode::Contract,
        Mode::Contract => Mode::Expand,
    }
}

fn begin_step(holder: HolderId, mode: Mode) -> VolumeStep<Blob, Vec<u8>> {
    match mode {
        Mode::Expand => VolumeStep::BeginExpand { holder },
        Mode::Contract => VolumeStep::BeginContract { holder },
    }
}

fn end_step(holder: HolderId, mode: Mode) -> VolumeStep<Blob, Vec<u8>> {
    match mode {
        Mode::Expand => VolumeStep::EndExpand { holder },
        Mode::Contract => VolumeStep::EndContract { holder },
    }
}

/// Would `VolumeSpec` refuse a begin of `mode` now (a live or not yet recovered dead holder of
/// the other mode)? That is what justifies a `mode_conflict` answer (VOL-6).
fn conflict_justified(spec: &Spec, mode: Mode) -> bool {
    spec.holders().values().any(|h| h.mode == other(mode))
}

/// Applies a begin that the implementation says succeeded. Dead holders of the other mode are
/// recovered first (their process is gone, so their lock may have been released); a live one
/// makes it a VOL-2 failure.
fn begin(spec: &mut Spec, holder: HolderId, mode: Mode, what: &str) -> Result<(), String> {
    let live = spec.holders().iter().find(|(_, h)| h.mode == other(mode) && h.alive);
    if let Some((l, _)) = live {
        return Err(format!(
            "VOL-2: {what} took {} while {l} (alive) holds {}: expand and contract overlap",
            mode_name(mode),
            mode_name(other(mode))
        ));
    }
    let dead: Vec<HolderId> = spec
        .holders()
        .iter()
        .filter(|(_, h)| h.mode == other(mode) && !h.alive)
        .map(|(id, _)| *id)
        .collect();
    for d in dead {
        apply(spec, VolumeStep::Recover { holder: d })?;
    }
    apply(spec, begin_step(holder, mode))
}

fn apply(spec: &mut Spec, step: VolumeStep<Blob, Vec<u8>>) -> Result<(), String> {
    let text = format!("{step:?}");
    spec.apply(step).map(|_| ()).map_err(|e: VolumeReject<Blob>| {
        let rule = match &e {
            VolumeReject::Vol1ReachableDelete { .. } => "VOL-1 (a reachable blob was deleted)",
            VolumeReject::Vol3MissingBlob { .. } => {
                "VOL-3 (a value was published before its blobs)"
            }
            VolumeReject::ModeConflict { .. } => "VOL-2",
            _ => "VolumeSpec",
        };
        format!("{rule}: VolumeSpec refuses the step the implementation took: {e} ({text})")
    })
}

/// What the harness saw of one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    cell: Vec<u8>,
    store: BTreeSet<Blob>,
}

struct Run<'a> {
    cfg: &'a VolumeConfig,
    rng: SimRng,
    seed: u64,
    vols: Vec<Vol>,
    pool: Vec<Vec<u8>>,
    next_holder: u32,
    kills: usize,
    ops: usize,
    open: usize,
    history: Vec<String>,
}

/// A seed's failure, or the implementation misbehaving at the protocol level.
enum Stop {
    Fail(String),
    Process(ProcessError),
}

impl From<ProcessError> for Stop {
    fn from(e: ProcessError) -> Self {
        Stop::Process(e)
    }
}

fn fail<T>(m: String) -> Result<T, Stop> {
    Err(Stop::Fail(m))
}

impl Run<'_> {
    fn holder(&mut self) -> HolderId {
        self.next_holder += 1;
        HolderId(self.next_holder)
    }

    fn note(&mut self, line: String) {
        self.history.push(line);
        if self.history.len() > HISTORY_LINES {
            self.history.remove(0);
        }
    }

    fn proc(&mut self, v: usize, p: usize) -> Result<&mut Iut, ProcessError> {
        let cmd = self.cfg.cmd.clone();
        let vol = self.vols.get_mut(v).ok_or(ProcessError::Closed)?;
        let dir = vol.dir.clone();
        let slot = vol.procs.get_mut(p).ok_or(ProcessError::Closed)?;
        if slot.iut.is_none() {
            slot.iut = Some(Iut::start(&cmd, &dir)?);
        }
        slot.iut.as_mut().ok_or(ProcessError::Closed)
    }

    fn call(&mut self, v: usize, p: usize, req: Value) -> Result<Value, ProcessError> {
        self.ops += 1;
        self.proc(v, p)?.call(req)
    }

    /// SIGKILL process `p` of volume `v`; a mode it held stays held by a dead holder.
    fn kill(&mut self, v: usize, p: usize) -> Result<(), Stop> {
        match self.kill_process(v, p) {
            Some(h) => self.crash(v, h),
            None => Ok(()),
        }
    }

    /// SIGKILL process `p` of volume `v`; returns the holder of the mode it held, which the
    /// caller must crash.
    fn kill_process(&mut self, v: usize, p: usize) -> Option<HolderId> {
        let slot = self.vols.get_mut(v).and_then(|vol| vol.procs.get_mut(p))?;
        let held = slot.holding.take();
        if let Some(iut) = slot.iut.take() {
            iut.kill();
            self.kills += 1;
        }
        held.map(|(h, _)| h)
    }

    fn crash(&mut self, v: usize, holder: HolderId) -> Result<(), Stop> {
        let spec = &mut self.vols[v].spec;
        if spec.holding(holder).is_some_and(|h| h.alive) {
            apply(spec, VolumeStep::Crash { holder }).map_err(Stop::Fail)?;
        }
        Ok(())
    }

    /// `cell.read` and `store.list` of volume `v`, through its first process.
    fn observe(&mut self, v: usize) -> Result<Seen, Stop> {
        let r = self.call(v, 0, json!({"type": "cell.read"}))?;
        let Some(cell) = r.get("value").and_then(Value::as_str).and_then(|s| unhex(s).ok()) else {
            return fail(format!("volume {v}: cell.read failed: {r}"));
        };
        let r = self.call(v, 0, json!({"type": "store.list", "from": null, "limit": 100_000}))?;
        let Some(list) = r.get("hashes").and_then(Value::as_array) else {
            return fail(format!("volume {v}: store.list failed: {r}"));
        };
        let mut store = BTreeSet::new();
        for h in list {
            match h.as_str().and_then(|s| unhex(s).ok()).and_then(|b| <Blob>::try_from(b).ok()) {
                Some(b) => {
                    store.insert(b);
                }
                None => return fail(format!("volume {v}: store.list gave a bad hash {h}")),
            }
        }
        let seen = Seen { cell, store };
        // VOL-1, observed directly: everything the cell reaches is stored.
        match reach(&seen.cell) {
            Some(r) => {
                if let Some(b) = r.difference(&seen.store).next() {
                    return fail(format!(
                        "VOL-1: volume {v}'s cell ({}) reaches blob {} which its store lacks",
                        value_text(&seen.cell),
                        short(b)
                    ));
                }
            }
            None => {
                return fail(format!("volume {v}'s cell holds a value that is not a hash list"));
            }
        }
        Ok(seen)
    }

    fn model(&self, v: usize) -> Seen {
        let spec = &self.vols[v].spec;
        Seen { cell: spec.cell().clone(), store: spec.store().clone() }
    }

    /// The observed state must be the model's (nothing changed behind the harness's back).
    fn expect_unchanged(&mut self, v: usize, what: &str) -> Result<(), Stop> {
        let seen = self.observe(v)?;
        let want = self.model(v);
        if seen != want {
            return fail(format!(
                "{what} changed volume {v} though it {}",
                describe_change(&want, &seen)
            ));
        }
        Ok(())
    }

    /// A random value: a hash list of pool blobs, mostly ones volume `v` holds.
    fn random_value(&mut self, v: usize) -> Vec<u8> {
        let n = self.rng.range(1, VALUE_HASHES_MAX + 1);
        let held: Vec<Blob> = self.vols[v].spec.store().iter().copied().collect();
        let mut out = BTreeSet::new();
        for _ in 0..n {
            let from_store = !held.is_empty() && self.rng.below(10) < 8;
            let b = if from_store {
                held[self.rng.below(held.len() as u64) as usize]
            } else {
                let i = self.rng.below(self.pool.len() as u64) as usize;
                *blake3::hash(&self.pool[i]).as_bytes()
            };
            out.insert(b);
        }
        out.iter().flatten().copied().collect()
    }

    fn pick_proc(&mut self, v: usize) -> usize {
        self.rng.below(self.vols[v].procs.len() as u64) as usize
    }

    fn step(&mut self) -> Result<(), Stop> {
        let nv = self.vols.len() as u64;
        let v = self.rng.below(nv) as usize;
        if self.rng.chance_ppm(self.cfg.kill_ppm) {
            let p = self.pick_proc(v);
            if self.rng.coin() {
                self.note(format!("kill volume {v} process {p} (idle)"));
                return self.kill(v, p);
            }
            return self.op_killed(v, p);
        }
        match self.rng.below(100) {
            0..=19 => self.put(v),
            20..=34 => self.publish(v),
            35..=54 => self.sync(v),
            55..=74 => self.cleanup(v),
            75..=91 => self.begin_mode(v),
            _ => self.end_mode(v),
        }
    }
}

fn describe_change(want: &Seen, seen: &Seen) -> String {
    let mut parts = Vec::new();
    if want.cell != seen.cell {
        parts.push(format!(
            "holds the value {} instead of {}",
            value_text(&seen.cell),
            value_text(&want.cell)
        ));
    }
    let extra: Vec<String> = seen.store.difference(&want.store).map(|b| short(b)).collect();
    let missing: Vec<String> = want.store.difference(&seen.store).map(|b| short(b)).collect();
    if !extra.is_empty() {
        parts.push(format!("holds blobs {} it should not", extra.join(",")));
    }
    if !missing.is_empty() {
        parts.push(format!("lacks blobs {}", missing.join(",")));
    }
    if parts.is_empty() { "is as expected".to_owned() } else { parts.join(" and ") }
}

fn state_root(seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("cellar-conform-volume-{}-{seed}", std::process::id()))
}

/// Runs one seed of the volume suite.
///
/// # Errors
/// The implementation could not be started, or broke the protocol (a bad line, a hang).
pub fn volume_seed(cfg: &VolumeConfig, seed: u64) -> Result<SeedOutcome, ProcessError> {
    let root = state_root(seed);
    let _ = std::fs::remove_dir_all(&root);
    let mut vols = Vec::new();
    for i in 0..cfg.volumes.max(2) {
        let dir = root.join(format!("v{i}"));
        std::fs::create_dir_all(&dir)?;
        let procs =
            (0..cfg.procs_per_volume.max(1)).map(|_| Proc { iut: None, holding: None }).collect();
        let spec = VolumeSpec::new(Vec::new(), BTreeSet::new(), BTreeSet::new())
            .map_err(|e| ProcessError::BadLine(e.to_string()))?;
        vols.push(Vol { dir, procs, spec });
    }
    let pool = (0..POOL_BLOBS)
        .map(|i| {
            let mut b = vec![0u8; 1 + (i * 53 % 200) as usize];
            SimRng::new(seed ^ (i << 40)).fill(&mut b);
            b
        })
        .collect();
    let mut run = Run {
        cfg,
        rng: SimRng::new(seed),
        seed,
        vols,
        pool,
        next_holder: 0,
        kills: 0,
        ops: 0,
        open: 0,
        history: Vec::new(),
    };
    let mut result = Ok(());
    for _ in 0..cfg.ops {
        result = run.step();
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = run.finish();
    }
    for v in &mut run.vols {
        for p in &mut v.procs {
            if let Some(iut) = p.iut.take() {
                iut.finish();
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let failure = match result {
        Ok(()) => None,
        Err(Stop::Process(e)) => return Err(e),
        Err(Stop::Fail(m)) => Some(format!(
            "{m}\n  last steps of seed {}:\n    {}",
            run.seed,
            run.history.join("\n    ")
        )),
    };
    Ok(SeedOutcome { seed, ops: run.ops, kills: run.kills, open: run.open, failure })
}
