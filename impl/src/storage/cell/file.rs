//! `FileCell`: a cell in one file, durable across power loss and atomic across processes.
//!
//! Owns the on-disk format of a file cell and the protocol that updates it (`specs/cells.md`,
//! "FileCell file layout"). Enforces CELL-1 (linearizable: every operation holds an advisory
//! lock on a sibling `<name>.lock` file — shared for `read`, exclusive for the whole
//! read-compare-write of `cas`), CELL-2 (a lost swap returns the current value), CELL-3 (an
//! oversized value is refused before any file is touched) and CELL-4 (a swap writes a temp file,
//! fsyncs it, renames it over the cell file and fsyncs the directory, so after a crash the cell
//! holds either the old or the new value, never a mix).
//!
//! A full file system (or any other I/O failure) is [`CellError::Io`] naming the file
//! (`crate::storage::fsio`); a swap that fails removes its temp file and leaves the cell file,
//! and so the old value, untouched.
//!
//! What it must never do: return bytes that failed the frame's CRC32C or framing checks (they
//! are [`CellError::Corrupt`]); write the cell file in place; touch the cell file without
//! holding the lock file's lock.

use super::{CELL_SIZE_MAX_BYTES_DEFAULT, CasOutcome, Cell, CellError, check_size};
use crate::storage::fsio::on;
use crate::storage::fsys::{self, FileLock, FileSystem, WriteMode};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The first four bytes of every cell file.
pub const FILE_CELL_MAGIC: [u8; 4] = *b"CLCF";
/// The only format version this code writes and reads.
pub const FILE_CELL_VERSION: u8 = 1;
/// Bytes of the trailing CRC32C.
const CRC_SIZE_BYTES: usize = 4;
/// Largest postcard varint for a `usize` length prefix (a `u64` takes at most 10 bytes).
const LEN_PREFIX_SIZE_MAX_BYTES: usize = 10;
/// Bytes a frame adds to its value at most: magic, version, length prefix, CRC.
pub const FILE_CELL_FRAME_OVERHEAD_MAX_BYTES: usize =
    FILE_CELL_MAGIC.len() + 1 + LEN_PREFIX_SIZE_MAX_BYTES + CRC_SIZE_BYTES;
/// Smallest possible frame: an empty value (1-byte length prefix).
const FRAME_SIZE_MIN_BYTES: usize = FILE_CELL_MAGIC.len() + 1 + 1 + CRC_SIZE_BYTES;

const _: () = assert!(FRAME_SIZE_MIN_BYTES == 10);
const _: () = assert!(FILE_CELL_FRAME_OVERHEAD_MAX_BYTES == 19);

/// The body of a cell file; postcard encodes it as magic(4) ‖ version(1) ‖ varint len ‖ value.
#[derive(Serialize, Deserialize)]
struct Frame<'a> {
    magic: [u8; 4],
    version: u8,
    #[serde(borrow)]
    value: &'a [u8],
}

/// Encodes `value` as a complete cell file: the postcard frame followed by its CRC32C (LE).
pub fn encode_file_cell(value: &[u8]) -> Result<Vec<u8>, CellError> {
    let frame = Frame { magic: FILE_CELL_MAGIC, version: FILE_CELL_VERSION, value };
    let mut out = postcard::to_stdvec(&frame)
        .map_err(|e| CellError::Corrupt(format!("cannot encode cell frame: {e}")))?;
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert!(out.len() <= value.len() + FILE_CELL_FRAME_OVERHEAD_MAX_BYTES);
    Ok(out)
}

/// Decodes a complete cell file. An empty file is never valid (an *absent* file is the empty
/// value; the caller handles that). Any framing, CRC or version error is `Corrupt` (CELL-4).
pub fn decode_file_cell(bytes: &[u8]) -> Result<Vec<u8>, CellError> {
    if bytes.len() < FRAME_SIZE_MIN_BYTES {
        return Err(CellError::Corrupt(format!(
            "cell file is {} bytes, shorter than the {FRAME_SIZE_MIN_BYTES}-byte minimum frame",
            bytes.len()
        )));
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - CRC_SIZE_BYTES);
    let mut crc_le = [0u8; CRC_SIZE_BYTES];
    crc_le.copy_from_slice(crc_bytes);
    let crc_stored = u32::from_le_bytes(crc_le);
    let crc_actual = crc32c::crc32c(body);
    if crc_stored != crc_actual && !crate::bugs::active("cell:file-skip-crc") {
        return Err(CellError::Corrupt(format!(
            "cell file CRC32C mismatch: stored {crc_stored:#010x}, computed {crc_actual:#010x}"
        )));
    }
    let (frame, rest) = postcard::take_from_bytes::<Frame<'_>>(body)
        .map_err(|e| CellError::Corrupt(format!("cell file frame does not decode: {e}")))?;
    if frame.magic != FILE_CELL_MAGIC {
        return Err(CellError::Corrupt(format!("cell file has bad magic {:02x?}", frame.magic)));
    }
    if frame.version != FILE_CELL_VERSION {
        return Err(CellError::Corrupt(format!("cell file has unknown version {}", frame.version)));
    }
    if !rest.is_empty() {
        return Err(CellError::Corrupt(format!(
            "cell file has {} trailing bytes after its frame",
            rest.len()
        )));
    }
    Ok(frame.value.to_vec())
}

