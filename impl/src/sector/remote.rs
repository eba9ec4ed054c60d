//! [`RemoteSectorStore`] and [`RemoteSectorCell`]: the same adapters as [`super::adapters`],
//! over the socket of a `cellar sector serve` instead of an in-process engine, so several
//! processes can share one device.
//!
//! The record layout is the in-process adapters' (store keys with the top bit clear holding a
//! bucket of `(hash, length, blob)` entries; cell keys with the top bit set), so a device can
//! be served in-process one day and over a socket the next. Without the engine's lock around a
//! read-modify-write, every update is conditional on the version it read
//! (`WriteOptions::expected`, `Request::Cas`) and goes round on a `VersionMismatch` or CAS
//! conflict, at most [`REMOTE_UPDATE_ATTEMPTS_MAX`] times: each lost round means another
//! writer's update (or a compaction move, SEC-10) succeeded, so the loop is lock-free.
//!
//! Never: return a blob that does not hash to its name (STORE-2), report a swap the server did
//! not make durable (every write is flushed before it is acknowledged).

use super::adapters::{CELL_KEY_BIT, ENTRY_HEADER_BYTES, decode_bucket, encode_bucket, store_key};
use super::proto::{
    CasItem, CasReply, ClientError, ErrorKind, Expected, Key, KeyRange, SectorClient,
    VALUE_BYTES_MAX, WriteOptions,
};
use crate::Hash;
use crate::storage::cell::{CELL_SIZE_MAX_BYTES_DEFAULT, CasOutcome, Cell, CellError, check_size};
use crate::storage::store::{
    BLOB_SIZE_MAX_BYTES_DEFAULT, HashRange, Store, StoreError, check_blob_size, in_range,
    verify_blob,
};
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Conditional-update rounds before a post, delete or swap gives up (post/delete: an I/O error;
/// swap: a spurious failure, never a false success).
pub const REMOTE_UPDATE_ATTEMPTS_MAX: u32 = 16;

/// Most `read_range` requests one `list` makes (halving a range whose reply is too large for a
/// frame takes at most 63 levels; this bounds the whole walk).
pub const REMOTE_LIST_REQUESTS_MAX: u32 = 65_536;

/// The largest store key: store keys have the top bit clear.
const STORE_KEY_MAX: Key = CELL_KEY_BIT - 1;

/// One connection to a sector server, reopened after it breaks.
#[derive(Debug)]
pub struct SectorConn {
    socket: PathBuf,
    client: Mutex<Option<SectorClient>>,
}

impl SectorConn {
    /// Connects to the server on `socket` now, so an unreachable server is reported at once.
    pub fn connect(socket: impl AsRef<Path>) -> Result<Arc<Self>, ClientError> {
        let socket = socket.as_ref().to_path_buf();
        let client = SectorClient::connect(&socket)?;
        Ok(Arc::new(Self { socket, client: Mutex::new(Some(client)) }))
    }

    /// The server's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn guard(&self) -> MutexGuard<'_, Option<SectorClient>> {
        match self.client.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs `f` on the connection; a connection that broke is dropped and the next call
    /// reconnects.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut SectorClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut guard = self.guard();
        let client = match guard.take() {
            Some(c) => c,
            None => SectorClient::connect(&self.socket)?,
        };
        let client = guard.insert(client);
        let result = f(client);
        if matches!(
            result,
            Err(ClientError::Io(_) | ClientError::Closed { .. } | ClientError::Frame(_))
        ) {
            *guard = None;
        }
        result
    }
}

fn store_err(hash: &Hash, e: ClientError) -> StoreError {
    match e.server_kind() {
        Some(ErrorKind::Corrupt) => StoreError::Corrupt { hash: *hash, detail: e.to_string() },
        _ => match e {
            ClientError::Io(io) => StoreError::Io(io),
            other => StoreError::Io(std::io::Error::other(other.to_string())),
        },
    }
}

fn is_version_mismatch(e: &ClientError) -> bool {
    e.server_kind() == Some(ErrorKind::VersionMismatch)
}

fn contention(what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{what}: gave up after {REMOTE_UPDATE_ATTEMPTS_MAX} conflicting updates of one key"
    ))
}

