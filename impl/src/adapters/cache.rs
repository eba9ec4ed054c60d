//! The kernel's page cache across opens (`specs/adapters.md` ADP-14): close-to-open
//! consistency, as NFS clients give.
//!
//! A FUSE open may tell the kernel to keep the pages it cached for the file
//! (`FOPEN_KEEP_CACHE`) instead of dropping them. That is safe when every change to the file
//! since those pages were cached came through this kernel: the share's own operations do (the
//! kernel sees each write and truncate), while a refresh to other processes' commits (ADP-13)
//! and a merge at commit (ADP-5) bring in changes it never saw. So the share counts those
//! (`outside`), remembers the count at each open of a number, and lets an open keep the cache
//! only when nothing came in from outside since the number's previous open. A number whose
//! name went away (unlink, rename over it) forgets its open, so a new file that takes the
//! number again never inherits another file's pages.

use super::share::{ShareFs, State, fs_err, rofs};
use super::types::Errno;

impl ShareFs {
    /// Opens `ino` (`write`: for writing): a handle for [`ShareFs::release`], and whether the
    /// kernel may keep the pages it cached for it (ADP-14).
    pub fn open_cached(&self, ino: u64, write: bool) -> Result<(u64, bool), Errno> {
        if write && self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.fresh();
        let t = self.target(&mut st, ino)?;
        self.fs().stat(&t.root, &t.path).map_err(fs_err)?;
        let fh = st.next_fh;
        st.next_fh += 1;
        st.handles.insert(fh, (ino, write));
        let outside = st.outside;
        let kept = st.opened.insert(ino, outside) == Some(outside);
        // Planted bug adapters:keep-cache-always: every open keeps the kernel's pages.
        let keep = !t.orphan && (kept || crate::bugs::active("adapters:keep-cache-always"));
        Ok((fh, keep))
    }

    /// Forgets the opens of numbers no name holds any more.
    pub(super) fn forget_cached(&self, st: &mut State) {
        let State { opened, inodes, .. } = st;
        opened.retain(|ino, _| inodes.path(*ino).is_some());
    }
}
