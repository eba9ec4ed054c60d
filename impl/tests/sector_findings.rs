//! Regression tests for engine bugs the simulator found (`docs/sim.md`, "Findings"). Each test
//! replays the smallest scenario behind one finding, failed before its fix, and cites the
//! invariant it guards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{BlockDevice, CrashMode, FaultDevice, ReadOp, WriteOp};
use cellar::sector::*;

type Dev = FaultDevice<MemDevice>;

/// 16-sector zones, 12 zones.
const ZONE_SECTORS: u64 = 16;
const ZONES: u64 = 12;

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(ZONE_SECTORS as usize * SECTOR_SIZE_BYTES)
}

fn fresh() -> Engine<Dev> {
    Engine::format(FaultDevice::new(MemDevice::new(2 + ZONES * ZONE_SECTORS)), cfg()).unwrap()
}

/// A power cut that drops every unflushed write.
fn crash(e: Engine<Dev>) -> Engine<Dev> {
    let inner = e.into_device().crash(CrashMode::DropUnflushed).unwrap();
    Engine::open(FaultDevice::new(inner), cfg()).unwrap()
}

fn zone_of(sector: u32) -> u64 {
    (u64::from(sector) - 2) / ZONE_SECTORS
}

fn flushed() -> WriteOptions {
    WriteOptions { flush: true, ..Default::default() }
}

fn flip(e: &mut Engine<Dev>, sector: u32, offset: usize) {
    let at = sector as usize * SECTOR_SIZE_BYTES + offset;
    e.device_mut().inner_mut().image_mut()[at] ^= 0x01;
}

/// Runs compaction steps until `want` says stop (or the step budget runs out).
fn compact_until(e: &mut Engine<Dev>, want: impl Fn(&CompactProgress) -> bool) -> bool {
    for _ in 0..1000 {
        let p = e.compact_step().unwrap();
        if want(&p) {
            return true;
        }
    }
    false
}

/// Finding 1 (SEC-13; sim seed 9, debug build): the compactor meets the corrupt current record
/// of a key and abandons the zone, dropping the key from the index. The zone's live count must
/// drop with it, or the zone can never be freed honestly once the key is rewritten (the debug
/// assertion "a freed zone holds no live record" fired).
#[test]
fn abandoned_corrupt_record_is_retired_sec_13() {
    let mut e = fresh();
    let victim = e.write(1, &vec![7u8; 3000], flushed()).unwrap();
    // Fill the rest of the zone with dead records so it becomes a compaction victim.
    for n in 0..40u8 {
        let v = e.write(2, &vec![n; 3000], flushed()).unwrap();
        if zone_of(v.sector()) != zone_of(victim.sector()) {
            break;
        }
    }
    flip(&mut e, victim.sector(), 300);
    assert!(
        compact_until(&mut e, |p| matches!(p, CompactProgress::Abandoned { key: 1, .. })),
        "the compactor must meet the corrupt record"
    );
    assert!(matches!(e.read(1), Err(SectorError::Corrupt { key: 1, .. })));
    let z = zone_of(victim.sector()) as u32;
    let live =
        |e: &Engine<Dev>| e.stat().zones.iter().find(|s| s.zone == z).map(|s| s.live_records);
    assert_eq!(live(&e), Some(0), "SEC-13: the abandoned record is no longer live");
    // Rewriting the key lets the compactor free the zone; its accounting must agree.
    e.write(1, b"fresh", flushed()).unwrap();
    assert!(compact_until(&mut e, |p| *p == CompactProgress::Freed { zone: z }));
    assert_eq!(e.read(1).unwrap().unwrap().value, b"fresh");
    assert_eq!(e.read(2).unwrap().unwrap().value.len(), 3000);
}

/// Finding 2 (SEC-6; sim seeds 2253, 4243): a CAS that deletes a key recovery marked corrupt
/// must clear the mark, as a plain delete does: the key is absent afterwards, not corrupt.
#[test]
fn cas_delete_clears_the_corrupt_mark_sec_6() {
    let mut e = fresh();
    let v = e.write(5, &vec![3u8; 2000], flushed()).unwrap();
    // A later record carries a durable mark past key 5's record, so damage to it is corruption.
    e.write(6, b"after", flushed()).unwrap();
    flip(&mut e, v.sector(), 500);
    let mut e = crash(e);
    assert_eq!(e.recovery_report().corrupt_keys, vec![5]);
    assert!(matches!(e.read(5), Err(SectorError::Corrupt { key: 5, .. })));
    let del = CasOp { key: 5, expected: Expect::Any, new: CasNew::Delete };
    assert!(matches!(e.cas(&[del]).unwrap(), CasResult::Committed(_)));
    assert_eq!(e.read(5).unwrap(), None, "SEC-6: deleted, so no longer corrupt");
    assert_eq!(e.verify_all().unwrap(), vec![]);
    e.flush().unwrap();
    let mut e = crash(e);
    assert_eq!(e.read(5).unwrap(), None);
    assert_eq!(e.read(6).unwrap().unwrap().value, b"after");
}

