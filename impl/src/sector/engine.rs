//! `Engine`: every sector-engine operation (`specs/sector.md` §7), single-threaded and
//! deterministic: it never reads the clock, spawns threads or draws randomness.
//!
//! Enforces SEC-2 (an ack with `flush` waits for the device flush), SEC-5/SEC-6 (payload CRC
//! checked on every read; a failed check is `SectorError::Corrupt` naming the key), SEC-8 (a CAS
//! writes its members and one commit record contiguously in one zone), SEC-9 (versions are never
//! reused), SEC-12 (revert state is volatile).
//!
//! Never returns bytes whose CRC failed, never writes over a sector that was flushed.

use super::device::{BlockDevice, ReadOp, WriteOp};
use super::format::{
    self, FLAG_COMPRESSED, FLAG_HAS_NEXT, FLAG_PACKED, FLAG_REVERTIBLE, Kind,
    RECORD_HEADER_SIZE_BYTES, RecordHeader, Superblock, ZoneHeader,
};
use super::index::Index;
use super::{
    CAS_OPS_MAX, DEVICE_SECTOR_COUNT_MAX, Key, READ_FOLLOW_RECORDS_MAX, READ_RANGE_KEYS_MAX,
    SECTOR_SIZE_BYTES, SectorError, VALUE_SIZE_MAX_BYTES_DEFAULT, Version, ZONE_SIZE_BYTES_DEFAULT,
    ZONE_SIZE_BYTES_MAX, ZONE_SIZE_BYTES_MIN,
};
use crate::bugs;
use std::collections::HashMap;

const SECTOR: u64 = SECTOR_SIZE_BYTES as u64;

/// Engine configuration. Setters are `#[must_use]` builders; geometry is fixed at `format`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub(crate) zone_size_bytes: usize,
    pub(crate) value_size_max_bytes: usize,
    pub(crate) compaction_dead_percent_min: u8,
    pub(crate) compaction_step_sectors_max: u32,
    pub(crate) zones_reserved_for_compaction: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            zone_size_bytes: ZONE_SIZE_BYTES_DEFAULT,
            value_size_max_bytes: VALUE_SIZE_MAX_BYTES_DEFAULT,
            compaction_dead_percent_min: 50,
            compaction_step_sectors_max: 256,
            zones_reserved_for_compaction: 1,
        }
    }
}

impl EngineConfig {
    /// Zone size used by `format` (ignored by `open`, which reads it from the superblock).
    /// Default 1 MiB. Smaller zones compact in smaller steps but cap the value size (a record
    /// never spans zones).
    ///
    /// # Panics
    /// If `bytes` is not a multiple of 4096 or outside [`ZONE_SIZE_BYTES_MIN`]..=
    /// [`ZONE_SIZE_BYTES_MAX`].
    #[must_use]
    pub fn zone_size_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes.is_multiple_of(SECTOR_SIZE_BYTES)
                && (ZONE_SIZE_BYTES_MIN..=ZONE_SIZE_BYTES_MAX).contains(&bytes),
            "zone size"
        );
        self.zone_size_bytes = bytes;
        self
    }

    /// Largest value accepted (before compression). Default 16 MiB; the zone size caps it too.
    #[must_use]
    pub fn value_size_max_bytes(mut self, bytes: usize) -> Self {
        self.value_size_max_bytes = bytes;
        self
    }

    /// Dead share (percent of a zone's records) past which the compactor picks a zone.
    /// Default 50. Lower reclaims space sooner at the cost of more relocation writes.
    ///
    /// # Panics
    /// If `percent` is above 100.
    #[must_use]
    pub fn compaction_dead_percent_min(mut self, percent: u8) -> Self {
        assert!(percent <= 100, "a percentage");
        self.compaction_dead_percent_min = percent;
        self
    }

    /// Most sectors one compaction step reads. Default 256 (1 MiB). Bounds how long a
    /// foreground operation can wait behind a step.
    ///
    /// # Panics
    /// If `sectors` is zero.
    #[must_use]
    pub fn compaction_step_sectors_max(mut self, sectors: u32) -> Self {
        assert!(sectors > 0, "a step must make progress");
        self.compaction_step_sectors_max = sectors;
        self
    }
}

