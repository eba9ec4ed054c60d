//! A full device never wedges (SEC-16, `specs/sector.md` §5.5): the reported wedge (issue 16)
//! as a test. Format a 32 MiB device, write 4000-byte values until `DeviceFull`, delete every
//! key — every delete must succeed — flush, compact, and write again; with restarts and crashes
//! in between, with every delete flushed on its own (one tombstone per sector, so deletes have
//! to reclaim space themselves), and with deletes as CASes. Each scenario is a function
//! returning `Err` on a violation, so the planted-bug test at the bottom shows that switching
//! the reserve off (`sector:no-reserve`) is caught.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;

type Dev = FaultDevice<MemDevice>;

/// 32 MiB: 31 zones of 1 MiB (the default zone size).
const DEVICE_SECTORS: u64 = 32 * 1024 * 1024 / SECTOR_SIZE_BYTES as u64;
/// A "4 KB" value that fits one sector with its 80-byte header.
const VALUE_BYTES: usize = 4000;
/// Bound on compaction steps after the deletes (a few per zone).
const COMPACT_STEPS_MAX: u32 = 100_000;

/// How a scenario runs.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    /// Fill and drain this many times.
    rounds: u32,
    /// Restart (flush, reopen) after the fill, after the deletes and after compaction.
    restart: bool,
    /// Power cut (unflushed writes dropped) in the middle of the deletes, then reopen.
    crash: bool,
    /// Every delete carries the `flush` option (one tombstone per sector).
    flush_each_delete: bool,
    /// Delete with delete-only CASes of this many members (0: plain deletes).
    cas_members: usize,
}

fn value(key: u64, round: u32) -> Vec<u8> {
    let mut v = vec![(key as u8) ^ (round as u8); VALUE_BYTES];
    v[..8].copy_from_slice(&key.to_le_bytes());
    v[8..12].copy_from_slice(&round.to_le_bytes());
    v
}

fn fresh() -> Engine<Dev> {
    Engine::format(FaultDevice::new(MemDevice::new(DEVICE_SECTORS)), EngineConfig::default())
        .unwrap()
}

/// Flushes and reopens, as a server restart would.
fn restart(e: Engine<Dev>) -> Result<Engine<Dev>, String> {
    let mut e = e;
    e.flush().map_err(|err| format!("flush before restart: {err}"))?;
    reopen(e, CrashMode::DropUnflushed)
}

fn reopen(e: Engine<Dev>, mode: CrashMode) -> Result<Engine<Dev>, String> {
    let dev = e.into_device().crash(mode).map_err(|err| err.to_string())?;
    Engine::open(FaultDevice::new(dev), EngineConfig::default())
        .map_err(|err| format!("recovery of a full device failed: {err}"))
}

/// Writes `value(k, round)` to keys `0..` until `DeviceFull`; returns how many were written.
/// A refused write lets the compactor run until idle (as the background compactor would) and
/// is tried once more; the device is full when that does not help. Anything but `DeviceFull`
/// fails.
fn fill(e: &mut Engine<Dev>, round: u32) -> Result<u64, String> {
    for key in 0.. {
        let v = value(key, round);
        let mut r = e.write(key, &v, WriteOptions::default());
        if matches!(r, Err(SectorError::DeviceFull)) {
            e.compact_until_idle(COMPACT_STEPS_MAX).map_err(|err| format!("compaction: {err}"))?;
            r = e.write(key, &v, WriteOptions::default());
        }
        match r {
            Ok(_) => {}
            Err(SectorError::DeviceFull) => return Ok(key),
            Err(err) => return Err(format!("write {key} in round {round}: {err}")),
        }
    }
    unreachable!()
}

/// Deletes keys `keys` (all present); every one must succeed.
fn delete_all(e: &mut Engine<Dev>, keys: std::ops::Range<u64>, plan: Plan) -> Result<(), String> {
    let opts = WriteOptions { flush: plan.flush_each_delete, ..WriteOptions::default() };
    if plan.cas_members == 0 {
        for key in keys {
            match e.delete(key, opts) {
                Ok(true) => {}
                Ok(false) => return Err(format!("delete {key}: key was absent")),
                Err(err) => return Err(format!("delete {key} refused: {err}; {}", free(e))),
            }
        }
        return Ok(());
    }
    let keys: Vec<u64> = keys.collect();
    for group in keys.chunks(plan.cas_members) {
        let ops: Vec<CasOp> = group
            .iter()
            .map(|k| CasOp { key: *k, expected: Expect::Any, new: CasNew::Delete })
            .collect();
        match e.cas(&ops) {
            Ok(CasResult::Committed(_)) => {}
            other => {
                return Err(format!("cas delete of {group:?} refused: {other:?}; {}", free(e)));
            }
        }
        if plan.flush_each_delete {
            e.flush().map_err(|err| err.to_string())?;
        }
    }
    Ok(())
}

fn free(e: &Engine<Dev>) -> String {
    let st = e.stat();
    format!("{} keys, {} free zones", st.keys, st.free_zones)
}

