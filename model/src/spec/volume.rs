//! `VolumeSpec`: which volume steps are allowed (`specs/volume.md`, VOL-1..VOL-4).
//!
//! A volume is a (cell, store) pair. *Sync* adds blobs and publishes a new cell value by CAS
//! while holding **Expand**; *Cleanup* deletes blobs unreachable from the cell while holding
//! **Contract**. The rules, restated here so the spec can be read on its own:
//!
//! - State: the cell's value (abstract `V`, with the set of blob ids reachable from it), the
//!   store (a set of blob ids `B`), and the holders: holder id → (mode, alive or dead).
//! - `BeginExpand(h)` is rejected with [`VolumeReject::ModeConflict`] while anyone (alive, or
//!   dead but not recovered) holds Contract; otherwise `h` holds Expand. `BeginContract(h)` is
//!   symmetric. Any number of Expand holders may coexist, as may any number of Contract holders
//!   (VOL-2).
//! - `PostBlob(h, b)` and `Publish(h, expected, new)` only while `h` holds Expand. A publish is
//!   a CAS on the cell; a lost CAS is an ordinary outcome. It is rejected if a blob reachable
//!   from `new` is missing from the store (VOL-3). Only Expand holders change the cell.
//! - `DeleteBlob(h, b)` only while `h` holds Contract, and never a blob reachable from the cell
//!   (VOL-1). Because no Expand can be held during Contract, the cell cannot change under a
//!   cleaner, so "unreachable from the value the cleaner read" and "unreachable from the cell"
//!   agree.
//! - `EndExpand(h)` / `EndContract(h)` release `h`'s own mode.
//! - `Crash(h)`: `h` stops taking steps but its mode stays held. `Recover(h)` releases the mode
//!   of a *dead* holder only (the kernel drops a dead process's flock; a lease may expire only
//!   after its holder is gone). A live holder's mode is never released by anyone else (VOL-4).
//!
//! The spec never decodes values: a `Publish` step carries the reachable set of its new value.
//! It is generic over blob ids `B` and values `V` so the simulator can feed it real hashes and
//! real cell bytes. It never does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// Who holds a mode: a syncer or cleaner process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HolderId(pub u32);

impl std::fmt::Display for HolderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "holder {}", self.0)
    }
}

/// The two volume modes (VOL-2: never held at the same time by different holders).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Held by syncers: blobs may be added and the cell may change.
    Expand,
    /// Held by cleaners: blobs may be deleted; the cell may not change.
    Contract,
}

/// A holder's mode and whether its process is still alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holding {
    /// The mode held.
    pub mode: Mode,
    /// False once the holder crashed; its mode stays held until `Recover`.
    pub alive: bool,
}

/// One step against a volume.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VolumeStep<B, V> {
    /// Take Expand (start of a sync).
    BeginExpand {
        /// Who.
        holder: HolderId,
    },
    /// Release Expand.
    EndExpand {
        /// Who.
        holder: HolderId,
    },
    /// Add a blob to the store.
    PostBlob {
        /// Who.
        holder: HolderId,
        /// The blob.
        blob: B,
    },
    /// CAS the cell from `expected` to `new` (VOL-3: everything reachable from `new` is stored).
    Publish {
        /// Who.
        holder: HolderId,
        /// The value the syncer read.
        expected: V,
        /// The value to install.
        new: V,
        /// Every blob reachable from `new` (the spec never decodes values).
        new_reachable: BTreeSet<B>,
    },
    /// Take Contract (start of a cleanup).
    BeginContract {
        /// Who.
        holder: HolderId,
    },
    /// Release Contract.
    EndContract {
        /// Who.
        holder: HolderId,
    },
    /// Delete a blob from the store (VOL-1: never one reachable from the cell).
    DeleteBlob {
        /// Who.
        holder: HolderId,
        /// The blob.
        blob: B,
    },
    /// The holder's process dies; its mode stays held.
    Crash {
        /// Who.
        holder: HolderId,
    },
    /// Release a dead holder's mode (VOL-4: only a dead holder's).
    Recover {
        /// Whose mode.
        holder: HolderId,
    },
}

