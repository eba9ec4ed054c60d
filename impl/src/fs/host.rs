//! The thin shell between file trees and the host file system (`specs/fs.md` FS-20): import a
//! host directory as a new tree, export (check out) a subtree to a host directory, byte-exact
//! with modes, mtimes and symlinks.
//!
//! This is the only file of [`crate::fs`] that touches host files; the logic it drives
//! ([`Importer`], [`Fs::walk`], [`crate::fs::FileReader`]) never does. Ownership is recorded on
//! import but not restored on export (that needs privileges a checkout should not assume).
//!
//! Never: follow a symlink (both directions store and create the link itself); write into a
//! non-empty destination; report success after a corrupt blob (the export fails naming the
//! path, FS-14).

use super::diff::unwrap_io;
use super::path::FsPath;
use super::record::{Attrs, Kind};
use super::workers::with_workers;
use super::{Fs, FsError, Importer, MODE_MASK};
use crate::storage::refs::Ref;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors of host import and export: the host refused, or the tree did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A host file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The host path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The tree refused or is damaged at `path`.
    #[error("{path}: {source}")]
    Fs {
        /// The tree path.
        path: String,
        /// Why.
        source: FsError,
    },
    /// The export destination exists and is not an empty directory.
    #[error("{}: destination is not an empty directory", path.display())]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |source| HostError::Io { path: path.to_path_buf(), source }
}

fn tree(path: &FsPath) -> impl FnOnce(FsError) -> HostError + '_ {
    move |source| HostError::Fs { path: path.to_string(), source }
}

/// What an import or export saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostReport {
    /// Regular files.
    pub files: u64,
    /// Directories (the top included).
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// File bytes.
    pub bytes: u64,
    /// Regular files taken unread from the parent tree (FS-26), counted in `files` and `bytes`.
    pub reused: u64,
    /// Export: further names of a linked file or symlink (FS-12), made as host hard links.
    /// Import never makes links: every host name becomes a node of its own (FS-20).
    pub hard_links: u64,
    /// Host entries that are none of those (sockets, FIFOs, devices): not imported.
    pub skipped: Vec<PathBuf>,
}

/// The attributes of a host entry (never following a symlink).
pub fn host_attrs(meta: &std::fs::Metadata) -> Attrs {
    let mtime_ns = meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec());
    Attrs { mode: meta.mode() & MODE_MASK, uid: meta.uid(), gid: meta.gid(), mtime_ns }
}

/// Progress of a long import or export, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostProgress {
    /// The number of file bytes the export will write (sent once, first).
    Total(u64),
    /// This many more file bytes were read (import) or written (export).
    Bytes(u64),
}

/// A reader that reports every read to a progress callback.
struct Counting<'a, R> {
    inner: R,
    progress: &'a mut dyn FnMut(HostProgress),
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(HostProgress::Bytes(n as u64));
        Ok(n)
    }
}

/// Imports the host directory `src` as a whole new tree (its attributes become the root's).
pub fn import_tree(fs: &Fs<'_>, src: &Path) -> Result<(Ref, HostReport), HostError> {
    import_tree_with(fs, src, &mut |_| {})
}

/// Imports a single host file as a tree holding it, under its own name, in a root directory
/// with `root` attributes (`cellar commit FILE`), its blobs posted by `workers` threads.
pub fn import_file(
    fs: &Fs<'_>,
    src: &Path,
    root: Attrs,
    workers: usize,
    progress: &mut dyn FnMut(HostProgress),
) -> Result<(Ref, HostReport), HostError> {
    let meta = std::fs::symlink_metadata(src).map_err(io(src))?;
    let name = src.file_name().ok_or_else(|| HostError::Io {
        path: src.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    let top = FsPath::root();
    let path = top.join(name.as_bytes()).map_err(tree(&top))?;
    with_workers(fs.data_encoder(), workers, |poster| {
        let imp = Importer::new_tree(fs, root).map_err(tree(&top))?.with_poster(poster);
        file_into(src, &meta, &path, imp, progress)
    })
}

/// Feeds the one host file (or symlink) `src` to `imp` as `path` and finishes it.
fn file_into(
    src: &Path,
    meta: &std::fs::Metadata,
    path: &FsPath,
    mut imp: Importer<'_, '_>,
    progress: &mut dyn FnMut(HostProgress),
) -> Result<(Ref, HostReport), HostError> {
    let top = FsPath::root();
    let mut report = HostReport { dirs: 1, ..HostReport::default() };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src).map_err(io(src))?;
        imp.symlink(path, host_attrs(meta), target.as_os_str().as_bytes()).map_err(tree(path))?;
        report.symlinks += 1;
    } else if meta.is_file() {
        let f = std::fs::File::open(src).map_err(io(src))?;
        let mut counted = Counting { inner: f, progress };
        report.bytes += imp.file(path, host_attrs(meta), &mut counted).map_err(tree(path))?;
        report.files += 1;
    } else {
        let e = FsError::NotAFile { path: src.display().to_string() };
        return Err(HostError::Fs { path: "/".into(), source: e });
    }
    Ok((imp.finish().map_err(tree(&top))?, report))
}

