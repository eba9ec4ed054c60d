//! `FaultDevice`: a wrapper that remembers which writes are not yet durable so a test (or the
//! simulator) can crash it (`specs/sector.md`, fault table).
//!
//! Writes since the last `flush` are kept in a pending list (reads see them, like a page cache).
//! `flush` applies them to the inner device in order and flushes it. [`FaultDevice::crash`]
//! ends the run and returns the inner device as a crash would leave it:
//! - [`CrashMode::DropUnflushed`]: every pending write is lost;
//! - [`CrashMode::Torn`]: a prefix of the pending writes lands, the last of them cut at a sector
//!   boundary (sectors are the atomic unit, SEC-2);
//! - [`CrashMode::Reordered`]: an arbitrary subset of pending sectors lands.
//!
//! Choices come from a caller-supplied seed (a SplitMix64 stream): never OS randomness.

use super::{BlockDevice, DeviceError, ReadOp, WriteOp, check_io, check_range};
use crate::env::SplitMix64;
use crate::sector::SECTOR_SIZE_BYTES;

/// How a crash treats writes that were not flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// All unflushed writes are lost.
    DropUnflushed,
    /// A seeded prefix of the unflushed writes lands; the last landed write is cut at a seeded
    /// sector boundary.
    Torn {
        /// Seed for the choices.
        seed: u64,
    },
    /// Each unflushed sector lands or not, independently (seeded).
    Reordered {
        /// Seed for the choices.
        seed: u64,
    },
}

/// A device wrapper that keeps unflushed writes apart so a crash can drop or tear them.
#[derive(Debug)]
pub struct FaultDevice<D: BlockDevice> {
    inner: D,
    /// Unflushed writes in submission order: (first sector, bytes).
    pending: Vec<(u64, Vec<u8>)>,
    /// Count of completed flushes (tests read it to check acks waited for a flush).
    flushes: u64,
}

impl<D: BlockDevice> FaultDevice<D> {
    /// Wraps `inner`; everything already on it counts as durable.
    pub fn new(inner: D) -> FaultDevice<D> {
        FaultDevice { inner, pending: Vec::new(), flushes: 0 }
    }

    /// Number of writes not yet flushed.
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    /// Number of completed flushes.
    pub fn flush_count(&self) -> u64 {
        self.flushes
    }

    /// Ends the run as a power cut would, returning the inner device's surviving image.
    pub fn crash(mut self, mode: CrashMode) -> Result<D, DeviceError> {
        let pending = std::mem::take(&mut self.pending);
        match mode {
            CrashMode::DropUnflushed => {}
            CrashMode::Torn { seed } => {
                let mut rng = SplitMix64::new(seed);
                let keep = rng.below(pending.len() as u64 + 1) as usize;
                for (i, (first, data)) in pending.iter().take(keep).enumerate() {
                    let sectors = (data.len() / SECTOR_SIZE_BYTES) as u64;
                    let n = if i + 1 == keep { rng.below(sectors) + 1 } else { sectors };
                    let len = n as usize * SECTOR_SIZE_BYTES;
                    self.inner
                        .write_batch(&[WriteOp { first_sector: *first, data: &data[..len] }])?;
                }
            }
            CrashMode::Reordered { seed } => {
                let mut rng = SplitMix64::new(seed);
                for (first, data) in &pending {
                    for (i, chunk) in data.chunks(SECTOR_SIZE_BYTES).enumerate() {
                        if rng.below(2) == 1 {
                            let op = WriteOp { first_sector: first + i as u64, data: chunk };
                            self.inner.write_batch(&[op])?;
                        }
                    }
                }
            }
        }
        Ok(self.inner)
    }

    /// The inner device (durable state only; pending writes are not applied).
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }
}

impl<D: BlockDevice> BlockDevice for FaultDevice<D> {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        self.inner.read_batch(reads)?;
        for r in reads.iter_mut() {
            overlay(&self.pending, r.first_sector, r.buf);
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        let n = self.sector_count();
        for w in writes {
            check_io(w.first_sector, w.data.len(), n)?;
        }
        for w in writes {
            self.pending.push((w.first_sector, w.data.to_vec()));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        let pending = std::mem::take(&mut self.pending);
        let ops: Vec<WriteOp<'_>> =
            pending.iter().map(|(f, d)| WriteOp { first_sector: *f, data: d }).collect();
        self.inner.write_batch(&ops)?;
        self.inner.flush()?;
        self.flushes += 1;
        Ok(())
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        check_range(first_sector, sector_count, self.sector_count())?;
        // A trim is ordered after earlier writes: flush them first so it cannot be undone by a
        // pending write landing later, then trim the durable image.
        self.flush()?;
        self.inner.trim(first_sector, sector_count)
    }

    fn prefetch(&mut self, first_sector: u64, sector_count: u64) {
        self.inner.prefetch(first_sector, sector_count);
    }
}

/// Copies the pending writes that overlap `[first, first + buf.len())` over `buf`, in order.
fn overlay(pending: &[(u64, Vec<u8>)], first: u64, buf: &mut [u8]) {
    let s = SECTOR_SIZE_BYTES as u64;
    let end = first * s + buf.len() as u64;
    for (wf, data) in pending {
        let (ws, we) = (wf * s, wf * s + data.len() as u64);
        let (lo, hi) = (ws.max(first * s), we.min(end));
        if lo >= hi {
            continue;
        }
        let dst = (lo - first * s) as usize..(hi - first * s) as usize;
        let src = (lo - ws) as usize..(hi - ws) as usize;
        if let (Some(d), Some(sr)) = (buf.get_mut(dst), data.get(src)) {
            d.copy_from_slice(sr);
        }
    }
}
