//! Inode numbers and names (ADP-2, FS-12): the path a number names (found again after a
//! restart), the number a path has, and hard links — `link(2)` gives a node a further name, and
//! every name of one node answers with one inode number, one link count and one ctime.
//!
//! The file tree keeps the node under an inode with one back-reference per name
//! (`specs/fs.md` FS-12); here a name linked while the share runs takes the number its source
//! already has, and a linked name seen for the first time takes the number another name of the
//! same node holds, else one derived from the node ([`node_ino`]).

use super::inode::{node_ino, path_ino};
use super::share::{ShareFs, State, fs_err, join, rofs};
use super::types::{Attr, Errno, errno_of};
use crate::fs::{FsError, FsPath, Kind};

impl ShareFs {
    /// The path inode `ino` names. A number from before a restart (an NFS file handle) is found
    /// again by the path, or the linked node, it derives from (ADP-2, ADP-9).
    pub(super) fn path_of(&self, st: &mut State, ino: u64) -> Result<FsPath, Errno> {
        if let Some(p) = st.inodes.path(ino) {
            return Ok(p.clone());
        }
        // A number from before a restart (an NFS file handle): find the path it derives from.
        let fs = self.fs();
        let all = fs.walk(&st.root, &FsPath::root()).map_err(fs_err)?;
        for (p, info) in all {
            // A path that already has a number (a rename target) is not this one's.
            if st.inodes.get(&p).is_some() {
                continue;
            }
            if path_ino(&p) == ino {
                st.inodes.bind(ino, &p);
                return Ok(p);
            }
            // A linked node's number derives from its inode (FS-12).
            if info.kind != Kind::Dir
                && fs.inode_of(&st.root, &p).ok().flatten().is_some_and(|n| node_ino(n) == ino)
            {
                st.inodes.bind(ino, &p);
                return Ok(p);
            }
        }
        Err(Errno(libc::ESTALE))
    }

    /// Gives node `ino` the further name `name` in directory `newparent` (`link(2)`): `EPERM`
    /// for a directory, `EEXIST` if the name is taken, `ENOENT` for an unlinked open file.
    pub fn link(&self, ino: u64, newparent: u64, name: &[u8]) -> Result<Attr, Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.lock();
        let t = self.target(&mut st, ino)?;
        if t.orphan {
            return Err(Errno(libc::ENOENT));
        }
        let dir = self.path_of(&mut st, newparent)?;
        let to = join(&dir, name)?;
        let fs = self.fs();
        let r = fs.link(&st.root, &t.path, &to).map_err(|e| match e {
            FsError::IsADirectory { .. } => Errno(libc::EPERM),
            other => errno_of(&other),
        })?;
        let r = self.touch_dir(&mut st, r, &dir)?;
        self.set_root(&mut st, r);
        st.inodes.share(ino, &to);
        self.touch_ctime(&mut st, ino);
        let info = fs.stat(&r, &to).map_err(fs_err)?;
        Ok(self.attr(&mut st, &to, &info))
    }

    /// The inode number of `path` in the working tree, assigning one if it has none: every
    /// name of a linked node shares one (see the module docs).
    pub(super) fn ino_of(&self, st: &mut State, path: &FsPath) -> u64 {
        if let Some(i) = st.inodes.get(path) {
            return i;
        }
        let fs = self.fs();
        let Ok(Some(n)) = fs.inode_of(&st.root, path) else { return st.inodes.ino(path) };
        let names = fs.links_of(&st.root, n).unwrap_or_default();
        if let Some(i) = names.iter().find_map(|p| st.inodes.get(p)) {
            st.inodes.share(i, path);
            return i;
        }
        st.inodes.ino_from(path, node_ino(n))
    }

    /// Does the node at `path` of `root` have other names (so removing this one keeps it)?
    pub(super) fn has_other_names(&self, root: &crate::storage::refs::Ref, path: &FsPath) -> bool {
        self.fs().nlink(root, path).is_ok_and(|n| n > 1)
    }
}
