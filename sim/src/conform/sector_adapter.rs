//! `cellar conform sector-adapter`: the Rust sector server (`cellar sector serve`'s engine
//! backend behind the same `Server`), optionally with a planted bug, so that `cellar conform
//! sector` is seen to catch a server that breaks durability.
//!
//! The planted bug `flushed-write-lost-on-crash` is a write-back cache in front of the engine:
//! every unconditional `Write` (flushed or not) is acknowledged at once with a made-up version
//! and kept in memory, reads and compares of its key are served from memory, and a background
//! thread applies the queue to the engine every [`WRITE_BACK_INTERVAL_MS`]; any other request
//! applies the queued writes of its keys first (a `Flush`, all of them). Seen from a live
//! client it behaves; a SIGKILL loses every acknowledged write still queued, flushed ones
//! included (SEC-2, PROTO-8).

use cellar::sector::proto::server::Backend;
use cellar::sector::proto::{ErrorReply, Expected, Record, Request, Response, WriteOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often the planted write-back cache applies its queue. Longer than the sector suite's
/// longest run before a SIGKILL (350 ms), so every round loses the flushed writes queued since
/// its last `Flush` whatever the machine's speed, and a failing seed's replay fails again. At
/// 150 ms a loaded CI machine once caught the bug at seed 0 and then replayed seed 0 clean
/// (2026-12-04): whether a write was still queued at the kill was a matter of timing.
pub const WRITE_BACK_INTERVAL_MS: u64 = 1_000;

/// Deliberately wrong behaviours of the sector adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectorBug {
    /// Writes are acknowledged from a memory queue and reach the engine later: lost on SIGKILL.
    FlushedWriteLostOnCrash,
}

impl SectorBug {
    /// Every planted bug with its name.
    pub const ALL: [(&'static str, SectorBug); 1] =
        [("flushed-write-lost-on-crash", SectorBug::FlushedWriteLostOnCrash)];

    /// The bug called `name`.
    pub fn from_name(name: &str) -> Option<SectorBug> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }
}

struct Queue {
    writes: Vec<(u64, Vec<u8>, WriteOptions)>,
    /// Key → (value, next, made-up version) of its newest queued write.
    latest: HashMap<u64, (Vec<u8>, Option<u64>, u64)>,
    next_version: u64,
}

/// The planted write-back cache (see the module docs) around any backend.
pub struct WriteBack<B: Backend> {
    inner: Arc<B>,
    queue: Arc<Mutex<Queue>>,
    stop: Arc<AtomicBool>,
}

/// Applies the queued writes (all of them, or only those of `keys`) to `inner`, in order.
fn drain<B: Backend>(inner: &B, queue: &Mutex<Queue>, keys: Option<&[u64]>) {
    let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
    let writes = std::mem::take(&mut q.writes);
    for (key, value, options) in writes {
        if keys.is_some_and(|k| !k.contains(&key)) {
            q.writes.push((key, value, options));
            continue;
        }
        let options = WriteOptions { flush: false, ..options };
        let _ = inner.handle(Request::Write { key, value, options });
        q.latest.remove(&key);
    }
    if keys.is_none() {
        let _ = inner.flush();
    }
}

fn keys_of(request: &Request) -> Option<Vec<u64>> {
    match request {
        Request::Read { key }
        | Request::Write { key, .. }
        | Request::Append { key, .. }
        | Request::Delete { key, .. }
        | Request::Compare { key, .. }
        | Request::Verify { key }
        | Request::Revert { key }
        | Request::Commit { key } => Some(vec![*key]),
        Request::Cas { items, .. } => Some(items.iter().map(|i| i.key).collect()),
        _ => None,
    }
}

impl<B: Backend> WriteBack<B> {
    /// Wraps `inner`, starting the thread that applies the queue.
    pub fn new(inner: B) -> Self {
        let inner = Arc::new(inner);
        let queue = Arc::new(Mutex::new(Queue {
            writes: Vec::new(),
            latest: HashMap::new(),
            next_version: 1 << 63,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (i, q, s) = (Arc::clone(&inner), Arc::clone(&queue), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(WRITE_BACK_INTERVAL_MS));
                drain(i.as_ref(), &q, None);
            }
        });
        Self { inner, queue, stop }
    }
}

impl<B: Backend> Drop for WriteBack<B> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<B: Backend> Backend for WriteBack<B> {
    fn handle(&self, request: Request) -> Response {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        match request {
            Request::Write { key, value, options } if options.expected.is_none() => {
                q.next_version += 1;
                let version = q.next_version;
                q.latest.insert(key, (value.clone(), options.next, version));
                q.writes.push((key, value, options));
                Response::Written { version }
            }
            Request::Read { key } if q.latest.contains_key(&key) => {
                let (value, next, version) = q.latest.get(&key).cloned().unwrap_or_default();
                Response::Record(Some(Record { key, version, value, next }))
            }
            Request::Compare { key, expected: Expected::Version(v) }
                if q.latest.contains_key(&key) =>
            {
                Response::Compared { matches: q.latest.get(&key).is_some_and(|l| l.2 == v) }
            }
            other => {
                drop(q);
                drain(self.inner.as_ref(), &self.queue, keys_of(&other).as_deref());
                self.inner.handle(other)
            }
        }
    }

    fn flush(&self) -> Result<(), ErrorReply> {
        drain(self.inner.as_ref(), &self.queue, None);
        self.inner.flush()
    }
}
