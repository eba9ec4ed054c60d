//! Where data blobs get encoded and posted (`specs/fs.md` FS-8, FS-16, FS-27): inline by the
//! caller, or by workers a shell owns ([`super::workers`]).
//!
//! A data blob's ref is a function of its bytes, the tree's salt and the compression setting
//! (convergent encryption, REF-2; FS-27), so *who* posts it and *in which order* never shows in
//! the tree: an import through any number of workers yields the root an inline import yields.
//! The importer hands blobs over in order and redeems them, in the same order, before it writes
//! their extents.
//!
//! Never: return refs in any order but submission order; hold more than a bounded number of
//! blobs in flight (FS-16).

use super::blob::{Compression, encode_with};
use super::{Fs, FsError};
use crate::storage::refs::{self, Ref, RefError};
use crate::storage::store::Store;

/// What posting a data blob needs, and nothing else: shareable with worker threads.
#[derive(Clone, Copy)]
pub struct DataEncoder<'s> {
    store: &'s dyn Store,
    salt: [u8; 32],
    compression: Compression,
}

impl DataEncoder<'_> {
    /// Encodes `bytes` (FS-27), encrypts them under the salt and posts them (REF-2).
    pub fn post(&self, bytes: &[u8]) -> Result<Ref, RefError> {
        refs::post(self.store, &self.salt, &encode_with(bytes, self.compression))
    }
}

impl std::fmt::Debug for DataEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataEncoder").field("compression", &self.compression).finish()
    }
}

impl<'s> Fs<'s> {
    /// The encoder of this tree's data blobs, for [`DataPoster`]s that post on other threads.
    pub fn data_encoder(&self) -> DataEncoder<'s> {
        DataEncoder { store: self.kv.store(), salt: *self.kv.salt(), compression: self.compression }
    }
}

/// Posts data blobs on an importer's behalf, possibly on other threads.
pub trait DataPoster {
    /// Hands `bytes` over to be posted; may block while too many blobs are in flight.
    fn submit(&mut self, bytes: Vec<u8>) -> Result<(), FsError>;

    /// Waits for every blob submitted since the last call and returns their refs **in
    /// submission order**; the first failure, if any.
    fn collect(&mut self) -> Result<Vec<Ref>, FsError>;
}

/// The poster that posts on the caller's thread, at once.
#[derive(Debug)]
pub struct InlinePoster<'s> {
    encoder: DataEncoder<'s>,
    refs: Vec<Ref>,
}

impl<'s> InlinePoster<'s> {
    /// Posts with `encoder`.
    pub fn new(encoder: DataEncoder<'s>) -> Self {
        Self { encoder, refs: Vec::new() }
    }
}

impl DataPoster for InlinePoster<'_> {
    fn submit(&mut self, bytes: Vec<u8>) -> Result<(), FsError> {
        self.refs.push(self.encoder.post(&bytes)?);
        Ok(())
    }

    fn collect(&mut self) -> Result<Vec<Ref>, FsError> {
        Ok(std::mem::take(&mut self.refs))
    }
}
