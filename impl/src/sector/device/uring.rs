//! `UringDevice`: a [`FileDevice`] whose batches go through io_uring, a whole batch submitted
//! at once (queue depth up to [`URING_QUEUE_DEPTH_MAX`]) and reaped together (SEC-1). Flush is
//! `fdatasync` (SEC-2); trim is the file's hole punch.
//!
//! If the kernel refuses io_uring (old kernel, seccomp, sandbox), [`UringDevice::open`] returns
//! [`DeviceError::Unsupported`] and [`open_best`] falls back to a plain [`FileDevice`].
//!
//! Without `O_DIRECT` the ring is used only where it pays: for the reads of a batch that the
//! page cache cannot serve. A buffered write only copies into the page cache, and the kernel
//! runs a buffered io_uring write on a worker thread, so one 4 KiB write cost 47 µs through the
//! ring against 4 µs by `pwrite` (ext4, 2026-12-05; `docs/benchmarks-sector.md`): buffered
//! writes and single reads go straight to the file, and a batch's reads are first tried with
//! `preadv2(RWF_NOWAIT)` (served only if cached), the misses submitted together. On a
//! memory-backed file system (tmpfs, ramfs) nothing waits for a device, the kernel refuses
//! `RWF_NOWAIT`, and a read through the ring cost 41 µs against 1.3 µs: [`open_best`] opens
//! such files as a plain [`FileDevice`].

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
    /// Whether the file system serves `preadv2(RWF_NOWAIT)` (cleared at its first refusal).
    nowait: bool,
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
        Ok(UringDevice { file, ring, nowait: true })
    }

    /// Reads `buf` at byte `off` if the page cache holds all of it, without waiting for the
    /// device (`preadv2` with `RWF_NOWAIT`). `false`: not (wholly) cached, or the file system
    /// cannot say; the caller reads it through the ring.
    fn read_cached(&mut self, buf: &mut [u8], off: u64) -> Result<bool, DeviceError> {
        let Ok(off) = libc::off_t::try_from(off) else { return Ok(false) };
        if !self.nowait {
            return Ok(false);
        }
        let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: `iov` describes `buf`, which is valid and exclusively borrowed for the call.
        let n =
            unsafe { libc::preadv2(self.file.file().as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) };
        if n >= 0 {
            return Ok(usize::try_from(n).is_ok_and(|n| n == buf.len()));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => Ok(false),
            Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                self.nowait = false;
                Ok(false)
            }
            _ => Err(err.into()),
        }
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

/// Opens `path` with io_uring if the kernel allows it, else as a plain [`FileDevice`]; a file on
/// a memory-backed file system (tmpfs, ramfs) buffered is always a plain [`FileDevice`] (module
/// docs).
pub fn open_best(path: &Path, direct: bool) -> Result<Box<dyn BlockDevice>, DeviceError> {
    if !direct && memory_backed(path) {
        return Ok(Box::new(FileDevice::open(path, direct)?));
    }
    match UringDevice::open(path, direct) {
        Ok(d) => Ok(Box::new(d)),
        Err(DeviceError::Unsupported(_)) => Ok(Box::new(FileDevice::open(path, direct)?)),
        Err(e) => Err(e),
    }
}

/// Whether `path` is on tmpfs or ramfs (`statfs`); `false` if that cannot be told.
fn memory_backed(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer, both live for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const RAMFS_MAGIC: libc::__fsword_t = 0x8584_58f6; // linux/magic.h; not in `libc`
    matches!(st.f_type, libc::TMPFS_MAGIC | RAMFS_MAGIC)
}

impl BlockDevice for UringDevice {
    fn sector_count(&self) -> u64 {
        self.file.sector_count()
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        let n = self.sector_count();
        if !self.file.is_direct() {
            if reads.len() == 1 {
                return self.file.read_batch(reads);
            }
            let mut misses = Vec::new();
            for r in reads.iter_mut() {
                check_io(r.first_sector, r.buf.len(), n)?;
                let off = r.first_sector * SECTOR_SIZE_BYTES as u64;
                if !self.read_cached(r.buf, off)? {
                    misses.push((false, off, r.buf.as_mut_ptr(), r.buf.len() as u32));
                }
            }
            return self.run(&misses);
        }
        // O_DIRECT needs sector-aligned memory: read into bounce buffers, then copy out.
        let mut bounces: Vec<AlignedBuf> = Vec::with_capacity(reads.len());
        let mut ios = Vec::with_capacity(reads.len());
        for r in reads.iter() {
            check_io(r.first_sector, r.buf.len(), n)?;
            let mut b = AlignedBuf::new(r.buf.len());
            let off = r.first_sector * SECTOR_SIZE_BYTES as u64;
            ios.push((false, off, b.as_mut_slice().as_mut_ptr(), r.buf.len() as u32));
            bounces.push(b); // moves the struct, not its heap buffer
        }
        self.run(&ios)?;
        for (r, b) in reads.iter_mut().zip(bounces.iter_mut()) {
            r.buf.copy_from_slice(b.as_mut_slice());
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        if !self.file.is_direct() {
            return self.file.write_batch(writes);
        }
        let n = self.sector_count();
        // O_DIRECT needs sector-aligned memory: copy through bounce buffers.
        let mut bufs: Vec<AlignedBuf> = Vec::with_capacity(writes.len());
        let mut ios = Vec::with_capacity(writes.len());
        for w in writes {
            check_io(w.first_sector, w.data.len(), n)?;
            let mut b = AlignedBuf::new(w.data.len());
            b.as_mut_slice().copy_from_slice(w.data);
            let off = w.first_sector * SECTOR_SIZE_BYTES as u64;
            ios.push((true, off, b.as_mut_slice().as_mut_ptr(), w.data.len() as u32));
            bufs.push(b);
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
