//! Runs the `decode_ref` fuzz seed corpus (`fuzz/corpus/decode_ref/`) as an ordinary test, with
//! the fuzz target's round-trip checks (REF-5, REF-6). Seed files named `ok-*` must decode and
//! `err-*` must be refused with a parse error; any other file (added by a fuzzing campaign)
//! must only not panic and round-trip if it decodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::storage::refs::{Ref, RefError, decode_ref};
use std::path::PathBuf;

fn check_round_trip(data: &[u8], r: Ref) {
    let (text, bytes) = (r.to_string(), r.to_bytes());
    assert!(data == bytes.as_slice() || data == text.as_bytes(), "re-encodes to its input");
    assert_eq!(Ref::from_bytes(&bytes).unwrap(), r);
    assert_eq!(text.parse::<Ref>().unwrap(), r);
    assert_eq!(decode_ref(&bytes).unwrap(), r);
    assert_eq!(decode_ref(text.as_bytes()).unwrap(), r);
}

#[test]
fn every_seed_decodes_as_its_name_says() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_ref");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let got = decode_ref(&data);
        if let Ok(r) = got {
            check_round_trip(&data, r);
        }
        if name.starts_with("ok-") {
            assert!(got.is_ok(), "{name}: {got:?}");
        } else if name.starts_with("err-") {
            assert!(matches!(got, Err(RefError::Parse(_))), "{name}: {got:?}");
        }
        seen += 1;
    }
    assert!(seen >= 20, "seed corpus has {seen} files");
}
