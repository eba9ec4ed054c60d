//! [`EngineBackend`]: the engine-facing half of the server. Maps protocol requests onto one
//! [`Engine`] and engine results onto replies, runs the engine's compactor on a background
//! thread, and turns flushed writes from many connections into group commits.
//!
//! Group commit (PROTO-11, serving PROTO-8 and SEC-2): every mutating request takes a
//! *ticket* while it still holds the engine lock, so tickets follow the engine's write order. A
//! flushed write (or a `Flush`) waits until the durable ticket reaches its own: the first waiter
//! becomes the leader, takes the engine lock, reads the newest ticket issued, flushes the device
//! once (without holding the engine lock while the device flushes: `Engine::flush_start`)
//! and publishes that ticket as durable; every write with a smaller ticket rides along. So
//! N concurrent flushed writes cost one `fdatasync`, not N, and no write is acknowledged as
//! durable before a device flush that started after it was written.
//!
//! Never returns data the engine reported corrupt (it becomes an `ErrorKind::Corrupt` reply
//! naming the key), never acknowledges a flushed write before the flush returned.

use super::server::Backend;
use super::{
    CasItem, CasReply, ErrorKind, ErrorReply, Expected, Key, KeyRange, Record, Request, Response,
    StatReply, WriteOptions, ZoneStat,
};
use crate::sector::{
    self, BackgroundCompactor, BlockDevice, CasNew, CasOp, CasResult, Engine, Expect, SectorError,
    Version,
};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Serves protocol requests from one engine. See the module docs.
pub struct EngineBackend<D: BlockDevice + 'static> {
    engine: Arc<Mutex<Engine<D>>>,
    commit: GroupCommit,
    compactor: Mutex<Option<BackgroundCompactor>>,
}

/// Planted bug `sector_proto:ack-before-group-flush`: flushed writes are acknowledged without
/// waiting for the group commit. Captured at construction (planted bugs are per thread, the
/// server calls the backend from its workers).
#[derive(Debug, Default)]
struct Planted {
    ack_before_flush: bool,
}

impl<D: BlockDevice + 'static> std::fmt::Debug for EngineBackend<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBackend").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct CommitState {
    /// Newest ticket handed out (one per mutating request, in engine order).
    issued: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A leader is flushing (or waiting for writers to finish before it flushes).
    flushing: bool,
    /// Mutating requests between entering [`EngineBackend::mutate`] and taking their ticket.
    writers: u64,
}

/// Most tickets a group-commit leader lets through while it waits for writers in progress, so
/// a steady stream of writers cannot postpone a flush forever.
pub const GROUP_COMMIT_TICKETS_MAX: u64 = 256;

