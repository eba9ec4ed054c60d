//! `FileDevice`: a device backed by a file or block-device node, with pread/pwrite and
//! fdatasync (SEC-2), and optional O_DIRECT (bypassing the page cache, through a sector-aligned
//! bounce buffer).
//!
//! A device file is *preallocated* by [`FileDevice::create`]: every block is written (with
//! zeros) once, so the engine's writes later overwrite allocated blocks and `fdatasync` has no
//! file-system metadata to commit (specs/sector.md §11; measured on ext4: 0.11 ms against
//! 0.20 ms per one-sector flush into fresh space of a sparse file, 0.24 ms with `fallocate`,
//! whose unwritten extents are converted at the flush). `trim` keeps a preallocated file's blocks
//! (trim is advisory); it punches holes only in a sparse file ([`FileDevice::create_sparse`]).

use super::{BlockDevice, DeviceError, DeviceSync, ReadOp, WriteOp, check_io, check_range};
use crate::sector::SECTOR_SIZE_BYTES;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A block device stored in a file.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    sector_count: u64,
    direct: bool,
    /// Every block of the file is allocated: `trim` must not punch holes in it.
    preallocated: bool,
    /// A second descriptor of the same file, for [`BlockDevice::syncer`].
    sync: Option<Arc<FileSync>>,
}

/// `fdatasync` through a descriptor of its own: the device's writes (pwrite, write-through to
/// the page cache or, with O_DIRECT, to the device) are completed when `write_batch` returns,
/// so a sync on any descriptor of the file covers them.
#[derive(Debug)]
struct FileSync(File);

impl DeviceSync for FileSync {
    fn sync(&self) -> Result<(), DeviceError> {
        self.0.sync_data()?;
        Ok(())
    }
}

fn syncer_of(file: &File) -> Option<Arc<FileSync>> {
    // Without a second descriptor the device still flushes through itself.
    file.try_clone().ok().map(|f| Arc::new(FileSync(f)))
}

impl FileDevice {
    /// Creates (or truncates) a preallocated file of `sector_count` sectors: zeros are written
    /// through its whole length and made durable (a full disk fails here, not at a flush).
    pub fn create(path: &Path, sector_count: u64) -> Result<FileDevice, DeviceError> {
        let mut dev = FileDevice::create_sparse(path, sector_count)?;
        let zeros = vec![0u8; PREALLOCATE_CHUNK_BYTES];
        let len = Self::offset(sector_count);
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(PREALLOCATE_CHUNK_BYTES as u64) as usize;
            dev.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        dev.file.sync_all()?;
        dev.preallocated = true;
        Ok(dev)
    }

    /// Creates (or truncates) a sparse file of `sector_count` sectors: blocks are allocated as
    /// they are first written (cheaper to create, dearer to flush), and `trim` punches holes.
    pub fn create_sparse(path: &Path, sector_count: u64) -> Result<FileDevice, DeviceError> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        file.set_len(Self::offset(sector_count))?;
        let sync = syncer_of(&file);
        Ok(FileDevice { file, sector_count, direct: false, preallocated: false, sync })
    }

    /// Opens an existing file; its size, rounded down to whole sectors, is the device size.
    /// With `direct`, I/O bypasses the page cache (O_DIRECT); a file system that refuses it
    /// yields [`DeviceError::Io`].
    pub fn open(path: &Path, direct: bool) -> Result<FileDevice, DeviceError> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if direct {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_DIRECT);
        }
        let file = opts.open(path)?;
        let meta = file.metadata()?;
        let sector_count = meta.len() / SECTOR_SIZE_BYTES as u64;
        let preallocated = is_preallocated(&meta);
        let sync = syncer_of(&file);
        Ok(FileDevice { file, sector_count, direct, preallocated, sync })
    }

    /// The open file (for the io_uring device, which shares it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether every block of the file is allocated (`trim` then keeps them).
    pub fn is_preallocated(&self) -> bool {
        self.preallocated
    }

    /// Whether I/O bypasses the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn offset(sector: u64) -> u64 {
        sector * SECTOR_SIZE_BYTES as u64
    }
}

