//! File bytes (`specs/fs.md` FS-4, FS-14..FS-16): reads through [`FileReader`], writes at an
//! offset, append and truncate.
//!
//! A file's bytes are its extents in offset order; a range no extent covers reads as zeros
//! (sparse files, FS-4). A write chunks its bytes (FS-6), posts each chunk as its own blob, cuts
//! the old extents back to the parts outside the written range — an extent can point into the
//! middle of a blob, so no old byte is re-read — and keys each new extent by its end (FS-1).
//!
//! Never: hold more than one chunk (writes) or one blob (reads) of file data (FS-16); return
//! bytes from a blob that failed its CID or tag check, or from extents that overlap or pass the
//! file's size (FS-14).

use super::corrupt;
use super::inode::Home;
use super::path::FsPath;
use super::record::{Extent, Info, Kind, decode_extent_at, encode_extent};
use super::tree::encode;
use super::{EDIT_BATCH_RECORDS_MAX, FILE_SIZE_MAX_BYTES, Fs, FsError, READ_SIZE_MAX_BYTES};
use crate::db::kv::Edits;
use crate::storage::refs::Ref;
use std::io::Read;
use std::ops::Bound;

impl<'s> Fs<'s> {
    /// Where `path`'s node lives and its info, which must be a regular file's.
    pub(crate) fn file_info(&self, root: &Ref, path: &FsPath) -> Result<(Home, Info), FsError> {
        let (home, info) = self
            .resolve(root, path)?
            .ok_or_else(|| FsError::NotFound { path: path.to_string() })?;
        match info.kind {
            Kind::File => Ok((home, info)),
            Kind::Dir => Err(FsError::IsADirectory { path: path.to_string() }),
            _ => Err(FsError::NotAFile { path: path.to_string() }),
        }
    }

