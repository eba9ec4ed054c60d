//! Three-way merge of two trees at file granularity (`specs/fs.md` FS-19).
//!
//! For every path changed on either side against the base, in key order (parents first):
//! a change on one side only is taken; the same change on both sides is taken once; two
//! directories are merged attribute by attribute (a side's change wins over no change; the
//! first side wins a tie) and their entries follow their own rules; a modification wins over a
//! deletion; otherwise the first side keeps the path and the second side's version is kept
//! beside it under [`conflict_name`], its changed descendants following it. Deletions run last,
//! deepest first, and a directory that still holds entries is kept. Entry counts of every
//! directory touched are recomputed (FS-10). Hard links (FS-12): a path's link entry merges as
//! the path's version, the inode it names merges as a unit of its own (`merge_inodes`), and
//! back-references follow every link entry the merge writes or removes.

use super::diff::{Changes, changes};
use super::inode::backref_key;
use super::path::FsPath;
use super::record::{Entry, Info, Kind, decode_entry};
use super::tree::encode;
use super::{Fs, FsError, corrupt};
use crate::db::kv::Edits;
use crate::storage::refs::Ref;
use std::collections::BTreeSet;
use std::ops::Bound;

/// How two sides disagreed about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConflictKind {
    /// Both changed it differently: the second side's version went to `copy`.
    BothChanged,
    /// One side deleted it, the other modified it: the modification was kept.
    DeleteModify,
    /// The second side deleted a directory in which the result still holds entries.
    DirNotEmpty,
}

/// One conflict of a merge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The path both sides touched.
    pub path: FsPath,
    /// What happened.
    pub kind: ConflictKind,
    /// Where the second side's version went ([`ConflictKind::BothChanged`] only).
    pub copy: Option<FsPath>,
}

/// The merged tree and what could not merge cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The merged root.
    pub root: Ref,
    /// The conflicts, in path order.
    pub conflicts: Vec<Conflict>,
}

/// One path's own records (info or link entry first, then extents) in one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Version {
    /// The node's info (a link entry's: its inode's in that tree).
    pub(super) info: Info,
    /// The inode a link entry names, and whether that side changed the inode (FS-12).
    pub(super) link: Option<(u64, bool)>,
    pub(super) records: Vec<(u64, Vec<u8>)>,
}

/// The deterministic name of the second side's version of `path` (FS-19): the name, cut to fit,
/// then `.conflict-` and 8 hex digits of BLAKE3 over that version's record values.
pub fn conflict_name(path: &FsPath, records: &[Vec<u8>]) -> Result<FsPath, FsError> {
    let mut h = blake3::Hasher::new();
    for r in records {
        h.update(&(r.len() as u64).to_be_bytes());
        h.update(r);
    }
    let suffix = format!(".conflict-{}", hex::encode(&h.finalize().as_bytes()[..4]));
    let keep = super::path::NAME_SIZE_MAX_BYTES - suffix.len();
    let mut name = path.name().get(..keep).unwrap_or(path.name()).to_vec();
    name.extend_from_slice(suffix.as_bytes());
    path.parent().ok_or_else(|| corrupt(path, "the root cannot conflict"))?.join(&name)
}

pub(super) struct Merge<'m, 'f, 's> {
    pub(super) fs: &'m Fs<'s>,
    pub(super) base: &'f Ref,
    pub(super) a: &'f Ref,
    pub(super) b: &'f Ref,
    pub(super) result: Ref,
    pub(super) conflicts: Vec<Conflict>,
    remap: Vec<(FsPath, FsPath)>,
    deletes: Vec<FsPath>,
    touched: BTreeSet<FsPath>,
    /// What changed on each side against the base.
    pub(super) changed_a: Changes,
    pub(super) changed_b: Changes,
    /// Inodes whose names or records the merge touched: kept only while named (FS-12).
    pub(super) inodes: BTreeSet<u64>,
}

