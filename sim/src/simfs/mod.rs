//! A simulated file system with crash semantics, under the real `DirStore`, `FileCell`,
//! `SealedCell`, `Seen` file and `FileModeLock` (`cellar::storage::fsys::FileSystem`), for the
//! `files` profile (module `filesys`).
//!
//! One [`SimFs`] is the machine's file system; each simulated process works through its own
//! [`SimFs::process`] view, so its `flock` locks are its own and go when it is killed
//! ([`SimFs::kill`]), and a killed process's leftover handles (its `Drop`s run when the
//! simulator drops its objects) can no longer touch anything. A power cut ([`SimFs::power_cut`])
//! kills every process and keeps of the unsynced state only what [`tree`] allows.
//!
//! Faults it injects on its own, from its `SimRng`:
//! - a **power cut in the middle of an operation**: [`SimFs::arm_cut`] picks a step (creating a
//!   file, writing its bytes, an fsync, a rename, an unlink, a directory creation) after which
//!   the machine stops: that step and every later one fails until the simulator applies the cut;
//! - a **full file system**: with `full_ppm`, a step that needs space fails with
//!   `StorageFull` (a write of bytes, a file or directory creation), as `ENOSPC` does.
//!
//! A blocking lock that cannot be granted at once returns an error: in a single-threaded
//! simulation nobody else can run to release it, so the process would block forever.

pub mod tree;

use crate::rng::SimRng;
use cellar::storage::fsys::{FileLock, FileSystem, Metadata, WriteMode};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tree::{CutEffects, DirOp, Ino, Node, Tree};

/// A simulated process's id (never reused within a run).
pub type Pid = u32;

/// What the file system counted.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FsCounts {
    /// Power cuts applied.
    pub power_cuts: u64,
    /// Of those, cuts in the middle of an operation.
    pub cuts_mid_op: u64,
    /// Directory entry changes a cut lost.
    pub entries_lost: u64,
    /// Files whose unsynced bytes a cut lost or cut short.
    pub files_reverted: u64,
    /// Steps refused with `StorageFull`.
    pub full_refusals: u64,
}

#[derive(Debug, Default)]
struct Flock {
    exclusive: Option<u64>,
    shared: BTreeSet<u64>,
}

#[derive(Debug)]
struct State {
    tree: Tree,
    rng: SimRng,
    /// Steps left before the armed power cut stops the machine.
    cut_in: Option<u64>,
    /// The machine has stopped: every step fails until `power_cut`.
    stopped: bool,
    full_ppm: u32,
    dead: BTreeSet<Pid>,
    locks: BTreeMap<Ino, Flock>,
    /// Live lock handles: id → (owner, inode).
    handles: BTreeMap<u64, (Pid, Ino)>,
    next_handle: u64,
    counts: FsCounts,
}

/// The machine's simulated file system (see the module docs).
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn stopped() -> io::Error {
    io::Error::other("simulated power cut: the machine has stopped")
}

impl State {
    /// One step of an operation by `pid`: fails if the process is dead or the machine stopped,
    /// and stops the machine if this is the armed step.
    fn step(&mut self, pid: Pid) -> io::Result<()> {
        if self.dead.contains(&pid) {
            return Err(io::Error::other(format!("simulated process {pid} was killed")));
        }
        if self.stopped {
            return Err(stopped());
        }
        if let Some(n) = self.cut_in.as_mut() {
            if *n == 0 {
                self.cut_in = None;
                self.stopped = true;
                self.counts.cuts_mid_op += 1;
                return Err(stopped());
            }
            *n -= 1;
        }
        Ok(())
    }

