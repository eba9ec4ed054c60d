//! Fuzz entry points (`fuzz/fuzz_targets/recover_from_image.rs`), kept in the library so the
//! seed corpus also runs as an ordinary test (`impl/tests/sector_fuzz_corpus.rs`).
//!
//! Checks SEC-5/SEC-6 from outside the engine: whatever bytes a device holds, opening it never
//! panics, and every value the engine then returns is backed by a record whose CRC verifies
//! when re-checked independently from the raw image.

use super::format::{
    FLAG_COMPRESSED, Kind, PACKED_ALIGN_BYTES, RECORD_HEADER_SIZE_BYTES, RecordHeader,
};
use super::{Engine, EngineConfig, MemDevice, SECTOR_SIZE_BYTES, WriteOptions};

/// Largest image the fuzz entry point looks at.
pub const FUZZ_IMAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Opens `data` as a device image; panics only if a guarantee is broken.
pub fn recover_from_image(data: &[u8]) {
    let image = data.get(..data.len().min(FUZZ_IMAGE_BYTES_MAX)).unwrap_or(data).to_vec();
    let Ok(mut e) = Engine::open(MemDevice::from_image(image), EngineConfig::default()) else {
        return;
    };
    let mut keys = e.keys();
    keys.sort_unstable();
    for key in keys {
        let Ok(Some(rec)) = e.read(key) else { continue };
        let sector = rec.version.sector() as usize;
        assert!(
            raw_record_verifies(e.device_mut().image(), sector, key, &rec.value),
            "SEC-6: key {key} returned a value whose record does not verify"
        );
    }
    // The engine stays usable on whatever it recovered.
    if e.write(u64::MAX, b"fuzz", WriteOptions { flush: true, ..WriteOptions::default() }).is_ok() {
        let reread = e.read(u64::MAX);
        assert!(
            matches!(reread, Ok(Some(ref r)) if r.value == b"fuzz"),
            "a flushed write reads back"
        );
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
