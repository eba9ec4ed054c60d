//! The write buffer (`specs/adapters.md` ADP-12): consecutive writes to one file become one
//! file-tree edit.
//!
//! The kernel hands a sequential copy to the share in requests of 128 KiB or less; applied one
//! by one, each would be chunked alone (a blob per request, never the content-defined chunks of
//! FS-6), re-edit the file's tree path and its mtime, and stage, spill and promote its own blob.
//! So a write that extends the buffered run of the same file (same inode, starting where the
//! run ends) is appended to it in memory, up to [`WRITE_BUFFER_BYTES`]; any other request first
//! applies the run ([`ShareFs::lock`] does, for every operation), so every operation sees every
//! write before it, in order. Limits are checked when a write arrives (EFBIG, EROFS, ENOENT,
//! EISDIR at once); a run that fails when applied (an I/O error staging it) is reported by the
//! next `fsync`, close or commit, and that commit publishes nothing — as a kernel reports a
//! failed writeback.
//!
//! Never: let an operation observe the tree without the writes acknowledged before it; hold
//! more than one run of at most [`WRITE_BUFFER_BYTES`]; publish a commit after a run failed
//! without reporting it.

use super::share::{ShareFs, State};
use super::types::{AdapterError, Errno, errno_of};
use crate::fs::FILE_SIZE_MAX_BYTES;

/// The longest run of consecutive writes held in memory before it is applied (two of the
/// chunker's largest chunks, so a run cuts like one stream).
pub const WRITE_BUFFER_BYTES: usize = 4 << 20;

/// A run of consecutive writes to one file, not yet in the working tree.
#[derive(Debug)]
pub(super) struct Run {
    ino: u64,
    offset: u64,
    data: Vec<u8>,
    /// When the last write of the run arrived (the file's new mtime, ADP-7).
    at_ns: i64,
}

impl ShareFs {
    /// Writes `data` at `offset` of file `ino` (sets its mtime); returns the bytes written.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        if self.opts.read_only {
            return Err(Errno(libc::EROFS));
        }
        let n = u32::try_from(data.len()).map_err(|_| Errno(libc::EINVAL))?;
        let end = offset.checked_add(data.len() as u64).ok_or(Errno(libc::EFBIG))?;
        if end > FILE_SIZE_MAX_BYTES {
            return Err(Errno(libc::EFBIG));
        }
        let now = self.now();
        let mut st = self.lock_unflushed();
        if let Some(run) = st.run.as_mut()
            && run.ino == ino
            && run.offset + run.data.len() as u64 == offset
            && run.data.len() + data.len() <= WRITE_BUFFER_BYTES
        {
            run.data.extend_from_slice(data);
            run.at_ns = now;
            self.touch_ctime(&mut st, ino);
            return Ok(n);
        }
        self.apply_run(&mut st);
        // The target must be a file now: its errors belong to this write, not to a later one.
        let t = self.target(&mut st, ino)?;
        self.fs().file_info(&t.root, &t.path).map_err(|e| errno_of(&e))?;
        if data.len() >= WRITE_BUFFER_BYTES {
            self.write_now(&mut st, ino, offset, data, now)?;
        } else {
            st.run = Some(Run { ino, offset, data: data.to_vec(), at_ns: now });
        }
        self.touch_ctime(&mut st, ino);
        Ok(n)
    }

    /// Applies the buffered run, if any; a failure is kept for [`ShareFs::take_write_error`].
    pub(super) fn apply_run(&self, st: &mut State) {
        let Some(run) = st.run.take() else { return };
        if crate::bugs::active("adapters:write-buffer-skips-flush") {
            st.run = Some(run);
            return;
        }
        if let Err(e) = self.write_now(st, run.ino, run.offset, &run.data, run.at_ns) {
            st.write_error.get_or_insert(e);
        }
    }

    /// One file-tree edit: `data` at `offset` of `ino`'s file, whose mtime becomes `at_ns`.
    fn write_now(
        &self,
        st: &mut State,
        ino: u64,
        offset: u64,
        data: &[u8],
        at_ns: i64,
    ) -> Result<(), Errno> {
        let t = self.target(st, ino)?;
        let fs = self.fs();
        let r = fs.write(&t.root, &t.path, offset, data).map_err(|e| errno_of(&e))?;
        let r = fs.utimens(&r, &t.path, at_ns).map_err(|e| errno_of(&e))?;
        self.put_target(st, ino, &t, r);
        Ok(())
    }

    /// Applies the buffered run and reports (once) a run that failed since the last report:
    /// what `fsync` and close answer (ADP-12).
    pub fn take_write_error(&self) -> Result<(), Errno> {
        match self.lock().write_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// For a commit: a run that failed is reported instead of publishing without it.
    pub(super) fn check_writes(st: &mut State) -> Result<(), AdapterError> {
        match st.write_error.take() {
            Some(e) => Err(AdapterError::WriteBack(e)),
            None => Ok(()),
        }
    }
}