    /// A step that needs space.
    fn space(&mut self, pid: Pid) -> io::Result<()> {
        self.step(pid)?;
        if self.rng.chance_ppm(self.full_ppm) {
            self.counts.full_refusals += 1;
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    fn release(&mut self, handle: u64) {
        if let Some((_, ino)) = self.handles.get(&handle)
            && let Some(l) = self.locks.get_mut(ino)
        {
            if l.exclusive == Some(handle) {
                l.exclusive = None;
            }
            l.shared.remove(&handle);
        }
    }
}

impl SimFs {
    /// An empty file system whose own faults draw from `rng`; `full_ppm` is the chance that a
    /// step needing space fails with `StorageFull`.
    pub fn new(rng: SimRng, full_ppm: u32) -> SimFs {
        let state = State {
            tree: Tree::new(),
            rng,
            cut_in: None,
            stopped: false,
            full_ppm,
            dead: BTreeSet::new(),
            locks: BTreeMap::new(),
            handles: BTreeMap::new(),
            next_handle: 1,
            counts: FsCounts::default(),
        };
        SimFs { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file system as process `pid` sees it.
    pub fn process(&self, pid: Pid) -> Arc<dyn FileSystem> {
        Arc::new(View { fs: self.clone(), pid })
    }

    /// Kills `pid`: its locks are released (VOL-4's `flock` promise) and its handles die.
    pub fn kill(&self, pid: Pid) {
        let mut s = self.lock();
        s.dead.insert(pid);
        let mine: Vec<u64> =
            s.handles.iter().filter(|(_, (p, _))| *p == pid).map(|(h, _)| *h).collect();
        for h in mine {
            s.release(h);
            s.handles.remove(&h);
        }
    }

    /// Sets the chance (ppm) that a step needing space fails with `StorageFull`.
    pub fn set_full_ppm(&self, full_ppm: u32) {
        self.lock().full_ppm = full_ppm;
    }

    /// Stops the machine after `steps` more steps (a power cut in the middle of whatever runs).
    pub fn arm_cut(&self, steps: u64) {
        self.lock().cut_in = Some(steps);
    }

    /// Disarms a cut that has not happened.
    pub fn disarm_cut(&self) {
        self.lock().cut_in = None;
    }

    /// Whether the machine has stopped (an armed cut went off).
    pub fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// A power cut: every process in `pids` dies, every lock goes, and the file system keeps
    /// what the crash semantics allow.
    pub fn power_cut(&self, pids: impl IntoIterator<Item = Pid>) -> CutEffects {
        for pid in pids {
            self.kill(pid);
        }
        let mut s = self.lock();
        let s = &mut *s;
        s.locks.clear();
        s.handles.clear();
        s.stopped = false;
        s.cut_in = None;
        let fx = s.tree.power_cut(&mut s.rng);
        s.counts.power_cuts += 1;
        s.counts.entries_lost += fx.entries_lost;
        s.counts.files_reverted += fx.files_reverted;
        fx
    }

    /// A media fault: flips one byte (at offset `at` modulo the length) of the file at `path`,
    /// in its synced and unsynced bytes alike; `false` if there is no such non-empty file.
    pub fn flip_byte(&self, path: &Path, at: u64) -> bool {
        let mut s = self.lock();
        let Ok(ino) = s.tree.resolve(path) else { return false };
        let Some(Node::File { data, durable }) = s.tree.nodes.get_mut(&ino) else { return false };
        if data.is_empty() {
            return false;
        }
        let i = (at % data.len() as u64) as usize;
        data[i] ^= 0x20;
        if let Some(b) = durable.get_mut(i) {
            *b ^= 0x20;
        }
        true
    }

    /// The counts so far.
    pub fn counts(&self) -> FsCounts {
        self.lock().counts
    }

    /// The names in a directory (for the oracle's temp-file check), sorted.
    pub fn names(&self, dir: &Path) -> Vec<OsString> {
        let s = self.lock();
        s.tree
            .resolve(dir)
            .and_then(|d| s.tree.entries(d).map(|e| e.keys().cloned().collect()))
            .unwrap_or_default()
    }
}

/// One process's view.
#[derive(Debug)]
struct View {
    fs: SimFs,
    pid: Pid,
}

fn not_dir() -> io::Error {
    io::Error::from(io::ErrorKind::NotADirectory)
}

impl FileSystem for View {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut prefix = std::path::PathBuf::new();
        for c in path.components() {
            prefix.push(c);
            if prefix.parent().is_none() {
                continue; // the root
            }
            match self.create_dir(&prefix) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !self.metadata(&prefix)?.is_dir {
                        return Err(not_dir());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.fs.lock();
        let (dir, name) = s.tree.parent_of(path)?;
        if s.tree.lookup(dir, name)?.is_some() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        s.space(self.pid)?;
        let ino = s.tree.alloc_dir();
        s.tree.change(dir, DirOp::Link(name.to_owned(), ino));
        Ok(())
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let s = self.fs.lock();
        let ino = s.tree.resolve(path)?;
        Ok(match s.tree.nodes.get(&ino) {
            Some(Node::File { data, .. }) => {
                Metadata { is_dir: false, is_file: true, len: data.len() as u64 }
            }
            _ => Metadata { is_dir: true, is_file: false, len: 0 },
        })
    }

    fn read(&self, path: &Path, limit_bytes: u64) -> io::Result<Vec<u8>> {
        let mut s = self.fs.lock();
        s.step(self.pid)?;
        let ino = s.tree.resolve(path)?;
        match s.tree.nodes.get(&ino) {
            Some(Node::File { data, .. }) => {
                let n = usize::try_from(limit_bytes).unwrap_or(usize::MAX).min(data.len());
                Ok(data[..n].to_vec())
            }
            _ => Err(io::Error::from(io::ErrorKind::IsADirectory)),
        }
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: WriteMode) -> io::Result<()> {
        let mut s = self.fs.lock();
        let (dir, name) = s.tree.parent_of(path)?;
        let ino = match s.tree.lookup(dir, name)? {
            Some(_) if mode.create_new => {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            Some(ino) => {
                s.step(self.pid)?; // O_TRUNC
                match s.tree.nodes.get_mut(&ino) {
                    Some(Node::File { data, .. }) => data.clear(),
                    _ => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
                }
                ino
            }
            None => {
                s.space(self.pid)?; // the new inode and entry
                let ino = s.tree.alloc(Node::File { data: Vec::new(), durable: Vec::new() });
                s.tree.change(dir, DirOp::Link(name.to_owned(), ino));
                ino
            }
        };
        s.space(self.pid)?; // the bytes
        if let Some(Node::File { data, .. }) = s.tree.nodes.get_mut(&ino) {
            data.extend_from_slice(bytes);
        }
        if mode.sync {
            s.step(self.pid)?;
            s.tree.sync_file(ino);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.fs.lock();
        let (dir, from_name) = s.tree.parent_of(from)?;
        let (to_dir, to_name) = s.tree.parent_of(to)?;
        if dir != to_dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated file system renames within one directory only",
            ));
        }
        let ino = s.tree.lookup(dir, from_name)?.ok_or(io::ErrorKind::NotFound)?;
        if let Some(target) = s.tree.lookup(dir, to_name)?
            && matches!(s.tree.nodes.get(&target), Some(Node::Dir { .. }))
        {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        }
        s.step(self.pid)?;
        s.tree.change(dir, DirOp::Rename(from_name.to_owned(), to_name.to_owned(), ino));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.fs.lock();
        let (dir, name) = s.tree.parent_of(path)?;
        let ino = s.tree.lookup(dir, name)?.ok_or(io::ErrorKind::NotFound)?;
        if matches!(s.tree.nodes.get(&ino), Some(Node::Dir { .. })) {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        }
        s.step(self.pid)?;
        s.tree.change(dir, DirOp::Unlink(name.to_owned()));
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let mut s = self.fs.lock();
        s.step(self.pid)?;
        let ino = s.tree.resolve(path)?;
        Ok(s.tree.entries(ino)?.keys().cloned().collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.fs.lock();
        let ino = s.tree.resolve(path)?;
        s.tree.entries(ino)?;
        s.step(self.pid)?;
        s.tree.sync_dir(ino);
        Ok(())
    }

    fn sync_fs(&self, _path: &Path) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.step(self.pid)?;
        s.tree.sync_all();
        Ok(())
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        if self.metadata(path).is_err() {
            self.write(path, &[], WriteMode { create_new: false, sync: false })?;
        }
        let mut s = self.fs.lock();
        s.step(self.pid)?;
        let ino = s.tree.resolve(path)?;
        let id = s.next_handle;
        s.next_handle += 1;
        s.handles.insert(id, (self.pid, ino));
        Ok(Box::new(SimLock { fs: self.fs.clone(), id }))
    }
}

/// A `flock` handle on the simulated file system.
#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    id: u64,
}

impl SimLock {
    /// Takes the lock if it is free for this handle; `Ok(false)` if another handle holds it.
    fn take(&self, exclusive: bool) -> io::Result<bool> {
        let mut s = self.fs.lock();
        let Some(&(pid, ino)) = s.handles.get(&self.id) else {
            return Err(io::Error::other("lock handle of a dead process or a past power cut"));
        };
        s.step(pid)?;
        let l = s.locks.entry(ino).or_default();
        let others_excl = l.exclusive.is_some_and(|h| h != self.id);
        let others_shared = l.shared.iter().any(|h| *h != self.id);
        if others_excl || (exclusive && others_shared) {
            return Ok(false);
        }
        l.shared.remove(&self.id);
        l.exclusive = None;
        if exclusive {
            l.exclusive = Some(self.id);
        } else {
            l.shared.insert(self.id);
        }
        Ok(true)
    }

    fn blocking(&self, exclusive: bool) -> io::Result<()> {
        if self.take(exclusive)? {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "simulated flock would block forever: another process holds the lock and nothing \
             else can run",
        ))
    }
}

impl FileLock for SimLock {
    fn lock(&self) -> io::Result<()> {
        self.blocking(true)
    }

    fn lock_shared(&self) -> io::Result<()> {
        self.blocking(false)
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.take(true)
    }

    fn unlock(&self) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.release(self.id);
        Ok(())
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        s.release(self.id);
        s.handles.remove(&self.id);
    }
}
