//! The `volume` model: S syncers and C cleaners on one volume, with crashes (VOL-1..VOL-4).
//!
//! The world is a [`VolumeSpec`] (cell, store, held modes); every step a process takes goes
//! through [`VolumeSpec::allowed`]. A refused `BeginExpand`/`BeginContract` (VOL-2 mode
//! conflict) means "wait": the step is simply not enabled. Any other refusal is a protocol bug:
//! the model records it as the state's `fault`, applies the step's physical effect anyway
//! ([`VolumeSpec::apply_unchecked`], to show what a real system would have done) and stops.
//!
//! Processes, each a holder of at most one mode:
//! - **Syncer** (`runs` syncs): take Expand choosing a source value (a pair of blobs); read the
//!   cell; post each blob of the value the store lacks; publish by CAS from the value read
//!   (VOL-3: only after every reachable blob is posted); on a lost CAS re-read and retry up to
//!   `retries` times; release Expand.
//! - **Cleaner** (`cleanups` runs): take Contract; read the cell; delete every stored blob not
//!   reachable from the value read (VOL-1: the cell cannot change under Contract, VOL-2);
//!   release Contract.
//! - Any process holding a mode may **crash** (at most `crashes` in total): it takes no further
//!   steps and its mode stays held until **recovery** releases it, which only a dead holder's
//!   mode allows (VOL-4; the kernel drops a dead process's flock).
//!
//! A value is a bit mask of blob ids; the blobs reachable from it are its bits. Syncers are
//! interchangeable, as are cleaners: the symmetry representative sorts each group.

use super::{ModelKind, SetupError, SizeKey, Sizes};
use crate::check::Explain;
use crate::spec::{HolderId, Mode, VolumeReject, VolumeSpec, VolumeStep};
use stateright::{Model, Property};
use std::collections::BTreeSet;

/// `VOL-1` property name.
pub const PROP_VOL1: &str = "VOL-1 reachable blobs are present";
/// `VOL-2` property name.
pub const PROP_VOL2: &str = "VOL-2 expand and contract never overlap";
/// `VOL-3` property name.
pub const PROP_VOL3: &str = "VOL-3 a sync never publishes missing blobs";
/// `VOL-4` property name.
pub const PROP_VOL4: &str = "VOL-4 only a live holder releases its own mode";
/// Every other rule of the spec (modes held for each step, dead holders stay still).
pub const PROP_STEPS: &str = "VOL-0 every step is allowed by VolumeSpec";

/// Size parameters.
pub const SIZE_KEYS: &[SizeKey] = &[
    SizeKey { key: "syncers", default: 2, min: 1, max: 3, what: "syncer processes" },
    SizeKey { key: "cleaners", default: 1, min: 1, max: 2, what: "cleaner processes" },
    SizeKey { key: "blobs", default: 3, min: 2, max: 5, what: "distinct blob ids" },
    SizeKey { key: "crashes", default: 1, min: 0, max: 2, what: "process crashes in total" },
    SizeKey { key: "retries", default: 1, min: 0, max: 2, what: "CAS retries per sync" },
    SizeKey { key: "runs", default: 1, min: 1, max: 2, what: "syncs per syncer" },
    SizeKey { key: "cleanups", default: 2, min: 1, max: 3, what: "cleanups per cleaner" },
];

/// Blob id.
type Blob = u8;
/// Cell value: a bit mask of the blobs it reaches.
type Value = u8;

const FLAG_PUBLISHED: u8 = 1;
const FLAG_DELETED: u8 = 2;
const FLAG_RECOVERED: u8 = 4;

/// The volume model's mutants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeMutant {
    /// `volume:no-mode-exclusion`: Begin* ignore the other mode.
    NoModeExclusion,
    /// `volume:publish-before-copy`: a syncer publishes before posting.
    PublishBeforeCopy,
    /// `volume:lease-expires-while-alive`: a live holder's mode can be released by expiry.
    LeaseExpiresWhileAlive,
}

/// The model's configuration.
#[derive(Clone, Debug)]
pub struct VolumeModel {
    syncers: u8,
    cleaners: u8,
    crashes: u8,
    retries: u8,
    runs: u8,
    cleanups: u8,
    targets: Vec<Value>,
    mutant: Option<VolumeMutant>,
}

