//! Moving a mark between spaces (`specs/marks.md` MARK-9): a volume sync of the two mark
//! volumes, so the destination space's Expand mode is held for the whole copy (VOL-2, a
//! concurrent cleanup of it fails at once, VOL-6) and nothing is published before every blob
//! it reaches is present (VOL-3).
//!
//! Never: create the destination mark unless the sync publishes (a declined sync leaves the
//! destination space's names as they were).

use super::MarkError;
use super::name::MarkName;
use super::space::Space;
use crate::storage::volume::{self, Reachability, SyncOutcome};

/// The caller's decision, as [`crate::storage::volume::sync`] takes it: given (source value,
/// destination value), the value to publish, or `None` to decline.
pub type DecideMark<'a> = dyn Fn(&[u8], &[u8]) -> Option<Vec<u8>> + 'a;

/// Syncs the mark `src_name` of `src` into the mark `dst_name` of `dst` (which may be the same
/// space): copies every blob `reach` says the source value needs, then publishes
/// `decide(source value, destination value)` into the destination mark by compare-and-swap.
/// A missing destination mark is created by that publish with the source's salt and creation
/// time (MARK-9).
pub fn sync_mark(
    src: &dyn Space,
    src_name: &MarkName,
    dst: &dyn Space,
    dst_name: &MarkName,
    reach: &dyn Reachability,
    decide: &DecideMark<'_>,
) -> Result<SyncOutcome, MarkError> {
    let info = src.inspect(src_name)?;
    let from = src.open(src_name, None)?;
    let to = dst.open(dst_name, Some(&info))?;
    Ok(volume::sync(&from, &to, Some(reach), decide)?)
}