/// A content-addressed store on a remote sector server (see the module docs).
#[derive(Debug)]
pub struct RemoteSectorStore {
    conn: Arc<SectorConn>,
}

/// The current bucket of `hash`'s key and the version to condition an update on.
type Bucket = (Vec<(Hash, Vec<u8>)>, Expected);

impl RemoteSectorStore {
    /// A store on the server behind `conn`.
    pub fn new(conn: Arc<SectorConn>) -> Self {
        Self { conn }
    }

    fn bucket(&self, hash: &Hash) -> Result<Bucket, StoreError> {
        let record = self.conn.with(|c| c.read(store_key(hash))).map_err(|e| store_err(hash, e))?;
        match record {
            None => Ok((Vec::new(), Expected::Absent)),
            Some(r) => {
                let entries = decode_bucket(&r.value).ok_or_else(|| StoreError::Corrupt {
                    hash: *hash,
                    detail: "bucket framing".into(),
                })?;
                Ok((entries, Expected::Version(r.version)))
            }
        }
    }

    /// Installs `entries` at `hash`'s key if it is still at `expected`; `Ok(false)` if not.
    fn put_bucket(
        &self,
        hash: &Hash,
        entries: &[(Hash, Vec<u8>)],
        expected: Expected,
    ) -> Result<bool, StoreError> {
        let key = store_key(hash);
        let result = if entries.is_empty() {
            self.conn.with(|c| c.delete(key, Some(expected), true)).map(|_| ())
        } else {
            let options =
                WriteOptions { expected: Some(expected), flush: true, ..Default::default() };
            let value = encode_bucket(entries);
            self.conn.with(|c| c.write(key, value, options)).map(|_| ())
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if is_version_mismatch(&e) => Ok(false),
            Err(e) => Err(store_err(hash, e)),
        }
    }

    /// Hashes stored under the keys of `records`, in `range`, ascending.
    fn hashes_in(records: &[super::proto::Record], range: &HashRange) -> Vec<Hash> {
        let mut out: Vec<Hash> = records
            .iter()
            .filter(|r| r.key & CELL_KEY_BIT == 0)
            .flat_map(|r| decode_bucket(&r.value).unwrap_or_default())
            .map(|(h, _)| h)
            .filter(|h| in_range(h, range))
            .collect();
        out.sort_unstable();
        out
    }
}

