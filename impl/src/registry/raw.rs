//! The `cellar.toml` file as written: serde structures with spans, every table
//! `deny_unknown_fields`, every optional key an `Option<Spanned<_>>` so validation can name its
//! line. Nothing here checks meaning; `validate` does.
//!
//! Kinds share one flat struct per section (rather than an internally tagged enum, which would
//! lose the spans): which keys a kind accepts is checked in `validate` against
//! [`RawStore::keys`] and [`RawCell::keys`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[stores.NAME]` tables.
    #[serde(default)]
    pub stores: BTreeMap<String, Spanned<RawStore>>,
    /// `[cells.NAME]` tables.
    #[serde(default)]
    pub cells: BTreeMap<String, Spanned<RawCell>>,
    /// `[volumes.NAME]` tables.
    #[serde(default)]
    pub volumes: BTreeMap<String, Spanned<RawVolume>>,
    /// `[shares.NAME]` tables.
    #[serde(default)]
    pub shares: BTreeMap<String, Spanned<RawShare>>,
}

/// Backend kinds of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In memory, gone when the process ends.
    Mem,
    /// A `DirStore` directory.
    Dir,
    /// A sector engine: a device file in-process, or a server's socket.
    Sector,
    /// A PostgreSQL database.
    Postgres,
}

/// Backend kinds of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// In memory.
    Mem,
    /// A `FileCell`.
    File,
    /// A sector engine key.
    Sector,
    /// A PostgreSQL row.
    Postgres,
    /// Another cell, sealed with a secret.
    Sealed,
}

/// How a volume keeps Expand and Contract apart (VOL-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeLockKind {
    /// `postgres` if the volume's cell or store is in PostgreSQL, else `process`.
    Auto,
    /// In this process only (`ModeGate`).
    Process,
    /// `flock` files in a directory (`FileModeLock`): processes on one host.
    Dir,
    /// PostgreSQL advisory locks (`PgModeLock`): processes on any host.
    Postgres,
}

/// Protocol adapters a share can be served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Adapter {
    /// NFSv3 (`cellar serve`).
    Nfs,
    /// FUSE (`cellar mount`).
    Fuse,
}

impl Adapter {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Adapter::Nfs => "nfs",
            Adapter::Fuse => "fuse",
        }
    }
}

/// `[stores.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Backend kind.
    pub kind: Spanned<StoreKind>,
    /// `dir`: the directory.
    pub path: Option<Spanned<PathBuf>>,
    /// `sector`: a device file to serve in-process.
    pub device: Option<Spanned<PathBuf>>,
    /// `sector`: the socket of a `cellar sector serve`.
    pub socket: Option<Spanned<PathBuf>>,
    /// `postgres`: connection URL.
    pub url: Option<Spanned<String>>,
    /// `postgres`: the store's namespace in the blob table.
    pub namespace: Option<Spanned<String>>,
    /// `postgres`: most connections.
    pub connections_max: Option<Spanned<u64>>,
    /// `mem`, `dir`, `postgres`: largest blob.
    pub max_blob_size_bytes: Option<Spanned<u64>>,
}

/// `[cells.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCell {
    /// Backend kind.
    pub kind: Spanned<CellKind>,
    /// `file`: the cell file.
    pub path: Option<Spanned<PathBuf>>,
    /// `sector`: a device file to serve in-process.
    pub device: Option<Spanned<PathBuf>>,
    /// `sector`: the socket of a `cellar sector serve`.
    pub socket: Option<Spanned<PathBuf>>,
    /// `sector`: the cell's id (its key is `id | 2^63`).
    pub id: Option<Spanned<u64>>,
    /// `postgres`: connection URL.
    pub url: Option<Spanned<String>>,
    /// `postgres`: the cell's row key.
    pub name: Option<Spanned<String>>,
    /// `postgres`: most connections.
    pub connections_max: Option<Spanned<u64>>,
    /// `mem`, `file`, `postgres`: largest value.
    pub max_size_bytes: Option<Spanned<u64>>,
    /// `sealed`: the cell holding the ciphertext.
    pub inner: Option<Spanned<String>>,
    /// `sealed`: file holding the 32-byte secret as 64 hex digits.
    pub secret_file: Option<Spanned<PathBuf>>,
}

/// `[volumes.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVolume {
    /// The cell's name.
    pub cell: Spanned<String>,
    /// The store's name.
    pub store: Spanned<String>,
    /// Mode exclusion.
    pub mode_lock: Option<Spanned<ModeLockKind>>,
    /// `mode_lock = "dir"`: the lock directory.
    pub mode_lock_path: Option<Spanned<PathBuf>>,
    /// `mode_lock = "postgres"`: connection URL.
    pub mode_lock_url: Option<Spanned<String>>,
}

/// `[shares.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShare {
    /// The volume served.
    pub volume: Spanned<String>,
    /// The mark (named root) served.
    pub mark: Option<Spanned<String>>,
    /// Adapters that serve it.
    pub adapters: Option<Spanned<Vec<Spanned<Adapter>>>>,
    /// Refuse writes.
    pub read_only: Option<Spanned<bool>>,
    /// How often (ms) a clean working tree looks for other processes' commits (ADP-13).
    pub refresh_ms: Option<Spanned<u64>>,
    /// How new data blobs are encoded: `zstd` or `none` (FS-27).
    pub compression: Option<Spanned<String>>,
}

/// An optional key's name and span, if it is present.
fn present<T>(name: &'static str, v: &Option<Spanned<T>>) -> Option<(&'static str, Range<usize>)> {
    v.as_ref().map(|s| (name, s.span()))
}

impl RawStore {
    /// The optional keys present, with their spans.
    pub fn keys(&self) -> Vec<(&'static str, Range<usize>)> {
        [
            present("path", &self.path),
            present("device", &self.device),
            present("socket", &self.socket),
            present("url", &self.url),
            present("namespace", &self.namespace),
            present("connections_max", &self.connections_max),
            present("max_blob_size_bytes", &self.max_blob_size_bytes),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl RawCell {
    /// The optional keys present, with their spans.
    pub fn keys(&self) -> Vec<(&'static str, Range<usize>)> {
        [
            present("path", &self.path),
            present("device", &self.device),
            present("socket", &self.socket),
            present("id", &self.id),
            present("url", &self.url),
            present("name", &self.name),
            present("connections_max", &self.connections_max),
            present("max_size_bytes", &self.max_size_bytes),
            present("inner", &self.inner),
            present("secret_file", &self.secret_file),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
