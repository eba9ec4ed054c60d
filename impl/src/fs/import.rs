//! Batched import of a whole subtree (`specs/fs.md` FS-8): the path by which a snapshot of a host
//! directory enters a tree, and the only place small files share blobs.
//!
//! Paths arrive in key order (a parent before its children, siblings in byte order — what a
//! sorted depth-first walk yields), so the importer needs only a stack of open directories to
//! count entries (FS-10), and nothing of the host: the shell in [`super::host`] feeds it.
//!
//! Packing (FS-8): chunks shorter than the chunker's minimum — whole small files and the tails
//! of larger ones — are appended, in import order, to a pack that becomes one blob when the next
//! small chunk would overflow [`PACK_SIZE_MAX_BYTES`], when the pending edits reach
//! [`EDIT_BATCH_RECORDS_MAX`], or when the import ends. Every other chunk is its own blob.
//!
//! Blobs go through a [`DataPoster`]: inline by default, or workers a shell hands over with
//! [`Importer::with_poster`]. Extents are written when their blobs are redeemed, before each edit
//! batch is applied; refs depend on bytes only, so the root is the same either way (FS-8).
//!
//! Never: publish anything before [`Importer::finish`] (the caller gets one root or an error);
//! hold more than one chunk, one pack, one edit batch and the poster's bounded blobs in flight
//! (FS-16).

use super::path::FsPath;
use super::post::{DataPoster, InlinePoster};
use super::record::{Attrs, Extent, Info, Kind, encode_extent};
use super::tree::encode;
use super::{DIR_ENTRIES_MAX, EDIT_BATCH_RECORDS_MAX, FILE_SIZE_MAX_BYTES, Fs, FsError};
use super::{PACK_SIZE_MAX_BYTES, corrupt};
use crate::db::kv::Edits;
use crate::storage::refs::Ref;
use std::io::Read;
use std::ops::Bound;

/// A chunk handed to the poster, waiting for its ref: (path, end offset, offset in its blob,
/// length, the blob's place in submission order since the last redemption).
type Posted = (FsPath, u64, u32, u32, usize);