/// What a process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Holding no mode.
    Idle,
    /// Syncing `target` under Expand.
    Sync {
        /// The value being synced.
        target: Value,
        /// The cell value read (the CAS's expected value), once read.
        read: Option<Value>,
        /// Retries left after a lost CAS.
        retries_left: u8,
        /// Published or gave up: only releasing Expand remains (with the mutant: posting too).
        done: bool,
    },
    /// Cleaning under Contract.
    Clean {
        /// The blobs reachable from the value read, once read.
        keep: Option<Value>,
    },
}

/// One syncer or cleaner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proc {
    /// Runs (syncs or cleanups) left to start.
    pub runs_left: u8,
    /// False after a crash.
    pub alive: bool,
    /// Current phase.
    pub phase: Phase,
}

/// A state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VolumeState {
    /// Cell, store and held modes.
    pub world: VolumeSpec<Blob, Value>,
    /// Syncers first, then cleaners; index = holder id.
    pub procs: Vec<Proc>,
    /// Crashes still allowed.
    pub crashes_left: u8,
    /// The first step the spec refused (other than a mode conflict); the state is terminal.
    pub fault: Option<VolumeReject<Blob>>,
    /// What has happened at least once (for the `sometimes` properties).
    pub flags: u8,
}

/// A step of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeAction {
    /// Syncer takes Expand to sync `target`.
    BeginSync(u8, Value),
    /// Syncer reads the cell.
    ReadCell(u8),
    /// Syncer posts a blob.
    Post(u8, Blob),
    /// Syncer publishes by CAS.
    Publish(u8),
    /// Syncer releases Expand.
    EndSync(u8),
    /// Cleaner takes Contract.
    BeginCleanup(u8),
    /// Cleaner reads the cell.
    ReadForCleanup(u8),
    /// Cleaner deletes a blob.
    Delete(u8, Blob),
    /// Cleaner releases Contract.
    EndCleanup(u8),
    /// The process dies holding its mode.
    Crash(u8),
    /// A dead holder's mode is released.
    Recover(u8),
    /// Mutant only: a live holder's lease expires.
    ExpireLease(u8),
}

fn bits(value: Value) -> BTreeSet<Blob> {
    (0..8).filter(|b| value & (1 << b) != 0).collect()
}

fn show(value: Value) -> String {
    let names: Vec<String> = bits(value).iter().map(|b| format!("b{b}")).collect();
    format!("{{{}}}", names.join(","))
}

fn holder(i: u8) -> HolderId {
    HolderId(u32::from(i))
}

impl VolumeModel {
    /// The model at `sizes`, optionally mutated (`mutant` is a name from [`super::MUTANTS`]).
    ///
    /// # Errors
    /// [`SetupError::UnknownMutant`] for a mutant of another model.
    pub fn new(sizes: &Sizes, mutant: Option<&str>) -> Result<Self, SetupError> {
        let mutant = match mutant {
            None => None,
            Some("volume:no-mode-exclusion") => Some(VolumeMutant::NoModeExclusion),
            Some("volume:publish-before-copy") => Some(VolumeMutant::PublishBeforeCopy),
            Some("volume:lease-expires-while-alive") => Some(VolumeMutant::LeaseExpiresWhileAlive),
            Some(other) => return Err(SetupError::UnknownMutant(other.to_string())),
        };
        debug_assert_eq!(sizes.kind(), ModelKind::Volume);
        let blobs = sizes.get("blobs");
        // Each sync copies a source value reaching two blobs; every pair is a possible source.
        let targets = (0..blobs)
            .flat_map(|a| ((a + 1)..blobs).map(move |b| (1u8 << a) | (1u8 << b)))
            .collect();
        Ok(Self {
            syncers: sizes.get("syncers"),
            cleaners: sizes.get("cleaners"),
            crashes: sizes.get("crashes"),
            retries: sizes.get("retries"),
            runs: sizes.get("runs"),
            cleanups: sizes.get("cleanups"),
            targets,
            mutant,
        })
    }

    fn is_syncer(&self, i: u8) -> bool {
        i < self.syncers
    }

    fn name_of(&self, i: u8) -> String {
        if self.is_syncer(i) { format!("syncer {i}") } else { format!("cleaner {i}") }
    }

    /// Applies `step` to the world. `Ok(false)`: refused by a mode conflict (not enabled).
    fn step(&self, s: &mut VolumeState, step: VolumeStep<Blob, Value>) -> bool {
        let begin =
            matches!(step, VolumeStep::BeginExpand { .. } | VolumeStep::BeginContract { .. });
        if begin && self.mutant == Some(VolumeMutant::NoModeExclusion) {
            // Got's original design: nothing stops a cleanup during a sync.
            s.world.apply_unchecked(step);
            return true;
        }
        match s.world.allowed(&step) {
            Ok(()) => {
                s.world.apply_unchecked(step);
                true
            }
            Err(VolumeReject::ModeConflict { .. }) if begin => false,
            Err(reject) => {
                s.fault = Some(reject);
                s.world.apply_unchecked(step);
                true
            }
        }
    }

