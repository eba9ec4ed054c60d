//! One fixture per backend: how to get a fresh cell or store, another handle on the same one,
//! and a side door to damage what it stores.

use cellar::Hash;
use cellar::env::OsEntropy;
use cellar::pg::{PgCell, PgPool, PgStore};
use cellar::sector::adapters::{SharedEngine, share, store_key};
use cellar::sector::proto::backend::EngineBackend;
use cellar::sector::proto::server::{Server, ServerConfig, ShutdownHandle};
use cellar::sector::proto::{SectorClient, WriteOptions as ProtoWriteOptions};
use cellar::sector::remote::SectorConn;
use cellar::sector::{
    Engine, EngineConfig, MemDevice, RemoteSectorCell, RemoteSectorStore, SectorCell, SectorStore,
    WriteOptions,
};
use cellar::storage::cell::{Cell, FileCell, MemCell, SealedCell};
use cellar::storage::secret::VolumeSecret;
use cellar::storage::store::{DirStore, MemStore, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A cell backend under test.
pub trait CellFixture {
    /// Backend name, for messages.
    fn name(&self) -> &str;
    /// A handle on the fixture's one cell: a new handle (file handle, connection) where the
    /// backend has them, so threads really race through the backend.
    fn handle(&self) -> Arc<dyn Cell>;
    /// Damages the stored value through a side door; false if the backend has none.
    fn corrupt(&self) -> bool;
    /// Why `corrupt` returns false, for the skip line.
    fn why_no_side_door(&self) -> &'static str {
        "any bytes the engine stores are a valid cell value; damage below it is caught by the engine's CRCs (tests/sector_crash.rs)"
    }
    /// Rounds of the concurrent CAS test.
    fn rounds(&self) -> usize {
        20
    }
}

/// A store backend under test.
pub trait StoreFixture {
    /// Backend name, for messages.
    fn name(&self) -> &str;
    /// A handle on the fixture's one store (a new one where the backend has handles).
    fn handle(&self) -> Arc<dyn Store>;
    /// Replaces the bytes stored under `hash` through a side door.
    fn corrupt(&self, hash: &Hash, bytes: &[u8]) -> bool;
}

/// A sector bucket holding one entry, in the adapters' layout: hash ‖ u32 LE length ‖ bytes.
fn bucket(hash: &Hash, bytes: &[u8]) -> Vec<u8> {
    let mut out = hash.0.to_vec();
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

fn mem_engine() -> SharedEngine<MemDevice> {
    const ZONES: u64 = 24;
    let sectors_per_zone =
        (cellar::sector::ZONE_SIZE_BYTES_DEFAULT / cellar::sector::SECTOR_SIZE_BYTES) as u64;
    share(
        Engine::format(MemDevice::new(2 + ZONES * sectors_per_zone), EngineConfig::default())
            .unwrap(),
    )
}

// ---- in memory ----

pub struct MemCellFx(Arc<MemCell>);
impl MemCellFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn CellFixture>> {
        Some(Box::new(Self(Arc::new(MemCell::new()))))
    }
}
impl CellFixture for MemCellFx {
    fn name(&self) -> &str {
        "mem"
    }
    fn why_no_side_door(&self) -> &'static str {
        "a value in memory has no integrity check to test"
    }
    fn handle(&self) -> Arc<dyn Cell> {
        self.0.clone()
    }
    fn corrupt(&self) -> bool {
        false
    }
}

pub struct MemStoreFx(Arc<MemStore>);
impl MemStoreFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn StoreFixture>> {
        Some(Box::new(Self(Arc::new(MemStore::with_max_blob_size(1024 * 1024)))))
    }
}
impl StoreFixture for MemStoreFx {
    fn name(&self) -> &str {
        "mem"
    }
    fn handle(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
    fn corrupt(&self, hash: &Hash, bytes: &[u8]) -> bool {
        self.0.tamper(hash, bytes.to_vec())
    }
}

// ---- files ----

pub struct FileCellFx {
    _dir: tempfile::TempDir,
    path: PathBuf,
}
impl FileCellFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn CellFixture>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell");
        Some(Box::new(Self { _dir: dir, path }))
    }
}
impl CellFixture for FileCellFx {
    fn name(&self) -> &str {
        "file"
    }
    fn handle(&self) -> Arc<dyn Cell> {
        Arc::new(FileCell::open(&self.path).unwrap())
    }
    fn corrupt(&self) -> bool {
        std::fs::write(&self.path, b"not a cell frame at all").unwrap();
        true
    }
}

pub struct DirStoreFx {
    dir: tempfile::TempDir,
}
impl DirStoreFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn StoreFixture>> {
        Some(Box::new(Self { dir: tempfile::tempdir().unwrap() }))
    }
    fn store(&self) -> DirStore {
        DirStore::open(self.dir.path().join("store")).unwrap().with_max_blob_size(1024 * 1024)
    }
}
impl StoreFixture for DirStoreFx {
    fn name(&self) -> &str {
        "dir"
    }
    fn handle(&self) -> Arc<dyn Store> {
        Arc::new(self.store())
    }
    fn corrupt(&self, hash: &Hash, bytes: &[u8]) -> bool {
        std::fs::write(self.store().blob_path(hash), bytes).unwrap();
        true
    }
}

// ---- sealed (over a file cell) ----

