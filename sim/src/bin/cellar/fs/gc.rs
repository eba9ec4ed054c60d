//! `cellar gc` (retention, then a cleanup of the whole space) and `cellar scrub`.
//!
//! Retention (`specs/fs.md` FS-25) raises each mark's horizon: older commits keep their
//! snapshots (so the history graph, pushes, pulls and merge bases are untouched) but lose their
//! trees. A mark's horizon never passes its merge base with another mark of the repository, so
//! every two marks still merge three-way after a gc. Then the space volume is cleaned up under
//! Contract with `SpaceReachability` (VOL-2, VOL-5): whatever no mark needs goes.

use super::GotError;
use super::progress;
use super::repo::{Repo, now_ms};
use cellar::db::snapshot;
use cellar::fs::{FsSnapshotReachability, History, Retention, ScrubReport};
use cellar::marks::{MarkName, Space, SpaceReachability};
use cellar::storage::refs::Ref;
use cellar::storage::volume::{self, Mode};
use std::collections::BTreeSet;

/// Builds the retention policy from the flags; refuses nonsense with one line.
pub(super) fn policy(
    keep_last: Option<usize>,
    keep_within: Option<&str>,
    keep_newer: Option<&str>,
) -> Result<Retention, GotError> {
    if keep_last == Some(0) {
        return Err(GotError::Usage(
            "--keep-last must be at least 1 (the head is always kept)".into(),
        ));
    }
    let keep_within_ms = keep_within.map(parse_duration_ms).transpose()?;
    let keep_newer_ms = keep_newer.map(parse_date_ms).transpose()?;
    Ok(Retention { keep_last, keep_within_ms, keep_newer_ms })
}

/// `1y2m3w4d5h6s` → milliseconds (restic's units: y = 365 days, m = 30 days; plus w and s).
pub(super) fn parse_duration_ms(s: &str) -> Result<u64, GotError> {
    let bad = || GotError::Usage(format!("bad duration {s:?}: use e.g. 1y6m, 30d, 12h, 2w"));
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit_s: u64 = match c {
            'y' => 365 * 86_400,
            'm' => 30 * 86_400,
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3600,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n.checked_mul(unit_s * 1000).and_then(|x| total.checked_add(x)).ok_or_else(bad)?;
    }
    if !digits.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (or a space for `T`), UTC; or `@UNIX_SECONDS`.
pub(super) fn parse_date_ms(s: &str) -> Result<i64, GotError> {
    let bad = || {
        GotError::Usage(format!(
            "bad date {s:?}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or @SECONDS"
        ))
    };
    if let Some(secs) = s.strip_prefix('@') {
        return secs.parse::<i64>().ok().and_then(|x| x.checked_mul(1000)).ok_or_else(bad);
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let num = |x: &str, len: usize| -> Result<i64, GotError> {
        if x.len() != len || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse().map_err(|_| bad())
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    let (y, m, d) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let parts: Vec<&str> = t.split(':').collect();
        let (h, min, sec) = match parts.as_slice() {
            [h, m] => (num(h, 2)?, num(m, 2)?, 0),
            [h, m, s] => (num(h, 2)?, num(m, 2)?, num(s, 2)?),
            _ => return Err(bad()),
        };
        if h > 23 || min > 59 || sec > 59 {
            return Err(bad());
        }
        secs += h * 3600 + min * 60 + sec;
    }
    Ok(secs * 1000)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The merge bases `head` shares with the other marks' heads whose trees a later merge needs:
/// not when one head contains the other (that merge is a fast forward).
fn merge_bases(r: &Repo, head: &Ref, others: &[Ref]) -> Result<Vec<Ref>, GotError> {
    let mut out = Vec::new();
    for o in others {
        if let Some(b) = snapshot::merge_base(r.store(), head, o)?
            && b != *head
            && b != *o
        {
            out.push(b);
        }
    }
    Ok(out)
}

pub(super) fn gc(r: &Repo, policy: &Retention) -> Result<(), GotError> {
    if !policy.is_empty() {
        let _hold = r.volume.modes.begin(Mode::Expand)?;
        let marks: Vec<(MarkName, History)> = r
            .space
            .list()?
            .into_iter()
            .map(|(n, i)| Ok::<_, GotError>((n, History::decode(&i.value)?)))
            .collect::<Result<_, GotError>>()?;
        let now = now_ms();
        for (name, history) in &marks {
            let Some(head) = history.head else { continue };
            let others: Vec<Ref> =
                marks.iter().filter(|(n, _)| n != name).filter_map(|(_, h)| h.head).collect();
            let protect = merge_bases(r, &head, &others)?;
            let pruned = r.reader().prune(history, policy, now, &protect)?;
            if pruned.history != *history {
                r.publish(name, history, &pruned.history)?;
            }
            println!("{name}: {} of {} commits keep their trees", pruned.kept, pruned.commits);
        }
    }
    let reach = SpaceReachability::new(FsSnapshotReachability);
    let out = volume::cleanup(r.space.volume(), &reach)?;
    println!("kept {} blobs, deleted {} blobs", out.blobs_kept, out.blobs_deleted);
    Ok(())
}

pub(super) fn scrub(r: &Repo) -> Result<(), GotError> {
    let fs = r.reader();
    let bar = progress::Count::new("scrubbing");
    let mut report = ScrubReport::default();
    let mut seen = BTreeSet::new();
    let (mut commits, mut damaged) = (0u64, 0usize);
    for (name, info) in r.space.list()? {
        let history = History::decode(&info.value)?;
        let Some(head) = history.head else { continue };
        for (c, s) in snapshot::history(r.store(), &head, usize::MAX)? {
            commits += 1;
            let Some(tree) = s.root.filter(|_| history.keeps(s.lamport)) else { continue };
            fs.scrub_into(&tree, &mut seen, &mut report, &mut || bar.0.inc(1))?;
            for d in report.damage.drain(..) {
                let at =
                    d.path.as_ref().map_or_else(|| "a tree node".to_owned(), ToString::to_string);
                bar.0.suspend(|| {
                    eprintln!(
                        "cellar: mark {name}: commit {c}: blob {} ({at}) is damaged: {}",
                        d.cid,
                        d.detail.replace('\n', " ")
                    );
                });
                damaged += 1;
            }
        }
    }
    drop(bar);
    println!(
        "{commits} commits, {} tree nodes, {} data blobs verified",
        report.nodes, report.blobs
    );
    if damaged > 0 { Err(GotError::Damaged(damaged)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations_parse() {
        assert_eq!(parse_date_ms("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date_ms("2000-03-01T00:00:01").unwrap(), 951_868_801_000);
        assert_eq!(parse_date_ms("@10").unwrap(), 10_000);
        for bad in ["2001-02-29", "2000-13-01", "20-01-01", "2000-01-01T25:00", "x", ""] {
            assert!(parse_date_ms(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration_ms("1d2h").unwrap(), (86_400 + 7200) * 1000);
        assert_eq!(parse_duration_ms("1y").unwrap(), 365 * 86_400_000);
        for bad in ["", "5", "1x", "d", "1d5"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        for days in [-1000, 0, 11_016, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
