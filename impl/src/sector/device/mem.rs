//! `MemDevice`: a device in RAM. Every write is "durable" the moment it completes; use
//! [`super::FaultDevice`] around it to model crashes.

use super::{BlockDevice, DeviceError, ReadOp, WriteOp, check_io, check_range};
use crate::sector::SECTOR_SIZE_BYTES;

/// A block device held in memory. Cloning it snapshots the image.
#[derive(Clone, Debug)]
pub struct MemDevice {
    bytes: Vec<u8>,
}

impl MemDevice {
    /// A zero-filled device of `sector_count` sectors.
    pub fn new(sector_count: u64) -> MemDevice {
        MemDevice { bytes: vec![0; sector_count as usize * SECTOR_SIZE_BYTES] }
    }

    /// A device holding `image`, zero-padded up to a whole number of sectors.
    pub fn from_image(mut image: Vec<u8>) -> MemDevice {
        let rem = image.len() % SECTOR_SIZE_BYTES;
        if rem != 0 {
            image.resize(image.len() + SECTOR_SIZE_BYTES - rem, 0);
        }
        MemDevice { bytes: image }
    }

    /// The raw image.
    pub fn image(&self) -> &[u8] {
        &self.bytes
    }

    /// The raw image, mutable (tests use it to flip bytes).
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn span(first_sector: u64, len: usize) -> std::ops::Range<usize> {
        let start = first_sector as usize * SECTOR_SIZE_BYTES;
        start..start + len
    }
}

impl BlockDevice for MemDevice {
    fn sector_count(&self) -> u64 {
        (self.bytes.len() / SECTOR_SIZE_BYTES) as u64
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        let n = self.sector_count();
        for r in reads.iter_mut() {
            check_io(r.first_sector, r.buf.len(), n)?;
            let span = Self::span(r.first_sector, r.buf.len());
            let src =
                self.bytes.get(span).ok_or(DeviceError::Misaligned { len_bytes: r.buf.len() })?;
            r.buf.copy_from_slice(src);
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        let n = self.sector_count();
        for w in writes {
            check_io(w.first_sector, w.data.len(), n)?;
        }
        for w in writes {
            let span = Self::span(w.first_sector, w.data.len());
            if let Some(dst) = self.bytes.get_mut(span) {
                dst.copy_from_slice(w.data);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        check_range(first_sector, sector_count, self.sector_count())?;
        let span = Self::span(first_sector, sector_count as usize * SECTOR_SIZE_BYTES);
        if let Some(dst) = self.bytes.get_mut(span) {
            dst.fill(0);
        }
        Ok(())
    }
}
