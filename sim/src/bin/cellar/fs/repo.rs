//! A repository: a directory volume holding a space of marks (`specs/marks.md`), and the
//! names a user gives commits (`main`, `main~2`, `HEAD`, a ref).

use super::GotError;
use cellar::db::snapshot;
use cellar::env::{Clock, OsEntropy, SystemClock, random_array};
use cellar::fs::{Compression, Fs, FsPath, History};
use cellar::marks::{MarkInfo, MarkName, Space, VolumeSpace};
use cellar::storage::refs::Ref;
use cellar::storage::store::Store;
use cellar::storage::volume::{DirVolume, Volume, VolumeError};
use std::path::Path;
use std::sync::Arc;

/// The mark `HEAD` and a bare path refer to.
pub(super) const DEFAULT_MARK: &str = "main";

/// A repository: a `cellar init` directory, or a share of a `cellar.toml` (its volume's space,
/// the share's mark standing where `main` does for a directory).
pub(super) struct Repo {
    pub(super) volume: Volume,
    pub(super) space: VolumeSpace,
    /// What `HEAD` and a bare `/PATH` name.
    pub(super) default_mark: String,
    /// Decoded tree nodes of every file tree this command touches (KV-18).
    cache: cellar::db::kv::NodeCache,
    /// How new data blobs are stored (FS-27): the repository's setting.
    compression: Compression,
}

/// Milliseconds since the epoch, as commit times and creation times use them.
pub(super) fn now_ms() -> i64 {
    i64::try_from(SystemClock.now_ms()).unwrap_or(i64::MAX)
}

pub(super) fn now_ns() -> i64 {
    now_ms().saturating_mul(1_000_000)
}

pub(super) fn new_salt() -> [u8; 32] {
    random_array(&OsEntropy)
}

/// Parses a mark name given on the command line (`HEAD` is not one).
pub(super) fn mark_name(s: &str) -> Result<MarkName, GotError> {
    if s == "HEAD" {
        return Err(GotError::Usage("HEAD names main's head, not a mark".into()));
    }
    Ok(MarkName::new(s)?)
}

/// The file in a repository directory naming its [`Compression`] (`zstd` or `none`; absent in
/// repositories made before the setting: `zstd`).
const COMPRESSION_FILE: &str = "compression";

