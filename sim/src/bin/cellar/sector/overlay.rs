//! [`Overlay`]: a private, discardable view of a device for `cellar sector verify`.
//!
//! Opening an engine runs recovery, which may write (a seal record at a torn tail). `verify`
//! must not change the device it inspects, so its writes land in memory instead: reads see
//! them, the device never does, and dropping the overlay discards them.

use cellar::sector::{BlockDevice, DeviceError, ReadOp, SECTOR_SIZE_BYTES, WriteOp};
use std::collections::HashMap;

/// A device whose writes stay in memory. See the module docs.
pub struct Overlay<D: BlockDevice> {
    inner: D,
    written: HashMap<u64, Vec<u8>>,
}

impl<D: BlockDevice> Overlay<D> {
    /// A view of `inner` that never writes to it.
    pub fn new(inner: D) -> Self {
        Self { inner, written: HashMap::new() }
    }
}

impl<D: BlockDevice> BlockDevice for Overlay<D> {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        self.inner.read_batch(reads)?;
        for r in reads.iter_mut() {
            for (i, chunk) in r.buf.chunks_mut(SECTOR_SIZE_BYTES).enumerate() {
                if let Some(data) = self.written.get(&(r.first_sector + i as u64)) {
                    chunk.copy_from_slice(data);
                }
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        for w in writes {
            if w.data.is_empty() || w.data.len() % SECTOR_SIZE_BYTES != 0 {
                return Err(DeviceError::Misaligned { len_bytes: w.data.len() });
            }
            for (i, chunk) in w.data.chunks(SECTOR_SIZE_BYTES).enumerate() {
                self.written.insert(w.first_sector + i as u64, chunk.to_vec());
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn trim(&mut self, _first_sector: u64, _sector_count: u64) -> Result<(), DeviceError> {
        Ok(())
    }
}
