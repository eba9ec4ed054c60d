//! Ref test vectors (`specs/vectors/refs.json`, `specs/refs.md`).
//!
//! Each vector is computed twice: by a from-scratch reference written here directly against
//! the `blake3` and `chacha20poly1305` crates (following `specs/refs.md`, not `cellar::storage::refs`),
//! and by `cellar::storage::refs`; the two must agree, and the file on disk must equal what they produce.
//! Then every vector in the file is checked data-driven: its ref and text parse, its ciphertext
//! decrypts to its plaintext.
//!
//! Regenerate the file after a deliberate format change with
//! `CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test ref_vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::Hash;
use cellar::storage::refs::{self, Ref};
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Ciphertexts up to this size are stored in full; longer ones only by hash.
const CIPHERTEXT_INLINE_MAX_BYTES: usize = 256;
const PATTERN_FORMULA: &str = "byte i = i mod 251";
const REGEN_COMMAND: &str = "CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test ref_vectors";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct VectorFile {
    format: String,
    spec: String,
    regenerate: String,
    dek_purpose: String,
    nonce_hex: String,
    vectors: Vec<Vector>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Pattern {
    formula: String,
    len_bytes: usize,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    name: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    volume_secret_hex: Option<String>,
    salt_hex: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    plaintext_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    plaintext_pattern: Option<Pattern>,
    dek_derivation_key_hex: String,
    ref_hex: String,
    ref_text: String,
    ciphertext_len_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    ciphertext_hex: Option<String>,
    ciphertext_blake3_hex: String,
}

/// The inputs of one vector.
struct Case {
    name: &'static str,
    description: &'static str,
    volume_secret: Option<[u8; 32]>,
    salt: [u8; 32],
    plaintext: Vec<u8>,
    pattern_len_bytes: Option<usize>,
}

fn counting_salt() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn pattern(len_bytes: usize) -> Vec<u8> {
    (0..len_bytes).map(|i| (i % 251) as u8).collect()
}

fn cases() -> Vec<Case> {
    let secret = [0x42; 32];
    let case = |name, description, salt, plaintext: &[u8]| Case {
        name,
        description,
        volume_secret: None,
        salt,
        plaintext: plaintext.to_vec(),
        pattern_len_bytes: None,
    };
    let bytes64: Vec<u8> = (0u8..64).collect();
    vec![
        case("empty", "empty plaintext: the ciphertext is the tag alone", counting_salt(), b""),
        case("one-byte", "one byte 0x61 ('a')", counting_salt(), b"a"),
        case("64-bytes", "bytes 0x00..0x3f", counting_salt(), &bytes64),
        case(
            "same-plaintext-salt-a",
            "\"hello, cellar\" under salt 00..1f; compare same-plaintext-salt-b",
            counting_salt(),
            b"hello, cellar",
        ),
        case(
            "same-plaintext-salt-b",
            "\"hello, cellar\" under salt ff..ff: a different salt gives an unrelated ref",
            [0xff; 32],
            b"hello, cellar",
        ),
        Case {
            pattern_len_bytes: Some(5000),
            ..case(
                "pattern-5000",
                "5000-byte pattern (several BLAKE3 chunks)",
                counting_salt(),
                &pattern(5000),
            )
        },
        Case {
            volume_secret: Some(secret),
            ..case(
                "volume-salt",
                "salt = BLAKE3 derive_key(\"cellar 2026 volume ref salt v1\", volume secret 42..42)",
                cellar::storage::secret::VolumeSecret::from_bytes(secret).ref_salt(),
                b"a volume's first blob",
            )
        },
    ]
}

/// The format written from the spec alone, without `cellar::storage::refs`.
fn reference_encrypt(salt: &[u8; 32], plaintext: &[u8]) -> ([u8; 32], [u8; 64], Vec<u8>) {
    let derivation_key = blake3::derive_key("cellar 2026 ref dek v1", salt);
    let dek = *blake3::keyed_hash(&derivation_key, plaintext).as_bytes();
    let ciphertext = ChaCha20Poly1305::new(Key::from_slice(&dek))
        .encrypt(Nonce::from_slice(&[0u8; 12]), plaintext)
        .unwrap();
    let cid = blake3::hash(&ciphertext);
    let mut r = [0u8; 64];
    r[..32].copy_from_slice(cid.as_bytes());
    r[32..].copy_from_slice(&dek);
    (derivation_key, r, ciphertext)
}

fn build(case: &Case) -> Vector {
    let (derivation_key, ref_bytes, ciphertext) = reference_encrypt(&case.salt, &case.plaintext);
    let (r, ct) = refs::encrypt(&case.salt, &case.plaintext).unwrap();
    assert_eq!(
        r.to_bytes(),
        ref_bytes,
        "{}: cellar::storage::refs disagrees with the spec",
        case.name
    );
    assert_eq!(ct, ciphertext, "{}", case.name);
    if let Some(secret) = case.volume_secret {
        assert_eq!(blake3::derive_key("cellar 2026 volume ref salt v1", &secret), case.salt);
    }
    Vector {
        name: case.name.to_owned(),
        description: case.description.to_owned(),
        volume_secret_hex: case.volume_secret.map(hex::encode),
        salt_hex: hex::encode(case.salt),
        plaintext_hex: case.pattern_len_bytes.is_none().then(|| hex::encode(&case.plaintext)),
        plaintext_pattern: case
            .pattern_len_bytes
            .map(|len_bytes| Pattern { formula: PATTERN_FORMULA.to_owned(), len_bytes }),
        dek_derivation_key_hex: hex::encode(derivation_key),
        ref_hex: hex::encode(ref_bytes),
        ref_text: format!("cellar:ref:v1:{}", hex::encode(ref_bytes)),
        ciphertext_len_bytes: ciphertext.len(),
        ciphertext_hex: (ciphertext.len() <= CIPHERTEXT_INLINE_MAX_BYTES)
            .then(|| hex::encode(&ciphertext)),
        ciphertext_blake3_hex: blake3::hash(&ciphertext).to_hex().to_string(),
    }
}

fn generate() -> VectorFile {
    VectorFile {
        format: "cellar ref test vectors v1".to_owned(),
        spec: "specs/refs.md".to_owned(),
        regenerate: REGEN_COMMAND.to_owned(),
        dek_purpose: refs::DEK_PURPOSE.to_owned(),
        nonce_hex: hex::encode(refs::REF_NONCE),
        vectors: cases().iter().map(build).collect(),
    }
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/refs.json")
}

/// Checks one vector from the file through `cellar::storage::refs` only, as another implementation
/// would use it.
fn check(v: &Vector) {
    let salt: [u8; 32] = hex::decode(&v.salt_hex).unwrap().try_into().unwrap();
    let plaintext = match (&v.plaintext_hex, &v.plaintext_pattern) {
        (Some(h), None) => hex::decode(h).unwrap(),
        (None, Some(p)) => {
            assert_eq!(p.formula, PATTERN_FORMULA, "{}", v.name);
            pattern(p.len_bytes)
        }
        _ => panic!("{}: exactly one of plaintext_hex and plaintext_pattern", v.name),
    };
    let r = Ref::from_bytes(&hex::decode(&v.ref_hex).unwrap()).unwrap();
    assert_eq!(v.ref_text.parse::<Ref>().unwrap(), r, "{}: REF-5", v.name);
    assert_eq!(r.to_string(), v.ref_text, "{}", v.name);
    assert_eq!(
        r.cid.to_hex(),
        v.ciphertext_blake3_hex,
        "{}: REF-1 cid = BLAKE3(ciphertext)",
        v.name
    );
    assert_eq!(r.dek, refs::derive_dek(&salt, &plaintext), "{}: REF-2", v.name);
    let (r2, ciphertext) = refs::encrypt(&salt, &plaintext).unwrap();
    assert_eq!(r2, r, "{}", v.name);
    assert_eq!(ciphertext.len(), v.ciphertext_len_bytes, "{}", v.name);
    if let Some(ct_hex) = &v.ciphertext_hex {
        assert_eq!(hex::encode(&ciphertext), *ct_hex, "{}", v.name);
    }
    assert_eq!(Hash::of(&ciphertext).to_hex(), v.ciphertext_blake3_hex, "{}", v.name);
    assert_eq!(refs::decrypt(&r, &ciphertext).unwrap(), plaintext, "{}: REF-4", v.name);
}

#[test]
fn vectors_file_matches_the_spec_and_the_implementation() {
    let generated = format!("{}\n", serde_json::to_string_pretty(&generate()).unwrap());
    let path = vectors_path();
    if std::env::var_os("CELLAR_REGEN_VECTORS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with {REGEN_COMMAND}", path.display()));
    assert!(
        on_disk == generated,
        "{} drifted from the implementation; if the format change is deliberate, regenerate with {REGEN_COMMAND}",
        path.display()
    );
    let file: VectorFile = serde_json::from_str(&on_disk).unwrap();
    assert!(file.vectors.len() >= 6);
    assert_eq!(file.dek_purpose, refs::DEK_PURPOSE);
    for v in &file.vectors {
        check(v);
    }
}

#[test]
fn same_plaintext_under_two_salts_gives_unrelated_refs() {
    let file = generate();
    let find = |n: &str| file.vectors.iter().find(|v| v.name == n).unwrap();
    let (a, b) = (find("same-plaintext-salt-a"), find("same-plaintext-salt-b"));
    assert_eq!(a.plaintext_hex, b.plaintext_hex);
    assert_ne!(a.ref_hex[..64], b.ref_hex[..64]);
    assert_ne!(a.ref_hex[64..], b.ref_hex[64..]);
}