    fn missing(&self, s: &VolumeState, target: Value) -> Option<Blob> {
        bits(target).into_iter().find(|b| !s.world.store().contains(b))
    }

    fn syncer_actions(&self, s: &VolumeState, i: u8, p: &Proc, out: &mut Vec<VolumeAction>) {
        match p.phase {
            Phase::Idle if p.runs_left > 0 => {
                out.extend(self.targets.iter().map(|t| VolumeAction::BeginSync(i, *t)));
            }
            Phase::Sync { read: None, done: false, .. } => out.push(VolumeAction::ReadCell(i)),
            Phase::Sync { target, read: Some(_), done, .. } => {
                let missing = self.missing(s, target);
                let early = self.mutant == Some(VolumeMutant::PublishBeforeCopy);
                match (missing, done) {
                    (Some(b), true) => out.push(VolumeAction::Post(i, b)),
                    (Some(b), false) => {
                        out.push(VolumeAction::Post(i, b));
                        if early {
                            out.push(VolumeAction::Publish(i));
                        }
                    }
                    (None, false) => out.push(VolumeAction::Publish(i)),
                    (None, true) => out.push(VolumeAction::EndSync(i)),
                }
            }
            _ => {}
        }
    }

    fn cleaner_actions(&self, s: &VolumeState, i: u8, p: &Proc, out: &mut Vec<VolumeAction>) {
        match p.phase {
            Phase::Idle if p.runs_left > 0 => out.push(VolumeAction::BeginCleanup(i)),
            Phase::Clean { keep: None } => out.push(VolumeAction::ReadForCleanup(i)),
            Phase::Clean { keep: Some(keep) } => {
                match s.world.store().iter().find(|b| keep & (1 << **b) == 0) {
                    Some(b) => out.push(VolumeAction::Delete(i, *b)),
                    None => out.push(VolumeAction::EndCleanup(i)),
                }
            }
            _ => {}
        }
    }

    fn next(&self, last: &VolumeState, action: VolumeAction) -> Option<VolumeState> {
        let mut s = last.clone();
        let w = |i: u8| holder(i);
        match action {
            VolumeAction::BeginSync(i, target) => {
                if !self.step(&mut s, VolumeStep::BeginExpand { holder: w(i) }) {
                    return None;
                }
                let p = &mut s.procs[usize::from(i)];
                p.runs_left -= 1;
                p.phase =
                    Phase::Sync { target, read: None, retries_left: self.retries, done: false };
            }
            VolumeAction::ReadCell(i) => {
                let cell = *s.world.cell();
                if let Phase::Sync { read, done, target, .. } = &mut s.procs[usize::from(i)].phase {
                    *read = Some(cell);
                    // Nothing to publish if the destination already holds the value.
                    *done = cell == *target;
                }
            }
            VolumeAction::Post(i, blob) => {
                self.step(&mut s, VolumeStep::PostBlob { holder: w(i), blob });
            }
            VolumeAction::Publish(i) => self.publish(&mut s, i),
            VolumeAction::EndSync(i) => {
                self.step(&mut s, VolumeStep::EndExpand { holder: w(i) });
                s.procs[usize::from(i)].phase = Phase::Idle;
            }
            VolumeAction::BeginCleanup(i) => {
                if !self.step(&mut s, VolumeStep::BeginContract { holder: w(i) }) {
                    return None;
                }
                let p = &mut s.procs[usize::from(i)];
                p.runs_left -= 1;
                p.phase = Phase::Clean { keep: None };
            }
            VolumeAction::ReadForCleanup(i) => {
                let cell = *s.world.cell();
                s.procs[usize::from(i)].phase = Phase::Clean { keep: Some(cell) };
            }
            VolumeAction::Delete(i, blob) => {
                self.step(&mut s, VolumeStep::DeleteBlob { holder: w(i), blob });
                s.flags |= FLAG_DELETED;
            }
            VolumeAction::EndCleanup(i) => {
                self.step(&mut s, VolumeStep::EndContract { holder: w(i) });
                s.procs[usize::from(i)].phase = Phase::Idle;
            }
            VolumeAction::Crash(i) => {
                self.step(&mut s, VolumeStep::Crash { holder: w(i) });
                s.procs[usize::from(i)].alive = false;
                s.crashes_left -= 1;
            }
            VolumeAction::Recover(i) | VolumeAction::ExpireLease(i) => {
                self.step(&mut s, VolumeStep::Recover { holder: w(i) });
                s.flags |= FLAG_RECOVERED;
                if s.procs[usize::from(i)].alive {
                    // A live holder whose lease expired carries on as if it still held its mode.
                    return Some(s);
                }
                s.procs[usize::from(i)].phase = Phase::Idle;
            }
        }
        Some(s)
    }

