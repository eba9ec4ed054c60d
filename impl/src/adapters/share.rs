//! [`ShareFs`]: one share's working tree, served to a protocol adapter (ADP-1..ADP-9).
//!
//! The working tree is a file tree (`cellar::fs`) whose root lives only in this value; every
//! operation is a functional edit of it under one lock, so each is atomic and none is visible
//! to other processes until [`ShareFs::commit`] makes it a snapshot on top of the head it was
//! based on and compare-and-swaps the mark's value (FS-23: head and horizon) from that history
//! to the new one — one space edit (MARK-4, ADP-1), in `commit.rs`. A lost CAS (someone else
//! committed first) merges the two heads at file granularity (FS-19, FS-22), ours first, and
//! tries again: a path both sides changed keeps our version and gets theirs beside it under a
//! conflict name — never a silent overwrite.
//!
//! Errors are errno values ([`Errno`]) because that is what both adapters answer with; the
//! mapping from [`FsError`] is [`errno_of`].
//!
//! Never: read the clock except through [`crate::env::Clock`]; publish a head whose blobs are not all in
//! the space's store (the staging store promotes first, VOL-3); change the mark without
//! holding Expand (VOL-2); overwrite a head we did not base our work on.

use super::inode::{Inodes, ROOT_INO};
use super::orphan::Orphan;
use super::staging::StagingStore;
use super::types::{
    AdapterError, Attr, Caller, Errno, STAGING_COMPACT_BYTES, SetAttr, SetTime, ShareOptions,
    errno_of,
};
use super::wbuf::Run;
use crate::fs::{Attrs, Fs, FsError, FsPath, History, Info, Kind};
use crate::storage::refs::Ref;
use crate::storage::volume::{Volume, VolumeError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug, Default)]
struct Times {
    atime_ns: Option<i64>,
    ctime_ns: Option<i64>,
}

pub(super) struct State {
    /// The working tree.
    pub(super) root: Ref,
    /// The head the working tree descends from (`None`: the mark had no commit).
    pub(super) base: Option<Ref>,
    /// The mark's value the working tree was based on (its head is `base`).
    pub(super) history: History,
    /// The working tree differs from `base`'s tree.
    pub(super) dirty: bool,
    pub(super) inodes: Inodes,
    times: HashMap<u64, Times>,
    pub(super) handles: HashMap<u64, (u64, bool)>,
    pub(super) next_fh: u64,
    /// Unlinked files still open, by inode number (ADP-11).
    pub(super) orphans: HashMap<u64, Orphan>,
    /// Consecutive writes not yet applied (ADP-12), and the first failure applying one.
    pub(super) run: Option<Run>,
    pub(super) write_error: Option<Errno>,
    /// Subdirectory counts of directories (for `nlink`), dropped when they may change.
    pub(super) subdirs: HashMap<FsPath, u32>,
    /// When (`opts.clock`, ms) the mark was last looked at for newer commits (ADP-13).
    pub(super) checked_ms: Option<u64>,
    /// The tree is still the empty one `open` made for a mark with no commit (ADP-13).
    pub(super) pristine: bool,
    /// How many times the working tree took changes made elsewhere (ADP-14).
    pub(super) outside: u64,
    /// Per inode number, `outside` when it was last opened (ADP-14).
    pub(super) opened: HashMap<u64, u64>,
}

/// One share's working tree (see the module docs).
pub struct ShareFs {
    pub(super) volume: Volume,
    pub(super) salt: [u8; 32],
    pub(super) staging: Arc<StagingStore>,
    pub(super) opts: ShareOptions,
    state: Mutex<State>,
    /// Decoded tree nodes (KV-18): every request re-walks the tree from the root.
    cache: crate::db::kv::NodeCache,
    /// Decoded data blobs: sequential reads of one blob come in many requests.
    blobs: crate::fs::blob::BlobCache,
}

impl std::fmt::Debug for ShareFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareFs").field("opts", &self.opts).finish()
    }
}

pub(super) fn rofs() -> Errno {
    Errno(libc::EROFS)
}

pub(super) fn fs_err(e: FsError) -> Errno {
    errno_of(&e)
}

