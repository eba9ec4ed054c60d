//! Stateful: an arbitrary sequence of writes, appends, deletes, multi-key CAS, flushes,
//! compaction steps and crashes (unflushed writes dropped, or the last write torn) on the sector
//! engine over a fault-injecting in-memory device, judged by `cellar-model`'s executable spec
//! `SectorSpec` (`specs/sector.md`), the same judge as `impl/tests/sector_differential.rs` and the
//! simulator's oracle: after every operation each key reads as the spec holds (SEC-6); after a
//! crash the recovered state is the last flushed one (SEC-7) or, for a torn write, the state
//! after some prefix of the unflushed operations (SEC-7, SEC-8); a crash is never reported as
//! corruption. Some crashes follow a clean shutdown (SEC-19): the reopen must load the
//! checkpoint and read exactly what was written. The differential test's harness, driven by the
//! fuzzer's coverage instead of proptest.
#![no_main]

use arbitrary::Arbitrary;
use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;
use cellar_model::spec::{SectorRead, SectorRecord, SectorSpec, Violation};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

type Dev = FaultDevice<MemDevice>;
const KEYS: u64 = 6;

#[derive(Debug, Arbitrary)]
enum Op {
    Write { key: u8, len: u16, fill: u8, compressed: bool, compact: bool, flush: bool },
    Append { key: u8, len: u16, fill: u8 },
    Delete { key: u8, flush: bool },
    Cas { keys: u8, fill: u8, stale: bool },
    Flush,
    Compact { steps: u8 },
    Crash { torn: Option<u64> },
}

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(64 * 1024).compaction_dead_percent_min(25)
}

fn bytes(len: usize, fill: u8, salt: u64) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i as u64 ^ salt) as u8)).collect();
    if len >= 8 {
        v[..8].copy_from_slice(&salt.to_le_bytes());
    }
    v
}

struct Harness {
    e: Option<Engine<Dev>>,
    /// Every acknowledged operation and flush; judges reads and recoveries.
    spec: SectorSpec,
    n: u64,
}

fn outcome(got: Result<Option<Record>, SectorError>) -> SectorRead {
    match got {
        Ok(r) => Ok(r.map(|r| SectorRecord { value: r.value, version: r.version.0 })),
        Err(e) => panic!("no fault is injected while running: {e}"),
    }
}

fn judged(r: Result<(), Violation>) {
    if let Err(v) = r {
        panic!("{v}");
    }
}

impl Harness {
    fn engine(&mut self) -> &mut Engine<Dev> {
        self.e.as_mut().expect("engine")
    }

    /// Retries once after compacting when the device is full.
    fn retry<T>(&mut self, mut f: impl FnMut(&mut Engine<Dev>) -> Result<T, SectorError>) -> T {
        match f(self.engine()) {
            Err(SectorError::DeviceFull) => {
                self.engine().compact_until_idle(10_000).expect("compact");
                f(self.engine()).expect("after compaction")
            }
            r => r.expect("operation"),
        }
    }

