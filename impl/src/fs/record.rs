//! The two record kinds of a file tree and their byte-exact codec (`specs/fs.md` FS-3..FS-5).
//!
//! A path's record at offset 0 is its [`Info`]; a record at a non-zero offset `e` is an
//! [`Extent`] of a regular file covering bytes `[e − length, e)`. Both are fixed-width,
//! big-endian, versioned; the decoder refuses (typed error, never data) anything the encoder
//! would not write, so a damaged or hostile record never reaches a caller (FS-5).

use super::path::{FsPath, split_key};
use super::{DIR_ENTRIES_MAX, EXTENT_BLOB_SIZE_MAX_BYTES, FILE_SIZE_MAX_BYTES};
use super::{MODE_MASK, SYMLINK_TARGET_SIZE_MAX_BYTES};
use crate::storage::refs::{REF_SIZE_BYTES, Ref};

/// The record format version, first byte of every record (FS-3, FS-4).
pub const RECORD_VERSION: u8 = 1;
/// The version of an extent whose blob is encoded (FS-4, FS-27: a tag byte, maybe compressed).
pub const EXTENT_ENCODED_VERSION: u8 = 2;
/// Size of an info record without its symlink target (FS-3).
pub const INFO_FIXED_SIZE_BYTES: usize = 1 + 1 + 4 + 4 + 4 + 8 + 8 + 2;
/// Size of an extent record (FS-4).
pub const EXTENT_SIZE_BYTES: usize = 1 + REF_SIZE_BYTES + 4 + 4;

const _: () = assert!(INFO_FIXED_SIZE_BYTES == 32 && EXTENT_SIZE_BYTES == 73);
const _: () = assert!(SYMLINK_TARGET_SIZE_MAX_BYTES <= u16::MAX as usize);

/// What a path is (FS-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A regular file: `size` is its length in bytes; its bytes are in extents.
    File,
    /// A directory: `size` is the number of entries it holds.
    Dir,
    /// A symbolic link: `size` is the target's length; the target is in the record.
    Symlink,
    /// A named pipe (FIFO): `size` is 0.
    Fifo,
    /// A Unix-domain socket's name: `size` is 0.
    Socket,
    /// A character device: `size` is its device number (`st_rdev`).
    CharDevice,
    /// A block device: `size` is its device number (`st_rdev`).
    BlockDevice,
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::File => 1,
            Kind::Dir => 2,
            Kind::Symlink => 3,
            Kind::Fifo => 4,
            Kind::Socket => 5,
            Kind::CharDevice => 6,
            Kind::BlockDevice => 7,
        }
    }

    /// A FIFO, socket or device: a node with attributes and no bytes (FS-3).
    pub fn is_special(self) -> bool {
        matches!(self, Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice)
    }
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::File),
            2 => Some(Kind::Dir),
            3 => Some(Kind::Symlink),
            4 => Some(Kind::Fifo),
            5 => Some(Kind::Socket),
            6 => Some(Kind::CharDevice),
            7 => Some(Kind::BlockDevice),
            _ => None,
        }
    }
}

/// A path's info record (FS-3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Info {
    /// File, directory or symlink.
    pub kind: Kind,
    /// Permission bits only (`mode & !0o7777 == 0`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch (negative: before it).
    pub mtime_ns: i64,
    /// File: length in bytes; directory: number of entries; symlink: target length.
    pub size: u64,
    /// The symlink target (empty for files and directories).
    pub target: Vec<u8>,
}

/// The attributes a caller sets on create, chmod, chown and utimens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Attrs {
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl Info {
    /// A fresh info of `kind` with `attrs`, size 0 and no target.
    pub fn new(kind: Kind, attrs: Attrs) -> Self {
        Info {
            kind,
            mode: attrs.mode,
            uid: attrs.uid,
            gid: attrs.gid,
            mtime_ns: attrs.mtime_ns,
            size: 0,
            target: Vec::new(),
        }
    }

    /// The settable attributes.
    pub fn attrs(&self) -> Attrs {
        Attrs { mode: self.mode, uid: self.uid, gid: self.gid, mtime_ns: self.mtime_ns }
    }
}

/// One piece of a regular file (FS-4): `length` bytes at `offset` inside the bytes of `blob`
/// (its plaintext, or with `encoded` its decoded plaintext, FS-27).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extent {
    /// The blob holding the bytes.
    pub blob: Ref,
    /// Where the bytes start inside the blob's (decoded) bytes.
    pub offset: u32,
    /// How many bytes (≥ 1).
    pub length: u32,
    /// The blob is encoded (FS-27; record version 2): a tag byte, then the bytes or a zstd frame.
    pub encoded: bool,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Offset 0: the path's (or inode's) info.
    Info(Info),
    /// A non-zero offset: a file extent ending there.
    Extent(Extent),
    /// Offset 0 of a path: a hard-link entry naming inode `n` (FS-12); the node's info and
    /// extents live under the inode's keys.
    Link(u64),
}