/// A value read back, with the version naming this copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The value (decompressed if it was written compressed).
    pub value: Vec<u8>,
    /// The version to pass to `compare` or a conditional write.
    pub version: Version,
    /// The read-follow pointer, if the write set one.
    pub next: Option<Key>,
}

/// What a conditional write or CAS member expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Expect {
    /// No condition.
    #[default]
    Any,
    /// The key must be absent.
    Absent,
    /// The key must be at exactly this version.
    Version(Version),
}

/// Options of `write`, `append` and `delete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteOptions {
    /// Store the value LZ4-compressed (transparent to readers).
    pub compressed: bool,
    /// Pack a small record into a shared sector with other small records.
    pub compact: bool,
    /// Keep the previous version restorable by `revert` until `commit` (volatile, SEC-12).
    pub revertible: bool,
    /// Condition on the key's current state; a mismatch is `SectorError::VersionMismatch`.
    pub expected: Expect,
    /// Make the write durable before returning (SEC-2).
    pub flush: bool,
    /// Read-follow pointer stored with the record.
    pub next: Option<Key>,
}

/// A key or an inclusive span of keys, for `read_range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyRange {
    /// One key.
    One(Key),
    /// Every present key in `start..=end`.
    Span {
        /// First key.
        start: Key,
        /// Last key (inclusive).
        end: Key,
    },
}

/// The new state of one CAS member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CasNew {
    /// Store this value.
    Put(Vec<u8>),
    /// Delete the key.
    Delete,
}

/// One member of a multi-key CAS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CasOp {
    /// The key.
    pub key: Key,
    /// What the key must be at.
    pub expected: Expect,
    /// What it becomes.
    pub new: CasNew,
}

/// Outcome of a CAS: all members applied, or none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CasResult {
    /// Every member was applied; new versions in member order (`None` for deletes).
    Committed(Vec<Option<Version>>),
    /// Member `index` did not match; nothing was written.
    Mismatch {
        /// Position of the first failing member.
        index: usize,
        /// That key's current version.
        current: Option<Version>,
    },
}

/// Per-zone figures for `stat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneStat {
    /// Zone index.
    pub zone: u32,
    /// Epoch (0: free).
    pub epoch: u32,
    /// Records written into the zone (values, tombstones, commits, seals).
    pub records: u32,
    /// Records still live.
    pub live_records: u32,
    /// Sectors used.
    pub used_sectors: u32,
    /// Dead share of the zone's records, percent.
    pub dead_percent: u8,
}

/// Figures for `stat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Live keys.
    pub keys: u64,
    /// Keys whose newest record is known corrupt.
    pub corrupt_keys: u64,
    /// Estimated live bytes (used bytes × live share, per zone).
    pub live_bytes_estimate: u64,
    /// Bytes of RAM the index uses.
    pub index_bytes: u64,
    /// Free zones.
    pub free_zones: u32,
    /// Every zone in use.
    pub zones: Vec<ZoneStat>,
}

/// What recovery found (SEC-7): nothing here is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryReport {
    /// Valid superblock copies (1 or 2).
    pub superblock_copies_valid: u8,
    /// Zones holding data.
    pub zones_in_use: u32,
    /// Valid records applied or superseded.
    pub records_scanned: u64,
    /// Zones whose unflushed tail was cut: (zone, first cut sector).
    pub torn_tails: Vec<(u32, u64)>,
    /// Sectors below the durable mark that failed their checks (corruption, SEC-6).
    pub corrupt_sectors: Vec<u64>,
    /// Keys whose newest record failed its payload CRC; reads of them report corruption.
    pub corrupt_keys: Vec<Key>,
    /// Zones whose header is damaged (their records are ignored).
    pub corrupt_zone_headers: Vec<u32>,
    /// CAS transactions found incomplete and rolled back (SEC-8).
    pub txns_rolled_back: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Zone {
    pub(crate) epoch: u32,
    pub(crate) records: u32,
    pub(crate) live: u32,
    pub(crate) used_sectors: u32,
    pub(crate) min_seq: u64,
}

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

