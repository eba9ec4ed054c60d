//! The index checkpoint's bytes (`specs/sector.md` §8.1, SEC-19): the checkpoint header that
//! replaces a free zone's header, and the payload (the engine's rebuilt state) spread over the
//! data sectors of one or more such zones. Pure functions only: no I/O, no state.
//!
//! Decoders never panic on any input: bad bytes are a [`FormatError`], and the engine then
//! scans instead of loading (a checkpoint is an optimisation, never the only copy of anything).

use super::format::{FORMAT_VERSION, FormatError, check_crc};
use super::zones::Zone;
use super::{Key, SECTOR_SIZE_BYTES};

/// Magic of a checkpoint zone's header (§8.1).
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"CELLCKPT";
/// Version of the payload layout below.
pub const CHECKPOINT_PAYLOAD_VERSION: u32 = 1;
/// Bytes of the payload's fixed part (before the zone table).
pub const CHECKPOINT_FIXED_BYTES: usize = 32;
/// Bytes of one zone table entry.
pub const CHECKPOINT_ZONE_ENTRY_BYTES: usize = 46;
/// Bytes of one index or tombstone entry (key, sector).
pub const CHECKPOINT_ENTRY_BYTES: usize = 12;

/// The header of one checkpoint zone (§8.1): which part of which checkpoint it holds, and the
/// length and CRC of the whole payload, so every part can be checked to belong to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// The zone's index.
    pub zone: u32,
    /// The checkpoint's epoch: handed out like a zone's (SEC-4), larger than every epoch on the
    /// device when it was written.
    pub epoch: u32,
    /// This zone's part, `0..parts`.
    pub part: u32,
    /// Zones the payload is spread over.
    pub parts: u32,
    /// Payload bytes in all.
    pub payload_len: u64,
    /// CRC32C of the whole payload.
    pub payload_crc: u32,
}

impl CheckpointHeader {
    /// Encodes the header sector.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = vec![0u8; SECTOR_SIZE_BYTES];
        s[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
        s[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        s[12..16].copy_from_slice(&self.zone.to_le_bytes());
        s[16..20].copy_from_slice(&self.epoch.to_le_bytes());
        s[20..24].copy_from_slice(&self.part.to_le_bytes());
        s[24..28].copy_from_slice(&self.parts.to_le_bytes());
        s[28..36].copy_from_slice(&self.payload_len.to_le_bytes());
        s[36..40].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&s[..40]);
        s[40..44].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// Decodes a header sector: magic, CRC, version, then `epoch ≥ 1` and `part < parts`.
    pub fn decode(s: &[u8]) -> Result<CheckpointHeader, FormatError> {
        let mut r = Reader { b: s, at: 0 };
        if r.take(8)? != CHECKPOINT_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let body = s.get(..40).ok_or(FormatError::Truncated)?;
        check_crc(Reader { b: s, at: 40 }.u32()?, body)?;
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(FormatError::Field { field: "format_version", value: version.into() });
        }
        let h = CheckpointHeader {
            zone: r.u32()?,
            epoch: r.u32()?,
            part: r.u32()?,
            parts: r.u32()?,
            payload_len: r.u64()?,
            payload_crc: r.u32()?,
        };
        if h.epoch == 0 {
            return Err(FormatError::Field { field: "epoch", value: 0 });
        }
        if h.part >= h.parts {
            return Err(FormatError::Field { field: "part", value: h.part.into() });
        }
        Ok(h)
    }
}

/// What a zone's header sector held when the checkpoint was written (§8.1). Loading requires
/// every zone's header to read back exactly so: any zone opened, freed or damaged since then
/// makes the checkpoint stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSeen {
    /// All zeros over a first data sector that holds no record naming it: never used (§3).
    Blank,
    /// A zone header: the zone is in use with this epoch.
    InUse(u32),
    /// A free header keeping this epoch.
    Free(u32),
    /// A checkpoint header of this epoch.
    Checkpoint(u32),
    /// Anything else: a damaged or lost header (recovery reports it).
    Damaged,
}