impl Fs<'_> {
    /// Merges `a` and `b`, both descended from `base` (FS-19). `a` is the first side.
    pub fn merge(&self, base: &Ref, a: &Ref, b: &Ref) -> Result<MergeOutcome, FsError> {
        let changed_a = changes(self, base, a)?;
        let changed_b = changes(self, base, b)?;
        let paths: Vec<FsPath> = changed_b.paths.keys().cloned().collect();
        let mut inodes: BTreeSet<u64> = changed_a.inodes.clone();
        inodes.extend(changed_b.inodes.iter().copied());
        let mut m = Merge {
            fs: self,
            base,
            a,
            b,
            result: *a,
            conflicts: Vec::new(),
            remap: Vec::new(),
            deletes: Vec::new(),
            touched: BTreeSet::new(),
            changed_a,
            changed_b,
            inodes,
        };
        for path in &paths {
            let va = if m.changed_a.paths.contains_key(path) {
                self.version(a, path, Some(&m.changed_a))?
            } else {
                self.version(base, path, None)?
            };
            m.one(path, va)?;
        }
        m.merge_inodes()?;
        m.finish()
    }

    /// `path`'s version in `root`; `side` (the side's changes) marks a link whose inode that
    /// side changed, so it differs from the base's version of the same link (FS-12).
    pub(super) fn version(
        &self,
        root: &Ref,
        path: &FsPath,
        side: Option<&Changes>,
    ) -> Result<Option<Version>, FsError> {
        let Some((_, info)) = self.resolve(root, path)? else { return Ok(None) };
        let (start, end) = (path.key(0), path.children_start());
        let mut records = Vec::new();
        let mut link = None;
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let (_, offset) = super::path::split_key(&k).map_err(|e| corrupt(path, e))?;
            if offset == 0
                && let Entry::Link(n) = decode_entry(&v).map_err(|e| corrupt(path, e))?
            {
                link = Some((n, side.is_some_and(|c| c.inodes.contains(&n))));
            }
            records.push((offset, v));
        }
        Ok(Some(Version { info, link, records }))
    }

    fn same_version(
        &self,
        a: &Ref,
        b: &Ref,
        p: &FsPath,
        x: &Version,
        y: &Version,
    ) -> Result<bool, FsError> {
        if x == y {
            return Ok(true);
        }
        // Two links agree only on the same inode, whose contents merge on their own (FS-12).
        if let (Some((n, _)), Some((m, _))) = (x.link, y.link) {
            return Ok(n == m);
        }
        if x.link.is_some() || y.link.is_some() {
            return Ok(false);
        }
        if x.info.kind == Kind::Dir || x.info.size != y.info.size {
            return Ok(false);
        }
        self.same_node(a, b, p, &x.info, &y.info)
    }
}