    fn apply(&mut self, op: &Op) {
        self.n += 1;
        let salt = self.n;
        let flushes = self.engine().device_mut().flush_count();
        // (key, value, version) of each write the op made, in order; `cas`: as one group.
        let mut writes: Vec<(u64, Option<Vec<u8>>, Option<u64>)> = Vec::new();
        let mut cas = false;
        let mut durable = false;
        match *op {
            Op::Write { key, len, fill, compressed, compact, flush } => {
                let key = u64::from(key) % KEYS;
                let v = bytes(usize::from(len) % 9000, fill, salt);
                let o = WriteOptions { compressed, compact, flush, ..Default::default() };
                let version = self.retry(|e| e.write(key, &v, o));
                writes.push((key, Some(v), Some(version.0)));
                durable = flush;
            }
            Op::Append { key, len, fill } => {
                let key = u64::from(key) % KEYS;
                let v = bytes(usize::from(len) % 3000, fill, salt);
                let mut whole = self.spec.current(key).unwrap_or_default();
                whole.extend_from_slice(&v);
                let append = |e: &mut Engine<Dev>| e.append(key, &v, WriteOptions::default());
                match append(self.engine()) {
                    // An append past the largest value is refused and changes nothing (the
                    // reads below check the key still holds what the spec holds).
                    Err(SectorError::TooLarge { what: "value", size, max }) => {
                        assert!(size == whole.len() as u64 && size > max, "{size} > {max}?");
                    }
                    Err(SectorError::DeviceFull) => {
                        self.engine().compact_until_idle(10_000).expect("compact");
                        let version = append(self.engine()).expect("append after compaction");
                        writes.push((key, Some(whole), Some(version.0)));
                    }
                    r => writes.push((key, Some(whole), Some(r.expect("append").0))),
                }
            }
            Op::Delete { key, flush } => {
                let key = u64::from(key) % KEYS;
                let o = WriteOptions { flush, ..Default::default() };
                let was = self.engine().delete(key, o).expect("delete");
                judged(self.spec.check_delete(key, was));
                writes.push((key, None, None));
                durable = flush && was;
            }
            Op::Cas { keys, fill, stale } => {
                let members: Vec<u64> = (0..KEYS).filter(|k| keys & (1 << k) != 0).collect();
                if members.is_empty() {
                    return;
                }
                let build = |e: &Engine<Dev>| -> Vec<CasOp> {
                    members
                        .iter()
                        .map(|k| {
                            let expected = match e.version(*k) {
                                Some(v) if stale => Expect::Version(Version(v.0 ^ 1)),
                                Some(v) => Expect::Version(v),
                                None => Expect::Absent,
                            };
                            let new = if fill % 4 == 0 {
                                CasNew::Delete
                            } else {
                                CasNew::Put(bytes(100 + usize::from(fill) * 20, fill, salt + k))
                            };
                            CasOp { key: *k, expected, new }
                        })
                        .collect()
                };
                // Versions are taken again after compaction: a move changes them (SEC-10).
                let mut ops = build(self.engine());
                let r = match self.engine().cas(&ops) {
                    Err(SectorError::DeviceFull) => {
                        self.engine().compact_until_idle(10_000).expect("compact");
                        ops = build(self.engine());
                        self.engine().cas(&ops).expect("cas after compaction")
                    }
                    r => r.expect("cas"),
                };
                let present = members.iter().any(|k| self.spec.current(*k).is_some());
                match r {
                    CasResult::Committed(versions) => {
                        assert!(!stale || !present, "a stale CAS committed");
                        for (o, version) in ops.iter().zip(versions) {
                            let value = match &o.new {
                                CasNew::Put(v) => Some(v.clone()),
                                CasNew::Delete => None,
                            };
                            writes.push((o.key, value, version.map(|v| v.0)));
                        }
                        cas = true;
                    }
                    CasResult::Mismatch { .. } => assert!(stale && present, "a good CAS failed"),
                }
            }
            Op::Flush => {
                self.engine().flush().expect("flush");
                durable = true;
            }
            Op::Compact { steps } => {
                for _ in 0..steps % 8 {
                    self.engine().compact_step().expect("compact step");
                }
            }
            Op::Crash { torn } => return self.crash(torn),
        }
        if self.engine().device_mut().flush_count() != flushes {
            // The engine flushed on its own (compaction) before or during this op: everything
            // before it is durable.
            self.spec.on_flush();
        }
        if cas {
            let members: Vec<_> = writes.iter().map(|(k, v, _)| (*k, v.clone())).collect();
            let versions: Vec<_> = writes.iter().map(|(_, _, ver)| *ver).collect();
            self.spec.on_cas(&members, &versions);
        } else {
            for (k, v, version) in writes {
                self.spec.on_write(k, v, version, true);
            }
        }
        if durable {
            self.spec.on_flush();
        }
        for k in 0..KEYS {
            let got = outcome(self.engine().read(k));
            judged(self.spec.check_read(k, &got, false));
        }
    }

    /// A power cut: unflushed writes dropped (`torn` None) or torn at a seeded point; for one
    /// torn seed in four, a clean shutdown first (SEC-19: everything flushed, the checkpoint
    /// written), which the reopen must load.
    fn crash(&mut self, torn: Option<u64>) {
        let clean = torn.is_some_and(|seed| seed % 4 == 3);
        let mut checkpointed = false;
        if clean {
            let outcome = self.engine().checkpoint().expect("checkpoint");
            checkpointed = matches!(outcome, CheckpointOutcome::Written { .. });
            self.spec.on_flush();
        }
        let mode = torn.map_or(CrashMode::DropUnflushed, |seed| CrashMode::Torn { seed });
        let dev = self.e.take().expect("engine").into_device().crash(mode).expect("crash");
        let mut e = Engine::open(FaultDevice::new(dev), cfg()).expect("recovery");
        // A checkpoint from an earlier shutdown may still match if nothing changed since; the
        // spec judges the state either way.
        assert!(
            !checkpointed || e.recovery_report().checkpoint.is_some(),
            "SEC-19: a clean shutdown's checkpoint is loaded: {:?}",
            e.recovery_report()
        );
        let got: BTreeMap<u64, SectorRead> = (0..KEYS).map(|k| (k, outcome(e.read(k)))).collect();
        // Dropped: exactly the flushed state; torn: the flushed state plus a prefix.
        let none_landed = matches!(mode, CrashMode::DropUnflushed);
        if let Err(v) = self.spec.check_recovered_in_order(&got, none_landed) {
            panic!("{mode:?}: {v}");
        }
        assert!(e.recovery_report().corrupt_sectors.is_empty(), "a crash is not corruption");
        self.e = Some(e);
    }
}

fuzz_target!(init: cellar_fuzz::plant_from_env(), |ops: Vec<Op>| {
    let e = Engine::format(FaultDevice::new(MemDevice::new(2 + 12 * 16)), cfg()).expect("format");
    let mut h = Harness { e: Some(e), spec: SectorSpec::new(KEYS), n: 0 };
    for op in ops.iter().take(120) {
        h.apply(op);
    }
    h.apply(&Op::Crash { torn: None });
});