/// What a path's offset-0 record says: a node of its own, or a link to an inode (FS-12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The node's info; its extents live under the path.
    Node(Info),
    /// A hard-link entry: the node is inode `n`.
    Link(u64),
}

/// Whose record a key is (FS-1, FS-12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A path's own record.
    Path(FsPath),
    /// A record of inode `n`.
    Inode(u64),
}

/// Any decoded `(key, value)` of a file tree (FS-1..FS-5, FS-12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyRecord {
    /// A path's or an inode's record at an offset.
    At(Place, u64, Record),
    /// A back-reference: inode `n` is linked from the path.
    Backref(u64, FsPath),
}

/// The kind byte of a hard-link entry (FS-12).
pub const LINK_KIND: u8 = 8;
/// First byte of an inode record's key (FS-12).
pub const INODE_KEY_TAG: u8 = 1;
/// First byte of a back-reference's key (FS-12).
pub const BACKREF_KEY_TAG: u8 = 2;
/// Size of an inode record's key: tag, number, offset (FS-12).
pub const INODE_KEY_SIZE_BYTES: usize = 1 + 8 + 8;

/// Why record bytes were refused (FS-5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Too short, too long, or a length field disagrees with the bytes.
    #[error("record has the wrong length: {0}")]
    Length(String),
    /// Unknown record format version.
    #[error("record version {0} is unknown (info: 1; extent: 1 or 2)")]
    Version(u8),
    /// A field holds a value the schema forbids.
    #[error("record field out of range: {0}")]
    Field(String),
    /// The key is not `encoded path ‖ 8-byte offset` with a valid path.
    #[error("record key is malformed: {0}")]
    Key(&'static str),
}

fn field(detail: impl Into<String>) -> RecordError {
    RecordError::Field(detail.into())
}

/// FS-3 field rules, shared by the encoder and the decoder.
fn check_info(info: &Info) -> Result<(), RecordError> {
    if info.mode & !MODE_MASK != 0 {
        return Err(field(format!("mode {:o} has bits outside 0o7777", info.mode)));
    }
    let target_ok = match info.kind {
        Kind::Symlink => {
            (1..=SYMLINK_TARGET_SIZE_MAX_BYTES).contains(&info.target.len())
                && !info.target.contains(&0)
                && info.size == info.target.len() as u64
        }
        _ => info.target.is_empty(),
    };
    if !target_ok {
        return Err(field("symlink target and size disagree with the kind"));
    }
    let size_max = match info.kind {
        Kind::File => FILE_SIZE_MAX_BYTES,
        Kind::Dir => DIR_ENTRIES_MAX,
        Kind::Symlink => SYMLINK_TARGET_SIZE_MAX_BYTES as u64,
        Kind::Fifo | Kind::Socket => 0,
        Kind::CharDevice | Kind::BlockDevice => u64::MAX,
    };
    if info.size > size_max {
        return Err(field(format!("size {} exceeds {size_max}", info.size)));
    }
    Ok(())
}

/// Encodes an info record (FS-3); refuses what the decoder would refuse.
pub fn encode_info(info: &Info) -> Result<Vec<u8>, RecordError> {
    check_info(info)?;
    let mut out = Vec::with_capacity(INFO_FIXED_SIZE_BYTES + info.target.len());
    out.push(RECORD_VERSION);
    out.push(info.kind.to_byte());
    out.extend_from_slice(&info.mode.to_be_bytes());
    out.extend_from_slice(&info.uid.to_be_bytes());
    out.extend_from_slice(&info.gid.to_be_bytes());
    out.extend_from_slice(&info.mtime_ns.to_be_bytes());
    out.extend_from_slice(&info.size.to_be_bytes());
    let target_len = u16::try_from(info.target.len()).map_err(|_| field("target too long"))?;
    out.extend_from_slice(&target_len.to_be_bytes());
    out.extend_from_slice(&info.target);
    debug_assert_eq!(decode_info(&out).as_ref(), Ok(info), "FS-5: the decoder takes it back");
    Ok(out)
}

/// A big-endian reader over a byte slice.
struct Be<'a>(&'a [u8]);

impl Be<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| RecordError::Length("record is truncated".into()))?;
        self.0 = rest;
        Ok(*head)
    }
}

