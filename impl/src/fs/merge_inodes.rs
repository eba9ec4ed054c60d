//! FS-19 for inodes (FS-12): every inode the second side changed merges as one unit — its info
//! and extents together — by the rules paths follow: a change on one side only is taken, the
//! same contents on both sides are kept once, a modification wins over a deletion, and when
//! both sides changed it differently the first side keeps the inode while the second side's
//! version becomes a new inode, named by a conflict copy of its first name. An inode no name
//! links to once the merge is done goes; one still named but missing is restored.

use super::diff::same_stream;
use super::inode::{Home, inode_key};
use super::merge::{ConflictKind, Merge, Version};
use super::path::FsPath;
use super::record::{Info, Kind, decode_info, encode_link};
use super::{Fs, FsError, corrupt};
use crate::db::kv::Edits;
use crate::storage::refs::Ref;
use std::ops::Bound;

/// An inode's records (info first, then extents) in one tree.
type InodeRecords = Vec<(u64, Vec<u8>)>;

impl Fs<'_> {
    /// Inode `n`'s records in `root`, if it has an info record.
    fn inode_records(&self, root: &Ref, n: u64) -> Result<Option<InodeRecords>, FsError> {
        let home = Home::Inode(n);
        let (start, end) = (home.key(0), home.own_end());
        let mut out = Vec::new();
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let offset = home.offset_of(&k).ok_or_else(|| corrupt(&FsPath::root(), "inode key"))?;
            out.push((offset, v));
        }
        Ok(out.first().is_some_and(|(o, _)| *o == 0).then_some(out))
    }
}

fn info_of(records: &InodeRecords) -> Result<Info, FsError> {
    let (_, bytes) = records.first().ok_or_else(|| corrupt(&FsPath::root(), "empty inode"))?;
    decode_info(bytes).map_err(|e| corrupt(&FsPath::root(), e))
}

impl Merge<'_, '_, '_> {
    /// Merges every inode the second side changed (FS-12, FS-19).
    pub(super) fn merge_inodes(&mut self) -> Result<(), FsError> {
        let fs = self.fs;
        let changed: Vec<u64> = self.changed_b.inodes.iter().copied().collect();
        for n in changed {
            let side_a = if self.changed_a.inodes.contains(&n) { self.a } else { self.base };
            let va = fs.inode_records(side_a, n)?;
            let vb = fs.inode_records(self.b, n)?;
            let vbase = fs.inode_records(self.base, n)?;
            match (va, vb) {
                (va, Some(y)) if va == vbase => self.put_inode(n, &y)?,
                // A deletion waits: the inode goes if no name links to it at the end.
                (va, None) if va == vbase => {}
                (None, None) | (Some(_), None) => {}
                (Some(x), Some(y)) if self.same_inode(side_a, n, &x, &y)? => {}
                (None, Some(y)) => self.put_inode(n, &y)?,
                (Some(_), Some(y)) => self.inode_conflict(n, &y)?,
            }
        }
        Ok(())
    }

    /// Do `x` (inode `n` in `a`) and `y` (in the second side) hold the same node? Equal
    /// records, or equal attributes and bytes.
    fn same_inode(
        &self,
        a: &Ref,
        n: u64,
        x: &InodeRecords,
        y: &InodeRecords,
    ) -> Result<bool, FsError> {
        if x == y {
            return Ok(true);
        }
        let (ix, iy) = (info_of(x)?, info_of(y)?);
        if ix != iy {
            return Ok(false);
        }
        if ix.kind != Kind::File {
            return Ok(true);
        }
        let name = FsPath::root();
        let ra = self.fs.reader_at(a, Home::Inode(n), &name, ix.size);
        let rb = self.fs.reader_at(self.b, Home::Inode(n), &name, iy.size);
        same_stream(ra, rb)
    }

    /// Makes inode `n`'s records in the result exactly `records`.
    fn put_inode(&mut self, n: u64, records: &InodeRecords) -> Result<(), FsError> {
        self.result = self.fs.delete_inode(&self.result, n)?;
        let mut edits = Edits::new();
        for (offset, v) in records {
            edits.insert(inode_key(n, *offset), Some(v.clone()));
        }
        self.result = self.fs.apply(&self.result, edits)?;
        Ok(())
    }

    /// Both sides changed inode `n`: the second side's version becomes a new inode, linked from
    /// the conflict name of its first name in the second side.
    fn inode_conflict(&mut self, n: u64, y: &InodeRecords) -> Result<(), FsError> {
        let fs = self.fs;
        let Some(first) = fs.links_of(self.b, n)?.into_iter().next() else {
            return Err(corrupt(&FsPath::root(), format!("FS-12: inode {n:#x} has no name")));
        };
        let at = self.remapped(&first)?;
        let fresh = fs.allocate_inode(&self.result, &at)?;
        self.put_inode(fresh, y)?;
        let copy = self.free_name_of(&at, y.iter().map(|(_, v)| v.clone()).collect())?;
        let v = Version {
            info: info_of(y)?,
            link: Some((fresh, true)),
            records: vec![(0, encode_link(fresh))],
        };
        let copy = self.place(&copy, &v)?;
        self.conflict(&at, ConflictKind::BothChanged, Some(copy));
        Ok(())
    }

    /// Every inode the merge touched: gone when no name links to it, restored from the second
    /// side (or the base) when named but missing (FS-12).
    pub(super) fn collect_inodes(&mut self) -> Result<(), FsError> {
        let fs = self.fs;
        for n in std::mem::take(&mut self.inodes) {
            let named = !fs.links_of(&self.result, n)?.is_empty();
            let present = fs.inode_records(&self.result, n)?.is_some();
            if !named && present {
                self.result = fs.delete_inode(&self.result, n)?;
            } else if named && !present {
                let records = match fs.inode_records(self.b, n)? {
                    Some(r) => r,
                    None => fs.inode_records(self.base, n)?.ok_or_else(|| {
                        corrupt(&FsPath::root(), format!("FS-12: inode {n:#x} is in no tree"))
                    })?,
                };
                self.put_inode(n, &records)?;
            }
        }
        Ok(())
    }
}
