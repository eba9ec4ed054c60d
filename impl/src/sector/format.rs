//! The on-disk format, byte by byte (`specs/sector.md` §2–§5): superblocks, zone headers and
//! record headers, with their CRC32C checks. Pure functions only: no I/O, no state.
//!
//! Enforces SEC-3 (superblock in two copies, either suffices), SEC-4 (a zone's records carry
//! its epoch; stale records of an earlier use of the zone are never read as current) and SEC-5
//! (a record is valid only if its header CRC and payload CRC both match).
//!
//! All integers are little-endian. Decoders never panic on any input: bad bytes are a
//! [`FormatError`].

use super::{Key, SECTOR_SIZE_BYTES};

/// Superblock magic, bytes 0..8 of sectors 0 and 1.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"CELLSECT";
/// Zone header magic, bytes 0..8 of a zone's first sector.
pub const ZONE_MAGIC: [u8; 8] = *b"CELLZONE";
/// Magic of a freed zone's header (spec §3.2): it keeps the zone's last epoch so recovery never
/// hands that epoch out again (SEC-4).
pub const ZONE_FREE_MAGIC: [u8; 8] = *b"CELLFREE";
/// Record header magic, bytes 0..4 of every record.
pub const RECORD_MAGIC: u32 = 0x3143_4552; // "REC1" little-endian
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// Sectors before zone 0: the two superblock copies.
pub const SUPERBLOCK_COPIES: u64 = 2;
/// Size of a record header.
pub const RECORD_HEADER_SIZE_BYTES: usize = 80;
/// Alignment of packed ("compact") records inside a shared sector.
pub const PACKED_ALIGN_BYTES: usize = 16;

const _: () = assert!(SECTOR_SIZE_BYTES.is_multiple_of(PACKED_ALIGN_BYTES));
const _: () = assert!(RECORD_HEADER_SIZE_BYTES.is_multiple_of(PACKED_ALIGN_BYTES));

/// Record flag: the payload is LZ4-compressed (`value_len` is the decompressed length).
pub const FLAG_COMPRESSED: u8 = 1;
/// Record flag: packed at a 64-byte boundary inside a shared sector ("compact" write option).
pub const FLAG_PACKED: u8 = 2;
/// Record flag: member of a CAS transaction; valid only with its commit record (SEC-8).
pub const FLAG_TXN: u8 = 4;
/// Record flag: written as revertible (informational; revert state is volatile, SEC-12).
pub const FLAG_REVERTIBLE: u8 = 8;
/// Record flag: the `next` field holds a read-follow pointer.
pub const FLAG_HAS_NEXT: u8 = 16;
const FLAGS_KNOWN: u8 = 31;

