//! [`OsFs`]: the [`FileSystem`] of the operating system, through `std::fs`.

use super::{FileLock, FileSystem, Metadata, WriteMode};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::Path;

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

impl FileSystem for OsFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let m = fs::metadata(path)?;
        Ok(Metadata { is_dir: m.is_dir(), is_file: m.is_file(), len: m.len() })
    }

    fn read(&self, path: &Path, limit_bytes: u64) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(path)?.take(limit_bytes).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn write(&self, path: &Path, data: &[u8], mode: WriteMode) -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true);
        if mode.create_new {
            options.create_new(true);
        } else {
            options.create(true).truncate(true);
        }
        let mut file = options.open(path)?;
        file.write_all(data)?;
        if mode.sync {
            file.sync_all()?;
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        File::open(path)?.sync_all()?;
        #[cfg(not(unix))]
        let _ = path;
        Ok(())
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let dir = File::open(path)?;
            // SAFETY: `dir` is an open descriptor for the duration of the call; syncfs only
            // reads it.
            let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            sync_tree(path)
        }
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Box::new(OsLock(file)))
    }
}

/// Without `syncfs`: fsync every file and directory under `path`, deepest first.
#[cfg(not(target_os = "linux"))]
fn sync_tree(path: &Path) -> io::Result<()> {
    if fs::metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            sync_tree(&entry?.path())?;
        }
    }
    File::open(path)?.sync_all()
}

/// An open lock file; its `flock` goes with it.
#[derive(Debug)]
struct OsLock(File);

impl FileLock for OsLock {
    fn lock(&self) -> io::Result<()> {
        self.0.lock()
    }

    fn lock_shared(&self) -> io::Result<()> {
        self.0.lock_shared()
    }

    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn unlock(&self) -> io::Result<()> {
        self.0.unlock()
    }
}
