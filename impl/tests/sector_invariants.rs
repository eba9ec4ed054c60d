//! Focused tests for sector-engine invariants that no other test pins down on its own
//! (`specs/sector.md`, "Where each invariant is checked"):
//! - the engine's I/O discipline, seen from the device by a watching wrapper: whole sectors
//!   only (SEC-1), superblocks last at format (SEC-3), a zone's header durable before any of
//!   its records (SEC-4), copies durable before a zone is freed and the free header durable
//!   before its sectors are trimmed (SEC-14), and no flushed data sector ever rewritten
//!   (SEC-15);
//! - two valid superblock copies that disagree are refused (SEC-3);
//! - versions are never reused, packed writes and compaction included (SEC-9);
//! - revert state does not survive a crash (SEC-12).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{BlockDevice, CrashMode, DeviceError, FaultDevice, ReadOp, WriteOp};
use cellar::sector::format::{Kind, RecordHeader};
use cellar::sector::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// 8-sector zones (the smallest allowed), so zones fill, seal and get compacted quickly.
const ZONE_SECTORS: u64 = (ZONE_SIZE_BYTES_MIN / SECTOR_SIZE_BYTES) as u64;
const ZONES: u64 = 24;
/// The two superblock copies come first (`specs/sector.md` §2).
const SUPERBLOCK_SECTORS: u64 = 2;

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(ZONE_SIZE_BYTES_MIN)
}

/// What the device last saw written to a zone's header sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Zeroed,
    InUse,
    Free,
    Other,
}

impl Header {
    fn of(sector: &[u8]) -> Header {
        match sector.get(..8) {
            Some(b"CELLZONE") => Header::InUse,
            Some(b"CELLFREE") => Header::Free,
            _ if sector.iter().all(|b| *b == 0) => Header::Zeroed,
            _ => Header::Other,
        }
    }
}

/// A device that checks every I/O the engine submits against the write discipline of
/// `specs/sector.md` and records each breach (it forwards the I/O either way).
struct Watch {
    inner: MemDevice,
    /// Sectors written since the last flush.
    pending: BTreeSet<u64>,
    /// Data sectors written and flushed, not trimmed since.
    durable: BTreeSet<u64>,
    /// Sectors whose newest content is a Mark record: the next record may overwrite them even
    /// once flushed (SEC-15's exception, SEC-18).
    marks: BTreeSet<u64>,
    /// Each zone header sector's last written content.
    headers: HashMap<u64, Header>,
    violations: Vec<String>,
    /// Writes to a sector already written since the last flush (the open packing sector).
    rewrites_unflushed: u64,
    flushes: u64,
    trims: u64,
    /// A superblock has been written: format is over.
    formatted: bool,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            inner: MemDevice::new(SUPERBLOCK_SECTORS + ZONES * ZONE_SECTORS),
            pending: BTreeSet::new(),
            durable: BTreeSet::new(),
            marks: BTreeSet::new(),
            headers: HashMap::new(),
            violations: Vec::new(),
            rewrites_unflushed: 0,
            flushes: 0,
            trims: 0,
            formatted: false,
        }
    }

    fn header_of(sector: u64) -> u64 {
        sector - (sector - SUPERBLOCK_SECTORS) % ZONE_SECTORS
    }

    fn is_header(sector: u64) -> bool {
        sector >= SUPERBLOCK_SECTORS && (sector - SUPERBLOCK_SECTORS).is_multiple_of(ZONE_SECTORS)
    }

    /// Format blanks each zone's first data sector with its header (SEC-3, §3): no record.
    fn is_format_blank(&self, sector: u64, data: &[u8]) -> bool {
        !self.formatted
            && sector >= SUPERBLOCK_SECTORS
            && Self::header_of(sector) + 1 == sector
            && data.iter().all(|b| *b == 0)
    }

    fn durable_header(&self, header: u64) -> Option<Header> {
        let h = self.headers.get(&header).copied()?;
        (!self.pending.contains(&header)).then_some(h)
    }

    /// Checks one write of a batch against the state before the batch.
    fn check_write(&mut self, op: &WriteOp<'_>) {
        let len = op.data.len();
        if len == 0 || !len.is_multiple_of(SECTOR_SIZE_BYTES) {
            self.violations.push(format!("SEC-1: write of {len} bytes at {}", op.first_sector));
            return;
        }
        for (i, data) in op.data.chunks(SECTOR_SIZE_BYTES).enumerate() {
            let s = op.first_sector + i as u64;
            if self.is_format_blank(s, data) {
                continue;
            }
            if s < SUPERBLOCK_SECTORS {
                let all_headers = self.headers.len() as u64 == ZONES;
                if !self.pending.is_empty() || !all_headers {
                    self.violations.push(format!(
                        "SEC-3: superblock {s} written before every zone header was flushed"
                    ));
                }
            } else if Self::is_header(s) {
                // A pending Mark (SEC-18) is no copy: it witnesses the flush that made them
                // durable.
                let copies = self.pending.iter().any(|p| !self.marks.contains(p));
                if Header::of(data) == Header::Free && copies {
                    self.violations.push(format!(
                        "SEC-14: zone header {s} freed while {:?} are not durable",
                        self.pending
                    ));
                }
            } else {
                if self.durable.contains(&s) && !self.marks.contains(&s) {
                    self.violations.push(format!("SEC-15: flushed sector {s} rewritten"));
                }
                let header = Self::header_of(s);
                if self.durable_header(header) != Some(Header::InUse) {
                    self.violations.push(format!(
                        "SEC-4: record at {s} written while its zone header is {:?} (durable: {})",
                        self.headers.get(&header),
                        !self.pending.contains(&header)
                    ));
                }
            }
        }
    }

    fn apply_write(&mut self, op: &WriteOp<'_>) {
        for (i, data) in op.data.chunks(SECTOR_SIZE_BYTES).enumerate() {
            let s = op.first_sector + i as u64;
            if s < SUPERBLOCK_SECTORS {
                self.formatted = true;
            }
            if self.is_format_blank(s, data) {
                continue;
            }
            if !self.pending.insert(s) {
                self.rewrites_unflushed += 1;
            }
            let mark = RecordHeader::decode(data).is_ok_and(|h| h.kind == Kind::Mark);
            if mark {
                self.marks.insert(s);
            } else if self.marks.remove(&s) {
                // A mark overwritten: the sector's content is new and unflushed again.
                self.durable.remove(&s);
            }
            if Self::is_header(s) {
                self.headers.insert(s, Header::of(data));
            }
        }
    }
}

