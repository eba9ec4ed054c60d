//! Spaces (`specs/marks.md` MARK-4..MARK-7): the [`Space`] interface, [`VolumeSpace`] (a
//! space kept in its own volume) and [`MarkCell`] (a mark's cell: a view of its map entry).
//!
//! Every edit of a volume space is: begin Expand on the space (VOL-2: a space cleanup cannot
//! run meanwhile), read the space cell, compute the new map (posting its new nodes), and
//! compare-and-swap the cell; a lost CAS re-reads and recomputes, at most
//! [`SPACE_CAS_ATTEMPTS_MAX`] times. So every operation — create, fork, rename, delete, and a
//! mark's head moving — is atomic, and two edits of different marks never lose each other.
//!
//! Never: publish a map without holding Expand; let a mark volume delete a blob (the space's
//! store is shared by every mark: only [`super::SpaceReachability`] knows what they all need).

use super::MarkError;
use super::name::MarkName;
use super::record::{
    MARK_VALUE_SIZE_MAX_BYTES, MarkInfo, decode_mark, decode_space_value, encode_mark,
    encode_space_value,
};
use crate::Hash;
use crate::db::kv::{Edits, Kv, NodeCache};
use crate::storage::cell::{CasOutcome, Cell, CellError, check_size};
use crate::storage::refs::Ref;
use crate::storage::store::{HashRange, Store, StoreError};
use crate::storage::volume::{Mode, Volume};
use std::ops::Bound;
use std::sync::Arc;

/// The mark a bare-head volume's head is kept under when it is upgraded (MARK-3).
pub const UPGRADED_MARK: &str = "main";

/// How many lost compare-and-swaps of the space cell an edit retries before giving up.
pub const SPACE_CAS_ATTEMPTS_MAX: u32 = 16;

/// Bound of a space's node cache: a space map is small (one entry per mark).
const SPACE_CACHE_BYTES: u64 = 1024 * 1024;

/// A set of marks (MARK-4). Names are relative to the space.
pub trait Space: Send + Sync {
    /// Creates the mark `name` with an empty value (`AlreadyExists` if taken).
    fn create(
        &self,
        name: &MarkName,
        salt: [u8; 32],
        created_ns: i64,
    ) -> Result<MarkInfo, MarkError>;
    /// The mark `name` (`NotFound`).
    fn inspect(&self, name: &MarkName) -> Result<MarkInfo, MarkError>;
    /// Every mark, in byte order of name.
    fn list(&self) -> Result<Vec<(MarkName, MarkInfo)>, MarkError>;
    /// Removes the mark `name` and returns what it was (`NotFound`). Its blobs stay until the
    /// space is cleaned up.
    fn delete(&self, name: &MarkName) -> Result<MarkInfo, MarkError>;
    /// Renames `from` to `to` keeping its record (`NotFound`, `AlreadyExists`).
    fn rename(&self, from: &MarkName, to: &MarkName) -> Result<(), MarkError>;
    /// Creates `to` with `from`'s salt and value, created at `created_ns` (MARK-5).
    fn fork(&self, from: &MarkName, to: &MarkName, created_ns: i64) -> Result<MarkInfo, MarkError>;
    /// The mark's volume: its cell is the mark's value, its store and modes the space's
    /// (MARK-6). With `create`, a missing mark reads as empty and the first compare-and-swap
    /// creates it with `create`'s salt and creation time; without, a missing mark is `NotFound`.
    fn open(&self, name: &MarkName, create: Option<&MarkInfo>) -> Result<Volume, MarkError>;
}

/// A space kept in its own volume (MARK-3): the cell holds the map's root, the store holds the
/// map's nodes and every mark's blobs, the mode lock is shared by every mark.
#[derive(Clone)]
pub struct VolumeSpace {
    vol: Volume,
    salt: [u8; 32],
    /// Serializes the edits made through this handle and its clones (MARK-4): threads of one
    /// process never race each other's CAS, so only other processes can make an edit retry.
    edits: Arc<std::sync::Mutex<()>>,
    /// Decoded nodes of the map (KV-18), shared by the handle's clones.
    cache: Arc<NodeCache>,
}

impl std::fmt::Debug for VolumeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VolumeSpace { .. }")
    }
}

impl VolumeSpace {
    /// The space in `vol`, its map encrypted under `salt` (the volume's ref salt).
    pub fn new(vol: Volume, salt: [u8; 32]) -> Self {
        Self {
            vol,
            salt,
            edits: Arc::default(),
            cache: Arc::new(NodeCache::new(SPACE_CACHE_BYTES)),
        }
    }

    /// The space's own volume (clean it up with [`super::SpaceReachability`]).
    pub fn volume(&self) -> &Volume {
        &self.vol
    }

    /// The space's store.
    pub fn store(&self) -> &dyn Store {
        self.vol.store.as_ref()
    }

