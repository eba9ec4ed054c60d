//! The read path (`specs/sector.md` §7): `read`, `read_previous`, `read_range`, `read_follow`,
//! `compare`, `verify` and `verify_all`. Every read goes through [`Engine::read_sectors`]: the
//! first two sectors of all records in one device batch (so a 4 KiB value with its header is
//! one round trip), the remaining sectors of longer records in a second.
//!
//! Enforces SEC-5/SEC-6: the payload CRC is checked on every read, and a failed check, or a key
//! recovery found corrupt, is `SectorError::Corrupt` naming the key; an older version is never
//! served in its place. Never writes.

use super::config::SECTOR_SIZE_BYTES_U64;
use super::device::{BlockDevice, ReadOp};
use super::format::{
    FLAG_COMPRESSED, FLAG_HAS_NEXT, FLAG_PACKED, Kind, RECORD_HEADER_SIZE_BYTES, RecordHeader,
};
use super::repair::repair_header;
use super::types::{KeyRange, Record};
use super::{
    Engine, Key, READ_FOLLOW_RECORDS_MAX, READ_RANGE_KEYS_MAX, SECTOR_SIZE_BYTES, SectorError,
    Version,
};
use crate::bugs;

/// Sectors of each record read in the first batch: a record of up to this many sectors (a
/// 4 KiB value and its 80-byte header take two) costs one device round trip (§7).
pub const FIRST_READ_SECTORS: u64 = 2;

impl<D: BlockDevice> Engine<D> {
    /// Is `key` still at `version`? (Compaction moves records and changes versions, SEC-10.)
    pub fn compare(&self, key: Key, version: Version) -> bool {
        self.version(key) == Some(version)
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

    /// Reads many keys and inclusive key spans; the first two sectors of every record are
    /// read in one batch, any remaining sectors in a second. Results ascend by key; absent keys are left
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

    /// Reads the records of `(key, sector)` pairs and checks them (SEC-5/6): one device batch
    /// for every record's first [`FIRST_READ_SECTORS`] sectors, a second only for records longer
    /// than that (§7).
    pub(crate) fn read_sectors(
        &mut self,
        locs: &[(Key, u32)],
    ) -> Result<Vec<(Key, Record)>, SectorError> {
        let spans: Vec<u64> = locs.iter().map(|(_, s)| self.first_read_sectors(*s)).collect();
        let mut firsts = self.read_firsts(locs, &spans);
        if firsts.is_err() && spans.iter().any(|n| *n > 1) {
            // The speculative sector may be another record's, or unused: a device error there
            // must not fail this read, so the batch is read again, first sectors only.
            firsts = self.read_firsts(locs, &vec![1; locs.len()]);
        }
        let firsts = firsts?;
        let mut found = Vec::with_capacity(locs.len());
        for ((key, sector), first) in locs.iter().zip(&firsts) {
            let head = first.get(..SECTOR_SIZE_BYTES).unwrap_or(first);
            found.push(self.locate(*key, *sector, head)?);
        }
        let mut rests: Vec<Vec<u8>> = found
            .iter()
            .zip(&firsts)
            .map(|((_, off, h), first)| vec![0u8; rest_len(*off, h, first.len())])
            .collect();
        {
            let mut ops: Vec<ReadOp<'_>> = locs
                .iter()
                .zip(&firsts)
                .zip(rests.iter_mut())
                .filter(|(_, b)| !b.is_empty())
                .map(|(((_, s), first), b)| ReadOp {
                    first_sector: u64::from(*s) + (first.len() / SECTOR_SIZE_BYTES) as u64,
                    buf: b,
                })
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

    /// How many sectors the first read of a record at `sector` covers: [`FIRST_READ_SECTORS`],
    /// but never past the end of its zone (a record never crosses one, §4).
    fn first_read_sectors(&self, sector: u32) -> u64 {
        let s = u64::from(sector);
        self.zone_end(s).unwrap_or(s + 1).saturating_sub(s).clamp(1, FIRST_READ_SECTORS)
    }

    /// One device batch reading `spans[i]` sectors from each `locs[i]`'s sector.
    fn read_firsts(
        &mut self,
        locs: &[(Key, u32)],
        spans: &[u64],
    ) -> Result<Vec<Vec<u8>>, SectorError> {
        let mut firsts: Vec<Vec<u8>> =
            spans.iter().map(|n| vec![0u8; *n as usize * SECTOR_SIZE_BYTES]).collect();
        let mut ops: Vec<ReadOp<'_>> = locs
            .iter()
            .zip(firsts.iter_mut())
            .map(|((_, s), b)| ReadOp { first_sector: u64::from(*s), buf: b })
            .collect();
        self.dev.read_batch(&mut ops)?;
        drop(ops);
        Ok(firsts)
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
                Err(e) => {
                    // SEC-6, SEC-18: one damaged byte is repaired to find where the record ends,
                    // as recovery does; it is never served, and if it is the key's, the key is
                    // corrupt. Otherwise the rest of the packing sector is unreadable.
                    let fixed = repair_header(&e, bytes, epoch, u64::from(sector));
                    match fixed {
                        Some(h) if h.key != key && h.flags & FLAG_PACKED != 0 => {
                            off += h.footprint_bytes();
                            continue;
                        }
                        _ if off == 0 || fixed.is_some() => {
                            return Err(corrupt(format!("sector {sector}: header: {e}")));
                        }
                        _ => break,
                    }
                }
            };
            // SEC-17: the sector's content must be the one written there.
            if h.sector != u64::from(sector) && !bugs::active("sector:ignore-record-address") {
                return Err(corrupt(format!(
                    "sector {sector}: misplaced record (written for sector {})",
                    h.sector
                )));
            }
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
        let zone_end = self.zone_end(u64::from(sector)).unwrap_or(0);
        let end_bytes = u64::from(sector) * SECTOR_SIZE_BYTES_U64
            + (off + RECORD_HEADER_SIZE_BYTES) as u64
            + u64::from(h.payload_len);
        if end_bytes > zone_end * SECTOR_SIZE_BYTES_U64 {
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
}

/// Bytes of the record's sectors past the `read` bytes the first batch brought, whole sectors.
fn rest_len(off: usize, h: &RecordHeader, read: usize) -> usize {
    let end = off + RECORD_HEADER_SIZE_BYTES + h.payload_len as usize;
    end.saturating_sub(read).div_ceil(SECTOR_SIZE_BYTES) * SECTOR_SIZE_BYTES
}
