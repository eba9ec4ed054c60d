//! Crash tests through the fault-injecting device (`specs/sector.md` §8 and the fault table):
//! drop unflushed writes, tear the last write at a sector boundary, land a random subset, flip
//! a byte — checking every recovery guarantee (SEC-6, SEC-7, SEC-8). Each checker is a function
//! returning `Err` on a violation, so the planted-bug tests at the bottom can show it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;
use std::collections::HashMap;

type Dev = FaultDevice<MemDevice>;
const KEYS: u64 = 6;

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(64 * 1024).compaction_dead_percent_min(30)
}

fn fresh() -> Engine<Dev> {
    Engine::format(FaultDevice::new(MemDevice::new(2 + 12 * 16)), cfg()).unwrap()
}

type Rng = cellar::env::SplitMix64;

/// A value that names its key and write: no two writes produce the same bytes.
fn value(key: u64, n: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&key.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    while v.len() < len {
        v.push((n as u8).wrapping_add(v.len() as u8));
    }
    v
}

fn write_retrying(
    e: &mut Engine<Dev>,
    key: u64,
    v: &[u8],
    opts: WriteOptions,
) -> Result<(), String> {
    match e.write(key, v, opts) {
        Err(SectorError::DeviceFull) => {
            e.compact_until_idle(10_000).map_err(|e| e.to_string())?;
            e.write(key, v, opts)
                .map(|_| ())
                .map_err(|err| format!("{err} after compaction: {:?}", e.stat()))
        }
        r => r.map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// Random writes/deletes/flushes/compaction, then a crash in `mode`; checks SEC-7: every key
/// holds its last flushed value or a value written after that flush (never anything else), and
/// with `DropUnflushed` exactly its last flushed value.
fn check_crash(seed: u64, mode: CrashMode) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = fresh();
    // Per key: last durable value, and values written since.
    let mut durable: HashMap<u64, Option<Vec<u8>>> = HashMap::new();
    let mut since: HashMap<u64, Vec<Option<Vec<u8>>>> = HashMap::new();
    let mut current: HashMap<u64, Option<Vec<u8>>> = HashMap::new();
    for n in 0..(40 + rng.below(80)) {
        let key = rng.below(KEYS);
        let flushes_before = e.device_mut().flush_count();
        let pre = current.clone();
        let flush = rng.below(5) == 0;
        let op = rng.below(10);
        match op {
            0 => {
                let o = WriteOptions { flush, ..Default::default() };
                if let Err(SectorError::DeviceFull) = e.delete(key, o) {
                    e.compact_until_idle(10_000).map_err(|e| e.to_string())?;
                    e.delete(key, o).map_err(|err| format!("delete: {err}"))?;
                }
                current.insert(key, None);
            }
            1 => e.flush().map_err(|e| e.to_string())?,
            2 => {
                e.compact_step().map_err(|e| format!("compact: {e}"))?;
            }
            _ => {
                let v = value(key, n, rng.below(9000) as usize);
                let compact = rng.below(3) == 0;
                write_retrying(
                    &mut e,
                    key,
                    &v,
                    WriteOptions { flush, compact, ..Default::default() },
                )?;
                current.insert(key, Some(v));
            }
        }
        // The API contract: a flush, or an op with `flush`, makes everything so far durable.
        // The engine may flush on its own too (compaction): then at least the state before
        // this op is durable.
        let asked = op == 1 || (flush && op != 2);
        if asked {
            durable = current.clone();
            since.clear();
        } else {
            if e.device_mut().flush_count() != flushes_before {
                durable = pre;
                since.clear();
            }
            if op == 0 || op >= 3 {
                since.entry(key).or_default().push(current.get(&key).cloned().flatten());
            }
        }
    }
    let dev = e.into_device().crash(mode).map_err(|e| e.to_string())?;
    let mut e = Engine::open(FaultDevice::new(dev), cfg()).map_err(|e| format!("open: {e}"))?;
    for key in 0..KEYS {
        let got = e.read(key).map_err(|e| format!("key {key}: {e}"))?.map(|r| r.value);
        let last_durable = durable.get(&key).cloned().flatten();
        let allowed = match mode {
            CrashMode::DropUnflushed => got == last_durable,
            _ => got == last_durable || since.get(&key).is_some_and(|vs| vs.contains(&got)),
        };
        if !allowed {
            return Err(format!(
                "seed {seed} {mode:?}: key {key} holds {:?}, last flushed {:?}",
                got.map(|v| v.len()),
                last_durable.map(|v| v.len())
            ));
        }
    }
    // SEC-7: reopening again changes nothing (the cut is permanent).
    let before: Vec<_> = (0..KEYS).map(|k| e.read(k).unwrap().map(|r| r.value)).collect();
    write_retrying(&mut e, 1000, b"after", WriteOptions { flush: true, ..Default::default() })
        .map_err(|err| format!("after recovery: {err}"))?;
    let mut e = Engine::open(
        FaultDevice::new(e.into_device().crash(CrashMode::DropUnflushed).unwrap()),
        cfg(),
    )
    .map_err(|e| e.to_string())?;
    let after: Vec<_> = (0..KEYS).map(|k| e.read(k).unwrap().map(|r| r.value)).collect();
    if before != after {
        return Err(format!("seed {seed} {mode:?}: a second recovery changed the state"));
    }
    Ok(())
}

/// SEC-8: CAS rounds each set all of keys 0..4 to the round number; after any crash all four
/// keys agree, and on a round at least as new as the last flushed one.
fn check_cas_atomic(seed: u64, mode: CrashMode) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = fresh();
    let mut flushed_round = 0u64;
    for round in 1..(10 + rng.below(20)) {
        let ops: Vec<CasOp> = (0..4u64)
            .map(|k| CasOp {
                key: k,
                expected: Expect::Any,
                new: CasNew::Put(value(k, round, 100 + rng.below(5000) as usize)),
            })
            .collect();
        match e.cas(&ops) {
            Ok(CasResult::Committed(_)) => {}
            Err(SectorError::DeviceFull) => {
                e.compact_until_idle(10_000).map_err(|e| e.to_string())?;
                e.cas(&ops).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("cas: {other:?}")),
        }
        if rng.below(4) == 0 {
            e.flush().map_err(|e| e.to_string())?;
            flushed_round = round;
        }
    }
    let dev = e.into_device().crash(mode).map_err(|e| e.to_string())?;
    let mut e = Engine::open(FaultDevice::new(dev), cfg()).map_err(|e| e.to_string())?;
    let rounds: Vec<u64> = (0..4u64)
        .map(|k| {
            e.read(k).unwrap().map_or(0, |r| u64::from_le_bytes(r.value[8..16].try_into().unwrap()))
        })
        .collect();
    if rounds.iter().any(|r| *r != rounds[0]) || rounds[0] < flushed_round {
        return Err(format!(
            "seed {seed} {mode:?}: CAS half applied or lost: rounds {rounds:?}, flushed {flushed_round}"
        ));
    }
    Ok(())
}

