//! `SealedCell`: XChaCha20-Poly1305 over any cell.
//!
//! Owns the sealed-value format (`specs/cells.md`, "SealedCell layout") and compare-and-swap
//! over randomized ciphertexts. Enforces CELL-5 (confidentiality and integrity: a tampered or
//! truncated value is [`CellError::Corrupt`], never data; each write draws a fresh 192-bit nonce
//! from the injected [`Entropy`]), and carries CELL-1..3 over from the inner cell.
//!
//! Writes the counted format (version 2, `rollback.rs`): each write seals the counter it read
//! plus one, and every read and `cas` hands the counter it opened to the reader's [`Seen`], which
//! refuses an older one with [`CellError::Rollback`] (CELL-6). Version-1 values still open
//! (counter 0).
//!
//! What it must never do: return plaintext whose tag did not verify; reuse a nonce on purpose
//! (nonces come only from `entropy`, never from a counter or the clock); report a swap that did
//! not reach the inner cell; draw randomness from anywhere but the injected source.

use super::rollback::{SEAL_COUNTED_OVERHEAD_BYTES, Seen, open_counted, seal_counted_with_nonce};
use super::{CasOutcome, Cell, CellError, check_size};
use crate::env::{Entropy, random_array};
use crate::storage::secret::VolumeSecret;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The only sealed-value format version this code writes and reads.
pub const SEAL_VERSION: u8 = 1;
/// Bytes of the XChaCha20 nonce.
pub const SEAL_NONCE_SIZE_BYTES: usize = 24;
/// Bytes of the Poly1305 tag.
pub const SEAL_TAG_SIZE_BYTES: usize = 16;
/// Bytes a sealed value adds to its plaintext: version(1) + nonce(24) + tag(16).
pub const SEAL_OVERHEAD_BYTES: usize = 1 + SEAL_NONCE_SIZE_BYTES + SEAL_TAG_SIZE_BYTES;
/// Fixed purpose string bound into every seal as associated data (followed by the version byte),
/// so a sealed cell value cannot be passed off as any other XChaCha20-Poly1305 message made
/// under the same key.
pub const SEAL_AAD_PURPOSE: &[u8] = b"cellar 2026 sealed cell value";
/// Largest plaintext [`seal_with_nonce`] accepts; far above any cell's maximum, and below the
/// AEAD's own limit.
pub const SEAL_PLAINTEXT_SIZE_MAX_BYTES: usize = u32::MAX as usize;
/// How many times one `cas` retries after losing the inner swap to a write of the *same*
/// plaintext as `expected` before it reports a (spurious) lost swap. See [`SealedCell`].
pub const SEALED_CAS_ATTEMPTS_MAX: usize = 16;

const _: () = assert!(SEAL_OVERHEAD_BYTES == 41);

/// The sealed-value header; postcard encodes it as exactly version(1) ‖ nonce(24).
#[derive(Serialize, Deserialize)]
struct Header {
    version: u8,
    nonce: [u8; SEAL_NONCE_SIZE_BYTES],
}
const HEADER_SIZE_BYTES: usize = 1 + SEAL_NONCE_SIZE_BYTES;

fn aad() -> [u8; SEAL_AAD_PURPOSE.len() + 1] {
    let mut a = [0u8; SEAL_AAD_PURPOSE.len() + 1];
    a[..SEAL_AAD_PURPOSE.len()].copy_from_slice(SEAL_AAD_PURPOSE);
    a[SEAL_AAD_PURPOSE.len()] = SEAL_VERSION;
    a
}

/// Seals `plaintext` under `key` with `nonce`: version ‖ nonce ‖ ciphertext ‖ tag (CELL-5).
///
/// Pure, for tests, vectors and fuzz seeds. [`SealedCell`] calls it with a fresh random nonce;
/// calling it twice with one (key, nonce) pair and different plaintexts destroys confidentiality
/// and integrity of both.
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; SEAL_NONCE_SIZE_BYTES],
    plaintext: &[u8],
) -> Result<Vec<u8>, CellError> {
    check_size(plaintext.len(), SEAL_PLAINTEXT_SIZE_MAX_BYTES)?;
    let header = Header { version: SEAL_VERSION, nonce: *nonce };
    let mut out = postcard::to_stdvec(&header)
        .map_err(|e| CellError::Corrupt(format!("cannot encode sealed header: {e}")))?;
    debug_assert_eq!(out.len(), HEADER_SIZE_BYTES);
    let aead = XChaCha20Poly1305::new(key.into());
    let ct = aead
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plaintext, aad: &aad() })
        .map_err(|_| CellError::TooLarge {
            size_bytes: plaintext.len(),
            max_bytes: SEAL_PLAINTEXT_SIZE_MAX_BYTES,
        })?;
    out.extend_from_slice(&ct);
    debug_assert_eq!(out.len(), plaintext.len() + SEAL_OVERHEAD_BYTES);
    Ok(out)
}

