//! Protocol adapters' core (`specs/adapters.md`, ADP-*): what the FUSE and NFSv3 shells of the
//! `cellar` binary call, testable without a kernel or a network.
//!
//! A share (`cellar.toml`, `[shares.NAME]`) serves one mark of its volume's space
//! (`specs/marks.md`): [`open_mark`] gives the mark's volume, whose cell is the mark's value — a
//! file-tree history (FS-23: the head commit and a retention horizon). [`ShareFs`] is its
//! working tree: an inode table ([`inode`]), a handle table, every FUSE/NFS operation mapped
//! onto `cellar::fs` edits of an uncommitted root, and commits — a snapshot on top of the head the tree was based on, its
//! blobs promoted from the [`staging`] store into the space's store, one CAS of the mark's cell
//! (one space edit, MARK-4); a lost CAS merges at file granularity and never overwrites.
//!
//! Files: `share` ([`ShareFs`]), `cache` (may the kernel keep a file's pages across opens,
//! ADP-14), `commit` ([`ShareFs::commit`]), `refresh` (following other
//! processes' commits, ADP-13), `types` (errno mapping, errors, options, attributes), `mark`
//! ([`open_mark`]), [`inode`] (numbers ↔ paths), `links` (hard links, FS-12), `orphan` (unlinked files still open, ADP-11),
//! `wbuf` (consecutive writes applied as one edit, ADP-12), [`staging`] (the working tree's
//! blobs until a commit).
//!
//! Never: touch the kernel or a socket here (the shells in `sim/src/bin/cellar/` do); read the
//! clock except through [`crate::env::Clock`].

mod cache;
mod commit;
pub mod inode;
mod links;
mod mark;
mod orphan;
mod refresh;
mod share;
pub mod staging;
mod types;
mod wbuf;

pub use mark::{ShareMark, open_mark};
pub use share::ShareFs;
pub use types::{
    AdapterError, Attr, COMMIT_CAS_ATTEMPTS_MAX, Caller, CommitReport, Errno,
    STAGING_COMPACT_BYTES, SetAttr, SetTime, ShareOptions, errno_of,
};
pub use wbuf::WRITE_BUFFER_BYTES;
