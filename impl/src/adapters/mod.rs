//! Protocol adapters' core (`specs/adapters.md`, ADP-*): what the FUSE and NFSv3 shells of the
//! `cellar` binary call, testable without a kernel or a network.
//!
//! A share (`cellar.toml`, `[shares.NAME]`) serves one volume whose cell holds the head commit
//! of a file-tree history (FS-22). [`ShareFs`] is its working tree: an inode table
//! ([`inode`]), a handle table, every FUSE/NFS operation mapped onto `cellar::fs` edits of an
//! uncommitted root, and commits — a snapshot on top of the head the tree was based on, its
//! blobs promoted from the [`staging`] store into the volume's store, one CAS of the cell; a
//! lost CAS merges at file granularity and never overwrites.
//!
//! Files: `share` ([`ShareFs`], errno mapping), [`inode`] (numbers ↔ paths), [`staging`] (the
//! working tree's blobs until a commit).
//!
//! Never: touch the kernel or a socket here (the shells in `sim/src/bin/cellar/` do); read the
//! clock except through [`crate::env::Clock`].

pub mod inode;
mod share;
pub mod staging;

pub use share::{
    AdapterError, Attr, COMMIT_CAS_ATTEMPTS_MAX, Caller, CommitReport, Errno,
    STAGING_COMPACT_BYTES, SetAttr, SetTime, ShareFs, ShareOptions, errno_of,
};
