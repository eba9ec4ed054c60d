//! Expand/contract mode exclusion (VOL-2, VOL-4, VOL-6).
//!
//! Two implementations of one rule — any number of Expand holders, or any number of Contract
//! holders, never both:
//! - [`ModeGate`]: in-process, a mutex around two counters.
//! - [`FileModeLock`]: across processes, with advisory `flock(2)` locks on files in a
//!   directory. A holder keeps a *shared* lock on `expand.lock` or `contract.lock` for its whole
//!   life. To begin, it takes `gate.lock` exclusively (a short critical section), takes its
//!   shared lock, and probes the other mode's file with a non-blocking *exclusive* lock: if that
//!   probe fails, somebody holds the other mode, so it drops its own lock and reports
//!   [`VolumeError::ModeConflict`].
//!
//! Crash recovery (VOL-4): the kernel releases a process's `flock` locks when its last file
//! descriptor closes, which happens when the process dies, however it dies. So a crashed
//! holder never blocks the volume, and — unlike a timed lease — a holder that is merely slow
//! (paused, swapped out) never loses its mode while it can still act: release and death are the
//! same event. Caveat (stated in `specs/volume.md`): `flock` is only as good as the file system;
//! on network file systems that emulate it poorly, use one host per volume.

use super::VolumeError;
use crate::storage::fsio::on;
use crate::storage::fsys::{self, FileLock, FileSystem};
use crate::sync::{Arc, Mutex, lock};
use std::fmt;
use std::path::{Path, PathBuf};

/// The two modes of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Blobs are added and the cell may move forward (sync, publish).
    Expand,
    /// Unreachable blobs are deleted (cleanup).
    Contract,
}

impl Mode {
    /// The mode that excludes this one.
    pub fn other(self) -> Mode {
        match self {
            Mode::Expand => Mode::Contract,
            Mode::Contract => Mode::Expand,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Expand => "expand (sync)",
            Mode::Contract => "contract (cleanup)",
        })
    }
}

/// Grants modes. `begin` never blocks on the other mode: it fails at once (VOL-2, VOL-6).
pub trait ModeLock: Send + Sync {
    /// Begins `mode`, or fails with [`VolumeError::ModeConflict`] if the other mode is held.
    fn begin(&self, mode: Mode) -> Result<ModeHold, VolumeError>;
}

/// Proof that a mode is held; dropping it releases the mode.
#[must_use = "dropping a ModeHold releases the mode at once"]
pub struct ModeHold {
    mode: Mode,
    inner: HoldInner,
}

enum HoldInner {
    Gate(Arc<Mutex<GateCounts>>),
    // The file's shared flock is released when the file is closed.
    File(#[allow(dead_code, reason = "held only to keep the lock")] Box<dyn FileLock>),
    // Another crate module's lock (e.g. `crate::pg`): dropping the guard releases the mode.
    Guard(#[allow(dead_code, reason = "held only to keep the lock")] Box<dyn Send + Sync>),
}

impl ModeHold {
    /// A hold whose mode is released when `guard` is dropped: for [`ModeLock`]
    /// implementations outside this module (the PostgreSQL lock keeps its session in it).
    pub fn with_guard(mode: Mode, guard: Box<dyn Send + Sync>) -> Self {
        Self { mode, inner: HoldInner::Guard(guard) }
    }

    /// The mode held.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl fmt::Debug for ModeHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModeHold({:?})", self.mode)
    }
}

impl Drop for ModeHold {
    fn drop(&mut self) {
        if let HoldInner::Gate(counts) = &self.inner {
            let mut c = lock(counts);
            let n = c.count_mut(self.mode);
            assert!(*n > 0, "VOL-2: releasing a mode that is not held");
            *n -= 1;
        }
    }
}

#[derive(Debug, Default)]
struct GateCounts {
    expand: u32,
    contract: u32,
}

impl GateCounts {
    fn count_mut(&mut self, mode: Mode) -> &mut u32 {
        match mode {
            Mode::Expand => &mut self.expand,
            Mode::Contract => &mut self.contract,
        }
    }
}

/// In-process mode exclusion for one volume.
#[derive(Debug, Default)]
pub struct ModeGate {
    counts: Arc<Mutex<GateCounts>>,
}

impl ModeGate {
    /// A gate with no holders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current (expand, contract) holder counts, for assertions in tests and the simulator.
    pub fn holders(&self) -> (u32, u32) {
        let c = lock(&self.counts);
        (c.expand, c.contract)
    }
}

impl ModeLock for ModeGate {
    fn begin(&self, mode: Mode) -> Result<ModeHold, VolumeError> {
        let mut c = lock(&self.counts);
        let other = *c.count_mut(mode.other());
        if other > 0 && !crate::bugs::active("volume:no-mode-exclusion") {
            // VOL-2, VOL-6: the other mode is held; fail at once, changing nothing.
            return Err(VolumeError::ModeConflict { wanted: mode, held: mode.other() });
        }
        *c.count_mut(mode) += 1;
        // VOL-2: with the rule in force, both counts are never positive together.
        assert!(
            c.expand == 0 || c.contract == 0 || crate::bugs::active("volume:no-mode-exclusion"),
            "VOL-2 violated: expand and contract held together"
        );
        Ok(ModeHold { mode, inner: HoldInner::Gate(Arc::clone(&self.counts)) })
    }
}

/// Cross-process mode exclusion with `flock(2)` on three files in a directory.
#[derive(Debug, Clone)]
pub struct FileModeLock {
    fs: std::sync::Arc<dyn FileSystem>,
    dir: PathBuf,
}

impl FileModeLock {
    /// Uses (creating if needed) the lock files in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, VolumeError> {
        Self::open_in(fsys::os(), dir)
    }