impl Merge<'_, '_, '_> {
    fn one(&mut self, path: &FsPath, va: Option<Version>) -> Result<(), FsError> {
        let fs = self.fs;
        let vb = fs.version(self.b, path, Some(&self.changed_b))?;
        let target = self.remapped(path)?;
        if target != *path {
            return match vb {
                Some(v) => self.place(&target, &v).map(drop),
                None => Ok(()),
            };
        }
        let vbase = fs.version(self.base, path, None)?;
        match (va, vb) {
            (va, vb) if va == vbase => match vb {
                Some(v) => self.place(path, &v).map(drop),
                None => {
                    self.deletes.push(path.clone());
                    Ok(())
                }
            },
            (None, None) => Ok(()),
            (Some(x), Some(y)) if fs.same_version(&self.result, self.b, path, &x, &y)? => Ok(()),
            (Some(x), Some(y)) if x.is_dir() && y.is_dir() => {
                let info = merge_dir(vbase.as_ref().map(|v| &v.info), &x.info, &y.info);
                self.place(path, &Version { info, link: None, records: Vec::new() }).map(drop)
            }
            (None, Some(y)) => {
                self.conflict(path, ConflictKind::DeleteModify, None);
                self.place(path, &y).map(drop)
            }
            (Some(_), None) => {
                self.conflict(path, ConflictKind::DeleteModify, None);
                Ok(())
            }
            (Some(_), Some(y)) => {
                let copy = self.free_name(path, &y)?;
                self.conflict(path, ConflictKind::BothChanged, Some(copy.clone()));
                if y.is_dir() {
                    self.remap.push((path.clone(), copy.clone()));
                }
                self.place(&copy, &y).map(drop)
            }
        }
    }

    pub(super) fn conflict(&mut self, path: &FsPath, kind: ConflictKind, copy: Option<FsPath>) {
        self.conflicts.push(Conflict { path: path.clone(), kind, copy });
    }

    /// A conflict name for `v` at `path` not yet used in the result.
    pub(super) fn free_name(&self, path: &FsPath, v: &Version) -> Result<FsPath, FsError> {
        self.free_name_of(path, v.records.iter().map(|(_, r)| r.clone()).collect())
    }

    /// A conflict name for a version with record `values` at `path` not yet used in the result.
    pub(super) fn free_name_of(
        &self,
        path: &FsPath,
        values: Vec<Vec<u8>>,
    ) -> Result<FsPath, FsError> {
        let mut name = conflict_name(path, &values)?;
        for i in 1..=1000u32 {
            if self.fs.entry(&self.result, &name)?.is_none() {
                return Ok(name);
            }
            let mut more = values.clone();
            more.push(i.to_be_bytes().to_vec());
            name = conflict_name(path, &more)?;
        }
        Err(corrupt(path, "no free conflict name after 1000 tries"))
    }

    /// `path` with the innermost relocated ancestor prefix replaced.
    pub(super) fn remapped(&self, path: &FsPath) -> Result<FsPath, FsError> {
        match self.remap.iter().rev().find(|(from, _)| path.starts_with(from) && path != from) {
            Some((from, to)) => path.rebase(from, to),
            None => Ok(path.clone()),
        }
    }

    /// Makes `target`'s records exactly `v`'s, creating missing parents as the second side has
    /// them (or relocating under a conflict copy when the result holds a non-directory there).
    pub(super) fn place(&mut self, target: &FsPath, v: &Version) -> Result<FsPath, FsError> {
        let target = self.ensure_parents(target)?;
        let fs = self.fs;
        let mut edits = Edits::new();
        if let Some(old) = fs.version(&self.result, &target, None)? {
            for (offset, _) in old.records {
                edits.insert(target.key(offset), None);
            }
            if let Some((n, _)) = old.link {
                edits.insert(backref_key(n, &target), None);
                self.inodes.insert(n);
            }
        }
        match v.link {
            Some((n, _)) => {
                edits.insert(target.key(0), Some(super::record::encode_link(n)));
                edits.insert(backref_key(n, &target), Some(Vec::new()));
                self.inodes.insert(n);
            }
            None => {
                edits.insert(target.key(0), Some(encode(&target, &v.info)?));
                for (offset, r) in v.records.iter().filter(|(o, _)| *o != 0) {
                    edits.insert(target.key(*offset), Some(r.clone()));
                }
            }
        }
        self.result = fs.apply(&self.result, edits)?;
        if v.is_dir() {
            self.touched.insert(target.clone());
        }
        if let Some(parent) = target.parent() {
            self.touched.insert(parent);
        }
        Ok(target)
    }

    fn ensure_parents(&mut self, target: &FsPath) -> Result<FsPath, FsError> {
        let Some(parent) = target.parent() else { return Ok(target.clone()) };
        let fs = self.fs;
        let parent_now = self.ensure_parents(&parent)?;
        let target = target.rebase(&parent, &parent_now)?;
        match fs.lookup(&self.result, &parent_now)? {
            Some(i) if i.kind == Kind::Dir => Ok(target),
            found => {
                let info = match fs.version(self.b, &parent, None)? {
                    Some(v) if v.is_dir() => v.info,
                    _ => Info::new(Kind::Dir, super::Attrs { mode: 0o755, ..Default::default() }),
                };
                let v = Version { info, link: None, records: Vec::new() };
                let home = if found.is_some() {
                    let copy = self.free_name(&parent_now, &v)?;
                    self.conflict(&parent_now, ConflictKind::BothChanged, Some(copy.clone()));
                    self.remap.push((parent.clone(), copy.clone()));
                    copy
                } else {
                    parent_now
                };
                self.place(&home, &v)?;
                target.rebase(&parent, &home)
            }
        }
    }

    fn finish(mut self) -> Result<MergeOutcome, FsError> {
        let fs = self.fs;
        for path in std::mem::take(&mut self.deletes).into_iter().rev() {
            let Some(entry) = fs.entry(&self.result, &path)? else { continue };
            let is_dir = matches!(&entry, Entry::Node(i) if i.kind == Kind::Dir);
            if is_dir && fs.has_children(&self.result, &path)? {
                self.conflict(&path, ConflictKind::DirNotEmpty, None);
                continue;
            }
            if let Entry::Link(n) = entry {
                let edits = Edits::from([(backref_key(n, &path), None)]);
                self.result = fs.apply(&self.result, edits)?;
                self.inodes.insert(n);
            }
            self.result = fs.delete_records(&self.result, &path)?;
            if let Some(parent) = path.parent() {
                self.touched.insert(parent);
            }
        }
        for dir in std::mem::take(&mut self.touched) {
            match fs.lookup(&self.result, &dir)? {
                Some(info) if info.kind == Kind::Dir => {
                    let n = fs.list_children(&self.result, &dir)?.len() as u64;
                    if n != info.size {
                        self.result = fs.update_info(&self.result, &dir, |i| i.size = n)?;
                    }
                }
                _ => {}
            }
        }
        self.collect_inodes()?;
        self.conflicts.sort();
        Ok(MergeOutcome { root: self.result, conflicts: self.conflicts })
    }
}

impl Version {
    pub(super) fn is_dir(&self) -> bool {
        self.link.is_none() && self.info.kind == Kind::Dir
    }
}

/// FS-19 directory attributes: each of mode, uid, gid, mtime from the first side if it changed
/// it, else from the second. The entry count is recomputed later.
fn merge_dir(base: Option<&Info>, a: &Info, b: &Info) -> Info {
    let Some(base) = base else { return a.clone() };
    fn pick<T: PartialEq + Copy>(x: T, y: T, o: T) -> T {
        if x != o { x } else { y }
    }
    Info {
        mode: pick(a.mode, b.mode, base.mode),
        uid: pick(a.uid, b.uid, base.uid),
        gid: pick(a.gid, b.gid, base.gid),
        mtime_ns: pick(a.mtime_ns, b.mtime_ns, base.mtime_ns),
        ..a.clone()
    }
}