impl BlockDevice for Watch {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        for r in reads.iter() {
            let len = r.buf.len();
            if len == 0 || !len.is_multiple_of(SECTOR_SIZE_BYTES) {
                self.violations.push(format!("SEC-1: read of {len} bytes at {}", r.first_sector));
            }
        }
        self.inner.read_batch(reads)
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        for w in writes {
            self.check_write(w);
        }
        for w in writes {
            self.apply_write(w);
        }
        self.inner.write_batch(writes)
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.flushes += 1;
        let pending = std::mem::take(&mut self.pending);
        self.durable.extend(
            pending.into_iter().filter(|s| *s >= SUPERBLOCK_SECTORS && !Self::is_header(*s)),
        );
        self.inner.flush()
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        self.trims += 1;
        let header = Self::header_of(first_sector);
        if self.durable_header(header) != Some(Header::Free) {
            self.violations.push(format!(
                "SEC-14: sectors {first_sector}..+{sector_count} trimmed while zone header \
                 {header} is {:?} (durable: {})",
                self.headers.get(&header),
                !self.pending.contains(&header)
            ));
        }
        for s in first_sector..first_sector + sector_count {
            self.durable.remove(&s);
            self.pending.remove(&s);
        }
        self.inner.trim(first_sector, sector_count)
    }
}

/// Splitmix64: a tiny deterministic generator for the workload.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Runs `f`; on `DeviceFull` compacts and tries once more. Other errors fail the test.
fn retry<T>(
    e: &mut Engine<Watch>,
    mut f: impl FnMut(&mut Engine<Watch>) -> Result<T, SectorError>,
) -> Option<T> {
    match f(e) {
        Ok(t) => Some(t),
        Err(SectorError::DeviceFull) => {
            e.compact_until_idle(1000).unwrap();
            match f(e) {
                Ok(t) => Some(t),
                Err(SectorError::DeviceFull) => None,
                Err(err) => panic!("{err}"),
            }
        }
        Err(err) => panic!("{err}"),
    }
}

