//! The file system the file-based layers (`DirStore`, `FileCell`, the `Seen` file,
//! `FileModeLock`, `DirVolume`) stand on, as a trait, so the simulator can run the same code on
//! a simulated file system that loses unsynced writes and directory entries at a power cut
//! (`cellar-sim`'s `files` profile) while `cellar vol` users get the operating system's
//! ([`OsFs`], what every `open` constructor without `_in` uses).
//!
//! The contract is POSIX's, reduced to what those layers rely on (`specs/cells.md`, "File
//! system assumptions"):
//! - [`FileSystem::write`] creates or replaces a file's bytes; they are durable only after the
//!   write's own `sync` (an `fsync` of the file) or a [`FileSystem::sync_fs`];
//! - a directory entry (a created file or directory, a rename, a removal) is durable only after
//!   [`FileSystem::sync_dir`] of the directory holding it (or `sync_fs`); until then a power cut
//!   may keep or lose it, and the entries of one directory survive in the order they were made;
//! - [`FileSystem::rename`] within one directory is atomic: the new name shows the old file
//!   whole, at every instant and after any crash;
//! - [`FileLock`]s are `flock(2)` locks: they belong to the open handle, are released when it
//!   is dropped, and are all released when the process holding them dies, however it dies.
//!
//! Every method returns `std::io::Error`s of the usual kinds (`NotFound`, `AlreadyExists`,
//! `StorageFull`, …); the callers name the path (`crate::storage::fsio`).

mod os;

pub use os::OsFs;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// What a file-system entry is and how long a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// A directory.
    pub is_dir: bool,
    /// A regular file.
    pub is_file: bool,
    /// The file's length in bytes (0 for a directory).
    pub len: u64,
}

/// How [`FileSystem::write`] treats an existing file and whether it fsyncs the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMode {
    /// Fail with `AlreadyExists` if the name is taken (`O_CREAT | O_EXCL`); otherwise create
    /// or truncate (`O_CREAT | O_TRUNC`).
    pub create_new: bool,
    /// `fsync` the file after writing, so its bytes survive a power cut (its name does not
    /// until its directory is synced).
    pub sync: bool,
}

/// The file-system operations the file layers use (see the module docs for the contract).
pub trait FileSystem: fmt::Debug + Send + Sync {
    /// `mkdir -p`.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `mkdir`: `AlreadyExists` if the name is taken.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// `stat`.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// The file's bytes, at most `limit_bytes` of them (a caller that must refuse an overlong
    /// file asks for one byte more than it accepts).
    fn read(&self, path: &Path, limit_bytes: u64) -> io::Result<Vec<u8>>;
    /// Writes the whole file (see [`WriteMode`]). A failed write may leave the file created
    /// and partly written; callers writing a temp file remove it.
    fn write(&self, path: &Path, data: &[u8], mode: WriteMode) -> io::Result<()>;
    /// `rename(2)`: atomically replaces `to` (within one directory everywhere Cellar uses it).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `unlink(2)`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names in a directory, in no particular order (no `.` or `..`).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// `fsync` of a directory: its entries (creations, renames, removals) become durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// A barrier for the whole file system holding `path` (`syncfs(2)`): every file's bytes
    /// and every directory entry written before it become durable.
    fn sync_fs(&self, path: &Path) -> io::Result<()>;
    /// Opens (creating, never truncating) a file to take `flock` locks on.
    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
}

/// A `flock(2)` lock handle: unlocked when dropped.
pub trait FileLock: fmt::Debug + Send + Sync {
    /// Blocks until the exclusive lock is held.
    fn lock(&self) -> io::Result<()>;
    /// Blocks until a shared lock is held.
    fn lock_shared(&self) -> io::Result<()>;
    /// Takes the exclusive lock if nobody holds any lock on the file: `Ok(false)` if somebody
    /// does (never blocks).
    fn try_lock(&self) -> io::Result<bool>;
    /// Releases this handle's lock.
    fn unlock(&self) -> io::Result<()>;
}

/// The operating system's file system, shared.
pub fn os() -> Arc<dyn FileSystem> {
    Arc::new(OsFs)
}

/// Writes `data` to `path` durably by the one protocol every file layer uses: a temp file
/// (`tmp`, in the same directory), fsynced, renamed over `path`, then the directory fsynced.
/// A failed write removes the temp file (unlinking needs no space), so the old file is
/// untouched; the error names the path it happened on.
///
/// # Errors
/// Any I/O error, naming `tmp`, `path` or the directory.
pub fn replace_durably(
    fs: &dyn FileSystem,
    tmp: &Path,
    path: &Path,
    data: &[u8],
) -> io::Result<()> {
    use crate::storage::fsio::on;
    if let Err(e) = fs.write(tmp, data, WriteMode { create_new: false, sync: true }) {
        let _ = fs.remove_file(tmp);
        return Err(on(tmp)(e));
    }
    if let Err(e) = fs.rename(tmp, path) {
        let _ = fs.remove_file(tmp);
        return Err(on(path)(e));
    }
    let dir = parent_dir(path);
    fs.sync_dir(dir).map_err(on(dir))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `mkdir -p` whose result survives a power cut: each directory it creates is made durable by
/// an fsync of its parent (a directory entry is durable only once its directory is synced), so
/// a store or lock directory cannot vanish with everything renamed into it. A name that already
/// exists is left alone, whatever it is (the caller checks it is a directory).
///
/// # Errors
/// Any I/O error, naming the directory.
pub fn create_dir_all_durably(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    use crate::storage::fsio::on;
    let mut prefix = std::path::PathBuf::new();
    for component in path.components() {
        prefix.push(component);
        if prefix.parent().is_none() {
            continue; // the root (or a prefix) exists
        }
        match fs.create_dir(&prefix) {
            Ok(()) => {
                let parent = parent_dir(&prefix);
                fs.sync_dir(parent).map_err(on(parent))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(on(&prefix)(e)),
        }
    }
    Ok(())
}
