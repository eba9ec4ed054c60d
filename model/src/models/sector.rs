//! The `sector` model: the sector engine's zones, epochs, zone headers, flushes, free headers
//! and recovery, with power cuts (`specs/sector.md` §3, §5.1, §8; SEC-4, SEC-7).
//!
//! The device is `zones` zones of one header sector and `slots` record sectors each. Every
//! sector write is *pending* until a flush makes it durable; a power cut lands any subset of
//! the pending writes, in any order (SEC-1, SEC-2: sector writes are atomic, nothing unflushed
//! is promised), and loses the rest. The engine, one process:
//! - **Write** key `k`: if there is no head zone or it is full, *open* the lowest free zone
//!   with the next epoch — submit its zone header and flush before any record of the epoch
//!   (SEC-4 rule 1, "header first") — then submit the record (key, seq, epoch) in the head's
//!   next sector. Refused (not enabled) when no zone is free.
//! - **Flush**: every pending write becomes durable; acknowledged to the client.
//! - **Free** a zone in use that is not the head and holds no live record: flush, then write a
//!   free header carrying the zone's epoch, durably (SEC-4 rule 2, SEC-14).
//! - **Crash** (at most `crashes`): a subset of the pending writes lands, then **recovery**
//!   reads every header (zone headers are in use; zone and free headers raise the largest
//!   epoch), takes per key the valid record (its epoch is its zone's) with the highest seq,
//!   sets the next epoch to one past the largest, and leaves no head (a found zone is never
//!   extended, §8 step 6).
//!
//! What it abstracts: one record per sector (no packing, no multi-sector values), no seals,
//! durable marks or torn-tail cuts (a record landed past a lost one is simply valid), no media
//! faults, no compactor moves (a zone is freed only once its records are all overwritten), no
//! deletes or CAS, no superblock. Seqs are a ghost counter that never repeats, so values are
//! unique per write.
//!
//! Judged by `cellar-model`'s own spec: every acknowledged write and flush is fed to a
//! [`SectorSpec`], and every recovered state must be one it allows (SEC-7: nothing flushed lost,
//! and a write recovery dropped stays dropped — the spec adopts each recovered state). SEC-4 is
//! a ghost: the set of epochs of which some sector ever became durable; opening a zone with one
//! of them is a reuse.

use super::{ModelKind, SetupError, SizeKey, Sizes};
use crate::spec::{SectorRecord, SectorSpec};
use stateright::{Model, Property};
use std::collections::BTreeMap;

/// `SEC-4` property name.
pub const PROP_SEC4: &str = "SEC-4 an epoch that reached the device is never handed out again";
/// `SEC-7` property name.
pub const PROP_SEC7: &str = "SEC-7 recovery loses nothing flushed and revives nothing dropped";

/// Size parameters.
pub const SIZE_KEYS: &[SizeKey] = &[
    SizeKey { key: "zones", default: 3, min: 2, max: 4, what: "zones on the device" },
    SizeKey { key: "slots", default: 2, min: 1, max: 3, what: "record sectors per zone" },
    SizeKey { key: "keys", default: 2, min: 1, max: 3, what: "distinct keys" },
    SizeKey { key: "writes", default: 4, min: 1, max: 6, what: "acknowledged writes in total" },
    SizeKey { key: "crashes", default: 2, min: 0, max: 3, what: "power cuts in total" },
];

/// Epochs are tracked in a `u64` bit set: at most this many.
const EPOCHS_MAX: u8 = 63;

const FLAG_REOPENED: u8 = 1;
const FLAG_KEPT_UNFLUSHED: u8 = 2;
const FLAG_DROPPED_UNFLUSHED: u8 = 4;

/// The sector model's mutants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectorMutant {
    /// `sector:recovery-reuses-epoch`: the design before finding 3 — recovery skips `zones`
    /// epochs past the largest on the device, in memory only, and opening a zone does not flush
    /// its header first (the skip was meant to make that unnecessary).
    RecoveryReusesEpoch,
    /// `sector:record-before-zone-header`: opening a zone does not flush its header before the
    /// first record of the epoch is written.
    RecordBeforeZoneHeader,
    /// `sector:free-header-forgets-epoch`: recovery ignores the epochs of free headers.
    FreeHeaderForgetsEpoch,
}

/// The model's configuration.
#[derive(Clone, Debug)]
pub struct SectorModel {
    zones: u8,
    slots: u8,
    keys: u8,
    writes: u8,
    crashes: u8,
    mutant: Option<SectorMutant>,
}

