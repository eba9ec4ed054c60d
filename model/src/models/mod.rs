//! The stateright models, their sizes and their named mutants.
//!
//! Each model is a [`stateright::Model`] whose properties are named by spec ID (`VOL-1 …`,
//! `CELL-1 …`, `GOS-3 …`). Each has named mutants — deliberately broken variants that the
//! checker must catch — so that no property can pass vacuously. This module is the registry
//! `cellar check` and the tests use: model names, default sizes, the mutant list and one entry
//! point, [`run`]. It never reads the clock (the checker does, for timing only).

pub mod cell;
pub mod gossip;
pub mod sector;
pub mod volume;

use crate::check::{CheckOptions, Report, check};
use std::fmt::Debug;
use std::hash::Hash;

/// The models `cellar check` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelKind {
    /// Clients reading and CASing a cell over a lossy, duplicating, reordering network.
    Cell,
    /// Syncers and cleaners on one volume with crashes (VOL-1..4).
    Volume,
    /// Nodes writing and gossiping over a lossy network (GOS-1..7).
    Gossip,
    /// The sector engine's zones, epochs, headers, flushes and recovery under power cuts
    /// (SEC-4, SEC-7).
    Sector,
}

impl ModelKind {
    /// Every model, in checking order.
    pub const ALL: [ModelKind; 4] =
        [ModelKind::Cell, ModelKind::Volume, ModelKind::Gossip, ModelKind::Sector];

    /// The model's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cell => "cell",
            ModelKind::Volume => "volume",
            ModelKind::Gossip => "gossip",
            ModelKind::Sector => "sector",
        }
    }

    /// Parses a model name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The size parameters the model accepts: (key, default, min, max).
    pub fn size_keys(self) -> &'static [SizeKey] {
        match self {
            ModelKind::Cell => cell::SIZE_KEYS,
            ModelKind::Volume => volume::SIZE_KEYS,
            ModelKind::Gossip => gossip::SIZE_KEYS,
            ModelKind::Sector => sector::SIZE_KEYS,
        }
    }
}

/// One size parameter of a model.
#[derive(Clone, Copy, Debug)]
pub struct SizeKey {
    /// Name used with `--size KEY=VALUE`.
    pub key: &'static str,
    /// Default value.
    pub default: u8,
    /// Smallest accepted value.
    pub min: u8,
    /// Largest accepted value (larger spaces do not finish in useful time).
    pub max: u8,
    /// What it counts.
    pub what: &'static str,
}

/// A named mutant: a deliberate bug a property must catch.
#[derive(Clone, Copy, Debug)]
pub struct MutantInfo {
    /// `model:bug`, as given to `--mutant`.
    pub name: &'static str,
    /// The model it mutates.
    pub model: ModelKind,
    /// What is broken.
    pub what: &'static str,
    /// The property that must catch it.
    pub caught_by: &'static str,
}