    fn publish(&self, s: &mut VolumeState, i: u8) {
        let Phase::Sync { target, read: Some(expected), retries_left, .. } =
            s.procs[usize::from(i)].phase
        else {
            return;
        };
        let before = *s.world.cell();
        self.step(
            s,
            VolumeStep::Publish {
                holder: holder(i),
                expected,
                new: target,
                new_reachable: bits(target),
            },
        );
        let swapped = before == expected;
        if swapped {
            s.flags |= FLAG_PUBLISHED;
        }
        let phase = &mut s.procs[usize::from(i)].phase;
        *phase = match (swapped, retries_left) {
            (false, 1..) => {
                Phase::Sync { target, read: None, retries_left: retries_left - 1, done: false }
            }
            _ => Phase::Sync { target, read: Some(expected), retries_left, done: true },
        };
    }

    fn holds_mode(s: &VolumeState, i: u8) -> bool {
        s.world.holding(holder(i)).is_some()
    }
}

impl Model for VolumeModel {
    type State = VolumeState;
    type Action = VolumeAction;

    fn init_states(&self) -> Vec<VolumeState> {
        let Ok(world) = VolumeSpec::new(0, BTreeSet::new(), BTreeSet::new()) else {
            return Vec::new();
        };
        let procs = (0..self.syncers + self.cleaners)
            .map(|i| Proc {
                runs_left: if self.is_syncer(i) { self.runs } else { self.cleanups },
                alive: true,
                phase: Phase::Idle,
            })
            .collect();
        vec![VolumeState { world, procs, crashes_left: self.crashes, fault: None, flags: 0 }]
    }

    fn actions(&self, s: &VolumeState, out: &mut Vec<VolumeAction>) {
        if s.fault.is_some() {
            return;
        }
        for (i, p) in s.procs.iter().enumerate() {
            let i = u8::try_from(i).unwrap_or(u8::MAX);
            if !p.alive {
                if Self::holds_mode(s, i) {
                    out.push(VolumeAction::Recover(i));
                }
                continue;
            }
            if self.is_syncer(i) {
                self.syncer_actions(s, i, p, out);
            } else {
                self.cleaner_actions(s, i, p, out);
            }
            if Self::holds_mode(s, i) {
                if s.crashes_left > 0 {
                    out.push(VolumeAction::Crash(i));
                }
                if self.mutant == Some(VolumeMutant::LeaseExpiresWhileAlive) {
                    out.push(VolumeAction::ExpireLease(i));
                }
            }
        }
    }

    fn next_state(&self, last: &VolumeState, action: VolumeAction) -> Option<VolumeState> {
        self.next(last, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(PROP_VOL1, |_, s: &VolumeState| {
                s.world.reachable().is_subset(s.world.store())
                    && !matches!(s.fault, Some(VolumeReject::Vol1ReachableDelete { .. }))
            }),
            Property::always(PROP_VOL2, |_, s: &VolumeState| {
                let held: Vec<Mode> = s.world.holders().values().map(|h| h.mode).collect();
                !(held.contains(&Mode::Expand) && held.contains(&Mode::Contract))
            }),
            Property::always(PROP_VOL3, |_, s: &VolumeState| {
                !matches!(s.fault, Some(VolumeReject::Vol3MissingBlob { .. }))
            }),
            Property::always(PROP_VOL4, |_, s: &VolumeState| {
                !matches!(s.fault, Some(VolumeReject::Vol4LiveHolderReleased { .. }))
            }),
            Property::always(PROP_STEPS, |_, s: &VolumeState| {
                !matches!(
                    s.fault,
                    Some(
                        VolumeReject::NotHolder { .. }
                            | VolumeReject::AlreadyHolding { .. }
                            | VolumeReject::HolderDead { .. }
                            | VolumeReject::NothingToRecover { .. }
                            | VolumeReject::ModeConflict { .. }
                            | VolumeReject::Vol1MissingBlob { .. }
                    )
                )
            }),
            Property::sometimes("VOL-3 a sync can publish", |_, s: &VolumeState| {
                s.flags & FLAG_PUBLISHED != 0
            }),
            Property::sometimes("VOL-1 a cleanup can delete a blob", |_, s: &VolumeState| {
                s.flags & FLAG_DELETED != 0
            }),
            Property::sometimes("VOL-4 a crashed holder can be recovered", |_, s: &VolumeState| {
                s.flags & FLAG_RECOVERED != 0
            }),
        ]
    }
}

