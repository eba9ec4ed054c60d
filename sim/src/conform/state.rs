//! The adapter's state requests (`specs/conform.md`, CONF-4): a file cell and a directory
//! store in `CELLAR_CONFORM_DIR`, shared by every adapter process of a run, the volume made of
//! them (values are hash lists, modes are `volume.md` §6's flock files in `DIR/modes/`), and the
//! planted bugs the cell, store and volume suites must catch.

use crate::conform::adapter::AdapterBug;
use crate::conform::kinds::{hex, unhex};
use cellar::Hash;
use cellar::storage::cell::{Cell, CellError, FileCell};
use cellar::storage::store::{DirStore, Store, StoreError};
use cellar::storage::volume::{
    self, FileModeLock, HashList, Mode, ModeGate, ModeHold, ModeLock, SyncOutcome, Volume,
    VolumeError,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The cell and store of one adapter process.
pub struct State {
    dir: PathBuf,
    cell: Option<FileCell>,
    store: Option<DirStore>,
    /// Planted bug `put-lost-on-restart`: blobs acknowledged but only held in memory.
    volatile: BTreeMap<Hash, Vec<u8>>,
    /// The mode taken by `volume.begin`, held until `volume.end` or the process dies.
    hold: Option<ModeHold>,
}

fn err(kind: &str, definite: bool, message: String) -> Value {
    json!({"ok": false, "error": {"kind": kind, "definite": definite, "message": message}})
}

fn cell_err(e: &CellError) -> Value {
    match e {
        CellError::TooLarge { .. } => err("too_large", true, e.to_string()),
        CellError::Corrupt(_) => err("corrupt", true, e.to_string()),
        _ => err("io", false, e.to_string()),
    }
}

fn store_err(e: &StoreError) -> Value {
    match e {
        StoreError::NotFound(_) => err("not_found", true, e.to_string()),
        StoreError::TooLarge { .. } => err("too_large", true, e.to_string()),
        StoreError::Corrupt { .. } => err("corrupt", true, e.to_string()),
        _ => err("io", false, e.to_string()),
    }
}

fn volume_err(e: &VolumeError) -> Value {
    match e {
        VolumeError::ModeConflict { .. } => err("mode_conflict", true, e.to_string()),
        VolumeError::MissingBlob(_) => err("missing_blob", true, e.to_string()),
        VolumeError::BadValue(_) => err("bad_value", true, e.to_string()),
        VolumeError::Cell(c) => cell_err(c),
        VolumeError::Store(s) => store_err(s),
        _ => err("io", false, e.to_string()),
    }
}

/// The volume of the directory `dir` (CONF-4): its file cell and directory store, with the
/// directory's cross-process mode lock, or (planted bug `cleanup-ignores-mode`) a lock of
/// this process alone.
fn open_volume(dir: &Path, modes: Option<Arc<dyn ModeLock>>) -> Result<Volume, Value> {
    let cell = FileCell::open(dir.join("cell")).map_err(|e| cell_err(&e))?;
    let store = DirStore::open(dir.join("store")).map_err(|e| store_err(&e))?;
    let modes: Arc<dyn ModeLock> = match modes {
        Some(m) => m,
        None => Arc::new(FileModeLock::open(dir.join("modes")).map_err(|e| volume_err(&e))?),
    };
    Ok(Volume::with_modes(Arc::new(cell), Arc::new(store), modes))
}

fn field_bytes(req: &Value, name: &str) -> Result<Vec<u8>, Value> {
    let s = req
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| err("bad_request", true, format!("no {name}")))?;
    unhex(s).map_err(|f| err("bad_request", true, f.message))
}

fn field_hash(req: &Value, name: &str) -> Result<Hash, Value> {
    let b = field_bytes(req, name)?;
    let a: [u8; 32] =
        b.try_into().map_err(|_| err("bad_request", true, format!("{name} is not 32 bytes")))?;
    Ok(Hash(a))
}

