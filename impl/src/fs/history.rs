//! What a mark of file trees holds and how its history is pruned (`specs/fs.md` FS-23..FS-25):
//! the history value (a head commit and a retention *horizon*), commit times, and the
//! retention policy that raises the horizon.
//!
//! Pruning never rewrites a commit: every snapshot stays (they are small and hold the history
//! graph, so ancestry and merge bases never change); what goes is the *trees* of commits whose
//! lamport is below the horizon, and the data only they reach. So a pruned mark still pushes,
//! pulls and fast-forwards against copies that were never pruned, and a merge finds the same
//! base it always did (FS-22 says what happens when that base's tree is gone).
//!
//! Never: lower a horizon (a pruned tree cannot come back); put the head below it; read the
//! clock (the caller passes `now_ms`).

use super::Fs;
use super::commit::CommitError;
use crate::db::snapshot::{self, Snapshot, SnapshotError};
use crate::storage::refs::{REF_SIZE_BYTES, Ref};
use std::collections::BTreeMap;

/// Size of a history value with a horizon (FS-23).
pub const HISTORY_VALUE_HORIZON_SIZE_BYTES: usize = REF_SIZE_BYTES + 8;
/// The line that ends a commit message carrying its commit time (FS-24), before the decimal
/// milliseconds since the Unix epoch.
pub const COMMIT_TIME_TRAILER: &str = "\ncellar-time-ms=";

/// A mark's value for a file-tree history (FS-23): the head commit and the retention horizon —
/// commits whose lamport is below it keep their snapshot but not their tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The newest commit (`None`: nothing committed yet).
    pub head: Option<Ref>,
    /// Trees of commits with a lamport below this are pruned (0: nothing is).
    pub horizon: u64,
}

impl History {
    /// A history with `head` and nothing pruned.
    pub fn at(head: Ref) -> Self {
        Self { head: Some(head), horizon: 0 }
    }

    /// The value (FS-23): empty; the head's 64 bytes (horizon 0); or the head ‖ horizon:u64-BE.
    pub fn encode(&self) -> Vec<u8> {
        match self.head {
            None => Vec::new(),
            Some(h) if self.horizon == 0 => h.to_bytes().to_vec(),
            Some(h) => {
                let mut out = h.to_bytes().to_vec();
                out.extend_from_slice(&self.horizon.to_be_bytes());
                out
            }
        }
    }

    /// Decodes a value (FS-23), refusing any other length and the non-canonical horizon 0.
    pub fn decode(value: &[u8]) -> Result<Self, CommitError> {
        let bad = |detail: String| CommitError::BadValue(detail);
        match value.len() {
            0 => Ok(Self::default()),
            REF_SIZE_BYTES => Ok(Self::at(Ref::from_bytes(value).map_err(SnapshotError::from)?)),
            HISTORY_VALUE_HORIZON_SIZE_BYTES => {
                let head =
                    Ref::from_bytes(&value[..REF_SIZE_BYTES]).map_err(SnapshotError::from)?;
                let mut h = [0u8; 8];
                h.copy_from_slice(&value[REF_SIZE_BYTES..]);
                let horizon = u64::from_be_bytes(h);
                if horizon == 0 {
                    return Err(bad("a horizon of 0 is written as the bare head".into()));
                }
                Ok(Self { head: Some(head), horizon })
            }
            n => Err(bad(format!("a history value of {n} bytes"))),
        }
    }

    /// Does the commit with this lamport still have its tree?
    pub fn keeps(&self, lamport: u64) -> bool {
        lamport >= self.horizon
    }
}

/// A commit message carrying its time (FS-24): `text ‖ "\ncellar-time-ms=" ‖ decimal`, the text
/// cut (at a character boundary) so the whole fits the snapshot's message limit.
pub fn commit_message(text: &str, time_ms: Option<i64>) -> String {
    let Some(t) = time_ms else { return text.to_owned() };
    let trailer = format!("{COMMIT_TIME_TRAILER}{t}");
    let mut end = text.len().min(snapshot::MESSAGE_SIZE_MAX_BYTES - trailer.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{trailer}", &text[..end])
}

/// Splits a commit message into its text and its commit time, if it carries one (FS-24).
pub fn split_commit_message(message: &str) -> (&str, Option<i64>) {
    if let Some((text, t)) = message.rsplit_once(COMMIT_TIME_TRAILER)
        && !t.is_empty()
        && t.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
        && let Ok(ms) = t.parse::<i64>()
    {
        return (text, Some(ms));
    }
    (message, None)
}

/// Which commits keep their trees (FS-25), as `restic forget` words it: a commit is *selected*
/// if any rule holds; the horizon becomes the lowest lamport of a selected commit, so the
/// selected commits and every newer one keep their trees. An empty policy selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// The newest N commits, in history order (newest first by lamport, then ref).
    pub keep_last: Option<usize>,
    /// Commits at most this many milliseconds older than `now_ms`.
    pub keep_within_ms: Option<u64>,
    /// Commits made at or after this time (ms since the epoch).
    pub keep_newer_ms: Option<i64>,
}

