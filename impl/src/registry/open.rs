//! Opening what a validated [`Config`] names: one connection pool per PostgreSQL URL, one
//! engine per device file, one connection per sector socket, then stores, cells (sealed ones
//! after their inner cells), and volumes with their mode locks. A backend that cannot be opened
//! is refused with `ConfigErrorKind::Unreachable`, naming its table and line.

use super::config::{CellSpec, Config, ModeLockSpec, PgTarget, SectorTarget, StoreSpec};
use super::error::{ConfigError, ConfigErrorKind, Source};
use super::secret_file::read_secret_file;
use crate::env::{Entropy, OsEntropy};
use crate::pg::{PgCell, PgModeLock, PgPool, PgStore};
use crate::sector::adapters::{SharedEngine, share};
use crate::sector::remote::SectorConn;
use crate::sector::{Engine, EngineConfig, FileDevice, RemoteSectorCell, RemoteSectorStore};
use crate::sector::{SectorCell, SectorStore};
use crate::storage::cell::{Cell, FileCell, MemCell, SealedCell};
use crate::storage::store::{DirStore, MemStore, Store};
use crate::storage::volume::{FileModeLock, ModeGate, ModeLock, Volume};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything opened.
pub(super) struct Opened {
    pub stores: BTreeMap<String, Arc<dyn Store>>,
    pub cells: BTreeMap<String, Arc<dyn Cell>>,
    pub volumes: BTreeMap<String, Volume>,
    /// The secret of every sealed cell, by cell name.
    pub secrets: BTreeMap<String, crate::storage::secret::VolumeSecret>,
}

pub(super) struct Opener<'a> {
    cfg: &'a Config,
    file: &'a Path,
    pool_sizes: HashMap<String, usize>,
    pools: HashMap<String, Arc<PgPool>>,
    engines: HashMap<PathBuf, SharedEngine<FileDevice>>,
    conns: HashMap<PathBuf, Arc<SectorConn>>,
    pg_cells: HashMap<String, Arc<PgCell>>,
    pg_stores: HashMap<String, Arc<PgStore>>,
    secrets: BTreeMap<String, crate::storage::secret::VolumeSecret>,
    entropy: Arc<dyn Entropy>,
}

impl<'a> Opener<'a> {
    pub(super) fn new(cfg: &'a Config, file: &'a Path) -> Self {
        // Entries sharing a URL share one pool, sized by the largest connections_max among them.
        let mut pool_sizes: HashMap<String, usize> = HashMap::new();
        let targets = cfg.stores.values().filter_map(|e| match &e.spec {
            StoreSpec::Postgres { target, .. } => Some(target),
            _ => None,
        });
        let cell_targets = cfg.cells.values().filter_map(|e| match &e.spec {
            CellSpec::Postgres { target, .. } => Some(target),
            _ => None,
        });
        for t in targets.chain(cell_targets) {
            let n = pool_sizes.entry(t.url.clone()).or_insert(0);
            *n = (*n).max(t.connections_max);
        }
        Self {
            cfg,
            file,
            pool_sizes,
            pools: HashMap::new(),
            engines: HashMap::new(),
            conns: HashMap::new(),
            pg_cells: HashMap::new(),
            pg_stores: HashMap::new(),
            secrets: BTreeMap::new(),
            entropy: Arc::new(OsEntropy),
        }
    }