/// Finding 3 (SEC-4, SEC-7; sim seeds 1268, 4908, …): an epoch handed out after a recovery
/// must never be handed out again. Here a zone opened after recovery loses its header in a
/// power cut while a later record of it lands; the next recovery must not reopen a zone with
/// the same epoch, or the landed record (read absent in between) comes back, and with a reused
/// seq it may even hide a newer acknowledged write.
#[test]
fn lost_zone_header_never_resurrects_landed_records_sec_7() {
    let mut e = fresh();
    e.write(1, b"base", flushed()).unwrap();
    let mut e = crash(e);
    // Both unflushed: key 9 fills the zone's first data sector, key 2 the next.
    let v9 = e.write(9, b"padding", WriteOptions::default()).unwrap();
    let v2 = e.write(2, b"lost", WriteOptions::default()).unwrap();
    assert_eq!(v2.sector(), v9.sector() + 1);
    // The power cut lands key 2's sector only (not the header, unless already durable, nor key 9).
    let mut sector = vec![0u8; SECTOR_SIZE_BYTES];
    let dev = e.device_mut();
    dev.read_batch(&mut [ReadOp { first_sector: u64::from(v2.sector()), buf: &mut sector }])
        .unwrap();
    let mut inner = e.into_device().crash(CrashMode::DropUnflushed).unwrap();
    let op = WriteOp { first_sector: u64::from(v2.sector()), data: &sector };
    inner.write_batch(&[op]).unwrap();
    let mut e = Engine::open(FaultDevice::new(inner), cfg()).unwrap();
    assert_eq!(e.read(2).unwrap(), None, "SEC-7: key 2 was never flushed");
    // Read absent; now a flushed write that reuses the freed slot must not revive key 2.
    let v3 = e.write(3, b"new", flushed()).unwrap();
    assert_ne!(v3.zone_epoch(), v2.zone_epoch(), "SEC-4: epochs are never reused");
    let mut e = crash(e);
    assert_eq!(e.read(2).unwrap(), None, "SEC-7: a lost write stays lost");
    assert_eq!(e.read(3).unwrap().unwrap().value, b"new");
    assert_eq!(e.read(1).unwrap().unwrap().value, b"base");
}

/// Finding 3, second path (SEC-4): the zone with the largest epoch is freed by compaction and
/// the engine restarts; the epochs handed out next must still exceed every epoch used before,
/// or a reopened zone could accept stale records its trimmed sectors still return.
#[test]
fn epochs_never_regress_when_the_newest_zone_is_freed_sec_4() {
    let mut e = crash(fresh());
    // The only zone in use (so the largest epoch), and all its records die.
    let newest = e.write(2, &vec![1u8; 3000], flushed()).unwrap();
    e.delete(2, flushed()).unwrap();
    let mut e = crash(e);
    let z = zone_of(newest.sector()) as u32;
    assert!(compact_until(&mut e, |p| *p == CompactProgress::Freed { zone: z }));
    let mut e = crash(e);
    let next = e.write(3, b"next", flushed()).unwrap();
    assert!(
        next.zone_epoch() > newest.zone_epoch(),
        "SEC-4: epoch {} after {} was used",
        next.zone_epoch(),
        newest.zone_epoch()
    );
}

/// SEC-4 with a damaged header: the zone holding the largest epoch has two bytes of its header
/// flipped (one is repaired, SEC-18), so recovery ignores it; its records still bound the next
/// epoch, or reopening that zone with the same epoch would make its old records current again.
#[test]
fn damaged_zone_header_still_bounds_the_next_epoch_sec_4() {
    let mut e = crash(fresh());
    let v = e.write(4, b"in a zone whose header will be damaged", flushed()).unwrap();
    let header = 2 + zone_of(v.sector()) * ZONE_SECTORS;
    flip(&mut e, header as u32, 20);
    flip(&mut e, header as u32, 5);
    let mut e = crash(e);
    assert_eq!(e.recovery_report().corrupt_zone_headers, vec![zone_of(v.sector()) as u32]);
    assert_eq!(e.read(4).unwrap(), None, "the damaged zone's records are ignored");
    let next = e.write(5, b"next", flushed()).unwrap();
    assert!(next.zone_epoch() > v.zone_epoch(), "SEC-4: epoch {} reused", next.zone_epoch());
    let mut e = crash(e);
    assert_eq!(e.read(4).unwrap(), None);
    assert_eq!(e.read(5).unwrap().unwrap().value, b"next");
}