/// [`import_tree`] reporting the bytes it reads to `progress`.
pub fn import_tree_with(
    fs: &Fs<'_>,
    src: &Path,
    progress: &mut dyn FnMut(HostProgress),
) -> Result<(Ref, HostReport), HostError> {
    import_tree_since(fs, src, None, 1, progress)
}

/// Is `prev`'s entry at `path` a regular file with exactly these attributes and size, so its
/// bytes may be taken without reading the host file (FS-26)?
fn unchanged(
    fs: &Fs<'_>,
    prev: &Ref,
    path: &FsPath,
    attrs: Attrs,
    size: u64,
) -> Result<bool, HostError> {
    Ok(fs.lookup(prev, path).map_err(tree(path))?.is_some_and(|i| {
        // Planted bug fs:reuse-ignores-size: trust the mtime alone.
        let size_ok = i.size == size || crate::bugs::active("fs:reuse-ignores-size");
        i.kind == Kind::File && size_ok && i.attrs() == attrs
    }))
}

/// [`import_tree_with`] against the parent commit's tree `prev`: a regular file whose size, mode,
/// owner and mtime (ns) equal those of the same path in `prev` is taken from `prev` without
/// being read (FS-26), as `git`, `restic` and `borg` do. `None` reads every file. Data blobs
/// are encoded and posted by `workers` threads (inline when ≤ 1); the tree is the same (FS-16).
pub fn import_tree_since(
    fs: &Fs<'_>,
    src: &Path,
    prev: Option<&Ref>,
    workers: usize,
    progress: &mut dyn FnMut(HostProgress),
) -> Result<(Ref, HostReport), HostError> {
    let meta = std::fs::symlink_metadata(src).map_err(io(src))?;
    if !meta.is_dir() {
        let e = FsError::NotADirectory { path: src.display().to_string() };
        return Err(HostError::Fs { path: "/".into(), source: e });
    }
    with_workers(fs.data_encoder(), workers, |poster| {
        let root = FsPath::root();
        let imp = Importer::new_tree(fs, host_attrs(&meta)).map_err(tree(&root))?;
        walk_into(fs, src, prev, imp.with_poster(poster), progress)
    })
}

/// Feeds the host tree below `src` to `imp` in key order and finishes it.
fn walk_into(
    fs: &Fs<'_>,
    src: &Path,
    prev: Option<&Ref>,
    mut imp: Importer<'_, '_>,
    progress: &mut dyn FnMut(HostProgress),
) -> Result<(Ref, HostReport), HostError> {
    let root = FsPath::root();
    let mut report = HostReport { dirs: 1, ..HostReport::default() };
    // Depth-first, children pushed in reverse byte order: paths leave in key order (FS-2).
    let mut stack = children(src, &root)?;
    while let Some((host, path)) = stack.pop() {
        let meta = std::fs::symlink_metadata(&host).map_err(io(&host))?;
        let attrs = host_attrs(&meta);
        let ft = meta.file_type();
        if ft.is_dir() {
            imp.dir(&path, attrs).map_err(tree(&path))?;
            report.dirs += 1;
            stack.extend(children(&host, &path)?);
        } else if ft.is_file() {
            if let Some(prev) = prev
                && unchanged(fs, prev, &path, attrs, meta.len())?
            {
                report.bytes +=
                    imp.file_from(&path, attrs, prev, meta.len()).map_err(tree(&path))?;
                progress(HostProgress::Bytes(meta.len()));
                report.reused += 1;
            } else {
                let f = std::fs::File::open(&host).map_err(io(&host))?;
                let mut counted = Counting { inner: f, progress: &mut *progress };
                report.bytes += imp.file(&path, attrs, &mut counted).map_err(tree(&path))?;
            }
            report.files += 1;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&host).map_err(io(&host))?;
            imp.symlink(&path, attrs, target.as_os_str().as_bytes()).map_err(tree(&path))?;
            report.symlinks += 1;
        } else {
            report.skipped.push(host);
        }
    }
    Ok((imp.finish().map_err(tree(&root))?, report))
}

/// The entries of a host directory as (host path, tree path), in reverse byte order of name.
fn children(host: &Path, path: &FsPath) -> Result<Vec<(PathBuf, FsPath)>, HostError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(host).map_err(io(host))? {
        names.push(entry.map_err(io(host))?.file_name());
    }
    names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    names
        .into_iter()
        .map(|n| Ok((host.join(&n), path.join(n.as_bytes()).map_err(tree(path))?)))
        .collect()
}

