//! The header fault atlas (issue 15): damage to the bytes that describe data rather than the
//! data itself, each with the outcome `specs/sector.md` §12 promises.
//!
//! - **While running** (an overlay fault, like payload corruption): one byte of the first sector
//!   of a key's current record is flipped — half the time inside a record header, otherwise
//!   anywhere in the bytes of a record of that sector, so packing sectors (several records in
//!   one sector, §4) are hit in their headers, payloads and padding alike. Every key whose
//!   current record starts in that sector may now fail naming itself (SEC-5, SEC-6): a damaged
//!   packed header hides the records after it. Never wrong bytes, never another key's error.
//! - **At a power cut, on the medium** (survives later power cycles until rewritten): a byte of
//!   one superblock copy — always the same copy in a run, so the other stays sound — must be
//!   *survived*: recovery exact, and reported as one valid copy (SEC-3); or a byte of a zone's
//!   free header: *detected* (`corrupt_zone_headers` names exactly the damaged zones until they
//!   are reused) and *survived* (a free zone holds nothing live; SEC-4 still holds, which the
//!   exact recovery oracle would see as a revived stale record); or a free header zeroed (a
//!   sector the drive lost): *detected* when the zone's first data sector still holds a record
//!   naming it (a lost header, §3: its epoch must still bound the next one), otherwise the zone
//!   is fresh (trimmed, nothing of its epoch left) and nothing is reported.
//!
//! - **At rest, on the medium** (SEC-18): the cache settles (every write lands, as a drive does
//!   when idle), then one byte of the first sector of a key's current record flips: header,
//!   payload or padding, packing sectors included. Every key whose current record starts there
//!   may now read `Corrupt` naming itself, at recovery and until rewritten; recovery may report
//!   exactly that sector. Never an older value (the flushed batch is witnessed by its Mark),
//!   never absent, never another key's error.
//!
//! Not injected: a flip of an in-use zone header, and damage to more than one byte of a header
//! (the one-byte repair of §8 cannot name the key there, §13).
//!
//! Faults hit only sectors whose every record belongs to a key/value client: the cell and
//! volume oracles do not take media faults on their records.

use super::{Ev, World, lock};
use crate::oracle::Violation;
use crate::ssd::{SimSsd, SsdConfig};
use cellar::sector::format::{FLAG_PACKED, RECORD_HEADER_SIZE_BYTES, RecordHeader, ZoneHeader};
use cellar::sector::{Key, RecoveryReport, SECTOR_SIZE_BYTES};
use std::collections::BTreeSet;

/// Bytes of a zone header that decoding reads (`specs/sector.md` §3.1).
const ZONE_HEADER_DECODED_BYTES: u64 = 32;

/// Damage the header atlas left on the medium: what recovery must report.
#[derive(Debug, Default)]
pub struct MediumDamage {
    /// The superblock copy (0 or 1) flipped on the medium, if any; the same one all run.
    superblock_copy: Option<u64>,
    /// Zones whose free header was flipped or zeroed (until the zone is reused).
    free_headers: BTreeSet<u32>,
    /// Sectors flipped at rest, and the keys whose current record started there: recovery may
    /// name them (a superset: a sector stays allowed after its keys are rewritten).
    records: BTreeSet<u64>,
    record_keys: BTreeSet<Key>,
}

/// A record found in a sector: its offset and the bytes it covers there.
struct Found {
    offset: usize,
    len: usize,
    key: Key,
}

/// The records a read of this sector would find: one at offset 0, then more while packed.
fn records_in(sector: &[u8]) -> Vec<Found> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + RECORD_HEADER_SIZE_BYTES <= SECTOR_SIZE_BYTES {
        let Ok(h) = RecordHeader::decode(&sector[off..]) else { break };
        let len = h.footprint_bytes().min(SECTOR_SIZE_BYTES - off);
        out.push(Found { offset: off, len, key: h.key });
        if h.flags & FLAG_PACKED == 0 {
            break;
        }
        off += h.footprint_bytes();
    }
    out
}

/// The distinct first sectors of `located` records, ascending.
fn sectors_of(located: &[(Key, u64)]) -> impl Iterator<Item = u64> {
    located.iter().map(|(_, s)| *s).collect::<BTreeSet<u64>>().into_iter()
}

/// Zone `z`'s header sector, by the simulated device's own geometry (as misdirection uses it).
fn zone_header_sector(ssd: &SsdConfig, z: u32) -> u64 {
    ssd.zone_base_sector + u64::from(z) * ssd.zone_sector_count
}