/// A cell stored in a file (CELL-1..4).
///
/// Every operation opens the sibling lock file afresh, so a `FileCell` shared between threads
/// and several `FileCell`s (in this or other processes) on one path exclude each other alike:
/// advisory locks belong to an open file description, not to a process.
#[derive(Debug)]
pub struct FileCell {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    lock_path: PathBuf,
    tmp_path: PathBuf,
    max_size_bytes: usize,
}

impl FileCell {
    /// Opens the cell at `path` with the default maximum size. The directory must exist; the
    /// lock file is created if absent; an absent cell file reads as the empty value.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, CellError> {
        Self::with_max_size(path, CELL_SIZE_MAX_BYTES_DEFAULT)
    }

    /// Like [`FileCell::open`], accepting values up to `max_size_bytes` (CELL-3). Every opener
    /// of one cell must use the same maximum: a file holding a larger value reads as `Corrupt`.
    pub fn with_max_size(
        path: impl Into<PathBuf>,
        max_size_bytes: usize,
    ) -> Result<Self, CellError> {
        Self::open_in(fsys::os(), path, max_size_bytes)
    }

    /// Like [`FileCell::with_max_size`], on the file system `fs` (the simulator's, in its
    /// `files` profile).
    pub fn open_in(
        fs: Arc<dyn FileSystem>,
        path: impl Into<PathBuf>,
        max_size_bytes: usize,
    ) -> Result<Self, CellError> {
        let path = path.into();
        let name = path.file_name().ok_or_else(|| {
            CellError::Io(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("cell path {} has no file name", path.display()),
            ))
        })?;
        let sibling = |suffix: &str| {
            let mut n = name.to_os_string();
            n.push(suffix);
            path.with_file_name(n)
        };
        let cell = Self {
            fs,
            lock_path: sibling(".lock"),
            tmp_path: sibling(".tmp"),
            path,
            max_size_bytes,
        };
        // Create the lock file now so a missing directory or a permission problem shows up here.
        drop(cell.open_lock_file()?);
        Ok(cell)
    }

    /// The cell file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_lock_file(&self) -> Result<Box<dyn FileLock>, CellError> {
        Ok(self.fs.open_lock(&self.lock_path).map_err(on(&self.lock_path))?)
    }

    /// Reads and decodes the cell file. Caller holds the lock (shared or exclusive).
    fn read_locked(&self) -> Result<Vec<u8>, CellError> {
        let file_size_max_bytes =
            self.max_size_bytes.saturating_add(FILE_CELL_FRAME_OVERHEAD_MAX_BYTES);
        let limit = u64::try_from(file_size_max_bytes).unwrap_or(u64::MAX).saturating_add(1);
        let bytes = match self.fs.read(&self.path, limit) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(on(&self.path)(e).into()),
        };
        if bytes.len() > file_size_max_bytes {
            return Err(CellError::Corrupt(format!(
                "cell file is over {file_size_max_bytes} bytes, the largest frame of a cell with a \
                 {}-byte maximum",
                self.max_size_bytes
            )));
        }
        let value = decode_file_cell(&bytes)?;
        if value.len() > self.max_size_bytes {
            return Err(CellError::Corrupt(format!(
                "cell file holds {} bytes, over the cell's {}-byte maximum",
                value.len(),
                self.max_size_bytes
            )));
        }
        Ok(value)
    }

    /// Replaces the cell file with `value` durably (CELL-4). Caller holds the exclusive lock,
    /// which also makes the fixed temp name safe: no one else writes it meanwhile.
    /// A failed write (a full file system) removes the temp file: the cell file was never
    /// touched, so the cell keeps its old value and the same swap succeeds once there is room.
    fn write_locked(&self, value: &[u8]) -> Result<(), CellError> {
        let bytes = encode_file_cell(value)?;
        if crate::bugs::active("cell:file-temp-unsynced") {
            // The temp file's bytes are not durable when its name replaces the cell's.
            let tmp = &self.tmp_path;
            let mode = WriteMode { create_new: false, sync: false };
            self.fs.write(tmp, &bytes, mode).map_err(on(tmp))?;
            self.fs.rename(tmp, &self.path).map_err(on(&self.path))?;
            let dir = fsys::parent_dir(&self.path);
            return Ok(self.fs.sync_dir(dir).map_err(on(dir))?);
        }
        // CELL-4: temp file, fsync, rename, fsync the directory.
        fsys::replace_durably(self.fs.as_ref(), &self.tmp_path, &self.path, &bytes)?;
        Ok(())
    }
}