    fn kv(&self) -> Kv<'_> {
        Kv::new(self.vol.store.as_ref(), self.salt).with_cache(&self.cache)
    }

    /// The map's root as the cell holds it now.
    pub fn map_root(&self) -> Result<Option<Ref>, MarkError> {
        decode_space_value(&self.vol.cell.read()?)
    }

    fn get(&self, root: Option<&Ref>, name: &MarkName) -> Result<Option<MarkInfo>, MarkError> {
        self.kv().get(root, name.as_str().as_bytes())?.map(|v| decode_mark(&v)).transpose()
    }

    /// One atomic edit (MARK-4): under Expand, `plan` turns the current map into edits and a
    /// result; the new map is published by CAS, retried on a lost CAS.
    fn update<T>(
        &self,
        mut plan: impl FnMut(&Self, Option<&Ref>) -> Result<(Edits, T), MarkError>,
    ) -> Result<T, MarkError> {
        let _hold = self.vol.modes.begin(Mode::Expand)?;
        // A poisoned lock only means another edit panicked; the cell is still consistent.
        let _serial = self.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for _ in 0..SPACE_CAS_ATTEMPTS_MAX {
            let value = self.vol.cell.read()?;
            let root = decode_space_value(&value)?;
            let (edits, out) = plan(self, root.as_ref())?;
            if edits.is_empty() {
                return Ok(out);
            }
            let new_root = self.kv().edit(root.as_ref(), edits)?;
            let new_value = encode_space_value(new_root.as_ref());
            if new_value == value || self.vol.cell.cas(&value, &new_value)?.swapped {
                return Ok(out);
            }
        }
        Err(MarkError::Contention { attempts: SPACE_CAS_ATTEMPTS_MAX })
    }

    /// Upgrades a volume written before marks existed (MARK-3): if the cell holds a bare
    /// 64-byte head, it becomes a space with one mark, `main`, whose value is that head, whose
    /// salt is the space's (the salt those commits were written under) and whose creation time
    /// is `created_ns`. One CAS under Expand; returns whether it upgraded. Any other value is
    /// left alone (a lost CAS means another process upgraded or edited it first).
    pub fn upgrade_bare_head(&self, created_ns: i64) -> Result<bool, MarkError> {
        let value = self.vol.cell.read()?;
        if value.len() != crate::storage::refs::REF_SIZE_BYTES {
            return Ok(false);
        }
        let _hold = self.vol.modes.begin(Mode::Expand)?;
        let _serial = self.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let info = MarkInfo { created_ns, salt: self.salt, value: value.clone() };
        let main = MarkName::new(UPGRADED_MARK)?;
        let root = self.kv().put(None, &key(&main), &encode_mark(&info)?)?;
        let new = encode_space_value(root.as_ref());
        Ok(self.vol.cell.cas(&value, &new)?.swapped)
    }

    fn simple(name: &MarkName) -> Result<&[u8], MarkError> {
        if !name.is_simple() {
            return Err(MarkError::InvalidName {
                name: name.to_string(),
                reason: "a '/' names a mounted space, and none is mounted here",
            });
        }
        Ok(name.as_str().as_bytes())
    }
}

fn key(name: &MarkName) -> Vec<u8> {
    name.as_str().as_bytes().to_vec()
}

impl Space for VolumeSpace {
    fn create(
        &self,
        name: &MarkName,
        salt: [u8; 32],
        created_ns: i64,
    ) -> Result<MarkInfo, MarkError> {
        Self::simple(name)?;
        let info = MarkInfo::new(salt, created_ns);
        let record = encode_mark(&info)?;
        self.update(|s, root| {
            if s.get(root, name)?.is_some() {
                return Err(MarkError::AlreadyExists { name: name.to_string() });
            }
            Ok((Edits::from([(key(name), Some(record.clone()))]), ()))
        })?;
        Ok(info)
    }

    fn inspect(&self, name: &MarkName) -> Result<MarkInfo, MarkError> {
        Self::simple(name)?;
        let root = self.map_root()?;
        self.get(root.as_ref(), name)?.ok_or_else(|| MarkError::NotFound { name: name.to_string() })
    }

    fn list(&self) -> Result<Vec<(MarkName, MarkInfo)>, MarkError> {
        let root = self.map_root()?;
        let mut out = Vec::new();
        for entry in self.kv().range(root.as_ref(), Bound::Unbounded, Bound::Unbounded)? {
            let (k, v) = entry?;
            out.push((MarkName::from_key(&k)?, decode_mark(&v)?));
        }
        Ok(out)
    }

    fn delete(&self, name: &MarkName) -> Result<MarkInfo, MarkError> {
        Self::simple(name)?;
        self.update(|s, root| {
            let info =
                s.get(root, name)?.ok_or_else(|| MarkError::NotFound { name: name.to_string() })?;
            Ok((Edits::from([(key(name), None)]), info))
        })
    }

