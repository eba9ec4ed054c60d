//! Data blob encoding (`specs/fs.md` FS-27): what a version-2 extent's blob holds.
//!
//! The plaintext of a data blob an extent of version 2 points into is `tag:u8 ‖ body`:
//! tag 0 — the body is the bytes; tag 1 — the body is one zstd frame whose content is the bytes
//! (1 ..= [`EXTENT_BLOB_SIZE_MAX_BYTES`] of them, the frame header stating that size). The
//! encoding sits inside the encrypted plaintext, so it is authenticated with the blob (REF-4):
//! a bad frame can only come from a faulty writer, and is reported as corruption (FS-14).
//!
//! Writers choose: this one stores a zstd frame (level [`ZSTD_LEVEL`]) when it is at least
//! 1/16 smaller than the bytes, else the bytes. Version-1 extents (no encoding) still read.
//!
//! Decoded blobs are kept in a small cache ([`BlobCache`]) because a pack of small files
//! (FS-8) is read once per file it holds.

use super::record::Extent;
use super::{EXTENT_BLOB_SIZE_MAX_BYTES, Fs, FsError, FsPath, corrupt};
use crate::Ref;
use crate::storage::refs::{self, RefError};
use std::sync::Arc;

/// Tag of a blob whose body is the bytes.
pub const TAG_PLAIN: u8 = 0;
/// Tag of a blob whose body is one zstd frame.
pub const TAG_ZSTD: u8 = 1;
/// The compression level this writer uses (zstd's default).
pub const ZSTD_LEVEL: i32 = 3;
/// Blobs of fewer bytes are stored plain: a frame's own header would eat the gain.
const COMPRESS_MIN_BYTES: usize = 64;
/// Decoded blobs kept per [`BlobCache`] (each at most 2 MiB).
const CACHE_BLOBS_MAX: usize = 8;

/// Why a blob's plaintext is not a valid encoding (FS-27).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No tag byte.
    #[error("FS-27: an encoded blob is empty (no tag)")]
    Empty,
    /// A tag other than 0 or 1.
    #[error("FS-27: unknown blob tag {0}")]
    UnknownTag(u8),
    /// The zstd body does not decode, or to a size outside 1 ..= 2 MiB.
    #[error("FS-27: bad zstd body: {0}")]
    Frame(String),
}

/// Whether a writer compresses data blobs (FS-27): a repository's or a share's setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// zstd where it saves at least 1/16 (the default).
    #[default]
    Zstd,
    /// Never: every data blob is stored plain (tag 0), so stored sizes depend on lengths only.
    Off,
}

impl Compression {
    /// The setting's name in configuration: `zstd` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Off => "none",
        }
    }

    /// The setting named `name` (`zstd` or `none`), if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "zstd" => Some(Compression::Zstd),
            "none" => Some(Compression::Off),
            _ => None,
        }
    }
}

/// Encodes `bytes` (1 ..= 2 MiB) as a data blob's plaintext: compressed when that saves at
/// least 1/16 (FS-27), else plain.
pub fn encode(bytes: &[u8]) -> Vec<u8> {
    encode_with(bytes, Compression::Zstd)
}

/// [`encode`] under a [`Compression`] setting: `Off` always stores the bytes plain.
pub fn encode_with(bytes: &[u8], compression: Compression) -> Vec<u8> {
    if compression == Compression::Zstd
        && bytes.len() >= COMPRESS_MIN_BYTES
        && let Ok(frame) = compress(bytes)
        && frame.len() + bytes.len() / 16 <= bytes.len()
    {
        let mut out = Vec::with_capacity(1 + frame.len());
        out.push(TAG_ZSTD);
        out.extend_from_slice(&frame);
        return out;
    }
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(TAG_PLAIN);
    out.extend_from_slice(bytes);
    out
}

thread_local! {
    /// One compression context per thread, reused: a fresh context per blob spends a tenth of
    /// a commit clearing its tables.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd at [`ZSTD_LEVEL`] with this thread's context.
fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        match c.as_mut() {
            Some(c) => c.compress(bytes),
            None => zstd::bulk::compress(bytes, ZSTD_LEVEL),
        }
    })
}

/// Decodes a data blob's plaintext into its bytes (FS-27). Never allocates more than
/// [`EXTENT_BLOB_SIZE_MAX_BYTES`] for a frame, whatever its header claims.
pub fn decode(plaintext: &[u8]) -> Result<Vec<u8>, BlobError> {
    let Some((&tag, body)) = plaintext.split_first() else {
        return Err(BlobError::Empty);
    };
    match tag {
        TAG_PLAIN => Ok(body.to_vec()),
        TAG_ZSTD => {
            let cap = usize::try_from(EXTENT_BLOB_SIZE_MAX_BYTES).unwrap_or(usize::MAX);
            let out = if crate::bugs::active("fs:blob-size-unchecked") {
                zstd::stream::decode_all(body).map_err(|e| BlobError::Frame(e.to_string()))?
            } else {
                zstd::bulk::decompress(body, cap)
                    .map_err(|e| BlobError::Frame(format!("{e} (content over {cap} bytes?)")))?
            };
            if out.is_empty() {
                return Err(BlobError::Frame("the frame holds no bytes".to_owned()));
            }
            Ok(out)
        }
        other => Err(BlobError::UnknownTag(other)),
    }
}

