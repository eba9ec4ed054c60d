//! Adapters (`specs/sector.md` §11): [`SectorStore`] implements `store::Store` and
//! [`SectorCell`] implements `cell::Cell` on one engine, so a whole volume can live in one
//! device file (share the engine between them with [`SharedEngine`]).
//!
//! Key spaces: store keys have the top bit clear (bits 1..64 of the hash's first eight bytes,
//! big-endian, so key order is hash order); cell keys have the top bit set. A store key's record
//! holds a bucket of `(32-byte hash, u32 length, blob)` entries, so hashes whose truncated keys
//! collide are told apart by their full hash (STORE-2 still verifies every `get`).
//!
//! Never returns a blob that does not hash to its name; never reports a swap that did not
//! become durable.

use super::{
    BlockDevice, CasNew, CasOp, CasResult, Engine, Expect, Key, SectorError, WriteOptions,
};
use crate::Hash;
use crate::storage::cell::{CasOutcome, Cell, CellError, check_size};
use crate::storage::hash::HASH_SIZE_BYTES;
use crate::storage::store::{
    BLOB_SIZE_MAX_BYTES_DEFAULT, HashRange, Store, StoreError, check_blob_size, in_range,
    verify_blob,
};
use crate::sync::{Arc, Mutex, lock};
use std::ops::Bound;

/// An engine shared by adapters.
pub type SharedEngine<D> = Arc<Mutex<Engine<D>>>;

/// The top bit: set on cell keys, clear on store keys.
pub const CELL_KEY_BIT: Key = 1 << 63;
pub(crate) const ENTRY_HEADER_BYTES: usize = HASH_SIZE_BYTES + 4;

/// Wraps an engine for sharing.
pub fn share<D: BlockDevice>(engine: Engine<D>) -> SharedEngine<D> {
    Arc::new(Mutex::new(engine))
}

/// The store key of `hash`.
pub fn store_key(hash: &Hash) -> Key {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash.0[..8]);
    u64::from_be_bytes(b) >> 1
}

fn io(e: SectorError) -> StoreError {
    StoreError::Io(std::io::Error::other(e.to_string()))
}

/// A content-addressed store on a sector engine.
#[derive(Debug)]
pub struct SectorStore<D: BlockDevice> {
    engine: SharedEngine<D>,
}

impl<D: BlockDevice> SectorStore<D> {
    /// A store on `engine` (which may also hold cells).
    pub fn new(engine: SharedEngine<D>) -> SectorStore<D> {
        SectorStore { engine }
    }

    fn bucket(e: &mut Engine<D>, hash: &Hash) -> Result<Vec<(Hash, Vec<u8>)>, StoreError> {
        match e.read(store_key(hash)) {
            Ok(Some(r)) => decode_bucket(&r.value).ok_or_else(|| StoreError::Corrupt {
                hash: *hash,
                detail: "bucket framing".into(),
            }),
            Ok(None) => Ok(Vec::new()),
            Err(SectorError::Corrupt { detail, .. }) => {
                Err(StoreError::Corrupt { hash: *hash, detail })
            }
            Err(e) => Err(io(e)),
        }
    }

