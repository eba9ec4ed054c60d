//! The registry: named stores, cells, volumes and shares from a `cellar.toml` file
//! (`docs/config.md`), in the manner of DittoFS's store registry — backends are created once,
//! by name, and volumes and shares refer to them by name.
//!
//! Start-up is all or nothing. [`Registry::open`] reads the file, refuses unknown keys,
//! duplicate names, dangling references, a store or cell claimed by two volumes and values out
//! of range (`validate`), then opens every backend — a missing device, a server that does not
//! answer or a wrong secret is refused too (`open`). Every refusal is a [`ConfigError`] naming
//! the file, the line and the key.
//!
//! Files: `raw` (the file as written, with spans), `validate` (meaning and references),
//! `config` (the validated model), `open` (backends), `probe` (what `cellar config check`
//! prints), `secret_file`, `error`.
//!
//! Shares are parsed and validated here and served by the protocol adapters (not yet part of
//! this crate). Never: open a backend before the whole file validated; start with part of the
//! configuration.

mod config;
mod error;
mod open;
mod probe;
mod raw;
mod secret_file;
mod validate;

pub use config::{
    CONFIG_BLOB_SIZE_MAX_BYTES_LIMIT, CONFIG_CELL_SIZE_MAX_BYTES_LIMIT, CONFIG_MARK_DEFAULT,
    CONFIG_NAME_LEN_MAX, CONFIG_REFRESH_MS_DEFAULT, CONFIG_REFRESH_MS_LIMIT, CellSpec, Config,
    Entry, ModeLockSpec, PgTarget, SectorTarget, ShareSpec, StoreSpec, VolumeSpec,
};
pub use error::{ConfigError, ConfigErrorKind};
pub use probe::ProbeLine;
pub use raw::{Adapter, CellKind, ModeLockKind, StoreKind};
pub use secret_file::read_secret_file;

use crate::storage::cell::Cell;
use crate::storage::store::Store;
use crate::storage::volume::Volume;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// BLAKE3 `derive_key` context of the salt of every volume whose cell is not sealed (key
/// material: empty), so two servers naming one volume differently still chunk alike.
pub const UNSEALED_SALT_PURPOSE: &str = "cellar 2026 unsealed volume salt v1";

/// Named backends, volumes and shares, all opened (see the module docs).
pub struct Registry {
    file: PathBuf,
    config: Config,
    stores: BTreeMap<String, Arc<dyn Store>>,
    cells: BTreeMap<String, Arc<dyn Cell>>,
    volumes: BTreeMap<String, Volume>,
    secrets: BTreeMap<String, crate::storage::secret::VolumeSecret>,
    /// One space handle per volume, so every share of a volume edits it through one handle
    /// (MARK-4 serializes edits per handle).
    spaces: BTreeMap<String, crate::marks::VolumeSpace>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("file", &self.file).field("config", &self.config).finish()
    }
}

impl Registry {
    /// Reads, validates and opens the configuration file at `path`.
    pub fn open(path: &Path) -> Result<Registry, ConfigError> {
        let config = open::load(path)?;
        Self::from_config(path, config)
    }

    /// Validates `text` as if it were the file `file` (relative paths resolve against `file`'s
    /// directory), without opening anything.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        validate::parse(file, text.to_owned())
    }

    /// Opens every backend of an already validated configuration read from `file`.
    pub fn from_config(file: &Path, config: Config) -> Result<Registry, ConfigError> {
        let opened = open::Opener::new(&config, file).open_all()?;
        let mut reg = Registry {
            file: file.to_path_buf(),
            stores: opened.stores,
            cells: opened.cells,
            volumes: opened.volumes,
            secrets: opened.secrets,
            spaces: BTreeMap::new(),
            config,
        };
        let mut spaces = BTreeMap::new();
        for (name, vol) in &reg.volumes {
            if let Some(salt) = reg.volume_salt(name) {
                spaces.insert(name.clone(), crate::marks::VolumeSpace::new(vol.clone(), salt));
            }
        }
        reg.spaces = spaces;
        Ok(reg)
    }

    /// The configuration file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store named `name`.
    pub fn store(&self, name: &str) -> Option<&Arc<dyn Store>> {
        self.stores.get(name)
    }

    /// The cell named `name`.
    pub fn cell(&self, name: &str) -> Option<&Arc<dyn Cell>> {
        self.cells.get(name)
    }

    /// The volume named `name`.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.get(name)
    }

    /// The ref salt of volume `name` (`docs/config.md`, salts): derived from the secret of
    /// its cell when the cell is sealed, otherwise the public [`UNSEALED_SALT_PURPOSE`] salt —
    /// an unsealed volume has no secret, and whoever reads its cell reads its files anyway.
    pub fn volume_salt(&self, name: &str) -> Option<[u8; 32]> {
        let spec = &self.config.volumes.get(name)?.spec;
        Some(match self.secrets.get(&spec.cell) {
            Some(secret) => secret.ref_salt(),
            None => blake3::derive_key(UNSEALED_SALT_PURPOSE, b""),
        })
    }

    /// The space of marks volume `name` holds (`specs/marks.md` MARK-3), its map encrypted
    /// under [`Registry::volume_salt`]. Every call returns a clone of one handle, so edits
    /// made through it by one process are serialized (MARK-4).
    pub fn space(&self, name: &str) -> Option<crate::marks::VolumeSpace> {
        self.spaces.get(name).cloned()
    }

    /// The share named `name`.
    pub fn share(&self, name: &str) -> Option<&ShareSpec> {
        self.config.shares.get(name).map(|e| &e.spec)
    }

    /// Every share, by name.
    pub fn shares(&self) -> impl Iterator<Item = (&String, &ShareSpec)> {
        self.config.shares.iter().map(|(n, e)| (n, &e.spec))
    }

    /// Reads every backend once and describes what it found (`cellar config check`).
    pub fn probe(&self) -> Vec<ProbeLine> {
        probe::probe(self)
    }
}
