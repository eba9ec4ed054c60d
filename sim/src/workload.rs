//! The key/value workload: clients issuing every engine operation (write with each option,
//! append, delete, multi-key CAS, read, read_range, verify, flush) against the real sector
//! engine, each result judged at once by the [`KvModel`] oracle.
//!
//! Values are unique per write (they start with the write's id), compressible (so the
//! `compressed` option shrinks them) and sometimes span several sectors.
//!
//! In the `full` profile ([`KvMode::Fill`], [`KvMode::Drain`]) the clients fill the device
//! until writes are refused, then delete until no key is left, and again. A refused write is
//! counted; a refused delete, or a refused CAS whose members all delete, is a violation of
//! SEC-16 as `cellar_model::spec::may_refuse_for_space` states it.

use crate::oracle::{KvModel, Violation, show};
use crate::rng::SimRng;
use crate::ssd::SimSsd;
use cellar::sector::{
    CasNew, CasOp, CasResult, Engine, Expect, Key, KeyRange, SECTOR_SIZE_BYTES, SectorError,
    WriteOptions,
};
use cellar_model::spec::{SectorOp, may_refuse_for_space};

/// Largest value of a CAS member, bytes: four members and the commit record fit in one zone.
pub const CAS_VALUE_BYTES_MAX: u64 = 2_000;
/// Most members of one simulated CAS.
pub const CAS_MEMBERS_MAX: u64 = 4;
/// Largest record the engine packs into a shared sector (half a sector, header included).
const PACK_BYTES_MAX: usize = SECTOR_SIZE_BYTES / 2;
const RECORD_HEADER_BYTES: usize = 80;

/// A unique, compressible value of `len` (≥ 8) bytes for write `uid`.
pub fn value(uid: u64, len: usize) -> Vec<u8> {
    let mut v = vec![(uid % 251) as u8; len.max(8)];
    v[..8].copy_from_slice(&uid.to_le_bytes());
    v
}

/// What the key/value clients are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KvMode {
    /// Every operation, mostly on few keys (every profile but `full`).
    Mixed,
    /// Mostly writes of large values to fresh keys, until the device refuses them.
    Fill,
    /// Mostly deletes (plain and as CASes) of present keys, until none is left.
    Drain,
}

/// The SEC-16 rule name for a refused delete.
pub const RULE_DELETE_REFUSED: &str = "SEC-16 deletes are never refused for space";

/// One key/value client's operation against the engine. `uid` names the write; `hits` reports
/// how many media faults the device met so far (to tell allowed errors from bugs).
pub struct KvCtx<'a> {
    /// The engine.
    pub engine: &'a mut Engine<SimSsd>,
    /// The oracle.
    pub model: &'a mut KvModel,
    /// The run's generator.
    pub rng: &'a mut SimRng,
    /// Keys in use.
    pub keys: u64,
    /// Largest value, bytes.
    pub value_bytes_max: u64,
    /// Chance (ppm) a write carries `flush`.
    pub flush_ppm: u32,
    /// Chance (ppm) a write is of exactly the largest value or one byte past it (the
    /// `limits` stress).
    pub limit_ppm: u32,
    /// A fresh write id.
    pub uid: u64,
    /// Which operations to draw.
    pub mode: KvMode,
    /// Counts what the operation did, for the fill/drain cycle.
    pub tally: &'a mut KvTally,
}

/// What key/value operations did, as far as space is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvTally {
    /// Ordinary operations the engine refused for space (`DeviceFull`).
    pub refused: u64,
    /// Values stored (writes, appends, CASes with a Put member).
    pub stored: u64,
    /// Writes of exactly the largest value the engine takes, acknowledged (`limits`).
    pub at_limit: u64,
    /// Writes one byte past it, refused with `TooLarge` (`limits`).
    pub past_limit: u64,
}