/// Every mutant, with the property that catches it.
pub const MUTANTS: &[MutantInfo] = &[
    MutantInfo {
        name: "cell:cas-without-compare",
        model: ModelKind::Cell,
        what: "the server swaps without comparing with the expected value",
        caught_by: cell::PROP_LINEARIZABLE,
    },
    MutantInfo {
        name: "cell:retry-reexecutes",
        model: ModelKind::Cell,
        what: "the server re-executes a retried or duplicated request instead of replaying its reply",
        caught_by: cell::PROP_LINEARIZABLE,
    },
    MutantInfo {
        name: "volume:no-mode-exclusion",
        model: ModelKind::Volume,
        what: "Expand and Contract do not exclude each other (Got's race: a cleanup deletes the \
               blobs a sync posted before its CAS)",
        caught_by: volume::PROP_VOL1,
    },
    MutantInfo {
        name: "volume:publish-before-copy",
        model: ModelKind::Volume,
        what: "a sync publishes the new value before posting its blobs",
        caught_by: volume::PROP_VOL3,
    },
    MutantInfo {
        name: "volume:lease-expires-while-alive",
        model: ModelKind::Volume,
        what: "a holder's mode is released by lease expiry while the holder is still alive",
        caught_by: volume::PROP_VOL4,
    },
    MutantInfo {
        name: "gossip:lww-by-arrival-order",
        model: ModelKind::Gossip,
        what: "LWW keeps whichever concurrent version arrived last",
        caught_by: gossip::PROP_GOS3,
    },
    MutantInfo {
        name: "gossip:lww-ignores-causality",
        model: ModelKind::Gossip,
        what: "LWW orders versions by (writer, value) only, ignoring their clocks",
        caught_by: gossip::PROP_GOS2,
    },
    MutantInfo {
        name: "gossip:keep-both-drops-sibling",
        model: ModelKind::Gossip,
        what: "KeepBoth keeps only the local sibling when merging concurrent versions",
        caught_by: gossip::PROP_GOS4,
    },
    MutantInfo {
        name: "sector:recovery-reuses-epoch",
        model: ModelKind::Sector,
        what: "finding 3's design: recovery skips `zones` epochs past the largest on the device, \
               in memory only, and a zone's header is not flushed before its records; a second \
               crash re-issues the epoch and revives records of a zone whose header was lost",
        caught_by: sector::PROP_SEC7,
    },
    MutantInfo {
        name: "sector:record-before-zone-header",
        model: ModelKind::Sector,
        what: "opening a zone does not flush its header before the first record of the epoch",
        caught_by: sector::PROP_SEC4,
    },
    MutantInfo {
        name: "sector:free-header-forgets-epoch",
        model: ModelKind::Sector,
        what: "recovery ignores free headers' epochs, so freeing the newest zone lets its epoch \
               be handed out again",
        caught_by: sector::PROP_SEC4,
    },
];

/// Looks a mutant up by name.
pub fn mutant(name: &str) -> Option<&'static MutantInfo> {
    MUTANTS.iter().find(|m| m.name == name)
}

