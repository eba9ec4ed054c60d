//! Tests of [`EngineBackend`]: every request kind against a real engine on a fault-injecting
//! memory device, durability of flushed writes across a crash, and group commit under
//! concurrency.

use super::backend::EngineBackend;
use super::server::Backend;
use super::*;
use crate::sector::device::{CrashMode, FaultDevice};
use crate::sector::{Engine, EngineConfig, MemDevice};
use std::sync::Arc;

type Dev = FaultDevice<MemDevice>;

const DEVICE_SECTORS: u64 = 2 + 64 * 64;

fn config() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(64 * 4096)
}

fn backend() -> EngineBackend<Dev> {
    let dev = FaultDevice::new(MemDevice::new(DEVICE_SECTORS));
    EngineBackend::new(Engine::format(dev, config()).unwrap())
}

fn write(key: Key, value: &[u8], flush: bool) -> Request {
    let options = WriteOptions { flush, ..WriteOptions::default() };
    Request::Write { key, value: value.to_vec(), options }
}

fn version(r: Response) -> Version {
    match r {
        Response::Written { version } => version,
        other => panic!("{other:?}"),
    }
}

/// Crashes the backend's device (unflushed writes dropped) and reopens the engine.
fn crash_and_reopen(b: EngineBackend<Dev>) -> Engine<MemDevice> {
    let engine = b.into_engine_unflushed().unwrap();
    let mem = engine.into_device().crash(CrashMode::DropUnflushed).unwrap();
    Engine::open(mem, config()).unwrap()
}

