//! The `files` profile: the file-based layers `cellar vol` users run — `DirStore`, `FileCell`
//! under `SealedCell` with its `Seen` file, `FileModeLock`, all inside one `DirVolume` — shared
//! by two to four processes on a simulated file system with crash semantics ([`crate::simfs`]).
//!
//! Each event, one process acts through its own `DirVolume` handle: posts a blob (under
//! Expand), posts one deferred or syncs its deferred posts, reads a blob, deletes one (under
//! Contract), reads the cell and swaps it (under Expand), or begins or ends a mode. Between
//! events a process may be killed (its `flock`s go, its temp files stay) or the power cut; half
//! the power cuts are armed to fall in the middle of the next operation, at any of its steps
//! (after the temp file is written but before the rename, after the rename but before the
//! directory's fsync, …). With the `full` fault, steps that need space fail with `StorageFull`.
//!
//! Judged by [`model::Model`]: after every operation, and after every power cut by a fresh
//! process that lists and reads the whole store and reads the cell. An operation may fail only
//! for an injected fault (a full file system, a power cut); a full file system's error names its
//! path and leaves no temp file behind (issue 16).

mod check;
mod model;
mod procs;

use crate::knobs::Knobs;
use crate::oracle::Violation;
use crate::rng::SimRng;
use crate::simfs::{FsCounts, SimFs};
use crate::trace::Trace;
use procs::Run;

/// The volume's directory on the simulated file system.
pub const VOLUME_DIR: &str = "/vol";

/// What a `files` run did.
#[derive(Debug)]
pub struct Outcome {
    /// Passed, or the first broken rule.
    pub result: Result<(), Violation>,
    /// Operations run.
    pub ops: u64,
    /// Simulated time, µs.
    pub now_us: u64,
    /// The event trace.
    pub trace: Trace,
    /// What the file system counted.
    pub fs: FsCounts,
    /// Processes killed.
    pub kills: u64,
    /// Bytes of blob files flipped.
    pub flips: u64,
}

/// Runs `ticks` events of the `files` profile.
pub fn run(mut rng: SimRng, knobs: Knobs, trace: Trace, ticks: u64) -> Outcome {
    let fs = SimFs::new(rng.fork(), 0);
    let mut run = Run::new(rng, knobs, fs.clone(), trace);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run(ticks)))
        .unwrap_or_else(|p| {
            let text = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()));
            Err(Violation::new("no panics", text.unwrap_or_else(|| "panic".into())))
        });
    Outcome {
        result,
        ops: run.ops,
        now_us: run.now_us,
        fs: fs.counts(),
        kills: run.kills,
        flips: run.flips,
        trace: run.trace,
    }
}