    fn rename(&self, from: &MarkName, to: &MarkName) -> Result<(), MarkError> {
        Self::simple(from)?;
        Self::simple(to)?;
        self.update(|s, root| {
            let info =
                s.get(root, from)?.ok_or_else(|| MarkError::NotFound { name: from.to_string() })?;
            if from == to {
                return Ok((Edits::new(), ()));
            }
            if s.get(root, to)?.is_some() {
                return Err(MarkError::AlreadyExists { name: to.to_string() });
            }
            let mut edits = Edits::from([(key(to), Some(encode_mark(&info)?))]);
            // Planted bug marks:rename-keeps-old: the old name is left in the map.
            if !crate::bugs::active("marks:rename-keeps-old") {
                edits.insert(key(from), None);
            }
            Ok((edits, ()))
        })
    }

    fn fork(&self, from: &MarkName, to: &MarkName, created_ns: i64) -> Result<MarkInfo, MarkError> {
        Self::simple(from)?;
        Self::simple(to)?;
        self.update(|s, root| {
            let origin =
                s.get(root, from)?.ok_or_else(|| MarkError::NotFound { name: from.to_string() })?;
            if s.get(root, to)?.is_some() {
                return Err(MarkError::AlreadyExists { name: to.to_string() });
            }
            // MARK-5: same salt, same value; only the creation time is the fork's own.
            let info = MarkInfo { created_ns, ..origin };
            Ok((Edits::from([(key(to), Some(encode_mark(&info)?))]), info))
        })
    }

    fn open(&self, name: &MarkName, create: Option<&MarkInfo>) -> Result<Volume, MarkError> {
        Self::simple(name)?;
        if create.is_none() {
            self.inspect(name)?;
        }
        let cell = MarkCell {
            space: self.clone(),
            name: name.clone(),
            create: create.map(|i| MarkInfo::new(i.salt, i.created_ns)),
        };
        let store = MarkStore(self.vol.store.clone());
        Ok(Volume::with_modes(Arc::new(cell), Arc::new(store), self.vol.modes.clone()))
    }
}

/// A mark's cell (MARK-6): reads the mark's value from the space; a compare-and-swap is one
/// space edit that replaces the mark's value if it still equals `expected`.
pub struct MarkCell {
    space: VolumeSpace,
    name: MarkName,
    create: Option<MarkInfo>,
}

impl std::fmt::Debug for MarkCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MarkCell({})", self.name)
    }
}

fn to_cell_error(e: MarkError) -> CellError {
    use std::io::{Error, ErrorKind};
    match e {
        MarkError::Volume(crate::storage::volume::VolumeError::Cell(c)) => c,
        MarkError::NotFound { .. } => CellError::Io(Error::new(ErrorKind::NotFound, e.to_string())),
        e if e.is_corruption() => CellError::Corrupt(e.to_string()),
        e => CellError::Io(Error::other(e.to_string())),
    }
}

impl MarkCell {
    fn current(&self, root: Option<&Ref>) -> Result<Option<MarkInfo>, MarkError> {
        match self.space.get(root, &self.name)? {
            Some(info) => Ok(Some(info)),
            None if self.create.is_some() => Ok(None),
            None => Err(MarkError::NotFound { name: self.name.to_string() }),
        }
    }
}

impl Cell for MarkCell {
    fn max_size_bytes(&self) -> usize {
        MARK_VALUE_SIZE_MAX_BYTES
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        let root = self.space.map_root().map_err(to_cell_error)?;
        Ok(self.current(root.as_ref()).map_err(to_cell_error)?.map(|i| i.value).unwrap_or_default())
    }

    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), MARK_VALUE_SIZE_MAX_BYTES)?;
        check_size(expected.len(), MARK_VALUE_SIZE_MAX_BYTES)?;
        self.space
            .update(|_, root| {
                let info = self.current(root)?;
                let current = info.as_ref().map(|i| i.value.clone()).unwrap_or_default();
                if current != expected {
                    return Ok((Edits::new(), CasOutcome { swapped: false, current }));
                }
                let base = info.or_else(|| self.create.clone());
                let Some(base) = base else {
                    return Err(MarkError::NotFound { name: self.name.to_string() });
                };
                let record = encode_mark(&MarkInfo { value: new.to_vec(), ..base })?;
                let edits = Edits::from([(key(&self.name), Some(record))]);
                Ok((edits, CasOutcome { swapped: true, current: new.to_vec() }))
            })
            .map_err(to_cell_error)
    }
}

/// The space's store as a mark volume sees it: everything but delete (MARK-6). A cleanup of one
/// mark would delete every other mark's blobs; this makes it fail before its first delete.
struct MarkStore(Arc<dyn Store>);

impl Store for MarkStore {
    fn max_blob_size_bytes(&self) -> usize {
        self.0.max_blob_size_bytes()
    }
    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        self.0.post(data)
    }
    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        self.0.get(hash)
    }
    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.0.exists(hash)
    }
    fn delete(&self, _hash: &Hash) -> Result<(), StoreError> {
        Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "a mark's blobs are deleted only by a cleanup of its whole space (MARK-6)",
        )))
    }
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        self.0.list(range, limit)
    }
    fn post_deferred(&self, data: &[u8]) -> Result<Hash, StoreError> {
        self.0.post_deferred(data)
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.0.sync()
    }
}
