//! [`KvBench`]: the one interface every contender in `benches/benches/sector.rs` implements,
//! and the contenders that need no Cellar code: the raw baseline ([`Raw`]), [`Redb`] and
//! [`Fjall`]. The sector engine's implementation is in [`crate::engine`].
//!
//! Same logical work everywhere: keys are `u64`, values 4 KiB (1 MiB for sequential writes);
//! a write batch returns only once the whole batch is durable (fdatasync, redb
//! `Durability::Immediate`, fjall `PersistMode::SyncData`, the engine's flush); a CAS reads 4
//! keys' versions and replaces all 4 values durably if none changed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Size of one value in the 4 KiB workloads.
pub const VALUE_BYTES: usize = 4096;
/// Size of one sequential write.
pub const SEQ_VALUE_BYTES: usize = 1024 * 1024;
/// First key of the sequential-write keys (they never collide with the 4 KiB keys).
pub const SEQ_KEY_BASE: u64 = 1 << 40;

/// One contender.
pub trait KvBench {
    /// Short name for reports ("raw", "engine", "redb", "fjall").
    fn name(&self) -> &'static str;
    /// Writes every item, then makes the whole batch durable before returning.
    fn write_batch(&mut self, items: &[(u64, &[u8])]) -> io::Result<()>;
    /// Reads every key (together, if the contender can); returns the bytes read.
    fn read_batch(&mut self, keys: &[u64]) -> io::Result<usize>;
    /// Reads the versions of `keys`, then replaces all their values with `value` durably if
    /// none changed in between. Returns whether it applied.
    fn cas(&mut self, keys: &[u64], value: &[u8]) -> io::Result<bool>;
    /// Closes and reopens the store (recovery). Returns the number of live keys found, as a
    /// check that recovery really ran.
    fn reopen(&mut self) -> io::Result<u64>;
    /// Reopens as after a crash (the sector engine: no checkpoint, so `open` scans every zone
    /// in use). Default: [`KvBench::reopen`].
    fn reopen_after_crash(&mut self) -> io::Result<u64> {
        self.reopen()
    }
    /// The directory holding every file of the store (for dropping caches).
    fn dir(&self) -> &Path;
}

/// Reads `path` from start to end in 4 MiB `pread`s; returns the bytes read. The yardstick for
/// crash recovery: a raw sequential read of the engine's device file.
pub fn read_sequentially(path: &Path) -> io::Result<u64> {
    let f = File::open(path)?;
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read_at(&mut buf, off)?;
        if n == 0 {
            return Ok(off);
        }
        off += n as u64;
    }
}

