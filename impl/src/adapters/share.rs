//! [`ShareFs`]: one share's working tree, served to a protocol adapter (ADP-1..ADP-9).
//!
//! The working tree is a file tree (`cellar::fs`) whose root lives only in this value; every
//! operation is a functional edit of it under one lock, so each is atomic and none is visible
//! to other processes until [`ShareFs::commit`] makes it a snapshot on top of the head it was
//! based on and compare-and-swaps the volume's cell from that head to the new one. A lost CAS
//! (someone else committed first) merges the two heads at file granularity (FS-19, FS-22), ours
//! first, and tries again: a path both sides changed keeps our version and gets theirs beside it
//! under a conflict name — never a silent overwrite.
//!
//! Errors are errno values ([`Errno`]) because that is what both adapters answer with; the
//! mapping from [`FsError`] is [`errno_of`].
//!
//! Never: read the clock except through [`Clock`]; publish a head whose blobs are not all in
//! the volume's store (the staging store promotes first, VOL-3); change the cell without
//! holding Expand (VOL-2); overwrite a head we did not base our work on.

use super::inode::{Inodes, ROOT_INO, path_ino};
use super::staging::{PromoteError, Promoted, StagingStore};
use crate::db::merge::NodeId;
use crate::db::snapshot::{self, SnapshotError};
use crate::env::Clock;
use crate::fs::{Attrs, CommitError, Conflict, Fs, FsError, FsPath, Info, Kind};
use crate::storage::refs::{Ref, RefError};
use crate::storage::store::StoreError;
use crate::storage::volume::{Mode, Volume, VolumeError};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// An errno value (`libc::E*`), what an adapter answers a refused request with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// The errno for a refused or failed file-tree operation (ADP-6).
pub fn errno_of(e: &FsError) -> Errno {
    Errno(match e {
        FsError::InvalidPath { .. } => libc::EINVAL,
        FsError::PathTooLong { .. } | FsError::NameTooLong { .. } => libc::ENAMETOOLONG,
        FsError::FileTooLarge { .. } => libc::EFBIG,
        FsError::DirectoryFull { .. } => libc::ENOSPC,
        FsError::InvalidTarget { size_bytes: 0 } => libc::ENOENT,
        FsError::InvalidTarget { .. } => libc::ENAMETOOLONG,
        FsError::InvalidMode { .. } | FsError::ReadTooLarge { .. } => libc::EINVAL,
        FsError::NotFound { .. } => libc::ENOENT,
        FsError::AlreadyExists { .. } => libc::EEXIST,
        FsError::NotADirectory { .. } => libc::ENOTDIR,
        FsError::IsADirectory { .. } => libc::EISDIR,
        FsError::NotAFile { .. } | FsError::NotASymlink { .. } => libc::EINVAL,
        FsError::NotEmpty { .. } => libc::ENOTEMPTY,
        FsError::InvalidRename { .. } => libc::EINVAL,
        FsError::Unsupported { .. } => libc::EPERM,
        _ => libc::EIO,
    })
}

