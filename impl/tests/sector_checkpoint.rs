//! The clean-shutdown checkpoint (`specs/sector.md` §8.1, SEC-19): a reopen loads it instead of
//! scanning and ends in the state the scan would rebuild; any change after it (a zone opened or
//! freed, a header damaged), a torn or damaged checkpoint, or a power cut at any point while it
//! is written makes `open` scan instead, and nothing acknowledged is lost either way. Each
//! checker returns `Err` on a violation, so the planted-bug test at the bottom shows it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;
use std::collections::BTreeMap;

type Dev = FaultDevice<MemDevice>;
type Rng = cellar::env::SplitMix64;
type Model = BTreeMap<u64, Option<Vec<u8>>>;
const KEYS: u64 = 40;

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(64 * 1024).compaction_dead_percent_min(30)
}

fn fresh(zones: u64) -> Engine<Dev> {
    Engine::format(FaultDevice::new(MemDevice::new(2 + zones * 16)), cfg()).unwrap()
}

fn value(key: u64, n: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&key.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    while v.len() < len {
        v.push((n as u8).wrapping_add(v.len() as u8));
    }
    v
}

/// A random mix of writes (packed, compressed, multi-sector, revertible), deletes, CASes,
/// flushes and compaction steps (some left mid-cycle), applied to the engine and the model.
fn workload(e: &mut Engine<Dev>, model: &mut Model, rng: &mut Rng, ops: u64) {
    for n in 0..ops {
        let key = rng.below(KEYS);
        let flush = rng.below(6) == 0;
        match rng.below(12) {
            0 | 1 => {
                let o = WriteOptions { flush, ..WriteOptions::default() };
                if e.delete(key, o).is_ok() {
                    model.insert(key, None);
                }
            }
            2 => {
                let (a, b) = (key, (key + 1 + rng.below(KEYS - 1)) % KEYS);
                let ops = vec![
                    CasOp { key: a, expected: Expect::Any, new: CasNew::Put(value(a, n, 100)) },
                    CasOp { key: b, expected: Expect::Any, new: CasNew::Delete },
                ];
                if let Ok(CasResult::Committed(_)) = e.cas(&ops) {
                    model.insert(a, Some(value(a, n, 100)));
                    model.insert(b, None);
                }
            }
            3 | 4 => {
                for _ in 0..rng.below(40) {
                    if e.compact_step().is_err() {
                        break;
                    }
                }
            }
            5 => e.flush().unwrap(),
            op => {
                let len = [20, 300, 2000, 4096, 9000][rng.below(5) as usize];
                let v = value(key, n, len);
                let o = WriteOptions {
                    compact: op == 6,
                    compressed: op == 7,
                    revertible: op == 8,
                    flush,
                    ..WriteOptions::default()
                };
                if e.write(key, &v, o).is_ok() {
                    model.insert(key, Some(v));
                }
            }
        }
    }
}

/// Every key reads as the model says.
fn reads_match(e: &mut Engine<Dev>, model: &Model, when: &str) -> Result<(), String> {
    for k in 0..KEYS {
        let got = e.read(k).map_err(|err| format!("{when}: key {k}: {err}"))?.map(|r| r.value);
        let want = model.get(&k).cloned().flatten();
        if got != want {
            return Err(format!(
                "{when}: key {k} reads {:?} bytes, the model has {:?}",
                got.map(|v| v.len()),
                want.map(|v| v.len())
            ));
        }
    }
    Ok(())
}

/// The durable image of a device nothing is pending on.
fn image(e: Engine<Dev>) -> Vec<u8> {
    e.into_device().crash(CrashMode::DropUnflushed).unwrap().image().to_vec()
}

fn open(img: &[u8], c: EngineConfig) -> Engine<Dev> {
    Engine::open(FaultDevice::new(MemDevice::from_image(img.to_vec())), c).unwrap()
}

