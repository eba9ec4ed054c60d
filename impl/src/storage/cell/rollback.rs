//! Sealed-cell rollback detection (`specs/cells.md` §4.4, CELL-6): the counted sealed-value
//! format (version 2: a monotonic counter sealed with the value, under its tag) and the
//! reader's memory of the highest counter it has seen ([`Seen`]), kept in a file beside a local
//! cell (`NAME.seen`).
//!
//! Why a counter under the tag: AEAD proves a value was sealed with the key, not that it is the
//! newest. Every `SealedCell` write seals `counter + 1` with the new value; a reader that has seen
//! counter `n` refuses a value with a smaller counter (or an empty cell) with
//! [`CellError::Rollback`]. Whoever can write the inner cell can still put back the newest
//! value, or a value a reader never saw; nothing in the cell alone can tell.
//!
//! Never: accept a counter below the one seen; lower the seen counter (a lost race between two
//! processes updating one `.seen` file can only leave it lower than it could be, which weakens
//! detection and never raises a false alarm); read a version-1 value as anything but counter 0.

use super::sealed::{SEAL_AAD_PURPOSE, SEAL_NONCE_SIZE_BYTES, SEAL_OVERHEAD_BYTES, open_sealed};
use super::{CellError, check_size};
use crate::storage::fsio::on;
use crate::storage::fsys::{self, FileSystem};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counted sealed-value format's version byte (version 1 has no counter).
pub const SEAL_VERSION_COUNTED: u8 = 2;
/// Bytes of the counter, sealed in front of the plaintext (u64 little-endian).
pub const SEAL_COUNTER_BYTES: usize = 8;
/// Bytes a counted sealed value adds to its plaintext: version, nonce, counter, tag.
pub const SEAL_COUNTED_OVERHEAD_BYTES: usize = SEAL_OVERHEAD_BYTES + SEAL_COUNTER_BYTES;
/// Largest `.seen` file read, bytes (a decimal u64 and a newline).
const SEEN_FILE_SIZE_MAX_BYTES: u64 = 32;

const _: () = assert!(SEAL_COUNTED_OVERHEAD_BYTES == 49);

fn aad_counted() -> Vec<u8> {
    let mut a = SEAL_AAD_PURPOSE.to_vec();
    a.push(SEAL_VERSION_COUNTED);
    a
}

/// Seals `plaintext` with `counter` under `key` and `nonce`:
/// `02 ‖ nonce ‖ XChaCha20-Poly1305(counter LE ‖ plaintext) ‖ tag` (CELL-5, CELL-6). Pure, for
/// tests and vectors; `SealedCell` calls it with a fresh random nonce.
///
/// # Errors
/// The plaintext is too large to seal.
pub fn seal_counted_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; SEAL_NONCE_SIZE_BYTES],
    counter: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, CellError> {
    check_size(plaintext.len(), super::SEAL_PLAINTEXT_SIZE_MAX_BYTES)?;
    let mut msg = Vec::with_capacity(SEAL_COUNTER_BYTES + plaintext.len());
    msg.extend_from_slice(&counter.to_le_bytes());
    msg.extend_from_slice(plaintext);
    let aead = XChaCha20Poly1305::new(key.into());
    let ct = aead
        .encrypt(XNonce::from_slice(nonce), Payload { msg: &msg, aad: &aad_counted() })
        .map_err(|_| CellError::TooLarge {
            size_bytes: plaintext.len(),
            max_bytes: super::SEAL_PLAINTEXT_SIZE_MAX_BYTES,
        })?;
    let mut out = Vec::with_capacity(1 + SEAL_NONCE_SIZE_BYTES + ct.len());
    out.push(SEAL_VERSION_COUNTED);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    debug_assert_eq!(out.len(), plaintext.len() + SEAL_COUNTED_OVERHEAD_BYTES);
    Ok(out)
}

/// Opens a sealed cell's raw contents of either version: `(counter, plaintext)`. Empty `raw`
/// (never written) and version 1 have counter 0.
///
/// # Errors
/// [`CellError::Corrupt`] for anything that is not an authentic sealed value under `key`.
pub fn open_counted(key: &[u8; 32], raw: &[u8]) -> Result<(u64, Vec<u8>), CellError> {
    match raw.first() {
        None => Ok((0, Vec::new())),
        Some(&SEAL_VERSION_COUNTED) => open_v2(key, raw),
        Some(_) => open_sealed(key, raw).map(|p| (0, p)),
    }
}