/// Drops the OS page cache of every file under `dir` with `posix_fadvise(DONTNEED)`; the
/// files' data is clean (every contender syncs), so the pages are really evicted.
pub fn drop_caches(dir: &Path) -> io::Result<()> {
    for entry in walk(dir)? {
        let file = File::open(&entry)?;
        file.sync_data()?;
        // SAFETY: fd is open for the duration of the call; fadvise only reads its arguments.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

fn walk(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The version stamped in the first 8 bytes of a value by [`stamp`].
fn version_of(value: &[u8]) -> u64 {
    value.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
}

/// `value` with `version` in its first 8 bytes.
fn stamp(value: &[u8], version: u64) -> Vec<u8> {
    let mut v = value.to_vec();
    if let Some(head) = v.get_mut(..8) {
        head.copy_from_slice(&version.to_le_bytes());
    }
    v
}

/// The raw baseline: the same I/O with plain `pwrite`/`pread`/`fdatasync` on one file, key `k`
/// of the 4 KiB workloads at offset `k * 4096`, sequential writes appended in a ring after
/// them. No index, no checksums, no crash safety: the floor the engine is measured against.
pub struct Raw {
    dir: PathBuf,
    file: File,
    keys: u64,
    seq_ring_bytes: u64,
    seq_next: u64,
}

impl Raw {
    /// A raw file in `dir` sized for `keys` 4 KiB slots plus a `seq_ring_bytes` ring.
    pub fn create(dir: &Path, keys: u64, seq_ring_bytes: u64) -> io::Result<Self> {
        let path = dir.join("raw.dat");
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        file.set_len(keys * VALUE_BYTES as u64 + seq_ring_bytes)?;
        Ok(Self { dir: dir.to_path_buf(), file, keys, seq_ring_bytes, seq_next: 0 })
    }

    fn offset(&mut self, key: u64, len: usize) -> u64 {
        if key >= SEQ_KEY_BASE {
            let off = self.seq_next;
            self.seq_next = (self.seq_next + len as u64) % self.seq_ring_bytes.max(1);
            self.keys * VALUE_BYTES as u64 + off
        } else {
            (key % self.keys) * VALUE_BYTES as u64
        }
    }
}

impl KvBench for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn write_batch(&mut self, items: &[(u64, &[u8])]) -> io::Result<()> {
        for (key, value) in items {
            let off = self.offset(*key, value.len());
            self.file.write_all_at(value, off)?;
        }
        self.file.sync_data()
    }

    fn read_batch(&mut self, keys: &[u64]) -> io::Result<usize> {
        let mut buf = vec![0u8; VALUE_BYTES];
        for key in keys {
            let off = self.offset(*key, VALUE_BYTES);
            self.file.read_exact_at(&mut buf, off)?;
        }
        Ok(keys.len() * VALUE_BYTES)
    }

    fn cas(&mut self, keys: &[u64], value: &[u8]) -> io::Result<bool> {
        let mut buf = vec![0u8; VALUE_BYTES];
        let mut versions = Vec::with_capacity(keys.len());
        for key in keys {
            let off = self.offset(*key, VALUE_BYTES);
            self.file.read_exact_at(&mut buf, off)?;
            versions.push(version_of(&buf));
        }
        for (key, version) in keys.iter().zip(versions) {
            let off = self.offset(*key, VALUE_BYTES);
            self.file.write_all_at(&stamp(value, version + 1), off)?;
        }
        self.file.sync_data()?;
        Ok(true)
    }

    /// The raw baseline has nothing to recover; its "recovery" is the I/O floor of a scan:
    /// reading every 4 KiB slot sequentially in 1 MiB `pread`s.
    fn reopen(&mut self) -> io::Result<u64> {
        self.file = OpenOptions::new().read(true).write(true).open(self.dir.join("raw.dat"))?;
        let mut buf = vec![0u8; SEQ_VALUE_BYTES];
        let total = self.keys * VALUE_BYTES as u64;
        let mut off = 0;
        while off < total {
            let n = (total - off).min(SEQ_VALUE_BYTES as u64) as usize;
            self.file.read_exact_at(&mut buf[..n], off)?;
            off += n as u64;
        }
        Ok(self.keys)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

const REDB_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("kv");

/// redb, every write transaction committed with `Durability::Immediate` (its default).
pub struct Redb {
    dir: PathBuf,
    db: Option<redb::Database>,
    cache_bytes: usize,
}

impl Redb {
    /// A new database in `dir` with a `cache_bytes` page cache.
    pub fn create(dir: &Path, cache_bytes: usize) -> io::Result<Self> {
        let mut s = Self { dir: dir.to_path_buf(), db: None, cache_bytes };
        s.db = Some(s.open()?);
        Ok(s)
    }

    fn open(&self) -> io::Result<redb::Database> {
        let db = redb::Builder::new()
            .set_cache_size(self.cache_bytes)
            .create(self.dir.join("redb.db"))
            .map_err(other)?;
        let tx = db.begin_write().map_err(other)?;
        tx.open_table(REDB_TABLE).map_err(other)?;
        tx.commit().map_err(other)?;
        Ok(db)
    }

    fn db(&self) -> io::Result<&redb::Database> {
        self.db.as_ref().ok_or_else(|| other("redb is closed"))
    }
}

impl KvBench for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn write_batch(&mut self, items: &[(u64, &[u8])]) -> io::Result<()> {
        let tx = self.db()?.begin_write().map_err(other)?;
        {
            let mut table = tx.open_table(REDB_TABLE).map_err(other)?;
            for (key, value) in items {
                table.insert(*key, *value).map_err(other)?;
            }
        }
        tx.commit().map_err(other)
    }

    fn read_batch(&mut self, keys: &[u64]) -> io::Result<usize> {
        use redb::ReadableDatabase;
        let tx = self.db()?.begin_read().map_err(other)?;
        let table = tx.open_table(REDB_TABLE).map_err(other)?;
        let mut bytes = 0;
        for key in keys {
            if let Some(v) = table.get(*key).map_err(other)? {
                bytes += v.value().len();
            }
        }
        Ok(bytes)
    }

    fn cas(&mut self, keys: &[u64], value: &[u8]) -> io::Result<bool> {
        use redb::ReadableTable;
        let tx = self.db()?.begin_write().map_err(other)?;
        {
            let mut table = tx.open_table(REDB_TABLE).map_err(other)?;
            let mut versions = Vec::with_capacity(keys.len());
            for key in keys {
                let v = table.get(*key).map_err(other)?.map(|g| version_of(g.value()));
                versions.push(v.unwrap_or(0));
            }
            for (key, version) in keys.iter().zip(versions) {
                table.insert(*key, stamp(value, version + 1).as_slice()).map_err(other)?;
            }
        }
        tx.commit().map_err(other)?;
        Ok(true)
    }

    fn reopen(&mut self) -> io::Result<u64> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        self.db = None;
        let db = self.open()?;
        let n = db.begin_read().map_err(other)?.open_table(REDB_TABLE).map_err(other)?;
        let len = n.len().map_err(other)?;
        drop(n);
        self.db = Some(db);
        Ok(len)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// fjall (single-writer transactions so the CAS is atomic), every commit with
/// `PersistMode::SyncData`.
pub struct Fjall {
    dir: PathBuf,
    cache_bytes: u64,
    db: Option<(fjall::SingleWriterTxDatabase, fjall::SingleWriterTxKeyspace)>,
}

impl Fjall {
    /// A new database in `dir` with a `cache_bytes` block cache.
    pub fn create(dir: &Path, cache_bytes: u64) -> io::Result<Self> {
        let mut s = Self { dir: dir.to_path_buf(), cache_bytes, db: None };
        s.db = Some(s.open()?);
        Ok(s)
    }

    fn open(&self) -> io::Result<(fjall::SingleWriterTxDatabase, fjall::SingleWriterTxKeyspace)> {
        let db = fjall::SingleWriterTxDatabase::builder(self.dir.join("fjall"))
            .cache_size(self.cache_bytes)
            .open()
            .map_err(other)?;
        let ks = db.keyspace("kv", fjall::KeyspaceCreateOptions::default).map_err(other)?;
        Ok((db, ks))
    }

    fn db(&self) -> io::Result<&(fjall::SingleWriterTxDatabase, fjall::SingleWriterTxKeyspace)> {
        self.db.as_ref().ok_or_else(|| other("fjall is closed"))
    }
}

impl KvBench for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn write_batch(&mut self, items: &[(u64, &[u8])]) -> io::Result<()> {
        let (db, ks) = self.db()?;
        let mut tx = db.write_tx().durability(Some(fjall::PersistMode::SyncData));
        for (key, value) in items {
            tx.insert(ks, key.to_be_bytes(), *value);
        }
        tx.commit().map_err(other)
    }

    fn read_batch(&mut self, keys: &[u64]) -> io::Result<usize> {
        let (_, ks) = self.db()?;
        let mut bytes = 0;
        for key in keys {
            if let Some(v) = ks.get(key.to_be_bytes()).map_err(other)? {
                bytes += v.len();
            }
        }
        Ok(bytes)
    }

    fn cas(&mut self, keys: &[u64], value: &[u8]) -> io::Result<bool> {
        use fjall::Readable;
        let (db, ks) = self.db()?;
        let mut tx = db.write_tx().durability(Some(fjall::PersistMode::SyncData));
        let mut versions = Vec::with_capacity(keys.len());
        for key in keys {
            let v = tx.get(ks, key.to_be_bytes()).map_err(other)?;
            versions.push(v.map(|v| version_of(&v)).unwrap_or(0));
        }
        for (key, version) in keys.iter().zip(versions) {
            tx.insert(ks, key.to_be_bytes(), stamp(value, version + 1));
        }
        tx.commit().map_err(other)?;
        Ok(true)
    }

    fn reopen(&mut self) -> io::Result<u64> {
        self.db = None;
        let (db, ks) = self.open()?;
        let n = ks.inner().approximate_len() as u64;
        self.db = Some((db, ks));
        Ok(n)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}