/// One random operation of the I/O-discipline workload: packed and plain writes (some
/// multi-sector), deletes, revertible writes, CAS, flushes and compaction steps.
fn step(e: &mut Engine<Watch>, rng: &mut Rng) {
    const KEYS: u64 = 40;
    let key = rng.below(KEYS);
    let flush = rng.below(4) == 0;
    match rng.below(10) {
        0..=3 => {
            let value = vec![key as u8; 1 + rng.below(200) as usize];
            let opts = WriteOptions { compact: true, flush, ..WriteOptions::default() };
            retry(e, |e| e.write(key, &value, opts));
        }
        4 => {
            let value = vec![key as u8; 1 + rng.below(3 * SECTOR_SIZE_BYTES as u64) as usize];
            let opts = WriteOptions { flush, ..WriteOptions::default() };
            retry(e, |e| e.write(key, &value, opts));
        }
        5 => {
            retry(e, |e| e.delete(key, WriteOptions { flush, ..WriteOptions::default() }));
        }
        6 => {
            let opts = WriteOptions { revertible: true, compact: true, ..WriteOptions::default() };
            if retry(e, |e| e.write(key, b"maybe", opts)).is_some() {
                // Not retried: a revert that meets `DeviceFull` has already committed.
                match if rng.below(2) == 0 { e.commit(key) } else { e.revert(key) } {
                    Ok(()) | Err(SectorError::DeviceFull) => {}
                    Err(err) => panic!("{err}"),
                }
            }
        }
        7 => {
            let ops: Vec<CasOp> = [key, (key + 1) % KEYS]
                .iter()
                .map(|k| CasOp { key: *k, expected: Expect::Any, new: CasNew::Put(vec![7; 30]) })
                .collect();
            retry(e, |e| e.cas(&ops));
        }
        8 => e.flush().unwrap(),
        _ => {
            e.compact_step().unwrap();
        }
    }
}

#[test]
fn engine_io_follows_the_write_discipline_sec_1_3_4_14_15() {
    let mut rng = Rng(7);
    let mut e = Engine::format(Watch::new(), cfg()).unwrap();
    for round in 0..3 {
        for _ in 0..1500 {
            step(&mut e, &mut rng);
        }
        e.compact_until_idle(1000).unwrap();
        if round < 2 {
            // A clean reopen: recovery and the first zone it opens are watched too.
            e = Engine::open(e.into_device(), cfg()).unwrap();
        }
    }
    let w = e.device_mut();
    assert!(w.violations.is_empty(), "{} breaches, first: {}", w.violations.len(), w.violations[0]);
    // Not vacuous: packing sectors were rewritten before a flush, zones were freed and trimmed.
    assert!(w.rewrites_unflushed > 0, "no packing sector was ever rewritten");
    assert!(w.trims > 0 && w.flushes > 0, "trims {} flushes {}", w.trims, w.flushes);
}

#[test]
fn disagreeing_superblock_copies_are_refused_sec_3() {
    let sectors = SUPERBLOCK_SECTORS + ZONES * ZONE_SECTORS;
    let small = Engine::format(MemDevice::new(sectors), cfg()).unwrap().into_device();
    let big_zones = EngineConfig::default().zone_size_bytes(2 * ZONE_SIZE_BYTES_MIN);
    let big = Engine::format(MemDevice::new(sectors), big_zones).unwrap().into_device();
    // Copy 1 of the other geometry: both copies are valid, but they disagree.
    let mut image = small.image().to_vec();
    let copy1 = SECTOR_SIZE_BYTES..2 * SECTOR_SIZE_BYTES;
    image[copy1.clone()].copy_from_slice(&big.image()[copy1]);
    let r = Engine::open(MemDevice::from_image(image), cfg());
    assert!(matches!(r, Err(SectorError::NotFormatted(_))), "{r:?}");
    // Either copy alone is accepted (the copy field is not compared).
    let mut e = Engine::open(small, cfg()).unwrap();
    assert_eq!(e.recovery_report().superblock_copies_valid, 2);
    assert_eq!(e.read(1).unwrap(), None);
}