impl<B, V> VolumeStep<B, V> {
    /// The holder the step is about.
    pub fn holder(&self) -> HolderId {
        match self {
            Self::BeginExpand { holder }
            | Self::EndExpand { holder }
            | Self::PostBlob { holder, .. }
            | Self::Publish { holder, .. }
            | Self::BeginContract { holder }
            | Self::EndContract { holder }
            | Self::DeleteBlob { holder, .. }
            | Self::Crash { holder }
            | Self::Recover { holder } => *holder,
        }
    }
}

/// What an accepted step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Effect {
    /// The holder now holds the mode.
    ModeTaken(Mode),
    /// The holder's mode was released.
    ModeReleased(Mode),
    /// The blob is in the store (`already_present`: it was before).
    BlobPosted {
        /// The store already held it.
        already_present: bool,
    },
    /// The CAS ran; `swapped` is false when the cell no longer held `expected`.
    Published {
        /// The cell now holds the new value.
        swapped: bool,
    },
    /// The blob is no longer in the store.
    BlobDeleted {
        /// The store held it before.
        was_present: bool,
    },
    /// The holder is dead (`held`: the mode it keeps holding, if any).
    Crashed {
        /// The mode that stays held until `Recover`.
        held: Option<Mode>,
    },
    /// A dead holder's mode was released.
    Recovered(Mode),
}

/// Why a step is not allowed. Each variant names the rule it would break.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeReject<B: Debug> {
    /// VOL-2: the other mode is held (possibly by a dead holder awaiting recovery).
    #[error("VOL-2: {holder} cannot take {wanted:?}: {other} holds {held:?}")]
    ModeConflict {
        /// Who asked.
        holder: HolderId,
        /// The mode asked for.
        wanted: Mode,
        /// A holder of the conflicting mode.
        other: HolderId,
        /// The conflicting mode.
        held: Mode,
    },
    /// The step needs a mode the holder does not hold.
    #[error("{holder} does not hold {needed:?}")]
    NotHolder {
        /// Who asked.
        holder: HolderId,
        /// The mode the step needs.
        needed: Mode,
    },
    /// The holder already holds a mode; modes are not nested.
    #[error("{holder} already holds {held:?}")]
    AlreadyHolding {
        /// Who asked.
        holder: HolderId,
        /// What it holds.
        held: Mode,
    },
    /// A crashed holder takes no further steps.
    #[error("{holder} is dead")]
    HolderDead {
        /// Who.
        holder: HolderId,
    },
    /// VOL-3: the new value reaches a blob the store does not hold.
    #[error("VOL-3: publish by {holder} reaches missing blob {blob:?}")]
    Vol3MissingBlob {
        /// Who published.
        holder: HolderId,
        /// A reachable blob that is not in the store.
        blob: B,
    },
    /// VOL-1: the blob is reachable from the cell.
    #[error("VOL-1: {holder} would delete reachable blob {blob:?}")]
    Vol1ReachableDelete {
        /// Who deleted.
        holder: HolderId,
        /// The reachable blob.
        blob: B,
    },
    /// VOL-4: a live holder's mode may only be released by itself.
    #[error("VOL-4: {holder} is alive; only it may release its {held:?}")]
    Vol4LiveHolderReleased {
        /// The live holder.
        holder: HolderId,
        /// Its mode.
        held: Mode,
    },
    /// `Recover` of a holder that holds nothing.
    #[error("{holder} holds no mode to recover")]
    NothingToRecover {
        /// Who.
        holder: HolderId,
    },
    /// VOL-1 (constructor): the initial value reaches a blob the store does not hold.
    #[error("VOL-1: initial value reaches missing blob {blob:?}")]
    Vol1MissingBlob {
        /// The missing blob.
        blob: B,
    },
}

/// The volume state machine: cell, store and held modes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeSpec<B, V> {
    cell: V,
    reachable: BTreeSet<B>,
    store: BTreeSet<B>,
    holders: BTreeMap<HolderId, Holding>,
}

