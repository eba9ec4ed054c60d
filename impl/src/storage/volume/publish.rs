//! Publish (expand): point a volume's cell at a value whose blobs are already in its store
//! (`specs/volume.md`, action `Publish`; VOL-2, VOL-3).
//!
//! Why it lives here rather than in a command: "never publish a value whose reachable blobs
//! are missing" is the volume's rule, and both writers of a cell value check it the same way
//! ([`check_vol3`]): a [`super::SyncJob`] before its CAS, and [`Volume::publish`] for a value
//! posted straight into the store (`cellar vol put` then `cellar vol publish`).
//!
//! Never: change the cell without holding Expand (VOL-2); change it to a value that reaches a
//! blob the store lacks (VOL-3).

use super::{Mode, Reachability, Volume, VolumeError};
use crate::storage::cell::CasOutcome;
use crate::storage::store::Store;

impl Volume {
    /// Publishes `new` by compare-and-swap from `expected`, holding Expand for the duration
    /// (VOL-2), once every blob `reach` says `new` needs is present in the store (VOL-3).
    /// A lost CAS is an outcome, not an error (`swapped == false`, with the cell's value).
    ///
    /// # Errors
    /// [`VolumeError::ModeConflict`] if a cleanup holds the volume; [`VolumeError::MissingBlob`]
    /// (VOL-3) if a reachable blob is absent, in which case nothing is published; `reach`'s
    /// error if `new` cannot be walked; cell and store errors.
    pub fn publish(
        &self,
        expected: &[u8],
        new: &[u8],
        reach: &dyn Reachability,
    ) -> Result<CasOutcome, VolumeError> {
        let _hold = self.modes.begin(Mode::Expand)?;
        check_vol3(self.store.as_ref(), reach, new)?;
        Ok(self.cell.cas(expected, new)?)
    }
}

/// VOL-3: every blob `reach` says `value` needs is in `store`. Called under Expand, right
/// before the CAS that publishes `value`.
///
/// # Errors
/// [`VolumeError::MissingBlob`] for the first absent blob; `reach`'s or the store's error.
pub(crate) fn check_vol3(
    store: &dyn Store,
    reach: &dyn Reachability,
    value: &[u8],
) -> Result<(), VolumeError> {
    for h in reach.reachable(value, store)? {
        if !store.exists(&h)? {
            return Err(VolumeError::MissingBlob(h));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hash;
    use crate::storage::cell::{Cell, MemCell};
    use crate::storage::store::MemStore;
    use crate::storage::volume::HashList;
    use std::sync::Arc;

    fn volume() -> Volume {
        Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()))
    }

    #[test]
    fn publish_refuses_a_value_with_a_missing_blob_vol3() {
        let vol = volume();
        let present = vol.store.post(b"posted").unwrap();
        let absent = Hash::of(b"never posted");
        let value = HashList::encode(&[present, absent]);
        let err = vol.publish(b"", &value, &HashList).unwrap_err();
        assert!(matches!(err, VolumeError::MissingBlob(h) if h == absent), "{err:?}");
        assert_eq!(vol.cell.read().unwrap(), b"", "VOL-3: nothing published");
    }

    #[test]
    fn publish_swaps_when_every_blob_is_present_and_reports_a_lost_cas() {
        let vol = volume();
        let value = HashList::encode(&[vol.store.post(b"a").unwrap()]);
        let out = vol.publish(b"", &value, &HashList).unwrap();
        assert!(out.swapped);
        assert_eq!(vol.cell.read().unwrap(), value);
        let lost = vol.publish(b"", b"", &HashList).unwrap();
        assert!(!lost.swapped, "a stale expected value loses the CAS");
        assert_eq!(lost.current, value);
    }

    #[test]
    fn publish_waits_for_no_cleanup_vol2() {
        let vol = volume();
        let _cleanup = vol.modes.begin(Mode::Contract).unwrap();
        let err = vol.publish(b"", b"", &HashList).unwrap_err();
        assert!(matches!(err, VolumeError::ModeConflict { .. }), "{err:?}");
    }
}