/// The contents of one sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sector {
    /// Never written (or trimmed).
    Empty,
    /// A zone header (`CELLZONE`) with its epoch.
    ZoneHeader(u8),
    /// A free header (`CELLFREE`) keeping the epoch the zone had.
    FreeHeader(u8),
    /// A record: key, seq (also its value), zone epoch.
    Record {
        /// The key.
        key: u8,
        /// Its seq; the value written is the seq.
        seq: u8,
        /// The epoch of the zone it was written in.
        epoch: u8,
    },
}

impl Sector {
    fn epoch(self) -> Option<u8> {
        match self {
            Sector::Empty => None,
            Sector::ZoneHeader(e) | Sector::FreeHeader(e) | Sector::Record { epoch: e, .. } => {
                Some(e)
            }
        }
    }
}

/// The engine's head zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// The zone.
    pub zone: u8,
    /// Its epoch.
    pub epoch: u8,
    /// The next record sector (0-based, below `slots`).
    pub next_slot: u8,
}

/// A state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SectorState {
    /// Durable contents, zone by zone: header, then `slots` record sectors.
    pub durable: Vec<Sector>,
    /// Writes not yet flushed, in submission order: (sector index, contents).
    pub pending: Vec<(u8, Sector)>,
    /// In memory: the epoch of each zone in use (`None`: free).
    pub zone_epochs: Vec<Option<u8>>,
    /// In memory: the head zone.
    pub head: Option<Head>,
    /// In memory: the epoch the next zone opening takes.
    pub next_epoch: u8,
    /// In memory: where each key's live record is (zone, slot).
    pub index: Vec<Option<(u8, u8)>>,
    /// Ghost: the next seq (never repeats, so values are unique per write).
    pub next_seq: u8,
    /// Writes still allowed.
    pub writes_left: u8,
    /// Power cuts still allowed.
    pub crashes_left: u8,
    /// Ghost: epochs of which some sector became durable (bit `e`).
    pub durable_epochs: u64,
    /// Ghost: the executable spec, fed every acknowledged operation.
    pub spec: SectorSpec,
    /// SEC-4 broken: the epoch handed out again.
    pub reused_epoch: Option<u8>,
    /// SEC-7 broken: the spec's verdict on a recovered state.
    pub lost: Option<String>,
    /// What has happened at least once (for the `sometimes` properties).
    pub flags: u8,
}

/// A step of the engine or of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectorAction {
    /// Write key `k` (opening a zone first if needed).
    Write(u8),
    /// Flush the device; acknowledged.
    Flush,
    /// Free zone `z` (free header, durably).
    Free(u8),
    /// Power cut landing the pending writes whose bits are set (bit `i`: `pending[i]`), then
    /// recovery.
    Crash(u32),
}

/// The value the spec sees for seq `seq`.
fn value_of(seq: u8) -> Vec<u8> {
    u64::from(seq).to_le_bytes().to_vec()
}

impl SectorModel {
    /// The model at `sizes`, optionally mutated (`mutant` is a name from [`super::MUTANTS`]).
    ///
    /// # Errors
    /// [`SetupError::UnknownMutant`] for a mutant of another model.
    pub fn new(sizes: &Sizes, mutant: Option<&str>) -> Result<Self, SetupError> {
        let mutant = match mutant {
            None => None,
            Some("sector:recovery-reuses-epoch") => Some(SectorMutant::RecoveryReusesEpoch),
            Some("sector:record-before-zone-header") => Some(SectorMutant::RecordBeforeZoneHeader),
            Some("sector:free-header-forgets-epoch") => Some(SectorMutant::FreeHeaderForgetsEpoch),
            Some(other) => return Err(SetupError::UnknownMutant(other.to_string())),
        };
        debug_assert_eq!(sizes.kind(), ModelKind::Sector);
        Ok(Self {
            zones: sizes.get("zones"),
            slots: sizes.get("slots"),
            keys: sizes.get("keys"),
            writes: sizes.get("writes"),
            crashes: sizes.get("crashes"),
            mutant,
        })
    }

    fn header_of(&self, zone: u8) -> u8 {
        zone * (self.slots + 1)
    }

    fn record_of(&self, zone: u8, slot: u8) -> u8 {
        self.header_of(zone) + 1 + slot
    }

    /// Opening a zone flushes its header before any record of its epoch (SEC-4 rule 1).
    fn header_first(&self) -> bool {
        !matches!(
            self.mutant,
            Some(SectorMutant::RecordBeforeZoneHeader | SectorMutant::RecoveryReusesEpoch)
        )
    }

