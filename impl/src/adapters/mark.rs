//! A share's mark (`specs/adapters.md` ADP-1): the volume a [`super::ShareFs`] reads and
//! commits is the mark's volume of its volume's space (`specs/marks.md` MARK-6), never the
//! space volume's own cell.
//!
//! Never: draw a salt or read the clock (the new mark's salt and creation time are arguments);
//! create a mark for a read-only share.

use super::AdapterError;
use crate::marks::{MarkError, MarkInfo, MarkName, Space, VolumeSpace};
use crate::storage::volume::Volume;

/// The mark a share serves, opened (ADP-1).
#[derive(Clone, Debug)]
pub struct ShareMark {
    /// The mark's volume: its cell is the mark's value (a file-tree history, FS-23), its store
    /// and mode lock the space's.
    pub volume: Volume,
    /// The mark's record when it was opened: its salt is what the share writes under (MARK-5).
    pub info: MarkInfo,
}

/// Opens the mark `name` of `space` for a share (ADP-1). A space volume still holding a bare
/// head (written before marks) is upgraded first (MARK-3). A missing mark is created with
/// `new`'s salt and creation time; if another process creates it meanwhile, that one's record is
/// used. A read-only share never creates it: a missing mark reads as empty (no commit yet) until
/// someone else creates it. Each step is one MARK-4 edit.
pub fn open_mark(
    space: &VolumeSpace,
    name: &MarkName,
    new: &MarkInfo,
    read_only: bool,
) -> Result<ShareMark, AdapterError> {
    // Even for a read-only share, as every `cellar` command does: the upgrade changes the
    // layout, not the content, and a bare head cannot be read as a space.
    space.upgrade_bare_head(new.created_ns)?;
    let info = match space.inspect(name) {
        Ok(info) => info,
        Err(MarkError::NotFound { .. }) if read_only => {
            // Opened for creation, but a read-only share never swaps its cell (ADP-8).
            let volume = space.open(name, Some(new))?;
            return Ok(ShareMark { volume, info: new.clone() });
        }
        Err(MarkError::NotFound { .. }) => match space.create(name, new.salt, new.created_ns) {
            Ok(info) => info,
            Err(MarkError::AlreadyExists { .. }) => space.inspect(name)?,
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let volume = space.open(name, None)?;
    Ok(ShareMark { volume, info })
}