fn open_v2(key: &[u8; 32], raw: &[u8]) -> Result<(u64, Vec<u8>), CellError> {
    if raw.len() < SEAL_COUNTED_OVERHEAD_BYTES {
        return Err(CellError::Corrupt(format!(
            "counted sealed cell is {} bytes, shorter than the {SEAL_COUNTED_OVERHEAD_BYTES}-byte \
             minimum",
            raw.len()
        )));
    }
    let (nonce, ct) = raw.get(1..).unwrap_or_default().split_at(SEAL_NONCE_SIZE_BYTES);
    let aead = XChaCha20Poly1305::new(key.into());
    let msg = aead
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad_counted() })
        .map_err(|_| CellError::Corrupt("sealed cell failed authentication".to_owned()))?;
    let (counter, plaintext) = msg
        .split_first_chunk::<SEAL_COUNTER_BYTES>()
        .ok_or_else(|| CellError::Corrupt("sealed cell has no counter".to_owned()))?;
    Ok((u64::from_le_bytes(*counter), plaintext.to_vec()))
}

/// A reader's memory of the highest counter it has seen (CELL-6), in memory and, for a local
/// cell, in a file beside it.
#[derive(Debug)]
pub struct Seen {
    value: AtomicU64,
    file: Option<(Arc<dyn FileSystem>, PathBuf)>,
}

impl Seen {
    /// Remembered for this process only.
    pub fn in_memory() -> Self {
        Self { value: AtomicU64::new(0), file: None }
    }

    /// Remembered in `path` (a decimal counter and a newline; absent means 0).
    ///
    /// # Errors
    /// The file cannot be read, or does not hold a counter ([`CellError::Corrupt`]).
    pub fn file(path: impl Into<PathBuf>) -> Result<Self, CellError> {
        Self::file_in(fsys::os(), path)
    }

    /// Like [`Seen::file`], on the file system `fs` (the simulator's, in its `files` profile).
    ///
    /// # Errors
    /// As [`Seen::file`].
    pub fn file_in(fs: Arc<dyn FileSystem>, path: impl Into<PathBuf>) -> Result<Self, CellError> {
        let path = path.into();
        let value = read_seen(fs.as_ref(), &path)?;
        Ok(Self { value: AtomicU64::new(value), file: Some((fs, path)) })
    }

    /// The highest counter seen.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Checks a counter just read and remembers it if it is the highest yet.
    ///
    /// # Errors
    /// [`CellError::Rollback`] if `found` is below the counter seen; I/O errors persisting it.
    pub fn observe(&self, found: u64) -> Result<(), CellError> {
        let seen = self.value.fetch_max(found, Ordering::SeqCst);
        if found < seen && !crate::bugs::active("cell:sealed-ignore-rollback") {
            return Err(CellError::Rollback { seen, found }); // CELL-6
        }
        match &self.file {
            Some((fs, p)) if found > seen => write_seen(fs.as_ref(), p, found),
            _ => Ok(()),
        }
    }
}

fn read_seen(fs: &dyn FileSystem, path: &Path) -> Result<u64, CellError> {
    let bytes = match fs.read(path, SEEN_FILE_SIZE_MAX_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(on(path)(e).into()),
    };
    std::str::from_utf8(&bytes)
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| CellError::Corrupt(format!("{} does not hold a counter", path.display())))
}

/// Replaces the file atomically and durably (temp file, fsync, rename, fsync the directory),
/// keeping the larger counter if another process got there first.
fn write_seen(fs: &dyn FileSystem, path: &Path, value: u64) -> Result<(), CellError> {
    let value = value.max(read_seen(fs, path).unwrap_or(0));
    let tmp = path.with_extension(format!("seen.tmp-{}", std::process::id()));
    fsys::replace_durably(fs, &tmp, path, format!("{value}\n").as_bytes())?;
    Ok(())
}