impl World<'_> {
    /// A flipped byte in the first sector of a key's current record, while running.
    pub(super) fn inject_header(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        if let Some(engine) = self.engine.clone() {
            let mut e = lock(&engine);
            let located = self.located(&e);
            let mut candidates: Vec<(u64, Vec<Found>)> =
                sectors_of(&located).map(|s| (s, records_in(e.device_mut().peek(s)))).collect();
            // Half the time a packing sector, when there is one: few records are packed.
            let packed = candidates.iter().any(|(_, r)| r.len() > 1);
            if self.rng.coin() && packed {
                candidates.retain(|(_, r)| r.len() > 1);
            }
            if !candidates.is_empty() {
                let pick = self.rng.below(candidates.len() as u64) as usize;
                let (sector, records) = candidates.swap_remove(pick);
                let ours = records.iter().all(|r| r.key < self.knobs.kv_keys);
                if ours && !records.is_empty() {
                    let r = &records[self.rng.below(records.len() as u64) as usize];
                    let span = if self.rng.coin() { RECORD_HEADER_SIZE_BYTES } else { r.len };
                    let offset = r.offset + self.rng.below(span as u64) as usize;
                    let mask = 1u8 << self.rng.below(8);
                    e.device_mut().inject_corrupt(sector, offset, mask);
                    let hit: Vec<Key> =
                        located.iter().filter(|(_, s)| *s == sector).map(|(k, _)| *k).collect();
                    drop(e);
                    for k in &hit {
                        self.model.damage(*k);
                    }
                    self.faults.header += 1;
                    self.faults.header_packed += u64::from(records.len() > 1);
                    self.trace.event(
                        self.now_us,
                        format_args!(
                            "FAULT header: sector {sector} byte {offset} ({} records there, \
                             keys {hit:?} may fail)",
                            records.len()
                        ),
                    );
                }
            }
        }
        let d = self.every(self.knobs.header_every_us);
        self.at(d, Ev::Header);
        Ok(())
    }

    /// At a power cut, with medium faults on: sometimes flips a byte of one superblock copy
    /// or of a free header on the medium.
    pub(super) fn damage_medium(&mut self, ssd: &mut SimSsd) {
        if self.knobs.medium_ppm == 0 || !self.rng.chance_ppm(self.knobs.medium_ppm) {
            return;
        }
        let mask = 1u8 << self.rng.below(8);
        if self.rng.coin() {
            let copy = match self.medium.superblock_copy {
                Some(c) => c,
                None => self.rng.below(2),
            };
            let offset = self.rng.below(SECTOR_SIZE_BYTES as u64) as usize;
            ssd.flip_on_medium(copy, offset, mask);
            self.medium.superblock_copy = Some(copy);
            self.faults.header_medium += 1;
            self.faults.medium_superblock += 1;
            self.trace
                .event(self.now_us, format_args!("FAULT superblock copy {copy} byte {offset}"));
            return;
        }
        let geometry = self.knobs.ssd;
        let free: Vec<u32> = (0..self.knobs.zone_count as u32)
            .filter(|z| {
                ZoneHeader::decode_free(ssd.peek(zone_header_sector(&geometry, *z))).is_ok()
            })
            .collect();
        if free.is_empty() {
            return;
        }
        let z = free[self.rng.below(free.len() as u64) as usize];
        let sector = zone_header_sector(&geometry, z);
        self.medium.free_headers.insert(z);
        self.faults.header_medium += 1;
        if self.rng.coin() {
            ssd.zero_on_medium(sector);
            self.trace.event(self.now_us, format_args!("FAULT free header of zone {z} zeroed"));
            return;
        }
        let offset = self.rng.below(ZONE_HEADER_DECODED_BYTES) as usize;
        ssd.flip_on_medium(sector, offset, mask);
        self.trace.event(self.now_us, format_args!("FAULT free header of zone {z} byte {offset}"));
    }

    /// Each key/value key's current record: (key, its first sector).
    pub(super) fn located(&self, e: &cellar::sector::Engine<SimSsd>) -> Vec<(Key, u64)> {
        (0..self.knobs.kv_keys)
            .filter_map(|k| e.version(k).map(|v| (k, u64::from(v.sector()))))
            .collect()
    }

    /// At a power cut after the device settled: flips one byte of the first sector of a key's
    /// current record on the medium (SEC-18).
    pub(super) fn damage_at_rest(&mut self, ssd: &mut SimSsd, located: &[(Key, u64)]) {
        let candidates: Vec<(u64, Vec<Found>)> = sectors_of(located)
            .map(|s| (s, records_in(ssd.peek(s))))
            .filter(|(_, r)| !r.is_empty() && r.iter().all(|f| f.key < self.knobs.kv_keys))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (sector, records) = &candidates[self.rng.below(candidates.len() as u64) as usize];
        let r = &records[self.rng.below(records.len() as u64) as usize];
        let offset = r.offset + self.rng.below(r.len as u64) as usize;
        let mask = 1u8 << self.rng.below(8);
        ssd.flip_on_medium(*sector, offset, mask);
        // Every record in the sector (it holds each located key's record that starts there, and
        // a key's current tombstone, which has no version to locate it by).
        let hit: BTreeSet<Key> = records.iter().map(|f| f.key).collect();
        for k in &hit {
            self.model.damage_on_medium(*k);
        }
        self.medium.records.insert(*sector);
        self.medium.record_keys.extend(hit.iter().copied());
        self.faults.medium_records += 1;
        self.trace.event(
            self.now_us,
            format_args!(
                "FAULT at rest: sector {sector} byte {offset} on the medium, keys {hit:?}"
            ),
        );
    }

    /// Did a flip at rest land in zone `zone` (so its compaction may leave it alone)?
    pub(super) fn damaged_at_rest(&self, zone: u32) -> bool {
        let g = self.knobs.ssd;
        self.medium.records.iter().any(|s| {
            s.checked_sub(g.zone_base_sector).map(|r| r / g.zone_sector_count)
                == Some(u64::from(zone))
        })
    }

    /// Before an open: the zones whose damaged header recovery must report (a reused zone's
    /// header was rewritten, so it is no longer damaged). A zeroed header counts only over a
    /// first data sector that holds a record naming it (§3: otherwise the zone is fresh).
    pub(super) fn damaged_headers(&mut self, ssd: &SimSsd) -> BTreeSet<u32> {
        let geometry = self.knobs.ssd;
        self.medium.free_headers.retain(|z| {
            let h = ssd.peek(zone_header_sector(&geometry, *z));
            ZoneHeader::decode(h).is_err() && ZoneHeader::decode_free(h).is_err()
        });
        self.medium
            .free_headers
            .iter()
            .copied()
            .filter(|z| {
                let sector = zone_header_sector(&geometry, *z);
                let names_itself = RecordHeader::decode(ssd.peek(sector + 1))
                    .is_ok_and(|r| r.sector == sector + 1);
                ssd.peek(sector).iter().any(|b| *b != 0) || names_itself
            })
            .collect()
    }

    /// Judges what recovery reported against the damage on the medium: every damaged header
    /// detected and named, nothing else reported, one superblock copy lost at most (SEC-3,
    /// SEC-7, §12).
    pub(super) fn check_report(
        &self,
        rep: &RecoveryReport,
        damaged: &BTreeSet<u32>,
    ) -> Result<(), Violation> {
        let named: BTreeSet<u32> = rep.corrupt_zone_headers.iter().copied().collect();
        let sectors_ok = rep.corrupt_sectors.iter().all(|s| self.medium.records.contains(s));
        let keys_ok = rep.corrupt_keys.iter().all(|k| self.medium.record_keys.contains(k));
        if !sectors_ok || !keys_ok || named != *damaged {
            return Err(Violation::new(
                "SEC-7 recovery reports corruption only where durable faults were injected",
                format!(
                    "{rep:?} (damaged free headers: {damaged:?}, records flipped at rest in \
                     sectors {:?})",
                    self.medium.records
                ),
            ));
        }
        let copies = 2 - u8::from(self.medium.superblock_copy.is_some());
        if rep.superblock_copies_valid != copies {
            return Err(Violation::new(
                "SEC-3 a damaged superblock copy is detected, the other suffices",
                format!("{} valid copies reported, {copies} sound", rep.superblock_copies_valid),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_finds_packed_records_and_stops_at_damage() {
        let h = |key: Key, flags: u8, payload_len: u32| RecordHeader {
            kind: cellar::sector::format::Kind::Put,
            flags,
            key,
            seq: key + 1,
            zone_epoch: 1,
            payload_len,
            next: 0,
            txn: 0,
            value_len: payload_len,
            payload_crc: 0,
            durable_mark: 0,
            sector: 9,
        };
        let mut s = vec![0u8; SECTOR_SIZE_BYTES];
        let a = h(1, FLAG_PACKED, 10);
        s[..80].copy_from_slice(&a.encode());
        let b_at = a.footprint_bytes();
        s[b_at..b_at + 80].copy_from_slice(&h(2, FLAG_PACKED, 0).encode());
        let found = records_in(&s);
        assert_eq!(
            found.iter().map(|f| (f.offset, f.key)).collect::<Vec<_>>(),
            [(0, 1), (b_at, 2)]
        );
        s[20] ^= 1;
        assert!(records_in(&s).is_empty(), "a damaged first header hides the sector's records");
    }
}
