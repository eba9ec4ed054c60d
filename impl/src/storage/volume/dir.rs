//! `DirVolume`: a whole volume in one directory, shareable between processes.
//!
//! ```text
//! DIR/volume     header: postcard(VolumeHeader) ‖ CRC32C-LE of those bytes (secret inside)
//! DIR/cell       FileCell holding the SealedCell ciphertext of the value
//! DIR/store/     DirStore of encrypted blobs
//! DIR/modes/     FileModeLock's gate.lock, expand.lock, contract.lock
//! ```

use super::{FileModeLock, Volume, VolumeError};
use crate::env::Entropy;
use crate::storage::cell::{FileCell, SealedCell};
use crate::storage::fsio::on;
use crate::storage::secret::VolumeSecret;
use crate::storage::store::DirStore;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Magic bytes at the start of a volume header.
pub const VOLUME_MAGIC: [u8; 8] = *b"CELLARVL";
/// Current volume header version.
pub const VOLUME_VERSION: u32 = 1;
/// Largest header file accepted (it is ~50 bytes; anything larger is not ours).
const HEADER_SIZE_MAX_BYTES: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct VolumeHeader {
    magic: [u8; 8],
    version: u32,
    secret: [u8; 32],
}

/// A volume stored in a directory.
#[derive(Debug, Clone)]
pub struct DirVolume {
    /// The volume (sealed file cell, directory store, file mode lock).
    pub volume: Volume,
    /// The volume's secret: seals the cell and salts its refs.
    pub secret: VolumeSecret,
    /// The directory.
    pub dir: PathBuf,
}

impl DirVolume {
    /// Creates a new volume in `dir` (created if absent; it must not already hold a volume).
    pub fn init(dir: &Path, entropy: Arc<dyn Entropy>) -> Result<Self, VolumeError> {
        std::fs::create_dir_all(dir).map_err(on(dir))?;
        let header_path = dir.join("volume");
        if header_path.exists() {
            return Err(not_a_volume(dir, "a volume already exists here"));
        }
        let secret = VolumeSecret::generate(entropy.as_ref());
        let header = VolumeHeader {
            magic: VOLUME_MAGIC,
            version: VOLUME_VERSION,
            secret: *secret.as_bytes(),
        };
        let mut bytes = postcard::to_allocvec(&header)
            .map_err(|e| std::io::Error::other(format!("encoding volume header: {e}")))?;
        bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
        write_new_durably(&header_path, &bytes)?;
        Self::open(dir, entropy)
    }

    /// Opens the volume in `dir`.
    pub fn open(dir: &Path, entropy: Arc<dyn Entropy>) -> Result<Self, VolumeError> {
        let secret = read_header(dir)?;
        let cell = SealedCell::new(FileCell::open(dir.join("cell"))?, &secret, entropy);
        let store = DirStore::open(dir.join("store"))?;
        let modes = FileModeLock::open(dir.join("modes"))?;
        let volume = Volume::with_modes(Arc::new(cell), Arc::new(store), Arc::new(modes));
        Ok(Self { volume, secret, dir: dir.to_path_buf() })
    }
}

fn not_a_volume(dir: &Path, detail: &str) -> VolumeError {
    VolumeError::NotAVolume { path: dir.to_path_buf(), detail: detail.to_owned() }
}

fn read_header(dir: &Path) -> Result<VolumeSecret, VolumeError> {
    let path = dir.join("volume");
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            not_a_volume(dir, "no volume header (run `cellar vol init`)")
        }
        _ => VolumeError::Io(on(&path)(e)),
    })?;
    if meta.len() > HEADER_SIZE_MAX_BYTES {
        return Err(not_a_volume(dir, "volume header is too large"));
    }
    let bytes = std::fs::read(&path).map_err(on(&path))?;
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(not_a_volume(dir, "volume header is truncated"));
    };
    if crc32c::crc32c(body).to_le_bytes() != *crc {
        return Err(not_a_volume(dir, "volume header checksum mismatch (corrupt)"));
    }
    let header: VolumeHeader = postcard::from_bytes(body)
        .map_err(|e| not_a_volume(dir, &format!("volume header undecodable: {e}")))?;
    if header.magic != VOLUME_MAGIC || header.version != VOLUME_VERSION {
        return Err(not_a_volume(dir, "not a Cellar volume header (bad magic or version)"));
    }
    Ok(VolumeSecret::from_bytes(header.secret))
}

/// Writes a new file durably: temp file, fsync, rename, fsync the directory. A failure (a full
/// file system) removes the temp file and names the path.
fn write_new_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp); // best effort: unlinking needs no space
        return Err(on(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(on(path))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(on(parent))?;
    }
    Ok(())
}
