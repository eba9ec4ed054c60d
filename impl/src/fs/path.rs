//! File-tree paths and the keys they map to (`specs/fs.md` FS-1, FS-2, FS-13).
//!
//! A path is a sequence of names; each name is 1..=[`NAME_SIZE_MAX_BYTES`] bytes, holds neither
//! `/` nor NUL and is not `.` or `..`. Its *encoded* form maps every `/` to NUL: each name is
//! preceded by one 0x00 byte, and the root directory is the empty string. A record's key is the
//! encoded path followed by an 8-byte big-endian offset (FS-1).
//!
//! Never: accept a name the key layout cannot keep apart from its siblings (a NUL inside a name
//! would let `a\0b` collide with the child `b` of `a`).

use super::FsError;
use std::fmt;

/// Longest name, in bytes (FS-13; Linux `NAME_MAX`).
pub const NAME_SIZE_MAX_BYTES: usize = 255;
/// Longest encoded path, in bytes (FS-13): with the 8-byte offset a key stays within the prolly
/// tree's key limit.
pub const PATH_SIZE_MAX_BYTES: usize = crate::db::kv::KEY_SIZE_MAX_BYTES - OFFSET_SIZE_BYTES;
/// Size of the offset that ends every key (FS-1).
pub const OFFSET_SIZE_BYTES: usize = 8;

const _: () = assert!(PATH_SIZE_MAX_BYTES == 4088 && NAME_SIZE_MAX_BYTES < PATH_SIZE_MAX_BYTES);

/// A validated path: its encoded form (each name preceded by 0x00; the root is empty).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FsPath {
    enc: Vec<u8>,
}

impl FsPath {
    /// The root directory.
    pub fn root() -> Self {
        Self { enc: Vec::new() }
    }

    /// Parses the `/`-separated form: an optional leading `/`, then names separated by single
    /// `/`s; `""` and `"/"` are the root. Anything else is [`FsError::InvalidPath`] (or a
    /// length error, FS-13).
    pub fn parse(text: &[u8]) -> Result<Self, FsError> {
        let body = text.strip_prefix(b"/").unwrap_or(text);
        let mut path = Self::root();
        if body.is_empty() {
            return Ok(path);
        }
        for name in body.split(|b| *b == b'/') {
            path = path.join(name)?;
        }
        Ok(path)
    }

    /// Parses a UTF-8 path (see [`FsPath::parse`]).
    pub fn new(text: &str) -> Result<Self, FsError> {
        Self::parse(text.as_bytes())
    }

    /// This path with one more name (FS-13 limits checked).
    pub fn join(&self, name: &[u8]) -> Result<Self, FsError> {
        if name.len() > NAME_SIZE_MAX_BYTES {
            return Err(FsError::NameTooLong { size_bytes: name.len() });
        }
        check_name(name).map_err(|reason| FsError::InvalidPath {
            path: format!("{self}/{}", String::from_utf8_lossy(name)),
            reason,
        })?;
        let size_bytes = self.enc.len() + 1 + name.len();
        if size_bytes > PATH_SIZE_MAX_BYTES {
            return Err(FsError::PathTooLong { size_bytes });
        }
        let mut enc = Vec::with_capacity(size_bytes);
        enc.extend_from_slice(&self.enc);
        enc.push(0);
        enc.extend_from_slice(name);
        Ok(Self { enc })
    }

