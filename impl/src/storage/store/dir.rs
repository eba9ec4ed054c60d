//! `DirStore`: a content-addressed store in a directory, durable across power loss.
//!
//! Owns the on-disk layout of a directory store:
//!
//! ```text
//! ROOT/
//!   00/ … ff/                       fan-out: one directory per first hash byte (lower-case hex)
//!     <64 lower-case hex>           a blob, named by its full BLAKE3-256 hash
//!     .tmp-<pid>-<counter>          a blob being written (never listed, never read)
//! ```
//!
//! Enforces STORE-2 (every `get` verifies the hash, so a flipped bit on disk is
//! [`StoreError::Corrupt`], never data), STORE-3 (blob size limit), STORE-4 (`list` ascending)
//! and STORE-5 (a posted blob survives power loss: temp file, fsync, rename, fsync directory).
//!
//! Concurrency: any number of threads and processes may post, get and delete at once. Two
//! writers of the same blob each write their own temp file and rename it over the final name;
//! `rename` is atomic and both files hold identical bytes, so whichever wins, readers see a
//! complete blob. Readers never see a partial blob because blobs only appear by `rename`.
//!
//! A full file system (or any other I/O failure) is [`StoreError::Io`] naming the file or
//! directory (`crate::storage::fsio`); a `post` that fails removes its temp file, so the store
//! holds exactly the blobs it held before and the same `post` succeeds once space is freed.
//!
//! What it must never do: return bytes that do not hash to the name asked for, expose a temp
//! file through `get` or `list`, or read the whole store to answer a small `list`.

use super::deferred::PendingBlobs;
use super::{HashRange, Store, StoreError, check_blob_size, in_range, verify_blob};
use crate::Hash;
use crate::storage::fsio::on;
use crate::storage::fsys::{self, FileSystem, WriteMode};
use crate::storage::hash::HASH_SIZE_BYTES;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of temp file names; a blob name is 64 hex characters, so the two never collide.
const TEMP_PREFIX: &str = ".tmp-";
/// Length of a blob file name: the full hash in hex.
const BLOB_NAME_LEN_CHARS: usize = HASH_SIZE_BYTES * 2;
/// How many temp names `post` tries before giving up (a stale temp file left by a crashed
/// process with a reused pid can occupy a name; the next counter value is then tried).
const TEMP_NAME_ATTEMPTS_MAX: u32 = 64;

/// Process-wide counter that makes temp file names unique without randomness: together with
/// the pid it distinguishes every write of every thread of every live process (threads share
/// the counter, so a thread id would add nothing).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A store in a directory with 256 fan-out subdirectories (see the module docs for the layout).
#[derive(Debug)]
pub struct DirStore {
    fs: Arc<dyn FileSystem>,
    root: PathBuf,
    max_blob_size_bytes: usize,
    /// Deferred posts not yet synced (STORE-6).
    pending: PendingBlobs,
}

