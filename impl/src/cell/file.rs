//! `FileCell`: a cell in one file, durable across power loss and atomic across processes.
//! TODO(helper: cells) — replace this stub.

use super::{CasOutcome, Cell, CellError};
use std::path::PathBuf;

/// A cell stored in a file.
#[derive(Debug)]
pub struct FileCell {
    path: PathBuf,
    max_size_bytes: usize,
}

impl FileCell {
    /// Opens (creating if absent) the cell at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, CellError> {
        Ok(Self { path: path.into(), max_size_bytes: super::CELL_SIZE_MAX_BYTES_DEFAULT })
    }
}

impl Cell for FileCell {
    fn max_size_bytes(&self) -> usize {
        self.max_size_bytes
    }
    fn read(&self) -> Result<Vec<u8>, CellError> {
        let _ = &self.path;
        unimplemented!()
    }
    fn cas(&self, _expected: &[u8], _new: &[u8]) -> Result<CasOutcome, CellError> {
        unimplemented!()
    }
}