impl Fs<'_> {
    /// Encodes `bytes` (FS-27) and posts them as a data blob under the tree's salt.
    pub(crate) fn post_data(&self, bytes: &[u8]) -> Result<Ref, RefError> {
        self.data_encoder().post(bytes)
    }

    /// The verified (REF-4), decoded (FS-27) bytes of an extent's blob, through the cache.
    pub(crate) fn data_blob(&self, path: &FsPath, e: &Extent) -> Result<Arc<Vec<u8>>, FsError> {
        self.blobs.get_or_load(&(e.blob, e.encoded), || {
            let plain = refs::get(self.kv.store(), &e.blob)?;
            if !e.encoded {
                return Ok(plain);
            }
            decode(&plain).map_err(|x| corrupt(path, x))
        })
    }
}

/// A data blob's ref and whether it is encoded (FS-27) → its decoded bytes.
type DecodedBlobs = quick_cache::sync::Cache<(Ref, bool), Arc<Vec<u8>>>;

/// Recently decoded blobs by ref, shared by clones of one [`super::Fs`].
#[derive(Clone)]
pub struct BlobCache {
    inner: Arc<DecodedBlobs>,
}

impl BlobCache {
    /// An empty cache of [`CACHE_BLOBS_MAX`] blobs.
    pub fn new() -> Self {
        Self { inner: Arc::new(quick_cache::sync::Cache::new(CACHE_BLOBS_MAX)) }
    }

    /// The decoded bytes of `blob` (a ref and whether it is encoded), from the cache or `load`.
    pub fn get_or_load<E>(
        &self,
        blob: &(Ref, bool),
        load: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Arc<Vec<u8>>, E> {
        if let Some(hit) = self.inner.get(blob) {
            return Ok(hit);
        }
        let bytes = Arc::new(load()?);
        self.inner.insert(*blob, Arc::clone(&bytes));
        Ok(bytes)
    }
}

impl Default for BlobCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for BlobCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCache").field("blobs", &self.inner.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_bytes_are_compressed_and_round_trip_fs27() {
        let text: Vec<u8> = b"the quick brown fox ".iter().copied().cycle().take(100_000).collect();
        let enc = encode(&text);
        assert_eq!(enc[0], TAG_ZSTD);
        assert!(enc.len() < text.len() / 10, "{} bytes", enc.len());
        assert_eq!(decode(&enc), Ok(text));
    }

    #[test]
    fn incompressible_and_tiny_bytes_stay_plain_fs27() {
        let mut random = vec![0u8; 50_000];
        blake3::Hasher::new().update(b"seed").finalize_xof().fill(&mut random);
        for bytes in [&random[..], b"hello\n"] {
            let enc = encode(bytes);
            assert_eq!(enc[0], TAG_PLAIN, "{} bytes", bytes.len());
            assert_eq!(decode(&enc).as_deref(), Ok(bytes));
        }
    }

    /// A frame whose content is over 2 MiB: 3 MiB of zeros in a few hundred bytes.
    fn bomb() -> Vec<u8> {
        let mut enc = vec![TAG_ZSTD];
        enc.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 3 << 20], 3).unwrap_or_default());
        enc
    }

    #[test]
    fn bad_encodings_are_typed_errors_fs27() {
        assert_eq!(decode(&[]), Err(BlobError::Empty));
        assert_eq!(decode(&[7, 1, 2]), Err(BlobError::UnknownTag(7)));
        assert!(matches!(decode(&[TAG_ZSTD, 1, 2, 3]), Err(BlobError::Frame(_))));
        assert!(bomb().len() < 1000);
        assert!(matches!(decode(&bomb()), Err(BlobError::Frame(_))));
    }

    /// Only with `planted-bugs`: without it `plant` fails, and this test used to return early
    /// and pass without checking anything.
    #[cfg(feature = "planted-bugs")]
    #[test]
    fn planted_blob_size_unchecked_is_caught_fs27() {
        let _bug = crate::bugs::plant("fs:blob-size-unchecked").unwrap();
        let caught = std::panic::catch_unwind(bad_encodings_are_typed_errors_fs27).is_err();
        assert!(caught, "the bomb was refused with the size cap switched off");
    }
}
