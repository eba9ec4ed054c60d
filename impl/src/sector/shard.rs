//! `ShardedEngine` (`specs/sector.md` §10): one single-threaded [`Engine`] per shard, each on
//! its own thread, requests through channels; key → shard by a fixed hash. The production shell
//! that spawns threads; the engines inside stay deterministic.
//!
//! A multi-key CAS is atomic only within one shard: a CAS whose keys map to different shards
//! is refused with `SectorError::InvalidArgument` (SEC-8 holds per shard).

use super::{
    BlockDevice, CasOp, CasResult, Engine, EngineStats, Key, Record, SectorError, Version,
    WriteOptions,
};
use std::sync::mpsc;

type Job<D> = Box<dyn FnOnce(&mut Engine<D>) + Send>;

/// Several engines, one thread each.
pub struct ShardedEngine<D: BlockDevice + 'static> {
    senders: Vec<mpsc::Sender<Job<D>>>,
    handles: Vec<std::thread::JoinHandle<Engine<D>>>,
}

impl<D: BlockDevice + 'static> std::fmt::Debug for ShardedEngine<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedEngine").field("shards", &self.senders.len()).finish()
    }
}

/// The shard of `key` among `shards` (SplitMix64 of the key, then multiply-shift).
pub fn shard_of(key: Key, shards: usize) -> usize {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((u128::from(z) * shards as u128) >> 64) as usize
}

impl<D: BlockDevice + 'static> ShardedEngine<D> {
    /// Starts one worker thread per engine. Between requests an idle worker runs compaction
    /// steps until its compactor is idle.
    pub fn new(engines: Vec<Engine<D>>) -> Result<ShardedEngine<D>, SectorError> {
        if engines.is_empty() {
            return Err(SectorError::InvalidArgument(
                "a sharded engine needs at least one shard".into(),
            ));
        }
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for mut engine in engines {
            let (tx, rx) = mpsc::channel::<Job<D>>();
            senders.push(tx);
            handles.push(std::thread::spawn(move || {
                let mut compacting = true;
                loop {
                    let job = match rx.try_recv() {
                        Ok(job) => job,
                        Err(mpsc::TryRecvError::Empty) if compacting => {
                            compacting = matches!(engine.compact_step(), Ok(p) if p != super::CompactProgress::Idle);
                            continue;
                        }
                        Err(mpsc::TryRecvError::Empty) => match rx.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        },
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    };
                    job(&mut engine);
                    compacting = true;
                }
                // A clean stop: flushed, and the checkpoint written (SEC-19).
                let _ = engine.checkpoint();
                engine
            }));
        }
        Ok(ShardedEngine { senders, handles })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.senders.len()
    }

    /// Runs `f` on shard `shard` and waits for its result.
    pub fn call_shard<R: Send + 'static>(
        &self,
        shard: usize,
        f: impl FnOnce(&mut Engine<D>) -> R + Send + 'static,
    ) -> Result<R, SectorError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let sender = self
            .senders
            .get(shard)
            .ok_or_else(|| SectorError::InvalidArgument(format!("no shard {shard}")))?;
        sender
            .send(Box::new(move |e| {
                let _ = tx.send(f(e));
            }))
            .map_err(|_| SectorError::Stopped(format!("shard {shard} stopped")))?;
        rx.recv().map_err(|_| SectorError::Stopped(format!("shard {shard} dropped the request")))
    }

    /// Runs `f` on the shard owning `key`.
    pub fn call<R: Send + 'static>(
        &self,
        key: Key,
        f: impl FnOnce(&mut Engine<D>) -> R + Send + 'static,
    ) -> Result<R, SectorError> {
        self.call_shard(shard_of(key, self.senders.len()), f)
    }

    /// [`Engine::read`] on the owning shard.
    pub fn read(&self, key: Key) -> Result<Option<Record>, SectorError> {
        self.call(key, move |e| e.read(key))?
    }

    /// [`Engine::write`] on the owning shard.
    pub fn write(
        &self,
        key: Key,
        value: Vec<u8>,
        opts: WriteOptions,
    ) -> Result<Version, SectorError> {
        self.call(key, move |e| e.write(key, &value, opts))?
    }

    /// [`Engine::delete`] on the owning shard.
    pub fn delete(&self, key: Key, opts: WriteOptions) -> Result<bool, SectorError> {
        self.call(key, move |e| e.delete(key, opts))?
    }

    /// [`Engine::cas`]; every key must live on the same shard.
    pub fn cas(&self, ops: Vec<CasOp>) -> Result<CasResult, SectorError> {
        let n = self.senders.len();
        let Some(first) = ops.first().map(|o| shard_of(o.key, n)) else {
            return Err(SectorError::InvalidArgument("empty cas".into()));
        };
        if ops.iter().any(|o| shard_of(o.key, n) != first) {
            return Err(SectorError::InvalidArgument("cas keys span several shards".into()));
        }
        self.call_shard(first, move |e| e.cas(&ops))?
    }

    /// Flushes every shard (group commit on each).
    pub fn flush(&self) -> Result<(), SectorError> {
        for s in 0..self.senders.len() {
            self.call_shard(s, |e| e.flush())??;
        }
        Ok(())
    }

    /// Statistics of every shard.
    pub fn stat(&self) -> Result<Vec<EngineStats>, SectorError> {
        (0..self.senders.len()).map(|s| self.call_shard(s, |e| e.stat())).collect()
    }

    /// Stops the workers (each flushes and writes its checkpoint, SEC-19) and returns the
    /// engines.
    pub fn shutdown(mut self) -> Result<Vec<Engine<D>>, SectorError> {
        self.senders.clear();
        std::mem::take(&mut self.handles)
            .into_iter()
            .map(|h| h.join().map_err(|_| SectorError::Stopped("shard thread panicked".into())))
            .collect()
    }
}

impl<D: BlockDevice + 'static> Drop for ShardedEngine<D> {
    fn drop(&mut self) {
        self.senders.clear();
        for h in std::mem::take(&mut self.handles) {
            let _ = h.join();
        }
    }
}