impl BlockDevice for FileDevice {
    fn sector_count(&self) -> u64 {
        self.sector_count
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        for r in reads.iter_mut() {
            check_io(r.first_sector, r.buf.len(), self.sector_count)?;
            if self.direct {
                let mut bounce = AlignedBuf::new(r.buf.len());
                self.file.read_exact_at(bounce.as_mut_slice(), Self::offset(r.first_sector))?;
                r.buf.copy_from_slice(bounce.as_mut_slice());
            } else {
                self.file.read_exact_at(r.buf, Self::offset(r.first_sector))?;
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        for w in writes {
            check_io(w.first_sector, w.data.len(), self.sector_count)?;
        }
        for w in writes {
            if self.direct {
                let mut bounce = AlignedBuf::new(w.data.len());
                bounce.as_mut_slice().copy_from_slice(w.data);
                self.file.write_all_at(bounce.as_mut_slice(), Self::offset(w.first_sector))?;
            } else {
                self.file.write_all_at(w.data, Self::offset(w.first_sector))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.file.sync_data()?;
        Ok(())
    }

    fn syncer(&self) -> Option<Arc<dyn DeviceSync>> {
        self.sync.clone().map(|s| s as Arc<dyn DeviceSync>)
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        check_range(first_sector, sector_count, self.sector_count)?;
        if self.preallocated {
            return Ok(()); // keep the blocks: a later write into them needs no allocation
        }
        punch_hole(&self.file, Self::offset(first_sector), Self::offset(sector_count))
    }

    /// `posix_fadvise(WILLNEED)`: the kernel starts reading the range into the page cache and
    /// returns. Nothing to do with `O_DIRECT` (reads bypass the cache).
    fn prefetch(&mut self, first_sector: u64, sector_count: u64) {
        if self.direct || check_range(first_sector, sector_count, self.sector_count).is_err() {
            return;
        }
        let (Ok(off), Ok(len)) = (
            libc::off_t::try_from(Self::offset(first_sector)),
            libc::off_t::try_from(Self::offset(sector_count)),
        ) else {
            return;
        };
        // SAFETY: the descriptor is open for the duration of the call; fadvise only reads its
        // arguments. A failed hint changes nothing, so its result is ignored.
        #[cfg(target_os = "linux")]
        let _ = unsafe {
            libc::posix_fadvise(self.file.as_raw_fd(), off, len, libc::POSIX_FADV_WILLNEED)
        };
        #[cfg(not(target_os = "linux"))]
        let _ = (off, len);
    }
}

/// Bytes zeroed per write while preallocating.
const PREALLOCATE_CHUNK_BYTES: usize = 1 << 20;

/// Whether the file's allocated blocks cover its length (a block device node counts as
/// allocated: it has no holes to punch through a file system).
fn is_preallocated(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_block_device() || meta.blocks().saturating_mul(512) >= meta.len()
}

/// Frees the byte range in the file (FALLOC_FL_PUNCH_HOLE). A file system without hole punching
/// is not an error: trim is advisory.
#[cfg(target_os = "linux")]
fn punch_hole(file: &File, offset: u64, len: u64) -> Result<(), DeviceError> {
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(DeviceError::Unsupported("trim range beyond i64".into()));
    };
    // SAFETY: fallocate on a valid, open descriptor with plain integer arguments.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
            return Ok(());
        }
        return Err(err.into());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn punch_hole(_file: &File, _offset: u64, _len: u64) -> Result<(), DeviceError> {
    Ok(())
}

/// A heap buffer aligned to the sector size, as O_DIRECT requires.
pub(crate) struct AlignedBuf {
    words: Vec<Sector>,
    len: usize,
}

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Sector([u8; SECTOR_SIZE_BYTES]);

impl AlignedBuf {
    /// A zeroed, sector-aligned buffer of `len` bytes (rounded up to whole sectors).
    pub(crate) fn new(len: usize) -> AlignedBuf {
        let sectors = len.div_ceil(SECTOR_SIZE_BYTES);
        AlignedBuf { words: vec![Sector([0; SECTOR_SIZE_BYTES]); sectors], len }
    }

    /// The first `len` bytes.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let all = self.words.as_flattened_mut_bytes();
        &mut all[..self.len]
    }
}

trait FlattenBytes {
    fn as_flattened_mut_bytes(&mut self) -> &mut [u8];
}

impl FlattenBytes for Vec<Sector> {
    fn as_flattened_mut_bytes(&mut self) -> &mut [u8] {
        let inner: &mut [[u8; SECTOR_SIZE_BYTES]] =
            // SAFETY: `Sector` is `repr(C)` around one `[u8; N]`, so a slice of them has the
            // layout of a slice of `[u8; N]` (alignment only adds no padding: size == N).
            unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr().cast(), self.len()) };
        inner.as_flattened_mut()
    }
}