pub(super) fn init(dir: &Path, compression: &str) -> Result<(), GotError> {
    let c = parse_compression(&dir.join(COMPRESSION_FILE), compression)?;
    let vol = DirVolume::init(dir, Arc::new(OsEntropy))?;
    let path = dir.join(COMPRESSION_FILE);
    std::fs::write(&path, format!("{}\n", c.name())).map_err(|e| GotError::Setting {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let space = VolumeSpace::new(vol.volume.clone(), vol.secret.ref_salt());
    space.create(&mark_name(DEFAULT_MARK)?, new_salt(), now_ns())?;
    println!(
        "initialised repository {} (mark {DEFAULT_MARK}, compression {})",
        dir.display(),
        c.name()
    );
    Ok(())
}

fn parse_compression(path: &Path, word: &str) -> Result<Compression, GotError> {
    Compression::parse(word.trim()).ok_or_else(|| GotError::Setting {
        path: path.display().to_string(),
        detail: format!("unknown compression {:?} (zstd or none)", word.trim()),
    })
}

/// The repository's compression setting.
fn read_compression(dir: &Path) -> Result<Compression, GotError> {
    let path = dir.join(COMPRESSION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(word) => parse_compression(&path, &word),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Compression::Zstd),
        Err(e) => {
            Err(GotError::Setting { path: path.display().to_string(), detail: e.to_string() })
        }
    }
}

/// A commit named on the command line, with the history that decides whether its tree is kept.
pub(super) struct Resolved {
    pub(super) commit: Ref,
    pub(super) history: History,
}

impl Repo {
    pub(super) fn open(dir: &Path) -> Result<Self, GotError> {
        let vol = DirVolume::open(dir, Arc::new(OsEntropy))?;
        let compression = read_compression(dir)?;
        let space = VolumeSpace::new(vol.volume.clone(), vol.secret.ref_salt());
        // A repository written before marks existed holds main's head in its cell (MARK-3).
        if space.upgrade_bare_head(now_ns())? {
            eprintln!("cellar: upgraded {} to a repository of marks", vol.dir.display());
        }
        Ok(Self {
            volume: vol.volume,
            space,
            default_mark: DEFAULT_MARK.to_owned(),
            cache: cellar::db::kv::NodeCache::default(),
            compression,
        })
    }

    /// The share `share` of the configuration file `config`: what `cellar mount` and
    /// `cellar serve` read and commit (`specs/adapters.md` ADP-1).
    pub(super) fn open_share(config: &Path, share: &str) -> Result<Self, GotError> {
        let usage = |e: String| GotError::Usage(e);
        let reg = cellar::registry::Registry::open(config).map_err(|e| usage(e.to_string()))?;
        let spec = reg.share(share).ok_or_else(|| usage(format!("no share named {share:?}")))?;
        let space = reg
            .space(&spec.volume)
            .ok_or_else(|| usage(format!("volume {} is not open", spec.volume)))?;
        if space.upgrade_bare_head(now_ns())? {
            eprintln!("cellar: upgraded volume {} to a space of marks", spec.volume);
        }
        Ok(Self {
            volume: space.volume().clone(),
            space,
            default_mark: spec.mark.clone(),
            cache: cellar::db::kv::NodeCache::default(),
            compression: Compression::Zstd,
        })
    }

    pub(super) fn store(&self) -> &dyn Store {
        self.volume.store.as_ref()
    }

    /// File trees written under the mark's salt.
    pub(super) fn fs_for(&self, info: &MarkInfo) -> Fs<'_> {
        Fs::new(self.store(), info.salt).with_cache(&self.cache).with_compression(self.compression)
    }

    /// File trees written under the mark's salt into `store` (a [`cellar::storage::store::Deferring`]
    /// view of this repository's store, STORE-6).
    pub(super) fn fs_into<'a>(&'a self, store: &'a dyn Store, info: &MarkInfo) -> Fs<'a> {
        Fs::new(store, info.salt).with_cache(&self.cache).with_compression(self.compression)
    }

    /// File trees for reading only (reads need the refs, never the salt).
    pub(super) fn reader(&self) -> Fs<'_> {
        Fs::new(self.store(), [0; 32]).with_cache(&self.cache)
    }

    pub(super) fn mark(&self, name: &MarkName) -> Result<(MarkInfo, History), GotError> {
        let info = self.space.inspect(name)?;
        let history = History::decode(&info.value)?;
        Ok((info, history))
    }

    pub(super) fn mark_volume(&self, name: &MarkName) -> Result<Volume, GotError> {
        Ok(self.space.open(name, None)?)
    }

    /// Publishes `new` as the mark's value if it still holds `old` (one CAS of the space cell).
    /// The caller holds Expand.
    pub(super) fn publish(
        &self,
        name: &MarkName,
        old: &History,
        new: &History,
    ) -> Result<(), GotError> {
        let vol = self.mark_volume(name)?;
        let cas = vol.cell.cas(&old.encode(), &new.encode()).map_err(VolumeError::from)?;
        if cas.swapped { Ok(()) } else { Err(GotError::Raced(name.to_string())) }
    }

    /// [`Repo::publish`] after checking that every blob `new` reaches is present (VOL-3): for
    /// values that bring in another history (a merge), whose pruned trees may be missing.
    pub(super) fn publish_checked(
        &self,
        name: &MarkName,
        old: &History,
        new: &History,
    ) -> Result<(), GotError> {
        let vol = self.mark_volume(name)?;
        let cas = vol.publish(&old.encode(), &new.encode(), &cellar::fs::FsSnapshotReachability)?;
        if cas.swapped { Ok(()) } else { Err(GotError::Raced(name.to_string())) }
    }

    /// `REF`, `MARK`, `MARK~N`, `HEAD` (= main) or `HEAD~N`.
    pub(super) fn resolve(&self, spec: &str) -> Result<Resolved, GotError> {
        if spec.starts_with(cellar::storage::refs::REF_TEXT_PREFIX) {
            let commit = spec
                .parse::<Ref>()
                .map_err(|e| GotError::Usage(format!("bad commit {spec:?}: {e}")))?;
            return Ok(Resolved { commit, history: History::at(commit) });
        }
        let (name, back) = match spec.split_once('~') {
            None => (spec, 0),
            Some((n, k)) => (
                n,
                k.parse::<usize>().map_err(|_| {
                    GotError::Usage(format!("bad commit {spec:?}: ~ takes a count"))
                })?,
            ),
        };
        let name = if name == "HEAD" { self.default_mark.as_str() } else { name };
        let name = MarkName::new(name)?;
        let (_, history) = self.mark(&name)?;
        let head = history
            .head
            .ok_or_else(|| GotError::Usage(format!("mark {name} has no commits yet")))?;
        let hist = snapshot::history(self.store(), &head, back.saturating_add(1))?;
        let (commit, _) = hist
            .get(back)
            .ok_or_else(|| GotError::Usage(format!("{spec}: the history of {name} is shorter")))?;
        Ok(Resolved { commit: *commit, history })
    }

    /// The tree of a resolved commit (`Pruned` if retention dropped it).
    pub(super) fn tree(&self, r: &Resolved) -> Result<Ref, GotError> {
        Ok(self.reader().tree_in(&r.history, &r.commit)?)
    }

    /// `COMMIT:PATH`, `COMMIT` (its root) or `/PATH` (in main) → (tree, path).
    pub(super) fn target(&self, t: Option<&str>) -> Result<(Ref, FsPath), GotError> {
        let (spec, path) = match t {
            None => (self.default_mark.as_str(), "/"),
            Some(t) if t.starts_with('/') => (self.default_mark.as_str(), t),
            Some(t) => match t.rsplit_once(':') {
                // A ref holds ':' too: only a split whose right side is a path counts.
                Some((c, p)) if p.starts_with('/') => (c, p),
                _ => (t, "/"),
            },
        };
        let tree = self.tree(&self.resolve(spec)?)?;
        Ok((tree, FsPath::new(path)?))
    }
}
