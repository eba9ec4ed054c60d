//! Hard links (`specs/fs.md` FS-12): inodes, link entries and back-references.
//!
//! A node with one name keeps its records under its path. Linking it moves its records to an
//! *inode* (`01 ‖ n ‖ offset`) and leaves a *link entry* (kind 8, `size = n`) at each name, with
//! one *back-reference* (`02 ‖ n ‖ encoded path`, empty value) per name: the link count is the
//! number of back-references, so two merged sides that each added a name count both. Every
//! operation on a name reaches the node through [`Fs::resolve`], which returns where the node's
//! records live ([`Home`]) and its info.
//!
//! Never: leave a link entry without its inode or back-reference, or an inode without a name
//! (FS-12); make a directory an inode.

use super::path::FsPath;
use super::record::{BACKREF_KEY_TAG, Entry, INODE_KEY_TAG, Info, Kind, decode_entry};
use super::record::{decode_info, encode_link};
use super::{EDIT_BATCH_RECORDS_MAX, Fs, FsError, corrupt};
use crate::db::kv::Edits;
use crate::storage::refs::Ref;
use std::ops::Bound;

/// BLAKE3 `derive_key` context of inode numbers (FS-12).
pub const INODE_NUMBER_CONTEXT: &str = "cellar 2026 fs inode number v1";
/// Most numbers tried before an allocation gives up (a tree holding that many collisions is
/// damaged or hostile).
const INODE_ALLOCATION_TRIES_MAX: u32 = 64;

/// Where a node's records live: under its one path, or under an inode (FS-12).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Home {
    /// The node's records are keyed by this path (FS-1).
    Path(FsPath),
    /// The node is inode `n`, linked from one or more paths.
    Inode(u64),
}

impl Home {
    /// The key of the node's record at `offset`.
    pub fn key(&self, offset: u64) -> Vec<u8> {
        match self {
            Home::Path(p) => p.key(offset),
            Home::Inode(n) => inode_key(*n, offset),
        }
    }

    /// The first key after the node's own records.
    pub fn own_end(&self) -> Vec<u8> {
        match self {
            Home::Path(p) => p.children_start(),
            Home::Inode(n) => {
                let mut k = inode_key(*n, u64::MAX);
                k.push(0);
                k
            }
        }
    }

    /// The offset of `key` if it is one of the node's own records.
    pub fn offset_of(&self, key: &[u8]) -> Option<u64> {
        let prefix_len = match self {
            Home::Path(p) => p.encoded().len(),
            Home::Inode(_) => 9,
        };
        let own = self.key(0);
        if key.len() != own.len() || key.get(..prefix_len) != own.get(..prefix_len) {
            return None;
        }
        Some(u64::from_be_bytes(key.get(prefix_len..)?.try_into().ok()?))
    }
}

