//! `cellar mark …`, `push` and `pull`: the space's names, and marks moving between spaces.
//!
//! Push and pull mount the other repository's space at `remote/` beside this one's (a
//! composite space, MARK-7) and sync the mark between the two mark volumes (MARK-9): the
//! destination's Expand mode is held for the whole copy and the mark moves by one
//! compare-and-swap of its space, only once every blob it needs is there (VOL-1, VOL-3).

use super::history::{AUTHOR, show_time};
use super::repo::{Repo, mark_name, new_salt, now_ms, now_ns};
use super::{GotError, MarkCommand};
use cellar::db::snapshot;
use cellar::fs::{FsSnapshotReachability, History};
use cellar::marks::{CompositeSpace, MarkName, Space, sync_mark};
use cellar::storage::store::Store;
use cellar::storage::volume::{Mode, SyncOutcome};
use std::io::Write;
use std::sync::Arc;

pub(super) fn mark(r: &Repo, cmd: MarkCommand) -> Result<(), GotError> {
    match cmd {
        MarkCommand::List => list(r)?,
        MarkCommand::Create { name } => {
            let name = mark_name(&name)?;
            r.space.create(&name, new_salt(), now_ns())?;
            println!("created mark {name}");
        }
        MarkCommand::Fork { from, to } => {
            let (from, to) = (mark_name(&from)?, mark_name(&to)?);
            r.space.fork(&from, &to, now_ns())?;
            println!("forked {from} as {to}");
        }
        MarkCommand::Delete { name } => {
            let name = mark_name(&name)?;
            r.space.delete(&name)?;
            println!("deleted mark {name} (its data goes at the next gc)");
        }
        MarkCommand::Rename { from, to } => {
            let (from, to) = (mark_name(&from)?, mark_name(&to)?);
            r.space.rename(&from, &to)?;
            println!("renamed {from} to {to}");
        }
    }
    Ok(())
}

fn list(r: &Repo) -> Result<(), GotError> {
    let mut out = std::io::stdout().lock();
    for (name, info) in r.space.list()? {
        let history = History::decode(&info.value)?;
        let created = show_time(info.created_ns.div_euclid(1_000_000));
        let head = match history.head {
            None => "(no commits)".to_owned(),
            Some(h) => {
                let s = snapshot::get(r.store(), &h)?;
                let pruned = if history.horizon > 0 {
                    format!(", trees kept from #{}", history.horizon)
                } else {
                    String::new()
                };
                format!("#{} {h}{pruned}", s.lamport)
            }
        };
        writeln!(out, "{name}\t{head}\tcreated {created}").map_err(GotError::Output)?;
    }
    Ok(())
}

/// This repository's space at the root and `other`'s at `remote/`.
fn composite(local: &Repo, other: &Repo) -> Result<CompositeSpace, GotError> {
    Ok(CompositeSpace::new()
        .mount("", Arc::new(local.space.clone()))?
        .mount("remote/", Arc::new(other.space.clone()))?)
}

/// Publishes the source value if the destination is empty or its head is an ancestor of the
/// source's head (a fast forward), reading the history from `store`.
fn fast_forward(store: &dyn Store) -> impl Fn(&[u8], &[u8]) -> Option<Vec<u8>> + '_ {
    move |src: &[u8], dst: &[u8]| {
        let src_head = History::decode(src).ok()?.head?;
        match History::decode(dst).ok()?.head {
            None => Some(src.to_vec()),
            Some(d) => {
                snapshot::is_ancestor(store, &d, &src_head).unwrap_or(false).then(|| src.to_vec())
            }
        }
    }
}

pub(super) fn push(local: &Repo, remote: &Repo, mark: &str) -> Result<(), GotError> {
    let name = mark_name(mark)?;
    let space = composite(local, remote)?;
    let there = MarkName::new(&format!("remote/{name}"))?;
    let decide = fast_forward(local.store());
    match sync_mark(&space, &name, &space, &there, &FsSnapshotReachability, &decide)? {
        SyncOutcome::Published { value, blobs_copied } => {
            let head = History::decode(&value)?.head.map(|h| h.to_string()).unwrap_or_default();
            println!("pushed {name} {head} ({blobs_copied} blobs copied)");
            Ok(())
        }
        SyncOutcome::Declined { .. } => Err(GotError::Usage(format!(
            "the remote's {name} has commits this repository lacks: pull first"
        ))),
    }
}

pub(super) fn pull(local: &Repo, remote: &Repo, mark: &str) -> Result<(), GotError> {
    let name = mark_name(mark)?;
    // Held until the merge publishes, so a gc cannot delete the copied blobs in between.
    let _hold = local.volume.modes.begin(Mode::Expand)?;
    let space = composite(local, remote)?;
    let there = MarkName::new(&format!("remote/{name}"))?;
    let decide = fast_forward(local.store());
    let theirs = match sync_mark(&space, &there, &space, &name, &FsSnapshotReachability, &decide)? {
        SyncOutcome::Published { value, .. } => {
            let head = History::decode(&value)?.head.map(|h| h.to_string()).unwrap_or_default();
            println!("fast-forwarded {name} to {head}");
            return Ok(());
        }
        SyncOutcome::Declined { .. } => remote.mark(&name)?.1,
    };
    let (info, ours) = local.mark(&name)?;
    let fs = local.fs_for(&info);
    let (head, conflicts) = fs.merge_histories(&ours, &theirs, AUTHOR, Some(now_ms()))?;
    for c in &conflicts {
        let copy = c.copy.as_ref().map(|p| format!(" (theirs at {p})")).unwrap_or_default();
        eprintln!("cellar: conflict {:?} at {}{copy}", c.kind, c.path);
    }
    if Some(head) != ours.head {
        let new = History { head: Some(head), horizon: ours.horizon.max(theirs.horizon) };
        local.publish_checked(&name, &ours, &new)?;
    }
    println!("{head}");
    Ok(())
}