/// The sector engine over one device. See the module docs and `specs/sector.md`.
pub struct Engine<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) sb: Superblock,
    pub(crate) cfg: EngineConfig,
    pub(crate) index: Index,
    /// Keys whose newest record is corrupt → (its sector, detail) (SEC-6).
    pub(crate) corrupt: HashMap<Key, (u64, String)>,
    pub(crate) zones: Vec<Zone>,
    pub(crate) head: Option<u32>,
    pub(crate) head_next: u32,
    pub(crate) pack: Option<Pack>,
    pub(crate) next_seq: u64,
    pub(crate) next_epoch: u32,
    pub(crate) durable_mark: u64,
    pub(crate) written_mark: u64,
    /// Keys with a pending revertible write → the previous sector (`None`: was absent).
    pub(crate) reverts: HashMap<Key, Option<u32>>,
    pub(crate) compact: super::compact::CompactState,
    pub(crate) report: RecoveryReport,
}

impl<D: BlockDevice> std::fmt::Debug for Engine<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("keys", &self.index.len()).field("sb", &self.sb).finish()
    }
}

/// Log position of `sector` in a zone of epoch `epoch` (spec §5): log order is (epoch, sector).
pub(crate) fn position(epoch: u32, sector: u64) -> u64 {
    (u64::from(epoch) << 32) | (sector & 0xffff_ffff)
}

impl<D: BlockDevice> Engine<D> {
    /// Formats `device`: writes both superblocks, zeroes every zone header, flushes.
    pub fn format(mut device: D, config: EngineConfig) -> Result<Engine<D>, SectorError> {
        let sectors = device.sector_count().min(DEVICE_SECTOR_COUNT_MAX);
        let zone_sectors = (config.zone_size_bytes / SECTOR_SIZE_BYTES) as u64;
        let zone_count = sectors.saturating_sub(format::SUPERBLOCK_COPIES) / zone_sectors;
        let sb = Superblock {
            zone_sector_count: zone_sectors as u32,
            zone_count: u32::try_from(zone_count).unwrap_or(u32::MAX),
            device_sector_count: sectors,
        };
        sb.check().map_err(|e| SectorError::Geometry(format!("{e} ({sectors} sectors)")))?;
        let zero = vec![0u8; SECTOR_SIZE_BYTES];
        let mut batch = Batch::default();
        for z in 0..sb.zone_count {
            batch.ops.push((sb.zone_first_sector(z), zero.clone()));
        }
        batch.submit(&mut device)?;
        device.flush()?;
        // Superblocks last: a crash mid-format leaves an unformatted device, never a half one.
        let (a, b) = (sb.encode(0), sb.encode(1));
        device.write_batch(&[
            WriteOp { first_sector: 0, data: &a },
            WriteOp { first_sector: 1, data: &b },
        ])?;
        device.flush()?;
        Engine::open(device, config)
    }

    /// Opens a formatted device and rebuilds the index (SEC-7). See [`Engine::recovery_report`].
    pub fn open(device: D, config: EngineConfig) -> Result<Engine<D>, SectorError> {
        super::recovery::recover(device, config)
    }

    /// What the last `open` found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The device (tests and the simulator inspect it).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Consumes the engine, returning its device without flushing (a crash, for tests).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Largest value `write` accepts.
    pub fn value_size_max_bytes(&self) -> usize {
        let zone_bytes = (self.sb.zone_sector_count as usize - 1) * SECTOR_SIZE_BYTES;
        self.cfg.value_size_max_bytes.min(zone_bytes - RECORD_HEADER_SIZE_BYTES)
    }

