//! Generic mutations of a valid input: truncations, single bit flips, appended bytes. Their
//! verdicts are observed from the reference (a flipped bit may leave a valid input).

use super::Builder;

/// Deterministic pseudo-random bytes named by `label` (BLAKE3's XOF).
pub fn pseudo(label: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(label.as_bytes()).finalize_xof().fill(&mut out);
    out
}

/// Proper prefixes: every length for short inputs, a spread of lengths for long ones.
pub fn truncations(b: &mut Builder, name: &str, bytes: &[u8]) {
    let n = bytes.len();
    let mut lens: Vec<usize> = if n <= 48 {
        (0..n).collect()
    } else {
        let mut l = vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33, n / 2];
        l.extend(n.saturating_sub(5)..n);
        l
    };
    lens.retain(|l| *l < n);
    lens.sort_unstable();
    lens.dedup();
    for l in lens {
        let comment = format!("{name} cut to {l} of {n} bytes");
        b.observed(&comment, &["Truncated"], bytes.get(..l).unwrap_or_default());
    }
}

/// Single bit flips at up to `max` positions spread over the input.
pub fn flips(b: &mut Builder, name: &str, bytes: &[u8], max: usize) {
    let n = bytes.len();
    if n == 0 || max == 0 {
        return;
    }
    let step = n.div_ceil(max).max(1);
    for i in (0..n).step_by(step) {
        let bit = i % 8;
        let mut m = bytes.to_vec();
        if let Some(x) = m.get_mut(i) {
            *x ^= 1 << bit;
        }
        b.observed(&format!("{name} with bit {bit} of byte {i} flipped"), &["BitFlip"], &m);
    }
}

/// The input with one zero byte, and with two `ff` bytes, appended.
pub fn trailing(b: &mut Builder, name: &str, bytes: &[u8]) {
    for extra in [&[0u8][..], &[0xff, 0xff][..]] {
        let mut m = bytes.to_vec();
        m.extend_from_slice(extra);
        b.observed(
            &format!("{name} followed by {} extra byte(s)", extra.len()),
            &["TrailingBytes"],
            &m,
        );
    }
}

/// Truncations, up to `flips_max` bit flips and appended bytes.
pub fn standard(b: &mut Builder, name: &str, bytes: &[u8], flips_max: usize) {
    truncations(b, name, bytes);
    flips(b, name, bytes, flips_max);
    trailing(b, name, bytes);
}
