//! The validated configuration: what `cellar.toml` means once every key, name and reference has
//! been checked (`validate`), before any backend is opened (`open`).

use super::raw::{Adapter, ModeLockKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Largest `max_blob_size_bytes` a store may be given: 64 MiB.
pub const CONFIG_BLOB_SIZE_MAX_BYTES_LIMIT: u64 = 64 * 1024 * 1024;
/// Largest `max_size_bytes` a cell may be given: 1 MiB (cells hold roots, not data).
pub const CONFIG_CELL_SIZE_MAX_BYTES_LIMIT: u64 = 1024 * 1024;
/// Longest name of a store, cell, volume or share.
pub const CONFIG_NAME_LEN_MAX: usize = 64;
/// The mark a share serves when it names none.
pub const CONFIG_MARK_DEFAULT: &str = "main";
/// How often (ms) a share looks for another process's commits by default (ADP-13).
pub const CONFIG_REFRESH_MS_DEFAULT: u64 = 1000;
/// Largest `refresh_ms` a share may be given: one hour.
pub const CONFIG_REFRESH_MS_LIMIT: u64 = 3_600_000;

/// Where a sector store or cell lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectorTarget {
    /// A formatted device file, served by this process.
    Device(PathBuf),
    /// The Unix socket of a `cellar sector serve`.
    Socket(PathBuf),
}

/// A PostgreSQL connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Connection URL.
    pub url: String,
    /// Most connections.
    pub connections_max: usize,
}

/// A validated `[stores.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `kind = "mem"`.
    Mem {
        /// Largest blob.
        max_blob_size_bytes: usize,
    },
    /// `kind = "dir"`.
    Dir {
        /// Directory (relative paths resolved against the config file's directory).
        path: PathBuf,
        /// Largest blob.
        max_blob_size_bytes: usize,
    },
    /// `kind = "sector"`.
    Sector(SectorTarget),
    /// `kind = "postgres"`.
    Postgres {
        /// Connection.
        target: PgTarget,
        /// Namespace in `cellar_blobs` (default: the store's name).
        namespace: String,
        /// Largest blob.
        max_blob_size_bytes: usize,
    },
}

/// A validated `[cells.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellSpec {
    /// `kind = "mem"`.
    Mem {
        /// Largest value.
        max_size_bytes: usize,
    },
    /// `kind = "file"`.
    File {
        /// The cell file.
        path: PathBuf,
        /// Largest value.
        max_size_bytes: usize,
    },
    /// `kind = "sector"`.
    Sector {
        /// Where.
        target: SectorTarget,
        /// The cell id.
        id: u64,
    },
    /// `kind = "postgres"`.
    Postgres {
        /// Connection.
        target: PgTarget,
        /// Row key (default: the cell's name).
        name: String,
        /// Largest value.
        max_size_bytes: usize,
    },
    /// `kind = "sealed"`.
    Sealed {
        /// The inner cell's name.
        inner: String,
        /// The secret's file.
        secret_file: PathBuf,
    },
}

/// A validated mode lock choice (`auto` resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeLockSpec {
    /// `ModeGate`.
    Process,
    /// `FileModeLock` in this directory.
    Dir(PathBuf),
    /// `PgModeLock` in this database.
    Postgres(PgTarget),
}

/// A validated `[volumes.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The cell's name.
    pub cell: String,
    /// The store's name.
    pub store: String,
    /// What `mode_lock` said (before resolving `auto`).
    pub mode_lock_kind: ModeLockKind,
    /// The resolved mode lock.
    pub mode_lock: ModeLockSpec,
}

/// A validated `[shares.NAME]`: parsed and checked now, served by the adapters later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    /// The volume served.
    pub volume: String,
    /// The mark served.
    pub mark: String,
    /// Adapters enabled.
    pub adapters: BTreeSet<Adapter>,
    /// Writes refused.
    pub read_only: bool,
    /// A clean working tree looks for newer commits of the mark at most this often (ms; 0:
    /// before every read), ADP-13.
    pub refresh_ms: u64,
    /// How the share encodes the data blobs it writes (FS-27; reads take either).
    pub compression: crate::fs::Compression,
}

/// A validated entry and the line of its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    /// What it says.
    pub spec: T,
    /// 1-based line of its table.
    pub line: usize,
}

/// A validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Named stores.
    pub stores: BTreeMap<String, Entry<StoreSpec>>,
    /// Named cells.
    pub cells: BTreeMap<String, Entry<CellSpec>>,
    /// Named volumes.
    pub volumes: BTreeMap<String, Entry<VolumeSpec>>,
    /// Named shares.
    pub shares: BTreeMap<String, Entry<ShareSpec>>,
}

impl Config {
    /// The cell at the bottom of `name`'s chain of sealed cells (`name` itself if not sealed).
    /// Validation has ruled out cycles; the walk is bounded by the number of cells anyway.
    pub fn base_cell<'a>(&'a self, name: &'a str) -> &'a str {
        let mut cur = name;
        for _ in 0..=self.cells.len() {
            match self.cells.get(cur).map(|e| &e.spec) {
                Some(CellSpec::Sealed { inner, .. }) => cur = inner,
                _ => break,
            }
        }
        cur
    }
}