    fn submit(s: &mut SectorState, sector: u8, contents: Sector) {
        s.pending.retain(|(i, _)| *i != sector);
        s.pending.push((sector, contents));
    }

    fn make_durable(s: &mut SectorState, sector: u8, contents: Sector) {
        if let Some(e) = contents.epoch() {
            s.durable_epochs |= 1u64 << e.min(EPOCHS_MAX);
        }
        if let Some(slot) = s.durable.get_mut(usize::from(sector)) {
            *slot = contents;
        }
    }

    fn flush(s: &mut SectorState) {
        for (sector, contents) in std::mem::take(&mut s.pending) {
            Self::make_durable(s, sector, contents);
        }
    }

    /// Opens the lowest free zone with the next epoch; `None` if no zone is free.
    fn open_zone(&self, s: &mut SectorState) -> Option<Head> {
        let zone = (0..self.zones).find(|z| s.zone_epochs[usize::from(*z)].is_none())?;
        let epoch = s.next_epoch;
        if epoch >= EPOCHS_MAX {
            return None;
        }
        if s.durable_epochs & (1u64 << epoch) != 0 && s.reused_epoch.is_none() {
            s.reused_epoch = Some(epoch);
        }
        if matches!(s.durable[usize::from(self.header_of(zone))], Sector::FreeHeader(_)) {
            s.flags |= FLAG_REOPENED;
        }
        s.next_epoch += 1;
        Self::submit(s, self.header_of(zone), Sector::ZoneHeader(epoch));
        if self.header_first() {
            Self::flush(s);
        }
        s.zone_epochs[usize::from(zone)] = Some(epoch);
        Some(Head { zone, epoch, next_slot: 0 })
    }

    fn write(&self, s: &mut SectorState, key: u8) -> Option<()> {
        if s.writes_left == 0 {
            return None;
        }
        let mut head = match s.head {
            Some(h) if h.next_slot < self.slots => h,
            _ => self.open_zone(s)?,
        };
        let seq = s.next_seq;
        let sector = self.record_of(head.zone, head.next_slot);
        Self::submit(s, sector, Sector::Record { key, seq, epoch: head.epoch });
        s.index[usize::from(key)] = Some((head.zone, head.next_slot));
        head.next_slot += 1;
        s.head = Some(head);
        s.next_seq += 1;
        s.writes_left -= 1;
        s.spec.on_write(u64::from(key), Some(value_of(seq)), Some(u64::from(seq)), true);
        Some(())
    }

    fn freeable(&self, s: &SectorState, zone: u8) -> bool {
        s.zone_epochs[usize::from(zone)].is_some()
            && s.head.is_none_or(|h| h.zone != zone)
            && s.index.iter().all(|l| l.is_none_or(|(z, _)| z != zone))
    }

    fn free(&self, s: &mut SectorState, zone: u8) {
        let Some(epoch) = s.zone_epochs[usize::from(zone)] else { return };
        // SEC-14: the moves (here: the overwrites) are durable first, then the free header.
        Self::flush(s);
        Self::make_durable(s, self.header_of(zone), Sector::FreeHeader(epoch));
        s.zone_epochs[usize::from(zone)] = None;
    }

    /// Recovery from the durable sectors alone (§8); returns each key's winning seq.
    fn recover(&self, s: &mut SectorState) -> Vec<Option<u8>> {
        let mut largest = 0u8;
        for zone in 0..self.zones {
            let header = s.durable[usize::from(self.header_of(zone))];
            s.zone_epochs[usize::from(zone)] = match header {
                Sector::ZoneHeader(e) => {
                    largest = largest.max(e);
                    Some(e)
                }
                Sector::FreeHeader(e) => {
                    if self.mutant != Some(SectorMutant::FreeHeaderForgetsEpoch) {
                        largest = largest.max(e);
                    }
                    None
                }
                Sector::Empty | Sector::Record { .. } => None,
            };
        }
        let mut best: Vec<Option<(u8, u8, u8)>> = vec![None; usize::from(self.keys)];
        for zone in 0..self.zones {
            let Some(zone_epoch) = s.zone_epochs[usize::from(zone)] else { continue };
            for slot in 0..self.slots {
                let Sector::Record { key, seq, epoch } =
                    s.durable[usize::from(self.record_of(zone, slot))]
                else {
                    continue;
                };
                let winner = &mut best[usize::from(key)];
                if epoch == zone_epoch && winner.is_none_or(|(_, _, w)| seq > w) {
                    *winner = Some((zone, slot, seq));
                }
            }
        }
        s.index = best.iter().map(|b| b.map(|(z, slot, _)| (z, slot))).collect();
        s.next_epoch = match self.mutant {
            Some(SectorMutant::RecoveryReusesEpoch) => largest.saturating_add(self.zones),
            _ => largest.saturating_add(1),
        };
        s.head = None;
        best.iter().map(|b| b.map(|(_, _, seq)| seq)).collect()
    }

