//! Property tests for refs: round trips through a store (`MemStore`, `DirStore`) and through
//! every encoding (bytes, text, postcard, `decode_ref`), and detection of every single-bit flip
//! of a ciphertext, both by the store/CID check and by the AEAD tag alone (REF-1..REF-6).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::Hash;
use cellar::storage::refs::{self, ParseRefError, Ref, RefError, TAG_SIZE_BYTES, decode_ref};
use cellar::storage::store::{DirStore, MemStore, Store};
use proptest::prelude::*;

fn plaintext(max_bytes: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max_bytes)
}

fn any_ref() -> impl Strategy<Value = Ref> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(c, dek)| Ref { cid: Hash(c), dek })
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn post_get_round_trips_in_mem_and_dir(salt in any::<[u8; 32]>(), data in plaintext(3000)) {
        let dir = tempfile::tempdir().unwrap();
        let stores: [Box<dyn Store>; 2] =
            [Box::new(MemStore::new()), Box::new(DirStore::open(dir.path()).unwrap())];
        for store in &stores {
            let r = refs::post(store.as_ref(), &salt, &data)?;
            prop_assert_eq!(refs::get(store.as_ref(), &r)?, data.clone());
            prop_assert_eq!(store.get(&r.cid)?.len(), data.len() + TAG_SIZE_BYTES);
            // REF-2: convergent — the same plaintext under the same salt gives the same ref.
            prop_assert_eq!(refs::post(store.as_ref(), &salt, &data)?, r);
        }
    }

    #[test]
    fn encodings_round_trip(r in any_ref()) {
        let bytes = r.to_bytes();
        prop_assert_eq!(&bytes[..32], &r.cid.0[..], "REF-1: cid first");
        prop_assert_eq!(&bytes[32..], &r.dek[..], "REF-1: dek second");
        prop_assert_eq!(Ref::from_bytes(&bytes)?, r);
        let text = r.to_string();
        prop_assert_eq!(text.len(), refs::REF_TEXT_SIZE_BYTES);
        prop_assert_eq!(text.parse::<Ref>(), Ok(r), "REF-5");
        prop_assert_eq!(postcard::to_allocvec(&r).unwrap(), bytes.to_vec(), "REF-6");
        prop_assert_eq!(postcard::from_bytes::<Ref>(&bytes).unwrap(), r);
        prop_assert_eq!(decode_ref(&bytes)?, r);
        prop_assert_eq!(decode_ref(text.as_bytes())?, r);
    }

    #[test]
    fn wrong_lengths_are_typed_errors(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assume!(bytes.len() != refs::REF_SIZE_BYTES);
        let is_wrong_length = matches!(
            Ref::from_bytes(&bytes),
            Err(RefError::Parse(ParseRefError::WrongByteLength { actual_bytes })) if actual_bytes == bytes.len()
        );
        prop_assert!(is_wrong_length);
        // decode_ref never panics and never accepts anything but the two canonical forms.
        if let Ok(r) = decode_ref(&bytes) {
            let text = r.to_string();
            prop_assert_eq!(text.as_bytes(), &bytes[..]);
        }
    }

    /// Every single-bit flip of a stored ciphertext is detected (REF-4, STORE-2).
    #[test]
    fn every_bit_flip_in_the_store_is_corrupt(salt in any::<[u8; 32]>(), data in plaintext(48)) {
        let store = MemStore::new();
        let r = refs::post(&store, &salt, &data)?;
        let ciphertext = store.get(&r.cid)?;
        for bit in 0..ciphertext.len() * 8 {
            prop_assert!(store.tamper(&r.cid, flip(&ciphertext, bit)));
            let got = refs::get(&store, &r);
            prop_assert!(matches!(got, Err(RefError::Corrupt { cid, .. }) if cid == r.cid), "bit {}", bit);
        }
        prop_assert!(store.tamper(&r.cid, ciphertext));
        prop_assert_eq!(refs::get(&store, &r)?, data);
    }

    /// The AEAD tag alone catches every single-bit flip: the CID is recomputed over the
    /// flipped ciphertext so the CID check passes and only the tag can object (REF-4).
    #[test]
    fn every_bit_flip_is_caught_by_the_tag_alone(salt in any::<[u8; 32]>(), data in plaintext(48)) {
        let (r, ciphertext) = refs::encrypt(&salt, &data)?;
        prop_assert_eq!(refs::decrypt(&r, &ciphertext)?, data);
        for bit in 0..ciphertext.len() * 8 {
            let flipped = flip(&ciphertext, bit);
            let forged = Ref { cid: Hash::of(&flipped), dek: r.dek };
            let got = refs::decrypt(&forged, &flipped);
            let is_tag_failure = matches!(&got, Err(RefError::Corrupt { detail, .. }) if detail.contains("tag"));
            prop_assert!(is_tag_failure, "bit {} gave {:?}", bit, got);
        }
    }

    /// The CID check catches a ciphertext that is authentic but not the one the ref names.
    #[test]
    fn a_ciphertext_under_the_wrong_cid_is_corrupt(salt in any::<[u8; 32]>(), data in plaintext(48)) {
        let (r, ciphertext) = refs::encrypt(&salt, &data)?;
        let wrong = Ref { cid: Hash::of(b"some other blob"), dek: r.dek };
        let got = refs::decrypt(&wrong, &ciphertext);
        let is_cid_failure = matches!(&got, Err(RefError::Corrupt { detail, .. }) if detail.contains("hashes to"));
        prop_assert!(is_cid_failure, "{:?}", got);
    }
}

#[test]
fn short_ciphertexts_are_corrupt_not_panics() {
    let r = Ref { cid: Hash::of(b"short"), dek: [0; 32] };
    for len in 0..TAG_SIZE_BYTES {
        let ct = vec![0u8; len];
        let forged = Ref { cid: Hash::of(&ct), ..r };
        assert!(matches!(refs::decrypt(&forged, &ct), Err(RefError::Corrupt { .. })));
    }
}

#[test]
fn missing_blob_is_a_store_error() {
    let store = MemStore::new();
    let r = Ref { cid: Hash::of(b"absent"), dek: [0; 32] };
    assert!(matches!(
        refs::get(&store, &r),
        Err(RefError::Store(cellar::storage::store::StoreError::NotFound(_)))
    ));
}

/// The checkers above must be seen to fail: with each check switched off, the same tests would
/// accept bad data.
#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;

    #[test]
    fn skip_tag_check_lets_a_forged_flip_through() {
        let (r, ciphertext) = refs::encrypt(&[1; 32], b"attack at dawn").unwrap();
        let flipped = flip(&ciphertext, 0);
        let forged = Ref { cid: Hash::of(&flipped), dek: r.dek };
        assert!(refs::decrypt(&forged, &flipped).is_err());
        let _bug = cellar::bugs::plant("refs:skip-tag-check").unwrap();
        let got = refs::decrypt(&forged, &flipped).unwrap();
        assert_eq!(got, b"`ttack at dawn", "the mutant returns tampered plaintext");
    }

    #[test]
    fn skip_cid_check_accepts_a_ciphertext_the_ref_does_not_name() {
        let (r, ciphertext) = refs::encrypt(&[1; 32], b"attack at dawn").unwrap();
        let wrong = Ref { cid: Hash::of(b"some other blob"), dek: r.dek };
        assert!(refs::decrypt(&wrong, &ciphertext).is_err());
        let _bug = cellar::bugs::plant("refs:skip-cid-check").unwrap();
        assert_eq!(refs::decrypt(&wrong, &ciphertext).unwrap(), b"attack at dawn");
    }
}
