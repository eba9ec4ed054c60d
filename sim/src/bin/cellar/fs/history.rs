//! Commands on one mark's history: commit, log, ls, cat, diff, checkout, merge.

use super::GotError;
use super::progress;
use super::repo::{Repo, mark_name, now_ms};
use cellar::db::merge::NodeId;
use cellar::db::snapshot;
use cellar::fs::host::{export_tree_with, import_file, import_tree_since};
use cellar::fs::{Attrs, ChangeKind, History, Kind, split_commit_message};
use cellar::storage::store::Deferring;
use cellar::storage::volume::Mode;
use std::io::Write;
use std::path::Path;

/// The author id written into commits made by this command line.
pub(super) const AUTHOR: NodeId = NodeId(0);

/// Blob workers of a commit: one per core, at most 4 (FS-16).
pub(super) fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

pub(super) fn commit(
    r: &Repo,
    mark: &str,
    message: &str,
    path: &Path,
    reread: bool,
    jobs: usize,
) -> Result<(), GotError> {
    let name = mark_name(mark)?;
    // Posting blobs is expansion: a concurrent gc must not delete them mid-commit (VOL-2).
    let _hold = r.volume.modes.begin(Mode::Expand)?;
    let (info, old) = r.mark(&name)?;
    // STORE-6: blobs are made durable together, once, before the mark names them.
    let deferred = Deferring::new(r.store());
    let fs = r.fs_into(&deferred, &info);
    let bar = progress::Bytes::new("committing");
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| GotError::Usage(format!("{}: {e}", path.display())))?;
    let (tree, rep) = if meta.is_dir() {
        // FS-26: unchanged files come from the head's tree unread, unless --reread.
        let prev = match old.head.as_ref().filter(|_| !reread) {
            Some(head) => Some(fs.tree_of(head)?),
            None => None,
        };
        import_tree_since(&fs, path, prev.as_ref(), jobs, &mut |p| bar.update(p))?
    } else {
        let root = Attrs { mode: 0o755, ..Attrs::default() };
        import_file(&fs, path, root, jobs, &mut |p| bar.update(p))?
    };
    drop(bar);
    let head = fs.commit_at(&tree, old.head.as_ref(), AUTHOR, message, Some(now_ms()))?;
    deferred.finish().map_err(cellar::storage::volume::VolumeError::from)?;
    r.publish(&name, &old, &History { head: Some(head), horizon: old.horizon })?;
    for skipped in &rep.skipped {
        eprintln!("cellar: skipped {} (not a file, directory or symlink)", skipped.display());
    }
    println!("{head}");
    println!(
        "{} files ({} unchanged, not read), {} dirs, {} symlinks, {} bytes",
        rep.files, rep.reused, rep.dirs, rep.symlinks, rep.bytes
    );
    Ok(())
}

/// A commit time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn show_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = super::gc::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub(super) fn log(r: &Repo, mark: &str, limit: usize) -> Result<(), GotError> {
    let (_, history) = r.mark(&mark_name(mark)?)?;
    let Some(head) = history.head else { return Ok(()) };
    let mut out = std::io::stdout().lock();
    for (c, s) in snapshot::history(r.store(), &head, limit)? {
        let merge = if s.parents.len() > 1 { " (merge)" } else { "" };
        let pruned = if history.keeps(s.lamport) { "" } else { " (pruned)" };
        let (text, time) = split_commit_message(&s.message);
        let when = time.map(|t| format!(" {}", show_time(t))).unwrap_or_default();
        writeln!(out, "{c}\n  #{}{when}{merge}{pruned} {text}", s.lamport)
            .map_err(GotError::Output)?;
    }
    Ok(())
}

pub(super) fn ls(r: &Repo, target: Option<&str>) -> Result<(), GotError> {
    let (tree, path) = r.target(target)?;
    let fs = r.reader();
    let mut out = std::io::stdout().lock();
    for e in fs.readdir(&tree, &path)? {
        let kind = match e.info.kind {
            Kind::Dir => 'd',
            Kind::File => '-',
            Kind::Symlink => 'l',
            Kind::Fifo => 'p',
            Kind::Socket => 's',
            Kind::CharDevice => 'c',
            Kind::BlockDevice => 'b',
        };
        let name = String::from_utf8_lossy(&e.name);
        let tail = if e.info.kind == Kind::Symlink {
            format!(" -> {}", String::from_utf8_lossy(&e.info.target))
        } else {
            String::new()
        };
        writeln!(out, "{kind}{:04o} {:>12} {name}{tail}", e.info.mode, e.info.size)
            .map_err(GotError::Output)?;
    }
    Ok(())
}

pub(super) fn cat(r: &Repo, target: &str) -> Result<(), GotError> {
    let (tree, path) = r.target(Some(target))?;
    let fs = r.reader();
    let mut reader = fs.reader(&tree, &path)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut reader, &mut out).map_err(|e| {
        match e.downcast::<cellar::fs::FsError>() {
            Ok(fs) => GotError::Fs(fs),
            Err(e) => GotError::Output(e),
        }
    })?;
    out.flush().map_err(GotError::Output)
}

pub(super) fn diff(r: &Repo, a: &str, b: &str) -> Result<(), GotError> {
    let (ta, tb) = (r.tree(&r.resolve(a)?)?, r.tree(&r.resolve(b)?)?);
    let mut out = std::io::stdout().lock();
    for c in r.reader().diff(&ta, &tb)? {
        let tag = match c.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
        };
        writeln!(out, "{tag} {}", c.path).map_err(GotError::Output)?;
    }
    Ok(())
}

pub(super) fn checkout(r: &Repo, spec: &str, dest: &Path) -> Result<(), GotError> {
    let tree = r.tree(&r.resolve(spec)?)?;
    let bar = progress::Bytes::new("checking out");
    let rep = export_tree_with(&r.reader(), &tree, &cellar::fs::FsPath::root(), dest, &mut |p| {
        bar.update(p)
    })?;
    drop(bar);
    println!(
        "{} files ({} unchanged, not read), {} dirs, {} symlinks, {} bytes",
        rep.files, rep.reused, rep.dirs, rep.symlinks, rep.bytes
    );
    Ok(())
}

pub(super) fn merge(r: &Repo, a: &str, b: &str) -> Result<(), GotError> {
    let name = mark_name(a)?;
    let _hold = r.volume.modes.begin(Mode::Expand)?;
    let (info, ours) = r.mark(&name)?;
    if ours.head.is_none() {
        return Err(GotError::Usage(format!("mark {name} has no commits to merge into")));
    }
    let theirs = r.resolve(b)?;
    let theirs = History { head: Some(theirs.commit), horizon: theirs.history.horizon };
    let fs = r.fs_for(&info);
    let (head, conflicts) = fs.merge_histories(&ours, &theirs, AUTHOR, Some(now_ms()))?;
    // The merged history holds both sides' commits: a commit keeps its tree only if its own
    // side kept it, so the higher horizon is the one every kept tree is present under.
    let new = History { head: Some(head), horizon: ours.horizon.max(theirs.horizon) };
    for c in &conflicts {
        let copy = c.copy.as_ref().map(|p| format!(" (theirs at {p})")).unwrap_or_default();
        eprintln!("cellar: conflict {:?} at {}{copy}", c.kind, c.path);
    }
    if Some(head) == ours.head {
        println!("{name} already contains {b}");
        return Ok(());
    }
    r.publish_checked(&name, &ours, &new)?;
    println!("{head}");
    Ok(())
}
