//! What the `files` profile's processes may observe (`specs/cells.md` STORE-2, STORE-5,
//! STORE-6, CELL-1, CELL-2, CELL-4; `specs/volume.md` VOL-2, VOL-4, VOL-6): the blobs, the
//! cell and the modes, and what a power cut may change of each.
//!
//! Blobs: a blob whose `post` (or deferred post and `sync`) returned is **durable**: every
//! `get` returns its bytes until it is deleted, across power cuts. A blob whose post failed or
//! was cut short is **maybe** there (if there, whole); a deleted blob is absent until a power
//! cut, after which it may come back (a delete does not sync its directory). Nothing ever
//! reads as corrupt: the file system flips no bits, so `Corrupt` means torn or lost bytes.
//!
//! Cell: the value of the last acknowledged swap, or of a swap that failed or was cut short
//! since (its outcome unknown), never anything else (CELL-4: old or new, never a mix).
//!
//! Modes: a begin succeeds if and only if no live process holds the other mode (VOL-2, VOL-6);
//! a killed process's hold is gone at once (VOL-4).

use crate::oracle::Violation;
use crate::simfs::Pid;
use cellar::Hash;
use cellar::storage::volume::Mode;
use std::collections::{BTreeMap, BTreeSet};

/// A blob's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// Acknowledged durable: must read back.
    Durable,
    /// Deleted since the last power cut: must be absent.
    Deleted,
    /// Unknown: absent, or present with exactly its bytes.
    Maybe,
}

/// What a `get` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// The blob's bytes.
    Bytes(Vec<u8>),
    /// `NotFound`.
    Absent,
    /// `Corrupt`.
    Corrupt(String),
    /// Any other error.
    Failed(String),
}

/// The profile's model of the volume.
#[derive(Debug, Default)]
pub struct Model {
    /// Every blob ever posted: its bytes and state.
    pub blobs: BTreeMap<Hash, (Vec<u8>, Blob)>,
    /// Blobs whose file ever had a byte flipped (a media fault): `get` may report them corrupt
    /// from then on (a power cut can undo the delete that removed the damaged file; a post
    /// finding a file of the right length keeps it), never return other bytes.
    pub damaged: BTreeSet<Hash>,
    /// The cell's possible values: the acknowledged one first, then values of swaps whose
    /// outcome is unknown.
    pub cell: Vec<Vec<u8>>,
    /// Live holds: process → mode.
    pub holds: BTreeMap<Pid, Mode>,
}

impl Model {
    /// A new volume: an empty cell, no blobs, no holds.
    pub fn new() -> Model {
        Model { cell: vec![Vec::new()], ..Model::default() }
    }

    /// A post (or a deferred post's `sync`) returned.
    pub fn acked(&mut self, hash: Hash, bytes: &[u8]) {
        self.blobs.insert(hash, (bytes.to_vec(), Blob::Durable));
    }

    /// A byte of the blob's file was flipped.
    pub fn damaged(&mut self, hash: Hash) {
        self.damaged.insert(hash);
    }

    /// A post failed, was cut short, or was deferred and not synced.
    pub fn maybe(&mut self, hash: Hash, bytes: &[u8]) {
        let e = self.blobs.entry(hash).or_insert((bytes.to_vec(), Blob::Maybe));
        if e.1 == Blob::Deleted {
            e.1 = Blob::Maybe;
        }
    }

    /// A delete returned.
    pub fn deleted(&mut self, hash: Hash) {
        if let Some(e) = self.blobs.get_mut(&hash) {
            e.1 = Blob::Deleted;
        }
    }

    /// A delete failed or was cut short.
    pub fn delete_unknown(&mut self, hash: Hash) {
        if let Some(e) = self.blobs.get_mut(&hash) {
            e.1 = Blob::Maybe;
        }
    }

    /// Checks a `get` (STORE-2, STORE-5).
    pub fn check_get(&self, hash: &Hash, got: &Got) -> Result<(), Violation> {
        let Some((bytes, state)) = self.blobs.get(hash) else {
            return Ok(());
        };
        let damaged = self.damaged.contains(hash);
        match (got, state) {
            (Got::Bytes(b), Blob::Durable | Blob::Maybe) if b == bytes => Ok(()),
            (Got::Bytes(_), Blob::Durable | Blob::Maybe) => Err(Violation::new(
                "STORE-2 corruption is reported, never returned",
                format!("blob {hash} read back with other bytes (its file damaged: {damaged})"),
            )),
            (Got::Bytes(_), Blob::Deleted) => Err(Violation::new(
                "STORE-2 a deleted blob is absent",
                format!("blob {hash} read back after its delete returned"),
            )),
            (Got::Absent, Blob::Deleted | Blob::Maybe) => Ok(()),
            (Got::Corrupt(_), _) if damaged => Ok(()),
            (Got::Absent, Blob::Durable) => Err(Violation::new(
                "STORE-5 an acknowledged blob survives",
                format!("blob {hash} ({state:?}) was acknowledged durable and is gone"),
            )),
            (Got::Corrupt(e) | Got::Failed(e), _) => Err(Violation::new(
                "STORE-5 a blob is whole or absent",
                format!("get of blob {hash} ({state:?}) failed: {e}"),
            )),
        }
    }

    /// A power cut: deletes may be undone.
    pub fn power_cut(&mut self) {
        for (_, state) in self.blobs.values_mut() {
            if *state == Blob::Deleted {
                *state = Blob::Maybe;
            }
        }
        self.holds.clear();
    }

    /// A swap to `new` returned swapped.
    pub fn swapped(&mut self, new: &[u8]) {
        self.cell = vec![new.to_vec()];
    }

    /// A swap to `new` failed or was cut short.
    pub fn swap_unknown(&mut self, new: &[u8]) {
        if !self.cell.iter().any(|v| v == new) {
            self.cell.push(new.to_vec());
        }
    }

    /// Checks a value the cell returned (a read, or a lost swap's current value; CELL-2, CELL-4).
    pub fn check_cell(&self, got: &[u8], what: &str) -> Result<(), Violation> {
        if self.cell.iter().any(|v| v == got) {
            return Ok(());
        }
        Err(Violation::new(
            "CELL-4 the cell holds the last acknowledged value or an unfinished swap's",
            format!(
                "{what} returned {} bytes, none of the {} allowed values",
                got.len(),
                self.cell.len()
            ),
        ))
    }

    /// Whether `mode` may begin now (no live process holds the other mode).
    pub fn may_begin(&self, mode: Mode) -> bool {
        !self.holds.values().any(|m| *m == mode.other())
    }

    /// The holders of `mode`.
    pub fn holders(&self, mode: Mode) -> BTreeSet<Pid> {
        self.holds.iter().filter(|(_, m)| **m == mode).map(|(p, _)| *p).collect()
    }
}