/// A format decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The magic bytes are wrong (includes an all-zero, never-written sector).
    #[error("bad magic")]
    BadMagic,
    /// The CRC32C does not match.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC found on disk.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A field holds a value this version does not accept.
    #[error("bad field {field}: {value}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// Not enough bytes.
    #[error("truncated")]
    Truncated,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, FormatError> {
    let s = b.get(at..at + 4).ok_or(FormatError::Truncated)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_le_bytes(a))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, FormatError> {
    let s = b.get(at..at + 8).ok_or(FormatError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

pub(crate) fn check_crc(stored: u32, bytes: &[u8]) -> Result<(), FormatError> {
    let computed = crc32c::crc32c(bytes);
    if stored != computed {
        return Err(FormatError::Crc { stored, computed });
    }
    Ok(())
}

/// Device geometry, stored in the superblock (spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Sectors per zone, including the zone header sector.
    pub zone_sector_count: u32,
    /// Number of zones.
    pub zone_count: u32,
    /// Device size in sectors when formatted.
    pub device_sector_count: u64,
}

impl Superblock {
    /// First sector of zone `zone`.
    pub fn zone_first_sector(&self, zone: u32) -> u64 {
        SUPERBLOCK_COPIES + u64::from(zone) * u64::from(self.zone_sector_count)
    }

    /// Encodes copy `copy` (0 or 1) into one sector.
    pub fn encode(&self, copy: u32) -> Vec<u8> {
        let mut s = vec![0u8; SECTOR_SIZE_BYTES];
        put(&mut s, 0, &SUPERBLOCK_MAGIC);
        put(&mut s, 8, &FORMAT_VERSION.to_le_bytes());
        put(&mut s, 12, &(SECTOR_SIZE_BYTES as u32).to_le_bytes());
        put(&mut s, 16, &self.zone_sector_count.to_le_bytes());
        put(&mut s, 20, &self.zone_count.to_le_bytes());
        put(&mut s, 24, &self.device_sector_count.to_le_bytes());
        put(&mut s, 32, &copy.to_le_bytes());
        let crc = crc32c::crc32c(&s[..SECTOR_SIZE_BYTES - 4]);
        put(&mut s, SECTOR_SIZE_BYTES - 4, &crc.to_le_bytes());
        s
    }

    /// Decodes one superblock sector (SEC-3).
    pub fn decode(s: &[u8]) -> Result<Superblock, FormatError> {
        if s.len() < SECTOR_SIZE_BYTES {
            return Err(FormatError::Truncated);
        }
        if s.get(0..8) != Some(&SUPERBLOCK_MAGIC[..]) {
            return Err(FormatError::BadMagic);
        }
        check_crc(u32_at(s, SECTOR_SIZE_BYTES - 4)?, &s[..SECTOR_SIZE_BYTES - 4])?;
        let version = u32_at(s, 8)?;
        if version != FORMAT_VERSION {
            return Err(FormatError::Field { field: "format_version", value: version.into() });
        }
        let sector = u32_at(s, 12)?;
        if sector as usize != SECTOR_SIZE_BYTES {
            return Err(FormatError::Field { field: "sector_size_bytes", value: sector.into() });
        }
        let sb = Superblock {
            zone_sector_count: u32_at(s, 16)?,
            zone_count: u32_at(s, 20)?,
            device_sector_count: u64_at(s, 24)?,
        };
        sb.check()?;
        Ok(sb)
    }

    /// Checks the geometry is self-consistent.
    pub fn check(&self) -> Result<(), FormatError> {
        let min = (super::ZONE_SIZE_BYTES_MIN / SECTOR_SIZE_BYTES) as u32;
        let max = (super::ZONE_SIZE_BYTES_MAX / SECTOR_SIZE_BYTES) as u32;
        if self.zone_sector_count < min || self.zone_sector_count > max {
            return Err(FormatError::Field {
                field: "zone_sector_count",
                value: self.zone_sector_count.into(),
            });
        }
        if self.zone_count < 2 {
            return Err(FormatError::Field { field: "zone_count", value: self.zone_count.into() });
        }
        let end = self.zone_first_sector(self.zone_count);
        if end > self.device_sector_count
            || self.device_sector_count > super::DEVICE_SECTOR_COUNT_MAX
        {
            return Err(FormatError::Field {
                field: "device_sector_count",
                value: self.device_sector_count,
            });
        }
        Ok(())
    }
}

/// A zone header (spec §3): written when a zone is opened; when it is freed, replaced by a
/// *free* header (magic [`ZONE_FREE_MAGIC`]) carrying the same epoch (SEC-4, SEC-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneHeader {
    /// The zone's index.
    pub zone: u32,
    /// The zone's epoch: strictly increasing across openings, never reused (SEC-4).
    pub epoch: u32,
}

