//! `SealedCell` properties (specs/cells.md CELL-5): round trip through any plaintext; every
//! single-bit flip and every truncation of a sealed value is `Corrupt`, never data; a planted bug
//! proves the bit-flip property can fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]
#![cfg(not(loom))]

use cellar::env::DetEntropy;
use cellar::storage::cell::{
    Cell, CellError, FileCell, MemCell, SEAL_COUNTED_OVERHEAD_BYTES, SealedCell, open_counted,
    open_sealed, seal_with_nonce,
};
use cellar::storage::secret::VolumeSecret;
use proptest::prelude::*;
use std::sync::Arc;

fn is_corrupt(r: Result<Vec<u8>, CellError>) -> bool {
    matches!(r, Err(CellError::Corrupt(_)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_round_trip(secret in any::<[u8; 32]>(), seed in any::<u64>(),
                         values in proptest::collection::vec(
                             proptest::collection::vec(any::<u8>(), 0..200), 1..5)) {
        let secret = VolumeSecret::from_bytes(secret);
        let c = SealedCell::new(MemCell::new(), &secret, Arc::new(DetEntropy::new(seed)));
        let mut prev = Vec::new();
        for v in &values {
            let o = c.cas(&prev, v).unwrap();
            prop_assert!(o.swapped);
            prop_assert_eq!(&c.read().unwrap(), v);
            let raw = c.inner().read().unwrap();
            prop_assert_eq!(raw.len(), v.len() + SEAL_COUNTED_OVERHEAD_BYTES);
            prop_assert_eq!(&open_counted(&secret.cell_key(), &raw).unwrap().1, v);
            prev = v.clone();
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
                                         plaintext in proptest::collection::vec(any::<u8>(), 0..64)) {
        // CELL-5: all 8 * len flips, not a sample.
        let raw = seal_with_nonce(&key, &nonce, &plaintext).unwrap();
        for bit in 0..raw.len() * 8 {
            let mut bad = raw.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(is_corrupt(open_sealed(&key, &bad)), "flip of bit {} undetected", bit);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_detected(
        key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64), extra in any::<u8>()) {
        // CELL-5: dropping any suffix or prefix (but not everything) or appending a byte is
        // Corrupt. Truncation to zero bytes is the never-written cell (documented limit).
        let raw = seal_with_nonce(&key, &nonce, &plaintext).unwrap();
        for len in 1..raw.len() {
            prop_assert!(is_corrupt(open_sealed(&key, &raw[..len])), "prefix of {} accepted", len);
            prop_assert!(is_corrupt(open_sealed(&key, &raw[raw.len() - len..])),
                         "suffix of {} accepted", len);
        }
        let mut longer = raw.clone();
        longer.push(extra);
        prop_assert!(is_corrupt(open_sealed(&key, &longer)));
        prop_assert_eq!(open_sealed(&key, &[]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn tampered_inner_cell_reads_as_error(seed in any::<u64>(), byte in any::<prop::sample::Index>(),
                                          mask in 1u8..=255) {
        // CELL-5 end to end: tamper with the inner cell directly; read and cas both refuse.
        let secret = VolumeSecret::from_bytes([7; 32]);
        let c = SealedCell::new(MemCell::new(), &secret, Arc::new(DetEntropy::new(seed)));
        prop_assert!(c.cas(b"", b"root").unwrap().swapped);
        let raw = c.inner().read().unwrap();
        let mut bad = raw.clone();
        bad[byte.index(raw.len())] ^= mask;
        prop_assert!(c.inner().cas(&raw, &bad).unwrap().swapped);
        prop_assert!(is_corrupt(c.read()));
        prop_assert!(matches!(c.cas(b"root", b"x"), Err(CellError::Corrupt(_))));
        prop_assert_eq!(c.inner().read().unwrap(), bad, "a failed cas leaves the cell alone");
    }
}

#[test]
fn sealed_file_cells_on_one_path_lose_no_update() {
    // CELL-1 end to end: each thread has its own SealedCell<FileCell> (own entropy stream, own
    // lock-file handles) on one path; the CAS from raw bytes loses no increment.
    const THREADS: u64 = 3;
    const INCREMENTS: u64 = 15;
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("cell"));
    let secret = VolumeSecret::from_bytes([8; 32]);
    let open = |path: &std::path::Path, seed: u64| {
        SealedCell::new(FileCell::open(path).unwrap(), &secret, Arc::new(DetEntropy::new(seed)))
    };
    std::thread::scope(|s| {
        for seed in 0..THREADS {
            let c = open(&path, seed);
            s.spawn(move || {
                for _ in 0..INCREMENTS {
                    let mut current = c.read().unwrap();
                    loop {
                        let n = if current.is_empty() {
                            0
                        } else {
                            u64::from_le_bytes(current.as_slice().try_into().unwrap())
                        };
                        let o = c.cas(&current, &(n + 1).to_le_bytes()).unwrap();
                        if o.swapped {
                            break;
                        }
                        current = o.current;
                    }
                }
            });
        }
    });
    let v = open(&path, 99).read().unwrap();
    assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), THREADS * INCREMENTS);
}

/// The version byte is checked: with the check switched off, flipping it yields data — so
/// `every_single_bit_flip_is_detected` can fail.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_ignore_version_lets_a_flip_through() {
    let key = [1u8; 32];
    let raw = seal_with_nonce(&key, &[2u8; 24], b"root").unwrap();
    let mut bad = raw.clone();
    bad[0] ^= 0x02;
    assert!(is_corrupt(open_sealed(&key, &bad)));
    let _bug = cellar::bugs::plant("cell:sealed-ignore-version").unwrap();
    assert_eq!(open_sealed(&key, &bad).unwrap(), b"root", "flip of the version byte undetected");
}