/// SEC-18: one damaged byte of a zone header is repaired: the zone is reported and still read,
/// so its keys keep their newest values (before, the whole zone was ignored and older values
/// elsewhere served).
#[test]
fn zone_header_with_one_damaged_byte_is_reported_and_read_sec_18() {
    let mut e = crash(fresh());
    let v = e.write(4, b"in a zone whose header will be damaged", flushed()).unwrap();
    let header = 2 + zone_of(v.sector()) * ZONE_SECTORS;
    flip(&mut e, header as u32, 20);
    let mut e = crash(e);
    assert_eq!(e.recovery_report().corrupt_zone_headers, vec![zone_of(v.sector()) as u32]);
    assert_eq!(e.read(4).unwrap().unwrap().value, b"in a zone whose header will be damaged");
    let next = e.write(5, b"next", flushed()).unwrap();
    assert!(next.zone_epoch() > v.zone_epoch(), "SEC-4: epoch {} reused", next.zone_epoch());
}

/// Finding (fuzz target `recover_from_image`'s reopen check, 2026-12-03; specs/sector.md
/// §3.2): a zone header sector that reads back as zeros made its zone look never used. Its
/// flushed records were dropped without a report, and if it held the largest epoch, the next
/// zone opened got that epoch again (SEC-4), so at the recovery after that the old records
/// beyond the new head were read as current: a key the first recovery called absent came back.
/// Fixed: format blanks each zone's first data sector too, so a blank header over a record
/// naming that sector is a lost header: reported, and its records bound the next epoch.
#[test]
fn zeroed_zone_header_neither_hides_keys_nor_reuses_its_epoch_sec_4() {
    let (reported, first_view, again) = zeroed_zone_header_scenario();
    assert!(reported, "SEC-7: key 9's zone vanished without a report");
    assert_eq!(again, first_view, "SEC-4: key 9 reads differently once its epoch was reused");
}

/// The planted `sector:blank-header-is-fresh` (a blank header is a fresh zone, whatever its
/// first data sector holds) brings the finding back.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_blank_header_is_fresh_is_caught() {
    let _bug = cellar::bugs::plant("sector:blank-header-is-fresh").unwrap();
    let (reported, first_view, again) = zeroed_zone_header_scenario();
    assert!(!reported || again != first_view, "the planted bug went unnoticed");
}

type View = Result<Option<Vec<u8>>, String>;

/// Zeroes the header of the zone holding the newest epoch (with key 9 in it), opens, writes,
/// and opens again: returns whether the first open reported the zone, and key 9 as each open
/// read it.
fn zeroed_zone_header_scenario() -> (bool, View, View) {
    let mut e = Engine::format(MemDevice::new(2 + ZONES * ZONE_SECTORS), cfg()).unwrap();
    // Fill the first zone, then put key 9 and more into the second (the newest epoch).
    let mut k = 100;
    while e.stat().zones.len() < 2 {
        e.write(k, &[1; 3000], flushed()).unwrap();
        k += 1;
    }
    for key in [9, 10, 11] {
        e.write(key, &[9; 3000], flushed()).unwrap();
    }
    let head = e.stat().zones.iter().max_by_key(|z| z.epoch).unwrap().zone;
    let mut image = e.into_device().image().to_vec();
    let first = (2 + u64::from(head) * ZONE_SECTORS) as usize * SECTOR_SIZE_BYTES;
    image[first..first + SECTOR_SIZE_BYTES].fill(0);
    let mut e = Engine::open(MemDevice::from_image(image), cfg()).unwrap();
    let reported = e.recovery_report().corrupt_zone_headers == vec![head];
    e.write(1, b"x", flushed()).unwrap();
    let first_view = e.read(9).map(|r| r.map(|r| r.value)).map_err(|e| e.to_string());
    let image = e.into_device().image().to_vec();
    let mut again = Engine::open(MemDevice::from_image(image), cfg()).unwrap();
    let again = again.read(9).map(|r| r.map(|r| r.value)).map_err(|e| e.to_string());
    (reported, first_view, again)
}

/// Recovery reads the zone headers in batches of 4096 zones (bounded memory on a large device):
/// a zone past the first batch is still read. Zone 0's sectors copied over zone 4097 carry a
/// header naming zone 0 there, so recovery must report zone 4097 (and only it).
#[test]
fn zone_headers_past_the_first_header_batch_are_read() {
    const Z: u64 = 8; // 32 KiB zones, the smallest
    let zones = 4100;
    let cfg = EngineConfig::default().zone_size_bytes(Z as usize * SECTOR_SIZE_BYTES);
    let mut e = Engine::format(MemDevice::new(2 + zones * Z), cfg.clone()).unwrap();
    e.write(1, b"in zone 0", flushed()).unwrap();
    let mut image = e.into_device().image().to_vec();
    let zone = |z: u64| (2 + z * Z) as usize * SECTOR_SIZE_BYTES;
    let copy = image[zone(0)..zone(1)].to_vec();
    image[zone(4097)..zone(4098)].copy_from_slice(&copy);
    let mut e = Engine::open(MemDevice::from_image(image), cfg).unwrap();
    assert_eq!(e.recovery_report().corrupt_zone_headers, vec![4097]);
    assert_eq!(e.read(1).unwrap().unwrap().value, b"in zone 0");
}