/// Why a model could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No model by that name.
    #[error("unknown model {0:?} (known: cell, volume, gossip, sector, all)")]
    UnknownModel(String),
    /// No mutant by that name.
    #[error("unknown mutant {0:?}")]
    UnknownMutant(String),
    /// The mutant belongs to another model.
    #[error("mutant {mutant:?} mutates model {belongs_to:?}, not {model:?}")]
    MutantModelMismatch {
        /// The mutant.
        mutant: String,
        /// Its model.
        belongs_to: &'static str,
        /// The model asked for.
        model: &'static str,
    },
    /// No selected model has a size parameter by that name.
    #[error("unknown size {key:?} for model {model}")]
    UnknownSize {
        /// The key given.
        key: String,
        /// The model(s) it was tried on.
        model: String,
    },
    /// A size outside its accepted range.
    #[error("size {key}={value} is out of range {min}..={max}")]
    SizeOutOfRange {
        /// The key.
        key: String,
        /// The value given.
        value: u64,
        /// Smallest accepted.
        min: u8,
        /// Largest accepted.
        max: u8,
    },
    /// `--explore` could not bind its address.
    #[error("cannot serve the explorer on {addr}: {reason}")]
    Explore {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Resolved sizes of one model: one value per [`SizeKey`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes {
    kind: ModelKind,
    values: Vec<(&'static str, u8)>,
}

impl Sizes {
    /// The defaults of `kind`.
    pub fn defaults(kind: ModelKind) -> Self {
        Self { kind, values: kind.size_keys().iter().map(|k| (k.key, k.default)).collect() }
    }

    /// The defaults of `kind` overridden by `overrides` (`key` or `model.key` = value). Keys for
    /// other models (`other.key`) are ignored; a bare key no model of `kind` knows is returned
    /// in `unknown` so the caller can report keys nobody used.
    ///
    /// # Errors
    /// [`SetupError::SizeOutOfRange`] for a value outside the key's range.
    pub fn with(
        kind: ModelKind,
        overrides: &[(String, u64)],
        unknown: &mut Vec<String>,
    ) -> Result<Self, SetupError> {
        let mut sizes = Self::defaults(kind);
        for (raw_key, value) in overrides {
            let key = match raw_key.split_once('.') {
                Some((model, key)) if model == kind.name() => key,
                Some(_) => continue,
                None => raw_key.as_str(),
            };
            let Some(spec) = kind.size_keys().iter().find(|k| k.key == key) else {
                unknown.push(raw_key.clone());
                continue;
            };
            let v = u8::try_from(*value)
                .ok()
                .filter(|v| (spec.min..=spec.max).contains(v))
                .ok_or_else(|| SetupError::SizeOutOfRange {
                    key: raw_key.clone(),
                    value: *value,
                    min: spec.min,
                    max: spec.max,
                })?;
            if let Some(slot) = sizes.values.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = v;
            }
        }
        Ok(sizes)
    }

    /// The value of `key` (its default if never set; 0 for a key the model does not have).
    pub fn get(&self, key: &str) -> u8 {
        self.values.iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| *v)
    }

    /// Every (key, value), in the model's order.
    pub fn values(&self) -> &[(&'static str, u8)] {
        &self.values
    }

    /// The model these sizes are for.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }
}

/// Checks `kind` at `sizes`, optionally with the named mutant.
///
/// # Errors
/// [`SetupError`] for an unknown mutant or one of another model.
pub fn run(
    kind: ModelKind,
    mutant_name: Option<&str>,
    sizes: &Sizes,
    options: CheckOptions,
) -> Result<Report, SetupError> {
    let mutant = resolve_mutant(kind, mutant_name)?;
    Ok(match kind {
        ModelKind::Cell => check(&cell::CellModel::new(sizes, mutant)?, options),
        ModelKind::Volume => check(&volume::VolumeModel::new(sizes, mutant)?, options),
        ModelKind::Gossip => check(&gossip::GossipModel::new(sizes, mutant)?, options),
        ModelKind::Sector => check(&sector::SectorModel::new(sizes, mutant)?, options),
    })
}

/// Serves stateright's Explorer for `kind` on `addr`; blocks while serving.
///
/// # Errors
/// [`SetupError`] for a bad mutant or an address that cannot be bound.
pub fn explore(
    kind: ModelKind,
    mutant_name: Option<&str>,
    sizes: &Sizes,
    addr: &str,
) -> Result<(), SetupError> {
    let mutant = resolve_mutant(kind, mutant_name)?;
    // stateright's `serve` unwraps its bind; bind once first so a bad address is an error.
    std::net::TcpListener::bind(addr)
        .map_err(|e| SetupError::Explore { addr: addr.to_string(), reason: e.to_string() })?;
    match kind {
        ModelKind::Cell => serve(cell::CellModel::new(sizes, mutant)?, addr),
        ModelKind::Volume => serve(volume::VolumeModel::new(sizes, mutant)?, addr),
        ModelKind::Gossip => serve(gossip::GossipModel::new(sizes, mutant)?, addr),
        ModelKind::Sector => serve(sector::SectorModel::new(sizes, mutant)?, addr),
    }
    Ok(())
}

fn serve<M>(model: M, addr: &str)
where
    M: stateright::Model + Send + Sync + 'static,
    M::State: Debug + Hash + Clone + PartialEq + Send + Sync,
    M::Action: Debug + Clone + PartialEq + Send + Sync,
{
    let _checker = model.checker().serve(addr);
}

fn resolve_mutant(kind: ModelKind, name: Option<&str>) -> Result<Option<&'static str>, SetupError> {
    let Some(name) = name else { return Ok(None) };
    let info = mutant(name).ok_or_else(|| SetupError::UnknownMutant(name.to_string()))?;
    if info.model != kind {
        return Err(SetupError::MutantModelMismatch {
            mutant: name.to_string(),
            belongs_to: info.model.name(),
            model: kind.name(),
        });
    }
    Ok(Some(info.name))
}
