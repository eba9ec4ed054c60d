//! `DirVolume`: a whole volume in one directory, shareable between processes.
//!
//! ```text
//! DIR/volume     header: magic ‖ version ‖ secret ‖ CRC32C (`specs/volume-dir.md`, VD-2)
//! DIR/cell       FileCell holding the SealedCell ciphertext of the value
//! DIR/cell.seen  the highest sealed-cell counter this directory's readers have seen (CELL-6)
//! DIR/store/     DirStore of encrypted blobs
//! DIR/modes/     FileModeLock's gate.lock, expand.lock, contract.lock
//! ```

use super::{FileModeLock, Volume, VolumeError};
use crate::env::Entropy;
use crate::storage::cell::CELL_SIZE_MAX_BYTES_DEFAULT;
use crate::storage::cell::{FileCell, SealedCell, Seen};
use crate::storage::fsio::on;
use crate::storage::fsys::{self, FileSystem};
use crate::storage::secret::VolumeSecret;
use crate::storage::store::DirStore;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Magic bytes at the start of a volume header.
pub const VOLUME_MAGIC: [u8; 8] = *b"CELLARVL";
/// Current volume header version.
pub const VOLUME_VERSION: u32 = 1;
/// Largest header file accepted (it is ~50 bytes; anything larger is not ours).
const HEADER_SIZE_MAX_BYTES: u64 = 4096;

#[derive(Deserialize)]
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
        Self::init_in(fsys::os(), dir, entropy)
    }

    /// Opens the volume in `dir`.
    pub fn open(dir: &Path, entropy: Arc<dyn Entropy>) -> Result<Self, VolumeError> {
        Self::open_in(fsys::os(), dir, entropy)
    }

    /// Like [`DirVolume::init`], on the file system `fs` (the simulator's, in its `files`
    /// profile).
    pub fn init_in(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, VolumeError> {
        fsys::create_dir_all_durably(fs.as_ref(), dir)?;
        let header_path = dir.join("volume");
        match fs.metadata(&header_path) {
            Ok(_) => return Err(not_a_volume(dir, "a volume already exists here")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(VolumeError::Io(on(&header_path)(e))),
        }
        let secret = VolumeSecret::generate(entropy.as_ref());
        write_new_durably(fs.as_ref(), &header_path, &encode_volume_header(secret.as_bytes()))?;
        Self::open_in(fs, dir, entropy)
    }

    /// Like [`DirVolume::open`], on the file system `fs`.
    pub fn open_in(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, VolumeError> {
        let secret = read_header(fs.as_ref(), dir)?;
        let seen = Seen::file_in(Arc::clone(&fs), dir.join("cell.seen"))?;
        let file_cell =
            FileCell::open_in(Arc::clone(&fs), dir.join("cell"), CELL_SIZE_MAX_BYTES_DEFAULT)?;
        let cell = SealedCell::new(file_cell, &secret, entropy).with_seen(seen);
        let store = DirStore::open_in(Arc::clone(&fs), dir.join("store"))?;
        let modes = FileModeLock::open_in(fs, dir.join("modes"))?;
        let volume = Volume::with_modes(Arc::new(cell), Arc::new(store), Arc::new(modes));
        Ok(Self { volume, secret, dir: dir.to_path_buf() })
    }
}

fn not_a_volume(dir: &Path, detail: &str) -> VolumeError {
    VolumeError::NotAVolume { path: dir.to_path_buf(), detail: detail.to_owned() }
}

fn read_header(fs: &dyn FileSystem, dir: &Path) -> Result<VolumeSecret, VolumeError> {
    let path = dir.join("volume");
    let meta = fs.metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            not_a_volume(dir, "no volume header (run `cellar vol init`)")
        }
        _ => VolumeError::Io(on(&path)(e)),
    })?;
    if meta.len > HEADER_SIZE_MAX_BYTES {
        return Err(not_a_volume(dir, "volume header is too large"));
    }
    let bytes = fs.read(&path, HEADER_SIZE_MAX_BYTES + 1).map_err(on(&path))?;
    let secret = decode_volume_header(&bytes).map_err(|e| not_a_volume(dir, &e.to_string()))?;
    Ok(VolumeSecret::from_bytes(secret))
}

/// Why the bytes of a `volume` file were refused (`specs/volume-dir.md`, VD-2), in the order
/// the checks run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeHeaderError {
    /// Larger than any header (4096 bytes).
    #[error("volume header is too large ({0} bytes)")]
    TooLarge(usize),
    /// Shorter than its CRC, or the fields end early.
    #[error("volume header is truncated")]
    Truncated,
    /// The CRC32C does not match.
    #[error("volume header checksum mismatch (corrupt)")]
    Checksum,
    /// A field does not decode (an over-long varint).
    #[error("volume header undecodable: {0}")]
    Undecodable(String),
    /// Bytes between the secret and the CRC.
    #[error("volume header has {0} trailing bytes")]
    TrailingBytes(usize),
    /// Not `CELLARVL`.
    #[error("not a Cellar volume header (bad magic)")]
    BadMagic,
    /// A version other than [`VOLUME_VERSION`].
    #[error("volume header version {0} is not supported")]
    Version(u32),
}

/// Encodes a `volume` file holding `secret` (VD-2): magic, version, secret, CRC32C.
pub fn encode_volume_header(secret: &[u8; 32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(45);
    bytes.extend_from_slice(&VOLUME_MAGIC);
    bytes.push(VOLUME_VERSION as u8); // a one-byte varint: the version is below 128
    bytes.extend_from_slice(secret);
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    bytes
}

/// Decodes the bytes of a `volume` file to the volume secret (VD-2), checks in spec order.
pub fn decode_volume_header(bytes: &[u8]) -> Result<[u8; 32], VolumeHeaderError> {
    if bytes.len() as u64 > HEADER_SIZE_MAX_BYTES {
        return Err(VolumeHeaderError::TooLarge(bytes.len()));
    }
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(VolumeHeaderError::Truncated);
    };
    if crc32c::crc32c(body).to_le_bytes() != *crc {
        return Err(VolumeHeaderError::Checksum);
    }
    let (header, rest) = postcard::take_from_bytes::<VolumeHeader>(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => VolumeHeaderError::Truncated,
        other => VolumeHeaderError::Undecodable(other.to_string()),
    })?;
    if !rest.is_empty() {
        return Err(VolumeHeaderError::TrailingBytes(rest.len()));
    }
    if header.magic != VOLUME_MAGIC {
        return Err(VolumeHeaderError::BadMagic);
    }
    if header.version != VOLUME_VERSION {
        return Err(VolumeHeaderError::Version(header.version));
    }
    Ok(header.secret)
}

/// Writes a new file durably: temp file, fsync, rename, fsync the directory. A failure (a full
/// file system) removes the temp file and names the path.
fn write_new_durably(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fsys::replace_durably(fs, &tmp, path, bytes)
}
