//! SEC-17: misdirected writes are detected, never served. A test device sends chosen sector
//! writes to another sector of the zone: while running, the intended sector reads back its old
//! content and the target reads the new one; a power cycle reveals the truth (the write landed
//! where it was meant to), as the simulator's `SimSsd` models it. Each test names the planted
//! bug (`cellar::bugs`, feature `planted-bugs`) that makes it fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{BlockDevice, DeviceError, ReadOp, WriteOp};
use cellar::sector::*;
use std::collections::{HashMap, VecDeque};

/// 16-sector zones, 12 zones.
const ZONE_SECTORS: u64 = 16;
const ZONES: u64 = 12;

/// A device whose next written sectors go astray by the queued offsets. `truth` is what a power
/// cycle reveals; `ghost` what reads see meanwhile.
struct Astray {
    truth: MemDevice,
    ghost: HashMap<u64, Vec<u8>>,
    offsets: VecDeque<i64>,
}

impl Astray {
    fn new() -> Astray {
        Astray {
            truth: MemDevice::new(2 + ZONES * ZONE_SECTORS),
            ghost: HashMap::new(),
            offsets: VecDeque::new(),
        }
    }

    /// The next written sector lands `offset` sectors away from where it was meant to.
    fn misdirect_next(&mut self, offset: i64) {
        self.offsets.push_back(offset);
    }

    fn sector(&mut self, s: u64) -> Vec<u8> {
        let mut b = vec![0u8; SECTOR_SIZE_BYTES];
        self.truth.read_batch(&mut [ReadOp { first_sector: s, buf: &mut b }]).unwrap();
        b
    }

    fn power_cycle(mut self) -> Astray {
        self.ghost.clear();
        self.offsets.clear();
        self
    }
}

impl BlockDevice for Astray {
    fn sector_count(&self) -> u64 {
        self.truth.sector_count()
    }

    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        self.truth.read_batch(reads)?;
        for r in reads.iter_mut() {
            for (i, chunk) in r.buf.chunks_mut(SECTOR_SIZE_BYTES).enumerate() {
                if let Some(g) = self.ghost.get(&(r.first_sector + i as u64)) {
                    chunk.copy_from_slice(g);
                }
            }
        }
        Ok(())
    }

    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        for w in writes {
            for (i, chunk) in w.data.chunks(SECTOR_SIZE_BYTES).enumerate() {
                let s = w.first_sector + i as u64;
                // What the sector physically holds: an earlier write that went astray onto it
                // stays there when this one goes astray too.
                let old = self.ghost.remove(&s).unwrap_or_else(|| self.sector(s));
                self.truth.write_batch(&[WriteOp { first_sector: s, data: chunk }])?;
                if let Some(off) = self.offsets.pop_front() {
                    let t = s.checked_add_signed(off).unwrap();
                    self.ghost.insert(s, old);
                    self.ghost.insert(t, chunk.to_vec());
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.truth.flush()
    }

    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        for s in first_sector..first_sector + sector_count {
            self.ghost.remove(&s);
        }
        self.truth.trim(first_sector, sector_count)
    }
}

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(ZONE_SECTORS as usize * SECTOR_SIZE_BYTES)
}

fn fresh() -> Engine<Astray> {
    Engine::format(Astray::new(), cfg()).unwrap()
}

fn reopen(e: Engine<Astray>) -> Engine<Astray> {
    Engine::open(e.into_device().power_cycle(), cfg()).unwrap()
}

fn opts(compact: bool) -> WriteOptions {
    WriteOptions { compact, ..Default::default() }
}

fn value(e: &mut Engine<Astray>, key: Key) -> Result<Option<Vec<u8>>, SectorError> {
    e.read(key).map(|r| r.map(|r| r.value))
}

