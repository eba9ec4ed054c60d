//! Runs the `decode_sealed_cell` fuzz target's seed corpus (`fuzz/corpus/decode_sealed_cell/`)
//! as an ordinary test (CELL-5).
//!
//! Every file goes through `open_sealed` under the fuzz target's fixed key; it must not panic
//! (what the fuzz target asserts). Named seeds pin their outcome: `ok-*` must open (to the
//! plaintext the generator sealed, and the file must equal the generator's bytes), `corrupt-*`
//! must be `Corrupt`. Files libFuzzer adds (hash names) are only checked for not panicking.
//!
//! Regenerate the named seeds: `cargo test -p cellar --test corpus_sealed_cell -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]
#![cfg(not(loom))]

use cellar::storage::cell::{CellError, open_sealed, seal_with_nonce};
use std::path::PathBuf;

/// The key the fuzz target opens with (`fuzz/fuzz_targets/decode_sealed_cell.rs` — keep equal).
const CORPUS_KEY: [u8; 32] = [0x5e; 32];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_sealed_cell")
}

fn seal(nonce_byte: u8, plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(&CORPUS_KEY, &[nonce_byte; 24], plaintext).unwrap()
}

fn flip(mut bytes: Vec<u8>, index: usize, mask: u8) -> Vec<u8> {
    bytes[index] ^= mask;
    bytes
}

/// A named seed: file name, bytes, and the plaintext for `ok-` seeds.
type Seed = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// The named seeds.
fn seeds() -> Vec<Seed> {
    let root: Vec<u8> = (0..64u8).collect();
    let short = seal(2, b"root");
    let mut extended = short.clone();
    extended.push(0);
    vec![
        ("ok-never-written", Vec::new(), Some(Vec::new())),
        ("ok-empty-plaintext", seal(1, b""), Some(Vec::new())),
        ("ok-short", short.clone(), Some(b"root".to_vec())),
        ("ok-64-byte-ref", seal(3, &root), Some(root.clone())),
        ("corrupt-one-byte", vec![1], None),
        ("corrupt-header-only", short[..25].to_vec(), None),
        ("corrupt-truncated-tag", short[..short.len() - 1].to_vec(), None),
        ("corrupt-extended", extended, None),
        ("corrupt-flipped-version", flip(short.clone(), 0, 0x02), None),
        ("corrupt-flipped-nonce", flip(short.clone(), 5, 0x10), None),
        ("corrupt-flipped-ciphertext", flip(short.clone(), 26, 0x01), None),
        ("corrupt-flipped-tag", flip(short.clone(), short.len() - 1, 0x80), None),
        ("corrupt-wrong-key", seal_with_nonce(&[0x11; 32], &[2; 24], b"root").unwrap(), None),
        ("corrupt-all-zero", vec![0; 64], None),
    ]
}

#[test]
#[ignore = "writes the seed corpus; run with --ignored to regenerate"]
fn regenerate_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes, _) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

#[test]
fn named_seeds_are_checked_in_and_current() {
    for (name, bytes, _) in seeds() {
        let on_disk = std::fs::read(corpus_dir().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; regenerate the corpus (see module docs)"));
        assert_eq!(on_disk, bytes, "{name} differs from its generator; regenerate the corpus");
    }
}

#[test]
fn named_seeds_open_as_named() {
    // CELL-5: ok seeds give back exactly what was sealed; every damaged one is Corrupt.
    for (name, bytes, plaintext) in seeds() {
        let got = open_sealed(&CORPUS_KEY, &bytes);
        match plaintext {
            Some(p) => assert_eq!(got.unwrap(), p, "{name}"),
            None => assert!(matches!(got, Err(CellError::Corrupt(_))), "{name}: {got:?}"),
        }
    }
}

#[test]
fn every_corpus_file_opens_without_panicking() {
    let mut files = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let got = open_sealed(&CORPUS_KEY, &bytes);
        if name.starts_with("corrupt-") {
            assert!(matches!(got, Err(CellError::Corrupt(_))), "{name}: {got:?}");
        } else if name.starts_with("ok-") {
            assert!(got.is_ok(), "{name}: {got:?}");
        }
        files += 1;
    }
    assert!(files >= seeds().len(), "the seed corpus lost files: {files}");
}

/// With the version check switched off, the `corrupt-flipped-version` seed opens to data — so
/// `named_seeds_open_as_named` can fail.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_ignore_version_fails_a_named_seed() {
    let bytes = std::fs::read(corpus_dir().join("corrupt-flipped-version")).unwrap();
    assert!(open_sealed(&CORPUS_KEY, &bytes).is_err());
    let _bug = cellar::bugs::plant("cell:sealed-ignore-version").unwrap();
    assert_eq!(open_sealed(&CORPUS_KEY, &bytes).unwrap(), b"root");
}
