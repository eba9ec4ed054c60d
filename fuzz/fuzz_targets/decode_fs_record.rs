//! Fuzz `cellar::fs::record::decode_any` (path records, inode records, back-references):
//! arbitrary bytes never panic, and whatever decodes is a valid record (FS-1..FS-5, FS-12) that
//! re-encodes to exactly its input.
//!
//! Input: `key_len:u16-BE ‖ key[key_len] ‖ value` (the rest).
#![no_main]

use cellar::fs::record::{decode_any, encode_any};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let Some((key, value)) = rest.split_at_checked(usize::from(u16::from_be_bytes(*len))) else {
        return;
    };
    let Ok(any) = decode_any(key, value) else { return };
    let (k, v) = encode_any(&any).expect("FS-5: what decodes encodes");
    assert_eq!((k.as_slice(), v.as_slice()), (key, value), "FS-1, FS-5, FS-12: a round trip");
});