impl HeaderSeen {
    /// The epoch the header keeps on the device (0: none): every one bounds the next (SEC-4).
    pub fn epoch(self) -> u32 {
        match self {
            HeaderSeen::InUse(e) | HeaderSeen::Free(e) | HeaderSeen::Checkpoint(e) => e,
            HeaderSeen::Blank | HeaderSeen::Damaged => 0,
        }
    }
}

/// The engine state a checkpoint holds: what recovery would otherwise rebuild by a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CheckpointState {
    pub(crate) next_seq: u64,
    /// Per zone: the header on the device and, for zones in use, the accounting.
    pub(crate) zones: Vec<(HeaderSeen, Zone)>,
    /// Live keys → first sector of the newest record.
    pub(crate) index: Vec<(Key, u32)>,
    /// Deleted keys whose tombstone is still on the device → its sector.
    pub(crate) tombs: Vec<(Key, u32)>,
}

impl CheckpointState {
    /// Payload bytes [`CheckpointState::encode`] produces.
    pub(crate) fn encoded_len(&self) -> usize {
        CHECKPOINT_FIXED_BYTES
            + self.zones.len() * CHECKPOINT_ZONE_ENTRY_BYTES
            + (self.index.len() + self.tombs.len()) * CHECKPOINT_ENTRY_BYTES
    }

    /// The payload (§8.1 gives the layout).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.encoded_len());
        b.extend_from_slice(&CHECKPOINT_PAYLOAD_VERSION.to_le_bytes());
        b.extend_from_slice(&self.next_seq.to_le_bytes());
        b.extend_from_slice(&(self.zones.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.tombs.len() as u64).to_le_bytes());
        for (seen, z) in &self.zones {
            let (kind, epoch) = match *seen {
                HeaderSeen::Blank => (0u8, 0),
                HeaderSeen::InUse(e) => (1, e),
                HeaderSeen::Free(e) => (2, e),
                HeaderSeen::Checkpoint(e) => (3, e),
                HeaderSeen::Damaged => (4, 0),
            };
            b.push(kind);
            b.extend_from_slice(&epoch.to_le_bytes());
            for v in [z.records, z.live, z.used_sectors, z.puts] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&z.put_seq_min.to_le_bytes());
            b.extend_from_slice(&z.tomb_live.to_le_bytes());
            b.extend_from_slice(&z.tomb_seq_max.to_le_bytes());
            b.extend_from_slice(&z.tomb_sectors.to_le_bytes());
            b.push(u8::from(z.sealed) | u8::from(z.cut) << 1);
        }
        for (k, s) in self.index.iter().chain(&self.tombs) {
            b.extend_from_slice(&k.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
        }
        debug_assert_eq!(b.len(), self.encoded_len());
        b
    }

    /// Decodes a payload. Checks the layout only; `checkpoint.rs` checks it against the device.
    pub(crate) fn decode(p: &[u8]) -> Result<CheckpointState, FormatError> {
        let mut r = Reader { b: p, at: 0 };
        let version = r.u32()?;
        if version != CHECKPOINT_PAYLOAD_VERSION {
            return Err(FormatError::Field { field: "payload_version", value: version.into() });
        }
        let next_seq = r.u64()?;
        let zone_count = r.u32()? as usize;
        let (index_count, tomb_count) = (r.u64()?, r.u64()?);
        // Counts are checked against the bytes left before anything is allocated for them.
        let fixed = (zone_count as u64)
            .saturating_mul(CHECKPOINT_ZONE_ENTRY_BYTES as u64)
            .saturating_add(index_count.saturating_add(tomb_count).saturating_mul(12));
        if fixed > (p.len() - r.at) as u64 {
            return Err(FormatError::Truncated);
        }
        let mut st = CheckpointState { next_seq, ..CheckpointState::default() };
        for _ in 0..zone_count {
            st.zones.push(zone_entry(&mut r)?);
        }
        for _ in 0..index_count {
            st.index.push((r.u64()?, r.u32()?));
        }
        for _ in 0..tomb_count {
            st.tombs.push((r.u64()?, r.u32()?));
        }
        if r.at != p.len() {
            return Err(FormatError::Field { field: "payload_len", value: p.len() as u64 });
        }
        Ok(st)
    }
}

