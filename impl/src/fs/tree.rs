//! Namespace operations on a file tree (`specs/fs.md` FS-9..FS-13): mkfs, stat, create, mkdir,
//! symlink, readlink, remove, rmdir, rename, chmod/chown/utimens, readdir and walk.
//!
//! Every operation is one functional edit: it reads the old tree and returns a new root, so a
//! refused request changes nothing (FS-17). A directory's `size` is its entry count (FS-10),
//! kept in step with every create, remove and rename.

use super::inode::backref_key;
use super::path::{FsPath, split_key};
use super::record::{Attrs, Entry, Info, Kind, Record, decode_entry, decode_record, encode_info};
use super::{DIR_ENTRIES_MAX, EDIT_BATCH_RECORDS_MAX, Fs, FsError, MODE_MASK};
use super::{SYMLINK_TARGET_SIZE_MAX_BYTES, corrupt};
use crate::db::kv::Edits;
use crate::storage::refs::Ref;
use std::ops::Bound;

/// A raw `(key, value)` record of the tree.
type KeyValue = (Vec<u8>, Vec<u8>);

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: Vec<u8>,
    /// Its info record.
    pub info: Info,
}

impl Fs<'_> {
    /// A new tree holding only the root directory with `attrs` (FS-9).
    pub fn mkfs(&self, attrs: Attrs) -> Result<Ref, FsError> {
        check_mode(attrs.mode)?;
        let info = encode(&FsPath::root(), &Info::new(Kind::Dir, attrs))?;
        self.kv
            .put(None, &FsPath::root().key(0), &info)?
            .ok_or_else(|| corrupt(&FsPath::root(), "a one-record tree came out empty"))
    }

    /// The info of `path`, if it exists (through a link entry, its inode's, FS-12).
    pub fn lookup(&self, root: &Ref, path: &FsPath) -> Result<Option<Info>, FsError> {
        Ok(self.resolve(root, path)?.map(|(_, info)| info))
    }

    /// The info of `path` ([`FsError::NotFound`] if absent).
    pub fn stat(&self, root: &Ref, path: &FsPath) -> Result<Info, FsError> {
        self.lookup(root, path)?.ok_or_else(|| FsError::NotFound { path: path.to_string() })
    }

    /// `path`'s info, which must be a directory.
    pub(crate) fn dir_info(&self, root: &Ref, path: &FsPath) -> Result<Info, FsError> {
        let info = self.stat(root, path)?;
        if info.kind != Kind::Dir {
            return Err(FsError::NotADirectory { path: path.to_string() });
        }
        Ok(info)
    }

    /// Adds `info` at the absent `path` inside an existing directory (FS-10, FS-13).
    fn add(&self, root: &Ref, path: &FsPath, info: Info) -> Result<Ref, FsError> {
        let mut edits = self.new_entry(root, path)?;
        edits.insert(path.key(0), Some(encode(path, &info)?));
        self.apply(root, edits)
    }

    /// Checks that `path` may take a new entry — its parent exists and is a directory with room
    /// (FS-10, FS-13), the path is absent — and returns the edit of the parent's count.
    pub(crate) fn new_entry(&self, root: &Ref, path: &FsPath) -> Result<Edits, FsError> {
        let parent = path.parent().ok_or_else(|| FsError::AlreadyExists { path: "/".into() })?;
        let mut parent_info = self.dir_info(root, &parent)?;
        if self.entry(root, path)?.is_some() {
            return Err(FsError::AlreadyExists { path: path.to_string() });
        }
        if parent_info.size >= DIR_ENTRIES_MAX {
            return Err(FsError::DirectoryFull { path: parent.to_string() });
        }
        parent_info.size += 1;
        Ok(Edits::from([(parent.key(0), Some(encode(&parent, &parent_info)?))]))
    }

    /// Creates an empty regular file (FS-10).
    pub fn create(&self, root: &Ref, path: &FsPath, attrs: Attrs) -> Result<Ref, FsError> {
        check_mode(attrs.mode)?;
        self.add(root, path, Info::new(Kind::File, attrs))
    }

    /// Creates an empty directory (FS-10).
    pub fn mkdir(&self, root: &Ref, path: &FsPath, attrs: Attrs) -> Result<Ref, FsError> {
        check_mode(attrs.mode)?;
        self.add(root, path, Info::new(Kind::Dir, attrs))
    }

    /// Creates a symbolic link to `target` (FS-3, FS-13). The target is stored, never followed.
    pub fn symlink(
        &self,
        root: &Ref,
        path: &FsPath,
        target: &[u8],
        attrs: Attrs,
    ) -> Result<Ref, FsError> {
        check_mode(attrs.mode)?;
        check_target(target)?;
        let mut info = Info::new(Kind::Symlink, attrs);
        info.size = target.len() as u64;
        info.target = target.to_vec();
        self.add(root, path, info)
    }

    /// Creates a FIFO, socket or device node (FS-3): attributes only, no bytes; `rdev` is a
    /// device's number (0 for a FIFO or socket). Other kinds are [`FsError::Unsupported`].
    pub fn mknod(
        &self,
        root: &Ref,
        path: &FsPath,
        kind: Kind,
        attrs: Attrs,
        rdev: u64,
    ) -> Result<Ref, FsError> {
        check_mode(attrs.mode)?;
        if !kind.is_special() {
            return Err(FsError::Unsupported {
                operation: "mknod",
                reason: "only FIFOs, sockets and devices are made by mknod",
            });
        }
        let mut info = Info::new(kind, attrs);
        if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            info.size = rdev;
        }
        self.add(root, path, info)
    }

    /// The target of the symlink at `path`.
    pub fn readlink(&self, root: &Ref, path: &FsPath) -> Result<Vec<u8>, FsError> {
        let info = self.stat(root, path)?;
        if info.kind != Kind::Symlink {
            return Err(FsError::NotASymlink { path: path.to_string() });
        }
        Ok(info.target)
    }

    /// Removes a name of a file, symlink or special node (unlink); its records go with its last
    /// name (FS-12).
    pub fn remove(&self, root: &Ref, path: &FsPath) -> Result<Ref, FsError> {
        let info = self.stat(root, path)?;
        if info.kind == Kind::Dir {
            return Err(FsError::IsADirectory { path: path.to_string() });
        }
        self.drop_path(root, path)
    }

    /// Removes an empty directory (never the root).
    pub fn rmdir(&self, root: &Ref, path: &FsPath) -> Result<Ref, FsError> {
        let info = self.dir_info(root, path)?;
        if path.is_root() {
            return Err(FsError::InvalidPath { path: "/".into(), reason: "the root stays" });
        }
        if info.size != 0 || self.first_child_key(root, path)?.is_some() {
            return Err(FsError::NotEmpty { path: path.to_string() });
        }
        self.drop_path(root, path)
    }

    /// Deletes `path`'s own records and decrements its parent's entry count.
    fn drop_path(&self, root: &Ref, path: &FsPath) -> Result<Ref, FsError> {
        let parent = path.parent().ok_or_else(|| corrupt(path, "the root has no parent"))?;
        let mut parent_info = self.dir_info(root, &parent)?;
        parent_info.size = parent_info
            .size
            .checked_sub(1)
            .ok_or_else(|| corrupt(&parent, "FS-10: entry count is 0 but an entry exists"))?;
        let root = match self.entry(root, path)? {
            Some(Entry::Link(n)) => self.unlink_entry(root, path, n)?,
            _ => self.delete_records(root, path)?,
        };
        let edits = Edits::from([(parent.key(0), Some(encode(&parent, &parent_info)?))]);
        self.apply(&root, edits)
    }

    /// The key of the first record below `dir` (a child's info), if any.
    fn first_child_key(&self, root: &Ref, dir: &FsPath) -> Result<Option<Vec<u8>>, FsError> {
        self.first_in(root, &dir.children_start(), &dir.subtree_end())
    }

    fn first_in(&self, root: &Ref, from: &[u8], to: &[u8]) -> Result<Option<Vec<u8>>, FsError> {
        let mut it = self.kv.range(Some(root), Bound::Included(from), Bound::Excluded(to))?;
        Ok(it.next().transpose()?.map(|(k, _)| k))
    }

    /// Sets the permission bits (FS-3).
    pub fn chmod(&self, root: &Ref, path: &FsPath, mode: u32) -> Result<Ref, FsError> {
        check_mode(mode)?;
        self.update_info(root, path, |i| i.mode = mode)
    }

    /// Sets owner and group.
    pub fn chown(&self, root: &Ref, path: &FsPath, uid: u32, gid: u32) -> Result<Ref, FsError> {
        self.update_info(root, path, |i| {
            i.uid = uid;
            i.gid = gid;
        })
    }

    /// Sets the modification time (ns since the epoch). The tree never sets times itself.
    pub fn utimens(&self, root: &Ref, path: &FsPath, mtime_ns: i64) -> Result<Ref, FsError> {
        self.update_info(root, path, |i| i.mtime_ns = mtime_ns)
    }

    pub(crate) fn update_info(
        &self,
        root: &Ref,
        path: &FsPath,
        f: impl FnOnce(&mut Info),
    ) -> Result<Ref, FsError> {
        let (home, mut info) = self
            .resolve(root, path)?
            .ok_or_else(|| FsError::NotFound { path: path.to_string() })?;
        f(&mut info);
        self.apply(root, Edits::from([(home.key(0), Some(encode(path, &info)?))]))
    }

    /// The entries of directory `dir`, in name order (byte order). Seeks past each entry's
    /// subtree, so a listing costs one tree descent per entry, not a scan of the descendants.
    pub fn readdir(&self, root: &Ref, dir: &FsPath) -> Result<Vec<DirEntry>, FsError> {
        let info = self.dir_info(root, dir)?;
        let out = self.list_children(root, dir)?;
        if out.len() as u64 != info.size {
            return Err(corrupt(
                dir,
                format!("FS-10: size {} but {} entries", info.size, out.len()),
            ));
        }
        Ok(out)
    }

    /// The entries below `dir` without checking its entry count.
    pub(crate) fn list_children(&self, root: &Ref, dir: &FsPath) -> Result<Vec<DirEntry>, FsError> {
        let mut out = Vec::new();
        let end = dir.subtree_end();
        let mut from = dir.children_start();
        while let Some((key, value)) = self.first_entry(root, &from, &end)? {
            let (path, offset) = split_key(&key).map_err(|e| corrupt(dir, e))?;
            if offset != 0 || path.parent().as_ref() != Some(dir) {
                return Err(corrupt(&path, "FS-10: a record without its info or parent"));
            }
            let info = match decode_entry(&value).map_err(|e| corrupt(&path, e))? {
                Entry::Node(info) => info,
                Entry::Link(n) => self.inode_info(root, n, &path)?,
            };
            from = path.subtree_end();
            out.push(DirEntry { name: path.name().to_vec(), info });
            if out.len() as u64 > DIR_ENTRIES_MAX {
                return Err(corrupt(dir, "FS-13: more entries than a directory may hold"));
            }
        }
        Ok(out)
    }

    /// Does anything live below `dir`?
    pub(crate) fn has_children(&self, root: &Ref, dir: &FsPath) -> Result<bool, FsError> {
        Ok(self.first_child_key(root, dir)?.is_some())
    }

    /// Deletes `path`'s own records (not its descendants', not its parent's count).
    /// Callers handle link entries first (FS-12: [`Fs::unlink_entry`]).
    pub(crate) fn delete_records(&self, root: &Ref, path: &FsPath) -> Result<Ref, FsError> {
        let mut out = *root;
        let mut edits = Edits::new();
        let (start, end) = (path.key(0), path.children_start());
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            edits.insert(item?.0, None);
            if edits.len() >= EDIT_BATCH_RECORDS_MAX {
                out = self.apply(&out, std::mem::take(&mut edits))?;
            }
        }
        self.apply(&out, edits)
    }

    fn first_entry(&self, root: &Ref, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, FsError> {
        let mut it = self.kv.range(Some(root), Bound::Included(from), Bound::Excluded(to))?;
        Ok(it.next().transpose()?)
    }

    /// Every path in the subtree at `top` (itself first) with its info, in key order: a parent
    /// before its children (pre-order). Extents are validated and skipped.
    pub fn walk(&self, root: &Ref, top: &FsPath) -> Result<Vec<(FsPath, Info)>, FsError> {
        let mut out = Vec::new();
        self.for_each_record(root, top, |path, _, rec| {
            match rec {
                Record::Info(info) => out.push((path, info)),
                Record::Link(n) => {
                    let info = self.inode_info(root, n, &path)?;
                    out.push((path, info));
                }
                Record::Extent(_) => {}
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` on every record of the subtree at `top`, in key order, validated (FS-5).
    pub(crate) fn for_each_record(
        &self,
        root: &Ref,
        top: &FsPath,
        mut f: impl FnMut(FsPath, u64, Record) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let (start, end) = (top.key(0), top.subtree_end());
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let (path, offset, rec) = decode_record(&k, &v).map_err(|e| corrupt(top, e))?;
            f(path, offset, rec)?;
        }
        Ok(())
    }

    /// Moves a file, symlink or directory (with everything below it) to the absent `to`
    /// (FS-11). Refuses the root, a directory into its own subtree, and an existing `to`.
    pub fn rename(&self, root: &Ref, from: &FsPath, to: &FsPath) -> Result<Ref, FsError> {
        let bad =
            |reason| FsError::InvalidRename { from: from.to_string(), to: to.to_string(), reason };
        if from.is_root() || to.is_root() {
            return Err(bad("the root cannot move"));
        }
        self.stat(root, from)?;
        if from == to {
            return Ok(*root);
        }
        if to.starts_with(from) {
            return Err(bad("a directory cannot move into itself"));
        }
        let to_parent = to.parent().ok_or_else(|| bad("the root cannot move"))?;
        let to_parent_info = self.dir_info(root, &to_parent)?;
        if self.lookup(root, to)?.is_some() {
            return Err(FsError::AlreadyExists { path: to.to_string() });
        }
        let from_parent = from.parent().ok_or_else(|| bad("the root cannot move"))?;
        if from_parent != to_parent && to_parent_info.size >= DIR_ENTRIES_MAX {
            return Err(FsError::DirectoryFull { path: to_parent.to_string() });
        }
        let moved = self.move_subtree(root, from, to)?;
        if from_parent == to_parent {
            return Ok(moved);
        }
        let moved =
            self.update_info(&moved, &from_parent, |i| i.size = i.size.saturating_sub(1))?;
        self.update_info(&moved, &to_parent, |i| i.size += 1)
    }

    /// Rewrites every key of `from`'s subtree under `to` (FS-11), in bounded batches. Every new
    /// path is checked against the limits before anything is returned.
    fn move_subtree(&self, root: &Ref, from: &FsPath, to: &FsPath) -> Result<Ref, FsError> {
        let (start, end) = (from.key(0), from.subtree_end());
        let mut out = *root;
        let mut edits = Edits::new();
        // Read from the old root only: the new keys land outside [start, end) (FS-11: `to` is
        // not inside `from`), so the scan never meets what it wrote.
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let (path, offset) = split_key(&k).map_err(|e| corrupt(from, e))?;
            let new_path = path.rebase(from, to)?;
            // Planted bug fs:rename-leaves-old-subtree: only `from`'s own records are deleted;
            // its descendants stay reachable under the old name.
            if path == *from || !crate::bugs::active("fs:rename-leaves-old-subtree") {
                edits.insert(k, None);
            }
            // FS-12: a moved link entry's back-reference moves with it.
            if offset == 0
                && let Entry::Link(n) = decode_entry(&v).map_err(|e| corrupt(&path, e))?
            {
                edits.insert(backref_key(n, &path), None);
                edits.insert(backref_key(n, &new_path), Some(Vec::new()));
            }
            edits.insert(new_path.key(offset), Some(v));
            if edits.len() >= EDIT_BATCH_RECORDS_MAX {
                out = self.apply(&out, std::mem::take(&mut edits))?;
            }
        }
        self.apply(&out, edits)
    }

    /// Applies a batch of edits; an FS tree never becomes empty (FS-9).
    pub(crate) fn apply(&self, root: &Ref, edits: Edits) -> Result<Ref, FsError> {
        if edits.is_empty() {
            return Ok(*root);
        }
        self.kv
            .edit(Some(root), edits)?
            .ok_or_else(|| corrupt(&FsPath::root(), "FS-9: an edit removed the root directory"))
    }
}

/// Encodes an info, reporting a refusal as corruption of `path` (callers validate first).
pub(crate) fn encode(path: &FsPath, info: &Info) -> Result<Vec<u8>, FsError> {
    encode_info(info).map_err(|e| corrupt(path, e))
}

fn check_mode(mode: u32) -> Result<(), FsError> {
    if mode & !MODE_MASK != 0 {
        return Err(FsError::InvalidMode { mode });
    }
    Ok(())
}

fn check_target(target: &[u8]) -> Result<(), FsError> {
    if target.is_empty() || target.len() > SYMLINK_TARGET_SIZE_MAX_BYTES || target.contains(&0) {
        return Err(FsError::InvalidTarget { size_bytes: target.len() });
    }
    Ok(())
}
