//! Differential test (`specs/sector.md` §8): random operation sequences, including crashes and
//! recoveries, run against the engine on a fault-injecting device and against a `HashMap`
//! model. After every operation every key reads as in the model; after a crash the recovered
//! state must be one the model allows: exactly the last flushed state when unflushed writes are
//! dropped (SEC-7), or the state after some prefix of the unflushed operations when the last
//! write is torn (SEC-7, SEC-8).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Dev = FaultDevice<MemDevice>;
type State = BTreeMap<u64, Vec<u8>>;
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
    /// states[0] is the last durable state; states[i] the state after the i-th later op.
    states: Vec<State>,
    n: u64,
}

impl Harness {
    fn engine(&mut self) -> &mut Engine<Dev> {
        self.e.as_mut().unwrap()
    }

    fn current(&self) -> State {
        self.states.last().unwrap().clone()
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
        let before = self.current();
        let mut after = before.clone();
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
                self.retry(|e| e.write(*key, &v, o));
                after.insert(*key, v);
                durable = *flush;
            }
            Op::Append { key, len, fill } => {
                let v = bytes(*len, *fill, salt);
                self.retry(|e| e.append(*key, &v, WriteOptions::default()));
                after.entry(*key).or_default().extend_from_slice(&v);
            }
            Op::Delete { key, flush } => {
                let o = WriteOptions { flush: *flush, ..Default::default() };
                let was = self.engine().delete(*key, o).unwrap();
                prop_assert_eq!(was, after.remove(key).is_some());
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
                let present = keys.iter().any(|k| before.contains_key(k));
                match r {
                    CasResult::Committed(_) => {
                        prop_assert!(!*stale || !present);
                        for o in &ops {
                            match &o.new {
                                CasNew::Put(v) => after.insert(o.key, v.clone()),
                                CasNew::Delete => after.remove(&o.key),
                            };
                        }
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
        if durable {
            self.states = vec![after];
        } else {
            if self.engine().device_mut().flush_count() != flushes {
                // The engine flushed on its own (compaction) before or during this op.
                self.states = vec![before];
            }
            self.states.push(after);
        }
        self.check_reads()
    }

    fn check_reads(&mut self) -> Result<(), TestCaseError> {
        let want = self.current();
        for k in 0..KEYS {
            let got = self.engine().read(k).unwrap().map(|r| r.value);
            prop_assert_eq!(got.as_ref(), want.get(&k), "key {}", k);
        }
        Ok(())
    }

    fn crash(&mut self, torn: Option<u64>) -> Result<(), TestCaseError> {
        let mode = torn.map_or(CrashMode::DropUnflushed, |seed| CrashMode::Torn { seed });
        let dev = self.e.take().unwrap().into_device().crash(mode).unwrap();
        let mut e = Engine::open(FaultDevice::new(dev), cfg()).unwrap();
        let got: State =
            (0..KEYS).filter_map(|k| e.read(k).unwrap().map(|r| (k, r.value))).collect();
        let allowed = match mode {
            CrashMode::DropUnflushed => got == self.states[0],
            _ => self.states.contains(&got),
        };
        prop_assert!(allowed, "{:?}: recovered state is not one the model allows", mode);
        prop_assert!(
            e.recovery_report().corrupt_sectors.is_empty(),
            "crash is not corruption: {:?}",
            e.recovery_report()
        );
        self.e = Some(e);
        self.states = vec![got];
        Ok(())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let e = Engine::format(FaultDevice::new(MemDevice::new(2 + 12 * 16)), cfg()).unwrap();
    let mut h = Harness { e: Some(e), states: vec![State::new()], n: 0 };
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
