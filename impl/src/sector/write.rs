//! The write path (`specs/sector.md` §5, §7): `write`, `append`, `delete`, `cas`, `flush`,
//! `revert` and `commit`, and how one record is encoded and appended at the head (packed into a
//! shared sector or not). Where the head is and when a zone opens is `zones.rs`.
//!
//! Enforces SEC-2 (an ack with `flush` waits for the device flush), SEC-8 (a CAS is checked in
//! memory, then written by `commit.rs` as one contiguous batch), SEC-9 (a packing sector never
//! holds two records of one key, so versions are never reused), SEC-12 (revert state lives in
//! memory only), SEC-15 (a packing sector is rewritten only until the next flush closes it) and
//! SEC-16 (writes, appends and CASes with a Put are refused with `DeviceFull` before they touch
//! the reserve; deletes and delete-only CASes write packed tombstones into it, and reclaim
//! space by compaction when even that is used up).
//!
//! Never writes over a sector that was flushed.

use super::device::{BlockDevice, DeviceSync, WriteOp};
use super::format::{
    FLAG_COMPRESSED, FLAG_HAS_NEXT, FLAG_PACKED, FLAG_REVERTIBLE, Kind, RECORD_HEADER_SIZE_BYTES,
    RecordHeader,
};
use super::types::{CasNew, CasOp, CasResult, Expect, WriteOptions};
use super::zones::Room;
use super::{CAS_OPS_MAX, Engine, Key, SECTOR_SIZE_BYTES, SectorError, Version};
use crate::bugs;
use std::sync::Arc;

/// The open packing sector: small records share it, and it is rewritten as they are added,
/// until the next flush or seal closes it (SEC-15).
#[derive(Debug)]
pub(crate) struct Pack {
    pub(crate) sector: u64,
    pub(crate) buf: Vec<u8>,
    pub(crate) used: usize,
    pub(crate) keys: Vec<Key>,
}

/// Writes of one operation, submitted as one device batch.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) ops: Vec<(u64, Vec<u8>)>,
}

impl Batch {
    pub(crate) fn submit<D: BlockDevice>(self, dev: &mut D) -> Result<(), SectorError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ops: Vec<WriteOp<'_>> =
            self.ops.iter().map(|(s, d)| WriteOp { first_sector: *s, data: d }).collect();
        dev.write_batch(&ops)?;
        Ok(())
    }
}

impl<D: BlockDevice> Engine<D> {
    fn check_expect(&self, key: Key, expected: Expect) -> Result<(), SectorError> {
        let current = self.version(key);
        let ok = match expected {
            Expect::Any => true,
            Expect::Absent => current.is_none() && !self.corrupt.contains_key(&key),
            Expect::Version(v) => current == Some(v),
        };
        if ok {
            return Ok(());
        }
        Err(SectorError::VersionMismatch { key, expected: format!("{expected:?}"), current })
    }