#[test]
fn versions_are_never_reused_sec_9() {
    let mut e =
        Engine::format(MemDevice::new(SUPERBLOCK_SECTORS + ZONES * ZONE_SECTORS), cfg()).unwrap();
    let packed = WriteOptions { compact: true, ..WriteOptions::default() };
    // Two packed writes of one key before a flush: same packing sector would mean same version.
    let v1 = e.write(7, b"a", packed).unwrap();
    let v2 = e.write(7, b"b", packed).unwrap();
    assert_ne!(v1, v2, "SEC-9: two writes of key 7 share a version");
    let stale = WriteOptions { expected: Expect::Version(v1), ..packed };
    assert!(matches!(e.write(7, b"c", stale), Err(SectorError::VersionMismatch { .. })));
    let cas = [CasOp { key: 7, expected: Expect::Version(v1), new: CasNew::Delete }];
    assert!(matches!(e.cas(&cas).unwrap(), CasResult::Mismatch { index: 0, .. }));

    // Across overwrites, compaction moves and a reopen, every version a key shows is new for
    // that key (keys sharing a packing sector share versions; one key never repeats one).
    let mut seen: HashSet<(Key, Version)> = [(7, v1), (7, v2)].into();
    let mut last: HashMap<Key, Version> = [(7, v2)].into();
    let mut rng = Rng(9);
    let mut e = Some(e);
    let mut moves = 0u32;
    for round in 0..2 {
        let mut eng = e.take().unwrap();
        for i in 0..2000u64 {
            let key = rng.below(12);
            let opts = WriteOptions { compact: rng.below(2) == 0, ..WriteOptions::default() };
            let v = match eng.write(key, &i.to_le_bytes(), opts) {
                Ok(v) => v,
                Err(SectorError::DeviceFull) => {
                    eng.compact_until_idle(1000).unwrap();
                    eng.write(key, &i.to_le_bytes(), opts).unwrap()
                }
                Err(err) => panic!("{err}"),
            };
            assert!(seen.insert((key, v)), "SEC-9: version {v} of key {key} handed out twice");
            last.insert(key, v);
            if rng.below(8) == 0 {
                eng.compact_step().unwrap();
                for (k, old) in last.iter_mut() {
                    let now = eng.version(*k).unwrap();
                    if now != *old {
                        let fresh = seen.insert((*k, now));
                        assert!(fresh, "SEC-9: moved key {k} got an old version {now}");
                        assert!(!eng.compare(*k, *old), "SEC-10: compare after a move");
                        *old = now;
                        moves += 1;
                    }
                }
            }
        }
        eng.flush().unwrap();
        if round == 0 {
            eng = Engine::open(eng.into_device(), cfg()).unwrap();
        }
        e = Some(eng);
    }
    // The moved-key checks above ran: compaction moved live keys under the watch.
    assert!(moves >= 10, "compaction moved only {moves} keys: the SEC-9/SEC-10 checks are idle");
}

#[test]
fn revert_state_does_not_survive_a_crash_sec_12() {
    let dev = FaultDevice::new(MemDevice::new(SUPERBLOCK_SECTORS + ZONES * ZONE_SECTORS));
    let mut e = Engine::format(dev, cfg()).unwrap();
    let flushed = WriteOptions { flush: true, ..WriteOptions::default() };
    e.write(1, b"old", flushed).unwrap();
    e.write(1, b"new", WriteOptions { revertible: true, ..flushed }).unwrap();
    e.write(2, b"gone", WriteOptions { revertible: true, ..flushed }).unwrap();
    assert_eq!(e.read_previous(1).unwrap().unwrap().value, b"old");
    assert_eq!(e.read_previous(2).unwrap(), None);

    let inner = e.into_device().crash(CrashMode::DropUnflushed).unwrap();
    let mut e = Engine::open(FaultDevice::new(inner), cfg()).unwrap();
    // The newest values stand, and nothing is revertible any more.
    assert_eq!(e.read(1).unwrap().unwrap().value, b"new");
    assert_eq!(e.read(2).unwrap().unwrap().value, b"gone");
    for key in [1, 2] {
        assert!(matches!(e.read_previous(key), Err(SectorError::NotRevertible(k)) if k == key));
        assert!(matches!(e.revert(key), Err(SectorError::NotRevertible(k)) if k == key));
        assert!(matches!(e.commit(key), Err(SectorError::NotRevertible(k)) if k == key));
    }
}
