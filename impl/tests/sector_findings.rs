//! Regression tests for engine bugs the simulator found (`docs/sim.md`, "Findings"). Each test
//! replays the smallest scenario behind one finding, failed before its fix, and cites the
//! invariant it guards.

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
    let live = |e: &Engine<Dev>| e.stat().zones.iter().find(|s| s.zone == z).map(|s| s.live_records);
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