impl Retention {
    /// Does the policy prune nothing?
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.keep_within_ms.is_none() && self.keep_newer_ms.is_none()
    }

    fn selects(&self, index: usize, time_ms: Option<i64>, now_ms: i64) -> bool {
        if self.is_empty() || self.keep_last.is_some_and(|n| index < n) {
            return true;
        }
        let Some(t) = time_ms else { return false };
        let within = self
            .keep_within_ms
            .is_some_and(|w| t >= now_ms.saturating_sub(i64::try_from(w).unwrap_or(i64::MAX)));
        within || self.keep_newer_ms.is_some_and(|n| t >= n)
    }
}

/// What applying a policy to one history found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruning {
    /// The new history value (the same head; the horizon raised or unchanged).
    pub history: History,
    /// Commits in the history.
    pub commits: u64,
    /// Commits whose trees are kept under the new horizon.
    pub kept: u64,
}

impl Fs<'_> {
    /// Applies `policy` to `history` (FS-25): the horizon becomes the lowest lamport among the
    /// commits the policy selects (the head always is) and the commits in `protect` that are in
    /// the history (merge bases another mark still needs), never below the current horizon.
    pub fn prune(
        &self,
        history: &History,
        policy: &Retention,
        now_ms: i64,
        protect: &[Ref],
    ) -> Result<Pruning, CommitError> {
        let Some(head) = history.head else {
            return Ok(Pruning { history: *history, commits: 0, kept: 0 });
        };
        let mut lamports: BTreeMap<Ref, u64> = BTreeMap::new();
        let mut cut = u64::MAX;
        let mut index = 0usize;
        snapshot::walk(self.kv.store(), &head, |r, s: &Snapshot| {
            let (_, time) = split_commit_message(&s.message);
            if policy.selects(index, time, now_ms) || index == 0 {
                cut = cut.min(s.lamport);
            }
            lamports.insert(*r, s.lamport);
            index += 1;
            true
        })?;
        for p in protect {
            if let Some(l) = lamports.get(p) {
                cut = cut.min(*l);
            }
        }
        let horizon = cut.max(history.horizon);
        let kept = lamports.values().filter(|l| **l >= horizon).count() as u64;
        Ok(Pruning {
            history: History { head: Some(head), horizon },
            commits: lamports.len() as u64,
            kept,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_values_are_canonical_fs23() {
        let h = Ref::from_array(&[3; 64]);
        assert_eq!(History::default().encode(), Vec::<u8>::new());
        assert_eq!(History::at(h).encode(), h.to_bytes().to_vec());
        let pruned = History { head: Some(h), horizon: 7 };
        let v = pruned.encode();
        assert_eq!(v.len(), 72);
        assert_eq!(&v[64..], &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(History::decode(&v).unwrap(), pruned);
        assert_eq!(History::decode(&h.to_bytes()).unwrap(), History::at(h));
        let mut zero = h.to_bytes().to_vec();
        zero.extend_from_slice(&[0; 8]);
        assert!(History::decode(&zero).is_err(), "horizon 0 has one form");
        assert!(History::decode(&[1; 65]).is_err());
    }

    #[test]
    fn commit_times_ride_in_the_message_fs24() {
        let m = commit_message("hello\nworld", Some(1_700_000_000_123));
        assert_eq!(m, "hello\nworld\ncellar-time-ms=1700000000123");
        assert_eq!(split_commit_message(&m), ("hello\nworld", Some(1_700_000_000_123)));
        assert_eq!(split_commit_message("plain"), ("plain", None));
        assert_eq!(split_commit_message("x\ncellar-time-ms=12a"), ("x\ncellar-time-ms=12a", None));
        assert_eq!(split_commit_message(&commit_message("", Some(-5))), ("", Some(-5)));
        let long = "é".repeat(3000);
        let m = commit_message(&long, Some(1));
        assert!(m.len() <= snapshot::MESSAGE_SIZE_MAX_BYTES);
        assert_eq!(split_commit_message(&m).1, Some(1));
    }
}