    /// Writes `value` under `key` (replacing any previous value) and returns its version.
    pub fn write(
        &mut self,
        key: Key,
        value: &[u8],
        opts: WriteOptions,
    ) -> Result<Version, SectorError> {
        self.check_expect(key, opts.expected)?;
        let max = self.value_size_max_bytes();
        // Planted bug sector:value-limit-off-by-one: the largest legal value is refused too.
        let at_limit_refused =
            crate::bugs::active("sector:value-limit-off-by-one") && value.len() == max;
        if value.len() > max || at_limit_refused {
            return Err(SectorError::TooLarge {
                what: "value",
                size: value.len() as u64,
                max: max as u64,
            });
        }
        let mut flags = 0u8;
        let compressed;
        let payload: &[u8] = if opts.compressed {
            flags |= FLAG_COMPRESSED;
            compressed = lz4_flex::block::compress(value);
            &compressed
        } else {
            value
        };
        if payload.len() > max {
            return Err(SectorError::TooLarge {
                what: "compressed value",
                size: payload.len() as u64,
                max: max as u64,
            });
        }
        if opts.revertible {
            flags |= FLAG_REVERTIBLE;
        }
        if opts.next.is_some() {
            flags |= FLAG_HAS_NEXT;
        }
        let packable =
            opts.compact && RECORD_HEADER_SIZE_BYTES + payload.len() <= SECTOR_SIZE_BYTES / 2;
        if packable {
            flags |= FLAG_PACKED;
        }
        let h = RecordHeader {
            kind: Kind::Put,
            flags,
            key,
            seq: self.take_seq(),
            zone_epoch: 0,
            payload_len: payload.len() as u32,
            next: opts.next.unwrap_or(0),
            txn: 0,
            value_len: value.len() as u32,
            payload_crc: crc32c::crc32c(payload),
            durable_mark: 0,
            sector: 0,
        };
        let mut batch = Batch::default();
        // SEC-16: refused here, before anything is written, if only the reserve is left.
        let sector = self.append_record(&mut batch, h, payload, Room::Grow)?;
        batch.submit(&mut self.dev)?;
        self.install(key, Some(sector), opts.revertible);
        if opts.flush {
            self.flush_for_ack()?;
        }
        Ok(self.version_at(sector as u32))
    }

    /// Appends `data` to `key`'s value (creating it), rewriting the whole value as one new
    /// record that may span several sectors. Returns the new version.
    pub fn append(
        &mut self,
        key: Key,
        data: &[u8],
        opts: WriteOptions,
    ) -> Result<Version, SectorError> {
        self.check_expect(key, opts.expected)?;
        let mut value = self.read(key)?.map(|r| r.value).unwrap_or_default();
        value.extend_from_slice(data);
        self.write(key, &value, WriteOptions { expected: Expect::Any, ..opts })
    }

    /// Deletes `key`; returns whether it was present. Only `expected`, `revertible` and `flush`
    /// of `opts` apply. Never refused for space (SEC-16): the tombstone is packed (80 bytes)
    /// into the delete reserve, and when that is used up the delete first runs compaction
    /// steps to reclaim room.
    pub fn delete(&mut self, key: Key, opts: WriteOptions) -> Result<bool, SectorError> {
        self.check_expect(key, opts.expected)?;
        let present = self.index.get(key).is_some();
        if !present && !self.corrupt.contains_key(&key) {
            // SEC-2: `flush` still means "durable when acknowledged", e.g. an earlier unflushed
            // delete of the same key.
            if opts.flush {
                self.flush_for_ack()?;
            }
            return Ok(false);
        }
        // SEC-16: room first. After the expectation was checked: compaction moves records
        // (changing versions, SEC-10) but never changes a value, so the check still holds.
        // Before the tombstone's seq is taken, so a copy the compactor makes meanwhile never
        // outranks the tombstone.
        self.reclaim(1, Room::Shrink)?;
        let h = tombstone(key, self.take_seq(), FLAG_PACKED, 0);
        let mut batch = Batch::default();
        let sector = self.append_record(&mut batch, h, &[], Room::Shrink)?;
        batch.submit(&mut self.dev)?;
        self.install(key, None, opts.revertible);
        self.note_tombstone(key, sector);
        if opts.flush {
            self.flush_for_ack()?;
        }
        Ok(present)
    }