    /// The current version of `key`, if present.
    pub fn version(&self, key: Key) -> Option<Version> {
        self.index.get(key).map(|s| self.version_at(s))
    }

    pub(crate) fn version_at(&self, sector: u32) -> Version {
        let epoch = self.zone_of(u64::from(sector)).map_or(0, |z| self.zones[z as usize].epoch);
        Version::new(epoch, sector)
    }

    pub(crate) fn zone_of(&self, sector: u64) -> Option<u32> {
        let rel = sector.checked_sub(format::SUPERBLOCK_COPIES)?;
        let z = rel / u64::from(self.sb.zone_sector_count);
        (z < u64::from(self.sb.zone_count)).then_some(z as u32)
    }

    /// Is `key` still at `version`? (Compaction moves records and changes versions, SEC-10.)
    pub fn compare(&self, key: Key, version: Version) -> bool {
        self.version(key) == Some(version)
    }

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

    /// Reads `key`'s value. A record failing its CRC is `SectorError::Corrupt` (SEC-6).
    pub fn read(&mut self, key: Key) -> Result<Option<Record>, SectorError> {
        let mut out = self.read_keys(&[key])?;
        Ok(out.pop().map(|(_, r)| r))
    }

    /// The value `revert(key)` would restore, while a revertible write is pending (SEC-12).
    pub fn read_previous(&mut self, key: Key) -> Result<Option<Record>, SectorError> {
        match self.reverts.get(&key).copied() {
            None => Err(SectorError::NotRevertible(key)),
            Some(None) => Ok(None),
            Some(Some(sector)) => {
                self.read_sectors(&[(key, sector)]).map(|mut v| v.pop().map(|(_, r)| r))
            }
        }
    }

    /// Reads many keys and inclusive key spans; every first-sector read is submitted in one
    /// batch, every remaining sector in a second. Results ascend by key; absent keys are left
    /// out. At most [`READ_RANGE_KEYS_MAX`] keys.
    pub fn read_range(&mut self, ranges: &[KeyRange]) -> Result<Vec<(Key, Record)>, SectorError> {
        let mut keys = Vec::new();
        for r in ranges {
            match *r {
                KeyRange::One(k) => keys.push(k),
                KeyRange::Span { start, end }
                    if end.wrapping_sub(start) < READ_RANGE_KEYS_MAX && start <= end =>
                {
                    keys.extend(
                        (start..=end).filter(|k| {
                            self.index.get(*k).is_some() || self.corrupt.contains_key(k)
                        }),
                    );
                }
                KeyRange::Span { start, end } => {
                    keys.extend(
                        self.index.iter().map(|(k, _)| k).filter(|k| (start..=end).contains(k)),
                    );
                }
            }
            if keys.len() as u64 > READ_RANGE_KEYS_MAX {
                return Err(SectorError::TooLarge {
                    what: "read_range keys",
                    size: keys.len() as u64,
                    max: READ_RANGE_KEYS_MAX,
                });
            }
        }
        keys.sort_unstable();
        keys.dedup();
        self.read_keys(&keys)
    }

    /// Reads `key` and then the records its `next` pointers lead to, up to `max` records
    /// (capped at [`READ_FOLLOW_RECORDS_MAX`]); stops at a missing key or a cycle.
    pub fn read_follow(&mut self, key: Key, max: usize) -> Result<Vec<(Key, Record)>, SectorError> {
        let mut out: Vec<(Key, Record)> = Vec::new();
        let mut next = Some(key);
        while let Some(k) = next {
            if out.len() >= max.min(READ_FOLLOW_RECORDS_MAX)
                || out.iter().any(|(seen, _)| *seen == k)
            {
                break;
            }
            let Some(rec) = self.read(k)? else { break };
            next = rec.next;
            out.push((k, rec));
        }
        Ok(out)
    }

