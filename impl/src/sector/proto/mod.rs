//! The sector engine's wire protocol (`specs/sector-protocol.md`, PROTO-*): the request and
//! response messages, their framing, a blocking pipelining client and the Unix-socket server
//! shell.
//!
//! What this module owns:
//! - [`Request`] / [`Response`]: the messages, one variant per engine operation. They are wire
//!   types, deliberately separate from the engine's own types so the engine can change its
//!   internals without changing the protocol (the server's backend converts between the two).
//! - [`codec`]: frames: a `u32` little-endian body length, then a postcard body holding the
//!   request id and the message (PROTO-1..PROTO-5). [`decode_frame`] is the fuzzing entry point.
//! - [`ServerSession`] and [`ClientSession`]: each side of one connection as a sans-IO state
//!   machine (bytes in; requests, replies and frames out; no socket, thread or clock). The
//!   simulator runs both over its network against [`backend::EngineBackend`] (`cellar-sim`'s
//!   `cells/`), so the code judged there is the code that serves the socket.
//! - [`client::SectorClient`]: a blocking client that can keep many requests in flight: the
//!   socket shell around a [`ClientSession`].
//! - [`backend::EngineBackend`]: the engine-facing part: maps requests onto one
//!   [`crate::sector::Engine`], with group commit for flushed writes.
//! - [`server`]: the production shell that accepts connections on a Unix domain socket and hands
//!   requests to a [`server::Backend`] (PROTO-6..PROTO-10), one connection at a time in `conn`
//!   (reader and writer threads around a [`ServerSession`]) under the per-connection [`limits`]
//!   (PROTO-13).
//!
//! What it must never do: panic on bytes from a peer (every malformed frame is a typed
//! [`FrameError`]), allocate more than [`FRAME_BODY_BYTES_MAX`] for one frame, or acknowledge a
//! request before the backend has answered it.

pub mod access;
mod assembler;
pub mod backend;
#[cfg(test)]
mod backend_tests;
pub mod client;
pub mod client_session;
pub mod codec;
mod conn;
pub mod limits;
pub mod server;
pub mod server_session;
#[cfg(test)]
mod server_tests;
pub mod session_check;

pub use client::{ClientError, SectorClient};
pub use client_session::ClientSession;
pub use codec::{
    FrameError, decode_frame, decode_response_frame, encode_request_frame, encode_response_frame,
};
pub use server_session::{ServerEvent, ServerSession};

use serde::{Deserialize, Serialize};

/// Largest frame body (everything after the 4-byte length prefix) either side accepts: 16 MiB.
/// A longer length prefix is a protocol violation that closes the connection (PROTO-3).
pub const FRAME_BODY_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// Size of the length prefix in front of every frame body.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Largest value carried by one `Write`, `Append` or `Cas` item: 8 MiB, so a request with its
/// envelope always fits in a frame.
pub const VALUE_BYTES_MAX: u32 = 8 * 1024 * 1024;

/// Most ranges one `ReadRange` may carry. (The engine separately caps the keys it finds in
/// them, `sector::READ_RANGE_KEYS_MAX`, and a reply must fit in a frame.)
pub const READ_RANGES_MAX: u32 = 4096;

/// Most items in one `Cas`: the engine's limit (all members and the commit record in one zone).
pub const CAS_ITEMS_MAX: u32 = 256;

/// Most records a `ReadFollow` may return (the head plus the chain it points to).
pub const FOLLOW_RECORDS_MAX: u32 = 4096;

/// The request id a server uses in a reply it cannot attribute to a request (the frame was too
/// damaged to read its id). Clients never use it (PROTO-2).
pub const REQUEST_ID_NONE: u64 = u64::MAX;

const _: () = assert!(VALUE_BYTES_MAX <= FRAME_BODY_BYTES_MAX / 2);
const _: () = assert!(CAS_ITEMS_MAX as usize == crate::sector::CAS_OPS_MAX);
const _: () = assert!(FOLLOW_RECORDS_MAX as usize == crate::sector::READ_FOLLOW_RECORDS_MAX);
const _: () = assert!(FRAME_BODY_BYTES_MAX as u64 <= u32::MAX as u64);

/// A key in the engine's index.
pub type Key = u64;

/// A record version: the engine's sequence number of the write that produced the record.
/// Strictly increasing per key; two versions of one key are never equal.
pub type Version = u64;

/// A request frame body: the id the response will carry, then the message (PROTO-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client, unique among its requests in flight, never [`REQUEST_ID_NONE`].
    pub id: u64,
    /// The operation.
    pub request: Request,
}

/// A response frame body: the id of the request it answers, then the reply (PROTO-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The id of the request this answers, or [`REQUEST_ID_NONE`].
    pub id: u64,
    /// The reply.
    pub response: Response,
}

/// An inclusive range of keys for [`Request::ReadRange`]; a single key is `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    /// First key of the range.
    pub first: Key,
    /// Last key of the range, `>= first`.
    pub last: Key,
}

impl KeyRange {
    /// The range holding only `key`.
    pub fn single(key: Key) -> Self {
        Self { first: key, last: key }
    }