/// Opens the raw contents of a sealed cell under `key` (CELL-5). Pure; the fuzz target
/// `decode_sealed_cell` drives it with arbitrary bytes.
///
/// Empty `raw` is a cell that was never written and opens to the empty value. Anything else
/// must be a complete, authentic sealed value: a short, truncated, extended or altered one is
/// [`CellError::Corrupt`], never data.
pub fn open_sealed(key: &[u8; 32], raw: &[u8]) -> Result<Vec<u8>, CellError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if raw.len() < SEAL_OVERHEAD_BYTES {
        return Err(CellError::Corrupt(format!(
            "sealed cell is {} bytes, shorter than the {SEAL_OVERHEAD_BYTES}-byte minimum",
            raw.len()
        )));
    }
    let (header, ct) = postcard::take_from_bytes::<Header>(raw)
        .map_err(|e| CellError::Corrupt(format!("sealed cell header does not decode: {e}")))?;
    if header.version != SEAL_VERSION && !crate::bugs::active("cell:sealed-ignore-version") {
        return Err(CellError::Corrupt(format!(
            "sealed cell has unknown version {}",
            header.version
        )));
    }
    let aead = XChaCha20Poly1305::new(key.into());
    aead.decrypt(XNonce::from_slice(&header.nonce), Payload { msg: ct, aad: &aad() })
        .map_err(|_| CellError::Corrupt("sealed cell failed authentication".to_owned()))
}

/// A cell whose contents are sealed under a key derived from the volume secret (CELL-5).
///
/// # Compare-and-swap over randomized ciphertexts
/// Two seals of one plaintext differ, so `cas` cannot hand `expected` to the inner cell. It reads
/// the inner raw bytes `r`, opens them, compares the plaintext with `expected`, and CASes the
/// inner cell from `r` (the bytes it read, not a re-seal) to a fresh seal of `new`. The inner
/// CAS succeeds only if nobody wrote in between, so a swap is reported only when it happened,
/// and the value replaced was exactly the one compared (CELL-1).
///
/// If the inner CAS loses, the inner cell reports its current raw value `r'`; if `r'` opens to
/// something other than `expected`, that plaintext is returned as an ordinary lost swap
/// (CELL-2), linearized at the inner CAS. If `r'` opens to `expected` again (someone re-sealed
/// the same plaintext), the swap is retried from `r'`: reporting a lost swap whose current value
/// equals `expected` would look like a broken CAS. Each retry means another writer's inner swap
/// succeeded, so the loop is lock-free; to keep it bounded, after
/// [`SEALED_CAS_ATTEMPTS_MAX`] such losses in a row it reports `swapped: false` with
/// `current == expected` — a *spurious* failure, like `compare_exchange_weak`: never a false
/// success, never a lost update, and a caller's retry loop simply goes round again.
pub struct SealedCell<C> {
    inner: C,
    key: [u8; 32],
    entropy: Arc<dyn Entropy>,
    seen: Seen,
}

impl<C> std::fmt::Debug for SealedCell<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedCell(..)")
    }
}

impl<C: Cell> SealedCell<C> {
    /// Seals `inner` under `secret`'s cell key; nonces come from `entropy`, which must be a
    /// CSPRNG in production ([`crate::env::OsEntropy`]): nonce uniqueness rests on it (CELL-5).
    pub fn new(inner: C, secret: &VolumeSecret, entropy: Arc<dyn Entropy>) -> Self {
        Self { inner, key: secret.cell_key(), entropy, seen: Seen::in_memory() }
    }

    /// Remembers the highest counter seen in `seen` (e.g. [`Seen::file`] beside a local cell)
    /// instead of in this process only (CELL-6).
    #[must_use]
    pub fn with_seen(self, seen: Seen) -> Self {
        Self { seen, ..self }
    }