impl<B: Ord + Clone + Debug, V: Clone + PartialEq> VolumeSpec<B, V> {
    /// A volume whose cell holds `cell` (reaching `reachable`) over a store holding `store`.
    ///
    /// # Errors
    /// [`VolumeReject::Vol1MissingBlob`] if a reachable blob is not stored (VOL-1).
    pub fn new(
        cell: V,
        reachable: BTreeSet<B>,
        store: BTreeSet<B>,
    ) -> Result<Self, VolumeReject<B>> {
        if let Some(blob) = reachable.difference(&store).next() {
            return Err(VolumeReject::Vol1MissingBlob { blob: blob.clone() });
        }
        Ok(Self { cell, reachable, store, holders: BTreeMap::new() })
    }

    /// The cell's value.
    pub fn cell(&self) -> &V {
        &self.cell
    }

    /// The blobs reachable from the cell's value.
    pub fn reachable(&self) -> &BTreeSet<B> {
        &self.reachable
    }

    /// The store's blobs.
    pub fn store(&self) -> &BTreeSet<B> {
        &self.store
    }

    /// Every holder and its mode.
    pub fn holders(&self) -> &BTreeMap<HolderId, Holding> {
        &self.holders
    }

    /// The holding of `holder`, if it holds a mode.
    pub fn holding(&self, holder: HolderId) -> Option<Holding> {
        self.holders.get(&holder).copied()
    }

    /// Checks the state invariants: VOL-1 (everything reachable is stored) and VOL-2 (no
    /// Expand and Contract at the same instant).
    ///
    /// # Errors
    /// The first broken invariant; `VolumeReject::ModeConflict` names two holders of VOL-2.
    pub fn check_invariants(&self) -> Result<(), VolumeReject<B>> {
        if let Some(blob) = self.reachable.difference(&self.store).next() {
            return Err(VolumeReject::Vol1MissingBlob { blob: blob.clone() });
        }
        let expand = self.first_holder_of(Mode::Expand);
        let contract = self.first_holder_of(Mode::Contract);
        if let (Some(holder), Some(other)) = (expand, contract) {
            return Err(VolumeReject::ModeConflict {
                holder,
                wanted: Mode::Expand,
                other,
                held: Mode::Contract,
            });
        }
        Ok(())
    }

    /// Applies `step` if the rules allow it; otherwise changes nothing and says which rule.
    ///
    /// # Errors
    /// The [`VolumeReject`] naming the rule the step would break.
    pub fn apply(&mut self, step: VolumeStep<B, V>) -> Result<Effect, VolumeReject<B>> {
        self.allowed(&step)?;
        let effect = self.apply_unchecked(step);
        debug_assert!(self.check_invariants().is_ok(), "VOL-1/VOL-2 hold after an allowed step");
        Ok(effect)
    }

    /// Whether `step` is allowed now, without applying it.
    ///
    /// # Errors
    /// The [`VolumeReject`] naming the rule the step would break.
    pub fn allowed(&self, step: &VolumeStep<B, V>) -> Result<(), VolumeReject<B>> {
        let holder = step.holder();
        let holding = self.holding(holder);
        if let (Some(Holding { alive: false, .. }), false) =
            (holding, matches!(step, VolumeStep::Recover { .. }))
        {
            return Err(VolumeReject::HolderDead { holder });
        }
        match step {
            VolumeStep::BeginExpand { .. } => self.may_begin(holder, holding, Mode::Expand),
            VolumeStep::BeginContract { .. } => self.may_begin(holder, holding, Mode::Contract),
            VolumeStep::EndExpand { .. } | VolumeStep::PostBlob { .. } => {
                require(holder, holding, Mode::Expand)
            }
            VolumeStep::EndContract { .. } => require(holder, holding, Mode::Contract),
            VolumeStep::Publish { new_reachable, .. } => {
                require(holder, holding, Mode::Expand)?;
                match new_reachable.difference(&self.store).next() {
                    Some(blob) => Err(VolumeReject::Vol3MissingBlob { holder, blob: blob.clone() }),
                    None => Ok(()),
                }
            }
            VolumeStep::DeleteBlob { blob, .. } => {
                require(holder, holding, Mode::Contract)?;
                if self.reachable.contains(blob) {
                    return Err(VolumeReject::Vol1ReachableDelete { holder, blob: blob.clone() });
                }
                Ok(())
            }
            VolumeStep::Crash { .. } => Ok(()),
            VolumeStep::Recover { .. } => match holding {
                None => Err(VolumeReject::NothingToRecover { holder }),
                Some(Holding { mode, alive: true }) => {
                    Err(VolumeReject::Vol4LiveHolderReleased { holder, held: mode })
                }
                Some(Holding { alive: false, .. }) => Ok(()),
            },
        }
    }