/// Errors of opening a share and of commits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The volume's cell or mode lock refused.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The file tree refused or is damaged.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A commit or merge failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The history is damaged.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Copying the new head's blobs into the volume's store failed.
    #[error(transparent)]
    Promote(#[from] PromoteError),
    /// The spill directory.
    #[error("spill directory: {0}")]
    Io(#[from] std::io::Error),
    /// A cleanup holds Contract: the commit can be retried once it ends (VOL-2).
    #[error("a cleanup of the volume is running (Contract held); commit again later")]
    Busy,
    /// Someone emptied the cell under us.
    #[error("the volume's cell was emptied by another writer; refusing to commit over it")]
    CellEmptied,
    /// Other writers kept winning the CAS.
    #[error("lost the cell CAS {0} times in a row; commit again")]
    Contended(u32),
}

impl AdapterError {
    /// The errno an adapter answers a failed commit with.
    pub fn errno(&self) -> Errno {
        match self {
            AdapterError::Busy | AdapterError::Contended(_) => Errno(libc::EAGAIN),
            AdapterError::Fs(e) => errno_of(e),
            _ => Errno(libc::EIO),
        }
    }
}

/// How many lost CASes one [`ShareFs::commit`] merges through before giving up.
pub const COMMIT_CAS_ATTEMPTS_MAX: u32 = 8;
/// Staged bytes after which unreachable staged blobs are dropped (ADP-4).
pub const STAGING_COMPACT_BYTES: u64 = 256 * 1024 * 1024;

/// How a share is served.
#[derive(Clone)]
pub struct ShareOptions {
    /// Refuse every change with `EROFS`.
    pub read_only: bool,
    /// Where staged blobs of 32 KiB and more are spilled (emptied on open).
    pub spill_dir: PathBuf,
    /// The author of this server's commits.
    pub author: NodeId,
    /// Time for mtimes and ctimes.
    pub clock: Arc<dyn Clock>,
    /// Owner of the root directory of an empty volume.
    pub root_owner: (u32, u32),
    /// Prefix of commit messages (`cellar mount SHARE`).
    pub label: String,
}

impl std::fmt::Debug for ShareOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareOptions")
            .field("read_only", &self.read_only)
            .field("spill_dir", &self.spill_dir)
            .field("label", &self.label)
            .finish()
    }
}

/// Attributes of one inode, as both adapters report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number ([`super::inode`]).
    pub ino: u64,
    /// File, directory or symlink.
    pub kind: Kind,
    /// Bytes (file), target length (symlink), entries (directory), device number (device),
    /// 0 (FIFO, socket).
    pub size: u64,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count: 1, or for a directory 2 plus its subdirectories (no hard links, FS-12).
    pub nlink: u32,
    /// Modification time (ns since the epoch), stored in the tree.
    pub mtime_ns: i64,
    /// Status change time: kept in memory by this server only (ADP-7).
    pub ctime_ns: i64,
    /// Access time: kept in memory by this server only (ADP-7).
    pub atime_ns: i64,
}

/// A time to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// The server's clock now.
    Now,
    /// This many ns since the epoch.
    At(i64),
}

/// What `setattr` changes (every `None` stays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend with a hole).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
}

/// Who asks (new files are theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// The head now in the cell (`None`: nothing was ever committed).
    pub head: Option<Ref>,
    /// True if a new head was published.
    pub published: bool,
    /// Lost CASes merged through.
    pub merges: u32,
    /// Conflicts of those merges (theirs kept beside ours).
    pub conflicts: Vec<Conflict>,
    /// Blobs copied into the volume's store.
    pub promoted: Promoted,
}

#[derive(Clone, Copy, Debug, Default)]
struct Times {
    atime_ns: Option<i64>,
    ctime_ns: Option<i64>,
}

struct State {
    /// The working tree.
    root: Ref,
    /// The head the working tree descends from (`None`: the cell was empty).
    base: Option<Ref>,
    /// The working tree differs from `base`'s tree.
    dirty: bool,
    inodes: Inodes,
    times: HashMap<u64, Times>,
    handles: HashMap<u64, (u64, bool)>,
    next_fh: u64,
    /// Subdirectory counts of directories (for `nlink`), dropped when they may change.
    subdirs: HashMap<FsPath, u32>,
}

/// One share's working tree (see the module docs).
pub struct ShareFs {
    volume: Volume,
    salt: [u8; 32],
    staging: Arc<StagingStore>,
    opts: ShareOptions,
    state: Mutex<State>,
}

impl std::fmt::Debug for ShareFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareFs").field("opts", &self.opts).finish()
    }
}

fn rofs() -> Errno {
    Errno(libc::EROFS)
}

fn fs_err(e: FsError) -> Errno {
    errno_of(&e)
}

