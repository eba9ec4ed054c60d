//! Fuzz `cellar::storage::refs::decode_ref`: arbitrary bytes never panic, and whatever decodes is in a
//! canonical form — re-encoding it gives back exactly the input (REF-5 text, REF-6 binary).
#![no_main]

use cellar::storage::refs::{Ref, decode_ref};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    let Ok(r) = decode_ref(data) else { return };
    let text = r.to_string();
    let bytes = r.to_bytes();
    assert!(
        data == bytes.as_slice() || data == text.as_bytes(),
        "a decoded ref re-encodes to its input"
    );
    assert_eq!(Ref::from_bytes(&bytes).ok(), Some(r));
    assert_eq!(text.parse::<Ref>().ok(), Some(r));
    assert_eq!(decode_ref(&bytes).ok(), Some(r));
    assert_eq!(decode_ref(text.as_bytes()).ok(), Some(r));
});
