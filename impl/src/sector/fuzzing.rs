//! Fuzz entry points (`fuzz/fuzz_targets/recover_from_image.rs`), kept in the library so the
//! seed corpus also runs as an ordinary test (`impl/tests/sector_fuzz_corpus.rs`).
//!
//! Checks SEC-5/SEC-6 from outside the engine: whatever bytes a device holds, opening it never
//! panics, and every value the engine then returns is backed by a record whose CRC verifies
//! when re-checked independently from the raw image.

use super::format::{
    FLAG_COMPRESSED, Kind, PACKED_ALIGN_BYTES, RECORD_HEADER_SIZE_BYTES, RecordHeader,
};
use super::{
    Engine, EngineConfig, MemDevice, Record, SECTOR_SIZE_BYTES, SectorError, WriteOptions,
};
use std::collections::BTreeSet;

/// Largest image the fuzz entry point looks at.
pub const FUZZ_IMAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Opens `data` as a device image; panics only if a guarantee is broken: a value served whose
/// record does not verify (SEC-6), a flushed write that does not read back, or a recovery that
/// is not final (SEC-7: reopening after one flushed write must read every key as the first
/// recovery did: its cuts are permanent, nothing it dropped comes back, nothing it kept is
/// lost or turns corrupt).
pub fn recover_from_image(data: &[u8]) {
    let image = data.get(..data.len().min(FUZZ_IMAGE_BYTES_MAX)).unwrap_or(data).to_vec();
    let Ok(mut e) = Engine::open(MemDevice::from_image(image), EngineConfig::default()) else {
        return;
    };
    let mut keys = e.keys();
    keys.sort_unstable();
    for &key in &keys {
        let Ok(Some(rec)) = e.read(key) else { continue };
        let sector = rec.version.sector() as usize;
        assert!(
            raw_record_verifies(e.device_mut().image(), sector, key, &rec.value),
            "SEC-6: key {key} returned a value whose record does not verify"
        );
    }
    // The engine stays usable on whatever it recovered.
    if e.write(u64::MAX, b"fuzz", WriteOptions { flush: true, ..WriteOptions::default() }).is_err()
    {
        return;
    }
    let reread = e.read(u64::MAX);
    assert!(matches!(reread, Ok(Some(ref r)) if r.value == b"fuzz"), "a flushed write reads back");
    let image = e.device_mut().image().to_vec();
    if has_blank_zone_over_data(data) {
        return; // two lost sectors of one zone: specs/sector.md §13
    }
    let reopened = Engine::open(MemDevice::from_image(image), EngineConfig::default());
    assert!(reopened.is_ok(), "SEC-7: the device no longer opens after recovery and a write");
    let Ok(mut again) = reopened else { return };
    let mut all: BTreeSet<u64> = keys.into_iter().collect();
    all.extend(again.keys());
    all.extend(e.recovery_report().corrupt_keys.iter().copied());
    all.extend(again.recovery_report().corrupt_keys.iter().copied());
    for key in all {
        let (first, second) = (outcome(e.read(key)), outcome(again.read(key)));
        assert_eq!(first, second, "SEC-7: key {key} reads differently after a second recovery");
    }
}

/// Known limit (specs/sector.md §13): a zone counts as never used when its header sector is
/// blank and its first data sector holds no record naming it (format blanks both, and a
/// zone's first record always lands in its first data sector). Records deeper in such a zone
/// are invisible to the epoch count, so if they carry the epoch handed out next they come back
/// at the next recovery. That takes two damaged sectors of one zone (or a crafted image);
/// images with such a zone are left out of the reopen check.
fn has_blank_zone_over_data(image: &[u8]) -> bool {
    let sb = [0usize, 1].iter().find_map(|c| {
        image
            .get(c * SECTOR_SIZE_BYTES..(c + 1) * SECTOR_SIZE_BYTES)
            .and_then(|s| super::format::Superblock::decode(s).ok())
    });
    let Some(sb) = sb else { return false };
    let sector = |n: u64| {
        let at = usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(SECTOR_SIZE_BYTES);
        image.get(at..at.saturating_add(SECTOR_SIZE_BYTES))
    };
    let blank = |n: u64| sector(n).is_some_and(|s| s.iter().all(|b| *b == 0));
    (0..sb.zone_count).any(|z| {
        let first = sb.zone_first_sector(z);
        blank(first)
            && !sector(first + 1).is_some_and(|s| RecordHeader::names_its_sector(s, first + 1))
            && (2..u64::from(sb.zone_sector_count))
                .any(|i| sector(first + i).is_some_and(|d| d.iter().any(|b| *b != 0)))
    })
}

/// A read's outcome, errors by kind only.
fn outcome(r: Result<Option<Record>, SectorError>) -> Result<Option<Vec<u8>>, String> {
    match r {
        Ok(r) => Ok(r.map(|r| r.value)),
        Err(SectorError::Corrupt { .. }) => Err("corrupt".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Independently finds `key`'s record in `sector` of `image` and checks its CRCs.
fn raw_record_verifies(image: &[u8], sector: usize, key: u64, value: &[u8]) -> bool {
    let start = sector * SECTOR_SIZE_BYTES;
    (0..SECTOR_SIZE_BYTES - RECORD_HEADER_SIZE_BYTES + 1).step_by(PACKED_ALIGN_BYTES).any(|off| {
        let at = start + off;
        let Some(Ok(h)) = image.get(at..).map(RecordHeader::decode) else { return false };
        let body = at + RECORD_HEADER_SIZE_BYTES;
        let Some(payload) = image.get(body..body + h.payload_len as usize) else { return false };
        h.key == key
            && h.kind == Kind::Put
            && crc32c::crc32c(payload) == h.payload_crc
            && (h.flags & FLAG_COMPRESSED != 0 || payload == value)
    })
}