impl KvCtx<'_> {
    fn hits(&mut self) -> u64 {
        self.engine.device_mut().fault_hits()
    }

    /// Draws and runs one operation; returns its trace line.
    pub fn run(mut self) -> Result<String, Violation> {
        let k = self.rng.below(self.keys);
        match self.mode {
            KvMode::Mixed => {}
            KvMode::Fill => return self.run_fill(k),
            KvMode::Drain => return self.run_drain(k),
        }
        match self.rng.below(100) {
            0..=29 => self.write(k),
            30..=34 => self.append(k),
            35..=42 => self.delete(k),
            43..=54 => self.cas(),
            55..=84 => self.read(k),
            85..=89 => self.read_range(k),
            90..=92 => self.verify(k),
            _ => self.flush(),
        }
    }

    fn run_fill(mut self, k: Key) -> Result<String, Violation> {
        match self.rng.below(100) {
            0..=59 => {
                let len = self.rng.range(8, self.value_bytes_max) as usize;
                self.write_len(k, len)
            }
            60..=64 => self.append(k),
            65..=74 => self.cas(),
            75..=89 => self.read(k),
            90..=94 => self.delete(k),
            _ => self.flush(),
        }
    }

    fn run_drain(mut self, k: Key) -> Result<String, Violation> {
        let k =
            (0..self.keys).map(|i| (k + i) % self.keys).find(|k| self.model.current(*k).is_some());
        let k = k.unwrap_or(0);
        match self.rng.below(100) {
            0..=59 => self.delete(k),
            60..=74 => self.cas_delete(k),
            75..=89 => self.read(k),
            _ => self.flush(),
        }
    }

    fn write(&mut self, k: Key) -> Result<String, Violation> {
        // No draw when the stress is off: the old simulator's runs are unchanged.
        if self.limit_ppm > 0 && self.rng.chance_ppm(self.limit_ppm) {
            return self.write_at_limit(k);
        }
        let len = self.len(self.value_bytes_max);
        self.write_len(k, len)
    }

    /// The `limits` stress: a value of exactly `value_size_max_bytes` (an ordinary write: it
    /// is acknowledged unless the device is full) or one byte past it, which must be refused
    /// with `TooLarge`. The model is not told of the refused write, so a write that landed
    /// anyway shows as a wrong value at the key's next read (SEC-6) or recovery (SEC-7).
    fn write_at_limit(&mut self, k: Key) -> Result<String, Violation> {
        let max = self.engine.value_size_max_bytes();
        if self.rng.coin() {
            let stored = self.tally.stored;
            let line = self.write_len(k, max)?;
            self.tally.at_limit += self.tally.stored - stored;
            return Ok(line);
        }
        let v = value(self.uid, max + 1);
        match self.engine.write(k, &v, WriteOptions::default()) {
            Err(SectorError::TooLarge { .. }) => {
                self.tally.past_limit += 1;
                Ok(format!("kv write {k} of {} bytes: too large", v.len()))
            }
            other => Err(Violation::new(
                "values over value_size_max_bytes are refused with TooLarge",
                format!("write {k} of {} bytes (max {max}): {other:?}", v.len()),
            )),
        }
    }

    fn write_len(&mut self, k: Key, len: usize) -> Result<String, Violation> {
        let v = value(self.uid, len);
        let compressed = self.rng.below(5) == 0;
        let compact = self.rng.below(3) == 0;
        let flush = self.rng.chance_ppm(self.flush_ppm);
        let opts = WriteOptions { compressed, compact, flush, ..WriteOptions::default() };
        let packed = compact && RECORD_HEADER_BYTES + v.len() <= PACK_BYTES_MAX;
        match self.engine.write(k, &v, opts) {
            Ok(version) => {
                self.model.on_write(k, Some(v.clone()), Some(version), !compressed && !packed);
                self.tally.stored += 1;
                if flush {
                    self.model.on_flush();
                }
                Ok(format!("kv write {k} {} {opts:?} -> v{version}", show(&Some(v))))
            }
            Err(SectorError::DeviceFull) => {
                self.tally.refused += 1;
                Ok(format!("kv write {k}: device full"))
            }
            Err(e) => Err(Violation::new("writes fail only when full", format!("write {k}: {e}"))),
        }
    }

    fn append(&mut self, k: Key) -> Result<String, Violation> {
        let data = value(self.uid, self.rng.range(8, 200) as usize);
        let before = self.hits();
        let mut want = self.model.current(k).unwrap_or_default();
        want.extend_from_slice(&data);
        match self.engine.append(k, &data, WriteOptions::default()) {
            Ok(version) => {
                let big = want.len() > self.engine.value_size_max_bytes();
                if big {
                    return Err(Violation::new(
                        "TooLarge",
                        format!("append {k} accepted {}B", want.len()),
                    ));
                }
                self.model.on_write(k, Some(want.clone()), Some(version), true);
                self.tally.stored += 1;
                Ok(format!("kv append {k} -> {}", show(&Some(want))))
            }
            Err(SectorError::DeviceFull) => {
                self.tally.refused += 1;
                Ok(format!("kv append {k}: device full"))
            }
            Err(SectorError::TooLarge { .. }) => Ok(format!("kv append {k}: too large")),
            Err(e) => {
                let hit = self.hits() > before;
                self.model.check_error(k, &e, hit)?;
                Ok(format!("kv append {k}: allowed error: {e}"))
            }
        }
    }

    fn delete(&mut self, k: Key) -> Result<String, Violation> {
        let flush = self.rng.chance_ppm(self.flush_ppm);
        let opts = WriteOptions { flush, ..WriteOptions::default() };
        let before = self.hits();
        match self.engine.delete(k, opts) {
            Ok(present) => {
                self.model.check_delete(k, present)?;
                self.model.on_write(k, None, None, false);
                if flush {
                    self.model.on_flush();
                }
                Ok(format!("kv delete {k} flush={flush} -> {present}"))
            }
            Err(SectorError::DeviceFull) if !may_refuse_for_space(SectorOp::Delete) => {
                let st = self.engine.stat();
                let detail =
                    format!("delete {k}: {} free zones, {} keys; {st:?}", st.free_zones, st.keys);
                Err(Violation::new(RULE_DELETE_REFUSED, detail))
            }
            // A delete that reclaims space runs compaction steps, which may meet a media fault.
            Err(SectorError::Device(e)) if self.hits() > before => {
                Ok(format!("kv delete {k}: allowed error: {e}"))
            }
            Err(e) => Err(Violation::new(
                "deletes fail only for media faults",
                format!("delete {k}: {e}"),
            )),
        }
    }

    /// A CAS deleting `k` and up to three more present keys (a shrinking CAS, SEC-16).
    fn cas_delete(&mut self, k: Key) -> Result<String, Violation> {
        let mut keys = vec![k];
        for _ in 0..self.rng.below(CAS_MEMBERS_MAX) {
            let c = self.rng.below(self.keys);
            if !keys.contains(&c) && self.model.current(c).is_some() {
                keys.push(c);
            }
        }
        let ops: Vec<CasOp> = keys
            .iter()
            .map(|k| CasOp { key: *k, expected: Expect::Any, new: CasNew::Delete })
            .collect();
        self.run_cas(&ops, &vec![false; ops.len()])
    }

    fn cas(&mut self) -> Result<String, Violation> {
        let n = self.rng.range(1, CAS_MEMBERS_MAX.min(self.keys));
        let mut keys: Vec<Key> = Vec::new();
        while (keys.len() as u64) < n {
            let k = self.rng.below(self.keys);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let mut ops = Vec::with_capacity(keys.len());
        let mut stale = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let (expected, is_stale) = self.expectation(*k);
            let new = if self.rng.below(5) == 0 {
                CasNew::Delete
            } else {
                let len = self.len(CAS_VALUE_BYTES_MAX);
                CasNew::Put(value(self.uid + 1 + i as u64, len))
            };
            ops.push(CasOp { key: *k, expected, new });
            stale.push(is_stale);
        }
        self.run_cas(&ops, &stale)
    }

    fn run_cas(&mut self, ops: &[CasOp], stale: &[bool]) -> Result<String, Violation> {
        let puts = ops.iter().any(|op| matches!(op.new, CasNew::Put(_)));
        let before = self.hits();
        match self.engine.cas(ops) {
            Ok(CasResult::Committed(versions)) => self.cas_committed(ops, stale, &versions),
            Ok(CasResult::Mismatch { index, current }) => self.cas_mismatch(ops, index, current),
            Err(SectorError::DeviceFull) if may_refuse_for_space(SectorOp::Cas { puts }) => {
                self.tally.refused += 1;
                Ok("kv cas: device full".into())
            }
            Err(SectorError::DeviceFull) => {
                let keys: Vec<Key> = ops.iter().map(|o| o.key).collect();
                Err(Violation::new(RULE_DELETE_REFUSED, format!("cas deleting {keys:?}")))
            }
            Err(SectorError::Device(e)) if !puts && self.hits() > before => {
                Ok(format!("kv cas: allowed error: {e}"))
            }
            Err(e) => Err(Violation::new("cas fails only when full", e.to_string())),
        }
    }

    /// An expectation for `k`: Any, Absent, its known version, or a stale one (must lose).
    fn expectation(&mut self, k: Key) -> (Expect, bool) {
        match self.rng.below(10) {
            0..=2 => (Expect::Any, false),
            3..=4 => (Expect::Absent, false),
            5 => match self.model.stale_version(k, self.rng.next_u64()) {
                Some(v) => (Expect::Version(v), true),
                None => (Expect::Any, false),
            },
            _ => match self.model.version(k) {
                Some(v) if self.model.current(k).is_some() => (Expect::Version(v), false),
                _ => (Expect::Absent, false),
            },
        }
    }

    fn cas_committed(
        &mut self,
        ops: &[CasOp],
        stale: &[bool],
        versions: &[Option<cellar::sector::Version>],
    ) -> Result<String, Violation> {
        let expected: Vec<(Key, Expect, bool)> =
            ops.iter().zip(stale).map(|(op, s)| (op.key, op.expected, *s)).collect();
        self.model.check_cas_committed(&expected)?;
        let members: Vec<(Key, Option<Vec<u8>>)> = ops
            .iter()
            .map(|op| match &op.new {
                CasNew::Put(v) => (op.key, Some(v.clone())),
                CasNew::Delete => (op.key, None),
            })
            .collect();
        self.model.on_cas(&members, versions);
        self.tally.stored += u64::from(members.iter().any(|(_, v)| v.is_some()));
        let keys: Vec<Key> = ops.iter().map(|o| o.key).collect();
        Ok(format!("kv cas {keys:?} committed"))
    }

    fn cas_mismatch(
        &mut self,
        ops: &[CasOp],
        index: usize,
        current: Option<cellar::sector::Version>,
    ) -> Result<String, Violation> {
        let members: Vec<(Key, Expect)> = ops.iter().map(|op| (op.key, op.expected)).collect();
        self.model.check_cas_mismatch(&members, index, current)?;
        let k = members.get(index).map_or(0, |m| m.0);
        Ok(format!("kv cas mismatch at key {k}"))
    }

    fn len(&mut self, max: u64) -> usize {
        // Mostly small, sometimes up to the maximum (multi-sector records).
        let cap = if self.rng.below(4) == 0 { max } else { max.min(200) };
        self.rng.range(8, cap.max(8)) as usize
    }

    fn read(&mut self, k: Key) -> Result<String, Violation> {
        if k % 4 == 3 {
            return self.read_follow(k);
        }
        let before = self.hits();
        let got = self.engine.read(k);
        let hit = self.hits() > before;
        self.model.check_read(k, &got, hit)?;
        Ok(match got {
            Ok(r) => format!("kv read {k} -> {}", show(&r.map(|r| r.value))),
            Err(e) => format!("kv read {k}: allowed error: {e}"),
        })
    }

    /// A quarter of reads (keys ≡ 3 mod 4) go through `read_follow` and then `compare` the
    /// version read (`specs/sector.md` §5.4: `compare` looks up the current record's version).
    /// No record here carries a `next` pointer, so the follow returns at most the key's own
    /// record: the same device reads as `read`, and no rng draw, so the run's streams do not
    /// move.
    fn read_follow(&mut self, k: Key) -> Result<String, Violation> {
        let before = self.hits();
        let got = self.engine.read_follow(k, 4);
        let hit = self.hits() > before;
        let recs = match got {
            Ok(recs) => recs,
            Err(e) => {
                self.model.check_read(k, &Err(e), hit)?;
                return Ok(format!("kv read_follow {k}: allowed error"));
            }
        };
        if recs.len() > 1 || recs.first().is_some_and(|(key, _)| *key != k) {
            let keys: Vec<Key> = recs.iter().map(|(key, _)| *key).collect();
            return Err(Violation::new(
                "read_follow follows only next pointers",
                format!("read_follow {k} returned keys {keys:?}; no record has a next pointer"),
            ));
        }
        let rec = recs.into_iter().next().map(|(_, r)| r);
        let version = rec.as_ref().map(|r| r.version);
        self.model.check_read(k, &Ok(rec), hit)?;
        if let Some(v) = version
            && !self.engine.compare(k, v)
        {
            return Err(Violation::new(
                "compare answers true for the version just read (SEC-9, specs/sector.md 5.4)",
                format!("compare({k}, {v:?}) is false right after reading that version"),
            ));
        }
        Ok(format!("kv read_follow {k} -> version {version:?}"))
    }

    fn read_range(&mut self, k: Key) -> Result<String, Violation> {
        let end = k + self.rng.below(8);
        let before = self.hits();
        let got = self.engine.read_range(&[KeyRange::Span { start: k, end }]);
        let hit = self.hits() > before;
        self.model.check_range(k, end, &got, hit)?;
        Ok(match got {
            Ok(recs) => format!("kv read_range {k}..={end} -> {} keys", recs.len()),
            Err(e) => format!("kv read_range {k}..={end}: allowed error: {e}"),
        })
    }

    fn verify(&mut self, k: Key) -> Result<String, Violation> {
        let before = self.hits();
        match self.engine.verify(k) {
            Ok(present) => {
                self.model.check_verify(k, present)?;
                Ok(format!("kv verify {k} -> {present}"))
            }
            Err(e) => {
                let hit = self.hits() > before;
                self.model.check_error(k, &e, hit)?;
                Ok(format!("kv verify {k}: allowed error: {e}"))
            }
        }
    }

    fn flush(&mut self) -> Result<String, Violation> {
        match self.engine.flush() {
            Ok(()) => {
                self.model.on_flush();
                Ok("kv flush".into())
            }
            Err(e) => Err(Violation::new("flush fails only for faults", e.to_string())),
        }
    }
}
