//! Runs the `decode_fs_record` fuzz seed corpus (`fuzz/corpus/decode_fs_record/`) as an ordinary
//! test with the fuzz target's checks (FS-1..FS-5, FS-12). Seeds named `ok-*` must decode, `err-*` must
//! be refused with a `RecordError` (or be too short to split); any other file (added by a
//! fuzzing campaign) must only not panic and round-trip if it decodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::fs::record::{AnyRecord, RecordError, decode_any, encode_any};
use std::path::PathBuf;

/// The fuzz target's input split: `key_len:u16-BE ‖ key ‖ value`.
fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    rest.split_at_checked(usize::from(u16::from_be_bytes(*len)))
}

fn check(key: &[u8], value: &[u8]) -> Result<AnyRecord, RecordError> {
    let any = decode_any(key, value)?;
    let (k, v) = encode_any(&any).expect("FS-5: what decodes encodes");
    assert_eq!((k.as_slice(), v.as_slice()), (key, value), "FS-1, FS-5, FS-12: a round trip");
    Ok(any)
}

#[test]
fn every_seed_decodes_as_its_name_says() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_fs_record");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let got = split(&data).map(|(k, v)| check(k, v));
        if name.starts_with("ok-") {
            assert!(matches!(got, Some(Ok(_))), "{name}: {got:?}");
        } else if name.starts_with("err-") {
            assert!(matches!(got, None | Some(Err(_))), "{name}: {got:?}");
        }
        seen += 1;
    }
    assert!(seen >= 30, "seed corpus has {seen} files");
}