/// The importer's poster: its own inline one, or one a shell handed over.
enum Poster<'f, 's> {
    Inline(InlinePoster<'s>),
    Given(&'f mut dyn DataPoster),
}

/// Builds a subtree from a pre-order stream of directories, files and symlinks.
pub struct Importer<'f, 's> {
    fs: &'f Fs<'s>,
    root: Ref,
    /// Open directories, outermost first, with their infos (entry counts so far).
    open: Vec<(FsPath, Info)>,
    last_key: Vec<u8>,
    edits: Edits,
    pack: Vec<u8>,
    /// Packed chunks waiting for their pack's ref: (path, end offset, offset in pack, length).
    pending: Vec<(FsPath, u64, u32, u32)>,
    /// Chunks whose blobs are with the poster.
    posted: Vec<Posted>,
    /// Blobs submitted since the last redemption.
    submitted: usize,
    poster: Poster<'f, 's>,
    bytes: u64,
}

impl std::fmt::Debug for Importer<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("open", &self.open.len())
            .field("edits", &self.edits.len())
            .field("posted", &self.posted.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<'f, 's> Importer<'f, 's> {
    /// Starts a whole new tree whose root directory gets `attrs`.
    pub fn new_tree(fs: &'f Fs<'s>, attrs: Attrs) -> Result<Self, FsError> {
        let root = fs.mkfs(attrs)?;
        Ok(Self::start(fs, root, FsPath::root(), Info::new(Kind::Dir, attrs)))
    }

    /// Starts importing a new directory `top` (absent; its parent exists) into `root`.
    pub fn into_dir(
        fs: &'f Fs<'s>,
        root: &Ref,
        top: &FsPath,
        attrs: Attrs,
    ) -> Result<Self, FsError> {
        let root = fs.mkdir(root, top, attrs)?;
        Ok(Self::start(fs, root, top.clone(), Info::new(Kind::Dir, attrs)))
    }

    fn start(fs: &'f Fs<'s>, root: Ref, top: FsPath, info: Info) -> Self {
        let last_key = top.key(0);
        Self {
            fs,
            root,
            open: vec![(top, info)],
            last_key,
            edits: Edits::new(),
            pack: Vec::new(),
            pending: Vec::new(),
            posted: Vec::new(),
            submitted: 0,
            poster: Poster::Inline(InlinePoster::new(fs.data_encoder())),
            bytes: 0,
        }
    }

    /// The same importer posting its data blobs through `poster` (e.g. workers on other
    /// threads, [`super::workers`]) instead of inline. The root is the same (FS-8).
    pub fn with_poster(mut self, poster: &'f mut dyn DataPoster) -> Self {
        self.poster = Poster::Given(poster);
        self
    }

    fn poster(&mut self) -> &mut dyn DataPoster {
        match &mut self.poster {
            Poster::Inline(p) => p,
            Poster::Given(p) => &mut **p,
        }
    }

    /// Hands `bytes` to the poster; returns the blob's place in submission order.
    fn post(&mut self, bytes: Vec<u8>) -> Result<usize, FsError> {
        self.poster().submit(bytes)?;
        self.submitted += 1;
        Ok(self.submitted - 1)
    }

    /// Waits for every submitted blob and writes the extents of the chunks they hold.
    fn redeem(&mut self) -> Result<(), FsError> {
        if self.submitted == 0 {
            return Ok(());
        }
        let refs = self.poster().collect()?;
        if refs.len() != self.submitted {
            let detail = format!("{} refs for {} blobs posted", refs.len(), self.submitted);
            return Err(corrupt(&FsPath::root(), detail));
        }
        for (path, end, offset, length, slot) in self.posted.drain(..) {
            let e = encode_extent(&Extent { blob: refs[slot], offset, length, encoded: true })
                .map_err(|x| corrupt(&path, x))?;
            self.edits.insert(path.key(end), Some(e));
        }
        self.submitted = 0;
        Ok(())
    }

    /// Bytes of file data imported so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Checks `path` comes next in key order inside an open directory, closes the directories
    /// it has left, and counts it in its parent (FS-10, FS-13).
    fn enter(&mut self, path: &FsPath) -> Result<(), FsError> {
        let key = path.key(0);
        if key <= self.last_key {
            return Err(FsError::InvalidPath {
                path: path.to_string(),
                reason: "import paths must come in key order, each once",
            });
        }
        self.last_key = key;
        let parent = path.parent().ok_or_else(|| FsError::AlreadyExists { path: "/".into() })?;
        while self.open.len() > 1 && self.open.last().is_some_and(|(p, _)| *p != parent) {
            self.close_top()?;
        }
        let Some((p, info)) = self.open.last_mut().filter(|(p, _)| *p == parent) else {
            return Err(FsError::NotFound { path: parent.to_string() });
        };
        if info.size >= DIR_ENTRIES_MAX {
            return Err(FsError::DirectoryFull { path: p.to_string() });
        }
        info.size += 1;
        Ok(())
    }

    fn close_top(&mut self) -> Result<(), FsError> {
        if let Some((path, info)) = self.open.pop() {
            self.edits.insert(path.key(0), Some(encode(&path, &info)?));
        }
        self.maybe_flush()
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &FsPath, attrs: Attrs) -> Result<(), FsError> {
        self.enter(path)?;
        self.open.push((path.clone(), Info::new(Kind::Dir, attrs)));
        Ok(())
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, path: &FsPath, attrs: Attrs, target: &[u8]) -> Result<(), FsError> {
        if target.is_empty()
            || target.len() > super::SYMLINK_TARGET_SIZE_MAX_BYTES
            || target.contains(&0)
        {
            return Err(FsError::InvalidTarget { size_bytes: target.len() });
        }
        self.enter(path)?;
        let mut info = Info::new(Kind::Symlink, attrs);
        info.size = target.len() as u64;
        info.target = target.to_vec();
        self.edits.insert(path.key(0), Some(encode(path, &info)?));
        self.maybe_flush()
    }

    /// Adds a regular file with the bytes `reader` yields; returns its size.
    pub fn file(
        &mut self,
        path: &FsPath,
        attrs: Attrs,
        reader: &mut dyn Read,
    ) -> Result<u64, FsError> {
        self.enter(path)?;
        let fs = self.fs;
        let min = fs.chunker().params().min_bytes;
        let mut stream = fs.chunker().stream(reader);
        let mut size = 0u64;
        while let Some(chunk) = stream.next_chunk()? {
            let end = size + chunk.len() as u64;
            if end > FILE_SIZE_MAX_BYTES {
                return Err(FsError::FileTooLarge { size_bytes: end });
            }
            let length = u32::try_from(chunk.len()).map_err(|_| corrupt(path, "chunk size"))?;
            if chunk.len() < min {
                if self.pack.len() + chunk.len() > PACK_SIZE_MAX_BYTES {
                    self.seal()?;
                }
                let at = u32::try_from(self.pack.len()).map_err(|_| corrupt(path, "pack size"))?;
                self.pack.extend_from_slice(&chunk);
                self.pending.push((path.clone(), end, at, length));
            } else {
                let slot = self.post(chunk)?;
                self.posted.push((path.clone(), end, 0, length, slot));
            }
            size = end;
        }
        let mut info = Info::new(Kind::File, attrs);
        info.size = size;
        self.edits.insert(path.key(0), Some(encode(path, &info)?));
        self.bytes += size;
        self.maybe_flush()?;
        Ok(size)
    }

    /// Adds a regular file of `size` bytes whose contents are those of the same path in the tree
    /// `prev` (same store and salt), without reading it: its extent records are copied (FS-26).
    pub fn file_from(
        &mut self,
        path: &FsPath,
        attrs: Attrs,
        prev: &Ref,
        size: u64,
    ) -> Result<u64, FsError> {
        self.enter(path)?;
        // FS-12: a linked file's extents live under its inode; the copy is a file of its own.
        let home = match self.fs.resolve(prev, path)? {
            Some((home, _)) => home,
            None => return Err(FsError::NotFound { path: path.to_string() }),
        };
        let (from, to) = (home.key(1), home.key(FILE_SIZE_MAX_BYTES));
        let (from, to) = (Bound::Included(from.as_slice()), Bound::Included(to.as_slice()));
        let mut end = 0;
        for item in self.fs.kv().range(Some(prev), from, to)? {
            let (k, v) = item?;
            end = home.offset_of(&k).ok_or_else(|| corrupt(path, "extent key"))?;
            self.edits.insert(path.key(end), Some(v));
        }
        if end != size {
            return Err(corrupt(path, "FS-26: the previous tree's extents do not end at its size"));
        }
        let mut info = Info::new(Kind::File, attrs);
        info.size = size;
        self.edits.insert(path.key(0), Some(encode(path, &info)?));
        self.maybe_flush()?;
        Ok(size)
    }

    /// Posts the pack and writes the extents of its chunks (FS-8).
    fn seal(&mut self) -> Result<(), FsError> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let pack = std::mem::take(&mut self.pack);
        let slot = self.post(pack)?;
        let packed = self
            .pending
            .drain(..)
            .map(|(path, end, offset, length)| (path, end, offset, length, slot));
        self.posted.extend(packed);
        Ok(())
    }

    fn maybe_flush(&mut self) -> Result<(), FsError> {
        if self.edits.len() + self.pending.len() + self.posted.len() >= EDIT_BATCH_RECORDS_MAX {
            self.seal()?;
            self.redeem()?;
            self.root = self.fs.apply(&self.root, std::mem::take(&mut self.edits))?;
        }
        Ok(())
    }

    /// Seals the last pack, writes the open directories' infos and returns the new root.
    pub fn finish(mut self) -> Result<Ref, FsError> {
        while !self.open.is_empty() {
            self.close_top()?;
        }
        self.seal()?;
        self.redeem()?;
        let edits = std::mem::take(&mut self.edits);
        self.fs.apply(&self.root, edits)
    }
}