    /// Number of keys in the range, or `None` if `last < first`.
    pub fn key_count(&self) -> Option<u64> {
        self.last.checked_sub(self.first).map(|d| d.saturating_add(1))
    }
}

/// Options of `Write` and `Append` (the Yottastore write options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOptions {
    /// Store the value compressed (the engine compresses it and flags the record).
    pub compressed: bool,
    /// Pack a small value with others into shared sectors.
    pub compact: bool,
    /// Keep the previous version readable and restorable until the write is committed.
    pub revertible: bool,
    /// Fail with [`ErrorKind::VersionMismatch`] unless the key is at this version now
    /// (`Some(Expected::Absent)` demands that the key does not exist).
    pub expected: Option<Expected>,
    /// Make the write durable before acknowledging it.
    pub flush: bool,
    /// The read-follow pointer stored with the record (`ReadFollow` walks these).
    pub next: Option<Key>,
}

/// What a conditional operation expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expected {
    /// The key does not exist.
    Absent,
    /// The key exists at this version.
    Version(Version),
}

/// One item of a multi-key [`Request::Cas`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasItem {
    /// The key.
    pub key: Key,
    /// What the key must be at for the whole CAS to apply.
    pub expected: Expected,
    /// What to install: a new value, or `None` to delete the key.
    pub new_value: Option<Vec<u8>>,
}

/// A request: one engine operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// The current record of a key. Reply: [`Response::Record`].
    Read {
        /// The key.
        key: Key,
    },
    /// The records of many keys and key ranges, their I/O submitted together. Absent keys are
    /// left out. Reply: [`Response::Records`].
    ReadRange {
        /// Ranges to read, at most [`READ_RANGES_MAX`].
        ranges: Vec<KeyRange>,
    },
    /// A record plus the records its `next` chain points to. Reply: [`Response::Records`].
    ReadFollow {
        /// The head of the chain.
        key: Key,
        /// Most records to return, at most [`FOLLOW_RECORDS_MAX`].
        records_max: u32,
    },
    /// Replace a key's value. Reply: [`Response::Written`].
    Write {
        /// The key.
        key: Key,
        /// The new value, at most [`VALUE_BYTES_MAX`] bytes.
        value: Vec<u8>,
        /// Options.
        options: WriteOptions,
    },
    /// Extend a key's value. Reply: [`Response::Written`].
    Append {
        /// The key.
        key: Key,
        /// Bytes to add at the end, at most [`VALUE_BYTES_MAX`].
        value: Vec<u8>,
        /// Options.
        options: WriteOptions,
    },
    /// Delete a key. Reply: [`Response::Deleted`].
    Delete {
        /// The key.
        key: Key,
        /// Optional precondition, as for writes.
        expected: Option<Expected>,
        /// Make the delete durable before acknowledging it.
        flush: bool,
    },
    /// Is the key still at the version the caller saw? Reply: [`Response::Compared`].
    Compare {
        /// The key.
        key: Key,
        /// What the caller saw.
        expected: Expected,
    },
    /// Many keys, all or nothing, atomic across a crash. Reply: [`Response::Cas`].
    Cas {
        /// 1 to [`CAS_ITEMS_MAX`] items, each key at most once.
        items: Vec<CasItem>,
        /// Make the CAS durable before acknowledging it.
        flush: bool,
    },
    /// Group commit: everything acknowledged before this request was sent is durable when the
    /// reply arrives. Reply: [`Response::Flushed`].
    Flush,
    /// Re-read a key's sectors and check their CRCs. Reply: [`Response::Verified`], or an
    /// [`ErrorKind::Corrupt`] error naming the key.
    Verify {
        /// The key.
        key: Key,
    },
    /// Restore the version a revertible write replaced. Reply: [`Response::Done`].
    Revert {
        /// The key.
        key: Key,
    },
    /// Make a revertible write permanent. Reply: [`Response::Done`].
    Commit {
        /// The key.
        key: Key,
    },
    /// Engine statistics. Reply: [`Response::Stat`].
    Stat,
}

/// A stored record as returned by reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The key.
    pub key: Key,
    /// Its version.
    pub version: Version,
    /// Its value, CRC-checked by the engine before it was sent.
    pub value: Vec<u8>,
    /// Its read-follow pointer, if the write set one.
    pub next: Option<Key>,
}

/// The outcome of a multi-key CAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasReply {
    /// Every item was applied; the new version of each item, in request order (`None` for a
    /// delete).
    Applied {
        /// New versions, one per item.
        versions: Vec<Option<Version>>,
    },
    /// Nothing was applied: this item (the first failing one) was not as expected.
    Conflict {
        /// Position of the failing item in the request.
        index: u32,
        /// Its key.
        key: Key,
        /// Its current version (`None`: absent).
        current: Option<Version>,
    },
}

/// Per-zone accounting in a [`StatReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneStat {
    /// Zone number.
    pub zone: u32,
    /// Bytes of the zone written so far (whole sectors).
    pub used_bytes: u64,
    /// Records written into the zone (values, tombstones, commit records).
    pub records: u32,
    /// Records still live.
    pub live_records: u32,
    /// Dead share of the zone's records, percent (what the compactor's threshold compares).
    pub dead_percent: u8,
}