    /// Decodes an encoded path (from a key), validating every name (FS-2).
    pub fn from_encoded(enc: &[u8]) -> Result<Self, &'static str> {
        if enc.len() > PATH_SIZE_MAX_BYTES {
            return Err("encoded path longer than PATH_SIZE_MAX_BYTES");
        }
        if enc.is_empty() {
            return Ok(Self::root());
        }
        let Some(rest) = enc.strip_prefix(&[0]) else {
            return Err("a non-root encoded path must start with 0x00");
        };
        for name in rest.split(|b| *b == 0) {
            check_name(name)?;
        }
        Ok(Self { enc: enc.to_vec() })
    }

    /// The encoded form (FS-1).
    pub fn encoded(&self) -> &[u8] {
        &self.enc
    }

    /// Is this the root directory?
    pub fn is_root(&self) -> bool {
        self.enc.is_empty()
    }

    /// The parent directory (`None` for the root).
    pub fn parent(&self) -> Option<Self> {
        let cut = self.enc.iter().rposition(|b| *b == 0)?;
        Some(Self { enc: self.enc[..cut].to_vec() })
    }

    /// The last name (empty for the root).
    pub fn name(&self) -> &[u8] {
        let start = self.enc.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
        &self.enc[start..]
    }

    /// The names, root first.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.enc.split(|b| *b == 0).skip(1)
    }

    /// Is `self` equal to `other` or inside it?
    pub fn starts_with(&self, other: &FsPath) -> bool {
        self.enc.starts_with(&other.enc)
            && (self.enc.len() == other.enc.len() || self.enc.get(other.enc.len()) == Some(&0))
    }

    /// `self` with the leading `from` replaced by `to` (`self` must start with `from`).
    pub fn rebase(&self, from: &FsPath, to: &FsPath) -> Result<Self, FsError> {
        let rest = self.enc.get(from.enc.len()..).unwrap_or_default();
        let size_bytes = to.enc.len() + rest.len();
        if size_bytes > PATH_SIZE_MAX_BYTES {
            return Err(FsError::PathTooLong { size_bytes });
        }
        let mut enc = to.enc.clone();
        enc.extend_from_slice(rest);
        Ok(Self { enc })
    }

    /// The key of this path's record at `offset` (FS-1).
    pub fn key(&self, offset: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.enc.len() + OFFSET_SIZE_BYTES);
        k.extend_from_slice(&self.enc);
        k.extend_from_slice(&offset.to_be_bytes());
        k
    }

    /// First key of this path's subtree (itself and all descendants, FS-2): `enc ‖ 0x00`.
    pub fn subtree_start(&self) -> Vec<u8> {
        let mut k = self.enc.clone();
        k.push(0);
        k
    }

    /// First key after this path's subtree: `enc ‖ 0x01`.
    pub fn subtree_end(&self) -> Vec<u8> {
        let mut k = self.enc.clone();
        k.push(1);
        k
    }

    /// First key of this path's descendants (FS-2): `enc ‖ 0x00 ‖ 0x01`.
    pub fn children_start(&self) -> Vec<u8> {
        let mut k = self.subtree_start();
        k.push(1);
        k
    }

    /// The `/`-separated form as bytes (`/` for the root).
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.enc.is_empty() {
            return b"/".to_vec();
        }
        self.enc.iter().map(|b| if *b == 0 { b'/' } else { *b }).collect()
    }
}

/// Splits a key into its path and offset (FS-1, FS-2).
pub fn split_key(key: &[u8]) -> Result<(FsPath, u64), &'static str> {
    let Some(cut) = key.len().checked_sub(OFFSET_SIZE_BYTES) else {
        return Err("key shorter than its 8-byte offset");
    };
    let (enc, off) = key.split_at(cut);
    let mut be = [0u8; OFFSET_SIZE_BYTES];
    be.copy_from_slice(off);
    Ok((FsPath::from_encoded(enc)?, u64::from_be_bytes(be)))
}

/// FS-13 name rule.
fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > NAME_SIZE_MAX_BYTES {
        return Err("name longer than NAME_SIZE_MAX_BYTES");
    }
    if name.contains(&0) || name.contains(&b'/') {
        return Err("name holds NUL or '/'");
    }
    if name == b"." || name == b".." {
        return Err("name is '.' or '..'");
    }
    Ok(())
}

impl fmt::Display for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Debug for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FsPath({self})")
    }
}
