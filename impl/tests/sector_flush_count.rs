//! One device flush per engine flush (issue 13 item 4: "count the `fdatasync` calls per flush
//! and get them to one"; `specs/sector.md` §5.2). The only other flushes are the ones a zone
//! opening needs (SEC-4, header first: one per zone opened), so the count per batch is
//! `1 + zones opened`, whatever the batch size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cellar::sector::device::FaultDevice;
use cellar::sector::*;

const ZONE_SECTORS: u64 = 256;

fn engine(zones: u64) -> Engine<FaultDevice<MemDevice>> {
    let dev = FaultDevice::new(MemDevice::new(2 + zones * ZONE_SECTORS));
    let cfg = EngineConfig::default().zone_size_bytes(ZONE_SECTORS as usize * SECTOR_SIZE_BYTES);
    Engine::format(dev, cfg).unwrap()
}

fn flushes(e: &mut Engine<FaultDevice<MemDevice>>) -> u64 {
    e.device_mut().flush_count()
}

/// Zones in use (headers written), from the engine's own statistics.
fn zones_in_use(e: &Engine<FaultDevice<MemDevice>>) -> u64 {
    e.stat().zones.len() as u64
}

#[test]
fn a_durable_batch_costs_one_device_flush_plus_one_per_zone_opened() {
    for batch in [1_u64, 16, 256] {
        let mut e = engine(128);
        let value = vec![7u8; SECTOR_SIZE_BYTES];
        let (mut key, mut opened) = (0_u64, 0_u64);
        for _ in 0..40 {
            let (f0, z0) = (flushes(&mut e), zones_in_use(&e));
            for _ in 0..batch {
                e.write(key % 2_000, &value, WriteOptions::default()).unwrap();
                key += 1;
            }
            e.flush().unwrap();
            let zones = zones_in_use(&e) - z0;
            opened += zones;
            assert_eq!(
                flushes(&mut e) - f0,
                1 + zones,
                "batch of {batch}: one flush for the batch and one per zone opened ({zones})"
            );
        }
        assert!(batch == 1 || opened > 0, "batch of {batch} never opened a zone");
    }
}

#[test]
fn a_cas_and_a_write_with_the_flush_option_cost_one_device_flush() {
    let mut e = engine(16);
    e.write(1, b"warm", WriteOptions::default()).unwrap();
    e.flush().unwrap(); // the first write opened a zone
    let f0 = flushes(&mut e);
    let ops: Vec<CasOp> = (10..14)
        .map(|k| CasOp { key: k, expected: Expect::Absent, new: CasNew::Put(vec![1; 4096]) })
        .collect();
    assert!(matches!(e.cas(&ops).unwrap(), CasResult::Committed(_)));
    e.flush().unwrap();
    assert_eq!(flushes(&mut e) - f0, 1, "a 4-key CAS then flush");
    let f1 = flushes(&mut e);
    e.write(2, b"now", WriteOptions { flush: true, ..WriteOptions::default() }).unwrap();
    assert_eq!(flushes(&mut e) - f1, 1, "a write with the flush option");
    let f2 = flushes(&mut e);
    e.flush().unwrap();
    assert_eq!(flushes(&mut e) - f2, 1, "a flush with nothing new still syncs once, no more");
}
