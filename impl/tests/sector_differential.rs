//! Differential test (`specs/sector.md` §8): random operation sequences, including crashes and
//! recoveries, run against the engine on a fault-injecting device and judged by `cellar-model`'s
//! executable spec, `SectorSpec`. After every operation every key reads as the spec holds
//! (SEC-6); after a crash the recovered state must be one the spec allows: exactly the last
//! flushed state when unflushed writes are dropped (SEC-7), or the state after some prefix of
//! the unflushed operations when the last write is torn (SEC-7, SEC-8).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;
use cellar_model::spec::{SectorRead, SectorRecord, SectorSpec, Violation};
use proptest::prelude::*;
use std::collections::BTreeMap;

type Dev = FaultDevice<MemDevice>;
const KEYS: u64 = 6;

#[derive(Debug, Clone)]
enum Op {
    Write { key: u64, len: usize, fill: u8, compressed: bool, compact: bool, flush: bool },
    Append { key: u64, len: usize, fill: u8 },
    Delete { key: u64, flush: bool },
    Cas { keys: Vec<u64>, fill: u8, stale: bool },
    Flush,
    Compact { steps: u32 },
    Crash { torn: Option<u64> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS, 0usize..9000, any::<u8>(), any::<bool>(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(key, len, fill, compressed, compact, flush)| Op::Write { key, len, fill, compressed, compact, flush }),
        1 => (0..KEYS, 0usize..3000, any::<u8>()).prop_map(|(key, len, fill)| Op::Append { key, len, fill }),
        2 => (0..KEYS, prop::bool::weighted(0.2)).prop_map(|(key, flush)| Op::Delete { key, flush }),
        2 => (prop::collection::btree_set(0..KEYS, 1..4), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(keys, fill, stale)| Op::Cas { keys: keys.into_iter().collect(), fill, stale }),
        1 => Just(Op::Flush),
        2 => (1u32..6).prop_map(|steps| Op::Compact { steps }),
        1 => prop::option::of(any::<u64>()).prop_map(|torn| Op::Crash { torn }),
    ]
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

fn judged(r: Result<(), Violation>) -> Result<(), TestCaseError> {
    r.map_err(|v| TestCaseError::fail(v.to_string()))
}

impl Harness {
    fn engine(&mut self) -> &mut Engine<Dev> {
        self.e.as_mut().unwrap()
    }

