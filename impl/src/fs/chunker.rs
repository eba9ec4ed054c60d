//! The keyed content-defined chunker (`specs/fs.md` FS-6, FS-7): a FastCDC-style gear hash
//! whose 256-entry table is derived from the tree's salt, so chunk boundaries are a function of
//! (salt, bytes) only and reveal nothing to whoever lacks the salt.
//!
//! The rule, restated so this file can be read alone: `h` starts at 0 at a chunk's first byte.
//! Bytes before `min` are skipped. For each byte `b` at index `i ≥ min`,
//! `h = (h << 1) + table[b]` (wrapping u64); the chunk ends after byte `i` if `h & mask == 0`,
//! where `mask` is the top `bits + 2` bits while `i < avg` and the top `bits − 2` bits from
//! `avg` on (`avg = 2^bits`, "normalized chunking" level 2). A chunk never exceeds `max`; a
//! final chunk may be shorter than `min`.
//!
//! Never: read the clock or any state but the salt and the bytes; hold more than `max` bytes of
//! a stream at a time.

use std::io::Read;

/// Smallest chunk, in bytes, except a stream's last (FS-6).
pub const CHUNK_SIZE_MIN_BYTES: usize = 4 * 1024;
/// log2 of the target chunk size (FS-6).
pub const CHUNK_AVG_BITS: u32 = 20;
/// Largest chunk, in bytes (FS-6).
pub const CHUNK_SIZE_MAX_BYTES: usize = 2 * 1024 * 1024;
/// BLAKE3 `derive_key` context for the gear table (FS-7). Part of the format.
pub const GEAR_PURPOSE: &str = "cellar 2026 fs gear table v1";

const _: () = assert!(CHUNK_SIZE_MIN_BYTES < (1 << CHUNK_AVG_BITS));
const _: () = assert!((1 << CHUNK_AVG_BITS) < CHUNK_SIZE_MAX_BYTES);

/// Chunker sizes. [`ChunkerParams::SPEC`] is the format; others exist so tests can cut many
/// chunks from few bytes (trees cut with other parameters are different trees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk (but a stream's last) in bytes, ≥ 1.
    pub min_bytes: usize,
    /// log2 of the normal size; 3..=40.
    pub avg_bits: u32,
    /// Largest chunk in bytes; > `min_bytes`.
    pub max_bytes: usize,
}

impl ChunkerParams {
    /// The specified parameters (FS-6): 4 KiB / 1 MiB / 2 MiB.
    pub const SPEC: ChunkerParams = ChunkerParams {
        min_bytes: CHUNK_SIZE_MIN_BYTES,
        avg_bits: CHUNK_AVG_BITS,
        max_bytes: CHUNK_SIZE_MAX_BYTES,
    };

    /// Clamps the parameters into their valid ranges.
    fn sane(self) -> Self {
        let min_bytes = self.min_bytes.max(1);
        let avg_bits = self.avg_bits.clamp(3, 40);
        let max_bytes = self.max_bytes.clamp(min_bytes + 1, CHUNK_SIZE_MAX_BYTES);
        Self { min_bytes, avg_bits, max_bytes }
    }
}

/// The gear table for `salt` (FS-7): 2048 bytes of BLAKE3 XOF output in `derive_key` mode
/// (context [`GEAR_PURPOSE`], key material the salt), entry `i` the little-endian u64 at `8i`.
pub fn gear_table(salt: &[u8; 32]) -> [u64; 256] {
    let mut h = blake3::Hasher::new_derive_key(GEAR_PURPOSE);
    h.update(salt);
    let mut bytes = [0u8; 256 * 8];
    h.finalize_xof().fill(&mut bytes);
    let mut table = [0u64; 256];
    for (t, c) in table.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(c);
        *t = u64::from_le_bytes(le);
    }
    table
}

/// A keyed chunker (FS-6, FS-7).
#[derive(Clone)]
pub struct Chunker {
    table: Box<[u64; 256]>,
    params: ChunkerParams,
    mask_small: u64,
    mask_large: u64,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").field("params", &self.params).finish_non_exhaustive()
    }
}

impl Chunker {
    /// A chunker keyed by `salt` with `params` (clamped into range).
    pub fn new(salt: &[u8; 32], params: ChunkerParams) -> Self {
        let params = params.sane();
        let top = |bits: u32| !(u64::MAX >> bits);
        Self {
            table: Box::new(gear_table(salt)),
            params,
            mask_small: top(params.avg_bits + 2),
            mask_large: top(params.avg_bits - 2),
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The length of the first chunk of `data` (FS-6): `data.len()` if `data` is empty or no
    /// cut is found before `max`.
    pub fn cut(&self, data: &[u8]) -> usize {
        let p = self.params;
        if data.len() <= p.min_bytes {
            return data.len();
        }
        let limit = data.len().min(p.max_bytes);
        let normal = limit.min(1usize << p.avg_bits);
        // Two loops, one per mask (FS-6: MASK_S before `normal`, MASK_L from it), so the hot
        // loop is one shift-add, one load and one test per byte.
        let mut h = 0u64;
        let small = data.get(p.min_bytes..normal.max(p.min_bytes)).unwrap_or_default();
        for (i, b) in small.iter().enumerate() {
            h = (h << 1).wrapping_add(self.table[usize::from(*b)]);
            if h & self.mask_small == 0 {
                return p.min_bytes + i + 1;
            }
        }
        let from = normal.max(p.min_bytes);
        let large = data.get(from..limit).unwrap_or_default();
        for (i, b) in large.iter().enumerate() {
            h = (h << 1).wrapping_add(self.table[usize::from(*b)]);
            if h & self.mask_large == 0 {
                return from + i + 1;
            }
        }
        limit
    }

    /// The chunk lengths of all of `data`, in order.
    pub fn chunk_lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.cut(rest);
            out.push(n);
            rest = &rest[n..];
        }
        out
    }

    /// Streams the chunks of `reader`, holding at most `max` bytes (plus one read) at a time.
    pub fn stream<'r>(&'r self, reader: &'r mut dyn Read) -> ChunkStream<'r> {
        ChunkStream { chunker: self, reader, buf: Vec::new(), eof: false }
    }
}

/// The chunks of a reader, one at a time (bounded memory).
pub struct ChunkStream<'r> {
    chunker: &'r Chunker,
    reader: &'r mut dyn Read,
    buf: Vec<u8>,
    eof: bool,
}

impl std::fmt::Debug for ChunkStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream").field("buffered", &self.buf.len()).finish()
    }
}

impl ChunkStream<'_> {
    /// The next chunk, `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let max = self.chunker.params.max_bytes;
        while !self.eof && self.buf.len() < max {
            let have = self.buf.len();
            self.buf.resize(max, 0);
            match self.reader.read(&mut self.buf[have..]) {
                Ok(0) => {
                    self.buf.truncate(have);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(have + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(have),
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let n = self.chunker.cut(&self.buf);
        let rest = self.buf.split_off(n);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }
}