    /// The extents of the node at `home` (named `path` in errors) that end after `from`, in
    /// order, with their end offsets. Checks FS-14 (no overlap, none past `size`) as it goes.
    pub(crate) fn extents_from(
        &self,
        root: &Ref,
        (home, path): (&Home, &FsPath),
        from: u64,
        size: u64,
        mut f: impl FnMut(u64, Extent) -> Result<bool, FsError>,
    ) -> Result<(), FsError> {
        let start = home.key(from.saturating_add(1));
        let end = home.own_end();
        let mut prev_end = from;
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let offset = home.offset_of(&k).filter(|o| *o != 0);
            let Some(offset) = offset else {
                return Err(corrupt(path, "FS-2: a stray key among extents"));
            };
            let e = decode_extent_at(offset, &v).map_err(|e| corrupt(path, e))?;
            let ext_start = offset - u64::from(e.length);
            if offset > size || (ext_start < prev_end && prev_end != from) {
                return Err(corrupt(
                    path,
                    format!("FS-14: extent ending at {offset} is out of place"),
                ));
            }
            prev_end = offset;
            if !f(offset, e)? {
                break;
            }
        }
        Ok(())
    }

    /// Up to `len` bytes of the file at `offset` (fewer at the end of the file).
    pub fn read(
        &self,
        root: &Ref,
        path: &FsPath,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, FsError> {
        if len > READ_SIZE_MAX_BYTES {
            return Err(FsError::ReadTooLarge { size_bytes: len });
        }
        let mut r = self.reader(root, path)?;
        r.pos = offset.min(r.size);
        let want = len.min(r.size - r.pos);
        let mut out = vec![0u8; usize::try_from(want).unwrap_or(0)];
        let mut filled = 0;
        while filled < out.len() {
            let n = r.fill(&mut out[filled..])?;
            if n == 0 {
                return Err(corrupt(path, "file ended before its size"));
            }
            filled += n;
        }
        Ok(out)
    }

    /// A streaming reader over the regular file at `path` (FS-16).
    pub fn reader(&self, root: &Ref, path: &FsPath) -> Result<FileReader<'_, 's>, FsError> {
        let (home, info) = self.file_info(root, path)?;
        Ok(FileReader {
            fs: self,
            root: *root,
            home,
            path: path.clone(),
            size: info.size,
            pos: 0,
            cur: None,
        })
    }

    /// A streaming reader over the regular file at `home` of `size` bytes (named `path`).
    pub(crate) fn reader_at(
        &self,
        root: &Ref,
        home: Home,
        path: &FsPath,
        size: u64,
    ) -> FileReader<'_, 's> {
        FileReader { fs: self, root: *root, home, path: path.clone(), size, pos: 0, cur: None }
    }

    /// Writes `data` at `offset`; a gap past the old end reads as zeros.
    pub fn write(
        &self,
        root: &Ref,
        path: &FsPath,
        offset: u64,
        data: &[u8],
    ) -> Result<Ref, FsError> {
        self.write_stream(root, path, offset, &mut &data[..]).map(|(r, _)| r)
    }

    /// Appends `data` at the end of the file.
    pub fn append(&self, root: &Ref, path: &FsPath, data: &[u8]) -> Result<Ref, FsError> {
        let size = self.file_info(root, path)?.1.size;
        self.write(root, path, size, data)
    }

    /// Writes everything `reader` yields at `offset`, one chunk in memory at a time (FS-16);
    /// returns the new root and the number of bytes written.
    pub fn write_stream(
        &self,
        root: &Ref,
        path: &FsPath,
        offset: u64,
        reader: &mut dyn Read,
    ) -> Result<(Ref, u64), FsError> {
        let (home, mut info) = self.file_info(root, path)?;
        if offset > FILE_SIZE_MAX_BYTES {
            return Err(FsError::FileTooLarge { size_bytes: offset });
        }
        let mut out = *root;
        let mut pos = offset;
        let mut batch: Vec<(u64, Extent)> = Vec::new();
        let mut stream = self.chunker.stream(reader);
        loop {
            let chunk = stream.next_chunk()?;
            if let Some(chunk) = &chunk {
                let end = pos + chunk.len() as u64;
                if end > FILE_SIZE_MAX_BYTES {
                    return Err(FsError::FileTooLarge { size_bytes: end });
                }
                let blob = self.post_data(chunk)?;
                let length = u32::try_from(chunk.len()).map_err(|_| corrupt(path, "chunk size"))?;
                batch.push((pos, Extent { blob, offset: 0, length, encoded: true }));
                pos = end;
            }
            if chunk.is_none() || batch.len() >= EDIT_BATCH_RECORDS_MAX / 4 {
                out = self.splice(&out, (&home, path), &mut info, std::mem::take(&mut batch))?;
            }
            if chunk.is_none() {
                return Ok((out, pos - offset));
            }
        }
    }

    /// Replaces whatever covered the range of `extents` (contiguous, given by start offset)
    /// with them, and grows `info.size` to their end.
    pub(crate) fn splice(
        &self,
        root: &Ref,
        (home, path): (&Home, &FsPath),
        info: &mut Info,
        extents: Vec<(u64, Extent)>,
    ) -> Result<Ref, FsError> {
        let (Some((a, _)), Some((last_start, last))) = (extents.first(), extents.last()) else {
            return Ok(*root);
        };
        let b = last_start + u64::from(last.length);
        let mut out = self.clear(root, (home, path), *a, b, info.size)?;
        let mut edits = Edits::new();
        for (start, e) in extents {
            let end = start + u64::from(e.length);
            // FS-1: an extent is keyed by where it ends. Planted bug fs:extent-keyed-by-start.
            let key_at = if crate::bugs::active("fs:extent-keyed-by-start") { start } else { end };
            edits.insert(home.key(key_at), Some(encode_extent(&e).map_err(|x| corrupt(path, x))?));
        }
        info.size = info.size.max(b);
        edits.insert(home.key(0), Some(encode(path, info)?));
        out = self.apply(&out, edits)?;
        Ok(out)
    }

    /// Removes every byte of `[a, b)` from the file's extents, keeping what lies outside by
    /// trimming (FS-15). Applied in bounded batches.
    fn clear(
        &self,
        root: &Ref,
        (home, path): (&Home, &FsPath),
        a: u64,
        b: u64,
        size: u64,
    ) -> Result<Ref, FsError> {
        let mut batches = vec![Edits::new()];
        self.extents_from(root, (home, path), a, size, |end, e| {
            let start = end - u64::from(e.length);
            if start >= b {
                return Ok(false);
            }
            let edits = batches.last_mut().ok_or_else(|| corrupt(path, "no batch"))?;
            edits.insert(home.key(end), None);
            if start < a {
                let left = Extent { length: len32(a - start), ..e };
                edits
                    .insert(home.key(a), Some(encode_extent(&left).map_err(|x| corrupt(path, x))?));
            }
            if end > b {
                let skip = len32(b - start);
                let right = Extent { offset: e.offset + skip, length: e.length - skip, ..e };
                edits.insert(
                    home.key(end),
                    Some(encode_extent(&right).map_err(|x| corrupt(path, x))?),
                );
            }
            if edits.len() >= EDIT_BATCH_RECORDS_MAX {
                batches.push(Edits::new());
            }
            Ok(true)
        })?;
        let mut out = *root;
        for edits in batches {
            out = self.apply(&out, edits)?;
        }
        Ok(out)
    }

    /// Sets the file's size: shrinking drops the bytes past `size` (trimming the extent that
    /// crosses it, FS-15); growing adds a hole that reads as zeros.
    pub fn truncate(&self, root: &Ref, path: &FsPath, size: u64) -> Result<Ref, FsError> {
        let (home, mut info) = self.file_info(root, path)?;
        if size > FILE_SIZE_MAX_BYTES {
            return Err(FsError::FileTooLarge { size_bytes: size });
        }
        let out = if size < info.size {
            self.clear(root, (&home, path), size, info.size, info.size)?
        } else {
            *root
        };
        info.size = size;
        self.apply(&out, Edits::from([(home.key(0), Some(encode(path, &info)?))]))
    }

    /// The bytes of an extent's blob range, verified (REF-4, FS-14) and decoded (FS-27).
    pub(crate) fn extent_bytes(&self, path: &FsPath, e: &Extent) -> Result<Vec<u8>, FsError> {
        let blob = self.data_blob(path, e)?;
        let (s, n) = (e.offset as usize, e.length as usize);
        blob.get(s..s + n).map(<[u8]>::to_vec).ok_or_else(|| {
            corrupt(path, format!("FS-14: extent passes the end of its {}-byte blob", blob.len()))
        })
    }
}