    /// Retries once after compacting when the device is full.
    fn retry<T>(&mut self, mut f: impl FnMut(&mut Engine<Dev>) -> Result<T, SectorError>) -> T {
        match f(self.engine()) {
            Err(SectorError::DeviceFull) => {
                self.engine().compact_until_idle(10_000).unwrap();
                f(self.engine()).unwrap()
            }
            r => r.unwrap(),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.n += 1;
        let salt = self.n;
        let flushes = self.engine().device_mut().flush_count();
        // (key, value, version) of each write the op made, in order; `cas`: as one group.
        let mut writes: Vec<(u64, Option<Vec<u8>>, Option<u64>)> = Vec::new();
        let mut cas = false;
        let mut durable = false;
        match op {
            Op::Write { key, len, fill, compressed, compact, flush } => {
                let v = bytes(*len, *fill, salt);
                let o = WriteOptions {
                    compressed: *compressed,
                    compact: *compact,
                    flush: *flush,
                    ..Default::default()
                };
                let version = self.retry(|e| e.write(*key, &v, o));
                writes.push((*key, Some(v), Some(version.0)));
                durable = *flush;
            }
            Op::Append { key, len, fill } => {
                let v = bytes(*len, *fill, salt);
                let version = self.retry(|e| e.append(*key, &v, WriteOptions::default()));
                let mut whole = self.spec.current(*key).unwrap_or_default();
                whole.extend_from_slice(&v);
                writes.push((*key, Some(whole), Some(version.0)));
            }
            Op::Delete { key, flush } => {
                let o = WriteOptions { flush: *flush, ..Default::default() };
                let was = self.engine().delete(*key, o).unwrap();
                judged(self.spec.check_delete(*key, was))?;
                writes.push((*key, None, None));
                durable = *flush && was;
            }
            Op::Cas { keys, fill, stale } => {
                let build = |e: &Engine<Dev>| -> Vec<CasOp> {
                    keys.iter()
                        .map(|k| {
                            let expected = match e.version(*k) {
                                Some(v) if *stale => Expect::Version(Version(v.0 ^ 1)),
                                Some(v) => Expect::Version(v),
                                None => Expect::Absent,
                            };
                            let new = if fill % 4 == 0 {
                                CasNew::Delete
                            } else {
                                CasNew::Put(bytes(100 + *fill as usize * 20, *fill, salt + k))
                            };
                            CasOp { key: *k, expected, new }
                        })
                        .collect()
                };
                // Versions are taken again after compaction: a move changes them (SEC-10).
                let mut ops = build(self.engine());
                let r = match self.engine().cas(&ops) {
                    Err(SectorError::DeviceFull) => {
                        self.engine().compact_until_idle(10_000).unwrap();
                        ops = build(self.engine());
                        self.engine().cas(&ops).unwrap()
                    }
                    r => r.unwrap(),
                };
                let present = keys.iter().any(|k| self.spec.current(*k).is_some());
                match r {
                    CasResult::Committed(versions) => {
                        prop_assert!(!*stale || !present);
                        for (o, version) in ops.iter().zip(versions) {
                            let value = match &o.new {
                                CasNew::Put(v) => Some(v.clone()),
                                CasNew::Delete => None,
                            };
                            writes.push((o.key, value, version.map(|v| v.0)));
                        }
                        cas = true;
                    }
                    CasResult::Mismatch { .. } => prop_assert!(*stale && present),
                }
            }
            Op::Flush => {
                self.engine().flush().unwrap();
                durable = true;
            }
            Op::Compact { steps } => {
                for _ in 0..*steps {
                    self.engine().compact_step().unwrap();
                }
            }
            Op::Crash { torn } => return self.crash(*torn),
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
        self.check_reads()
    }

    fn check_reads(&mut self) -> Result<(), TestCaseError> {
        for k in 0..KEYS {
            let got = outcome(self.engine().read(k));
            judged(self.spec.check_read(k, &got, false))?;
        }
        Ok(())
    }

    fn crash(&mut self, torn: Option<u64>) -> Result<(), TestCaseError> {
        let mode = torn.map_or(CrashMode::DropUnflushed, |seed| CrashMode::Torn { seed });
        let dev = self.e.take().unwrap().into_device().crash(mode).unwrap();
        let mut e = Engine::open(FaultDevice::new(dev), cfg()).unwrap();
        let got: BTreeMap<u64, SectorRead> = (0..KEYS).map(|k| (k, outcome(e.read(k)))).collect();
        // Dropped: exactly the flushed state; torn: the flushed state plus a prefix.
        let none_landed = matches!(mode, CrashMode::DropUnflushed);
        judged(self.spec.check_recovered_in_order(&got, none_landed))
            .map_err(|f| TestCaseError::fail(format!("{mode:?}: {f}")))?;
        prop_assert!(
            e.recovery_report().corrupt_sectors.is_empty(),
            "crash is not corruption: {:?}",
            e.recovery_report()
        );
        self.e = Some(e);
        Ok(())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let e = Engine::format(FaultDevice::new(MemDevice::new(2 + 12 * 16)), cfg()).unwrap();
    let mut h = Harness { e: Some(e), spec: SectorSpec::new(KEYS), n: 0 };
    for op in ops {
        h.apply(op)?;
    }
    h.apply(&Op::Crash { torn: None })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_hashmap_model_across_crashes(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}

/// The differential test must fail with each crash-relevant planted bug.
#[cfg(feature = "planted-bugs")]
#[test]
fn differential_test_catches_planted_bugs() {
    use proptest::test_runner::{Config, TestRunner};
    for bug in ["sector:ack-before-flush", "sector:cas-not-atomic"] {
        let _planted = cellar::bugs::plant(bug).unwrap();
        let mut runner =
            TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
        let result = runner.run(&prop::collection::vec(op(), 1..80), |ops| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&ops))) {
                Ok(r) => r,
                Err(_) => Err(TestCaseError::fail("engine assertion fired")),
            }
        });
        assert!(result.is_err(), "differential test missed planted bug {bug}");
    }
}