fn zone_entry(r: &mut Reader<'_>) -> Result<(HeaderSeen, Zone), FormatError> {
    let kind = r.u8()?;
    let epoch = r.u32()?;
    let seen = match kind {
        0 => HeaderSeen::Blank,
        1 => HeaderSeen::InUse(epoch),
        2 => HeaderSeen::Free(epoch),
        3 => HeaderSeen::Checkpoint(epoch),
        _ => return Err(FormatError::Field { field: "zone_kind", value: kind.into() }),
    };
    let mut z = Zone {
        records: r.u32()?,
        live: r.u32()?,
        used_sectors: r.u32()?,
        puts: r.u32()?,
        put_seq_min: r.u64()?,
        tomb_live: r.u32()?,
        tomb_seq_max: r.u64()?,
        tomb_sectors: r.u32()?,
        ..Zone::default()
    };
    let flags = r.u8()?;
    if flags > 3 {
        return Err(FormatError::Field { field: "zone_flags", value: flags.into() });
    }
    (z.sealed, z.cut) = (flags & 1 != 0, flags & 2 != 0);
    if let HeaderSeen::InUse(e) = seen {
        z.epoch = e;
    }
    Ok((seen, z))
}

/// Little-endian reads that fail with [`FormatError::Truncated`] at the end of the bytes.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let s = self.b.get(self.at..self.at.saturating_add(n)).ok_or(FormatError::Truncated)?;
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| FormatError::Truncated)?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| FormatError::Truncated)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointState {
        let used = Zone {
            epoch: 7,
            records: 9,
            live: 4,
            used_sectors: 12,
            puts: 8,
            put_seq_min: 3,
            tomb_live: 1,
            tomb_seq_max: 40,
            tomb_sectors: 1,
            sealed: true,
            cut: false,
        };
        CheckpointState {
            next_seq: 99,
            zones: vec![
                (HeaderSeen::InUse(7), used),
                (HeaderSeen::Free(5), Zone::default()),
                (HeaderSeen::Blank, Zone::default()),
                (HeaderSeen::Checkpoint(8), Zone::default()),
            ],
            index: vec![(1, 3), (u64::MAX, 4)],
            tombs: vec![(2, 5)],
        }
    }

    #[test]
    fn payload_round_trips_and_every_truncation_is_an_error() {
        let st = sample();
        let p = st.encode();
        assert_eq!(CheckpointState::decode(&p), Ok(st.clone()));
        for n in 0..p.len() {
            assert!(CheckpointState::decode(&p[..n]).is_err(), "{n} bytes must not decode");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert!(CheckpointState::decode(&longer).is_err(), "trailing bytes");
    }

    #[test]
    fn header_round_trips_and_rejects_any_flip() {
        let h = CheckpointHeader {
            zone: 3,
            epoch: 9,
            part: 1,
            parts: 2,
            payload_len: 5000,
            payload_crc: 0xdead_beef,
        };
        let s = h.encode();
        assert_eq!(CheckpointHeader::decode(&s), Ok(h));
        for at in 0..44 {
            let mut bad = s.clone();
            bad[at] ^= 0x10;
            assert!(CheckpointHeader::decode(&bad).is_err(), "flip at byte {at}");
        }
        let past = CheckpointHeader { part: 2, ..h }.encode();
        assert!(CheckpointHeader::decode(&past).is_err(), "part must be below parts");
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut p = sample().encode();
        p[16..24].copy_from_slice(&u64::MAX.to_le_bytes()); // index_count
        assert_eq!(CheckpointState::decode(&p), Err(FormatError::Truncated));
    }
}