    fn read_keys(&mut self, keys: &[Key]) -> Result<Vec<(Key, Record)>, SectorError> {
        let mut locs = Vec::with_capacity(keys.len());
        for &k in keys {
            if let Some((_, detail)) = self.corrupt.get(&k) {
                return Err(SectorError::Corrupt { key: k, detail: detail.clone() });
            }
            if let Some(s) = self.index.get(k) {
                locs.push((k, s));
            }
        }
        self.read_sectors(&locs)
    }

    /// Reads the records of `(key, sector)` pairs in two batches and checks them (SEC-5/6).
    pub(crate) fn read_sectors(
        &mut self,
        locs: &[(Key, u32)],
    ) -> Result<Vec<(Key, Record)>, SectorError> {
        let mut firsts = vec![vec![0u8; SECTOR_SIZE_BYTES]; locs.len()];
        {
            let mut ops: Vec<ReadOp<'_>> = locs
                .iter()
                .zip(firsts.iter_mut())
                .map(|((_, s), b)| ReadOp { first_sector: u64::from(*s), buf: b })
                .collect();
            self.dev.read_batch(&mut ops)?;
        }
        let mut found = Vec::with_capacity(locs.len());
        for ((key, sector), first) in locs.iter().zip(&firsts) {
            found.push(self.locate(*key, *sector, first)?);
        }
        let mut rests: Vec<Vec<u8>> =
            found.iter().map(|(_, off, h)| vec![0u8; rest_len(*off, h)]).collect();
        {
            let mut ops: Vec<ReadOp<'_>> = locs
                .iter()
                .zip(rests.iter_mut())
                .filter(|(_, b)| !b.is_empty())
                .map(|((_, s), b)| ReadOp { first_sector: u64::from(*s) + 1, buf: b })
                .collect();
            if !ops.is_empty() {
                self.dev.read_batch(&mut ops)?;
            }
        }
        let mut out = Vec::with_capacity(locs.len());
        for (((key, sector), first), ((_, off, h), rest)) in
            locs.iter().zip(&firsts).zip(found.iter().zip(&rests))
        {
            let start = off + RECORD_HEADER_SIZE_BYTES;
            let mut payload = first.get(start..).unwrap_or(&[]).to_vec();
            payload.extend_from_slice(rest);
            payload.truncate(h.payload_len as usize);
            out.push((*key, self.decode_value(*key, *sector, h, payload)?));
        }
        Ok(out)
    }

    /// Finds `key`'s record in the first sector (offset 0, or scanning a packed sector).
    fn locate(
        &self,
        key: Key,
        sector: u32,
        first: &[u8],
    ) -> Result<(Key, usize, RecordHeader), SectorError> {
        let corrupt = |detail: String| SectorError::Corrupt { key, detail };
        let epoch = self.version_at(sector).zone_epoch();
        let mut off = 0usize;
        let mut best: Option<(usize, RecordHeader)> = None;
        while off + RECORD_HEADER_SIZE_BYTES <= SECTOR_SIZE_BYTES {
            let bytes = first.get(off..).unwrap_or(&[]);
            let h = match RecordHeader::decode(bytes) {
                Ok(h) => h,
                Err(e) if off == 0 => return Err(corrupt(format!("sector {sector}: header: {e}"))),
                Err(_) => break,
            };
            if h.key == key
                && h.kind == Kind::Put
                && h.zone_epoch == epoch
                && best.is_none_or(|(_, b)| b.seq < h.seq)
            {
                best = Some((off, h));
            }
            if h.flags & FLAG_PACKED == 0 {
                break;
            }
            off += h.footprint_bytes();
        }
        let (off, h) =
            best.ok_or_else(|| corrupt(format!("sector {sector}: no record for the key")))?;
        let zone_end =
            self.zone_of(u64::from(sector)).map_or(0, |z| self.sb.zone_first_sector(z + 1));
        let end_bytes = u64::from(sector) * SECTOR
            + (off + RECORD_HEADER_SIZE_BYTES) as u64
            + u64::from(h.payload_len);
        if end_bytes > zone_end * SECTOR {
            return Err(corrupt(format!(
                "sector {sector}: length {} past zone end",
                h.payload_len
            )));
        }
        Ok((key, off, h))
    }