#[derive(Debug, Default)]
struct GroupCommit {
    state: Mutex<CommitState>,
    changed: Condvar,
    planted: Planted,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupCommit {
    /// Announces a writer about to take the engine lock.
    fn enter(&self) {
        lock(&self.state).writers += 1;
    }

    /// Ends a writer; with `wrote`, takes a ticket. Call with the engine lock held, right after
    /// the engine call, so tickets follow engine order.
    fn leave(&self, wrote: bool) -> u64 {
        let mut s = lock(&self.state);
        s.writers = s.writers.saturating_sub(1);
        if wrote {
            s.issued += 1;
        }
        self.changed.notify_all();
        s.issued
    }

    fn newest(&self) -> u64 {
        lock(&self.state).issued
    }

    /// Returns once every ticket up to `ticket` is durable, flushing as leader if needed
    /// (PROTO-11).
    fn wait_durable<D: BlockDevice>(
        &self,
        engine: &Mutex<Engine<D>>,
        ticket: u64,
    ) -> Result<(), SectorError> {
        if self.planted.ack_before_flush {
            return Ok(()); // planted bug: breaks SEC-2 / PROTO-8
        }
        let mut s = lock(&self.state);
        loop {
            if s.durable >= ticket {
                return Ok(());
            }
            if !s.flushing {
                break;
            }
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.flushing = true;
        // Flushing holds the engine lock (the engine's flush takes `&mut self`), so writers
        // already on their way would queue behind it and each need a flush of their own. Let
        // them write first: they are quick (no flush), and then one flush covers them all.
        let start = s.issued;
        while s.writers > 0 && s.issued - start < GROUP_COMMIT_TICKETS_MAX {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        drop(s);
        // The device flushes without the engine lock, so reads (and writes that will need a
        // flush of their own) go on meanwhile (§5.2).
        let start = {
            let mut e = lock(engine);
            // Read under the engine lock: every ticket up to `target` has finished its write.
            let target = self.newest();
            e.flush_start().map(|s| (s, target))
        };
        let result = start.and_then(|(mut start, target)| {
            start.sync()?;
            lock(engine).flush_finish(start).map(|()| target)
        });
        let mut s = lock(&self.state);
        s.flushing = false;
        if let Ok(target) = result {
            debug_assert!(target >= ticket, "the leader's flush covers its own write");
            s.durable = s.durable.max(target);
        }
        self.changed.notify_all();
        result.map(|_| ())
    }
}

impl<D: BlockDevice + 'static> EngineBackend<D> {
    /// Serves `engine`, running its compactor on a background thread.
    pub fn new(engine: Engine<D>) -> Self {
        let engine = Arc::new(Mutex::new(engine));
        let compactor = BackgroundCompactor::spawn(Arc::clone(&engine));
        let backend = Self::on_shared(engine);
        *lock(&backend.compactor) = Some(compactor);
        backend
    }

    /// Serves an engine shared with a caller that runs its compaction itself: no thread is
    /// spawned, so the simulator can drive the backend (and step `compact_step` as a process
    /// of its own) from one thread and a seed. Called from one thread at a time, a flushed
    /// write is its own group-commit leader and never waits.
    pub fn on_shared(engine: Arc<Mutex<Engine<D>>>) -> Self {
        let planted = Planted {
            ack_before_flush: crate::bugs::active("sector_proto:ack-before-group-flush"),
        };
        let commit = GroupCommit { planted, ..GroupCommit::default() };
        Self { engine, commit, compactor: Mutex::new(None) }
    }

    /// Stops the compactor and returns the engine *without* flushing it, as a crash would
    /// leave it (tests). The server calls [`Backend::flush`] instead.
    pub fn into_engine_unflushed(self) -> Result<Engine<D>, SectorError> {
        if let Some(c) = lock(&self.compactor).take() {
            c.stop()?;
        }
        let engine = Arc::try_unwrap(self.engine)
            .map_err(|_| SectorError::Stopped("engine still shared".into()))?;
        Ok(engine.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs a mutating engine call, takes its ticket, and waits for durability if `flush`.
    fn mutate<T>(
        &self,
        flush: bool,
        f: impl FnOnce(&mut Engine<D>) -> Result<T, SectorError>,
    ) -> Result<T, SectorError> {
        self.commit.enter();
        let (out, ticket) = {
            let mut e = lock(&self.engine);
            let out = f(&mut e);
            // PROTO-11: the ticket is taken under the engine lock, so tickets follow engine
            // order and a flush covering ticket t covers every write before it.
            let ticket = self.commit.leave(out.is_ok());
            (out?, ticket)
        };
        if flush {
            // SEC-2, PROTO-8: a flushed write is acknowledged only once a device flush that
            // started after it covers its ticket.
            self.commit.wait_durable(&self.engine, ticket)?;
        }
        Ok(out)
    }

    fn execute(&self, request: Request) -> Result<Response, SectorError> {
        match request {
            Request::Read { key } => {
                let r = lock(&self.engine).read(key)?;
                Ok(Response::Record(r.map(|r| record(key, r))))
            }
            Request::ReadRange { ranges } => {
                let ranges: Vec<sector::KeyRange> = ranges.iter().map(engine_range).collect();
                let rs = lock(&self.engine).read_range(&ranges)?;
                Ok(Response::Records(rs.into_iter().map(|(k, r)| record(k, r)).collect()))
            }
            Request::ReadFollow { key, records_max } => {
                let rs = lock(&self.engine).read_follow(key, records_max as usize)?;
                Ok(Response::Records(rs.into_iter().map(|(k, r)| record(k, r)).collect()))
            }
            Request::Write { key, value, options } => {
                let opts = engine_options(&options);
                let v = self.mutate(options.flush, |e| e.write(key, &value, opts))?;
                Ok(Response::Written { version: v.0 })
            }
            Request::Append { key, value, options } => {
                let opts = engine_options(&options);
                let v = self.mutate(options.flush, |e| e.append(key, &value, opts))?;
                Ok(Response::Written { version: v.0 })
            }
            Request::Delete { key, expected, flush } => {
                let opts =
                    sector::WriteOptions { expected: expect(expected), ..Default::default() };
                let existed = self.mutate(flush, |e| e.delete(key, opts))?;
                Ok(Response::Deleted { existed })
            }
            Request::Compare { key, expected } => {
                let e = lock(&self.engine);
                let matches = match expected {
                    Expected::Absent => e.version(key).is_none(),
                    Expected::Version(v) => e.compare(key, Version(v)),
                };
                Ok(Response::Compared { matches })
            }
            Request::Cas { items, flush } => self.cas(&items, flush),
            other => self.execute_admin(other),
        }
    }

    fn cas(&self, items: &[CasItem], flush: bool) -> Result<Response, SectorError> {
        let ops: Vec<CasOp> = items
            .iter()
            .map(|i| CasOp {
                key: i.key,
                expected: expect(Some(i.expected)),
                new: i.new_value.clone().map_or(CasNew::Delete, CasNew::Put),
            })
            .collect();
        // A conflict writes nothing, but taking a ticket for it is harmless.
        match self.mutate(flush, |e| e.cas(&ops))? {
            CasResult::Committed(vs) => Ok(Response::Cas(CasReply::Applied {
                versions: vs.into_iter().map(|v| v.map(|v| v.0)).collect(),
            })),
            CasResult::Mismatch { index, current } => Ok(Response::Cas(CasReply::Conflict {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                key: items.get(index).map_or(0, |i| i.key),
                current: current.map(|v| v.0),
            })),
        }
    }

    fn execute_admin(&self, request: Request) -> Result<Response, SectorError> {
        match request {
            Request::Flush => {
                // Everything acknowledged before this request was sent has a ticket by now.
                let ticket = self.commit.newest();
                self.commit.wait_durable(&self.engine, ticket)?;
                Ok(Response::Flushed)
            }
            Request::Verify { key } => {
                let mut e = lock(&self.engine);
                if !e.verify(key)? {
                    return Ok(not_found(key));
                }
                match e.version(key) {
                    Some(v) => Ok(Response::Verified { version: v.0 }),
                    None => Ok(not_found(key)),
                }
            }
            Request::Revert { key } => {
                self.mutate(false, |e| e.revert(key))?;
                Ok(Response::Done)
            }
            Request::Commit { key } => {
                self.mutate(false, |e| e.commit(key))?;
                Ok(Response::Done)
            }
            Request::Stat => Ok(Response::Stat(stat_reply(&lock(&self.engine).stat()))),
            other => Ok(Response::Error(ErrorReply::new(
                ErrorKind::Unsupported,
                format!("request {other:?} is not supported by this server"),
            ))),
        }
    }
}

impl<D: BlockDevice + 'static> Backend for EngineBackend<D> {
    fn handle(&self, request: Request) -> Response {
        match self.execute(request) {
            Ok(r) => r,
            Err(e) => Response::Error(error_reply(&e)),
        }
    }

    /// Stops the compactor (so no relocation is left half-flushed), then flushes the engine.
    fn flush(&self) -> Result<(), ErrorReply> {
        if let Some(c) = lock(&self.compactor).take() {
            c.stop().map_err(|e| error_reply(&e))?;
        }
        lock(&self.engine).flush().map_err(|e| error_reply(&e))
    }

    /// Stops the compactor, then flushes and writes the engine's checkpoint (SEC-19), so the
    /// next `open` need not scan.
    fn shutdown(&self) -> Result<Option<String>, ErrorReply> {
        if let Some(c) = lock(&self.compactor).take() {
            c.stop().map_err(|e| error_reply(&e))?;
        }
        let outcome = lock(&self.engine).checkpoint().map_err(|e| error_reply(&e))?;
        Ok(Some(match outcome {
            sector::CheckpointOutcome::Written { epoch, zones, bytes } => {
                format!("checkpoint {epoch} written ({bytes} bytes in {zones} zones)")
            }
            sector::CheckpointOutcome::Skipped { reason } => format!("no checkpoint: {reason}"),
        }))
    }
}

fn not_found(key: Key) -> Response {
    Response::Error(ErrorReply::new(ErrorKind::NotFound, format!("key {key} not found")))
}

fn record(key: Key, r: sector::Record) -> Record {
    Record { key, version: r.version.0, value: r.value, next: r.next }
}

fn engine_range(r: &KeyRange) -> sector::KeyRange {
    if r.first == r.last {
        sector::KeyRange::One(r.first)
    } else {
        sector::KeyRange::Span { start: r.first, end: r.last }
    }
}

fn expect(e: Option<Expected>) -> Expect {
    match e {
        None => Expect::Any,
        Some(Expected::Absent) => Expect::Absent,
        Some(Expected::Version(v)) => Expect::Version(Version(v)),
    }
}

/// The engine's options; `flush` is handled by group commit, not by the engine.
fn engine_options(o: &WriteOptions) -> sector::WriteOptions {
    sector::WriteOptions {
        compressed: o.compressed,
        compact: o.compact,
        revertible: o.revertible,
        expected: expect(o.expected),
        flush: false,
        next: o.next,
    }
}

fn stat_reply(s: &sector::EngineStats) -> StatReply {
    StatReply {
        keys: s.keys,
        corrupt_keys: s.corrupt_keys,
        live_bytes: s.live_bytes_estimate,
        index_bytes: s.index_bytes,
        free_zones: s.free_zones,
        zones: s
            .zones
            .iter()
            .map(|z| ZoneStat {
                zone: z.zone,
                used_bytes: u64::from(z.used_sectors) * sector::SECTOR_SIZE_BYTES as u64,
                records: z.records,
                live_records: z.live_records,
                dead_percent: z.dead_percent,
            })
            .collect(),
    }
}

/// The reply for an engine error. Corruption stays distinct from I/O (SEC-6).
pub fn error_reply(e: &SectorError) -> ErrorReply {
    let kind = match e {
        SectorError::Device(_) => ErrorKind::Io,
        SectorError::Corrupt { .. } | SectorError::Decompress { .. } => ErrorKind::Corrupt,
        SectorError::TooLarge { .. }
        | SectorError::NotRevertible(_)
        | SectorError::InvalidArgument(_) => ErrorKind::InvalidRequest,
        SectorError::VersionMismatch { .. } => ErrorKind::VersionMismatch,
        SectorError::DeviceFull => ErrorKind::NoSpace,
        SectorError::Stopped(_) => ErrorKind::ShuttingDown,
        _ => ErrorKind::Internal,
    };
    ErrorReply::new(kind, e.to_string())
}