    fn unreachable(&self, key: String, line: usize, message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Unreachable,
            file: self.file.to_path_buf(),
            line: Some(line),
            key,
            message,
        }
    }

    pub(super) fn open_all(mut self) -> Result<Opened, ConfigError> {
        let mut stores = BTreeMap::new();
        for (name, e) in &self.cfg.stores {
            let s = self
                .store(name, &e.spec)
                .map_err(|m| self.unreachable(format!("stores.{name}"), e.line, m))?;
            stores.insert(name.clone(), s);
        }
        let cells = self.cells()?;
        let mut volumes = BTreeMap::new();
        for (name, e) in &self.cfg.volumes {
            let (Some(cell), Some(store)) = (cells.get(&e.spec.cell), stores.get(&e.spec.store))
            else {
                // Validation guarantees both exist; never start with part of the configuration.
                let m = "its cell or store was not opened".to_owned();
                return Err(self.unreachable(format!("volumes.{name}"), e.line, m));
            };
            let modes = self
                .mode_lock(name, &e.spec.mode_lock, &e.spec.cell, &e.spec.store)
                .map_err(|m| self.unreachable(format!("volumes.{name}.mode_lock"), e.line, m))?;
            volumes.insert(name.clone(), Volume::with_modes(cell.clone(), store.clone(), modes));
        }
        Ok(Opened { stores, cells, volumes, secrets: std::mem::take(&mut self.secrets) })
    }

    fn cells(&mut self) -> Result<BTreeMap<String, Arc<dyn Cell>>, ConfigError> {
        let mut cells: BTreeMap<String, Arc<dyn Cell>> = BTreeMap::new();
        // Plain cells first, then sealed cells round by round as their inner cells open
        // (validation ruled out cycles, so each round opens at least one until none is left).
        for _ in 0..=self.cfg.cells.len() {
            for (name, e) in &self.cfg.cells {
                if cells.contains_key(name) {
                    continue;
                }
                let opened = match &e.spec {
                    CellSpec::Sealed { inner, secret_file } => match cells.get(inner) {
                        None => continue,
                        Some(inner) => self.sealed(name, inner.clone(), secret_file),
                    },
                    spec => self.cell(name, spec),
                };
                let c = opened.map_err(|m| self.unreachable(format!("cells.{name}"), e.line, m))?;
                cells.insert(name.clone(), c);
            }
        }
        Ok(cells)
    }

    fn pool(&mut self, t: &PgTarget) -> Result<Arc<PgPool>, String> {
        if let Some(p) = self.pools.get(&t.url) {
            return Ok(p.clone());
        }
        let size = self.pool_sizes.get(&t.url).copied().unwrap_or(t.connections_max);
        let pool = Arc::new(PgPool::open(&t.url, size).map_err(|e| e.to_string())?);
        self.pools.insert(t.url.clone(), pool.clone());
        Ok(pool)
    }

    fn engine(&mut self, device: &Path) -> Result<SharedEngine<FileDevice>, String> {
        let key = device.canonicalize().map_err(|e| format!("{}: {e}", device.display()))?;
        if let Some(e) = self.engines.get(&key) {
            return Ok(e.clone());
        }
        let dev = FileDevice::open(&key, false).map_err(|e| format!("{}: {e}", key.display()))?;
        let engine = Engine::open(dev, EngineConfig::default()).map_err(|e| {
            format!("{}: {e} (format it with `cellar sector format`)", key.display())
        })?;
        let shared = share(engine);
        self.engines.insert(key, shared.clone());
        Ok(shared)
    }

    fn conn(&mut self, socket: &Path) -> Result<Arc<SectorConn>, String> {
        if let Some(c) = self.conns.get(socket) {
            return Ok(c.clone());
        }
        let c = SectorConn::connect(socket).map_err(|e| {
            format!("{}: {e} (is `cellar sector serve` running?)", socket.display())
        })?;
        self.conns.insert(socket.to_path_buf(), c.clone());
        Ok(c)
    }

    fn store(&mut self, name: &str, spec: &StoreSpec) -> Result<Arc<dyn Store>, String> {
        Ok(match spec {
            StoreSpec::Mem { max_blob_size_bytes } => {
                Arc::new(MemStore::with_max_blob_size(*max_blob_size_bytes))
            }
            StoreSpec::Dir { path, max_blob_size_bytes } => Arc::new(
                DirStore::open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .with_max_blob_size(*max_blob_size_bytes),
            ),
            StoreSpec::Sector(SectorTarget::Device(d)) => {
                Arc::new(SectorStore::new(self.engine(d)?))
            }
            StoreSpec::Sector(SectorTarget::Socket(s)) => {
                Arc::new(RemoteSectorStore::new(self.conn(s)?))
            }
            StoreSpec::Postgres { target, namespace, max_blob_size_bytes } => {
                let pool = self.pool(target)?;
                let s = Arc::new(
                    PgStore::new(pool, namespace).with_max_blob_size(*max_blob_size_bytes),
                );
                self.pg_stores.insert(name.to_owned(), s.clone());
                s
            }
        })
    }

    fn cell(&mut self, name: &str, spec: &CellSpec) -> Result<Arc<dyn Cell>, String> {
        Ok(match spec {
            CellSpec::Mem { max_size_bytes } => Arc::new(MemCell::with_max_size(*max_size_bytes)),
            CellSpec::File { path, max_size_bytes } => Arc::new(
                FileCell::with_max_size(path, *max_size_bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            CellSpec::Sector { target: SectorTarget::Device(d), id } => {
                Arc::new(SectorCell::new(self.engine(d)?, *id))
            }
            CellSpec::Sector { target: SectorTarget::Socket(s), id } => {
                Arc::new(RemoteSectorCell::new(self.conn(s)?, *id))
            }
            CellSpec::Postgres { target, name: row, max_size_bytes } => {
                let pool = self.pool(target)?;
                let c = Arc::new(PgCell::new(pool, row).with_max_size(*max_size_bytes));
                self.pg_cells.insert(name.to_owned(), c.clone());
                c
            }
            CellSpec::Sealed { .. } => return Err("sealed cell opened out of order".into()),
        })
    }

    fn sealed(
        &mut self,
        name: &str,
        inner: Arc<dyn Cell>,
        secret_file: &Path,
    ) -> Result<Arc<dyn Cell>, String> {
        let secret = read_secret_file(secret_file)?;
        self.secrets.insert(name.to_owned(), secret.clone());
        let sealed = SealedCell::new(inner, &secret, self.entropy.clone());
        // Open it now: a wrong secret or a damaged value is reported at start-up.
        sealed.read().map_err(|e| format!("cannot open the sealed value: {e}"))?;
        Ok(Arc::new(sealed))
    }

    fn mode_lock(
        &mut self,
        volume: &str,
        spec: &ModeLockSpec,
        cell: &str,
        store: &str,
    ) -> Result<Arc<dyn ModeLock>, String> {
        Ok(match spec {
            ModeLockSpec::Process => Arc::new(ModeGate::new()),
            ModeLockSpec::Dir(p) => {
                Arc::new(FileModeLock::open(p).map_err(|e| format!("{}: {e}", p.display()))?)
            }
            ModeLockSpec::Postgres(target) => {
                let lock = PgModeLock::new(self.pool(target)?, volume);
                // Fence the volume's own PostgreSQL cell and store when they live in the same
                // database as the lock (specs/volume.md §6.1).
                let base = self.cfg.base_cell(cell);
                if let Some(CellSpec::Postgres { target: t, .. }) =
                    self.cfg.cells.get(base).map(|e| &e.spec)
                    && t.url == target.url
                    && let Some(c) = self.pg_cells.get(base)
                {
                    c.attach_fence(lock.fence());
                }
                if let Some(StoreSpec::Postgres { target: t, .. }) =
                    self.cfg.stores.get(store).map(|e| &e.spec)
                    && t.url == target.url
                    && let Some(s) = self.pg_stores.get(store)
                {
                    s.attach_fence(lock.fence());
                }
                Arc::new(lock)
            }
        })
    }
}

/// Loads, validates and reads a configuration file.
pub(super) fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Source::new(path, String::new()).error(ConfigErrorKind::Io, None, "", e.to_string())
    })?;
    super::validate::parse(path, text)
}