    fn decode_value(
        &self,
        key: Key,
        sector: u32,
        h: &RecordHeader,
        payload: Vec<u8>,
    ) -> Result<Record, SectorError> {
        // SEC-5, SEC-6: the payload CRC is checked on every read.
        if !bugs::active("sector:skip-crc-on-read") {
            h.check_payload(&payload).map_err(|e| SectorError::Corrupt {
                key,
                detail: format!("sector {sector}: {e}"),
            })?;
        }
        let value = if h.flags & FLAG_COMPRESSED != 0 {
            lz4_flex::block::decompress(&payload, h.value_len as usize)
                .map_err(|e| SectorError::Decompress { key, detail: e.to_string() })?
        } else {
            payload
        };
        let next = (h.flags & FLAG_HAS_NEXT != 0).then_some(h.next);
        Ok(Record { value, version: self.version_at(sector), next })
    }

    /// Re-reads `key`'s sectors and checks their CRCs: `Ok(true)` if sound, `Ok(false)` if the
    /// key is absent, `SectorError::Corrupt` otherwise.
    pub fn verify(&mut self, key: Key) -> Result<bool, SectorError> {
        Ok(self.read(key)?.is_some())
    }

    /// Re-reads every live key and checks its CRCs; returns each failure (key, detail), in key
    /// order, including keys recovery already found corrupt. The whole-device scan for
    /// `cellar sector verify`: also see [`Engine::recovery_report`] for damaged sectors.
    pub fn verify_all(&mut self) -> Result<Vec<(Key, String)>, SectorError> {
        let mut keys = self.keys();
        keys.extend(self.corrupt.keys().copied());
        keys.sort_unstable();
        keys.dedup();
        let mut failures = Vec::new();
        for key in keys {
            match self.read(key) {
                Ok(_) => {}
                Err(SectorError::Corrupt { key, detail }) => failures.push((key, detail)),
                Err(SectorError::Decompress { key, detail }) => failures.push((key, detail)),
                Err(e) => return Err(e),
            }
        }
        Ok(failures)
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
        if value.len() > max {
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
        };
        let mut batch = Batch::default();
        let sector = self.append_record(&mut batch, h, payload, false)?;
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
    /// of `opts` apply.
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
        let h = tombstone(key, self.take_seq(), 0, 0);
        let mut batch = Batch::default();
        self.append_record(&mut batch, h, &[], false)?;
        batch.submit(&mut self.dev)?;
        self.install(key, None, opts.revertible);
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
        let sectors = super::commit::write_txn(self, ops)?;
        Ok(CasResult::Committed(sectors.iter().map(|s| s.map(|s| self.version_at(s))).collect()))
    }

    /// Group commit: every write submitted before the call is durable when it returns (SEC-2).
    pub fn flush(&mut self) -> Result<(), SectorError> {
        self.flush_for_ack()
    }

    fn flush_for_ack(&mut self) -> Result<(), SectorError> {
        if bugs::active("sector:ack-before-flush") {
            return Ok(());
        }
        self.flush_device()
    }

    pub(crate) fn flush_device(&mut self) -> Result<(), SectorError> {
        self.dev.flush()?;
        self.durable_mark = self.written_mark;
        // A flushed sector is never rewritten: close the packing sector.
        self.pack = None;
        Ok(())
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

    /// Keys, live bytes and dead share per zone.
    pub fn stat(&self) -> EngineStats {
        let zones: Vec<ZoneStat> = self
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| z.epoch != 0)
            .map(|(i, z)| ZoneStat {
                zone: i as u32,
                epoch: z.epoch,
                records: z.records,
                live_records: z.live,
                used_sectors: z.used_sectors,
                dead_percent: dead_percent(z),
            })
            .collect();
        let live_bytes_estimate = zones
            .iter()
            .map(|z| {
                u64::from(z.used_sectors) * SECTOR * u64::from(z.live_records)
                    / u64::from(z.records.max(1))
            })
            .sum();
        EngineStats {
            keys: self.index.len() as u64,
            corrupt_keys: self.corrupt.len() as u64,
            live_bytes_estimate,
            index_bytes: self.index.heap_bytes() as u64,
            free_zones: self.zones.iter().filter(|z| z.epoch == 0).count() as u32,
            zones,
        }
    }

