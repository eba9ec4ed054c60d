//! `UringDevice`: a [`FileDevice`] whose batches go through io_uring, a whole batch submitted
//! at once (queue depth up to [`URING_QUEUE_DEPTH_MAX`]) and reaped together (SEC-1). Flush is
//! `fdatasync` (SEC-2); trim is the file's hole punch.
//!
//! If the kernel refuses io_uring (old kernel, seccomp, sandbox), [`UringDevice::open`] returns
//! [`DeviceError::Unsupported`] and [`open_best`] falls back to a plain [`FileDevice`].

use super::file::AlignedBuf;
use super::{BlockDevice, DeviceError, FileDevice, ReadOp, WriteOp, check_io};
use crate::sector::SECTOR_SIZE_BYTES;
use io_uring::{IoUring, opcode, types};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Most I/Os in flight at once.
pub const URING_QUEUE_DEPTH_MAX: u32 = 256;

/// A file-backed device driven through io_uring.
pub struct UringDevice {
    file: FileDevice,
    ring: IoUring,
}

impl std::fmt::Debug for UringDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDevice").field("file", &self.file).finish()
    }
}

impl UringDevice {
    /// Opens `path` for io_uring I/O; `Unsupported` if the kernel refuses io_uring.
    pub fn open(path: &Path, direct: bool) -> Result<UringDevice, DeviceError> {
        let file = FileDevice::open(path, direct)?;
        UringDevice::wrap(file)
    }

    /// Drives an already open file through io_uring.
    pub fn wrap(file: FileDevice) -> Result<UringDevice, DeviceError> {
        let ring = IoUring::new(URING_QUEUE_DEPTH_MAX)
            .map_err(|e| DeviceError::Unsupported(format!("io_uring unavailable: {e}")))?;
        Ok(UringDevice { file, ring })
    }

    /// Submits `(is_write, offset, ptr, len)` I/Os in chunks of the queue depth and waits for
    /// all of them; any failed or short I/O is an error.
    fn run(&mut self, ios: &[(bool, u64, *mut u8, u32)]) -> Result<(), DeviceError> {
        let fd = types::Fd(self.file.file().as_raw_fd());
        for chunk in ios.chunks(URING_QUEUE_DEPTH_MAX as usize) {
            for (i, (write, off, ptr, len)) in chunk.iter().enumerate() {
                let entry = if *write {
                    opcode::Write::new(fd, ptr.cast_const(), *len).offset(*off).build()
                } else {
                    opcode::Read::new(fd, *ptr, *len).offset(*off).build()
                };
                // SAFETY: every buffer outlives this call, which waits for all completions.
                unsafe { self.ring.submission().push(&entry.user_data(i as u64)) }.map_err(
                    |_| DeviceError::Unsupported("io_uring submission queue full".into()),
                )?;
            }
            self.ring.submit_and_wait(chunk.len())?;
            let mut done = 0;
            while done < chunk.len() {
                let Some(cqe) = self.ring.completion().next() else {
                    self.ring.submit_and_wait(1)?;
                    continue;
                };
                done += 1;
                let want = chunk.get(cqe.user_data() as usize).map_or(0, |c| c.3);
                if cqe.result() < 0 {
                    return Err(std::io::Error::from_raw_os_error(-cqe.result()).into());
                }
                if cqe.result() as u32 != want {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "short io_uring I/O",
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
}

/// Opens `path` with io_uring if the kernel allows it, else as a plain [`FileDevice`].
pub fn open_best(path: &Path, direct: bool) -> Result<Box<dyn BlockDevice>, DeviceError> {
    match UringDevice::open(path, direct) {
        Ok(d) => Ok(Box::new(d)),
        Err(DeviceError::Unsupported(_)) => Ok(Box::new(FileDevice::open(path, direct)?)),
        Err(e) => Err(e),
    }
}

impl BlockDevice for UringDevice {
    fn sector_count(&self) -> u64 {
        self.file.sector_count()
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        let n = self.sector_count();
        let direct = self.file.is_direct();
        let mut bounces: Vec<AlignedBuf> = Vec::new();
        let mut ios = Vec::with_capacity(reads.len());
        for r in reads.iter_mut() {
            check_io(r.first_sector, r.buf.len(), n)?;
            let off = r.first_sector * SECTOR_SIZE_BYTES as u64;
            if direct {
                bounces.push(AlignedBuf::new(r.buf.len()));
                let b = bounces
                    .last_mut()
                    .map(|b| b.as_mut_slice().as_mut_ptr())
                    .unwrap_or(std::ptr::null_mut());
                ios.push((false, off, b, r.buf.len() as u32));
            } else {
                ios.push((false, off, r.buf.as_mut_ptr(), r.buf.len() as u32));
            }
        }
        self.run(&ios)?;
        if direct {
            for (r, b) in reads.iter_mut().zip(bounces.iter_mut()) {
                r.buf.copy_from_slice(b.as_mut_slice());
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        let n = self.sector_count();
        let direct = self.file.is_direct();
        let mut bufs: Vec<AlignedBuf> = Vec::new();
        let mut ios = Vec::with_capacity(writes.len());
        for w in writes {
            check_io(w.first_sector, w.data.len(), n)?;
            let off = w.first_sector * SECTOR_SIZE_BYTES as u64;
            let ptr = if direct {
                // O_DIRECT needs sector-aligned memory: copy through a bounce buffer.
                let mut b = AlignedBuf::new(w.data.len());
                b.as_mut_slice().copy_from_slice(w.data);
                bufs.push(b);
                bufs.last_mut().map_or(std::ptr::null_mut(), |b| b.as_mut_slice().as_mut_ptr())
            } else {
                // The kernel only reads from a write's buffer; the pointer is never written.
                w.data.as_ptr().cast_mut()
            };
            ios.push((true, off, ptr, w.data.len() as u32));
        }
        self.run(&ios)
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.file.flush()
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        self.file.trim(first_sector, sector_count)
    }

    fn syncer(&self) -> Option<std::sync::Arc<dyn super::DeviceSync>> {
        self.file.syncer()
    }

    fn prefetch(&mut self, first_sector: u64, sector_count: u64) {
        self.file.prefetch(first_sector, sector_count);
    }
}

// SAFETY: the ring is owned and only used through `&mut self`; no raw pointer outlives a call.
unsafe impl Send for UringDevice {}
