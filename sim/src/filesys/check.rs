//! The `files` profile's checks: the whole volume read by a fresh process, and the helpers
//! that turn the layers' results into what the model judges.

use super::model::Got;
use super::procs::Run;
use crate::oracle::Violation;
use crate::simfs::{Pid, SimFs};
use cellar::Hash;
use cellar::storage::fsio::path_of;
use cellar::storage::store::{ALL_HASHES, StoreError};
use cellar::storage::volume::DirVolume;
use std::path::Path;

impl Run {
    /// A fresh process reads everything: every listed blob whole, every durable blob present,
    /// the cell one of its allowed values.
    pub(super) fn check_all(&mut self) -> Result<(), Violation> {
        let pid = self.spawn().pid;
        let full_ppm = self.knobs.files_full_ppm;
        self.fs.set_full_ppm(0); // the checker only reads (opening may create lock files)
        let checked = self.check_as(pid);
        self.fs.set_full_ppm(full_ppm);
        self.fs.kill(pid);
        checked
    }

    fn check_as(&mut self, pid: Pid) -> Result<(), Violation> {
        let vol = self
            .open(pid)
            .map_err(|e| Violation::new("a volume opens after any crash", e.to_string()))?;
        let listed = vol
            .volume
            .store
            .list(ALL_HASHES, usize::MAX)
            .map_err(|e| Violation::new("STORE-4 list works after any crash", e.to_string()))?;
        for h in &listed {
            if !self.model.blobs.contains_key(h) {
                return Err(Violation::new(
                    "STORE-4 list names only posted blobs",
                    format!("{h} was never posted"),
                ));
            }
        }
        let hashes: Vec<Hash> = self.model.blobs.keys().copied().collect();
        for h in hashes {
            let got = get(&vol, &h);
            let present = matches!(got, Got::Bytes(_) | Got::Corrupt(_));
            if present != listed.contains(&h) {
                return Err(Violation::new(
                    "STORE-4 list names exactly the blobs present",
                    format!("{h}: listed {}, read {got:?}", listed.contains(&h)),
                ));
            }
            self.model.check_get(&h, &got)?;
        }
        let value =
            vol.volume.cell.read().map_err(|e| {
                Violation::new("CELL-4 the cell reads after any crash", e.to_string())
            })?;
        self.model.check_cell(&value, "the checker's read")?;
        self.event(format_args!("checked {} blobs and the cell", listed.len()));
        Ok(())
    }
}

/// A `get` as the model sees it.
pub(super) fn get(vol: &DirVolume, hash: &Hash) -> Got {
    match vol.volume.store.get(hash) {
        Ok(b) => Got::Bytes(b),
        Err(StoreError::NotFound(_)) => Got::Absent,
        Err(e @ StoreError::Corrupt { .. }) => Got::Corrupt(e.to_string()),
        Err(e) => Got::Failed(e.to_string()),
    }
}

/// A short name for a `get`'s outcome, for the trace.
pub(super) fn got_name(got: &Got) -> &'static str {
    match got {
        Got::Bytes(_) => "bytes",
        Got::Absent => "absent",
        Got::Corrupt(_) => "corrupt",
        Got::Failed(_) => "failed",
    }
}

/// Temp files in a directory.
pub(super) fn temp_files(fs: &SimFs, dir: &Path) -> usize {
    fs.names(dir).iter().filter(|n| n.to_string_lossy().starts_with(".tmp")).count()
}

/// A store error from a full file system names the file or directory (issue 16).
pub(super) fn check_full_error(e: &StoreError) -> Result<(), Violation> {
    match e {
        StoreError::Io(io) if path_of(io).is_none() => {
            Err(Violation::new("STORE-5 a full file system's error names its path", e.to_string()))
        }
        _ => Ok(()),
    }
}