impl DirStore {
    /// Opens (creating if absent) the store rooted at `root`, with the default 4 MiB blob limit.
    ///
    /// Fails with [`StoreError::Io`] if `root` cannot be created or is not a directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_in(fsys::os(), root)
    }

    /// Like [`DirStore::open`], on the file system `fs` (the simulator's, in its `files`
    /// profile).
    pub fn open_in(fs: Arc<dyn FileSystem>, root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        // STORE-5: the root's entry must survive a power cut with the blobs renamed into it.
        fsys::create_dir_all_durably(fs.as_ref(), &root)?;
        if !fs.metadata(&root).map_err(on(&root))?.is_dir {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("store root {} is not a directory", root.display()),
            )));
        }
        Ok(Self {
            pending: PendingBlobs::new(Arc::clone(&fs)),
            fs,
            root,
            max_blob_size_bytes: super::BLOB_SIZE_MAX_BYTES_DEFAULT,
        })
    }

    /// Sets the largest blob `post` accepts (default [`super::BLOB_SIZE_MAX_BYTES_DEFAULT`],
    /// 4 MiB). The limit is not recorded on disk: a store reopened with a smaller limit still
    /// reads its larger blobs, it only refuses to post new ones (STORE-3).
    #[must_use]
    pub fn with_max_blob_size(mut self, max_blob_size_bytes: usize) -> Self {
        self.max_blob_size_bytes = max_blob_size_bytes;
        self
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds (or would hold) the blob `hash`: `ROOT/<first byte>/<hash>`.
    pub fn blob_path(&self, hash: &Hash) -> PathBuf {
        self.fanout_dir(hash.0[0]).join(hash.to_hex())
    }

    fn fanout_dir(&self, first_byte: u8) -> PathBuf {
        self.root.join(format!("{first_byte:02x}"))
    }

    /// Creates the fan-out directory if needed; a newly created one is made durable by syncing
    /// the root, so the blob renamed into it cannot vanish with its parent (STORE-5).
    fn ensure_fanout_dir(&self, dir: &Path) -> Result<(), StoreError> {
        match self.fs.create_dir(dir) {
            Ok(()) => self.fs.sync_dir(&self.root).map_err(|e| on(&self.root)(e).into()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(on(dir)(e).into()),
        }
    }

    /// Creates a fresh temp file in `dir` with a name no live writer uses.
    /// Writes `data` to a fresh temp file in `dir` (fsynced when `sync`) under a name no live
    /// writer uses, and returns its path; the temp file is removed if any step fails.
    fn write_temp(&self, dir: &Path, data: &[u8], sync: bool) -> Result<PathBuf, StoreError> {
        let pid = std::process::id();
        for _ in 0..TEMP_NAME_ATTEMPTS_MAX {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{TEMP_PREFIX}{pid}-{n}"));
            match self.fs.write(&path, data, WriteMode { create_new: true, sync }) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    // Best effort (unlinking needs no space): the temp file is invisible to
                    // readers either way, and gone before the next operation.
                    let _ = self.fs.remove_file(&path);
                    return Err(on(&path)(e).into());
                }
            }
        }
        Err(StoreError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "no free temp file name in {} after {TEMP_NAME_ATTEMPTS_MAX} tries",
                dir.display()
            ),
        )))
    }

    /// Writes `data` to a temp file, fsyncs it, renames it to `final_path` and fsyncs the
    /// directory (STORE-5). The temp file is removed if any step fails.
    fn write_durably(&self, dir: &Path, final_path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let temp_path = self.write_temp(dir, data, true)?;
        if let Err(e) = self.fs.rename(&temp_path, final_path) {
            let _ = self.fs.remove_file(&temp_path);
            return Err(on(final_path)(e).into());
        }
        if crate::bugs::active("store:dir-entry-unsynced") {
            return Ok(()); // the blob's name is not durable yet: a power cut may lose it
        }
        self.fs.sync_dir(dir).map_err(|e| on(dir)(e).into())
    }

    /// Whether a complete copy of a `size_bytes`-long blob already sits at `path`. A file of the
    /// wrong length (truncated by a crash of a filesystem without ordered metadata, or damaged)
    /// is overwritten by the post; a same-length corrupt file is caught by `get` (STORE-2).
    fn present_with_len(&self, path: &Path, size_bytes: usize) -> Result<bool, StoreError> {
        match self.fs.metadata(path) {
            Ok(m) => Ok(m.is_file && m.len == size_bytes as u64),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(on(path)(e).into()),
        }
    }

    /// The blob hashes in fan-out directory `first_byte` that lie in `range`, ascending.
    /// Temp files and anything that is not a canonical blob name of this directory are skipped.
    fn list_fanout_dir(&self, first_byte: u8, range: &HashRange) -> Result<Vec<Hash>, StoreError> {
        let dir = self.fanout_dir(first_byte);
        let entries = match self.fs.read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(on(&dir)(e).into()),
        };
        let mut hashes = Vec::new();
        for name in entries {
            let Some(hash) = name.to_str().and_then(parse_blob_name) else { continue };
            if hash.0[0] == first_byte && in_range(&hash, range) {
                hashes.push(hash);
            }
        }
        hashes.sort_unstable();
        Ok(hashes)
    }
}

/// Parses a canonical blob file name: exactly 64 lower-case hex characters. Upper-case names
/// are refused so one hash has exactly one file name.
fn parse_blob_name(name: &str) -> Option<Hash> {
    let canonical = name.len() == BLOB_NAME_LEN_CHARS
        && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    Hash::from_hex(name)
}

/// The first fan-out byte a range can touch.
fn first_fanout_byte(range: &HashRange) -> u8 {
    match range.0 {
        Bound::Included(h) | Bound::Excluded(h) => h.0[0],
        Bound::Unbounded => 0,
    }
}

/// The last fan-out byte a range can touch.
fn last_fanout_byte(range: &HashRange) -> u8 {
    match range.1 {
        Bound::Included(h) | Bound::Excluded(h) => h.0[0],
        Bound::Unbounded => u8::MAX,
    }
}

