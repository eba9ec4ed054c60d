//! The sector engine as a [`KvBench`] contender: one [`Engine`] on a device file opened with
//! `open_best` (io_uring when the kernel allows it, else pread/pwrite), its compactor on a
//! background thread as in production (`cellar sector serve`).
//!
//! A write batch is N `write`s then one `flush` (the engine's group commit); a read batch is one
//! `read_range` whose device reads are submitted together; a CAS takes the 4 versions from the
//! in-memory index (no I/O: that is the engine's design) and commits one multi-key `cas`, then
//! flushes.

use crate::kv::KvBench;
use cellar::sector::{
    BackgroundCompactor, BlockDevice, CasNew, CasOp, CasResult, Engine, EngineConfig, Expect,
    KeyRange, SECTOR_SIZE_BYTES, WriteOptions,
};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Zone size the benchmark formats with: large enough for 1 MiB values.
pub const BENCH_ZONE_BYTES: usize = 4 * 1024 * 1024;

type Dev = Box<dyn BlockDevice>;

/// The engine contender.
pub struct SectorEngine {
    dir: PathBuf,
    path: PathBuf,
    engine: Option<Arc<Mutex<Engine<Dev>>>>,
    compactor: Option<BackgroundCompactor>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn config() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(BENCH_ZONE_BYTES)
}

impl SectorEngine {
    /// Formats a `size_bytes` device file in `dir`. With `compactor`, runs the background
    /// compactor (the write workloads need it; recovery measurements do not).
    pub fn create(dir: &Path, size_bytes: u64, compactor: bool) -> io::Result<Self> {
        let path = dir.join("engine.dev");
        let sectors = size_bytes / SECTOR_SIZE_BYTES as u64;
        let dev = cellar::sector::FileDevice::create(&path, sectors).map_err(other)?;
        drop(dev);
        let dev = cellar::sector::device::open_best(&path, false).map_err(other)?;
        let engine = Engine::format(dev, config()).map_err(other)?;
        let mut s = Self { dir: dir.to_path_buf(), path, engine: None, compactor: None };
        s.install(engine, compactor);
        Ok(s)
    }

    fn install(&mut self, engine: Engine<Dev>, compactor: bool) {
        let engine = Arc::new(Mutex::new(engine));
        if compactor {
            self.compactor = Some(BackgroundCompactor::spawn(Arc::clone(&engine)));
        }
        self.engine = Some(engine);
    }

    fn engine(&self) -> io::Result<MutexGuard<'_, Engine<Dev>>> {
        let e = self.engine.as_ref().ok_or_else(|| other("engine closed"))?;
        Ok(e.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Bytes of RAM the index uses and the live key count.
    pub fn index_bytes_and_keys(&self) -> io::Result<(u64, u64)> {
        let s = self.engine()?.stat();
        Ok((s.index_bytes, s.keys))
    }
}

impl SectorEngine {
    fn close_and_open(&mut self, clean: bool) -> io::Result<u64> {
        let compactor = self.compactor.take();
        let had_compactor = compactor.is_some();
        if let Some(c) = compactor {
            c.stop().map_err(other)?;
        }
        if let Some(e) = self.engine.take() {
            let mut e = e.lock().unwrap_or_else(PoisonError::into_inner);
            if clean {
                e.checkpoint().map_err(other)?;
            } else {
                e.flush().map_err(other)?;
            }
        }
        let dev = cellar::sector::device::open_best(&self.path, false).map_err(other)?;
        let cfg = if clean { config() } else { config().ignore_checkpoint() };
        let engine = Engine::open(dev, cfg).map_err(other)?;
        if clean && engine.recovery_report().checkpoint.is_none() {
            return Err(other(format!("no checkpoint loaded: {:?}", engine.recovery_report())));
        }
        let keys = engine.stat().keys;
        self.install(engine, had_compactor);
        Ok(keys)
    }
}

impl KvBench for SectorEngine {
    fn name(&self) -> &'static str {
        "engine"
    }

    /// A write refused with `DeviceFull` while the background compactor lags (SEC-16: ordinary
    /// writes stop at the reserve; only the compactor and deletes reclaim) waits for it: the
    /// lock is released for a millisecond and the write tried again, for up to 10 s. The wait
    /// counts in the batch's time, as it would for a client.
    fn write_batch(&mut self, items: &[(u64, &[u8])]) -> io::Result<()> {
        let mut waited_ms = 0;
        for (key, value) in items {
            loop {
                // The guard is dropped at the end of this statement, before any wait.
                let written = self.engine()?.write(*key, value, WriteOptions::default());
                match written {
                    Err(cellar::sector::SectorError::DeviceFull)
                        if self.compactor.is_some() && waited_ms < 10_000 =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        waited_ms += 1;
                    }
                    r => {
                        r.map_err(other)?;
                        break;
                    }
                }
            }
        }
        self.engine()?.flush().map_err(other)
    }

    fn read_batch(&mut self, keys: &[u64]) -> io::Result<usize> {
        let mut e = self.engine()?;
        if let [key] = keys {
            return Ok(e.read(*key).map_err(other)?.map_or(0, |r| r.value.len()));
        }
        let ranges: Vec<KeyRange> = keys.iter().map(|k| KeyRange::One(*k)).collect();
        let records = e.read_range(&ranges).map_err(other)?;
        Ok(records.iter().map(|(_, r)| r.value.len()).sum())
    }

    fn cas(&mut self, keys: &[u64], value: &[u8]) -> io::Result<bool> {
        let mut e = self.engine()?;
        let ops: Vec<CasOp> = keys
            .iter()
            .map(|k| CasOp {
                key: *k,
                expected: e.version(*k).map_or(Expect::Absent, Expect::Version),
                new: CasNew::Put(value.to_vec()),
            })
            .collect();
        let applied = matches!(e.cas(&ops).map_err(other)?, CasResult::Committed(_));
        e.flush().map_err(other)?;
        Ok(applied)
    }

    /// A clean close (the checkpoint, SEC-19, as `cellar sector serve` writes on SIGTERM), then
    /// `open`, which loads it.
    fn reopen(&mut self) -> io::Result<u64> {
        self.close_and_open(true)
    }

    /// A flush, then `open` ignoring any checkpoint: the scan a crash recovery runs.
    fn reopen_after_crash(&mut self) -> io::Result<u64> {
        self.close_and_open(false)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}
