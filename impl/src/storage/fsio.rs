//! I/O errors that name their path. Every file-based layer (`DirStore`, `FileCell`,
//! `FileModeLock`, `DirVolume`) passes each `std::io::Error` through [`at`], so a full file
//! system reads as, say, `store I/O error: /data/vol/store/3f/.tmp-12-4: No space left on
//! device` rather than a bare errno, while the error keeps its [`std::io::ErrorKind`]
//! (`StorageFull` for `ENOSPC`) and its layer's typed variant. [`path_of`] gets the path back.
//!
//! Never changes an error's kind, never wraps twice.

use std::io;
use std::path::{Path, PathBuf};

/// An I/O error on one path: the inner error of the `std::io::Error`s the file layers return.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathIoError {
    /// The file or directory the operation was on.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: io::Error,
}

/// Wraps `e` so it names `path`, keeping its kind; an error that already names a path is
/// returned as is.
pub fn at(path: &Path, e: io::Error) -> io::Error {
    if path_of(&e).is_some() {
        return e;
    }
    io::Error::new(e.kind(), PathIoError { path: path.to_path_buf(), source: e })
}

/// `|e| at(path, e)`, for `map_err`.
pub fn on(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| at(path, e)
}

/// The path an error from a file layer names, if it names one.
pub fn path_of(e: &io::Error) -> Option<&Path> {
    e.get_ref()?.downcast_ref::<PathIoError>().map(|p| p.path.as_path())
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used, reason = "tests report failure by panicking")]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_kind_names_the_path_once() {
        let e = at(Path::new("/x/y"), io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(path_of(&e), Some(Path::new("/x/y")));
        assert!(e.to_string().starts_with("/x/y: "), "{e}");
        let again = at(Path::new("/z"), e);
        assert_eq!(path_of(&again), Some(Path::new("/x/y")));
        assert_eq!(path_of(&io::Error::other("no path")), None);
    }
}