/// SEC-6: a flipped byte anywhere in the durable image never yields anything but the key's
/// newest value (neither bytes never written nor an older value); a damaged current record is
/// reported naming its key, at recovery or on read.
/// `headers`: the flip hits the first 80 bytes of a sector (a record header, or a zone header),
/// where a damaged byte hides whose record it was.
fn check_flip(seed: u64, while_running: bool, newest_only: bool) -> Result<(), String> {
    check_flip_in(seed, while_running, newest_only, false)
}

fn check_flip_in(
    seed: u64,
    while_running: bool,
    newest_only: bool,
    headers: bool,
) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = Engine::format(MemDevice::new(2 + 12 * 16), cfg()).unwrap();
    let mut history: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    for n in 0..30 {
        let key = rng.below(KEYS);
        let v = value(key, n, 1 + rng.below(6000) as usize);
        let compact = rng.below(3) == 0;
        e.write(key, &v, WriteOptions { compact, ..Default::default() })
            .map_err(|e| e.to_string())?;
        history.entry(key).or_default().push(v);
    }
    e.flush().map_err(|e| e.to_string())?;
    let used = e.stat().zones.iter().map(|z| (z.zone, z.used_sectors)).collect::<Vec<_>>();
    let (zone, sectors) = used[rng.below(used.len() as u64) as usize];
    let first = 2 + u64::from(zone) * 16;
    let at = (first + rng.below(u64::from(sectors))) as usize * SECTOR_SIZE_BYTES
        + rng.below(if headers { 80 } else { SECTOR_SIZE_BYTES as u64 }) as usize;
    let mut e = if while_running {
        e.device_mut().image_mut()[at] ^= 1 << rng.below(8);
        e
    } else {
        let mut dev = e.into_device();
        dev.image_mut()[at] ^= 1 << rng.below(8);
        Engine::open(dev, cfg()).map_err(|e| format!("open: {e}"))?
    };
    for key in 0..KEYS {
        // Everything was flushed before the flip, so the newest value is the only one a read
        // may return (SEC-6: "an older version of the key is never served in its place").
        let newest = history.get(&key).and_then(|h| h.last());
        match e.read(key) {
            Ok(Some(r)) if newest != Some(&r.value) => {
                let older = history.get(&key).is_some_and(|h| h.contains(&r.value));
                if older && !newest_only {
                    continue;
                }
                let what = if older { "an older value" } else { "bytes never written" };
                return Err(format!("seed {seed}: key {key} returned {what} (flip at {at})"));
            }
            Ok(None)
                if history.contains_key(&key) && !while_running && silent(e.recovery_report()) =>
            {
                return Err(format!("seed {seed}: key {key} vanished silently (flip at {at})"));
            }
            Err(SectorError::Corrupt { key: k, .. }) if k != key => {
                return Err(format!("wrong key named: {k} for {key}"));
            }
            Err(e) if !matches!(e, SectorError::Corrupt { .. }) => {
                return Err(format!("seed {seed}: key {key}: {e}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Seeds per crash test; `SECTOR_CRASH_SEEDS` raises it for longer runs.
fn seeds() -> u64 {
    std::env::var("SECTOR_CRASH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

/// Recovery reported no damage of any kind.
fn silent(r: &RecoveryReport) -> bool {
    r.corrupt_sectors.is_empty()
        && r.torn_tails.is_empty()
        && r.corrupt_zone_headers.is_empty()
        && r.corrupt_keys.is_empty()
}

#[test]
fn drop_unflushed_keeps_exactly_the_flushed_state() {
    for seed in 0..seeds() {
        check_crash(seed, CrashMode::DropUnflushed).unwrap();
    }
}

#[test]
fn torn_last_write_is_cut_and_nothing_flushed_is_lost() {
    for seed in 0..seeds() {
        check_crash(seed, CrashMode::Torn { seed: seed * 7 + 1 }).unwrap();
    }
}

#[test]
fn reordered_unflushed_sectors_never_break_a_guarantee() {
    for seed in 0..seeds() {
        check_crash(seed, CrashMode::Reordered { seed: seed * 13 + 5 }).unwrap();
    }
}

#[test]
fn cas_survives_every_crash_mode_atomically() {
    for seed in 0..seeds() {
        check_cas_atomic(seed, CrashMode::DropUnflushed).unwrap();
        check_cas_atomic(seed, CrashMode::Torn { seed }).unwrap();
        check_cas_atomic(seed, CrashMode::Reordered { seed }).unwrap();
    }
}

#[test]
fn flipped_byte_is_detected_at_recovery_and_on_read() {
    for seed in 0..seeds() * 2 {
        check_flip(seed, false, false).unwrap();
        check_flip(seed, true, true).unwrap();
    }
}

/// SEC-6 in full at rest: after a flip in the durable image and a recovery, no key may serve an
/// older value either. Needs SEC-18: the flush's mark, so damage in the last flushed batch is
/// corruption and not a torn tail, and the one-byte repair of record and zone headers, so a
/// damaged header still names its key (found 2026-12-03: 19 of 120 seeds served an older value
/// before; 0 of 10,000 since, `SECTOR_CRASH_SEEDS=5000`).
#[test]
fn flipped_byte_at_rest_never_serves_an_older_value_sec_6() {
    let failing: Vec<String> =
        (0..seeds() * 2).filter_map(|seed| check_flip(seed, false, true).err()).collect();
    assert!(failing.is_empty(), "{} seeds: {failing:#?}", failing.len());
    let failing: Vec<String> =
        (0..seeds() * 2).filter_map(|seed| check_flip_in(seed, false, true, true).err()).collect();
    assert!(failing.is_empty(), "{} seeds: {failing:#?}", failing.len());
}

#[test]
fn one_damaged_superblock_copy_is_survived_sec_3() {
    let mut e = Engine::format(MemDevice::new(2 + 4 * 16), cfg()).unwrap();
    e.write(1, b"x", WriteOptions { flush: true, ..Default::default() }).unwrap();
    let mut dev = e.into_device();
    dev.image_mut()[100] ^= 0xff;
    let mut e = Engine::open(dev, cfg()).unwrap();
    assert_eq!(e.recovery_report().superblock_copies_valid, 1);
    assert_eq!(e.read(1).unwrap().unwrap().value, b"x");
    let mut dev = e.into_device();
    dev.image_mut()[SECTOR_SIZE_BYTES + 100] ^= 0xff;
    assert!(matches!(Engine::open(dev, cfg()), Err(SectorError::NotFormatted(_))));
}

/// Planted bugs: each checker above must catch its bug for some seed.
#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use cellar::bugs;

    fn caught(name: &str, check: impl Fn(u64) -> Result<(), String>) {
        let _bug = bugs::plant(name).unwrap();
        // A checker's `Err`, or an engine assertion firing (SEC-13 accounting), both count.
        let failures = (0..seeds())
            .filter(|s| {
                !matches!(
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(*s))),
                    Ok(Ok(()))
                )
            })
            .count();
        assert!(failures > 0, "planted bug {name} went unnoticed");
    }

    #[test]
    fn ack_before_flush_is_caught() {
        caught("sector:ack-before-flush", |s| check_crash(s, CrashMode::DropUnflushed));
    }

    #[test]
    fn skip_crc_on_read_is_caught() {
        caught("sector:skip-crc-on-read", |s| check_flip(s, true, true));
    }

    #[test]
    fn cas_not_atomic_is_caught() {
        caught("sector:cas-not-atomic", |s| check_cas_atomic(s, CrashMode::Torn { seed: s }));
    }

    #[test]
    fn no_flush_mark_is_caught() {
        caught("sector:no-flush-mark", |s| check_flip(s, false, true));
    }

    #[test]
    fn no_header_repair_is_caught() {
        caught("sector:no-header-repair", |s| check_flip_in(s, false, true, true));
    }

    #[test]
    fn compactor_resurrects_is_caught() {
        caught("sector:compactor-resurrects", |_| super::resurrect_check());
    }
}

/// SEC-10: a key overwritten and a key deleted between the compactor's scan and its move stay
/// overwritten and deleted, also after recovery.
fn resurrect_check() -> Result<(), String> {
    let mut e = fresh();
    for k in 0..4u64 {
        e.write(k, b"old", WriteOptions::default()).map_err(|e| e.to_string())?;
    }
    for i in 0..14u64 {
        e.write(100, &i.to_le_bytes(), WriteOptions::default()).map_err(|e| e.to_string())?;
    }
    e.write(200, b"x", WriteOptions::default()).map_err(|e| e.to_string())?;
    e.compact_step().map_err(|e| e.to_string())?;
    e.write(0, b"new", WriteOptions::default()).map_err(|e| e.to_string())?;
    e.delete(1, WriteOptions::default()).map_err(|e| e.to_string())?;
    e.compact_until_idle(100).map_err(|e| e.to_string())?;
    // While running: a moved stale copy would now be what the index names (release builds have
    // no SEC-13 assertion to stop it first).
    let v0 = e.read(0).map_err(|e| e.to_string())?.map(|r| r.value);
    let v1 = e.read(1).map_err(|e| e.to_string())?.map(|r| r.value);
    if v0.as_deref() != Some(b"new".as_slice()) || v1.is_some() {
        return Err(format!("resurrected while running: key 0 = {v0:?}, key 1 = {v1:?}"));
    }
    e.flush().map_err(|e| e.to_string())?;
    let mut e = Engine::open(
        FaultDevice::new(e.into_device().crash(CrashMode::DropUnflushed).unwrap()),
        cfg(),
    )
    .map_err(|e| e.to_string())?;
    let v0 = e.read(0).map_err(|e| e.to_string())?.map(|r| r.value);
    let v1 = e.read(1).map_err(|e| e.to_string())?.map(|r| r.value);
    if v0.as_deref() != Some(b"new".as_slice()) || v1.is_some() {
        return Err(format!("resurrected: key 0 = {v0:?}, key 1 = {v1:?}"));
    }
    Ok(())
}

#[test]
fn compaction_never_resurrects_sec_10() {
    resurrect_check().unwrap();
}