    fn crash(&self, s: &mut SectorState, landed: u32) {
        let pending = std::mem::take(&mut s.pending);
        for (i, (sector, contents)) in pending.into_iter().enumerate() {
            if landed & (1 << i) != 0 {
                Self::make_durable(s, sector, contents);
            }
        }
        s.crashes_left -= 1;
        let recovered = self.recover(s);
        let observed: BTreeMap<u64, _> = recovered
            .iter()
            .enumerate()
            .map(|(k, seq)| {
                let record = seq.map(|q| SectorRecord { value: value_of(q), version: q.into() });
                (k as u64, Ok(record))
            })
            .collect();
        let before = s.spec.clone();
        if let Err(v) = s.spec.check_recovered(&observed) {
            s.lost = Some(v.to_string());
            return;
        }
        for (k, seq) in recovered.iter().enumerate() {
            let k = k as u64;
            let was_durable = before.durable(k) == seq.map(value_of);
            if !was_durable {
                s.flags |= FLAG_KEPT_UNFLUSHED;
            }
            if before.current(k) != seq.map(value_of) {
                s.flags |= FLAG_DROPPED_UNFLUSHED;
            }
        }
    }

    fn next(&self, last: &SectorState, action: SectorAction) -> Option<SectorState> {
        let mut s = last.clone();
        match action {
            SectorAction::Write(k) => self.write(&mut s, k)?,
            SectorAction::Flush => {
                Self::flush(&mut s);
                s.spec.on_flush();
            }
            SectorAction::Free(z) => self.free(&mut s, z),
            SectorAction::Crash(landed) => self.crash(&mut s, landed),
        }
        Some(s)
    }
}

mod explain;

impl Model for SectorModel {
    type State = SectorState;
    type Action = SectorAction;

    fn init_states(&self) -> Vec<SectorState> {
        let sectors = usize::from(self.zones) * (usize::from(self.slots) + 1);
        let mut s = SectorState {
            durable: vec![Sector::Empty; sectors],
            pending: Vec::new(),
            zone_epochs: vec![None; usize::from(self.zones)],
            head: None,
            next_epoch: 1,
            index: vec![None; usize::from(self.keys)],
            next_seq: 0,
            writes_left: self.writes,
            crashes_left: self.crashes,
            durable_epochs: 0,
            spec: SectorSpec::new(u64::from(self.keys)),
            reused_epoch: None,
            lost: None,
            flags: 0,
        };
        // `format` then `open`: the first recovery runs on the freshly formatted device.
        self.recover(&mut s);
        vec![s]
    }

    fn actions(&self, s: &SectorState, out: &mut Vec<SectorAction>) {
        // A lost write ends the run; a reused epoch does not, so that what it does to the data
        // (SEC-7) can be shown too.
        if s.lost.is_some() {
            return;
        }
        if s.writes_left > 0 {
            out.extend((0..self.keys).map(SectorAction::Write));
        }
        if !s.pending.is_empty() {
            out.push(SectorAction::Flush);
        }
        out.extend((0..self.zones).filter(|z| self.freeable(s, *z)).map(SectorAction::Free));
        if s.crashes_left > 0 {
            let subsets = 1u32 << s.pending.len().min(16);
            out.extend((0..subsets).map(SectorAction::Crash));
        }
    }

    fn next_state(&self, last: &SectorState, action: SectorAction) -> Option<SectorState> {
        self.next(last, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(PROP_SEC4, |_, s: &SectorState| s.reused_epoch.is_none()),
            Property::always(PROP_SEC7, |_, s: &SectorState| s.lost.is_none()),
            Property::sometimes("SEC-4 a freed zone is reopened", |_, s: &SectorState| {
                s.flags & FLAG_REOPENED != 0
            }),
            Property::sometimes("SEC-7 recovery keeps an unflushed write", |_, s: &SectorState| {
                s.flags & FLAG_KEPT_UNFLUSHED != 0
            }),
            Property::sometimes("SEC-7 recovery drops an unflushed write", |_, s: &SectorState| {
                s.flags & FLAG_DROPPED_UNFLUSHED != 0
            }),
        ]
    }
}