    /// Like [`FileModeLock::open`], on the file system `fs` (the simulator's, in its `files`
    /// profile, where a killed process's locks go with it as they do with `flock`).
    pub fn open_in(
        fs: std::sync::Arc<dyn FileSystem>,
        dir: impl Into<PathBuf>,
    ) -> Result<Self, VolumeError> {
        let dir = dir.into();
        fsys::create_dir_all_durably(fs.as_ref(), &dir)?;
        for name in ["gate.lock", "expand.lock", "contract.lock"] {
            open_lock_file(fs.as_ref(), &dir.join(name))?;
        }
        Ok(Self { fs, dir })
    }

    fn path(&self, mode: Mode) -> PathBuf {
        self.dir.join(match mode {
            Mode::Expand => "expand.lock",
            Mode::Contract => "contract.lock",
        })
    }
}

/// Opens (creating) a lock file. Lock files stay empty: a full file system only matters when
/// one must be created, and then the error names it.
fn open_lock_file(fs: &dyn FileSystem, path: &Path) -> std::io::Result<Box<dyn FileLock>> {
    fs.open_lock(path).map_err(on(path))
}

impl ModeLock for FileModeLock {
    fn begin(&self, mode: Mode) -> Result<ModeHold, VolumeError> {
        // Serialise begins, so two processes cannot both probe before either holds its lock.
        let gate_path = self.dir.join("gate.lock");
        let gate = open_lock_file(self.fs.as_ref(), &gate_path)?;
        gate.lock().map_err(on(&gate_path))?;
        let mine_path = self.path(mode);
        let mine = open_lock_file(self.fs.as_ref(), &mine_path)?;
        // Nobody holds an exclusive lock on our file outside the gate, so this cannot block.
        mine.lock_shared().map_err(on(&mine_path))?;
        if !crate::bugs::active("volume:no-mode-exclusion") {
            let other_path = self.path(mode.other());
            let other = open_lock_file(self.fs.as_ref(), &other_path)?;
            if !other.try_lock().map_err(on(&other_path))? {
                // VOL-2, VOL-6: the other mode is held; fail at once (our shared lock and the
                // gate are released as `mine` and `gate` drop).
                return Err(VolumeError::ModeConflict { wanted: mode, held: mode.other() });
            }
            other.unlock().map_err(on(&other_path))?;
        }
        gate.unlock().map_err(on(&gate_path))?;
        Ok(ModeHold { mode, inner: HoldInner::File(mine) })
    }
}

#[cfg(all(test, not(loom)))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests report failure by panicking"
)]
mod tests {
    use super::*;

    fn conflicts(lock: &dyn ModeLock) {
        let e1 = lock.begin(Mode::Expand).unwrap();
        let e2 = lock.begin(Mode::Expand).unwrap();
        assert!(matches!(
            lock.begin(Mode::Contract),
            Err(VolumeError::ModeConflict { wanted: Mode::Contract, held: Mode::Expand })
        ));
        drop(e1);
        assert!(lock.begin(Mode::Contract).is_err(), "VOL-2: one expand still holds");
        drop(e2);
        let c1 = lock.begin(Mode::Contract).unwrap();
        let _c2 = lock.begin(Mode::Contract).unwrap();
        assert!(matches!(lock.begin(Mode::Expand), Err(VolumeError::ModeConflict { .. })));
        drop(c1);
    }

    #[test]
    fn gate_excludes_modes() {
        let g = ModeGate::new();
        conflicts(&g);
        assert_eq!(g.holders(), (0, 0));
    }

    #[test]
    fn file_lock_excludes_modes() {
        let dir = tempfile::tempdir().unwrap();
        let l = FileModeLock::open(dir.path()).unwrap();
        conflicts(&l);
        // Two handles on the same directory behave like two processes.
        let other = FileModeLock::open(dir.path()).unwrap();
        let _e = l.begin(Mode::Expand).unwrap();
        assert!(other.begin(Mode::Contract).is_err());
    }
}