/// A growing operation on a full device is refused with `DeviceFull` and writes nothing.
fn growing_refused(e: &mut Engine<Dev>, n: u64, round: u32) -> Result<(), String> {
    let put = CasOp { key: n, expected: Expect::Absent, new: CasNew::Put(value(n, round)) };
    match e.cas(&[put]) {
        Err(SectorError::DeviceFull) => {}
        other => return Err(format!("growing cas on a full device: {other:?}")),
    }
    match e.append(0, b"more", WriteOptions::default()) {
        Err(SectorError::DeviceFull) => {}
        other => return Err(format!("append on a full device: {other:?}")),
    }
    let r = e.read(n).map_err(|err| err.to_string())?;
    let first = e.read(0).map_err(|err| err.to_string())?.map(|r| r.value);
    if r.is_some() || first != Some(value(0, round)) {
        return Err("a refused operation left something behind".into());
    }
    Ok(())
}

/// Runs `plan`; returns the number of values each round's fill took.
fn scenario(plan: Plan) -> Result<Vec<u64>, String> {
    let mut e = fresh();
    let mut fills = Vec::new();
    for round in 0..plan.rounds {
        let n = fill(&mut e, round)?;
        if n == 0 {
            return Err(format!("round {round}: no write accepted; {}", free(&e)));
        }
        if let Some(first) = fills.first()
            && n * 100 < first * 95
        {
            return Err(format!("round {round}: only {n} values fit again (first fill: {first})"));
        }
        fills.push(n);
        growing_refused(&mut e, n, round)?;
        if plan.restart {
            e = restart(e)?;
        }
        if plan.crash {
            let half = n / 2;
            delete_all(&mut e, 0..half, plan)?;
            // Power cut: the unflushed deletes may be lost, then every key is deleted again.
            e = reopen(e, CrashMode::Torn { seed: u64::from(round) })?;
            let present: Vec<u64> = (0..n).filter(|k| e.version(*k).is_some()).collect();
            for k in present {
                delete_all(&mut e, k..k + 1, Plan { cas_members: 0, ..plan })?;
            }
        } else {
            delete_all(&mut e, 0..n, plan)?;
        }
        e.flush().map_err(|err| err.to_string())?;
        if plan.restart {
            e = restart(e)?;
        }
        if let Some(k) = (0..n).find(|k| e.version(*k).is_some()) {
            return Err(format!("round {round}: key {k} present after every key was deleted"));
        }
        e.compact_until_idle(COMPACT_STEPS_MAX).map_err(|err| format!("compaction: {err}"))?;
        if plan.restart {
            e = restart(e)?;
        }
    }
    Ok(fills)
}

fn check(plan: Plan) -> Vec<u64> {
    match scenario(plan) {
        Ok(fills) => fills,
        Err(err) => panic!("{plan:?}: {err}"),
    }
}

#[test]
fn full_device_deletes_succeed_and_writes_come_back_sec_16() {
    let fills = check(Plan { rounds: 3, ..Plan::default() });
    // 31 zones; ordinary writes leave the compactor's 2 and the deletes' 1 free: 28 zones of
    // 254 one-sector values (the header sector and the last sector, kept for the seal or a
    // flush's mark by SEC-18, hold none).
    assert_eq!(fills[0], 28 * 254, "capacity with the default reserve");
}

#[test]
fn full_device_survives_restarts_sec_16() {
    check(Plan { rounds: 2, restart: true, ..Plan::default() });
}

#[test]
fn flushed_deletes_reclaim_space_themselves_sec_16() {
    // One tombstone per sector: 7140 deletes need 28 zones of tombstones, far more than the
    // reserve; each delete that finds no room runs compaction steps first.
    check(Plan { rounds: 2, flush_each_delete: true, ..Plan::default() });
}

#[test]
fn cas_deletes_are_never_refused_sec_16() {
    check(Plan { rounds: 2, cas_members: 16, flush_each_delete: true, ..Plan::default() });
}

#[test]
fn full_device_survives_a_crash_in_the_middle_of_the_deletes_sec_16() {
    check(Plan { rounds: 2, crash: true, restart: true, ..Plan::default() });
}

#[test]
fn writes_are_refused_before_the_reserve_is_touched_sec_16() {
    let mut e = fresh();
    fill(&mut e, 0).unwrap();
    let st = e.stat();
    assert_eq!(
        st.free_zones,
        COMPACTION_RESERVE_ZONES_DEFAULT + DELETE_RESERVE_ZONES_DEFAULT,
        "ordinary writes stopped at the reserve"
    );
    assert_eq!(st.reserved_zones, st.free_zones);
    // Deleting one key writes a tombstone into the delete reserve; the compactor may then
    // free the zone that key lived in only once every other value of the zone is dead, so a
    // write after one delete is still refused ...
    assert!(e.delete(0, WriteOptions::default()).unwrap());
    assert!(matches!(e.write(0, b"x", WriteOptions::default()), Err(SectorError::DeviceFull)));
    // ... and after the zone's 255 values are deleted and compacted, writes are back.
    for k in 1..255 {
        assert!(e.delete(k, WriteOptions::default()).unwrap());
    }
    assert!(e.compact_until_idle(COMPACT_STEPS_MAX).unwrap() >= 1);
    e.write(0, b"x", WriteOptions::default()).unwrap();
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use cellar::bugs;

    #[test]
    fn no_reserve_is_caught() {
        let _bug = bugs::plant("sector:no-reserve").unwrap();
        let err = scenario(Plan { rounds: 1, ..Plan::default() })
            .expect_err("with the reserve switched off a full device must wedge");
        assert!(err.contains("refused"), "caught for the wrong reason: {err}");
    }
}
