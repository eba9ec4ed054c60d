//! Stateful: an arbitrary sequence of writes, appends, deletes, multi-key CAS, flushes,
//! compaction steps and crashes (unflushed writes dropped, or the last write torn) on the sector
//! engine over a fault-injecting in-memory device, against a map model of `specs/sector.md`:
//! after every operation each key reads as the model says; after a crash the recovered state is
//! the last flushed one (SEC-7) or, for a torn write, the state after some prefix of the
//! unflushed operations (SEC-8); a crash is never reported as corruption. The same model as
//! `impl/tests/sector_differential.rs`, driven by the fuzzer's coverage instead of proptest.
#![no_main]

use arbitrary::Arbitrary;
use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::*;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

type Dev = FaultDevice<MemDevice>;
type State = BTreeMap<u64, Vec<u8>>;
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
    /// states[0] is the last durable state; states[i] the state after the i-th later op.
    states: Vec<State>,
    n: u64,
}

impl Harness {
    fn engine(&mut self) -> &mut Engine<Dev> {
        self.e.as_mut().expect("engine")
    }

    fn current(&self) -> State {
        self.states.last().expect("a state").clone()
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
        let before = self.current();
        let mut after = before.clone();
        let mut durable = false;
        match *op {
            Op::Write { key, len, fill, compressed, compact, flush } => {
                let key = u64::from(key) % KEYS;
                let v = bytes(usize::from(len) % 9000, fill, salt);
                let o = WriteOptions { compressed, compact, flush, ..Default::default() };
                self.retry(|e| e.write(key, &v, o));
                after.insert(key, v);
                durable = flush;
            }
            Op::Append { key, len, fill } => {
                let key = u64::from(key) % KEYS;
                let v = bytes(usize::from(len) % 3000, fill, salt);
                self.retry(|e| e.append(key, &v, WriteOptions::default()));
                after.entry(key).or_default().extend_from_slice(&v);
            }
            Op::Delete { key, flush } => {
                let key = u64::from(key) % KEYS;
                let o = WriteOptions { flush, ..Default::default() };
                let was = self.engine().delete(key, o).expect("delete");
                assert_eq!(was, after.remove(&key).is_some(), "delete reports presence");
                durable = flush && was;
            }
            Op::Cas { keys, fill, stale } => {
                let members: Vec<u64> = (0..KEYS).filter(|k| keys & (1 << k) != 0).collect();
                if members.is_empty() {
                    return;
                }
                let ops: Vec<CasOp> = members
                    .iter()
                    .map(|k| {
                        let expected = match self.engine().version(*k) {
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
                    .collect();
                let present = members.iter().any(|k| before.contains_key(k));
                match self.retry(|e| e.cas(&ops)) {
                    CasResult::Committed(_) => {
                        assert!(!stale || !present, "a stale CAS committed");
                        for o in &ops {
                            match &o.new {
                                CasNew::Put(v) => after.insert(o.key, v.clone()),
                                CasNew::Delete => after.remove(&o.key),
                            };
                        }
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
        if durable {
            self.states = vec![after];
        } else {
            if self.engine().device_mut().flush_count() != flushes {
                self.states = vec![before]; // the engine flushed on its own (compaction)
            }
            self.states.push(after);
        }
        let want = self.current();
        for k in 0..KEYS {
            let got = self.engine().read(k).expect("read").map(|r| r.value);
            assert_eq!(got.as_ref(), want.get(&k), "key {k} reads as the model says");
        }
    }

    fn crash(&mut self, torn: Option<u64>) {
        let mode = torn.map_or(CrashMode::DropUnflushed, |seed| CrashMode::Torn { seed });
        let dev = self.e.take().expect("engine").into_device().crash(mode).expect("crash");
        let mut e = Engine::open(FaultDevice::new(dev), cfg()).expect("recovery");
        let got: State =
            (0..KEYS).filter_map(|k| e.read(k).expect("read").map(|r| (k, r.value))).collect();
        let allowed = match mode {
            CrashMode::DropUnflushed => got == self.states[0],
            _ => self.states.contains(&got),
        };
        assert!(allowed, "{mode:?}: SEC-7/SEC-8: the recovered state is not one the model allows");
        assert!(e.recovery_report().corrupt_sectors.is_empty(), "a crash is not corruption");
        self.e = Some(e);
        self.states = vec![got];
    }
}

fuzz_target!(init: cellar_fuzz::plant_from_env(), |ops: Vec<Op>| {
    let e = Engine::format(FaultDevice::new(MemDevice::new(2 + 12 * 16)), cfg()).expect("format");
    let mut h = Harness { e: Some(e), states: vec![State::new()], n: 0 };
    for op in ops.iter().take(120) {
        h.apply(op);
    }
    h.apply(&Op::Crash { torn: None });
});