/// Two writes astray: key 1's first record lands one sector ahead, exactly where its second
/// record is then written, and that second write goes astray too. The sector the index names
/// now holds key 1's *older* record of the same epoch: only its address tells it apart.
pub fn check_misplaced_record() -> Result<(), String> {
    let mut e = fresh();
    e.write(0, &[0; 100], opts(false)).unwrap(); // the head's zone is open
    e.device_mut().misdirect_next(1);
    let v_old = e.write(1, b"old", opts(false)).unwrap();
    e.device_mut().misdirect_next(5);
    let v_new = e.write(1, b"new", opts(false)).unwrap();
    assert_eq!(
        v_new.sector(),
        v_old.sector() + 1,
        "the second record is written where the first landed"
    );
    match value(&mut e, 1) {
        Err(SectorError::Corrupt { key: 1, .. }) => {}
        other => return Err(format!("key 1 read {other:?}; expected Corrupt naming key 1")),
    }
    e.flush().unwrap();
    let mut e = reopen(e);
    match value(&mut e, 1) {
        Ok(Some(v)) if v == b"new" => Ok(()),
        other => Err(format!("after the power cycle key 1 read {other:?}")),
    }
}

#[test]
fn misplaced_record_is_never_served_sec_17() {
    check_misplaced_record().unwrap();
}

/// The last rewrite of a packing sector goes astray: the sector reads back its older form,
/// without key 2's record (SEC-9: it never holds two records of one key, so no older value of
/// key 2 can be there). Key 1, whose record is in both forms, still reads.
#[test]
fn stale_packing_sector_is_never_served_sec_17() {
    let mut e = fresh();
    e.write(1, b"one", opts(true)).unwrap();
    e.device_mut().misdirect_next(3);
    e.write(2, b"two", opts(true)).unwrap();
    assert_eq!(value(&mut e, 1).unwrap().as_deref(), Some(&b"one"[..]));
    assert!(matches!(value(&mut e, 2), Err(SectorError::Corrupt { key: 2, .. })));
    e.flush().unwrap();
    let mut e = reopen(e);
    assert_eq!(value(&mut e, 2).unwrap().as_deref(), Some(&b"two"[..]));
}

/// Key 3's record goes astray in a zone that then becomes mostly dead. Compaction cannot find
/// the live record, so it must leave the zone alone (`Damaged`) instead of freeing it: after
/// the power cycle the record is where it was written, and key 3 reads its value.
pub fn check_compaction_leaves_damaged_zone() -> Result<(), String> {
    let mut e = fresh();
    for k in 0..12u64 {
        if k == 3 {
            e.device_mut().misdirect_next(1);
        }
        e.write(k, &[k as u8; 200], opts(false)).unwrap();
    }
    e.flush().unwrap();
    for k in (0..12u64).filter(|k| *k != 3) {
        e.write(k, &[0xEE; 200], opts(false)).unwrap();
    }
    e.flush().unwrap();
    let mut damaged = false;
    for _ in 0..200 {
        match e.compact_step().unwrap() {
            CompactProgress::Idle => break,
            CompactProgress::Damaged { live: 1, .. } => damaged = true,
            _ => {}
        }
    }
    e.flush().unwrap();
    let mut e = reopen(e);
    match value(&mut e, 3) {
        Ok(Some(v)) if v == [3u8; 200] && damaged => Ok(()),
        Ok(Some(v)) if v == [3u8; 200] => Err("compaction never reported the zone".into()),
        other => Err(format!("key 3 read {other:?} after the power cycle (damaged: {damaged})")),
    }
}

#[test]
fn compaction_never_frees_a_zone_it_could_not_read_sec_17() {
    check_compaction_leaves_damaged_zone().unwrap();
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use cellar::bugs;

    #[test]
    fn ignore_record_address_is_caught() {
        let _bug = bugs::plant("sector:ignore-record-address").unwrap();
        assert!(check_misplaced_record().is_err(), "a stale record of the key was served");
    }

    #[test]
    fn drain_ignores_live_count_is_caught() {
        let _bug = bugs::plant("sector:drain-ignores-live-count").unwrap();
        let r = std::panic::catch_unwind(check_compaction_leaves_damaged_zone);
        assert!(!matches!(r, Ok(Ok(()))), "the zone was freed and nothing noticed");
    }
}
