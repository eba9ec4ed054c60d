//! The event trace of one run: every scheduling decision, operation, result, fault and check,
//! as one line of text with its simulated time.
//!
//! Every event is hashed (FNV-1a, 64 bit) so two runs of one seed can be compared cheaply
//! (determinism test); the last [`TRACE_TAIL_EVENTS_MAX`] events are kept for the failure
//! report; the whole trace is kept only when asked (`--trace`, or the replay of a failure).
//!
//! Never reads the clock: times are simulated microseconds.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// Events kept for a failure report.
pub const TRACE_TAIL_EVENTS_MAX: usize = 40;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The trace of one run.
#[derive(Debug)]
#[allow(clippy::len_without_is_empty, reason = "a trace is never asked whether it is empty")]
pub struct Trace {
    hash: u64,
    events: u64,
    tail: VecDeque<String>,
    full: Option<Vec<String>>,
    line: String,
}

impl Trace {
    /// A trace; `keep_full` keeps every event (for `--trace` and failure files).
    pub fn new(keep_full: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
            events: 0,
            tail: VecDeque::with_capacity(TRACE_TAIL_EVENTS_MAX),
            full: keep_full.then(Vec::new),
            line: String::with_capacity(128),
        }
    }

    /// Records one event at simulated time `now_us`.
    pub fn event(&mut self, now_us: u64, what: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{:>6}.{:06} {}", now_us / 1_000_000, now_us % 1_000_000, what);
        for b in self.line.as_bytes() {
            self.hash = (self.hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
        }
        self.hash = (self.hash ^ 0x0a).wrapping_mul(FNV_PRIME);
        self.events += 1;
        if self.tail.len() == TRACE_TAIL_EVENTS_MAX {
            self.tail.pop_front();
        }
        self.tail.push_back(self.line.clone());
        if let Some(full) = &mut self.full {
            full.push(self.line.clone());
        }
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Events recorded.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// The last events, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// Every event, if the trace was kept.
    pub fn full(&self) -> Option<&[String]> {
        self.full.as_deref()
    }
}