impl ZoneHeader {
    /// Encodes the header sector of a zone in use.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(&ZONE_MAGIC)
    }

    /// Encodes the free header that replaces it when the zone is freed (SEC-4, SEC-14).
    pub fn encode_free(&self) -> Vec<u8> {
        self.encode_with(&ZONE_FREE_MAGIC)
    }

    fn encode_with(&self, magic: &[u8; 8]) -> Vec<u8> {
        let mut s = vec![0u8; SECTOR_SIZE_BYTES];
        put(&mut s, 0, magic);
        put(&mut s, 8, &FORMAT_VERSION.to_le_bytes());
        put(&mut s, 12, &self.zone.to_le_bytes());
        put(&mut s, 16, &self.epoch.to_le_bytes());
        let crc = crc32c::crc32c(&s[..28]);
        put(&mut s, 28, &crc.to_le_bytes());
        s
    }

    /// Decodes the header of a zone in use. A free header or an all-zero sector (a zone never
    /// used since format) is [`FormatError::BadMagic`].
    pub fn decode(s: &[u8]) -> Result<ZoneHeader, FormatError> {
        Self::decode_with(s, &ZONE_MAGIC)
    }

    /// Decodes a free header (the last epoch of a freed zone). Anything else is an error.
    pub fn decode_free(s: &[u8]) -> Result<ZoneHeader, FormatError> {
        Self::decode_with(s, &ZONE_FREE_MAGIC)
    }

    fn decode_with(s: &[u8], magic: &[u8; 8]) -> Result<ZoneHeader, FormatError> {
        if s.get(0..8) != Some(&magic[..]) {
            return Err(FormatError::BadMagic);
        }
        check_crc(u32_at(s, 28)?, s.get(..28).ok_or(FormatError::Truncated)?)?;
        let version = u32_at(s, 8)?;
        if version != FORMAT_VERSION {
            return Err(FormatError::Field { field: "format_version", value: version.into() });
        }
        let h = ZoneHeader { zone: u32_at(s, 12)?, epoch: u32_at(s, 16)? };
        if h.epoch == 0 {
            return Err(FormatError::Field { field: "epoch", value: 0 });
        }
        Ok(h)
    }
}

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A value for `key`.
    Put = 1,
    /// `key` was deleted.
    Tombstone = 2,
    /// A CAS commit record listing its members (SEC-8).
    Commit = 3,
    /// End of a zone's data: the rest of the zone is never read (SEC-7).
    Seal = 4,
    /// The log was flushed up to its `durable_mark`: written after a flush at the head's next
    /// free sector, which the next record may overwrite (SEC-18).
    Mark = 5,
}

impl Kind {
    fn from_u8(v: u8) -> Result<Kind, FormatError> {
        Ok(match v {
            1 => Kind::Put,
            2 => Kind::Tombstone,
            3 => Kind::Commit,
            4 => Kind::Seal,
            5 => Kind::Mark,
            _ => return Err(FormatError::Field { field: "kind", value: v.into() }),
        })
    }
}

/// A record header (spec §4), 80 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// What the record is.
    pub kind: Kind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The key (0 for commit and seal records).
    pub key: Key,
    /// Logical sequence number: the newest record of a key wins at recovery. Kept by
    /// relocation (SEC-10).
    pub seq: u64,
    /// Epoch of the zone the record was written into (SEC-4).
    pub zone_epoch: u32,
    /// Stored payload length in bytes.
    pub payload_len: u32,
    /// Read-follow pointer (meaningful with [`FLAG_HAS_NEXT`]).
    pub next: Key,
    /// For [`FLAG_TXN`] members: the commit record's seq; otherwise 0.
    pub txn: u64,
    /// Value length after decompression (equals `payload_len` when not compressed).
    pub value_len: u32,
    /// CRC32C of the payload.
    pub payload_crc: u32,
    /// Durable mark: the log position known flushed when this record was written (SEC-7).
    pub durable_mark: u64,
    /// The device sector the record starts in (SEC-17): a record read anywhere else was
    /// misdirected, or is the stale content of a sector whose write went astray.
    pub sector: u64,
}

impl RecordHeader {
    /// Encodes the header (with its CRC) into 80 bytes.
    pub fn encode(&self) -> [u8; RECORD_HEADER_SIZE_BYTES] {
        let mut h = [0u8; RECORD_HEADER_SIZE_BYTES];
        put(&mut h, 0, &RECORD_MAGIC.to_le_bytes());
        h[4] = self.kind as u8;
        h[5] = self.flags;
        put(&mut h, 8, &self.key.to_le_bytes());
        put(&mut h, 16, &self.seq.to_le_bytes());
        put(&mut h, 24, &self.zone_epoch.to_le_bytes());
        put(&mut h, 28, &self.payload_len.to_le_bytes());
        put(&mut h, 32, &self.next.to_le_bytes());
        put(&mut h, 40, &self.txn.to_le_bytes());
        put(&mut h, 48, &self.durable_mark.to_le_bytes());
        put(&mut h, 56, &self.value_len.to_le_bytes());
        put(&mut h, 60, &self.payload_crc.to_le_bytes());
        put(&mut h, 64, &self.sector.to_le_bytes());
        let crc = crc32c::crc32c(&h[..76]);
        put(&mut h, 76, &crc.to_le_bytes());
        h
    }

