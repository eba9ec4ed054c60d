//! Diff of two trees at path granularity (`specs/fs.md` FS-18): built on the prolly tree's diff,
//! which skips every pair of equal subtrees by comparing node refs (KV-6), so its cost follows
//! the size of the change.
//!
//! A path is *modified* when its info differs (for a directory: mode, uid, gid or mtime — its
//! entry count is derived) or when its extents differ and its bytes differ too: two writes of
//! the same bytes with a different blob layout are not a change.

use super::path::{FsPath, split_key};
use super::record::{Info, Kind};
use super::{Fs, FsError, corrupt};
use crate::storage::refs::Ref;
use std::collections::BTreeMap;
use std::io::Read;

/// How a path changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Absent in the first tree, present in the second.
    Added,
    /// Present in the first tree, absent in the second.
    Removed,
    /// Present in both, different (FS-18).
    Modified,
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathChange {
    /// The path.
    pub path: FsPath,
    /// How it changed.
    pub kind: ChangeKind,
}

/// The paths whose records differ between two trees, with whether each path's info record is
/// present in the first and second tree (`None`: only extents changed).
pub(crate) fn changed_paths(
    fs: &Fs<'_>,
    a: &Ref,
    b: &Ref,
) -> Result<BTreeMap<FsPath, Option<(bool, bool)>>, FsError> {
    let mut out: BTreeMap<FsPath, Option<(bool, bool)>> = BTreeMap::new();
    for c in fs.kv().diff(Some(a), Some(b))? {
        let (path, offset) = split_key(&c.key).map_err(|e| corrupt(&FsPath::root(), e))?;
        let slot = out.entry(path).or_insert(None);
        if offset == 0 {
            *slot = Some((c.old.is_some(), c.new.is_some()));
        }
    }
    Ok(out)
}

impl Fs<'_> {
    /// The paths added, removed or modified from `a` to `b`, in key order (FS-18).
    pub fn diff(&self, a: &Ref, b: &Ref) -> Result<Vec<PathChange>, FsError> {
        let mut out = Vec::new();
        for (path, info_change) in changed_paths(self, a, b)? {
            let kind = match info_change {
                Some((false, true)) => Some(ChangeKind::Added),
                Some((true, false)) => Some(ChangeKind::Removed),
                _ => {
                    let (ia, ib) = (self.stat(a, &path)?, self.stat(b, &path)?);
                    (!self.same_node(a, b, &path, &ia, &ib)?).then_some(ChangeKind::Modified)
                }
            };
            if let Some(kind) = kind {
                out.push(PathChange { path, kind });
            }
        }
        Ok(out)
    }

    /// Do `path` in `a` (info `ia`) and in `b` (info `ib`) hold the same node? Directories
    /// compare attributes only; files compare bytes when their infos agree.
    pub(crate) fn same_node(
        &self,
        a: &Ref,
        b: &Ref,
        path: &FsPath,
        ia: &Info,
        ib: &Info,
    ) -> Result<bool, FsError> {
        if ia.kind != ib.kind || ia.attrs() != ib.attrs() {
            return Ok(false);
        }
        match ia.kind {
            Kind::Dir => Ok(true),
            Kind::Symlink => Ok(ia.target == ib.target),
            Kind::File => Ok(ia.size == ib.size && self.same_bytes(a, b, path)?),
            // FIFOs and sockets have size 0; a device's size is its device number.
            _ => Ok(ia.size == ib.size),
        }
    }

    /// Streams both versions of a file and compares them (one blob of each in memory).
    fn same_bytes(&self, a: &Ref, b: &Ref, path: &FsPath) -> Result<bool, FsError> {
        let (mut ra, mut rb) = (self.reader(a, path)?, self.reader(b, path)?);
        let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        loop {
            let n = read_full(&mut ra, &mut ba)?;
            let m = read_full(&mut rb, &mut bb)?;
            if n != m || ba[..n] != bb[..m] {
                return Ok(false);
            }
            if n == 0 {
                return Ok(true);
            }
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize, FsError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(unwrap_io(e)),
        }
    }
    Ok(filled)
}

/// Recovers the [`FsError`] a [`super::FileReader`] wrapped in an `io::Error`.
pub(crate) fn unwrap_io(e: std::io::Error) -> FsError {
    match e.downcast::<FsError>() {
        Ok(fs) => fs,
        Err(e) => FsError::Source(e),
    }
}