    /// Multi-key compare-and-swap: if every member's expectation holds, applies them all with
    /// one commit record (SEC-8); otherwise writes nothing. Not durable until `flush`.
    pub fn cas(&mut self, ops: &[CasOp]) -> Result<CasResult, SectorError> {
        if ops.is_empty() || ops.len() > CAS_OPS_MAX {
            return Err(SectorError::TooLarge {
                what: "cas members",
                size: ops.len() as u64,
                max: CAS_OPS_MAX as u64,
            });
        }
        let mut keys: Vec<Key> = ops.iter().map(|o| o.key).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(SectorError::InvalidArgument("a key appears twice in one cas".into()));
        }
        for (i, op) in ops.iter().enumerate() {
            if self.check_expect(op.key, op.expected).is_err() {
                return Ok(CasResult::Mismatch { index: i, current: self.version(op.key) });
            }
        }
        // SEC-16: a CAS that only deletes may use the delete reserve and reclaims room first;
        // one with a Put member is an ordinary write. The expectations checked above still
        // hold: compaction moves records (new versions, SEC-10) but never changes a value, and
        // the members' seqs are taken afterwards, so no copy outranks them.
        let room = cas_room(ops);
        if room == Room::Shrink {
            self.reclaim(super::commit::txn_sectors(ops), room)?;
        }
        let sectors = super::commit::write_txn(self, ops, room)?;
        Ok(CasResult::Committed(sectors.iter().map(|s| s.map(|s| self.version_at(s))).collect()))
    }

    /// Group commit: every write submitted before the call is durable when it returns (SEC-2).
    pub fn flush(&mut self) -> Result<(), SectorError> {
        self.flush_for_ack()
    }

    /// First half of a flush that does not need the engine while the device flushes (§5.2):
    /// closes the packing sector (SEC-15: no later record joins a sector this flush may make
    /// durable) and notes how far the log is written. Then [`FlushStart::sync`], which needs
    /// no engine, then [`Engine::flush_finish`]. Every write submitted before `flush_start` is
    /// durable once `flush_finish` returns; writes in between are not covered. A device
    /// without a [`BlockDevice::syncer`] flushes here, through itself.
    pub fn flush_start(&mut self) -> Result<FlushStart, SectorError> {
        let skip = bugs::active("sector:ack-before-flush");
        self.pack = None;
        let sync = if skip { None } else { self.dev.syncer() };
        if sync.is_none() && !skip {
            self.dev.flush()?;
        }
        Ok(FlushStart { mark: self.written_mark, sync, skip })
    }

    /// Second half of [`Engine::flush_start`]: the log up to the noted mark is durable; the
    /// flush is witnessed by a Mark if that advanced the durable mark (SEC-18). A flush of the
    /// engine's own in between (a compaction step's) may already have covered it.
    pub fn flush_finish(&mut self, start: FlushStart) -> Result<(), SectorError> {
        if start.skip {
            return Ok(());
        }
        if start.sync.is_some() {
            return Err(SectorError::Stopped("flush_finish before FlushStart::sync".into()));
        }
        if start.mark > self.durable_mark {
            self.durable_mark = start.mark;
            self.write_mark()?;
        }
        Ok(())
    }

    /// SEC-2: every acknowledgement that promises durability goes through here.
    fn flush_for_ack(&mut self) -> Result<(), SectorError> {
        if bugs::active("sector:ack-before-flush") {
            return Ok(());
        }
        self.flush_device()
    }

    pub(crate) fn flush_device(&mut self) -> Result<(), SectorError> {
        self.dev.flush()?;
        let advanced = self.written_mark > self.durable_mark;
        self.durable_mark = self.written_mark;
        // SEC-15: a flushed sector is never rewritten: close the packing sector.
        self.pack = None;
        if advanced {
            self.write_mark()?;
        }
        Ok(())
    }

    /// SEC-18: witnesses the flush on the medium. Records carry the mark current when they
    /// were written, so without a later record nothing on the device says the last flushed
    /// batch was flushed, and recovery would cut damage inside it as a torn tail, serving an
    /// older value. A Mark record at the head's next free sector carries the new mark. It is
    /// written, not flushed (one `fdatasync` per flush stays one); the next record placed
    /// there overwrites it and carries the same mark or a later one. The head always has that
    /// sector: records never use a zone's last one (`zones.rs::data_end`).
    fn write_mark(&mut self) -> Result<(), SectorError> {
        if bugs::active("sector:no-flush-mark") {
            return Ok(());
        }
        let Some(z) = self.head.filter(|_| self.head_next < self.sb.zone_sector_count) else {
            return Ok(());
        };
        let sector = self.sb.zone_first_sector(z) + u64::from(self.head_next);
        let h = mark(self.zones[z as usize].epoch, self.durable_mark, sector);
        Batch { ops: vec![(sector, lone_header_sector(&h))] }.submit(&mut self.dev)
    }

    /// Undoes the pending revertible write of `key`, restoring the previous value (or absence).
    pub fn revert(&mut self, key: Key) -> Result<(), SectorError> {
        let prev = self.reverts.get(&key).copied().ok_or(SectorError::NotRevertible(key))?;
        let old = match prev {
            Some(s) => self.read_sectors(&[(key, s)])?.pop().map(|(_, r)| r),
            None => None,
        };
        self.commit(key)?;
        match old {
            Some(r) => {
                self.write(key, &r.value, WriteOptions { next: r.next, ..WriteOptions::default() })?
            }
            None => {
                self.delete(key, WriteOptions::default())?;
                return Ok(());
            }
        };
        Ok(())
    }

    /// Makes the pending revertible write of `key` final; the previous version becomes dead.
    pub fn commit(&mut self, key: Key) -> Result<(), SectorError> {
        let prev = self.reverts.remove(&key).ok_or(SectorError::NotRevertible(key))?;
        if let Some(s) = prev {
            self.retire(s);
        }
        Ok(())
    }

    pub(crate) fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Points `key` at `sector` (or removes it) and retires the previous record, keeping it live
    /// instead when it becomes a revert target (SEC-12). Either way the key was rewritten or
    /// deleted, so it is no longer corrupt (SEC-6), whichever operation (write, delete, CAS
    /// member, revert) installs it.
    pub(crate) fn install(&mut self, key: Key, sector: Option<u64>, revertible: bool) {
        // A tombstone the key had is superseded (a delete notes its own afterwards).
        self.forget_tombstone(key);
        let old = match sector {
            Some(s) => self.index.insert(key, s as u32),
            None => self.index.remove(key),
        };
        self.corrupt.remove(&key);
        // SEC-13: the new record counts as live in its zone; the old one is retired below
        // unless it stays live as a revert target (SEC-12).
        if let Some(z) = sector.and_then(|s| self.zone_of(s)) {
            self.zones[z as usize].live += 1;
        }
        if revertible && !self.reverts.contains_key(&key) {
            self.reverts.insert(key, old);
            return;
        }
        if !revertible && let Some(Some(target)) = self.reverts.remove(&key) {
            self.retire(target);
        }
        if let Some(o) = old {
            self.retire(o);
        }
    }

    /// Appends one record at the head (packing it if flagged), returning its first sector.
    pub(crate) fn append_record(
        &mut self,
        batch: &mut Batch,
        mut h: RecordHeader,
        payload: &[u8],
        room: Room,
    ) -> Result<u64, SectorError> {
        h.durable_mark = self.durable_mark;
        // SEC-16: also guards the open packing sector, which `place` does not see.
        self.check_floor(room)?;
        if h.flags & FLAG_PACKED != 0 {
            return self.append_packed(batch, h, payload, room);
        }
        let n = (h.footprint_bytes() / SECTOR_SIZE_BYTES) as u32;
        let sector = self.place(batch, n, room)?;
        h.zone_epoch = self.head_epoch();
        h.sector = sector; // SEC-17
        let mut bytes = Vec::with_capacity(n as usize * SECTOR_SIZE_BYTES);
        bytes.extend_from_slice(&h.encode());
        bytes.extend_from_slice(payload);
        bytes.resize(n as usize * SECTOR_SIZE_BYTES, 0); // SEC-1: whole sectors only
        batch.ops.push((sector, bytes));
        self.note_record(sector, n, &h);
        Ok(sector)
    }

    fn append_packed(
        &mut self,
        batch: &mut Batch,
        mut h: RecordHeader,
        payload: &[u8],
        room: Room,
    ) -> Result<u64, SectorError> {
        let fp = h.footprint_bytes();
        // SEC-15: only the open packing sector (never flushed: a flush closes it) is rewritten.
        // SEC-9: never two records of one key in one packing sector, or they would share a
        // version.
        let fits = self
            .pack
            .as_ref()
            .is_some_and(|p| p.used + fp <= SECTOR_SIZE_BYTES && !p.keys.contains(&h.key));
        if !fits {
            let sector = self.place(batch, 1, room)?;
            self.pack =
                Some(Pack { sector, buf: vec![0u8; SECTOR_SIZE_BYTES], used: 0, keys: Vec::new() });
            self.note_record(sector, 1, &h);
            if let Some(z) = self.zone_of(sector).filter(|_| h.kind == Kind::Tombstone) {
                self.zones[z as usize].tomb_sectors += 1;
            }
        } else if let Some(z) = self.pack.as_ref().and_then(|p| self.zone_of(p.sector)) {
            self.zones[z as usize].count(&h);
        }
        h.zone_epoch = self.head_epoch();
        let Some(p) = self.pack.as_mut() else {
            return Err(SectorError::InvalidArgument("packing sector vanished".into()));
        };
        h.sector = p.sector; // SEC-17
        let start = p.used;
        if let Some(dst) = p.buf.get_mut(start..start + RECORD_HEADER_SIZE_BYTES) {
            dst.copy_from_slice(&h.encode());
        }
        let ps = start + RECORD_HEADER_SIZE_BYTES;
        if let Some(dst) = p.buf.get_mut(ps..ps + payload.len()) {
            dst.copy_from_slice(payload);
        }
        p.used += fp;
        p.keys.push(h.key);
        batch.ops.push((p.sector, p.buf.clone()));
        Ok(p.sector)
    }
}

