//! Block devices (`specs/sector.md`, SEC-1, SEC-2): the only place the engine's bytes meet
//! storage. Every I/O is whole 4096-byte sectors; I/Os are submitted in batches so a device can
//! keep many in flight; `flush` is the only durability barrier (SEC-2): the engine assumes
//! nothing written since the last completed `flush` survives a crash.
//!
//! Implementations: [`MemDevice`] (RAM, for tests and the simulator), [`FileDevice`]
//! (pread/pwrite + fdatasync, optional O_DIRECT), `UringDevice` (feature `io-uring`), and
//! [`FaultDevice`], a wrapper that models crashes (drop unflushed writes, tear, flip bytes).

mod fault;
mod file;
mod mem;
#[cfg(all(feature = "io-uring", target_os = "linux"))]
mod uring;

pub use fault::{CrashMode, FaultDevice};
pub use file::FileDevice;
pub use mem::MemDevice;
use std::sync::Arc;
#[cfg(all(feature = "io-uring", target_os = "linux"))]
pub use uring::{URING_QUEUE_DEPTH_MAX, UringDevice, open_best};

use super::SECTOR_SIZE_BYTES;

/// One read in a batch: fill `buf` (a whole number of sectors) from `first_sector` on.
#[derive(Debug)]
pub struct ReadOp<'a> {
    /// First sector to read.
    pub first_sector: u64,
    /// Destination; its length must be a non-zero multiple of [`SECTOR_SIZE_BYTES`].
    pub buf: &'a mut [u8],
}

/// One write in a batch: store `data` (a whole number of sectors) from `first_sector` on.
#[derive(Debug, Clone, Copy)]
pub struct WriteOp<'a> {
    /// First sector to write.
    pub first_sector: u64,
    /// Source; its length must be a non-zero multiple of [`SECTOR_SIZE_BYTES`].
    pub data: &'a [u8],
}

/// Errors of device operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The operating system refused the I/O.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The I/O reaches past the end of the device.
    #[error("sectors {first_sector}..+{sector_count} are outside a device of {device_sectors}")]
    OutOfRange {
        /// First sector asked for.
        first_sector: u64,
        /// Number of sectors asked for.
        sector_count: u64,
        /// Size of the device in sectors.
        device_sectors: u64,
    },
    /// A buffer is empty or not a whole number of sectors.
    #[error("buffer of {len_bytes} bytes is not a whole number of sectors")]
    Misaligned {
        /// The buffer's length.
        len_bytes: usize,
    },
    /// The device (or kernel) does not support what was asked, e.g. io_uring is forbidden.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// A block device of 4096-byte sectors (SEC-1, SEC-2).
///
/// `&mut self` everywhere: a device belongs to one single-threaded engine shard.
pub trait BlockDevice: Send {
    /// Size of the device in sectors.
    fn sector_count(&self) -> u64;

    /// Performs every read of the batch (submitted together). On error, the contents of the
    /// buffers are unspecified.
    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError>;

    /// Performs every write of the batch (submitted together). Nothing is durable until the
    /// next successful [`BlockDevice::flush`] returns (SEC-2).
    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError>;

    /// Makes every write completed before the call durable (SEC-2).
    fn flush(&mut self) -> Result<(), DeviceError>;

    /// Tells the device the sectors' contents are no longer needed. Reads of trimmed sectors
    /// return unspecified bytes (zeros, old data, anything): the engine never relies on them.
    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError>;

    /// A handle that flushes this device like [`BlockDevice::flush`] without borrowing it, so
    /// a server can wait for the device's flush without holding the lock its readers need
    /// (`Engine::flush_start`, §5.2). `None` (the default): the device flushes only through
    /// itself.
    fn syncer(&self) -> Option<Arc<dyn DeviceSync>> {
        None
    }

    /// A hint that these sectors will be read soon, so the device may start fetching them
    /// while the caller works on something else (recovery parses one batch of zones while the
    /// next is read). No effect on any result; out-of-range hints are ignored. The default does
    /// nothing.
    fn prefetch(&mut self, first_sector: u64, sector_count: u64) {
        let _ = (first_sector, sector_count);
    }
}

/// Flushes a device from another thread (see [`BlockDevice::syncer`]): every write the device
/// completed before `sync` was called is durable when it returns (SEC-2).
pub trait DeviceSync: Send + Sync + std::fmt::Debug {
    /// Makes every write completed before the call durable.
    fn sync(&self) -> Result<(), DeviceError>;
}

impl<D: BlockDevice + ?Sized> BlockDevice for Box<D> {
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        (**self).read_batch(reads)
    }
    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        (**self).write_batch(writes)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        (**self).flush()
    }
    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        (**self).trim(first_sector, sector_count)
    }
    fn syncer(&self) -> Option<Arc<dyn DeviceSync>> {
        (**self).syncer()
    }
    fn prefetch(&mut self, first_sector: u64, sector_count: u64) {
        (**self).prefetch(first_sector, sector_count);
    }
}

/// Checks one I/O's buffer length and range; every implementation calls it first (SEC-1:
/// whole sectors only, inside the device).
pub fn check_io(
    first_sector: u64,
    len_bytes: usize,
    device_sectors: u64,
) -> Result<u64, DeviceError> {
    if len_bytes == 0 || !len_bytes.is_multiple_of(SECTOR_SIZE_BYTES) {
        return Err(DeviceError::Misaligned { len_bytes });
    }
    let sector_count = (len_bytes / SECTOR_SIZE_BYTES) as u64;
    match first_sector.checked_add(sector_count) {
        Some(end) if end <= device_sectors => Ok(sector_count),
        _ => Err(DeviceError::OutOfRange { first_sector, sector_count, device_sectors }),
    }
}

/// Checks a trim range.
pub fn check_range(
    first_sector: u64,
    sector_count: u64,
    device_sectors: u64,
) -> Result<(), DeviceError> {
    match first_sector.checked_add(sector_count) {
        Some(end) if end <= device_sectors => Ok(()),
        _ => Err(DeviceError::OutOfRange { first_sector, sector_count, device_sectors }),
    }
}