    /// The highest counter this reader has seen.
    pub fn seen_counter(&self) -> u64 {
        self.seen.get()
    }

    /// Opens raw inner bytes and checks their counter against the one seen (CELL-5, CELL-6).
    fn open(&self, raw: &[u8]) -> Result<(u64, Vec<u8>), CellError> {
        let (counter, plaintext) = open_counted(&self.key, raw)?;
        self.seen.observe(counter)?;
        Ok((counter, plaintext))
    }

    /// The wrapped cell (its raw contents are sealed values).
    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn seal(&self, counter: u64, plaintext: &[u8]) -> Result<Vec<u8>, CellError> {
        let nonce: [u8; SEAL_NONCE_SIZE_BYTES] = random_array(&*self.entropy); // CELL-5
        seal_counted_with_nonce(&self.key, &nonce, counter, plaintext)
    }
}

impl<C: Cell> Cell for SealedCell<C> {
    fn max_size_bytes(&self) -> usize {
        self.inner.max_size_bytes().saturating_sub(SEAL_COUNTED_OVERHEAD_BYTES)
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        Ok(self.open(&self.inner.read()?)?.1)
    }

    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), self.max_size_bytes())?; // CELL-3: before anything changes.
        let mut raw = self.inner.read()?;
        for _ in 0..SEALED_CAS_ATTEMPTS_MAX {
            let (counter, current) = self.open(&raw)?;
            if current != expected {
                return Ok(CasOutcome { swapped: false, current }); // CELL-2
            }
            let sealed = self.seal(counter.saturating_add(1), new)?; // CELL-6
            if crate::bugs::active("cell:sealed-cas-reread") {
                raw = self.inner.read()?; // BUG: swaps from bytes that were never compared.
            }
            let outcome = self.inner.cas(&raw, &sealed)?; // CELL-1: from the bytes compared.
            if outcome.swapped {
                self.seen.observe(counter.saturating_add(1))?;
                return Ok(CasOutcome { swapped: true, current: new.to_vec() });
            }
            debug_assert_ne!(outcome.current, raw, "CELL-2: inner lost swap holds other bytes");
            raw = outcome.current;
        }
        // Spurious failure after bounded contention (see the type's docs).
        Ok(CasOutcome { swapped: false, current: self.open(&raw)?.1 })
    }
}

#[cfg(all(test, not(loom)))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests report failure by panicking"
)]
mod tests {
    use super::*;
    use crate::env::DetEntropy;
    use crate::storage::cell::MemCell;

    fn sealed() -> SealedCell<MemCell> {
        let secret = VolumeSecret::from_bytes([9; 32]);
        SealedCell::new(MemCell::new(), &secret, Arc::new(DetEntropy::new(1)))
    }

    #[test]
    fn layout_is_version_nonce_ciphertext_tag() {
        // specs/cells.md, "SealedCell layout".
        let key = [3u8; 32];
        let nonce = [5u8; 24];
        let raw = seal_with_nonce(&key, &nonce, b"abc").unwrap();
        assert_eq!(raw.len(), 3 + SEAL_OVERHEAD_BYTES);
        assert_eq!(raw[0], SEAL_VERSION);
        assert_eq!(&raw[1..25], &nonce);
        assert_ne!(&raw[25..28], b"abc", "CELL-5: plaintext is not visible");
        assert_eq!(open_sealed(&key, &raw).unwrap(), b"abc");
        assert!(matches!(open_sealed(&[4u8; 32], &raw), Err(CellError::Corrupt(_))));
    }

    #[test]
    fn cas_compares_plaintext_and_never_stores_it() {
        let c = sealed();
        assert_eq!(c.read().unwrap(), b"");
        assert!(!c.cas(b"x", b"y").unwrap().swapped);
        assert!(c.cas(b"", b"root-1").unwrap().swapped);
        assert_eq!(c.read().unwrap(), b"root-1");
        let raw = c.inner().read().unwrap();
        assert!(!raw.windows(6).any(|w| w == b"root-1"), "CELL-5");
        let o = c.cas(b"", b"z").unwrap();
        assert_eq!(o, CasOutcome { swapped: false, current: b"root-1".to_vec() });
    }