impl State {
    /// The state in `CELLAR_CONFORM_DIR` (opened on first use).
    pub fn from_env() -> Self {
        let dir =
            std::env::var_os("CELLAR_CONFORM_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        Self { dir, cell: None, store: None, volatile: BTreeMap::new(), hold: None }
    }

    fn cell(&mut self) -> Result<&FileCell, Value> {
        if self.cell.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| err("io", true, e.to_string()))?;
            self.cell = Some(FileCell::open(self.dir.join("cell")).map_err(|e| cell_err(&e))?);
        }
        self.cell.as_ref().ok_or_else(|| err("io", true, "no cell".into()))
    }

    fn store(&mut self) -> Result<&DirStore, Value> {
        if self.store.is_none() {
            self.store = Some(DirStore::open(self.dir.join("store")).map_err(|e| store_err(&e))?);
        }
        self.store.as_ref().ok_or_else(|| err("io", true, "no store".into()))
    }

    /// Answers a state request (`None`: not a state request). The caller adds the id.
    pub fn answer(&mut self, kind: &str, req: &Value, bugs: &[AdapterBug]) -> Option<Value> {
        let r = match kind {
            "cell.read" => self
                .cell()
                .and_then(|c| c.read().map_err(|e| cell_err(&e)))
                .map(|v| json!({"value": hex(&v)})),
            "cell.cas" => self.cas(req, bugs),
            "store.put" => self.put(req, bugs),
            "store.get" => self.get(req),
            "store.delete" => field_hash(req, "hash").and_then(|h| {
                self.volatile.remove(&h);
                self.store()?.delete(&h).map_err(|e| store_err(&e)).map(|()| json!({}))
            }),
            "store.list" => self.list(req),
            "volume.begin" => self.begin(req),
            "volume.end" => {
                self.hold = None;
                Ok(json!({}))
            }
            "volume.publish" => self.publish(req),
            "volume.sync" => self.sync(req),
            "volume.cleanup" => self.cleanup(bugs),
            _ => return None,
        };
        Some(r.map_or_else(
            |e| e,
            |mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.insert("ok".to_owned(), Value::Bool(true));
                }
                v
            },
        ))
    }

    fn cas(&mut self, req: &Value, bugs: &[AdapterBug]) -> Result<Value, Value> {
        let mut expected = field_bytes(req, "expected")?;
        let new = field_bytes(req, "new")?;
        let cell = self.cell()?;
        if bugs.contains(&AdapterBug::CasIgnoresExpected) {
            expected = cell.read().map_err(|e| cell_err(&e))?;
        }
        let o = cell.cas(&expected, &new).map_err(|e| cell_err(&e))?;
        Ok(json!({"swapped": o.swapped, "current": hex(&o.current)}))
    }

    fn put(&mut self, req: &Value, bugs: &[AdapterBug]) -> Result<Value, Value> {
        let data = field_bytes(req, "data")?;
        if bugs.contains(&AdapterBug::PutLostOnRestart) {
            let h = Hash::of(&data);
            self.volatile.insert(h, data);
            return Ok(json!({"hash": hex(&h.0)}));
        }
        let h = self.store()?.post(&data).map_err(|e| store_err(&e))?;
        Ok(json!({"hash": hex(&h.0)}))
    }

    fn get(&mut self, req: &Value) -> Result<Value, Value> {
        let h = field_hash(req, "hash")?;
        if let Some(d) = self.volatile.get(&h) {
            return Ok(json!({"data": hex(d)}));
        }
        let d = self.store()?.get(&h).map_err(|e| store_err(&e))?;
        Ok(json!({"data": hex(&d)}))
    }

    fn list(&mut self, req: &Value) -> Result<Value, Value> {
        let from = match req.get("from") {
            Some(Value::String(_)) => Bound::Included(field_hash(req, "from")?),
            _ => Bound::Unbounded,
        };
        let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(1024).min(1 << 20) as usize;
        let mut hashes =
            self.store()?.list((from, Bound::Unbounded), limit).map_err(|e| store_err(&e))?;
        hashes.extend(self.volatile.keys().copied());
        hashes.sort_unstable();
        hashes.dedup();
        hashes.truncate(limit);
        Ok(json!({"hashes": hashes.iter().map(|h| hex(&h.0)).collect::<Vec<_>>()}))
    }

    fn volume(&self) -> Result<Volume, Value> {
        std::fs::create_dir_all(&self.dir).map_err(|e| err("io", true, e.to_string()))?;
        open_volume(&self.dir, None)
    }

    fn begin(&mut self, req: &Value) -> Result<Value, Value> {
        let mode = match req.get("mode").and_then(Value::as_str) {
            Some("expand") => Mode::Expand,
            Some("contract") => Mode::Contract,
            _ => return Err(err("bad_request", true, "mode: expand or contract".into())),
        };
        if self.hold.is_some() {
            return Err(err("bad_request", true, "this process already holds a mode".into()));
        }
        let hold = self.volume()?.modes.begin(mode).map_err(|e| volume_err(&e))?;
        self.hold = Some(hold);
        Ok(json!({}))
    }

    fn publish(&mut self, req: &Value) -> Result<Value, Value> {
        let expected = field_bytes(req, "expected")?;
        let new = field_bytes(req, "new")?;
        let o = self.volume()?.publish(&expected, &new, &HashList).map_err(|e| volume_err(&e))?;
        Ok(json!({"swapped": o.swapped, "current": hex(&o.current)}))
    }

    fn sync(&mut self, req: &Value) -> Result<Value, Value> {
        let from = req
            .get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| err("bad_request", true, "no from".into()))?;
        let dst = self.volume()?;
        // The source is only read: no mode is taken on it (volume.md §4).
        let src = open_volume(Path::new(from), Some(Arc::new(ModeGate::new())))?;
        let decide = |s: &[u8], d: &[u8]| (s != d).then(|| s.to_vec());
        let outcome =
            volume::sync(&src, &dst, Some(&HashList), &decide).map_err(|e| volume_err(&e))?;
        Ok(json!({"published": matches!(outcome, SyncOutcome::Published { .. })}))
    }

    fn cleanup(&mut self, bugs: &[AdapterBug]) -> Result<Value, Value> {
        let vol = if bugs.contains(&AdapterBug::CleanupIgnoresMode) {
            // Planted: a mode lock of this process alone, blind to every other process.
            open_volume(&self.dir, Some(Arc::new(ModeGate::new())))?
        } else {
            self.volume()?
        };
        let o = volume::cleanup(&vol, &HashList).map_err(|e| volume_err(&e))?;
        Ok(json!({"deleted": o.blobs_deleted}))
    }
}