/// Extent lengths are at most a blob's size; callers only pass differences inside one extent.
fn len32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Streams one file's bytes, holding at most one extent's bytes (FS-16). Errors (corruption
/// included) surface as `io::Error`s wrapping an [`FsError`].
pub struct FileReader<'f, 's> {
    fs: &'f Fs<'s>,
    root: Ref,
    home: Home,
    path: FsPath,
    size: u64,
    pos: u64,
    /// The extent last read: its start offset in the file and its bytes.
    cur: Option<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for FileReader<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader").field("path", &self.path).field("pos", &self.pos).finish()
    }
}

impl FileReader<'_, '_> {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the read position (clamped to the size).
    pub fn seek_to(&mut self, pos: u64) {
        self.pos = pos.min(self.size);
    }

    /// Fills `buf` from the current position; 0 only at the end of the file.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let cached =
            self.cur.as_ref().is_some_and(|(s, b)| *s <= self.pos && self.pos < s + b.len() as u64);
        if !cached {
            self.cur = None;
            let mut next: Option<(u64, Extent)> = None;
            let at = (&self.home, &self.path);
            self.fs.extents_from(&self.root, at, self.pos, self.size, |end, e| {
                next = Some((end - u64::from(e.length), e));
                Ok(false)
            })?;
            match next {
                Some((start, e)) if start <= self.pos => {
                    self.cur = Some((start, self.fs.extent_bytes(&self.path, &e)?));
                }
                other => {
                    let hole_end = other.map_or(self.size, |(s, _)| s).min(self.size);
                    let n =
                        usize::try_from(hole_end - self.pos).unwrap_or(usize::MAX).min(buf.len());
                    buf[..n].fill(0);
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
        }
        let Some((start, bytes)) = &self.cur else { return Ok(0) };
        let at = usize::try_from(self.pos - start).unwrap_or(usize::MAX);
        let avail = bytes.get(at..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Read for FileReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.fill(buf).map_err(std::io::Error::other)
    }
}