impl ShareFs {
    /// Opens the head in `volume`'s cell (an empty cell: a new tree with one root directory,
    /// committed at the first commit). `salt` is the volume's ref salt.
    pub fn open(volume: Volume, salt: [u8; 32], opts: ShareOptions) -> Result<Self, AdapterError> {
        let staging = Arc::new(StagingStore::new(volume.store.clone(), &opts.spill_dir)?);
        let value = volume.cell.read().map_err(VolumeError::from)?;
        let base = snapshot::head_from_cell(&value)?;
        let (root, dirty) = {
            let fs = Fs::new(staging.as_ref(), salt);
            match &base {
                Some(h) => (fs.tree_of(h)?, false),
                None => {
                    let (uid, gid) = opts.root_owner;
                    let attrs = Attrs { mode: 0o755, uid, gid, mtime_ns: now_ns(&opts) };
                    (fs.mkfs(attrs)?, true)
                }
            }
        };
        let state = State {
            root,
            base,
            dirty,
            inodes: Inodes::new(),
            times: HashMap::new(),
            handles: HashMap::new(),
            next_fh: 1,
            subdirs: HashMap::new(),
        };
        Ok(Self { volume, salt, staging, opts, state: Mutex::new(state) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fs(&self) -> Fs<'_> {
        Fs::new(self.staging.as_ref(), self.salt)
    }

    fn now(&self) -> i64 {
        now_ns(&self.opts)
    }

    /// Where staged blobs spill (the shells delete it after their final commit).
    pub fn spill_dir(&self) -> &std::path::Path {
        &self.opts.spill_dir
    }

    /// Is the share served read-only?
    pub fn read_only(&self) -> bool {
        self.opts.read_only
    }

    /// The root directory's inode.
    pub fn root_ino(&self) -> u64 {
        ROOT_INO
    }

    /// The head the working tree is based on, and whether it has uncommitted changes.
    pub fn status(&self) -> (Option<Ref>, bool) {
        let st = self.lock();
        (st.base, st.dirty)
    }

    /// The working tree's root (for tests and `cellar` tools).
    pub fn working_root(&self) -> Ref {
        self.lock().root
    }

    fn path_of(&self, st: &mut State, ino: u64) -> Result<FsPath, Errno> {
        if let Some(p) = st.inodes.path(ino) {
            return Ok(p.clone());
        }
        // A number from before a restart (an NFS file handle): find the path it derives from.
        let fs = self.fs();
        let all = fs.walk(&st.root, &FsPath::root()).map_err(fs_err)?;
        for (p, _) in all {
            // A path that already has a number (a rename target) is not this one's.
            if path_ino(&p) == ino && st.inodes.get(&p).is_none() {
                st.inodes.bind(ino, &p);
                return Ok(p);
            }
        }
        Err(Errno(libc::ESTALE))
    }

    /// A directory's link count: 2 plus its subdirectories (computed once, then cached).
    fn dir_nlink(&self, st: &mut State, path: &FsPath) -> u32 {
        if let Some(n) = st.subdirs.get(path) {
            return 2 + n;
        }
        let n = match self.fs().readdir(&st.root, path) {
            Ok(es) => es.iter().filter(|e| e.info.kind == Kind::Dir).count(),
            Err(_) => 0,
        };
        let n = u32::try_from(n).unwrap_or(u32::MAX - 2);
        st.subdirs.insert(path.clone(), n);
        2 + n
    }

    fn attr(&self, st: &mut State, path: &FsPath, info: &Info) -> Attr {
        let nlink = if info.kind == Kind::Dir { self.dir_nlink(st, path) } else { 1 };
        let ino = st.inodes.ino(path);
        let t = st.times.get(&ino).copied().unwrap_or_default();
        Attr {
            ino,
            kind: info.kind,
            size: info.size,
            mode: info.mode,
            uid: info.uid,
            gid: info.gid,
            nlink,
            mtime_ns: info.mtime_ns,
            ctime_ns: t.ctime_ns.unwrap_or(info.mtime_ns).max(info.mtime_ns),
            atime_ns: t.atime_ns.unwrap_or(info.mtime_ns),
        }
    }

    fn touch_ctime(&self, st: &mut State, ino: u64) {
        let now = self.now();
        st.times.entry(ino).or_default().ctime_ns = Some(now);
    }

    /// Sets a directory's mtime to now after its entries changed (POSIX), ctime too.
    fn touch_dir(&self, st: &mut State, root: Ref, dir: &FsPath) -> Result<Ref, Errno> {
        let now = self.now();
        let r = self.fs().utimens(&root, dir, now).map_err(fs_err)?;
        let ino = st.inodes.ino(dir);
        st.times.entry(ino).or_default().ctime_ns = Some(now);
        Ok(r)
    }

    fn set_root(&self, st: &mut State, root: Ref) {
        st.root = root;
        st.dirty = true;
        let (_, mem, spilled) = self.staging.usage();
        if mem as u64 + spilled > STAGING_COMPACT_BYTES
            && let Ok(keep) = self.staging.staged_reach(&self.salt, &root)
        {
            self.staging.retain(&keep);
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr, Errno> {
        let mut st = self.lock();
        let path = self.path_of(&mut st, ino)?;
        let info = self.fs().stat(&st.root, &path).map_err(fs_err)?;
        Ok(self.attr(&mut st, &path, &info))
    }

    /// The entry `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, Errno> {
        let mut st = self.lock();
        let dir = self.path_of(&mut st, parent)?;
        let path = join(&dir, name)?;
        let fs = self.fs();
        match fs.lookup(&st.root, &path).map_err(fs_err)? {
            Some(info) => Ok(self.attr(&mut st, &path, &info)),
            None => {
                // ENOTDIR when the parent is not a directory.
                let pinfo = fs.stat(&st.root, &dir).map_err(fs_err)?;
                if pinfo.kind != Kind::Dir {
                    return Err(Errno(libc::ENOTDIR));
                }
                Err(Errno(libc::ENOENT))
            }
        }
    }

    /// The entries of directory `ino`: (name, inode, kind), in name order.
    pub fn readdir(&self, ino: u64) -> Result<Vec<(Vec<u8>, u64, Kind)>, Errno> {
        let mut st = self.lock();
        let dir = self.path_of(&mut st, ino)?;
        let entries = self.fs().readdir(&st.root, &dir).map_err(fs_err)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let p = join(&dir, &e.name)?;
            let i = st.inodes.ino(&p);
            out.push((e.name, i, e.info.kind));
        }
        Ok(out)
    }

    /// The parent directory's inode of `ino` (the root is its own parent).
    pub fn parent(&self, ino: u64) -> Result<u64, Errno> {
        let mut st = self.lock();
        let p = self.path_of(&mut st, ino)?;
        let parent = p.parent().unwrap_or_else(FsPath::root);
        Ok(st.inodes.ino(&parent))
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let mut st = self.lock();
        let path = self.path_of(&mut st, ino)?;
        self.fs().readlink(&st.root, &path).map_err(fs_err)
    }

    fn new_attrs(
        &self,
        st: &State,
        dir: &FsPath,
        mode: u32,
        c: Caller,
        is_dir: bool,
    ) -> Result<Attrs, Errno> {
        let pinfo = self.fs().stat(&st.root, dir).map_err(fs_err)?;
        let mut mode = mode & 0o7777;
        let gid = if pinfo.mode & 0o2000 != 0 {
            if is_dir {
                mode |= 0o2000;
            }
            pinfo.gid
        } else {
            c.gid
        };
        Ok(Attrs { mode, uid: c.uid, gid, mtime_ns: self.now() })
    }

    fn make(
        &self,
        parent: u64,
        name: &[u8],
        c: Caller,
        f: impl FnOnce(&Fs<'_>, &Ref, &FsPath, Attrs) -> Result<Ref, FsError>,
        mode: u32,
        is_dir: bool,
    ) -> Result<Attr, Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.lock();
        let dir = self.path_of(&mut st, parent)?;
        let path = join(&dir, name)?;
        let attrs = self.new_attrs(&st, &dir, mode, c, is_dir)?;
        let fs = self.fs();
        let r = f(&fs, &st.root, &path, attrs).map_err(fs_err)?;
        let r = self.touch_dir(&mut st, r, &dir)?;
        if is_dir {
            st.subdirs.remove(&dir);
        }
        let info = fs.stat(&r, &path).map_err(fs_err)?;
        self.set_root(&mut st, r);
        let a = self.attr(&mut st, &path, &info);
        st.times.remove(&a.ino);
        Ok(self.attr(&mut st, &path, &info))
    }

    /// Creates the empty regular file `name` in `parent` (exclusive: `EEXIST` if present).
    pub fn create(&self, parent: u64, name: &[u8], mode: u32, c: Caller) -> Result<Attr, Errno> {
        self.make(parent, name, c, |fs, r, p, a| fs.create(r, p, a), mode, false)
    }

    /// Creates the directory `name` in `parent`.
    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, c: Caller) -> Result<Attr, Errno> {
        self.make(parent, name, c, |fs, r, p, a| fs.mkdir(r, p, a), mode, true)
    }

    /// Creates the symlink `name` → `target` in `parent`.
    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        c: Caller,
    ) -> Result<Attr, Errno> {
        if target.len() > crate::fs::SYMLINK_TARGET_SIZE_MAX_BYTES {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        self.make(parent, name, c, |fs, r, p, a| fs.symlink(r, p, target, a), 0o777, false)
    }

    /// Creates the FIFO, socket or device `name` in `parent` (`rdev`: a device's number).
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        kind: Kind,
        mode: u32,
        rdev: u64,
        c: Caller,
    ) -> Result<Attr, Errno> {
        self.make(parent, name, c, |fs, r, p, a| fs.mknod(r, p, kind, a, rdev), mode, false)
    }