    #[test]
    fn rewrites_of_the_same_plaintext_draw_fresh_nonces() {
        let c = sealed();
        assert!(c.cas(b"", b"v").unwrap().swapped);
        let r1 = c.inner().read().unwrap();
        assert!(c.cas(b"v", b"v").unwrap().swapped);
        let r2 = c.inner().read().unwrap();
        assert_ne!(r1[1..25], r2[1..25], "CELL-5: fresh nonce per write");
    }

    /// An inner cell that, before each of its next `interferences` CASes, lets "another writer"
    /// replace its raw value with a fresh seal of `plaintext`.
    struct Interfering {
        inner: MemCell,
        key: [u8; 32],
        plaintext: Vec<u8>,
        interferences: std::sync::Mutex<usize>,
        nonce_seq: std::sync::Mutex<u8>,
    }

    impl Cell for Interfering {
        fn max_size_bytes(&self) -> usize {
            self.inner.max_size_bytes()
        }
        fn read(&self) -> Result<Vec<u8>, CellError> {
            self.inner.read()
        }
        fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
            let mut left = self.interferences.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                let mut seq = self.nonce_seq.lock().unwrap();
                *seq += 1;
                let cur = self.inner.read()?;
                // Another writer of the counted format: the counter it read plus one.
                let (counter, _) = open_counted(&self.key, &cur)?;
                let other =
                    seal_counted_with_nonce(&self.key, &[*seq; 24], counter + 1, &self.plaintext)?;
                assert!(self.inner.cas(&cur, &other)?.swapped);
            }
            self.inner.cas(expected, new)
        }
    }

    fn interfering(plaintext: &[u8], interferences: usize) -> SealedCell<Interfering> {
        let secret = VolumeSecret::from_bytes([9; 32]);
        let inner = Interfering {
            inner: MemCell::new(),
            key: secret.cell_key(),
            plaintext: plaintext.to_vec(),
            interferences: std::sync::Mutex::new(0),
            nonce_seq: std::sync::Mutex::new(0),
        };
        let c = SealedCell::new(inner, &secret, Arc::new(DetEntropy::new(3)));
        assert!(c.cas(b"", b"e").unwrap().swapped);
        *c.inner().interferences.lock().unwrap() = interferences;
        c
    }

    #[test]
    fn lost_inner_swap_to_another_plaintext_reports_it() {
        // CELL-2: the loser's current value is the winner's plaintext.
        let c = interfering(b"other", 1);
        let o = c.cas(b"e", b"mine").unwrap();
        assert_eq!(o, CasOutcome { swapped: false, current: b"other".to_vec() });
        assert_eq!(c.read().unwrap(), b"other");
    }

    #[test]
    fn lost_inner_swap_to_the_same_plaintext_is_retried() {
        // CELL-1: a re-seal of `expected` in between does not make the CAS fail.
        let c = interfering(b"e", SEALED_CAS_ATTEMPTS_MAX - 1);
        let o = c.cas(b"e", b"mine").unwrap();
        assert_eq!(o, CasOutcome { swapped: true, current: b"mine".to_vec() });
        assert_eq!(c.read().unwrap(), b"mine");
    }

    #[test]
    fn endless_same_plaintext_rewrites_give_a_bounded_spurious_failure() {
        let c = interfering(b"e", usize::MAX);
        let o = c.cas(b"e", b"mine").unwrap();
        assert_eq!(o, CasOutcome { swapped: false, current: b"e".to_vec() });
        assert_eq!(c.read().unwrap(), b"e", "never a false success");
        assert_eq!(
            *c.inner().interferences.lock().unwrap(),
            usize::MAX - SEALED_CAS_ATTEMPTS_MAX,
            "bounded: exactly SEALED_CAS_ATTEMPTS_MAX inner CASes"
        );
    }

    #[test]
    fn max_size_leaves_room_for_the_seal() {
        let secret = VolumeSecret::from_bytes([9; 32]);
        let c = SealedCell::new(MemCell::with_max_size(100), &secret, Arc::new(DetEntropy::new(2)));
        assert_eq!(c.max_size_bytes(), 100 - SEAL_COUNTED_OVERHEAD_BYTES);
        assert!(c.cas(b"", &[1u8; 51]).unwrap().swapped);
        assert!(matches!(c.cas(&[1u8; 51], &[2u8; 52]), Err(CellError::TooLarge { .. })));
        assert_eq!(c.read().unwrap(), [1u8; 51]);
    }
}
