//! From the file as written ([`super::raw`]) to what it means ([`super::config`]): every key
//! allowed for its kind, required keys present, sizes in range, names well formed, references
//! defined, no store or cell claimed by two volumes, no cycle of sealed cells. Every refusal
//! names the key and its line. Nothing is opened here.

use super::config::{
    CONFIG_BLOB_SIZE_MAX_BYTES_LIMIT, CONFIG_CELL_SIZE_MAX_BYTES_LIMIT, CONFIG_MARK_DEFAULT,
    CONFIG_NAME_LEN_MAX, CONFIG_REFRESH_MS_DEFAULT, CONFIG_REFRESH_MS_LIMIT, CellSpec, Config,
    Entry, ModeLockSpec, PgTarget, SectorTarget, ShareSpec, StoreSpec, VolumeSpec,
};
use super::error::{ConfigError, ConfigErrorKind as K, Source};
use super::raw::{
    Adapter, CellKind, ModeLockKind, RawCell, RawConfig, RawShare, RawStore, RawVolume, StoreKind,
};
use crate::pg::{POOL_CONNECTIONS_MAX_DEFAULT, POOL_CONNECTIONS_MAX_LIMIT};
use crate::storage::cell::CELL_SIZE_MAX_BYTES_DEFAULT;
use crate::storage::store::BLOB_SIZE_MAX_BYTES_DEFAULT;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Parses and validates the text of a configuration file named `file`.
pub fn parse(file: &Path, text: String) -> Result<Config, ConfigError> {
    let src = Source::new(file, text);
    let raw: RawConfig = toml::from_str(&src.text).map_err(|e| src.parse_error(&e))?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let cx = Cx { src: &src, base };
    let mut cfg = Config::default();
    for (name, e) in &raw.stores {
        let key = cx.name(&format!("stores.{name}"), name, e.span())?;
        let spec = cx.store(&key, e.get_ref(), name)?;
        cfg.stores.insert(name.clone(), Entry { spec, line: src.line_of(e.span().start) });
    }
    for (name, e) in &raw.cells {
        let key = cx.name(&format!("cells.{name}"), name, e.span())?;
        let spec = cx.cell(&key, e.get_ref(), name)?;
        cfg.cells.insert(name.clone(), Entry { spec, line: src.line_of(e.span().start) });
    }
    cx.sealed_chains(&raw, &cfg)?;
    for (name, e) in &raw.volumes {
        let key = cx.name(&format!("volumes.{name}"), name, e.span())?;
        let spec = cx.volume(&key, e.get_ref(), &cfg)?;
        cfg.volumes.insert(name.clone(), Entry { spec, line: src.line_of(e.span().start) });
    }
    cx.exclusive_use(&raw, &cfg)?;
    for (name, e) in &raw.shares {
        let key = cx.name(&format!("shares.{name}"), name, e.span())?;
        let spec = cx.share(&key, e.get_ref(), &cfg)?;
        cfg.shares.insert(name.clone(), Entry { spec, line: src.line_of(e.span().start) });
    }
    Ok(cfg)
}

struct Cx<'a> {
    src: &'a Source,
    base: PathBuf,
}

const STORE_KEYS: [(StoreKind, &str, &[&str]); 4] = [
    (StoreKind::Mem, "mem", &["max_blob_size_bytes"]),
    (StoreKind::Dir, "dir", &["path", "max_blob_size_bytes"]),
    (StoreKind::Sector, "sector", &["device", "socket"]),
    (
        StoreKind::Postgres,
        "postgres",
        &["url", "namespace", "connections_max", "max_blob_size_bytes"],
    ),
];

const CELL_KEYS: [(CellKind, &str, &[&str]); 5] = [
    (CellKind::Mem, "mem", &["max_size_bytes"]),
    (CellKind::File, "file", &["path", "max_size_bytes"]),
    (CellKind::Sector, "sector", &["device", "socket", "id"]),
    (CellKind::Postgres, "postgres", &["url", "name", "connections_max", "max_size_bytes"]),
    (CellKind::Sealed, "sealed", &["inner", "secret_file"]),
];