impl ShareFs {
    /// Opens the history in `volume`'s cell — a mark's volume ([`super::open_mark`]), whose
    /// value is a file-tree history (FS-23) — (no commit yet: a new tree with one root
    /// directory, committed at the first commit). `salt` is the mark's salt (MARK-5).
    pub fn open(volume: Volume, salt: [u8; 32], opts: ShareOptions) -> Result<Self, AdapterError> {
        let staging = Arc::new(StagingStore::new(volume.store.clone(), &opts.spill_dir)?);
        let value = volume.cell.read().map_err(VolumeError::from)?;
        let history = History::decode(&value)?;
        let base = history.head;
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
            history,
            dirty,
            inodes: Inodes::new(),
            times: HashMap::new(),
            handles: HashMap::new(),
            next_fh: 1,
            orphans: HashMap::new(),
            run: None,
            write_error: None,
            subdirs: HashMap::new(),
            checked_ms: None,
            pristine: base.is_none(),
            outside: 0,
            opened: HashMap::new(),
        };
        let cache = crate::db::kv::NodeCache::default();
        let blobs = crate::fs::blob::BlobCache::new();
        Ok(Self { volume, salt, staging, opts, state: Mutex::new(state), cache, blobs })
    }

    /// The state with every buffered write applied (ADP-12): what every operation sees.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.lock_unflushed();
        self.apply_run(&mut st);
        st
    }

    /// The state as it is (only [`ShareFs::write`] extends a run without applying it).
    pub(super) fn lock_unflushed(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn fs(&self) -> Fs<'_> {
        Fs::new(self.staging.as_ref(), self.salt)
            .with_cache(&self.cache)
            .with_blob_cache(&self.blobs)
            .with_compression(self.opts.compression)
    }

    pub(super) fn now(&self) -> i64 {
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

    pub(super) fn attr(&self, st: &mut State, path: &FsPath, info: &Info) -> Attr {
        let nlink = match info.kind {
            Kind::Dir => self.dir_nlink(st, path),
            // FS-12: a linked node's names.
            _ => {
                self.fs().nlink(&st.root, path).map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX))
            }
        };
        let ino = self.ino_of(st, path);
        self.attr_at(st, ino, info, nlink)
    }

    /// The attributes of inode `ino` with `info` and `nlink` links (times from memory, ADP-7).
    pub(super) fn attr_at(&self, st: &State, ino: u64, info: &Info, nlink: u32) -> Attr {
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

    pub(super) fn touch_ctime(&self, st: &mut State, ino: u64) {
        let now = self.now();
        st.times.entry(ino).or_default().ctime_ns = Some(now);
    }

    /// Sets a directory's mtime to now after its entries changed (POSIX), ctime too.
    pub(super) fn touch_dir(&self, st: &mut State, root: Ref, dir: &FsPath) -> Result<Ref, Errno> {
        let now = self.now();
        let r = self.fs().utimens(&root, dir, now).map_err(fs_err)?;
        let ino = st.inodes.ino(dir);
        st.times.entry(ino).or_default().ctime_ns = Some(now);
        Ok(r)
    }

    pub(super) fn set_root(&self, st: &mut State, root: Ref) {
        st.root = root;
        st.dirty = true;
        st.pristine = false;
        let (_, mem, spilled) = self.staging.usage();
        if mem as u64 + spilled > STAGING_COMPACT_BYTES
            && let Ok(mut keep) = self.staging.staged_reach(&self.salt, &root)
        {
            keep.extend(self.orphan_reach(st)); // ADP-11
            self.staging.retain(&keep);
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr, Errno> {
        let mut st = self.fresh();
        let t = self.target(&mut st, ino)?;
        let info = self.fs().stat(&t.root, &t.path).map_err(fs_err)?;
        Ok(self.attr_of(&mut st, ino, &t, &info))
    }

    /// The entry `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, Errno> {
        let mut st = self.fresh();
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
        let mut st = self.fresh();
        let dir = self.path_of(&mut st, ino)?;
        let entries = self.fs().readdir(&st.root, &dir).map_err(fs_err)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let p = join(&dir, &e.name)?;
            let i = self.ino_of(&mut st, &p);
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
        let mut st = self.fresh();
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

    fn unlink_any(&self, parent: u64, name: &[u8], dir: bool) -> Result<(), Errno> {
        if self.opts.read_only {
            return Err(rofs());
        }
        let mut st = self.lock();
        let d = self.path_of(&mut st, parent)?;
        let path = join(&d, name)?;
        let fs = self.fs();
        let before = st.root;
        let r = if dir { fs.rmdir(&before, &path) } else { fs.remove(&before, &path) }
            .map_err(fs_err)?;
        let r = self.touch_dir(&mut st, r, &d)?;
        if !dir && self.has_other_names(&before, &path) {
            // FS-12: the node lives on under its other names; its ctime changes.
            if let Some(ino) = st.inodes.get(&path) {
                self.touch_ctime(&mut st, ino);
            }
        } else if !dir {
            self.orphan_if_open(&mut st, before, &path); // ADP-11
        }
        self.set_root(&mut st, r);
        st.inodes.forget_subtree(&path);
        self.forget_cached(&mut st);
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
                if self.has_other_names(&r, &to) {
                    // FS-12: the replaced node lives on under its other names; its ctime changes.
                    let ino = self.ino_of(&mut st, &to);
                    self.touch_ctime(&mut st, ino);
                }
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
        let before = st.root;
        if !self.has_other_names(&before, &to) {
            self.orphan_if_open(&mut st, before, &to); // ADP-11: a replaced file still open
        }
        self.set_root(&mut st, r);
        st.inodes.rename(&from, &to);
        self.forget_cached(&mut st);
        st.subdirs
            .retain(|p, _| *p != d1 && *p != d2 && !p.starts_with(&from) && !p.starts_with(&to));
        let ino = st.inodes.ino(&to);
        self.touch_ctime(&mut st, ino);
        Ok(())
    }

    /// Changes attributes (chmod, chown, truncate, utimes); returns the new attributes.
    pub fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr, Errno> {
        let mut st = self.lock();
        let t = self.target(&mut st, ino)?;
        let path = t.path.clone();
        let fs = self.fs();
        let info = fs.stat(&t.root, &path).map_err(fs_err)?;
        let changes = set.mode.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.size.is_some()
            || set.mtime.is_some();
        if changes && self.opts.read_only {
            return Err(rofs());
        }
        let now = self.now();
        let mut r = t.root;
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
        self.put_target(&mut st, ino, &t, r);
        let times = st.times.entry(ino).or_default();
        if let Some(a) = set.atime {
            times.atime_ns = Some(match a {
                SetTime::Now => now,
                SetTime::At(ns) => ns,
            });
        }
        if changes || set.atime.is_some() {
            times.ctime_ns = Some(now);
        }
        let info = fs.stat(&r, &path).map_err(fs_err)?;
        Ok(self.attr_of(&mut st, ino, &t, &info))
    }

    /// Up to `size` bytes of file `ino` at `offset` (fewer at the end).
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let mut st = self.fresh();
        let t = self.target(&mut st, ino)?;
        self.fs().read(&t.root, &t.path, offset, u64::from(size)).map_err(fs_err)
    }

    /// Opens `ino` (`write`: for writing); returns a handle for [`ShareFs::release`].
    pub fn open_file(&self, ino: u64, write: bool) -> Result<u64, Errno> {
        self.open_cached(ino, write).map(|(fh, _)| fh)
    }

    /// Forgets a handle from [`ShareFs::open_file`].
    pub fn release(&self, fh: u64) {
        let mut st = self.lock();
        if let Some((ino, _)) = st.handles.remove(&fh) {
            self.orphan_released(&mut st, ino); // ADP-11
        }
    }

    /// Open handles.
    pub fn open_handles(&self) -> usize {
        self.lock().handles.len()
    }
}

pub(super) fn join(dir: &FsPath, name: &[u8]) -> Result<FsPath, Errno> {
    if name == b"." || name == b".." {
        return Err(Errno(libc::EINVAL));
    }
    dir.join(name).map_err(fs_err)
}

fn now_ns(opts: &ShareOptions) -> i64 {
    i64::try_from(opts.clock.now_ms()).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
}