/// SEC-19: after a clean shutdown, the checkpoint is loaded and the state equals the scan's
/// (every value, the zones' accounting, the free zones); both engines then behave alike.
fn check_clean_reopen(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut e = fresh(24);
    let mut model = Model::new();
    let ops = 60 + rng.below(200);
    workload(&mut e, &mut model, &mut rng, ops);
    let outcome = e.checkpoint().map_err(|err| format!("checkpoint: {err}"))?;
    let CheckpointOutcome::Written { .. } = outcome else {
        return Err(format!("seed {seed}: no checkpoint: {outcome:?}"));
    };
    let img = image(e);
    let mut loaded = open(&img, cfg());
    let mut scanned = open(&img, cfg().ignore_checkpoint());
    if loaded.recovery_report().checkpoint.is_none() {
        return Err(format!("seed {seed}: not loaded: {:?}", loaded.recovery_report()));
    }
    reads_match(&mut loaded, &model, "loaded")?;
    reads_match(&mut scanned, &model, "scanned")?;
    let (a, b) = (loaded.stat(), scanned.stat());
    if (a.keys, a.free_zones, a.corrupt_keys) != (b.keys, b.free_zones, b.corrupt_keys) {
        return Err(format!("seed {seed}: loaded {a:?}\nscanned {b:?}"));
    }
    // The same later work gives the same answers, and a crash after it recovers the model
    // (the checkpoint is stale by then: the first write opened a zone).
    let mut m2 = model.clone();
    workload(&mut loaded, &mut model, &mut Rng::new(seed ^ 0xabc), 80);
    workload(&mut scanned, &mut m2, &mut Rng::new(seed ^ 0xabc), 80);
    if model != m2 {
        return Err(format!(
            "seed {seed}: the two engines answered the same operations differently"
        ));
    }
    loaded.flush().unwrap();
    let img = image(loaded);
    let mut again = open(&img, cfg());
    if again.recovery_report().checkpoint.is_some() {
        return Err(format!("seed {seed}: a stale checkpoint was loaded"));
    }
    reads_match(&mut again, &model, "after a crash past the checkpoint")
}

#[test]
fn clean_reopen_loads_the_checkpoint_and_equals_the_scan_sec_19() {
    for seed in 0..60 {
        check_clean_reopen(seed).unwrap();
    }
}

/// SEC-19: a write acknowledged after a checkpoint-loaded open survives a power cut: the
/// checkpoint no longer describes the device and is not loaded.
fn check_write_after_checkpoint() -> Result<(), String> {
    let mut e = fresh(16);
    let mut model = Model::new();
    workload(&mut e, &mut model, &mut Rng::new(7), 120);
    e.checkpoint().unwrap();
    let mut e = open(&image(e), cfg());
    for k in 0..KEYS {
        let v = value(k, 1_000_000, 64);
        e.write(k, &v, WriteOptions { flush: k % 8 == 7, ..WriteOptions::default() }).unwrap();
        model.insert(k, Some(v));
    }
    e.flush().unwrap();
    let mut e = open(&image(e), cfg());
    reads_match(&mut e, &model, "after writes past the checkpoint")?;
    let refused = e.recovery_report().checkpoint_refused.clone();
    if e.recovery_report().checkpoint.is_some() || refused.is_none() {
        return Err(format!("stale checkpoint used: {:?}", e.recovery_report()));
    }
    Ok(())
}

#[test]
fn a_write_after_the_checkpoint_makes_it_stale_sec_19() {
    check_write_after_checkpoint().unwrap();
}

/// A zone the compactor freed after the checkpoint (no zone opened: nothing live to move)
/// makes the checkpoint stale too: its header no longer reads as written.
#[test]
fn a_zone_freed_after_the_checkpoint_makes_it_stale_sec_19() {
    let mut e = fresh(16);
    let mut model = Model::new();
    for k in 0..KEYS {
        e.write(k, &value(k, 0, 1000), WriteOptions::default()).unwrap();
    }
    e.flush().unwrap();
    for k in 0..KEYS {
        e.delete(k, WriteOptions::default()).unwrap();
        model.insert(k, None);
    }
    e.checkpoint().unwrap();
    let mut e = open(&image(e), cfg());
    assert!(e.recovery_report().checkpoint.is_some());
    let before = e.stat().free_zones;
    e.compact_until_idle(10_000).unwrap();
    assert!(e.stat().free_zones > before, "the compactor freed a zone");
    let mut e = open(&image(e), cfg());
    assert_eq!(e.recovery_report().checkpoint, None, "{:?}", e.recovery_report());
    reads_match(&mut e, &model, "after a free past the checkpoint").unwrap();
}

/// A byte flipped anywhere in the checkpoint's zones (header or payload) is never loaded as
/// state: the scan runs and reads everything right.
#[test]
fn a_damaged_checkpoint_is_not_loaded_sec_19() {
    let mut e = fresh(16);
    let mut model = Model::new();
    workload(&mut e, &mut model, &mut Rng::new(3), 150);
    let CheckpointOutcome::Written { bytes, .. } = e.checkpoint().unwrap() else { panic!() };
    let img = image(e);
    let probe = open(&img, cfg());
    let epoch = probe.recovery_report().checkpoint.unwrap();
    // Find the checkpoint's first zone: the header that decodes as one.
    let zone_bytes = 64 * 1024;
    let first = (0..16)
        .map(|z| 2 * 4096 + z * zone_bytes)
        .find(|at| {
            cellar::sector::checkpoint_format::CheckpointHeader::decode(&img[*at..*at + 4096])
                .is_ok_and(|h| h.epoch == epoch)
        })
        .unwrap();
    let mut rng = Rng::new(11);
    for _ in 0..40 {
        let at = if rng.below(4) == 0 {
            first + rng.below(44) as usize
        } else {
            first + 4096 + rng.below(bytes) as usize
        };
        let mut bad = img.clone();
        bad[at] ^= 1 << rng.below(8);
        let mut e = open(&bad, cfg());
        assert_eq!(e.recovery_report().checkpoint, None, "byte {at}");
        reads_match(&mut e, &model, "after damage to the checkpoint").unwrap();
    }
}