    /// Every live key (unordered). O(keys).
    pub fn keys(&self) -> Vec<Key> {
        self.index.iter().map(|(k, _)| k).collect()
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
        let old = match sector {
            Some(s) => self.index.insert(key, s as u32),
            None => self.index.remove(key),
        };
        self.corrupt.remove(&key);
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

    pub(crate) fn retire(&mut self, sector: u32) {
        if let Some(z) = self.zone_of(u64::from(sector)) {
            let zone = &mut self.zones[z as usize];
            debug_assert!(zone.live > 0, "SEC-13: live count underflow in zone {z}");
            zone.live = zone.live.saturating_sub(1);
        }
    }

    /// Appends one record at the head (packing it if flagged), returning its first sector.
    pub(crate) fn append_record(
        &mut self,
        batch: &mut Batch,
        mut h: RecordHeader,
        payload: &[u8],
        for_compaction: bool,
    ) -> Result<u64, SectorError> {
        h.durable_mark = self.durable_mark;
        if h.flags & FLAG_PACKED != 0 {
            return self.append_packed(batch, h, payload, for_compaction);
        }
        let n = (h.footprint_bytes() / SECTOR_SIZE_BYTES) as u32;
        let sector = self.place(batch, n, for_compaction)?;
        h.zone_epoch = self.head_epoch();
        let mut bytes = Vec::with_capacity(n as usize * SECTOR_SIZE_BYTES);
        bytes.extend_from_slice(&h.encode());
        bytes.extend_from_slice(payload);
        bytes.resize(n as usize * SECTOR_SIZE_BYTES, 0);
        batch.ops.push((sector, bytes));
        self.note_record(sector, n, h.seq);
        Ok(sector)
    }

    fn append_packed(
        &mut self,
        batch: &mut Batch,
        mut h: RecordHeader,
        payload: &[u8],
        for_compaction: bool,
    ) -> Result<u64, SectorError> {
        let fp = h.footprint_bytes();
        let fits = self
            .pack
            .as_ref()
            .is_some_and(|p| p.used + fp <= SECTOR_SIZE_BYTES && !p.keys.contains(&h.key));
        if !fits {
            let sector = self.place(batch, 1, for_compaction)?;
            self.pack =
                Some(Pack { sector, buf: vec![0u8; SECTOR_SIZE_BYTES], used: 0, keys: Vec::new() });
            self.note_record(sector, 1, h.seq);
        } else if let Some(p) = &self.pack {
            let sector = p.sector;
            if let Some(z) = self.zone_of(sector) {
                let zone = &mut self.zones[z as usize];
                zone.records += 1;
                zone.min_seq = zone.min_seq.min(h.seq);
            }
        }
        h.zone_epoch = self.head_epoch();
        let Some(p) = self.pack.as_mut() else {
            return Err(SectorError::InvalidArgument("packing sector vanished".into()));
        };
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

    pub(crate) fn note_record(&mut self, sector: u64, n: u32, seq: u64) {
        if let Some(z) = self.zone_of(sector) {
            let zone = &mut self.zones[z as usize];
            zone.records += 1;
            zone.min_seq = zone.min_seq.min(seq);
            self.written_mark = position(zone.epoch, sector + u64::from(n));
        }
    }

    pub(crate) fn head_epoch(&self) -> u32 {
        self.head.map_or(0, |z| self.zones[z as usize].epoch)
    }

    /// Reserves `n` contiguous sectors at the head, opening a new zone if needed.
    pub(crate) fn place(
        &mut self,
        batch: &mut Batch,
        n: u32,
        for_compaction: bool,
    ) -> Result<u64, SectorError> {
        let zs = self.sb.zone_sector_count;
        if n >= zs {
            return Err(SectorError::TooLarge {
                what: "record sectors",
                size: n.into(),
                max: (zs - 1).into(),
            });
        }
        let room = self.head.is_some() && self.head_next + n <= zs;
        if !room {
            self.open_zone(batch, for_compaction)?;
        }
        let z = self.head.ok_or(SectorError::DeviceFull)?;
        let sector = self.sb.zone_first_sector(z) + u64::from(self.head_next);
        self.head_next += n;
        self.zones[z as usize].used_sectors = self.head_next;
        Ok(sector)
    }

    /// Seals the current head (SEC-7) and opens the lowest free zone with a fresh epoch (SEC-4).
    ///
    /// SEC-4: the new header is durable before any record of its epoch is written: everything
    /// batched so far, the seal and the header are submitted and flushed here. Otherwise a
    /// power cut could land records of the epoch but not its header, and the next recovery,
    /// not seeing the epoch anywhere, would hand it out again and revive those records.
    fn open_zone(&mut self, batch: &mut Batch, for_compaction: bool) -> Result<(), SectorError> {
        let free: Vec<u32> = (0..self.sb.zone_count)
            .filter(|z| self.zones[*z as usize].epoch == 0 && !self.compact.is_victim(*z))
            .collect();
        let reserve =
            if for_compaction { 0 } else { self.cfg.zones_reserved_for_compaction as usize };
        let Some(&z) = free.first().filter(|_| free.len() > reserve) else {
            return Err(SectorError::DeviceFull);
        };
        self.seal_head(batch);
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.checked_add(1).ok_or(SectorError::DeviceFull)?;
        batch.ops.push((self.sb.zone_first_sector(z), ZoneHeader { zone: z, epoch }.encode()));
        std::mem::take(batch).submit(&mut self.dev)?;
        self.flush_device()?;
        debug_assert!(batch.ops.is_empty(), "SEC-4: no record of the epoch precedes its header");
        self.zones[z as usize] =
            Zone { epoch, records: 0, live: 0, used_sectors: 1, min_seq: u64::MAX };
        self.head = Some(z);
        self.head_next = 1;
        self.written_mark = position(epoch, self.sb.zone_first_sector(z) + 1);
        Ok(())
    }

    /// Writes a seal record after the head's data if a sector is left (SEC-7).
    pub(crate) fn seal_head(&mut self, batch: &mut Batch) {
        self.pack = None;
        let Some(z) = self.head.take() else { return };
        if self.head_next >= self.sb.zone_sector_count {
            return;
        }
        let sector = self.sb.zone_first_sector(z) + u64::from(self.head_next);
        let epoch = self.zones[z as usize].epoch;
        let h = seal(self.take_seq(), epoch, self.durable_mark);
        let mut bytes = h.encode().to_vec();
        bytes.resize(SECTOR_SIZE_BYTES, 0);
        batch.ops.push((sector, bytes));
        let zone = &mut self.zones[z as usize];
        zone.records += 1;
        zone.used_sectors = self.head_next + 1;
    }
}

fn rest_len(off: usize, h: &RecordHeader) -> usize {
    let end = off + RECORD_HEADER_SIZE_BYTES + h.payload_len as usize;
    end.saturating_sub(SECTOR_SIZE_BYTES).div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES
}

pub(crate) fn dead_percent(z: &Zone) -> u8 {
    if z.records == 0 {
        return 0;
    }
    (u64::from(z.records - z.live.min(z.records)) * 100 / u64::from(z.records)) as u8
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
    }
}

pub(crate) fn seal(seq: u64, epoch: u32, durable_mark: u64) -> RecordHeader {
    RecordHeader { kind: Kind::Seal, zone_epoch: epoch, durable_mark, ..tombstone(0, seq, 0, 0) }
}