    /// The physical effect of `step` with no rule checked: what a system *lacking* the rules
    /// would do. The models' mutants use it to show the consequence of a missing rule; a
    /// simulator may use it to keep a shadow state after reporting a rejection. Never use it to
    /// decide whether a step is allowed.
    pub fn apply_unchecked(&mut self, step: VolumeStep<B, V>) -> Effect {
        match step {
            VolumeStep::BeginExpand { holder } => self.take(holder, Mode::Expand),
            VolumeStep::BeginContract { holder } => self.take(holder, Mode::Contract),
            VolumeStep::EndExpand { holder } | VolumeStep::EndContract { holder } => {
                let mode = self.holders.remove(&holder).map_or(Mode::Expand, |h| h.mode);
                Effect::ModeReleased(mode)
            }
            VolumeStep::PostBlob { blob, .. } => {
                Effect::BlobPosted { already_present: !self.store.insert(blob) }
            }
            VolumeStep::Publish { expected, new, new_reachable, .. } => {
                let swapped = self.cell == expected;
                if swapped {
                    self.cell = new;
                    self.reachable = new_reachable;
                }
                Effect::Published { swapped }
            }
            VolumeStep::DeleteBlob { blob, .. } => {
                Effect::BlobDeleted { was_present: self.store.remove(&blob) }
            }
            VolumeStep::Crash { holder } => {
                let held = self.holders.get_mut(&holder).map(|h| {
                    h.alive = false;
                    h.mode
                });
                Effect::Crashed { held }
            }
            VolumeStep::Recover { holder } => {
                let mode = self.holders.remove(&holder).map_or(Mode::Expand, |h| h.mode);
                Effect::Recovered(mode)
            }
        }
    }

    /// The same volume with its holders replaced (symmetry representatives in the models).
    pub(crate) fn with_holders(mut self, holders: BTreeMap<HolderId, Holding>) -> Self {
        self.holders = holders;
        self
    }

    fn take(&mut self, holder: HolderId, mode: Mode) -> Effect {
        self.holders.insert(holder, Holding { mode, alive: true });
        Effect::ModeTaken(mode)
    }

    fn first_holder_of(&self, mode: Mode) -> Option<HolderId> {
        self.holders.iter().find(|(_, h)| h.mode == mode).map(|(id, _)| *id)
    }

    fn may_begin(
        &self,
        holder: HolderId,
        holding: Option<Holding>,
        wanted: Mode,
    ) -> Result<(), VolumeReject<B>> {
        if let Some(h) = holding {
            return Err(VolumeReject::AlreadyHolding { holder, held: h.mode });
        }
        let conflicting = match wanted {
            Mode::Expand => Mode::Contract,
            Mode::Contract => Mode::Expand,
        };
        // VOL-2: a dead holder's mode still counts until it is recovered (VOL-4).
        match self.first_holder_of(conflicting) {
            Some(other) => {
                Err(VolumeReject::ModeConflict { holder, wanted, other, held: conflicting })
            }
            None => Ok(()),
        }
    }
}

fn require<B: Debug>(
    holder: HolderId,
    holding: Option<Holding>,
    needed: Mode,
) -> Result<(), VolumeReject<B>> {
    match holding {
        Some(h) if h.mode == needed => Ok(()),
        _ => Err(VolumeReject::NotHolder { holder, needed }),
    }
}

#[cfg(test)]
mod tests;