/// The key of inode `n`'s record at `offset`: `01 ‖ n ‖ offset` (FS-12).
pub fn inode_key(n: u64, offset: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(INODE_KEY_TAG);
    k.extend_from_slice(&n.to_be_bytes());
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// The key of the back-reference from `path` to inode `n`: `02 ‖ n ‖ encoded path` (FS-12).
pub fn backref_key(n: u64, path: &FsPath) -> Vec<u8> {
    let mut k = backrefs_start(n);
    k.extend_from_slice(path.encoded());
    k
}

fn backrefs_start(n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + 64);
    k.push(BACKREF_KEY_TAG);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// Every back-reference of `n` sorts before this key (an encoded path starts with 0x00).
fn backrefs_end(n: u64) -> Vec<u8> {
    let mut k = backrefs_start(n);
    k.push(1);
    k
}

impl Fs<'_> {
    /// `path`'s offset-0 record as it is stored: a node or a link entry.
    pub(crate) fn entry(&self, root: &Ref, path: &FsPath) -> Result<Option<Entry>, FsError> {
        let Some(bytes) = self.kv.get(Some(root), &path.key(0))? else { return Ok(None) };
        let entry = decode_entry(&bytes).map_err(|e| corrupt(path, e))?;
        match &entry {
            Entry::Node(i) if path.is_root() && i.kind != Kind::Dir => {
                Err(corrupt(path, "FS-9: the root is not a directory"))
            }
            Entry::Link(_) if path.is_root() => Err(corrupt(path, "FS-9: the root is a link")),
            _ => Ok(Some(entry)),
        }
    }

    /// Where `path`'s node keeps its records, and its info (a link entry resolved, FS-12).
    pub fn resolve(&self, root: &Ref, path: &FsPath) -> Result<Option<(Home, Info)>, FsError> {
        Ok(match self.entry(root, path)? {
            None => None,
            Some(Entry::Node(info)) => Some((Home::Path(path.clone()), info)),
            Some(Entry::Link(n)) => Some((Home::Inode(n), self.inode_info(root, n, path)?)),
        })
    }

    /// Inode `n`'s info; a link to a missing inode is corruption of `path` (FS-12).
    pub(crate) fn inode_info(&self, root: &Ref, n: u64, path: &FsPath) -> Result<Info, FsError> {
        let bytes = self
            .kv
            .get(Some(root), &inode_key(n, 0))?
            .ok_or_else(|| corrupt(path, format!("FS-12: link to missing inode {n:#x}")))?;
        let info = decode_info(&bytes).map_err(|e| corrupt(path, e))?;
        if info.kind == Kind::Dir {
            return Err(corrupt(path, "FS-12: an inode is never a directory"));
        }
        Ok(info)
    }

    /// The inode `path` links to (`None`: a node of its own, or absent).
    pub fn inode_of(&self, root: &Ref, path: &FsPath) -> Result<Option<u64>, FsError> {
        Ok(match self.entry(root, path)? {
            Some(Entry::Link(n)) => Some(n),
            _ => None,
        })
    }

    /// The paths linked to inode `n`, in key order (its back-references, FS-12).
    pub fn links_of(&self, root: &Ref, n: u64) -> Result<Vec<FsPath>, FsError> {
        let (start, end) = (backrefs_start(n), backrefs_end(n));
        let mut out = Vec::new();
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, _) = item?;
            let enc = k.get(9..).unwrap_or_default();
            out.push(FsPath::from_encoded(enc).map_err(|e| corrupt(&FsPath::root(), e))?);
        }
        Ok(out)
    }

    /// How many names `path`'s node has: 1 for a node of its own, else its inode's
    /// back-references (FS-12). A directory's count is the adapters' business.
    pub fn nlink(&self, root: &Ref, path: &FsPath) -> Result<u64, FsError> {
        match self.entry(root, path)? {
            None => Err(FsError::NotFound { path: path.to_string() }),
            Some(Entry::Node(_)) => Ok(1),
            Some(Entry::Link(n)) => Ok(self.links_of(root, n)?.len() as u64),
        }
    }

    /// Gives the node at `from` (anything but a directory) the further name `to` (FS-12). The
    /// first link moves the node's records to a fresh inode; both names then hold link entries.
    pub fn link(&self, root: &Ref, from: &FsPath, to: &FsPath) -> Result<Ref, FsError> {
        let entry =
            self.entry(root, from)?.ok_or_else(|| FsError::NotFound { path: from.to_string() })?;
        if matches!(&entry, Entry::Node(i) if i.kind == Kind::Dir) {
            return Err(FsError::IsADirectory { path: from.to_string() });
        }
        let mut edits = self.new_entry(root, to)?;
        let (out, n) = match entry {
            Entry::Link(n) => (*root, n),
            Entry::Node(_) => {
                let n = self.allocate_inode(root, from)?;
                (self.make_inode(root, from, n)?, n)
            }
        };
        edits.insert(to.key(0), Some(encode_link(n)));
        edits.insert(backref_key(n, to), Some(Vec::new()));
        self.apply(&out, edits)
    }

    /// Moves `path`'s own records to inode `n` and leaves a link entry and its back-reference.
    fn make_inode(&self, root: &Ref, path: &FsPath, n: u64) -> Result<Ref, FsError> {
        let home = Home::Path(path.clone());
        let (start, end) = (path.key(0), path.children_start());
        let mut out = *root;
        let mut edits = Edits::new();
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            let (k, v) = item?;
            let offset = home.offset_of(&k).ok_or_else(|| corrupt(path, "FS-2: stray key"))?;
            edits.insert(k, None);
            edits.insert(inode_key(n, offset), Some(v));
            if edits.len() >= EDIT_BATCH_RECORDS_MAX {
                out = self.apply(&out, std::mem::take(&mut edits))?;
            }
        }
        edits.insert(path.key(0), Some(encode_link(n)));
        edits.insert(backref_key(n, path), Some(Vec::new()));
        self.apply(&out, edits)
    }

    /// A number no inode or back-reference of `root` uses: the first 8 bytes (big-endian) of
    /// BLAKE3 `derive_key` over `from`'s encoded path and a try counter (FS-12). Deterministic,
    /// so two replicas that link the same path agree on the inode.
    pub(crate) fn allocate_inode(&self, root: &Ref, from: &FsPath) -> Result<u64, FsError> {
        for i in 0..INODE_ALLOCATION_TRIES_MAX {
            let mut h = blake3::Hasher::new_derive_key(INODE_NUMBER_CONTEXT);
            h.update(from.encoded());
            h.update(&i.to_be_bytes());
            let mut be = [0u8; 8];
            be.copy_from_slice(&h.finalize().as_bytes()[..8]);
            let n = u64::from_be_bytes(be);
            let taken = self.kv.get(Some(root), &inode_key(n, 0))?.is_some()
                || !self.links_of(root, n)?.is_empty();
            if !taken {
                return Ok(n);
            }
        }
        Err(corrupt(from, "FS-12: no free inode number"))
    }

    /// Removes the link entry at `path` to inode `n` and its back-reference; the inode's records
    /// go with its last name (FS-12). The parent's count is the caller's.
    pub(crate) fn unlink_entry(&self, root: &Ref, path: &FsPath, n: u64) -> Result<Ref, FsError> {
        let mut edits = Edits::new();
        edits.insert(path.key(0), None);
        edits.insert(backref_key(n, path), None);
        let mut out = self.apply(root, edits)?;
        // Planted bug fs:unlink-drops-inode: the node goes with any name, not the last.
        if self.links_of(&out, n)?.is_empty() || crate::bugs::active("fs:unlink-drops-inode") {
            out = self.delete_inode(&out, n)?;
        }
        Ok(out)
    }

    /// Deletes inode `n`'s own records (not its back-references).
    pub(crate) fn delete_inode(&self, root: &Ref, n: u64) -> Result<Ref, FsError> {
        let home = Home::Inode(n);
        let (start, end) = (home.key(0), home.own_end());
        let mut out = *root;
        let mut edits = Edits::new();
        for item in self.kv.range(Some(root), Bound::Included(&start), Bound::Excluded(&end))? {
            edits.insert(item?.0, None);
            if edits.len() >= EDIT_BATCH_RECORDS_MAX {
                out = self.apply(&out, std::mem::take(&mut edits))?;
            }
        }
        self.apply(&out, edits)
    }
}