impl Explain for VolumeModel {
    fn name(&self) -> &'static str {
        "volume"
    }

    fn describe_step(&self, s: &VolumeState, action: &VolumeAction) -> String {
        let next = self.next(s, *action);
        let who = |i: &u8| self.name_of(*i);
        let mut text = match action {
            VolumeAction::BeginSync(i, t) => {
                format!("{} takes Expand to sync value {}", who(i), show(*t))
            }
            VolumeAction::ReadCell(i) => {
                format!("{} reads the cell: {}", who(i), show(*s.world.cell()))
            }
            VolumeAction::Post(i, b) => format!("{} posts blob b{b}", who(i)),
            VolumeAction::Publish(i) => match s.procs[usize::from(*i)].phase {
                Phase::Sync { target, read: Some(expected), .. } => format!(
                    "{} publishes {} by CAS from {}: {}",
                    who(i),
                    show(target),
                    show(expected),
                    if *s.world.cell() == expected { "swapped" } else { "lost, the cell changed" }
                ),
                _ => format!("{} publishes", who(i)),
            },
            VolumeAction::EndSync(i) => format!("{} releases Expand", who(i)),
            VolumeAction::BeginCleanup(i) => format!("{} takes Contract", who(i)),
            VolumeAction::ReadForCleanup(i) => format!(
                "{} reads the cell: {} (it will keep only those blobs)",
                who(i),
                show(*s.world.cell())
            ),
            VolumeAction::Delete(i, b) => format!("{} deletes blob b{b}", who(i)),
            VolumeAction::EndCleanup(i) => format!("{} releases Contract", who(i)),
            VolumeAction::Crash(i) => format!("{} crashes; its mode stays held", who(i)),
            VolumeAction::Recover(i) => format!("{} is found dead; its mode is released", who(i)),
            VolumeAction::ExpireLease(i) => {
                format!("{}'s lease expires while it is alive; its mode is released", who(i))
            }
        };
        if let Some(VolumeState { fault: Some(f), .. }) =
            next.filter(|n| s.fault.is_none() && n.fault.is_some())
        {
            text.push_str(&format!(" — refused by the spec: {f}"));
        }
        text
    }

    fn describe_state(&self, s: &VolumeState) -> String {
        let modes: Vec<String> = s
            .world
            .holders()
            .iter()
            .map(|(h, m)| {
                let i = u8::try_from(h.0).unwrap_or(u8::MAX);
                format!("{} {:?}{}", self.name_of(i), m.mode, if m.alive { "" } else { " (dead)" })
            })
            .collect();
        let mut text = format!(
            "cell holds {}; store holds {}; modes held: {}",
            show(*s.world.cell()),
            show(s.world.store().iter().fold(0, |m, b| m | (1 << b))),
            if modes.is_empty() { "none".to_string() } else { modes.join(", ") }
        );
        if let Some(f) = &s.fault {
            text.push_str(&format!("; spec refused: {f}"));
        }
        text
    }

    fn representative(&self, s: &VolumeState) -> VolumeState {
        let mut rep = s.clone();
        let groups = [(0, self.syncers), (self.syncers, self.syncers + self.cleaners)];
        let mut holders = std::collections::BTreeMap::new();
        for (start, end) in groups {
            let mut members: Vec<(Proc, Option<crate::spec::Holding>)> = (start..end)
                .map(|i| (s.procs[usize::from(i)], s.world.holding(holder(i))))
                .collect();
            members.sort();
            for (offset, (p, h)) in members.into_iter().enumerate() {
                let i = start + u8::try_from(offset).unwrap_or(u8::MAX);
                rep.procs[usize::from(i)] = p;
                if let Some(h) = h {
                    holders.insert(holder(i), h);
                }
            }
        }
        rep.world = rep.world.with_holders(holders);
        rep
    }
}