    /// Hard links are not in the schema (FS-12): always `EPERM`.
    pub fn link(&self, _ino: u64, _parent: u64, _name: &[u8]) -> Result<Attr, Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        Err(Errno(libc::EPERM))
    }

    fn unlink_any(&self, parent: u64, name: &[u8], dir: bool) -> Result<(), Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.lock();
        let d = self.path_of(&mut st, parent)?;
        let path = join(&d, name)?;
        let fs = self.fs();
        let r = if dir { fs.rmdir(&st.root, &path) } else { fs.remove(&st.root, &path) }
            .map_err(fs_err)?;
        let r = self.touch_dir(&mut st, r, &d)?;
        self.set_root(&mut st, r);
        st.inodes.forget_subtree(&path);
        if dir {
            st.subdirs.remove(&d);
            st.subdirs.remove(&path);
        }
        Ok(())
    }

    /// Removes the file or symlink `name` of `parent`.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        self.unlink_any(parent, name, false)
    }

    /// Removes the empty directory `name` of `parent`.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        self.unlink_any(parent, name, true)
    }

    /// Renames `parent/name` to `newparent/newname`, replacing a destination of a compatible
    /// kind as POSIX does (an empty directory by a directory, a non-directory by a
    /// non-directory); `noreplace` refuses any destination.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        noreplace: bool,
    ) -> Result<(), Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.lock();
        let (d1, d2) = (self.path_of(&mut st, parent)?, self.path_of(&mut st, newparent)?);
        let (from, to) = (join(&d1, name)?, join(&d2, newname)?);
        let fs = self.fs();
        let src = fs.stat(&st.root, &from).map_err(fs_err)?;
        if from == to {
            return Ok(());
        }
        if to.starts_with(&from) {
            return Err(Errno(libc::EINVAL));
        }
        let mut r = st.root;
        match fs.lookup(&r, &to).map_err(fs_err)? {
            Some(_) if noreplace => return Err(Errno(libc::EEXIST)),
            Some(dst) => {
                r = match (src.kind == Kind::Dir, dst.kind == Kind::Dir) {
                    (true, true) => fs.rmdir(&r, &to),
                    (false, false) => fs.remove(&r, &to),
                    (true, false) => return Err(Errno(libc::ENOTDIR)),
                    (false, true) => return Err(Errno(libc::EISDIR)),
                }
                .map_err(fs_err)?;
            }
            None => {}
        }
        r = fs.rename(&r, &from, &to).map_err(fs_err)?;
        r = self.touch_dir(&mut st, r, &d1)?;
        if d2 != d1 {
            r = self.touch_dir(&mut st, r, &d2)?;
        }
        self.set_root(&mut st, r);
        st.inodes.rename(&from, &to);
        st.subdirs
            .retain(|p, _| *p != d1 && *p != d2 && !p.starts_with(&from) && !p.starts_with(&to));
        let ino = st.inodes.ino(&to);
        self.touch_ctime(&mut st, ino);
        Ok(())
    }

    /// Changes attributes (chmod, chown, truncate, utimes); returns the new attributes.
    pub fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr, Errno> {
        let mut st = self.lock();
        let path = self.path_of(&mut st, ino)?;
        let fs = self.fs();
        let info = fs.stat(&st.root, &path).map_err(fs_err)?;
        let changes = set.mode.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.size.is_some()
            || set.mtime.is_some();
        if changes && self.opts.read_only {
            return Err(rofs());
        }
        let now = self.now();
        let mut r = st.root;
        if let Some(m) = set.mode {
            r = fs.chmod(&r, &path, m & 0o7777).map_err(fs_err)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            let (u, g) = (set.uid.unwrap_or(info.uid), set.gid.unwrap_or(info.gid));
            r = fs.chown(&r, &path, u, g).map_err(fs_err)?;
        }
        let mut mtime = set.mtime.map(|t| match t {
            SetTime::Now => now,
            SetTime::At(ns) => ns,
        });
        if let Some(size) = set.size {
            r = fs.truncate(&r, &path, size).map_err(fs_err)?;
            mtime = mtime.or(Some(now));
        }
        if let Some(m) = mtime {
            r = fs.utimens(&r, &path, m).map_err(fs_err)?;
        }
        if r != st.root {
            self.set_root(&mut st, r);
        }
        let t = st.times.entry(ino).or_default();
        if let Some(a) = set.atime {
            t.atime_ns = Some(match a {
                SetTime::Now => now,
                SetTime::At(ns) => ns,
            });
        }
        if changes || set.atime.is_some() {
            t.ctime_ns = Some(now);
        }
        let info = fs.stat(&st.root, &path).map_err(fs_err)?;
        Ok(self.attr(&mut st, &path, &info))
    }

    /// Up to `size` bytes of file `ino` at `offset` (fewer at the end).
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let mut st = self.lock();
        let path = self.path_of(&mut st, ino)?;
        self.fs().read(&st.root, &path, offset, u64::from(size)).map_err(fs_err)
    }

    /// Writes `data` at `offset` of file `ino` (sets its mtime); returns the bytes written.
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        let n = u32::try_from(data.len()).map_err(|_| Errno(libc::EINVAL))?;
        let mut st = self.lock();
        let path = self.path_of(&mut st, ino)?;
        let fs = self.fs();
        let now = self.now();
        let r = fs.write(&st.root, &path, offset, data).map_err(fs_err)?;
        let r = fs.utimens(&r, &path, now).map_err(fs_err)?;
        self.set_root(&mut st, r);
        self.touch_ctime(&mut st, ino);
        Ok(n)
    }

    /// Opens `ino` (`write`: for writing); returns a handle for [`ShareFs::release`].
    pub fn open_file(&self, ino: u64, write: bool) -> Result<u64, Errno> {
        if write && self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.lock();
        let path = self.path_of(&mut st, ino)?;
        self.fs().stat(&st.root, &path).map_err(fs_err)?;
        let fh = st.next_fh;
        st.next_fh += 1;
        st.handles.insert(fh, (ino, write));
        Ok(fh)
    }

    /// Forgets a handle from [`ShareFs::open_file`].
    pub fn release(&self, fh: u64) {
        self.lock().handles.remove(&fh);
    }

    /// Open handles.
    pub fn open_handles(&self) -> usize {
        self.lock().handles.len()
    }

    /// Commits the working tree (ADP-3): a snapshot on top of the base head, its blobs
    /// promoted into the volume's store under Expand, then one CAS of the cell from the base
    /// head to it; a lost CAS merges (ADP-5) and tries again, at most
    /// [`COMMIT_CAS_ATTEMPTS_MAX`] times. A clean working tree only catches up with the cell
    /// (fast forward to a newer head; nothing written).
    pub fn commit(&self, message: &str) -> Result<CommitReport, AdapterError> {
        let mut st = self.lock();
        let mut report = CommitReport { head: st.base, ..CommitReport::default() };
        if self.opts.read_only || !st.dirty {
            let value = self.volume.cell.read().map_err(VolumeError::from)?;
            let current = snapshot::head_from_cell(&value)?;
            if current != st.base
                && let Some(h) = current
                && !st.dirty
            {
                st.root = self.fs().tree_of(&h)?;
                st.base = Some(h);
                st.subdirs.clear();
                report.head = Some(h);
            }
            return Ok(report);
        }
        let _hold = match self.volume.modes.begin(Mode::Expand) {
            Ok(h) => h,
            Err(VolumeError::ModeConflict { .. }) => return Err(AdapterError::Busy),
            Err(e) => return Err(e.into()),
        };
        let fs = self.fs();
        let msg = format!("{}: {message}", self.opts.label);
        let mut head = fs.commit(&st.root, st.base.as_ref(), self.opts.author, &msg)?;
        let mut expected = st.base.map(|r| r.to_bytes().to_vec()).unwrap_or_default();
        for attempt in 0..COMMIT_CAS_ATTEMPTS_MAX {
            let p = self.staging.promote_head(&self.salt, &head)?;
            report.promoted.blobs += p.blobs;
            report.promoted.bytes += p.bytes;
            let cas =
                self.volume.cell.cas(&expected, &head.to_bytes()).map_err(VolumeError::from)?;
            if cas.swapped {
                st.root = fs.tree_of(&head)?;
                st.base = Some(head);
                st.dirty = false;
                self.staging.retain(&HashSet::new());
                report.head = Some(head);
                report.published = true;
                report.merges = attempt;
                return Ok(report);
            }
            // ADP-5: someone else committed first. Merge theirs into ours (ours first).
            let theirs =
                snapshot::head_from_cell(&cas.current)?.ok_or(AdapterError::CellEmptied)?;
            let (merged, conflicts) = fs.merge_heads(&head, &theirs, self.opts.author)?;
            report.conflicts.extend(conflicts);
            head = merged;
            expected = cas.current;
            st.root = fs.tree_of(&head)?;
            st.subdirs.clear();
        }
        Err(AdapterError::Contended(COMMIT_CAS_ATTEMPTS_MAX))
    }
}

fn join(dir: &FsPath, name: &[u8]) -> Result<FsPath, Errno> {
    if name == b"." || name == b".." {
        return Err(Errno(libc::EINVAL));
    }
    dir.join(name).map_err(fs_err)
}

fn now_ns(opts: &ShareOptions) -> i64 {
    i64::try_from(opts.clock.now_ms()).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
}

impl From<RefError> for AdapterError {
    fn from(e: RefError) -> Self {
        AdapterError::Fs(FsError::Ref(e))
    }
}

impl From<StoreError> for AdapterError {
    fn from(e: StoreError) -> Self {
        AdapterError::Promote(PromoteError::Store(e))
    }
}