#[test]
fn every_request_kind_maps_onto_the_engine() {
    let b = backend();
    let v1 = version(b.handle(write(1, b"one", false)));
    match b.handle(Request::Read { key: 1 }) {
        Response::Record(Some(r)) => assert_eq!((r.version, r.value.as_slice()), (v1, &b"one"[..])),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.handle(Request::Read { key: 2 }), Response::Record(None));
    let appended =
        Request::Append { key: 1, value: b"+".to_vec(), options: WriteOptions::default() };
    let v2 = version(b.handle(appended));
    assert_ne!(v1, v2);
    let compare = |expected| b.handle(Request::Compare { key: 1, expected });
    assert_eq!(compare(Expected::Version(v2)), Response::Compared { matches: true });
    assert_eq!(compare(Expected::Version(v1)), Response::Compared { matches: false });
    assert_eq!(compare(Expected::Absent), Response::Compared { matches: false });
    // A conditional write at a stale version is refused.
    let stale = WriteOptions { expected: Some(Expected::Version(v1)), ..WriteOptions::default() };
    let r = b.handle(Request::Write { key: 1, value: b"x".to_vec(), options: stale });
    assert!(matches!(r, Response::Error(ErrorReply { kind: ErrorKind::VersionMismatch, .. })));
    // Read-follow along next pointers.
    let linked = WriteOptions { next: Some(1), ..WriteOptions::default() };
    b.handle(Request::Write { key: 10, value: b"head".to_vec(), options: linked });
    match b.handle(Request::ReadFollow { key: 10, records_max: 8 }) {
        Response::Records(rs) => assert_eq!(rs.iter().map(|r| r.key).collect::<Vec<_>>(), [10, 1]),
        other => panic!("{other:?}"),
    }
    match b.handle(Request::ReadRange { ranges: vec![KeyRange { first: 0, last: 100 }] }) {
        Response::Records(rs) => assert_eq!(rs.iter().map(|r| r.key).collect::<Vec<_>>(), [1, 10]),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.handle(Request::Verify { key: 1 }), Response::Verified { version: v2 });
    assert!(matches!(
        b.handle(Request::Verify { key: 99 }),
        Response::Error(ErrorReply { kind: ErrorKind::NotFound, .. })
    ));
    let del = Request::Delete { key: 10, expected: None, flush: true };
    assert_eq!(b.handle(del), Response::Deleted { existed: true });
    match b.handle(Request::Stat) {
        Response::Stat(s) => {
            assert_eq!(s.keys, 1);
            assert!(!s.zones.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.handle(Request::Flush), Response::Flushed);
}

#[test]
fn multi_key_cas_all_or_nothing() {
    let b = backend();
    let v = version(b.handle(write(1, b"a", false)));
    let items = vec![
        CasItem { key: 1, expected: Expected::Version(v), new_value: Some(b"A".to_vec()) },
        CasItem { key: 2, expected: Expected::Absent, new_value: Some(b"B".to_vec()) },
    ];
    match b.handle(Request::Cas { items: items.clone(), flush: true }) {
        Response::Cas(CasReply::Applied { versions }) => assert_eq!(versions.len(), 2),
        other => panic!("{other:?}"),
    }
    let v1 = match b.handle(Request::Read { key: 1 }) {
        Response::Record(Some(r)) => r.version,
        other => panic!("{other:?}"),
    };
    // Same items again: key 1 moved on, nothing applies.
    match b.handle(Request::Cas { items, flush: true }) {
        Response::Cas(CasReply::Conflict { index: 0, key: 1, current: Some(_) }) => {}
        other => panic!("{other:?}"),
    }
    // Above, every member conflicts, so "nothing" is trivially all of it. Here the first
    // member's expectation holds and only the second fails: the first must not apply either.
    let items = vec![
        CasItem { key: 1, expected: Expected::Version(v1), new_value: Some(b"X".to_vec()) },
        CasItem { key: 2, expected: Expected::Absent, new_value: Some(b"Y".to_vec()) },
    ];
    match b.handle(Request::Cas { items, flush: true }) {
        Response::Cas(CasReply::Conflict { index: 1, key: 2, current: Some(_) }) => {}
        other => panic!("{other:?}"),
    }
    let mut e = crash_and_reopen(b);
    assert_eq!(e.read(1).unwrap().unwrap().value, b"A");
    assert_eq!(e.read(2).unwrap().unwrap().value, b"B");
}

/// SEC-2 / PROTO-8 through the backend: a flushed write, once acknowledged, survives a crash
/// that drops everything unflushed. Returns what went wrong, for the planted-bug test.
fn check_flushed_write_survives_crash() -> Result<(), String> {
    let b = backend();
    b.handle(write(5, b"durable", true));
    b.handle(write(6, b"maybe", false));
    let mut e = crash_and_reopen(b);
    match e.read(5) {
        Ok(Some(r)) if r.value == b"durable" => Ok(()),
        other => Err(format!("acknowledged flushed write lost: {other:?}")),
    }
}

#[test]
fn flushed_write_survives_crash() {
    check_flushed_write_survives_crash().unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_ack_before_group_flush_is_caught() {
    let _bug = crate::bugs::plant("sector_proto:ack-before-group-flush").unwrap();
    assert!(check_flushed_write_survives_crash().is_err());
}

/// A memory device that runs a hook before every flush (and hands out a syncer, if given one):
/// slow or gated flushes for the group-commit tests.
struct FlushHook {
    inner: FaultDevice<MemDevice>,
    on_flush: Box<dyn Fn() + Send>,
    syncer: Option<Arc<dyn crate::sector::DeviceSync>>,
}

impl FlushHook {
    fn new(on_flush: impl Fn() + Send + 'static) -> Self {
        let inner = FaultDevice::new(MemDevice::new(DEVICE_SECTORS));
        FlushHook { inner, on_flush: Box::new(on_flush), syncer: None }
    }
}

impl crate::sector::BlockDevice for FlushHook {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read_batch(
        &mut self,
        reads: &mut [crate::sector::ReadOp<'_>],
    ) -> Result<(), crate::sector::DeviceError> {
        self.inner.read_batch(reads)
    }
    fn write_batch(
        &mut self,
        writes: &[crate::sector::WriteOp<'_>],
    ) -> Result<(), crate::sector::DeviceError> {
        self.inner.write_batch(writes)
    }
    fn flush(&mut self) -> Result<(), crate::sector::DeviceError> {
        (self.on_flush)();
        self.inner.flush()
    }
    fn trim(&mut self, first: u64, count: u64) -> Result<(), crate::sector::DeviceError> {
        self.inner.trim(first, count)
    }
    fn syncer(&self) -> Option<Arc<dyn crate::sector::DeviceSync>> {
        self.syncer.clone()
    }
}

#[test]
fn concurrent_flushed_writes_share_flushes_group_commit() {
    const THREADS: u64 = 8;
    const WRITES: u64 = 10;
    let flushes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // A flush that takes a while and is counted, so concurrent flushed writes overlap.
    let counted = Arc::clone(&flushes);
    let dev = FlushHook::new(move || {
        std::thread::sleep(std::time::Duration::from_millis(5));
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let b = Arc::new(EngineBackend::new(Engine::format(dev, config()).unwrap()));
    let before = flushes.load(std::sync::atomic::Ordering::SeqCst);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let key = t * 1000 + i;
                    let r = b.handle(write(key, &key.to_le_bytes(), true));
                    assert!(matches!(r, Response::Written { .. }), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let used = flushes.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(used > 0);
    assert!(used * 2 <= THREADS * WRITES, "{used} flushes for {} flushed writes", THREADS * WRITES);
    // And every one of them is durable: crash, reopen, read back.
    let engine = Arc::try_unwrap(b).unwrap().into_engine_unflushed().unwrap();
    let mem = engine.into_device().inner.crash(CrashMode::DropUnflushed).unwrap();
    let mut e = Engine::open(mem, config()).unwrap();
    for t in 0..THREADS {
        for i in 0..WRITES {
            let key = t * 1000 + i;
            assert_eq!(e.read(key).unwrap().unwrap().value, key.to_le_bytes(), "key {key}");
        }
    }
}

#[test]
fn engine_errors_keep_their_kind() {
    let b = backend();
    let big = vec![0u8; 64 * 4096];
    let r = b.handle(write(1, &big, false));
    assert!(
        matches!(r, Response::Error(ErrorReply { kind: ErrorKind::InvalidRequest, .. })),
        "{r:?}"
    );
    let r = b.handle(Request::Commit { key: 1 });
    assert!(
        matches!(r, Response::Error(ErrorReply { kind: ErrorKind::InvalidRequest, .. })),
        "{r:?}"
    );
}

/// A device flush that waits while a gate is closed, and says when one has begun: the test below
/// puts it on both [`BlockDevice::flush`] and the syncer, so it holds whichever the backend uses.
#[derive(Debug, Default)]
struct Gate {
    closed: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    waiting: std::sync::atomic::AtomicU64,
}

impl Gate {
    fn pass(&self) {
        self.waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
        self.waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }
}

impl crate::sector::DeviceSync for Gate {
    fn sync(&self) -> Result<(), crate::sector::DeviceError> {
        self.pass();
        Ok(())
    }
}

/// §5.2: while a group commit waits for the device's flush, the engine lock is free: a read
/// is answered before the flush returns. (With the flush under the lock, the read waited for
/// it: a slow `fdatasync` stalled every reader.)
#[test]
fn reads_are_answered_while_the_device_flushes() {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;
    let gate = Arc::new(Gate::default());
    let flush_gate = Arc::clone(&gate);
    let mut dev = FlushHook::new(move || flush_gate.pass());
    dev.syncer = Some(Arc::clone(&gate) as Arc<dyn crate::sector::DeviceSync>);
    let b = Arc::new(EngineBackend::new(Engine::format(dev, config()).unwrap()));
    version(b.handle(write(1, b"one", false)));
    gate.set(true);
    let flusher = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || b.handle(Request::Flush))
    };
    while gate.waiting.load(SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || tx.send(b.handle(Request::Read { key: 1 })))
    };
    let read = rx.recv_timeout(Duration::from_secs(10));
    gate.set(false);
    assert!(
        matches!(read, Ok(Response::Record(Some(ref r))) if r.value == b"one"),
        "no read answered while the device flushed: {read:?}"
    );
    assert_eq!(flusher.join().unwrap(), Response::Flushed);
    reader.join().unwrap().ok();
}