/// A device whose flushes fail from the `n`th on, as a power cut in the middle of a call.
struct CutAfter {
    inner: Dev,
    /// `None`: not armed yet (recovery's own flush passes).
    flushes_left: Option<u32>,
}

impl BlockDevice for CutAfter {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        self.inner.read_batch(reads)
    }
    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        self.inner.write_batch(writes)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        match &mut self.flushes_left {
            Some(0) => return Err(DeviceError::Unsupported("power cut".into())),
            Some(n) => *n -= 1,
            None => {}
        }
        self.inner.flush()
    }
    fn trim(&mut self, first: u64, count: u64) -> Result<(), DeviceError> {
        self.inner.trim(first, count)
    }
}

/// A power cut at every flush of `checkpoint`, with the writes since landing torn or in any
/// order: the next open loads a whole checkpoint or scans, and reads the model either way.
#[test]
fn a_power_cut_while_checkpointing_loses_nothing_sec_19() {
    let mut loads = 0;
    for seed in 0..30u64 {
        let mut rng = Rng::new(seed);
        let mut model = Model::new();
        let mut e = fresh(16);
        workload(&mut e, &mut model, &mut rng, 100);
        e.flush().unwrap();
        let img = image(e);
        for cut in 0..4 {
            let dev = CutAfter {
                inner: FaultDevice::new(MemDevice::from_image(img.clone())),
                flushes_left: None,
            };
            let mut e = Engine::open(dev, cfg()).unwrap();
            e.device_mut().flushes_left = Some(cut);
            let _ = e.checkpoint();
            let mode = match rng.below(3) {
                0 => CrashMode::DropUnflushed,
                1 => CrashMode::Torn { seed: rng.below(1 << 30) },
                _ => CrashMode::Reordered { seed: rng.below(1 << 30) },
            };
            let after = e.into_device().inner.crash(mode).unwrap();
            let mut e = Engine::open(FaultDevice::new(after), cfg()).unwrap();
            loads += u32::from(e.recovery_report().checkpoint.is_some());
            reads_match(&mut e, &model, &format!("seed {seed}, cut at flush {cut}")).unwrap();
        }
    }
    assert!(loads > 0, "some cut came after the checkpoint was durable");
}

/// A zone header that reads back damaged is reported by every open: no checkpoint is written
/// over it (the engine's memory and the device disagree), so the next open scans and reports it
/// again instead of hiding it behind a checkpoint.
#[test]
fn a_damaged_zone_header_skips_the_checkpoint() {
    let mut e = fresh(16);
    workload(&mut e, &mut Model::new(), &mut Rng::new(5), 120);
    e.flush().unwrap();
    let mut img = image(e);
    let zone_bytes = 64 * 1024;
    let z = (0..16)
        .find(|z| img[2 * 4096 + z * zone_bytes..][..8] == *b"CELLZONE")
        .expect("a zone in use");
    img[2 * 4096 + z * zone_bytes + 21] ^= 4; // a zero byte the header CRC covers
    let mut e = open(&img, cfg());
    assert_eq!(e.recovery_report().corrupt_zone_headers, vec![z as u32]);
    let before: Vec<String> = (0..KEYS).map(|k| format!("{:?}", e.read(k))).collect();
    let outcome = e.checkpoint().unwrap();
    assert!(
        matches!(&outcome, CheckpointOutcome::Skipped { reason } if reason.contains(&format!("zone {z}"))),
        "{outcome:?}"
    );
    let mut e = open(&image(e), cfg());
    assert_eq!(e.recovery_report().checkpoint, None);
    assert_eq!(e.recovery_report().corrupt_zone_headers, vec![z as u32]);
    let after: Vec<String> = (0..KEYS).map(|k| format!("{:?}", e.read(k))).collect();
    assert_eq!(before, after, "the same state, damage and all");
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;

    /// Planted `sector:checkpoint-trusted-blindly`: a stale checkpoint is loaded after writes
    /// past it, losing them.
    #[test]
    fn checkpoint_trusted_blindly_is_caught() {
        let _bug = cellar::bugs::plant("sector:checkpoint-trusted-blindly").unwrap();
        let err = check_write_after_checkpoint().expect_err("the planted bug must be caught");
        eprintln!("caught: {err}");
        assert!(err.contains("reads"), "the writes after the checkpoint are lost: {err}");
    }
}