impl Store for DirStore {
    fn max_blob_size_bytes(&self) -> usize {
        self.max_blob_size_bytes
    }

    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        check_blob_size(data.len(), self.max_blob_size_bytes)?; // STORE-3
        let hash = Hash::of(data);
        let final_path = self.blob_path(&hash);
        if self.present_with_len(&final_path, data.len())? {
            return Ok(hash); // STORE-1: posting twice is harmless
        }
        let dir = self.fanout_dir(hash.0[0]);
        self.ensure_fanout_dir(&dir)?;
        self.write_durably(&dir, &final_path, data)?; // STORE-5
        Ok(hash)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        let path = self.pending.temp_of(hash).unwrap_or_else(|| self.blob_path(hash));
        let data = match self.fs.read(&path, u64::MAX) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(*hash));
            }
            Err(e) => return Err(on(&path)(e).into()),
        };
        if crate::bugs::active("store:dir-skip-verify") {
            return Ok(data);
        }
        verify_blob(hash, data) // STORE-2
    }

    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        if self.pending.temp_of(hash).is_some() {
            return Ok(true);
        }
        let path = self.blob_path(hash);
        match self.fs.metadata(&path) {
            Ok(m) => Ok(m.is_file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(on(&path)(e).into()),
        }
    }

    /// Deletes without syncing the directory: a delete undone by power loss only leaves an
    /// unreachable blob behind, which the next cleanup removes again.
    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        self.pending.remove(hash);
        let path = self.blob_path(hash);
        match self.fs.remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(on(&path)(e).into()),
        }
    }

    /// Walks only the fan-out directories the range can touch, in order, and stops as soon as
    /// `limit` hashes are found, so paging reads about one directory per page (STORE-4).
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let (first, last) = (first_fanout_byte(&range), last_fanout_byte(&range));
        for first_byte in first..=last {
            let hashes = self.list_fanout_dir(first_byte, &range)?;
            let room = limit - out.len();
            out.extend(hashes.into_iter().take(room));
            if out.len() == limit {
                break;
            }
        }
        debug_assert!(out.windows(2).all(|w| w[0] < w[1]), "STORE-4: list is strictly ascending");
        Ok(out)
    }

    /// STORE-6: the blob goes to a temp file, unsynced; `get` and `exists` of this handle find
    /// it there; its name appears only in `sync`, after a file-system flush.
    fn post_deferred(&self, data: &[u8]) -> Result<Hash, StoreError> {
        check_blob_size(data.len(), self.max_blob_size_bytes)?; // STORE-3
        let hash = Hash::of(data);
        let final_path = self.blob_path(&hash);
        if self.pending.temp_of(&hash).is_some()
            || self.present_with_len(&final_path, data.len())?
        {
            return Ok(hash); // STORE-1
        }
        let dir = self.fanout_dir(hash.0[0]);
        self.ensure_fanout_dir(&dir)?;
        let temp_path = self.write_temp(&dir, data, false)?;
        if crate::bugs::active("store:deferred-named-early") {
            self.fs.rename(&temp_path, &final_path).map_err(on(&final_path))?;
            return Ok(hash);
        }
        self.pending.add(hash, temp_path, final_path);
        Ok(hash)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.pending.sync(&self.root)
    }
}

#[cfg(all(test, not(loom)))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests report failure by panicking"
)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_are_canonical_lower_case_hex() {
        let h = Hash::of(b"x");
        assert_eq!(parse_blob_name(&h.to_hex()), Some(h));
        assert_eq!(parse_blob_name(&h.to_hex().to_uppercase()), None);
        assert_eq!(parse_blob_name(&format!("{TEMP_PREFIX}1-2")), None);
        assert_eq!(parse_blob_name(&h.to_hex()[1..]), None);
    }

    #[test]
    fn fanout_bounds_follow_the_range() {
        let lo = Hash([0x12; 32]);
        let hi = Hash([0xa0; 32]);
        let range = (Bound::Excluded(lo), Bound::Included(hi));
        assert_eq!((first_fanout_byte(&range), last_fanout_byte(&range)), (0x12, 0xa0));
        assert_eq!(
            (
                first_fanout_byte(&super::super::ALL_HASHES),
                last_fanout_byte(&super::super::ALL_HASHES)
            ),
            (0, 0xff)
        );
    }
}