    /// Whether `bytes`, read from `sector`, begin with a valid header naming that sector: a
    /// zone's first data sector holding one shows the zone was opened since format (§3).
    pub fn names_its_sector(bytes: &[u8], sector: u64) -> bool {
        RecordHeader::decode(bytes).is_ok_and(|h| h.sector == sector)
    }

    /// Decodes and checks a header (magic, CRC, kind, flags). Does not check the payload.
    pub fn decode(h: &[u8]) -> Result<RecordHeader, FormatError> {
        if h.len() < RECORD_HEADER_SIZE_BYTES {
            return Err(FormatError::Truncated);
        }
        if u32_at(h, 0)? != RECORD_MAGIC {
            return Err(FormatError::BadMagic);
        }
        // Planted `sector:header-crc-unchecked`: a header whose CRC is never checked (the
        // header fault atlas of the simulator must catch it).
        if !crate::bugs::active("sector:header-crc-unchecked") {
            check_crc(u32_at(h, 76)?, &h[..76])?;
        }
        let flags = h[5];
        if flags & !FLAGS_KNOWN != 0 {
            return Err(FormatError::Field { field: "flags", value: flags.into() });
        }
        if h[6..8].iter().chain(&h[72..76]).any(|b| *b != 0) {
            return Err(FormatError::Field { field: "reserved", value: 1 });
        }
        Ok(RecordHeader {
            kind: Kind::from_u8(h[4])?,
            flags,
            key: u64_at(h, 8)?,
            seq: u64_at(h, 16)?,
            zone_epoch: u32_at(h, 24)?,
            payload_len: u32_at(h, 28)?,
            next: u64_at(h, 32)?,
            txn: u64_at(h, 40)?,
            durable_mark: u64_at(h, 48)?,
            value_len: u32_at(h, 56)?,
            payload_crc: u32_at(h, 60)?,
            sector: u64_at(h, 64)?,
        })
    }

    /// Bytes the record occupies on disk: whole sectors, or 64-byte slots when packed.
    pub fn footprint_bytes(&self) -> usize {
        let raw = RECORD_HEADER_SIZE_BYTES + self.payload_len as usize;
        let align =
            if self.flags & FLAG_PACKED != 0 { PACKED_ALIGN_BYTES } else { SECTOR_SIZE_BYTES };
        raw.div_ceil(align) * align
    }

    /// Checks the payload against the header's CRC (SEC-5).
    pub fn check_payload(&self, payload: &[u8]) -> Result<(), FormatError> {
        if payload.len() != self.payload_len as usize {
            return Err(FormatError::Truncated);
        }
        check_crc(self.payload_crc, payload)
    }
}

/// Encodes a commit record's payload: member count, then (key, seq) per member (SEC-8).
pub fn encode_commit(members: &[(Key, u64)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + members.len() * 16);
    p.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for (k, s) in members {
        p.extend_from_slice(&k.to_le_bytes());
        p.extend_from_slice(&s.to_le_bytes());
    }
    p
}