/// Writes the subtree at `top` of `root` to the host directory `dest` (absent or empty), with
/// modes, mtimes and symlinks (FS-20). Directory modes and times are set last, deepest first,
/// so writing their entries cannot disturb them.
pub fn export_tree(
    fs: &Fs<'_>,
    root: &Ref,
    top: &FsPath,
    dest: &Path,
) -> Result<HostReport, HostError> {
    export_tree_with(fs, root, top, dest, &mut |_| {})
}

/// [`export_tree`] reporting the total and then the bytes it writes to `progress`.
pub fn export_tree_with(
    fs: &Fs<'_>,
    root: &Ref,
    top: &FsPath,
    dest: &Path,
    progress: &mut dyn FnMut(HostProgress),
) -> Result<HostReport, HostError> {
    let entries = fs.walk(root, top).map_err(tree(top))?;
    // Each linked file's bytes once (its further names become hard links, FS-12).
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for (path, info) in entries.iter().filter(|(_, i)| i.kind == Kind::File) {
        let n = fs.inode_of(root, path).map_err(tree(path))?;
        if n.is_none_or(|n| seen.insert(n)) {
            total += info.size;
        }
    }
    progress(HostProgress::Total(total));
    match std::fs::read_dir(dest).map(|mut it| it.next().is_some()) {
        Ok(true) => return Err(HostError::DestinationNotEmpty { path: dest.to_path_buf() }),
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HostError::Io { path: dest.to_path_buf(), source: e }),
    }
    let mut report = HostReport::default();
    let mut dirs = Vec::new();
    // FS-12: the first name of an inode written, so its other names become hard links.
    let mut inodes: std::collections::HashMap<u64, PathBuf> = std::collections::HashMap::new();
    for (path, info) in entries {
        let mut host = dest.to_path_buf();
        for name in path.names().skip(top.names().count()) {
            host.push(OsStr::from_bytes(name));
        }
        let inode = match info.kind {
            Kind::Dir => None,
            _ => fs.inode_of(root, &path).map_err(tree(&path))?,
        };
        if let Some(first) = inode.and_then(|n| inodes.get(&n)) {
            std::fs::hard_link(first, &host).map_err(io(&host))?;
            report.hard_links += 1;
            continue;
        }
        if let Some(n) = inode
            && matches!(info.kind, Kind::File | Kind::Symlink)
        {
            inodes.insert(n, host.clone());
        }
        match info.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&host).map_err(io(&host))?;
                report.dirs += 1;
                dirs.push((host, info));
            }
            Kind::Symlink => {
                std::os::unix::fs::symlink(OsStr::from_bytes(&info.target), &host)
                    .map_err(io(&host))?;
                set_mtime(&host, info.mtime_ns)?;
                report.symlinks += 1;
            }
            Kind::File => {
                let r = fs.reader(root, &path).map_err(tree(&path))?;
                let mut r = Counting { inner: r, progress: &mut *progress };
                let mut f = std::fs::File::create(&host).map_err(io(&host))?;
                report.bytes +=
                    std::io::copy(&mut r, &mut f).map_err(|e| match e.downcast::<FsError>() {
                        Ok(source) => HostError::Fs { path: path.to_string(), source },
                        Err(source) => HostError::Io { path: host.clone(), source },
                    })?;
                drop(f);
                let perms = std::fs::Permissions::from_mode(info.mode);
                std::fs::set_permissions(&host, perms).map_err(io(&host))?;
                set_mtime(&host, info.mtime_ns)?;
                report.files += 1;
            }
            // FIFOs, sockets and devices are not imported (FS-20); one written through an
            // adapter is not exported either, but reported.
            _ => report.skipped.push(host),
        }
    }
    for (host, info) in dirs.into_iter().rev() {
        let perms = std::fs::Permissions::from_mode(info.mode);
        std::fs::set_permissions(&host, perms).map_err(io(&host))?;
        set_mtime(&host, info.mtime_ns)?;
    }
    Ok(report)
}

/// Sets a host path's mtime without following a symlink (atime left alone).
fn set_mtime(host: &Path, mtime_ns: i64) -> Result<(), HostError> {
    let c = std::ffi::CString::new(host.as_os_str().as_bytes()).map_err(|e| HostError::Io {
        path: host.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        libc::timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
        },
    ];
    // SAFETY: `c` is a NUL-terminated path that outlives the call; `times` points at two valid
    // timespecs, as utimensat(2) requires.
    let rc = unsafe {
        libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    };
    if rc != 0 {
        return Err(HostError::Io {
            path: host.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Recovers an [`FsError`] from an `io::Error` produced by a [`crate::fs::FileReader`].
pub fn fs_error(e: std::io::Error) -> FsError {
    unwrap_io(e)
}