/// Decodes and validates an info record (FS-3, FS-5).
pub fn decode_info(bytes: &[u8]) -> Result<Info, RecordError> {
    let mut r = Be(bytes);
    let [version] = r.take::<1>()?;
    if version != RECORD_VERSION {
        return Err(RecordError::Version(version));
    }
    let [kind] = r.take::<1>()?;
    if kind == LINK_KIND {
        return Err(field("kind 8 is a hard-link entry (FS-12), not a node's info"));
    }
    let kind = Kind::from_byte(kind).ok_or_else(|| field(format!("unknown kind {kind}")))?;
    let mode = u32::from_be_bytes(r.take()?);
    let uid = u32::from_be_bytes(r.take()?);
    let gid = u32::from_be_bytes(r.take()?);
    let mtime_ns = i64::from_be_bytes(r.take()?);
    let size = u64::from_be_bytes(r.take()?);
    let target_len = usize::from(u16::from_be_bytes(r.take()?));
    if r.0.len() != target_len {
        return Err(RecordError::Length(format!(
            "target length says {target_len}, {} bytes follow",
            r.0.len()
        )));
    }
    let info = Info { kind, mode, uid, gid, mtime_ns, size, target: r.0.to_vec() };
    check_info(&info)?;
    Ok(info)
}

/// Encodes a hard-link entry naming inode `n` (FS-12): an info-shaped record of kind 8 whose
/// attributes are all zero and whose `size` is `n`.
pub fn encode_link(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(INFO_FIXED_SIZE_BYTES);
    out.push(RECORD_VERSION);
    out.push(LINK_KIND);
    out.extend_from_slice(&[0u8; 4 + 4 + 4 + 8]);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    debug_assert_eq!(decode_entry(&out), Ok(Entry::Link(n)), "FS-5: the decoder takes it back");
    out
}

/// Decodes a path's offset-0 record: a node's info (FS-3) or a hard-link entry (FS-12), whose
/// attributes must be zero and which holds no target.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, RecordError> {
    if bytes.get(1) != Some(&LINK_KIND) {
        return decode_info(bytes).map(Entry::Node);
    }
    if bytes.len() != INFO_FIXED_SIZE_BYTES {
        return Err(RecordError::Length(format!(
            "a link entry is {INFO_FIXED_SIZE_BYTES} bytes, got {}",
            bytes.len()
        )));
    }
    if bytes[0] != RECORD_VERSION {
        return Err(RecordError::Version(bytes[0]));
    }
    let mut r = Be(&bytes[2..]);
    let attrs: [u8; 20] = r.take()?;
    let n = u64::from_be_bytes(r.take()?);
    let target_len: [u8; 2] = r.take()?;
    if attrs != [0; 20] || target_len != [0; 2] {
        return Err(field("FS-12: a link entry's attributes and target are zero"));
    }
    Ok(Entry::Link(n))
}

/// Encodes an extent record (FS-4); refuses what the decoder would refuse.
pub fn encode_extent(e: &Extent) -> Result<Vec<u8>, RecordError> {
    check_extent(e)?;
    let mut out = Vec::with_capacity(EXTENT_SIZE_BYTES);
    out.push(if e.encoded { EXTENT_ENCODED_VERSION } else { RECORD_VERSION });
    out.extend_from_slice(&e.blob.to_bytes());
    out.extend_from_slice(&e.offset.to_be_bytes());
    out.extend_from_slice(&e.length.to_be_bytes());
    debug_assert_eq!(decode_extent(&out).as_ref(), Ok(e), "FS-5: the decoder takes it back");
    Ok(out)
}

fn check_extent(e: &Extent) -> Result<(), RecordError> {
    let end = u64::from(e.offset) + u64::from(e.length);
    if e.length == 0 || end > EXTENT_BLOB_SIZE_MAX_BYTES {
        return Err(field(format!(
            "extent [{}, +{}) is empty or beyond a blob's {EXTENT_BLOB_SIZE_MAX_BYTES} bytes",
            e.offset, e.length
        )));
    }
    Ok(())
}

/// Decodes and validates an extent record (FS-4, FS-5).
pub fn decode_extent(bytes: &[u8]) -> Result<Extent, RecordError> {
    if bytes.len() != EXTENT_SIZE_BYTES {
        return Err(RecordError::Length(format!(
            "an extent is {EXTENT_SIZE_BYTES} bytes, got {}",
            bytes.len()
        )));
    }
    let mut r = Be(bytes);
    let [version] = r.take::<1>()?;
    if version != RECORD_VERSION && version != EXTENT_ENCODED_VERSION {
        return Err(RecordError::Version(version));
    }
    let blob = Ref::from_array(&r.take::<REF_SIZE_BYTES>()?);
    let offset = u32::from_be_bytes(r.take()?);
    let length = u32::from_be_bytes(r.take()?);
    let e = Extent { blob, offset, length, encoded: version == EXTENT_ENCODED_VERSION };
    check_extent(&e)?;
    Ok(e)
}