impl Cell for FileCell {
    fn max_size_bytes(&self) -> usize {
        self.max_size_bytes
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        let lock = self.open_lock_file()?;
        lock.lock_shared().map_err(on(&self.lock_path))?; // CELL-1: no writer meanwhile.
        self.read_locked()
        // The lock is released when `lock` is closed.
    }

    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), self.max_size_bytes)?; // CELL-3: before any file is touched.
        let lock = self.open_lock_file()?;
        if !crate::bugs::active("cell:file-cas-unlocked") {
            // CELL-1, CELL-4: read-compare-write is atomic across processes.
            lock.lock().map_err(on(&self.lock_path))?;
        }
        let current = self.read_locked()?;
        if current != expected {
            return Ok(CasOutcome { swapped: false, current }); // CELL-2
        }
        self.write_locked(new)?;
        Ok(CasOutcome { swapped: true, current: new.to_vec() })
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
    fn frame_layout_is_byte_exact() {
        // specs/cells.md, "FileCell file layout".
        let bytes = encode_file_cell(b"hi").unwrap();
        assert_eq!(&bytes[0..4], b"CLCF");
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 2);
        assert_eq!(&bytes[6..8], b"hi");
        assert_eq!(bytes[8..12], crc32c::crc32c(&bytes[..8]).to_le_bytes());
        assert_eq!(bytes.len(), 12);
        assert_eq!(decode_file_cell(&bytes).unwrap(), b"hi");
        assert_eq!(encode_file_cell(b"").unwrap().len(), FRAME_SIZE_MIN_BYTES);
    }

    #[test]
    fn trailing_bytes_and_short_files_are_corrupt() {
        let mut bytes = encode_file_cell(b"x").unwrap();
        assert!(matches!(decode_file_cell(&bytes[..bytes.len() - 1]), Err(CellError::Corrupt(_))));
        bytes.insert(bytes.len() - CRC_SIZE_BYTES, 0);
        let n = bytes.len() - CRC_SIZE_BYTES;
        let crc = crc32c::crc32c(&bytes[..n]).to_le_bytes();
        bytes[n..].copy_from_slice(&crc);
        assert!(matches!(decode_file_cell(&bytes), Err(CellError::Corrupt(_))));
        assert!(matches!(decode_file_cell(b""), Err(CellError::Corrupt(_))));
    }

    #[test]
    fn the_empty_value_frame_is_exactly_the_minimum_and_decodes() {
        // The shortest valid file is the empty value's: one byte shorter is corrupt, and the
        // minimum itself must decode (a `<` that became `<=` would refuse it).
        let bytes = encode_file_cell(b"").unwrap();
        assert_eq!(bytes.len(), FRAME_SIZE_MIN_BYTES);
        assert_eq!(decode_file_cell(&bytes).unwrap(), b"");
        assert!(matches!(decode_file_cell(&bytes[..bytes.len() - 1]), Err(CellError::Corrupt(_))));
    }

    #[test]
    fn a_flipped_byte_with_a_decodable_frame_is_caught_by_the_crc() {
        // A changed value byte still decodes as a frame: only the CRC can refuse it (CELL-4).
        let mut bytes = encode_file_cell(b"hello").unwrap();
        bytes[6] ^= 0x01;
        let err = decode_file_cell(&bytes).unwrap_err();
        assert!(matches!(&err, CellError::Corrupt(m) if m.contains("CRC32C")), "{err:?}");
    }

    #[test]
    fn an_unreadable_cell_file_is_an_error_not_the_empty_value() {
        // Only an absent file is the empty value; any other read error (here a directory where
        // the cell file should be) must be reported, never read as "empty".
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell");
        let cell = FileCell::open(&path).unwrap();
        assert_eq!(cell.read().unwrap(), b"");
        std::fs::create_dir(&path).unwrap();
        assert!(cell.read().is_err(), "a directory in the cell file's place read as a value");
        assert!(cell.cas(b"", b"x").is_err(), "a swap over an unreadable cell file succeeded");
    }
}
