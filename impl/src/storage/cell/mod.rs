//! Compare-and-swap cells (`specs/cells.md`, CELL-*).
//!
//! A cell holds one small byte string. Anything that can be read and compare-and-swapped can be
//! a cell: memory ([`MemCell`]), a file ([`FileCell`]), a sector-engine key, or another cell
//! sealed with a key ([`SealedCell`]). A lost swap is an ordinary outcome, not an error
//! (CELL-2); an oversized value is refused before anything changes (CELL-3).

mod file;
mod mem;
mod rollback;
mod sealed;

pub use file::{
    FILE_CELL_FRAME_OVERHEAD_MAX_BYTES, FILE_CELL_MAGIC, FILE_CELL_VERSION, FileCell,
    decode_file_cell, encode_file_cell,
};
pub use mem::MemCell;
pub use rollback::{
    SEAL_COUNTED_OVERHEAD_BYTES, SEAL_COUNTER_BYTES, SEAL_VERSION_COUNTED, Seen, open_counted,
    seal_counted_with_nonce,
};
pub use sealed::{
    SEAL_AAD_PURPOSE, SEAL_NONCE_SIZE_BYTES, SEAL_OVERHEAD_BYTES, SEAL_PLAINTEXT_SIZE_MAX_BYTES,
    SEAL_TAG_SIZE_BYTES, SEAL_VERSION, SEALED_CAS_ATTEMPTS_MAX, SealedCell, open_sealed,
    seal_with_nonce,
};

/// Default maximum size of a cell's value: cells hold roots, not data.
pub const CELL_SIZE_MAX_BYTES_DEFAULT: usize = 4096;

/// Errors of cell operations. Corruption is never folded into I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CellError {
    /// The value (or the expected value) is larger than the cell allows (CELL-3).
    #[error("cell value of {size_bytes} bytes exceeds the cell's maximum of {max_bytes} bytes")]
    TooLarge {
        /// Size that was offered.
        size_bytes: usize,
        /// The cell's maximum.
        max_bytes: usize,
    },
    /// The stored contents failed an integrity check (bad AEAD tag, truncated, bad framing).
    #[error("cell is corrupt: {0}")]
    Corrupt(String),
    /// The cell holds an older sealed value than this reader has already seen: rolled back or
    /// emptied by whoever can write the inner cell (CELL-6).
    #[error("cell rolled back: counter {found} is below the {seen} already seen")]
    Rollback {
        /// The highest counter this reader had seen.
        seen: u64,
        /// The counter the cell holds now.
        found: u64,
    },
    /// The operating system refused an operation on the cell's backing storage.
    #[error("cell I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// What a compare-and-swap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    /// True if the cell held `expected` and now holds `new`.
    pub swapped: bool,
    /// The cell's value after the operation: `new` if swapped, otherwise the value that did not
    /// match `expected`.
    pub current: Vec<u8>,
}

/// A compare-and-swap cell (CELL-1..3).
///
/// Implementations are linearizable: every `read` and `cas` appears to take effect at one
/// instant between its call and its return (CELL-1).
pub trait Cell: Send + Sync {
    /// The largest value this cell accepts, in bytes.
    fn max_size_bytes(&self) -> usize;

    /// The current value. A cell that was never written reads as the empty value.
    fn read(&self) -> Result<Vec<u8>, CellError>;

    /// If the cell holds `expected`, replace it with `new`. Returns whether it swapped and the
    /// value now held (CELL-2). Fails with [`CellError::TooLarge`] before touching anything if
    /// `new` exceeds [`Cell::max_size_bytes`] (CELL-3).
    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError>;
}

impl<C: Cell + ?Sized> Cell for std::sync::Arc<C> {
    fn max_size_bytes(&self) -> usize {
        (**self).max_size_bytes()
    }
    fn read(&self) -> Result<Vec<u8>, CellError> {
        (**self).read()
    }
    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        (**self).cas(expected, new)
    }
}

impl<C: Cell + ?Sized> Cell for Box<C> {
    fn max_size_bytes(&self) -> usize {
        (**self).max_size_bytes()
    }
    fn read(&self) -> Result<Vec<u8>, CellError> {
        (**self).read()
    }
    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        (**self).cas(expected, new)
    }
}

/// Refuses a value over `max_bytes` (CELL-3). Every implementation calls this first.
pub fn check_size(size_bytes: usize, max_bytes: usize) -> Result<(), CellError> {
    if size_bytes > max_bytes {
        return Err(CellError::TooLarge { size_bytes, max_bytes });
    }
    Ok(())
}
