//! SEC-11: the in-memory index costs at most 16 bytes of RAM per live key, measured at 10 M
//! keys (the figure is printed; run with `--nocapture` to see it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::Index;

const KEYS: u64 = 10_000_000;

#[test]
fn index_costs_at_most_16_bytes_per_key_at_10m_keys() {
    let mut ix = Index::new();
    let mut worst = 0.0f64;
    for k in 0..KEYS {
        // Spread keys like truncated hashes; the sector is arbitrary.
        ix.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555, (k % 1_000_000) as u32);
        if k >= 1_000 && k % 4096 == 0 {
            worst = worst.max(ix.heap_bytes() as f64 / ix.len() as f64);
        }
    }
    let per_key = ix.heap_bytes() as f64 / ix.len() as f64;
    println!(
        "SEC-11: {} keys, {} index bytes, {per_key:.2} B/key (worst seen {worst:.2})",
        ix.len(),
        ix.heap_bytes()
    );
    assert_eq!(ix.len() as u64, KEYS);
    assert!(per_key <= 16.0 && worst <= 16.0, "SEC-11 violated: {per_key} / {worst} B per key");
    for k in (0..KEYS).step_by(997) {
        assert_eq!(
            ix.get(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555),
            Some((k % 1_000_000) as u32)
        );
    }
}