    fn put_bucket(
        e: &mut Engine<D>,
        key: Key,
        entries: &[(Hash, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let opts = WriteOptions { flush: true, ..WriteOptions::default() };
        if entries.is_empty() {
            e.delete(key, opts).map_err(io)?;
        } else {
            e.write(key, &encode_bucket(entries), opts).map_err(io)?;
        }
        Ok(())
    }
}

pub(crate) fn encode_bucket(entries: &[(Hash, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, blob) in entries {
        out.extend_from_slice(&h.0);
        out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        out.extend_from_slice(blob);
    }
    out
}

pub(crate) fn decode_bucket(mut b: &[u8]) -> Option<Vec<(Hash, Vec<u8>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let hash: [u8; HASH_SIZE_BYTES] = b.get(..HASH_SIZE_BYTES)?.try_into().ok()?;
        let len = u32::from_le_bytes(b.get(HASH_SIZE_BYTES..ENTRY_HEADER_BYTES)?.try_into().ok()?)
            as usize;
        let blob = b.get(ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + len)?;
        out.push((Hash(hash), blob.to_vec()));
        b = b.get(ENTRY_HEADER_BYTES + len..)?;
    }
    Some(out)
}

impl<D: BlockDevice> Store for SectorStore<D> {
    fn max_blob_size_bytes(&self) -> usize {
        let engine_max =
            lock(&self.engine).value_size_max_bytes().saturating_sub(ENTRY_HEADER_BYTES);
        engine_max.min(BLOB_SIZE_MAX_BYTES_DEFAULT)
    }

    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        check_blob_size(data.len(), self.max_blob_size_bytes())?;
        let hash = Hash::of(data);
        let mut e = lock(&self.engine);
        let mut entries = Self::bucket(&mut e, &hash)?;
        if entries.iter().any(|(h, _)| *h == hash) {
            return Ok(hash);
        }
        entries.push((hash, data.to_vec()));
        let size: usize = entries.iter().map(|(_, b)| b.len() + ENTRY_HEADER_BYTES).sum();
        if size > e.value_size_max_bytes() {
            return Err(StoreError::TooLarge {
                size_bytes: size,
                max_bytes: e.value_size_max_bytes(),
            });
        }
        Self::put_bucket(&mut e, store_key(&hash), &entries)?;
        Ok(hash)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        let entries = Self::bucket(&mut lock(&self.engine), hash)?;
        let blob = entries
            .into_iter()
            .find(|(h, _)| h == hash)
            .map(|(_, b)| b)
            .ok_or(StoreError::NotFound(*hash))?;
        verify_blob(hash, blob)
    }

    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(Self::bucket(&mut lock(&self.engine), hash)?.iter().any(|(h, _)| h == hash))
    }

    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        let mut e = lock(&self.engine);
        let mut entries = Self::bucket(&mut e, hash)?;
        let before = entries.len();
        entries.retain(|(h, _)| h != hash);
        if entries.len() != before {
            Self::put_bucket(&mut e, store_key(hash), &entries)?;
        }
        Ok(())
    }

    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        let first = match range.0 {
            Bound::Included(h) | Bound::Excluded(h) => store_key(&h),
            Bound::Unbounded => 0,
        };
        let mut e = lock(&self.engine);
        let mut keys: Vec<Key> =
            e.keys().into_iter().filter(|k| *k & CELL_KEY_BIT == 0 && *k >= first).collect();
        keys.sort_unstable();
        let mut out = Vec::new();
        for k in keys {
            if out.len() >= limit {
                break;
            }
            let value = match e.read(k) {
                Ok(Some(r)) => r.value,
                Ok(None) => continue,
                Err(err) => return Err(io(err)),
            };
            let mut hs: Vec<Hash> = decode_bucket(&value)
                .unwrap_or_default()
                .into_iter()
                .map(|(h, _)| h)
                .filter(|h| in_range(h, &range))
                .collect();
            hs.sort_unstable();
            out.extend(hs);
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// A compare-and-swap cell stored under one engine key (top bit set).
#[derive(Debug)]
pub struct SectorCell<D: BlockDevice> {
    engine: SharedEngine<D>,
    key: Key,
    max_size_bytes: usize,
}

impl<D: BlockDevice> SectorCell<D> {
    /// The cell `id` on `engine` (its key is `id | CELL_KEY_BIT`).
    pub fn new(engine: SharedEngine<D>, id: u64) -> SectorCell<D> {
        SectorCell {
            engine,
            key: id | CELL_KEY_BIT,
            max_size_bytes: crate::storage::cell::CELL_SIZE_MAX_BYTES_DEFAULT,
        }
    }

    /// The engine key holding this cell.
    pub fn key(&self) -> Key {
        self.key
    }
}

fn cell_err(e: SectorError) -> CellError {
    match e {
        SectorError::Corrupt { .. } => CellError::Corrupt(e.to_string()),
        other => CellError::Io(std::io::Error::other(other.to_string())),
    }
}

impl<D: BlockDevice> Cell for SectorCell<D> {
    fn max_size_bytes(&self) -> usize {
        self.max_size_bytes
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        let r = lock(&self.engine).read(self.key).map_err(cell_err)?;
        Ok(r.map(|r| r.value).unwrap_or_default())
    }

    /// CELL-1: linearizable because the engine lock is held from the comparison to the flush;
    /// CELL-2: a mismatch is an ordinary outcome; the swap is durable before it is reported.
    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), self.max_size_bytes)?;
        let mut e = lock(&self.engine);
        let current = e.read(self.key).map_err(cell_err)?;
        let (value, expect) = match current {
            Some(r) => (r.value, Expect::Version(r.version)),
            None => (Vec::new(), Expect::Absent),
        };
        if value != expected {
            return Ok(CasOutcome { swapped: false, current: value });
        }
        let op = CasOp { key: self.key, expected: expect, new: CasNew::Put(new.to_vec()) };
        match e.cas(&[op]).map_err(cell_err)? {
            CasResult::Committed(_) => {
                e.flush().map_err(cell_err)?;
                Ok(CasOutcome { swapped: true, current: new.to_vec() })
            }
            CasResult::Mismatch { .. } => Ok(CasOutcome { swapped: false, current: value }),
        }
    }
}