pub struct SealedFx {
    _dir: tempfile::TempDir,
    path: PathBuf,
    secret: VolumeSecret,
}
impl SealedFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn CellFixture>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell");
        Some(Box::new(Self { _dir: dir, path, secret: VolumeSecret::from_bytes([9; 32]) }))
    }
}
impl CellFixture for SealedFx {
    fn name(&self) -> &str {
        "sealed"
    }
    fn handle(&self) -> Arc<dyn Cell> {
        let inner = FileCell::open(&self.path).unwrap();
        Arc::new(SealedCell::new(inner, &self.secret, Arc::new(OsEntropy)))
    }
    fn corrupt(&self) -> bool {
        let inner = FileCell::open(&self.path).unwrap();
        let raw = inner.read().unwrap();
        let mut flipped = raw.clone();
        let last = flipped.last_mut().unwrap();
        *last ^= 1;
        inner.cas(&raw, &flipped).unwrap().swapped
    }
}

// ---- sector engine in-process ----

pub struct SectorCellFx(SharedEngine<MemDevice>);
impl SectorCellFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn CellFixture>> {
        Some(Box::new(Self(mem_engine())))
    }
}
impl CellFixture for SectorCellFx {
    fn name(&self) -> &str {
        "sector"
    }
    fn handle(&self) -> Arc<dyn Cell> {
        Arc::new(SectorCell::new(self.0.clone(), 7))
    }
    fn corrupt(&self) -> bool {
        false
    }
}

pub struct SectorStoreFx(SharedEngine<MemDevice>);
impl SectorStoreFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn StoreFixture>> {
        Some(Box::new(Self(mem_engine())))
    }
}
impl StoreFixture for SectorStoreFx {
    fn name(&self) -> &str {
        "sector"
    }
    fn handle(&self) -> Arc<dyn Store> {
        Arc::new(SectorStore::new(self.0.clone()))
    }
    fn corrupt(&self, hash: &Hash, bytes: &[u8]) -> bool {
        let opts = WriteOptions { flush: true, ..WriteOptions::default() };
        self.0.lock().unwrap().write(store_key(hash), &bucket(hash, bytes), opts).unwrap();
        true
    }
}

// ---- sector engine behind `cellar sector serve`'s server, over a Unix socket ----

pub struct SectorServer {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl SectorServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sector.sock");
        let engine = Arc::try_unwrap(mem_engine()).unwrap().into_inner().unwrap();
        let server =
            Server::bind(&socket, EngineBackend::new(engine), ServerConfig::default().workers(4))
                .unwrap();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || {
            server.run().unwrap();
        });
        Self { _dir: dir, socket, handle, thread: Some(thread) }
    }
}

impl Drop for SectorServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct SocketCellFx(SectorServer);
impl SocketCellFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn CellFixture>> {
        Some(Box::new(Self(SectorServer::start())))
    }
}
impl CellFixture for SocketCellFx {
    fn name(&self) -> &str {
        "sector-socket"
    }
    fn handle(&self) -> Arc<dyn Cell> {
        Arc::new(RemoteSectorCell::new(SectorConn::connect(&self.0.socket).unwrap(), 7))
    }
    fn corrupt(&self) -> bool {
        false
    }
}

pub struct SocketStoreFx(SectorServer);
impl SocketStoreFx {
    pub fn boxed(_test: &str) -> Option<Box<dyn StoreFixture>> {
        Some(Box::new(Self(SectorServer::start())))
    }
}
impl StoreFixture for SocketStoreFx {
    fn name(&self) -> &str {
        "sector-socket"
    }
    fn handle(&self) -> Arc<dyn Store> {
        Arc::new(RemoteSectorStore::new(SectorConn::connect(&self.0.socket).unwrap()))
    }
    fn corrupt(&self, hash: &Hash, bytes: &[u8]) -> bool {
        let mut c = SectorClient::connect(&self.0.socket).unwrap();
        let opts = ProtoWriteOptions { flush: true, ..ProtoWriteOptions::default() };
        c.write(store_key(hash), bucket(hash, bytes), opts).unwrap();
        true
    }
}

// ---- PostgreSQL (skipped, with a printed line, when CELLAR_TEST_PG is unset) ----

pub struct PgCellFx {
    url: String,
    name: String,
}
impl PgCellFx {
    pub fn boxed(test: &str) -> Option<Box<dyn CellFixture>> {
        let url = super::pg_url(test)?;
        Some(Box::new(Self { url, name: super::unique_name(test) }))
    }
}
impl CellFixture for PgCellFx {
    fn name(&self) -> &str {
        "postgres"
    }
    fn handle(&self) -> Arc<dyn Cell> {
        Arc::new(PgCell::new(Arc::new(PgPool::open(&self.url, 2).unwrap()), &self.name))
    }
    fn corrupt(&self) -> bool {
        // The only damage a row can show: a value longer than every opener's maximum.
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        let big = vec![1u8; 5000];
        c.execute("UPDATE cellar_cells SET value = $2 WHERE name = $1", &[&self.name, &big])
            .unwrap()
            == 1
    }
    fn rounds(&self) -> usize {
        10
    }
}

pub struct PgStoreFx {
    url: String,
    namespace: String,
}
impl PgStoreFx {
    pub fn boxed(test: &str) -> Option<Box<dyn StoreFixture>> {
        let url = super::pg_url(test)?;
        Some(Box::new(Self { url, namespace: super::unique_name(test) }))
    }
}
impl StoreFixture for PgStoreFx {
    fn name(&self) -> &str {
        "postgres"
    }
    fn handle(&self) -> Arc<dyn Store> {
        let pool = Arc::new(PgPool::open(&self.url, 2).unwrap());
        Arc::new(PgStore::new(pool, &self.namespace).with_max_blob_size(1024 * 1024))
    }
    fn corrupt(&self, hash: &Hash, bytes: &[u8]) -> bool {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        let key: &[u8] = &hash.0;
        c.execute(
            "UPDATE cellar_blobs SET data = $3 WHERE store = $1 AND hash = $2",
            &[&self.namespace, &key, &bytes],
        )
        .unwrap()
            == 1
    }
}
