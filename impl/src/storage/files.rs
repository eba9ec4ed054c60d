//! Files as blob trees: a byte stream split into encrypted chunk blobs, listed by encrypted
//! index blobs, up to one root [`Ref`]. This is the value schema of `cellar vol put/get`.
//!
//! Each index blob is a postcard-encoded [`IndexNode`]: the refs of its children, and whether
//! they are chunks (level 0) or further index nodes. Fan-out is bounded so an index blob always
//! fits in a store blob; depth is bounded so a hostile root cannot make a reader recurse without
//! end.

use crate::Hash;
use crate::storage::refs::{self, Ref, RefError};
use crate::storage::store::Store;
use crate::storage::volume::{Reachability, VolumeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{Read, Write};

/// Largest number of children an index node lists.
pub const INDEX_FANOUT_MAX: usize = 4096;
/// Deepest index tree a reader follows (4096^8 chunks is far beyond any real file).
pub const INDEX_DEPTH_MAX: u8 = 8;
/// Current index node format version.
pub const INDEX_VERSION: u8 = 1;

/// One index blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexNode {
    /// Format version, [`INDEX_VERSION`].
    pub version: u8,
    /// 0: children are data chunks; n > 0: children are index nodes of level n − 1.
    pub level: u8,
    /// Total plaintext bytes below this node.
    pub size_bytes: u64,
    /// The children, in file order.
    pub children: Vec<Ref>,
}

/// Errors reading or writing blob trees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A ref failed (missing blob, corruption, store error).
    #[error(transparent)]
    Ref(#[from] RefError),
    /// An index blob decrypted but is not a valid index node.
    #[error("index blob {cid} is malformed: {detail}")]
    BadIndex {
        /// The index blob's CID.
        cid: Hash,
        /// What was wrong.
        detail: String,
    },
    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<FileError> for VolumeError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Ref(r) => VolumeError::Ref(r),
            FileError::Io(io) => VolumeError::Io(io),
            other => VolumeError::BadValue(other.to_string()),
        }
    }
}

/// Splits `input` into chunks of the largest size the store accepts, posts them encrypted under
/// `salt`, and returns the root index ref.
pub fn put(store: &dyn Store, salt: &[u8; 32], input: &mut dyn Read) -> Result<Ref, FileError> {
    let chunk_size_bytes = refs::max_plaintext_size_bytes(store);
    let mut level: Vec<(Ref, u64)> = Vec::new();
    let mut buf = vec![0u8; chunk_size_bytes];
    loop {
        let n = read_full(input, &mut buf)?;
        if n == 0 && !level.is_empty() {
            break;
        }
        level.push((refs::post(store, salt, &buf[..n])?, n as u64));
        if n < chunk_size_bytes {
            break;
        }
    }
    let fanout = fanout_max(chunk_size_bytes);
    let mut height = 0u8;
    loop {
        let mut next = Vec::with_capacity(level.len().div_ceil(fanout));
        for group in level.chunks(fanout) {
            let size_bytes = group.iter().map(|(_, s)| s).sum();
            let children = group.iter().map(|(r, _)| *r).collect();
            let node = IndexNode { version: INDEX_VERSION, level: height, size_bytes, children };
            let bytes = postcard::to_allocvec(&node)
                .map_err(|e| std::io::Error::other(format!("encoding index node: {e}")))?;
            next.push((refs::post(store, salt, &bytes)?, size_bytes));
        }
        if let [(root, _)] = next.as_slice() {
            return Ok(*root);
        }
        level = next;
        height += 1;
    }
}

/// How many 64-byte refs fit in one index blob, capped at [`INDEX_FANOUT_MAX`].
fn fanout_max(chunk_size_bytes: usize) -> usize {
    // Generous allowance for postcard's varint header fields.
    (chunk_size_bytes.saturating_sub(64) / refs::REF_SIZE_BYTES).clamp(2, INDEX_FANOUT_MAX)
}

fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Why an index blob's plaintext was refused (`specs/volume-dir.md`, VD-5), in check order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The fields end early.
    #[error("index node is truncated")]
    Truncated,
    /// A field does not decode (over-long varint).
    #[error("index node does not decode: {0}")]
    Undecodable(String),
    /// Bytes after the last child.
    #[error("index node has {0} trailing bytes")]
    TrailingBytes(usize),
    /// Not [`INDEX_VERSION`].
    #[error("unknown index version {0}")]
    Version(u8),
    /// Level of [`INDEX_DEPTH_MAX`] or more.
    #[error("level {0} is deeper than allowed")]
    Level(u8),
    /// No children.
    #[error("index node has no children")]
    Empty,
    /// More than [`INDEX_FANOUT_MAX`] children.
    #[error("index node has {0} children, more than {INDEX_FANOUT_MAX}")]
    TooManyChildren(usize),
}

/// Decodes and checks an index blob's plaintext (VD-5): exact bytes, version, level, fan-out.
pub fn decode_index(bytes: &[u8]) -> Result<IndexNode, IndexError> {
    let (node, rest) = postcard::take_from_bytes::<IndexNode>(bytes).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => IndexError::Truncated,
        other => IndexError::Undecodable(other.to_string()),
    })?;
    if !rest.is_empty() {
        return Err(IndexError::TrailingBytes(rest.len()));
    }
    if node.version != INDEX_VERSION {
        return Err(IndexError::Version(node.version));
    }
    if node.level >= INDEX_DEPTH_MAX {
        return Err(IndexError::Level(node.level));
    }
    if node.children.is_empty() {
        return Err(IndexError::Empty);
    }
    if node.children.len() > INDEX_FANOUT_MAX {
        return Err(IndexError::TooManyChildren(node.children.len()));
    }
    Ok(node)
}

fn load_index(store: &dyn Store, r: &Ref, depth: u8) -> Result<IndexNode, FileError> {
    let bad = |detail: String| FileError::BadIndex { cid: r.cid, detail };
    let bytes = refs::get(store, r)?;
    let node = decode_index(&bytes).map_err(|e| bad(e.to_string()))?;
    if node.level >= depth {
        return Err(bad(format!("level {} is deeper than allowed", node.level)));
    }
    Ok(node)
}

/// Writes the file rooted at `root` to `out`, verifying every blob (hash and AEAD tag).
pub fn get(store: &dyn Store, root: &Ref, out: &mut dyn Write) -> Result<u64, FileError> {
    get_node(store, root, INDEX_DEPTH_MAX, out)
}

fn get_node(store: &dyn Store, r: &Ref, depth: u8, out: &mut dyn Write) -> Result<u64, FileError> {
    let node = load_index(store, r, depth)?;
    let mut written = 0u64;
    for child in &node.children {
        if node.level == 0 {
            let data = refs::get(store, child)?;
            out.write_all(&data)?;
            written += data.len() as u64;
        } else {
            written += get_node(store, child, node.level, out)?;
        }
    }
    if written != node.size_bytes {
        return Err(FileError::BadIndex {
            cid: r.cid,
            detail: format!("declares {} bytes, children hold {written}", node.size_bytes),
        });
    }
    Ok(written)
}

/// Every blob hash the tree rooted at `root` needs (index blobs and chunks).
pub fn reachable(store: &dyn Store, root: &Ref) -> Result<BTreeSet<Hash>, FileError> {
    let mut out = BTreeSet::new();
    walk(store, root, INDEX_DEPTH_MAX, &mut out)?;
    Ok(out)
}

fn walk(store: &dyn Store, r: &Ref, depth: u8, out: &mut BTreeSet<Hash>) -> Result<(), FileError> {
    let node = load_index(store, r, depth)?;
    out.insert(r.cid);
    for child in &node.children {
        if node.level == 0 {
            out.insert(child.cid);
        } else {
            walk(store, child, node.level, out)?;
        }
    }
    Ok(())
}

/// The reachability of `cellar vol` volumes: the cell holds nothing (empty) or the 64-byte root
/// ref of one file tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileTreeReach;

impl Reachability for FileTreeReach {
    fn reachable(&self, value: &[u8], store: &dyn Store) -> Result<BTreeSet<Hash>, VolumeError> {
        if value.is_empty() {
            return Ok(BTreeSet::new());
        }
        let root = Ref::from_bytes(value)?;
        Ok(reachable(store, &root)?)
    }
}
