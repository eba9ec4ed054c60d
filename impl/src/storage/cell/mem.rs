//! `MemCell`: a cell in memory, shared between threads.

use super::{CELL_SIZE_MAX_BYTES_DEFAULT, CasOutcome, Cell, CellError, check_size};
use crate::sync::{Mutex, lock};

/// An in-memory cell. Linearizable because every operation holds one mutex (CELL-1).
#[derive(Debug)]
pub struct MemCell {
    value: Mutex<Vec<u8>>,
    max_size_bytes: usize,
}

impl Default for MemCell {
    fn default() -> Self {
        Self::new()
    }
}

impl MemCell {
    /// An empty cell with the default maximum size.
    pub fn new() -> Self {
        Self::with_max_size(CELL_SIZE_MAX_BYTES_DEFAULT)
    }

    /// An empty cell that accepts values up to `max_size_bytes`.
    pub fn with_max_size(max_size_bytes: usize) -> Self {
        Self { value: Mutex::new(Vec::new()), max_size_bytes }
    }
}

impl Cell for MemCell {
    fn max_size_bytes(&self) -> usize {
        self.max_size_bytes
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        Ok(lock(&self.value).clone())
    }

    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), self.max_size_bytes)?; // CELL-3
        let mut value = lock(&self.value); // CELL-1: one mutex around compare and swap
        if value.as_slice() != expected {
            return Ok(CasOutcome { swapped: false, current: value.clone() }); // CELL-2
        }
        value.clear();
        value.extend_from_slice(new);
        Ok(CasOutcome { swapped: true, current: new.to_vec() })
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

    #[test]
    fn cas_swaps_only_on_match() {
        let c = MemCell::new();
        assert_eq!(c.read().unwrap(), b"");
        let o = c.cas(b"x", b"y").unwrap();
        assert!(!o.swapped);
        assert_eq!(o.current, b"");
        let o = c.cas(b"", b"y").unwrap();
        assert!(o.swapped);
        assert_eq!(c.read().unwrap(), b"y");
    }

    #[test]
    fn oversized_value_is_refused_and_nothing_changes() {
        let c = MemCell::with_max_size(4);
        assert!(matches!(
            c.cas(b"", b"12345"),
            Err(CellError::TooLarge { size_bytes: 5, max_bytes: 4 })
        ));
        assert_eq!(c.read().unwrap(), b"");
    }
}
