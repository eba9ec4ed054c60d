//! Diff of two trees at path granularity (`specs/fs.md` FS-18): built on the prolly tree's diff,
//! which skips every pair of equal subtrees by comparing node refs (KV-6), so its cost follows
//! the size of the change.
//!
//! A path is *modified* when its info differs (for a directory: mode, uid, gid or mtime — its
//! entry count is derived) or when its extents differ and its bytes differ too: two writes of
//! the same bytes with a different blob layout are not a change.

use super::path::{FsPath, split_key};
use super::record::{BACKREF_KEY_TAG, INODE_KEY_TAG};
use super::record::{Info, Kind};
use super::{Fs, FsError, corrupt};
use crate::storage::refs::Ref;
use std::collections::{BTreeMap, BTreeSet};
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

/// What differs between two trees.
pub(crate) struct Changes {
    /// The paths whose records differ, with whether each path's offset-0 record is present in
    /// the first and second tree (`None`: only extents changed, or only the inode it links to).
    pub paths: BTreeMap<FsPath, Option<(bool, bool)>>,
    /// The inodes whose records differ (FS-12).
    pub inodes: BTreeSet<u64>,
}

/// What differs between `a` and `b`. A path linked (in either tree) to an inode whose records
/// differ counts as changed: its file changed under it (FS-12).
pub(crate) fn changes(fs: &Fs<'_>, a: &Ref, b: &Ref) -> Result<Changes, FsError> {
    let mut paths: BTreeMap<FsPath, Option<(bool, bool)>> = BTreeMap::new();
    let mut inodes = BTreeSet::new();
    for c in fs.kv().diff(Some(a), Some(b))? {
        match c.key.first() {
            Some(&INODE_KEY_TAG) => {
                let Some(n) = c.key.get(1..9).and_then(|n| n.try_into().ok()) else {
                    return Err(corrupt(&FsPath::root(), "FS-12: a short inode key"));
                };
                inodes.insert(u64::from_be_bytes(n));
            }
            // A back-reference changes with its link entry, which is a path's record.
            Some(&BACKREF_KEY_TAG) => {}
            _ => {
                let (path, offset) = split_key(&c.key).map_err(|e| corrupt(&FsPath::root(), e))?;
                let slot = paths.entry(path).or_insert(None);
                if offset == 0 {
                    *slot = Some((c.old.is_some(), c.new.is_some()));
                }
            }
        }
    }
    for n in &inodes {
        for root in [a, b] {
            for path in fs.links_of(root, *n)? {
                paths.entry(path).or_insert(None);
            }
        }
    }
    Ok(Changes { paths, inodes })
}

impl Fs<'_> {
    /// The paths added, removed or modified from `a` to `b`, in key order (FS-18).
    pub fn diff(&self, a: &Ref, b: &Ref) -> Result<Vec<PathChange>, FsError> {
        let mut out = Vec::new();
        for (path, info_change) in changes(self, a, b)?.paths {
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
        same_stream(self.reader(a, path)?, self.reader(b, path)?)
    }
}

/// Do two readers yield the same bytes? (One buffer of each in memory.)
pub(crate) fn same_stream(mut ra: impl Read, mut rb: impl Read) -> Result<bool, FsError> {
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