/// SEC-16: a CAS with a Put member may grow the live data, so it is an ordinary write; one
/// whose members all delete may use the delete reserve.
fn cas_room(ops: &[CasOp]) -> Room {
    if ops.iter().any(|op| matches!(op.new, CasNew::Put(_))) { Room::Grow } else { Room::Shrink }
}

pub(crate) fn tombstone(key: Key, seq: u64, flags: u8, txn: u64) -> RecordHeader {
    RecordHeader {
        kind: Kind::Tombstone,
        flags,
        key,
        seq,
        zone_epoch: 0,
        payload_len: 0,
        next: 0,
        txn,
        value_len: 0,
        payload_crc: crc32c::crc32c(&[]),
        durable_mark: 0,
        sector: 0,
    }
}

/// A flush begun by [`Engine::flush_start`].
#[derive(Debug)]
#[must_use = "a flush is only complete after sync and Engine::flush_finish"]
pub struct FlushStart {
    /// `written_mark` at the start: what the flush covers.
    mark: u64,
    /// The device's syncer, until `sync` ran (`None`: the device flushed in `flush_start`).
    sync: Option<Arc<dyn DeviceSync>>,
    /// Planted `sector:ack-before-flush`: nothing is flushed or marked.
    skip: bool,
}

impl FlushStart {
    /// Flushes the device (SEC-2) without the engine: call it without the engine's lock.
    pub fn sync(&mut self) -> Result<(), SectorError> {
        if let Some(s) = &self.sync {
            s.sync()?;
        }
        self.sync = None;
        Ok(())
    }
}

pub(crate) fn seal(seq: u64, epoch: u32, durable_mark: u64) -> RecordHeader {
    RecordHeader { kind: Kind::Seal, zone_epoch: epoch, durable_mark, ..tombstone(0, seq, 0, 0) }
}

/// The sector of a record that is its header alone (a Seal, a Mark), zero-padded.
pub(crate) fn lone_header_sector(h: &RecordHeader) -> Vec<u8> {
    let mut bytes = h.encode().to_vec();
    bytes.resize(SECTOR_SIZE_BYTES, 0);
    bytes
}

/// A Mark record (SEC-18): seq 0, no key, no payload.
pub(crate) fn mark(epoch: u32, durable_mark: u64, sector: u64) -> RecordHeader {
    RecordHeader { kind: Kind::Mark, sector, ..seal(0, epoch, durable_mark) }
}
