//! Fuzz `cellar::fs::record::decode_record`: arbitrary bytes never panic, and whatever decodes
//! is a valid record (FS-1..FS-5) that re-encodes to exactly its input.
//!
//! Input: `key_len:u16-BE ‖ key[key_len] ‖ value` (the rest).
#![no_main]

use cellar::fs::record::{Record, decode_record, encode_extent, encode_info};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let Some((key, value)) = rest.split_at_checked(usize::from(u16::from_be_bytes(*len))) else {
        return;
    };
    let Ok((path, offset, record)) = decode_record(key, value) else { return };
    assert_eq!(path.key(offset), key, "FS-1: the key re-encodes");
    let again = match &record {
        Record::Info(i) => encode_info(i),
        Record::Extent(e) => encode_extent(e),
    };
    assert_eq!(again.as_deref(), Ok(value), "FS-5: a decoded record re-encodes to its bytes");
    assert_eq!(offset == 0, matches!(record, Record::Info(_)), "FS-1: offset 0 is the info");
});