/// Engine statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatReply {
    /// Live keys.
    pub keys: u64,
    /// Keys whose newest record is known corrupt.
    pub corrupt_keys: u64,
    /// Live bytes (estimated per zone as used bytes × live share).
    pub live_bytes: u64,
    /// Bytes of RAM the index uses.
    pub index_bytes: u64,
    /// Zones not in use.
    pub free_zones: u32,
    /// Per-zone accounting, zones in use only.
    pub zones: Vec<ZoneStat>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The frame body could not be decoded as a request (PROTO-4).
    MalformedFrame,
    /// The length prefix exceeded [`FRAME_BODY_BYTES_MAX`]; the server closes the connection
    /// after this reply (PROTO-3).
    FrameTooLarge,
    /// The request was well-formed but breaks a limit or rule (empty CAS, value too large,
    /// duplicate key, inverted range...).
    InvalidRequest,
    /// The key does not exist.
    NotFound,
    /// A conditional write or delete found the key at another version.
    VersionMismatch,
    /// Stored data failed its CRC; the message names the key. Never returned as data.
    Corrupt,
    /// The device has no room for the write.
    NoSpace,
    /// The device or file system failed.
    Io,
    /// The server is shutting down and takes no new requests.
    ShuttingDown,
    /// The server has too many connections or requests in flight; try again later.
    Busy,
    /// The operation is not supported by this engine.
    Unsupported,
    /// Any other engine failure.
    Internal,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The category, for programs.
    pub kind: ErrorKind,
    /// One line naming the problem, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error reply of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Reply to `Read`: the record, or `None` if the key does not exist.
    Record(Option<Record>),
    /// Reply to `ReadRange` and `ReadFollow`.
    Records(Vec<Record>),
    /// Reply to `Write` and `Append`: the key's new version.
    Written {
        /// The new version.
        version: Version,
    },
    /// Reply to `Delete`.
    Deleted {
        /// Did the key exist?
        existed: bool,
    },
    /// Reply to `Compare`.
    Compared {
        /// Is the key as expected?
        matches: bool,
    },
    /// Reply to `Cas`.
    Cas(CasReply),
    /// Reply to `Flush`.
    Flushed,
    /// Reply to `Verify`: the key's sectors passed their CRCs.
    Verified {
        /// The version that was verified.
        version: Version,
    },
    /// Reply to `Revert` and `Commit`.
    Done,
    /// Reply to `Stat`.
    Stat(StatReply),
    /// The request failed.
    Error(ErrorReply),
}

impl Request {
    /// Checks the limits that do not need the engine (value sizes, batch sizes, ranges, CAS
    /// keys unique). The server runs this before handing a request to its backend.
    pub fn validate(&self) -> Result<(), ErrorReply> {
        let invalid = |m: String| Err(ErrorReply::new(ErrorKind::InvalidRequest, m));
        match self {
            Request::Write { value, .. } | Request::Append { value, .. } => check_value(value),
            Request::ReadRange { ranges } => {
                if ranges.len() > READ_RANGES_MAX as usize {
                    let n = ranges.len();
                    return invalid(format!(
                        "read_range with {n} ranges, most is {READ_RANGES_MAX}"
                    ));
                }
                match ranges.iter().find(|r| r.key_count().is_none()) {
                    Some(r) => invalid(format!("range {}..={} is inverted", r.first, r.last)),
                    None => Ok(()),
                }
            }
            Request::ReadFollow { records_max, .. } if *records_max > FOLLOW_RECORDS_MAX => {
                invalid(format!(
                    "read_follow records_max {records_max} exceeds {FOLLOW_RECORDS_MAX}"
                ))
            }
            Request::Cas { items, .. } => validate_cas(items),
            _ => Ok(()),
        }
    }
}

fn check_value(value: &[u8]) -> Result<(), ErrorReply> {
    if value.len() > VALUE_BYTES_MAX as usize {
        return Err(ErrorReply::new(
            ErrorKind::InvalidRequest,
            format!("value of {} bytes exceeds the maximum of {VALUE_BYTES_MAX}", value.len()),
        ));
    }
    Ok(())
}

fn validate_cas(items: &[CasItem]) -> Result<(), ErrorReply> {
    let invalid = |m: String| Err(ErrorReply::new(ErrorKind::InvalidRequest, m));
    if items.is_empty() {
        return invalid("cas with no items".to_owned());
    }
    if items.len() > CAS_ITEMS_MAX as usize {
        return invalid(format!("cas with {} items, most is {CAS_ITEMS_MAX}", items.len()));
    }
    let mut keys: Vec<Key> = items.iter().map(|i| i.key).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w.first() == w.get(1)) {
        return invalid(format!("cas names key {} twice", w.first().copied().unwrap_or_default()));
    }
    for item in items {
        if let Some(v) = &item.new_value {
            check_value(v)?;
        }
    }
    Ok(())
}