impl Cx<'_> {
    fn err(&self, kind: K, span: Range<usize>, key: &str, msg: impl Into<String>) -> ConfigError {
        self.src.error(kind, Some(span), key, msg)
    }

    /// Checks an entry name and returns its dotted key.
    fn name(&self, key: &str, name: &str, span: Range<usize>) -> Result<String, ConfigError> {
        let ok = !name.is_empty()
            && name.len() <= CONFIG_NAME_LEN_MAX
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(self.err(
                K::Invalid,
                span,
                key,
                format!("names are 1 to {CONFIG_NAME_LEN_MAX} characters of A-Z a-z 0-9 - _ ."),
            ));
        }
        Ok(key.to_owned())
    }

    /// Refuses the first key present that `kind` does not take.
    fn allowed(
        &self,
        key: &str,
        kind: &str,
        present: &[(&str, Range<usize>)],
        ok: &[&str],
    ) -> Result<(), ConfigError> {
        match present.iter().find(|(k, _)| !ok.contains(k)) {
            None => Ok(()),
            Some((k, span)) => Err(self.err(
                K::UnknownKey,
                span.clone(),
                &format!("{key}.{k}"),
                format!(
                    "`{k}` is not a key of kind \"{kind}\" (its keys: kind, {})",
                    ok.join(", ")
                ),
            )),
        }
    }

    fn required<'v, T>(
        &self,
        v: &'v Option<Spanned<T>>,
        key: &str,
        k: &str,
        kind: &str,
        at: Range<usize>,
    ) -> Result<&'v Spanned<T>, ConfigError> {
        v.as_ref()
            .ok_or_else(|| self.err(K::Invalid, at, key, format!("kind \"{kind}\" needs `{k}`")))
    }

    fn path(&self, p: &Spanned<PathBuf>) -> PathBuf {
        let p = p.get_ref();
        if p.is_absolute() { p.clone() } else { self.base.join(p) }
    }

    fn size(
        &self,
        v: &Option<Spanned<u64>>,
        key: &str,
        default: usize,
        limit: u64,
    ) -> Result<usize, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let n = *v.get_ref();
        if n == 0 || n > limit {
            return Err(self.err(
                K::Invalid,
                v.span(),
                key,
                format!("must be between 1 and {limit}, not {n}"),
            ));
        }
        usize::try_from(n)
            .map_err(|_| self.err(K::Invalid, v.span(), key, "too large for this machine"))
    }

    fn pg(
        &self,
        key: &str,
        url: &Spanned<String>,
        conns: &Option<Spanned<u64>>,
    ) -> Result<PgTarget, ConfigError> {
        url.get_ref().parse::<postgres::Config>().map_err(|e| {
            self.err(
                K::Invalid,
                url.span(),
                &format!("{key}.url"),
                format!("not a PostgreSQL URL: {e}"),
            )
        })?;
        let limit = POOL_CONNECTIONS_MAX_LIMIT as u64;
        let connections_max = self.size(
            conns,
            &format!("{key}.connections_max"),
            POOL_CONNECTIONS_MAX_DEFAULT,
            limit,
        )?;
        Ok(PgTarget { url: url.get_ref().clone(), connections_max })
    }

    fn sector(
        &self,
        key: &str,
        device: &Option<Spanned<PathBuf>>,
        socket: &Option<Spanned<PathBuf>>,
        at: Range<usize>,
    ) -> Result<SectorTarget, ConfigError> {
        match (device, socket) {
            (Some(d), None) => Ok(SectorTarget::Device(self.path(d))),
            (None, Some(s)) => Ok(SectorTarget::Socket(self.path(s))),
            (Some(_), Some(s)) => Err(self.err(
                K::Invalid,
                s.span(),
                &format!("{key}.socket"),
                "give `device` or `socket`, not both",
            )),
            (None, None) => Err(self.err(
                K::Invalid,
                at,
                key,
                "kind \"sector\" needs `device` (a device file) or `socket` (a server)",
            )),
        }
    }

    fn store(&self, key: &str, s: &RawStore, name: &str) -> Result<StoreSpec, ConfigError> {
        let kind = *s.kind.get_ref();
        let (_, kind_name, ok) =
            STORE_KEYS.iter().find(|(k, _, _)| *k == kind).copied().unwrap_or((kind, "?", &[]));
        self.allowed(key, kind_name, &s.keys(), ok)?;
        let at = s.kind.span();
        let max_key = format!("{key}.max_blob_size_bytes");
        let max = self.size(
            &s.max_blob_size_bytes,
            &max_key,
            BLOB_SIZE_MAX_BYTES_DEFAULT,
            CONFIG_BLOB_SIZE_MAX_BYTES_LIMIT,
        )?;
        Ok(match kind {
            StoreKind::Mem => StoreSpec::Mem { max_blob_size_bytes: max },
            StoreKind::Dir => {
                let path = self.path(self.required(&s.path, key, "path", kind_name, at)?);
                StoreSpec::Dir { path, max_blob_size_bytes: max }
            }
            StoreKind::Sector => StoreSpec::Sector(self.sector(key, &s.device, &s.socket, at)?),
            StoreKind::Postgres => {
                let url = self.required(&s.url, key, "url", kind_name, at)?;
                let namespace = s.namespace.as_ref().map_or(name, |n| n.get_ref()).to_owned();
                StoreSpec::Postgres {
                    target: self.pg(key, url, &s.connections_max)?,
                    namespace,
                    max_blob_size_bytes: max,
                }
            }
        })
    }

    fn cell(&self, key: &str, c: &RawCell, name: &str) -> Result<CellSpec, ConfigError> {
        let kind = *c.kind.get_ref();
        let (_, kind_name, ok) =
            CELL_KEYS.iter().find(|(k, _, _)| *k == kind).copied().unwrap_or((kind, "?", &[]));
        self.allowed(key, kind_name, &c.keys(), ok)?;
        let at = c.kind.span();
        let max_key = format!("{key}.max_size_bytes");
        let max = self.size(
            &c.max_size_bytes,
            &max_key,
            CELL_SIZE_MAX_BYTES_DEFAULT,
            CONFIG_CELL_SIZE_MAX_BYTES_LIMIT,
        )?;
        Ok(match kind {
            CellKind::Mem => CellSpec::Mem { max_size_bytes: max },
            CellKind::File => {
                let path = self.path(self.required(&c.path, key, "path", kind_name, at)?);
                CellSpec::File { path, max_size_bytes: max }
            }
            CellKind::Sector => {
                let id = c.id.as_ref().map_or(0, |i| *i.get_ref());
                if let Some(i) = c.id.as_ref().filter(|i| *i.get_ref() >= 1 << 63) {
                    return Err(self.err(
                        K::Invalid,
                        i.span(),
                        &format!("{key}.id"),
                        "must be below 2^63",
                    ));
                }
                CellSpec::Sector { target: self.sector(key, &c.device, &c.socket, at)?, id }
            }
            CellKind::Postgres => {
                let url = self.required(&c.url, key, "url", kind_name, at)?;
                let row = c.name.as_ref().map_or(name, |n| n.get_ref()).to_owned();
                CellSpec::Postgres {
                    target: self.pg(key, url, &c.connections_max)?,
                    name: row,
                    max_size_bytes: max,
                }
            }
            CellKind::Sealed => {
                let inner =
                    self.required(&c.inner, key, "inner", kind_name, at.clone())?.get_ref().clone();
                let secret_file =
                    self.path(self.required(&c.secret_file, key, "secret_file", kind_name, at)?);
                CellSpec::Sealed { inner, secret_file }
            }
        })
    }

    /// Every sealed cell's `inner` exists, is claimed by one sealed cell only, and no chain
    /// of sealed cells loops.
    fn sealed_chains(&self, raw: &RawConfig, cfg: &Config) -> Result<(), ConfigError> {
        let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, e) in &raw.cells {
            let Some(inner) = &e.get_ref().inner else { continue };
            let key = format!("cells.{name}.inner");
            if !cfg.cells.contains_key(inner.get_ref()) {
                return Err(self.err(
                    K::Dangling,
                    inner.span(),
                    &key,
                    format!("no cell named {:?}", inner.get_ref()),
                ));
            }
            if let Some(other) = claimed.insert(inner.get_ref(), name) {
                return Err(self.err(
                    K::Invalid,
                    inner.span(),
                    &key,
                    format!(
                        "cell {:?} is already the inner cell of {other:?}; a cell has one owner",
                        inner.get_ref()
                    ),
                ));
            }
            let mut cur = inner.get_ref().as_str();
            for _ in 0..=cfg.cells.len() {
                if cur == name {
                    return Err(self.err(
                        K::Invalid,
                        inner.span(),
                        &key,
                        "sealed cells form a cycle",
                    ));
                }
                match cfg.cells.get(cur).map(|c| &c.spec) {
                    Some(CellSpec::Sealed { inner, .. }) => cur = inner,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    fn volume(&self, key: &str, v: &RawVolume, cfg: &Config) -> Result<VolumeSpec, ConfigError> {
        if !cfg.cells.contains_key(v.cell.get_ref()) {
            return Err(self.err(
                K::Dangling,
                v.cell.span(),
                &format!("{key}.cell"),
                format!("no cell named {:?}", v.cell.get_ref()),
            ));
        }
        if !cfg.stores.contains_key(v.store.get_ref()) {
            return Err(self.err(
                K::Dangling,
                v.store.span(),
                &format!("{key}.store"),
                format!("no store named {:?}", v.store.get_ref()),
            ));
        }
        let kind = v.mode_lock.as_ref().map_or(ModeLockKind::Auto, |k| *k.get_ref());
        let mode_lock = self.mode_lock(key, v, kind, cfg)?;
        Ok(VolumeSpec {
            cell: v.cell.get_ref().clone(),
            store: v.store.get_ref().clone(),
            mode_lock_kind: kind,
            mode_lock,
        })
    }

    /// The PostgreSQL connection of the volume's (base) cell, else of its store.
    fn volume_pg(v: &RawVolume, cfg: &Config) -> Option<PgTarget> {
        let cell = cfg.cells.get(cfg.base_cell(v.cell.get_ref())).map(|e| &e.spec);
        if let Some(CellSpec::Postgres { target, .. }) = cell {
            return Some(target.clone());
        }
        match cfg.stores.get(v.store.get_ref()).map(|e| &e.spec) {
            Some(StoreSpec::Postgres { target, .. }) => Some(target.clone()),
            _ => None,
        }
    }

    fn mode_lock(
        &self,
        key: &str,
        v: &RawVolume,
        kind: ModeLockKind,
        cfg: &Config,
    ) -> Result<ModeLockSpec, ConfigError> {
        let at = v.mode_lock.as_ref().map_or(v.cell.span(), Spanned::span);
        let lock_key = format!("{key}.mode_lock");
        if let (Some(p), false) = (&v.mode_lock_path, kind == ModeLockKind::Dir) {
            return Err(self.err(
                K::UnknownKey,
                p.span(),
                &format!("{key}.mode_lock_path"),
                "only used with mode_lock = \"dir\"",
            ));
        }
        if let (Some(u), false) = (&v.mode_lock_url, kind == ModeLockKind::Postgres) {
            return Err(self.err(
                K::UnknownKey,
                u.span(),
                &format!("{key}.mode_lock_url"),
                "only used with mode_lock = \"postgres\"",
            ));
        }
        match kind {
            ModeLockKind::Auto => {
                Ok(Self::volume_pg(v, cfg).map_or(ModeLockSpec::Process, ModeLockSpec::Postgres))
            }
            ModeLockKind::Process => Ok(ModeLockSpec::Process),
            ModeLockKind::Dir => {
                let p = self.required(&v.mode_lock_path, &lock_key, "mode_lock_path", "dir", at)?;
                Ok(ModeLockSpec::Dir(self.path(p)))
            }
            ModeLockKind::Postgres => match (&v.mode_lock_url, Self::volume_pg(v, cfg)) {
                (Some(url), _) => Ok(ModeLockSpec::Postgres(self.pg(key, url, &None)?)),
                (None, Some(t)) => Ok(ModeLockSpec::Postgres(t)),
                (None, None) => Err(self.err(
                    K::Invalid,
                    at,
                    &lock_key,
                    "needs `mode_lock_url`: neither the cell nor the store is in PostgreSQL",
                )),
            },
        }
    }

    /// A store, and a (base) cell, belong to one volume: a cleanup of one volume would delete
    /// the blobs of another sharing its store, and two volumes on one cell are one volume.
    fn exclusive_use(&self, raw: &RawConfig, cfg: &Config) -> Result<(), ConfigError> {
        let mut stores: BTreeMap<&str, &str> = BTreeMap::new();
        let mut cells: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, e) in &raw.volumes {
            let v = e.get_ref();
            if let Some(other) = stores.insert(v.store.get_ref(), name) {
                return Err(self.err(K::Invalid, v.store.span(), &format!("volumes.{name}.store"), format!(
                    "store {:?} already belongs to volume {other:?} (a cleanup of one would delete the other's blobs)", v.store.get_ref()
                )));
            }
            let base = cfg.base_cell(v.cell.get_ref());
            if let Some(other) = cells.insert(base, name) {
                return Err(self.err(
                    K::Invalid,
                    v.cell.span(),
                    &format!("volumes.{name}.cell"),
                    format!("cell {base:?} already belongs to volume {other:?}"),
                ));
            }
        }
        Ok(())
    }

    fn share(&self, key: &str, s: &RawShare, cfg: &Config) -> Result<ShareSpec, ConfigError> {
        if !cfg.volumes.contains_key(s.volume.get_ref()) {
            return Err(self.err(
                K::Dangling,
                s.volume.span(),
                &format!("{key}.volume"),
                format!("no volume named {:?}", s.volume.get_ref()),
            ));
        }
        let mark = match &s.mark {
            None => CONFIG_MARK_DEFAULT.to_owned(),
            Some(m) => {
                // ADP-1: a share's mark is a mark of its volume's space, so a MARK-1 name of
                // one component (a volume space routes no `/`).
                let why = match crate::marks::MarkName::new(m.get_ref()) {
                    Ok(n) if n.is_simple() => None,
                    Ok(_) => Some("a share's mark is one component: no '/'".to_owned()),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(why) = why {
                    return Err(self.err(K::Invalid, m.span(), &format!("{key}.mark"), why));
                }
                m.get_ref().clone()
            }
        };
        let adapters = self.adapters(key, s)?;
        let read_only = s.read_only.as_ref().is_some_and(|r| *r.get_ref());
        let refresh_ms = match &s.refresh_ms {
            None => CONFIG_REFRESH_MS_DEFAULT,
            Some(r) if *r.get_ref() <= CONFIG_REFRESH_MS_LIMIT => *r.get_ref(),
            Some(r) => {
                let why = format!("must be at most {CONFIG_REFRESH_MS_LIMIT}, not {}", r.get_ref());
                return Err(self.err(K::Invalid, r.span(), &format!("{key}.refresh_ms"), why));
            }
        };
        let compression = match &s.compression {
            None => crate::fs::Compression::Zstd,
            Some(c) => crate::fs::Compression::parse(c.get_ref()).ok_or_else(|| {
                let why = format!("must be \"zstd\" or \"none\", not {:?}", c.get_ref());
                self.err(K::Invalid, c.span(), &format!("{key}.compression"), why)
            })?,
        };
        Ok(ShareSpec {
            volume: s.volume.get_ref().clone(),
            mark,
            adapters,
            read_only,
            refresh_ms,
            compression,
        })
    }

    fn adapters(&self, key: &str, s: &RawShare) -> Result<BTreeSet<Adapter>, ConfigError> {
        let Some(list) = &s.adapters else {
            return Ok(BTreeSet::from([Adapter::Nfs, Adapter::Fuse]));
        };
        let key = format!("{key}.adapters");
        if list.get_ref().is_empty() {
            return Err(self.err(
                K::Invalid,
                list.span(),
                &key,
                "enable at least one adapter: \"nfs\", \"fuse\"",
            ));
        }
        let mut out = BTreeSet::new();
        for a in list.get_ref() {
            if !out.insert(*a.get_ref()) {
                return Err(self.err(
                    K::Duplicate,
                    a.span(),
                    &key,
                    format!("{:?} is listed twice", a.get_ref().name()),
                ));
            }
        }
        Ok(out)
    }
}
