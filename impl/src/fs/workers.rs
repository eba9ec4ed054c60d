//! Workers that encode and post data blobs for an import (`specs/fs.md` FS-16): the only file of
//! [`crate::fs`] that spawns threads. A shell ([`super::host`], the command line) owns them and
//! hands the importer a [`DataPoster`]; the tree cannot tell them from posting inline
//! ([`super::post`]), so the deterministic core and the simulator never meet a thread.
//!
//! Compression, encryption and hashing of a blob are a pure function of its bytes, which is
//! what makes them safe to move off the importer's thread: the importer keeps reading and
//! chunking while other cores compress.
//!
//! Never: return refs in any order but submission order; hold more than
//! [`IN_FLIGHT_PER_WORKER`] queued blobs per worker.

use super::FsError;
use super::post::{DataEncoder, DataPoster, InlinePoster};
use crate::storage::refs::{Ref, RefError};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};

/// Blobs queued per worker beyond the one it encodes: memory stays under about
/// `workers × (IN_FLIGHT_PER_WORKER + 1) × 2 MiB` (FS-16).
pub const IN_FLIGHT_PER_WORKER: usize = 2;

/// Runs `f` with a poster backed by `workers` threads posting through `encoder` (inline when
/// `workers ≤ 1`), and stops the threads before returning.
pub fn with_workers<T>(
    encoder: DataEncoder<'_>,
    workers: usize,
    f: impl FnOnce(&mut dyn DataPoster) -> T,
) -> T {
    if workers <= 1 {
        return f(&mut InlinePoster::new(encoder));
    }
    let (jobs, queue) = sync_channel::<(usize, Vec<u8>)>(workers * IN_FLIGHT_PER_WORKER);
    let queue = Mutex::new(queue);
    let (done_tx, done) = channel::<(usize, Result<Ref, RefError>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, done_tx) = (&queue, done_tx.clone());
            scope.spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((slot, bytes)) = job else { return };
                    if done_tx.send((slot, encoder.post(&bytes))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut pool = Pool { jobs: Some(jobs), done, submitted: 0 };
        let out = f(&mut pool);
        // Closing the queue ends every worker; the scope joins them.
        pool.jobs = None;
        out
    })
}

/// The poster side of the workers: a bounded queue out, results back.
struct Pool {
    jobs: Option<SyncSender<(usize, Vec<u8>)>>,
    done: Receiver<(usize, Result<Ref, RefError>)>,
    /// Blobs submitted since the last collect.
    submitted: usize,
}

fn stopped() -> FsError {
    FsError::Source(std::io::Error::other("the blob encoder workers stopped"))
}

impl DataPoster for Pool {
    fn submit(&mut self, bytes: Vec<u8>) -> Result<(), FsError> {
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send((self.submitted, bytes)).map_err(|_| stopped())?;
        self.submitted += 1;
        Ok(())
    }

    fn collect(&mut self) -> Result<Vec<Ref>, FsError> {
        let n = std::mem::take(&mut self.submitted);
        let mut refs: Vec<Option<Ref>> = vec![None; n];
        // Planted bug fs:refs-in-arrival-order: the refs come back in the order the workers
        // finished, so an extent can name another chunk's blob.
        let planted = crate::bugs::active("fs:refs-in-arrival-order");
        let mut arrived = Vec::new();
        let mut first_error = None;
        // Every result is drained, failed or not, so none is left for the next batch.
        for _ in 0..n {
            let (slot, result) = self.done.recv().map_err(|_| stopped())?;
            match result {
                Ok(r) => {
                    if planted {
                        arrived.push(r);
                    }
                    if let Some(place) = refs.get_mut(slot) {
                        *place = Some(r);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        if planted {
            return Ok(arrived);
        }
        refs.into_iter().map(|r| r.ok_or_else(stopped)).collect()
    }
}