/// Decodes a whole `(key, value)` entry of a file tree (FS-1..FS-5): the path, the offset and
/// the record. An extent must end within [`FILE_SIZE_MAX_BYTES`] and start at or after 0.
pub fn decode_record(key: &[u8], value: &[u8]) -> Result<(FsPath, u64, Record), RecordError> {
    let (path, offset) = split_key(key).map_err(RecordError::Key)?;
    if offset == 0 {
        let rec = match decode_entry(value)? {
            Entry::Node(info) => Record::Info(info),
            Entry::Link(_) if path.is_root() => return Err(field("FS-9: the root is a link")),
            Entry::Link(n) => Record::Link(n),
        };
        return Ok((path, 0, rec));
    }
    Ok((path, offset, Record::Extent(decode_extent_at(offset, value)?)))
}

/// Decodes an extent keyed by its end `offset`: it must fit a file (FS-4, FS-13).
pub(crate) fn decode_extent_at(offset: u64, value: &[u8]) -> Result<Extent, RecordError> {
    let e = decode_extent(value)?;
    if offset > FILE_SIZE_MAX_BYTES || u64::from(e.length) > offset {
        return Err(field(format!("extent ending at {offset} does not fit a file")));
    }
    Ok(e)
}

/// Encodes any record back to its `(key, value)`: what [`decode_any`] took apart (FS-1..FS-5,
/// FS-12). Refuses what the decoder would refuse.
pub fn encode_any(any: &AnyRecord) -> Result<(Vec<u8>, Vec<u8>), RecordError> {
    match any {
        AnyRecord::At(place, offset, record) => {
            let key = match place {
                Place::Path(path) => path.key(*offset),
                Place::Inode(n) => super::inode::inode_key(*n, *offset),
            };
            let value = match record {
                Record::Info(i) => encode_info(i)?,
                Record::Extent(e) => encode_extent(e)?,
                Record::Link(n) => encode_link(*n),
            };
            if (*offset == 0) == matches!(record, Record::Extent(_)) {
                return Err(field("FS-1: offset 0 holds the info or link entry, others extents"));
            }
            Ok((key, value))
        }
        AnyRecord::Backref(n, path) => Ok((super::inode::backref_key(*n, path), Vec::new())),
    }
}

/// Decodes any `(key, value)` of a file tree: a path's record (as [`decode_record`]), an inode's
/// record (`01 ‖ n ‖ offset`: its info — never a directory — or an extent) or a back-reference
/// (`02 ‖ n ‖ encoded path`, empty value) (FS-12).
pub fn decode_any(key: &[u8], value: &[u8]) -> Result<AnyRecord, RecordError> {
    match key.first() {
        Some(&INODE_KEY_TAG) => {
            if key.len() != INODE_KEY_SIZE_BYTES {
                return Err(RecordError::Key("an inode key is 17 bytes"));
            }
            let n = u64::from_be_bytes(key[1..9].try_into().map_err(|_| RecordError::Key("n"))?);
            let offset =
                u64::from_be_bytes(key[9..].try_into().map_err(|_| RecordError::Key("offset"))?);
            let rec = if offset == 0 {
                let info = decode_info(value)?;
                if info.kind == Kind::Dir {
                    return Err(field("FS-12: an inode is never a directory"));
                }
                Record::Info(info)
            } else {
                Record::Extent(decode_extent_at(offset, value)?)
            };
            Ok(AnyRecord::At(Place::Inode(n), offset, rec))
        }
        Some(&BACKREF_KEY_TAG) => {
            let (n, enc) = key
                .get(1..9)
                .zip(key.get(9..))
                .ok_or(RecordError::Key("a back-reference key is too short"))?;
            let n = u64::from_be_bytes(n.try_into().map_err(|_| RecordError::Key("n"))?);
            let path = FsPath::from_encoded(enc).map_err(RecordError::Key)?;
            // Planted bug fs:backref-value-unchecked: bytes in a back-reference's value pass.
            let value_unchecked = crate::bugs::active("fs:backref-value-unchecked");
            if path.is_root() || (!value.is_empty() && !value_unchecked) {
                return Err(field("FS-12: a back-reference names a path and holds nothing"));
            }
            Ok(AnyRecord::Backref(n, path))
        }
        _ => {
            let (path, offset, rec) = decode_record(key, value)?;
            Ok(AnyRecord::At(Place::Path(path), offset, rec))
        }
    }
}