/// Decodes a commit payload.
pub fn decode_commit(p: &[u8]) -> Result<Vec<(Key, u64)>, FormatError> {
    let n = u32_at(p, 0)? as usize;
    if n.checked_mul(16).and_then(|b| b.checked_add(4)) != Some(p.len()) {
        return Err(FormatError::Field { field: "commit_len", value: p.len() as u64 });
    }
    (0..n).map(|i| Ok((u64_at(p, 4 + i * 16)?, u64_at(p, 12 + i * 16)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_any_flip() {
        let h = RecordHeader {
            kind: Kind::Put,
            flags: FLAG_COMPRESSED | FLAG_HAS_NEXT,
            key: 7,
            seq: 99,
            zone_epoch: 3,
            payload_len: 5000,
            next: 8,
            txn: 0,
            value_len: 9000,
            payload_crc: 0xdead_beef,
            durable_mark: (3 << 32) | 17,
            sector: 0x1234_5678,
        };
        let b = h.encode();
        assert_eq!(RecordHeader::decode(&b), Ok(h));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x40;
            assert!(RecordHeader::decode(&c).is_err(), "flip at byte {i} accepted"); // SEC-5
        }
        assert_eq!(h.footprint_bytes(), 2 * SECTOR_SIZE_BYTES);
    }

    /// Every flip above is caught by the CRC, so the kind, flags and reserved-byte checks
    /// behind it never ran: here the CRC is made to match and those checks must still refuse.
    #[test]
    fn header_with_a_matching_crc_still_checks_kind_flags_and_reserved() {
        let h = RecordHeader {
            kind: Kind::Put,
            flags: 0,
            key: 1,
            seq: 1,
            zone_epoch: 1,
            payload_len: 0,
            next: 0,
            txn: 0,
            value_len: 0,
            payload_crc: 0,
            durable_mark: 0,
            sector: 9,
        };
        let resealed = |at: usize, v: u8| {
            let mut b = h.encode();
            b[at] = v;
            let crc = crc32c::crc32c(&b[..76]);
            b[76..].copy_from_slice(&crc.to_le_bytes());
            RecordHeader::decode(&b)
        };
        assert_eq!(resealed(4, 1), Ok(h), "the re-sealing itself is sound");
        assert_eq!(resealed(4, 6), Err(FormatError::Field { field: "kind", value: 6 }));
        assert_eq!(resealed(4, 0), Err(FormatError::Field { field: "kind", value: 0 }));
        assert_eq!(resealed(5, 32), Err(FormatError::Field { field: "flags", value: 32 }));
        for at in [6, 7, 72, 75] {
            assert_eq!(resealed(at, 1), Err(FormatError::Field { field: "reserved", value: 1 }));
        }
        // SEC-17: bytes 64..72 are the record's sector, not reserved.
        assert_eq!(resealed(64, 1).map(|h| h.sector), Ok(1));
    }

    #[test]
    fn superblock_geometry_is_checked() {
        let sb = Superblock { zone_sector_count: 16, zone_count: 4, device_sector_count: 66 };
        assert_eq!(sb.check(), Ok(()));
        let field = |s: Superblock| match s.check() {
            Err(FormatError::Field { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Superblock { zone_count: 1, ..sb }), "zone_count");
        assert_eq!(field(Superblock { device_sector_count: 65, ..sb }), "device_sector_count");
        assert_eq!(field(Superblock { zone_sector_count: 7, ..sb }), "zone_sector_count");
        // A re-sealed superblock with a bad geometry is refused by decode too.
        assert!(matches!(
            Superblock::decode(&Superblock { zone_count: 1, ..sb }.encode(0)),
            Err(FormatError::Field { field: "zone_count", .. })
        ));
    }

    #[test]
    fn superblock_and_zone_header_round_trip() {
        let sb = Superblock { zone_sector_count: 16, zone_count: 4, device_sector_count: 66 };
        assert_eq!(Superblock::decode(&sb.encode(1)), Ok(sb));
        let mut bad = sb.encode(0);
        bad[20] ^= 1;
        assert!(Superblock::decode(&bad).is_err()); // SEC-3
        let z = ZoneHeader { zone: 2, epoch: 5 };
        assert_eq!(ZoneHeader::decode(&z.encode()), Ok(z));
        assert_eq!(ZoneHeader::decode(&[0u8; SECTOR_SIZE_BYTES]), Err(FormatError::BadMagic));
        assert_eq!(ZoneHeader::decode_free(&z.encode_free()), Ok(z));
        assert_eq!(ZoneHeader::decode(&z.encode_free()), Err(FormatError::BadMagic));
        assert_eq!(ZoneHeader::decode_free(&z.encode()), Err(FormatError::BadMagic));
        let never = ZoneHeader { zone: 2, epoch: 0 };
        assert_eq!(
            ZoneHeader::decode(&never.encode()),
            Err(FormatError::Field { field: "epoch", value: 0 }),
            "SEC-4: epoch 0 is never handed out"
        );
    }
}
