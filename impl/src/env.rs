//! The environment the logic runs in: randomness and time arrive through these traits so the
//! simulator can drive the same code from a seed (see DEVELOPERS.md, "Deterministic core").
//!
//! Production uses [`OsEntropy`] and [`SystemClock`]; nothing else in `cellar` may call the OS
//! for either.

/// A source of random bytes (nonces, volume secrets, holder ids).
pub trait Entropy: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// Draws a fixed-size array from an entropy source.
pub fn random_array<const N: usize>(entropy: &dyn Entropy) -> [u8; N] {
    let mut out = [0u8; N];
    entropy.fill(&mut out);
    out
}

/// The operating system's CSPRNG. The only place `cellar` touches OS randomness.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // getrandom fails only when the OS has no entropy source at all; there is no safe way to
        // continue without randomness for nonces, so this is a fatal environment error.
        #[expect(clippy::expect_used, reason = "no OS randomness is unrecoverable")]
        getrandom::fill(buf).expect("the operating system's random source failed");
    }
}

/// A deterministic entropy stream (BLAKE3 in XOF mode over a 32-byte seed) for tests and the
/// simulator. Not a secret source: whoever knows the seed knows every byte.
#[derive(Debug)]
pub struct DetEntropy {
    state: crate::sync::Mutex<blake3::OutputReader>,
}

impl DetEntropy {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key("cellar 2026 deterministic entropy v1");
        h.update(&seed.to_le_bytes());
        Self { state: crate::sync::Mutex::new(h.finalize_xof()) }
    }
}

impl Entropy for DetEntropy {
    fn fill(&self, buf: &mut [u8]) {
        crate::sync::lock(&self.state).fill(buf);
    }
}

/// A monotonic-enough source of milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The wall clock. The only place `cellar` reads the OS clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// SplitMix64: a tiny, fast, seeded generator for deterministic choices (crash points, test
/// workloads, benchmark key sequences). Not for secrets; use [`Entropy`] for those.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (modulo bias is irrelevant at these sizes); `0` when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}
