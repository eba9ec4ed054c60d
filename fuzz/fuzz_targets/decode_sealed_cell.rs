//! Fuzz target: `cellar::storage::cell::open_sealed` on arbitrary bytes never panics (CELL-5), and
//! whatever it accepts re-seals to a value of the same length that opens to the same plaintext.
//!
//! Seed corpus: `fuzz/corpus/decode_sealed_cell/` (regenerated and checked as an ordinary test by
//! `impl/tests/corpus_sealed_cell.rs`). Run: `cargo +nightly fuzz run decode_sealed_cell`.
#![no_main]

use cellar::storage::cell::{SEAL_OVERHEAD_BYTES, open_sealed, seal_with_nonce};
use libfuzzer_sys::fuzz_target;

/// The key the seed corpus was sealed under (`impl/tests/corpus_sealed_cell.rs` — keep equal).
const CORPUS_KEY: [u8; 32] = [0x5e; 32];

fuzz_target!(init: cellar_fuzz::plant_from_env(), |raw: &[u8]| {
    let Ok(plaintext) = open_sealed(&CORPUS_KEY, raw) else { return };
    if raw.is_empty() {
        assert!(plaintext.is_empty(), "a never-written cell opens to the empty value");
        return;
    }
    assert_eq!(raw.len(), plaintext.len() + SEAL_OVERHEAD_BYTES, "CELL-5: framing is exact");
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&raw[1..25]);
    let resealed = seal_with_nonce(&CORPUS_KEY, &nonce, &plaintext).expect("small plaintext seals");
    assert_eq!(resealed, raw, "CELL-5: sealing is a function of (key, nonce, plaintext)");
});
