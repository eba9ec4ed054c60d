//! Three-way merge of two trees at file granularity (`specs/fs.md` FS-19).
//!
//! For every path changed on either side against the base, in key order (parents first):
//! a change on one side only is taken; the same change on both sides is taken once; two
//! directories are merged attribute by attribute (a side's change wins over no change; the
//! first side wins a tie) and their entries follow their own rules; a modification wins over a
//! deletion; otherwise the first side keeps the path and the second side's version is kept
//! beside it under [`conflict_name`], its changed descendants following it. Deletions run last,
//! deepest first, and a directory that still holds entries is kept. Entry counts of every
//! directory touched are recomputed (FS-10).

use super::diff::changed_paths;
use super::path::FsPath;
use super::record::{Info, Kind};
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

/// One path's own records (info first, then extents) in one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    info: Info,
    records: Vec<(u64, Vec<u8>)>,
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

struct Merge<'m, 'f, 's> {
    fs: &'m Fs<'s>,
    base: &'f Ref,
    b: &'f Ref,
    result: Ref,
    conflicts: Vec<Conflict>,
    remap: Vec<(FsPath, FsPath)>,
    deletes: Vec<FsPath>,
    touched: BTreeSet<FsPath>,
}

impl Fs<'_> {
    /// Merges `a` and `b`, both descended from `base` (FS-19). `a` is the first side.
    pub fn merge(&self, base: &Ref, a: &Ref, b: &Ref) -> Result<MergeOutcome, FsError> {
        let changed_a = changed_paths(self, base, a)?;
        let changed_b = changed_paths(self, base, b)?;
        let mut m = Merge {
            fs: self,
            base,
            b,
            result: *a,
            conflicts: Vec::new(),
            remap: Vec::new(),
            deletes: Vec::new(),
            touched: BTreeSet::new(),
        };
        for path in changed_b.keys() {
            let va = self.version(if changed_a.contains_key(path) { a } else { base }, path)?;
            m.one(path, va)?;
        }
        m.finish()
    }

    fn version(&self, root: &Ref, path: &FsPath) -> Result<Option<Version>, FsError> {
        let Some(info) = self.lookup(root, path)? else { return Ok(None) };
        let (start, end) = (path.key(0), path.children_start());
        let mut records = Vec::new();
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let (_, offset) = super::path::split_key(&k).map_err(|e| corrupt(path, e))?;
            records.push((offset, v));
        }
        Ok(Some(Version { info, records }))
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
        if x.info.kind == Kind::Dir || x.info.size != y.info.size {
            return Ok(false);
        }
        self.same_node(a, b, p, &x.info, &y.info)
    }
}

impl Merge<'_, '_, '_> {
    fn one(&mut self, path: &FsPath, va: Option<Version>) -> Result<(), FsError> {
        let fs = self.fs;
        let vb = fs.version(self.b, path)?;
        let target = self.remapped(path)?;
        if target != *path {
            return match vb {
                Some(v) => self.place(&target, &v),
                None => Ok(()),
            };
        }
        let vbase = fs.version(self.base, path)?;
        match (va, vb) {
            (va, vb) if va == vbase => match vb {
                Some(v) => self.place(path, &v),
                None => {
                    self.deletes.push(path.clone());
                    Ok(())
                }
            },
            (None, None) => Ok(()),
            (Some(x), Some(y)) if fs.same_version(&self.result, self.b, path, &x, &y)? => Ok(()),
            (Some(x), Some(y)) if x.info.kind == Kind::Dir && y.info.kind == Kind::Dir => {
                let info = merge_dir(vbase.as_ref().map(|v| &v.info), &x.info, &y.info);
                self.place(path, &Version { info, records: Vec::new() })
            }
            (None, Some(y)) => {
                self.conflict(path, ConflictKind::DeleteModify, None);
                self.place(path, &y)
            }
            (Some(_), None) => {
                self.conflict(path, ConflictKind::DeleteModify, None);
                Ok(())
            }
            (Some(_), Some(y)) => {
                let copy = self.free_name(path, &y)?;
                self.conflict(path, ConflictKind::BothChanged, Some(copy.clone()));
                if y.info.kind == Kind::Dir {
                    self.remap.push((path.clone(), copy.clone()));
                }
                self.place(&copy, &y)
            }
        }
    }

    fn conflict(&mut self, path: &FsPath, kind: ConflictKind, copy: Option<FsPath>) {
        self.conflicts.push(Conflict { path: path.clone(), kind, copy });
    }

    /// A conflict name for `v` at `path` not yet used in the result.
    fn free_name(&self, path: &FsPath, v: &Version) -> Result<FsPath, FsError> {
        let values: Vec<Vec<u8>> = v.records.iter().map(|(_, r)| r.clone()).collect();
        let mut name = conflict_name(path, &values)?;
        for i in 1..=1000u32 {
            if self.fs.lookup(&self.result, &name)?.is_none() {
                return Ok(name);
            }
            let mut more = values.clone();
            more.push(i.to_be_bytes().to_vec());
            name = conflict_name(path, &more)?;
        }
        Err(corrupt(path, "no free conflict name after 1000 tries"))
    }

    /// `path` with the innermost relocated ancestor prefix replaced.
    fn remapped(&self, path: &FsPath) -> Result<FsPath, FsError> {
        match self.remap.iter().rev().find(|(from, _)| path.starts_with(from) && path != from) {
            Some((from, to)) => path.rebase(from, to),
            None => Ok(path.clone()),
        }
    }

    /// Makes `target`'s records exactly `v`'s, creating missing parents as the second side has
    /// them (or relocating under a conflict copy when the result holds a non-directory there).
    fn place(&mut self, target: &FsPath, v: &Version) -> Result<(), FsError> {
        let target = self.ensure_parents(target)?;
        let fs = self.fs;
        let mut edits = Edits::new();
        if let Some(old) = fs.version(&self.result, &target)? {
            for (offset, _) in old.records {
                edits.insert(target.key(offset), None);
            }
        }
        edits.insert(target.key(0), Some(encode(&target, &v.info)?));
        for (offset, r) in v.records.iter().filter(|(o, _)| *o != 0) {
            edits.insert(target.key(*offset), Some(r.clone()));
        }
        self.result = fs.apply(&self.result, edits)?;
        if v.info.kind == Kind::Dir {
            self.touched.insert(target.clone());
        }
        if let Some(parent) = target.parent() {
            self.touched.insert(parent);
        }
        Ok(())
    }

    fn ensure_parents(&mut self, target: &FsPath) -> Result<FsPath, FsError> {
        let Some(parent) = target.parent() else { return Ok(target.clone()) };
        let fs = self.fs;
        let parent_now = self.ensure_parents(&parent)?;
        let target = target.rebase(&parent, &parent_now)?;
        match fs.lookup(&self.result, &parent_now)? {
            Some(i) if i.kind == Kind::Dir => Ok(target),
            found => {
                let info = match fs.version(self.b, &parent)? {
                    Some(v) if v.info.kind == Kind::Dir => v.info,
                    _ => Info::new(Kind::Dir, super::Attrs { mode: 0o755, ..Default::default() }),
                };
                let v = Version { info, records: Vec::new() };
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
            let Some(info) = fs.lookup(&self.result, &path)? else { continue };
            if info.kind == Kind::Dir && fs.has_children(&self.result, &path)? {
                self.conflict(&path, ConflictKind::DirNotEmpty, None);
                continue;
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
        self.conflicts.sort();
        Ok(MergeOutcome { root: self.result, conflicts: self.conflicts })
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
