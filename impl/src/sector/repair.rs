//! Naming the key of a damaged record header (`specs/sector.md` §8 step 3, SEC-6).
//!
//! A record header that fails its CRC hides whose record it was, so a flushed record whose
//! header took a byte flip would vanish at recovery and its key would show an older value.
//! A header is 80 bytes under one CRC-32C; CRC-32C has Hamming distance 6 at this length, so
//! a single damaged byte (up to 8 flipped bits, all within one byte) is located by trying every
//! byte value at every position. The result is used only to *name* the key and bound its seq:
//! the record is treated as damaged (never served), exactly like one whose payload failed.

use super::format::{FormatError, RECORD_HEADER_SIZE_BYTES, RecordHeader, ZoneHeader};
use crate::bugs;

/// The header at the start of `bytes`, which failed to decode with `error`, repaired if exactly
/// one single-byte change makes it a header that checks, of zone epoch `epoch`, naming
/// `sector`. `None` for anything else: blank or stale sectors, other epochs, several damaged
/// bytes, an ambiguous repair, or a header refused for another reason than its CRC or magic.
pub(crate) fn repair_header(
    error: &FormatError,
    bytes: &[u8],
    epoch: u32,
    sector: u64,
) -> Option<RecordHeader> {
    let worth_trying = matches!(error, FormatError::Crc { .. } | FormatError::BadMagic);
    if !worth_trying || bugs::active("sector:no-header-repair") {
        return None;
    }
    let raw = bytes.get(..RECORD_HEADER_SIZE_BYTES)?;
    // One damaged byte leaves at least two of magic, epoch and address intact: a cheap filter
    // that turns away blank sectors, stale records of older epochs at other addresses, and
    // payload bytes before trying 19,380 candidates.
    let intact = [
        raw[0..4] == super::format::RECORD_MAGIC.to_le_bytes(),
        raw[24..28] == epoch.to_le_bytes(),
        raw[64..72] == sector.to_le_bytes(),
    ];
    if intact.iter().filter(|ok| **ok).count() < 2 {
        return None;
    }
    one_byte_repair(raw, |buf| {
        RecordHeader::decode(buf).ok().filter(|h| h.zone_epoch == epoch && h.sector == sector)
    })
}

/// The header of zone `zone` (in use: `false`, free: `true`) in its header sector `bytes`
/// with one byte damaged, repaired, if exactly one single-byte change makes it check.
pub(crate) fn repair_zone_header(bytes: &[u8], zone: u32) -> Option<(ZoneHeader, bool)> {
    if bugs::active("sector:no-header-repair") {
        return None;
    }
    let raw = bytes.get(..ZONE_HEADER_BYTES)?;
    one_byte_repair(raw, |buf| {
        let used = ZoneHeader::decode(buf).ok().map(|h| (h, false));
        used.or_else(|| ZoneHeader::decode_free(buf).ok().map(|h| (h, true)))
            .filter(|(h, _)| h.zone == zone)
    })
}

/// Bytes of a zone header that decoding reads: 28 under the CRC, then the CRC.
const ZONE_HEADER_BYTES: usize = 32;

/// `raw` ends with a CRC-32C (little-endian) of the bytes before it. Tries every single-byte
/// change (the CRC's own bytes included) and returns what `accept` makes of the changed bytes
/// if exactly one change is accepted.
fn one_byte_repair<T>(raw: &[u8], accept: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
    let covered = raw.len().checked_sub(4)?;
    let stored = u32::from_le_bytes(raw[covered..].try_into().ok()?);
    let mut buf = raw.to_vec();
    let mut found = None;
    let mut candidates = 0u32;
    // The damaged byte is in the stored CRC itself: the covered bytes are intact.
    let computed = crc32c::crc32c(&raw[..covered]);
    if (stored ^ computed).to_le_bytes().iter().filter(|b| **b != 0).count() == 1 {
        buf[covered..].copy_from_slice(&computed.to_le_bytes());
        if let Some(t) = accept(&buf) {
            found = Some(t);
            candidates += 1;
        }
        buf[covered..].copy_from_slice(&raw[covered..]);
    }
    for pos in 0..covered {
        for v in 0..=u8::MAX {
            if v == raw[pos] {
                continue;
            }
            buf[pos] = v;
            if crc32c::crc32c(&buf[..covered]) == stored
                && let Some(t) = accept(&buf)
            {
                found = Some(t);
                candidates += 1;
            }
        }
        buf[pos] = raw[pos];
    }
    if candidates == 1 { found } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sector::format::Kind;

    const BAD_CRC: FormatError = FormatError::Crc { stored: 0, computed: 1 };

    fn header() -> RecordHeader {
        let tomb = crate::sector::write::tombstone(42, 9, 0, 0);
        RecordHeader { kind: Kind::Put, zone_epoch: 3, sector: 77, payload_len: 5, ..tomb }
    }

    #[test]
    fn every_single_byte_flip_of_a_header_is_repaired_to_the_original() {
        let h = header();
        let good = h.encode();
        for pos in 0..RECORD_HEADER_SIZE_BYTES {
            for mask in [0x01u8, 0x80, 0xff, 0x5a] {
                let mut bad = good;
                bad[pos] ^= mask;
                assert_eq!(
                    repair_header(&BAD_CRC, &bad, 3, 77),
                    Some(h),
                    "byte {pos} mask {mask:#x}"
                );
            }
        }
    }

    #[test]
    fn other_epochs_addresses_blank_and_twice_damaged_headers_are_not_repaired() {
        let mut bad = header().encode();
        bad[10] ^= 1;
        assert_eq!(repair_header(&BAD_CRC, &bad, 4, 77), None, "another epoch");
        assert_eq!(repair_header(&BAD_CRC, &bad, 3, 78), None, "another address");
        assert_eq!(repair_header(&BAD_CRC, &[0u8; 80], 3, 77), None, "blank");
        bad[40] ^= 1;
        assert_eq!(repair_header(&BAD_CRC, &bad, 3, 77), None, "two damaged bytes");
        assert_eq!(repair_header(&BAD_CRC, &bad[..79], 3, 77), None, "short");
    }

    #[test]
    fn zone_headers_in_use_and_free_are_repaired_from_one_damaged_byte() {
        let h = ZoneHeader { zone: 4, epoch: 9 };
        for (bytes, free) in [(h.encode(), false), (h.encode_free(), true)] {
            for pos in 0..ZONE_HEADER_BYTES {
                let mut bad = bytes.clone();
                bad[pos] ^= 0x24;
                assert_eq!(repair_zone_header(&bad, 4), Some((h, free)), "byte {pos}");
                assert_eq!(repair_zone_header(&bad, 5), None, "another zone's header");
            }
        }
        assert_eq!(repair_zone_header(&[0u8; 4096], 4), None, "blank");
    }
}