impl Store for RemoteSectorStore {
    fn max_blob_size_bytes(&self) -> usize {
        (VALUE_BYTES_MAX as usize - ENTRY_HEADER_BYTES).min(BLOB_SIZE_MAX_BYTES_DEFAULT)
    }

    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        check_blob_size(data.len(), self.max_blob_size_bytes())?;
        let hash = Hash::of(data);
        for _ in 0..REMOTE_UPDATE_ATTEMPTS_MAX {
            let (mut entries, expected) = self.bucket(&hash)?;
            if entries.iter().any(|(h, _)| *h == hash) {
                return Ok(hash);
            }
            entries.push((hash, data.to_vec()));
            let size: usize = entries.iter().map(|(_, b)| b.len() + ENTRY_HEADER_BYTES).sum();
            if size > VALUE_BYTES_MAX as usize {
                return Err(StoreError::TooLarge {
                    size_bytes: size,
                    max_bytes: VALUE_BYTES_MAX as usize,
                });
            }
            if self.put_bucket(&hash, &entries, expected)? {
                return Ok(hash);
            }
        }
        Err(StoreError::Io(contention("post")))
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        let (entries, _) = self.bucket(hash)?;
        let blob = entries
            .into_iter()
            .find(|(h, _)| h == hash)
            .map(|(_, b)| b)
            .ok_or(StoreError::NotFound(*hash))?;
        verify_blob(hash, blob)
    }

    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.bucket(hash)?.0.iter().any(|(h, _)| h == hash))
    }

    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        for _ in 0..REMOTE_UPDATE_ATTEMPTS_MAX {
            let (mut entries, expected) = self.bucket(hash)?;
            let before = entries.len();
            entries.retain(|(h, _)| h != hash);
            if entries.len() == before || self.put_bucket(hash, &entries, expected)? {
                return Ok(());
            }
        }
        Err(StoreError::Io(contention("delete")))
    }

    /// Walks the store key range in ascending order with `read_range`, halving any range whose
    /// reply would not fit in a frame. Reads whole buckets: a listing costs as much as reading
    /// the blobs it lists.
    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        let first = match range.0 {
            Bound::Included(h) | Bound::Excluded(h) => store_key(&h),
            Bound::Unbounded => 0,
        };
        let last = match range.1 {
            Bound::Included(h) | Bound::Excluded(h) => store_key(&h),
            Bound::Unbounded => STORE_KEY_MAX,
        };
        let mut todo: VecDeque<(Key, Key)> = VecDeque::from([(first, last)]);
        let mut out = Vec::new();
        let mut requests = 0u32;
        while let Some((a, b)) = todo.pop_front() {
            if out.len() >= limit || a > b {
                break;
            }
            requests += 1;
            if requests > REMOTE_LIST_REQUESTS_MAX {
                return Err(StoreError::Io(std::io::Error::other("list: too many requests")));
            }
            let ranges = vec![KeyRange { first: a, last: b }];
            match self.conn.with(|c| c.read_range(ranges)) {
                Ok(records) => out.extend(Self::hashes_in(&records, &range)),
                Err(e) if e.server_kind() == Some(ErrorKind::InvalidRequest) && a < b => {
                    let mid = a + (b - a) / 2;
                    todo.push_front((mid + 1, b));
                    todo.push_front((a, mid));
                }
                Err(e) => return Err(store_err(&Hash([0; 32]), e)),
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// A compare-and-swap cell under one key of a remote sector server (top bit set).
#[derive(Debug)]
pub struct RemoteSectorCell {
    conn: Arc<SectorConn>,
    key: Key,
    max_size_bytes: usize,
}

fn cell_err(e: ClientError) -> CellError {
    match e.server_kind() {
        Some(ErrorKind::Corrupt) => CellError::Corrupt(e.to_string()),
        _ => match e {
            ClientError::Io(io) => CellError::Io(io),
            other => CellError::Io(std::io::Error::other(other.to_string())),
        },
    }
}

impl RemoteSectorCell {
    /// The cell `id` on the server behind `conn` (its key is `id | CELL_KEY_BIT`), with the
    /// default 4096-byte maximum.
    pub fn new(conn: Arc<SectorConn>, id: u64) -> Self {
        Self { conn, key: id | CELL_KEY_BIT, max_size_bytes: CELL_SIZE_MAX_BYTES_DEFAULT }
    }

    /// The engine key holding this cell.
    pub fn key(&self) -> Key {
        self.key
    }
}

impl Cell for RemoteSectorCell {
    fn max_size_bytes(&self) -> usize {
        self.max_size_bytes
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        let r = self.conn.with(|c| c.read(self.key)).map_err(cell_err)?;
        Ok(r.map(|r| r.value).unwrap_or_default())
    }

    /// CELL-1: the server's CAS swaps only if the key is still at the version whose value was
    /// compared; CELL-2: a conflict re-reads, and after [`REMOTE_UPDATE_ATTEMPTS_MAX`] rounds
    /// in which other writers kept winning, returns a spurious failure (like `SealedCell`).
    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), self.max_size_bytes)?;
        let mut value = Vec::new();
        for _ in 0..REMOTE_UPDATE_ATTEMPTS_MAX {
            let record = self.conn.with(|c| c.read(self.key)).map_err(cell_err)?;
            let version = match record {
                Some(r) => {
                    value = r.value;
                    Expected::Version(r.version)
                }
                None => {
                    value.clear();
                    Expected::Absent
                }
            };
            if value != expected {
                return Ok(CasOutcome { swapped: false, current: value });
            }
            let item = CasItem { key: self.key, expected: version, new_value: Some(new.to_vec()) };
            match self.conn.with(|c| c.cas(vec![item], true)).map_err(cell_err)? {
                CasReply::Applied { .. } => {
                    return Ok(CasOutcome { swapped: true, current: new.to_vec() });
                }
                CasReply::Conflict { .. } => {}
            }
        }
        Ok(CasOutcome { swapped: false, current: value })
    }
}
