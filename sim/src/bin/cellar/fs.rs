//! The Got-style commands over file trees (`specs/fs.md`): `cellar init`, `commit`, `log`,
//! `ls`, `cat`, `diff`, `checkout`, `push`, `pull`, `gc`, `scrub`.
//!
//! A repository is a directory holding one volume (`cellar vol`'s layout) whose cell holds the
//! head commit of its one mark, `main`; a commit is a snapshot of a file tree (FS-22). Handlers
//! only parse, call `cellar::fs` and print. Every write holds Expand and publishes with one
//! cell CAS at the end, so nothing half-committed is ever visible; `gc` holds Contract, so it
//! and a commit refuse each other (exit 3) instead of racing (VOL-2).
//!
//! Not yet: several marks per repository, spaces, retention policies, progress bars.

use cellar::db::merge::NodeId;
use cellar::db::snapshot;
use cellar::env::OsEntropy;
use cellar::fs::host::{export_tree, import_tree};
use cellar::fs::{ChangeKind, Fs, FsPath, FsSnapshotReachability, Kind};
use cellar::storage::refs::Ref;
use cellar::storage::volume::{self, DirVolume, Mode, SyncOutcome, VolumeError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The author id written into commits made by this command line.
const AUTHOR: NodeId = NodeId(0);

/// File-tree repository commands.
#[derive(clap::Subcommand, Debug)]
pub enum GotCommand {
    /// Create a repository in DIR (one mark, `main`).
    Init {
        /// The repository directory.
        dir: PathBuf,
    },
    /// Snapshot the host directory PATH as the next commit of `main`.
    Commit {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// The commit message.
        #[arg(long, short = 'm')]
        message: String,
        /// The directory to snapshot.
        path: PathBuf,
    },
    /// The history of `main`, newest first.
    Log {
        #[command(flatten)]
        repo: RepoArgs,
        /// At most this many commits.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
    },
    /// List a directory of a commit (default: the head, `/`).
    Ls {
        #[command(flatten)]
        repo: RepoArgs,
        /// `COMMIT:PATH`, `PATH` (in the head) or nothing.
        target: Option<String>,
    },
    /// Write a file of a commit to stdout.
    Cat {
        #[command(flatten)]
        repo: RepoArgs,
        /// `COMMIT:PATH` or `PATH` (in the head).
        target: String,
    },
    /// The paths added (A), removed (D) and modified (M) from commit A to commit B.
    Diff {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// A commit: `HEAD`, `HEAD~N` or a ref.
        a: String,
        /// A commit: `HEAD`, `HEAD~N` or a ref.
        b: String,
    },
    /// Write a commit's tree (default: the head) into DEST (absent or empty).
    Checkout {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// Which commit.
        #[arg(long, default_value = "HEAD")]
        commit: String,
        /// The destination directory.
        dest: PathBuf,
    },
    /// Copy `main` into the repository REMOTE (fast forward only).
    Push {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// The other repository.
        remote: PathBuf,
    },
    /// Bring REMOTE's `main` in: fast forward, or a merge commit (conflicts kept side by side).
    Pull {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// The other repository.
        remote: PathBuf,
    },
    /// Delete every blob no commit of `main` needs.
    Gc {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
    },
    /// Re-read and verify every blob of every commit; report damage (exit 1 if any).
    Scrub {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum GotError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Fs(#[from] cellar::fs::FsError),
    #[error(transparent)]
    Commit(#[from] cellar::fs::CommitError),
    #[error(transparent)]
    Host(#[from] cellar::fs::host::HostError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("{0}")]
    Usage(String),
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("the repository's head moved during the operation; run it again")]
    Raced,
    #[error("{0} damaged blob(s) found")]
    Damaged(usize),
}

/// Runs one file-tree command.
pub fn run(cmd: GotCommand) -> ExitCode {
    match execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar: error: {e}");
            match e {
                GotError::Volume(VolumeError::ModeConflict { .. }) => {
                    ExitCode::from(crate::vol::EXIT_MODE_CONFLICT)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// A repository's volume and salt: a `cellar init` directory, or a share of `cellar.toml`.
struct Repo {
    volume: volume::Volume,
    salt: [u8; 32],
}

/// Where a reading command finds its repository.
#[derive(clap::Args, Debug)]
pub struct RepoArgs {
    /// The repository.
    #[arg(long, short = 'r', default_value = ".")]
    repo: PathBuf,
    /// Read the share `--share` of this configuration file instead (what `cellar mount` and
    /// `cellar serve` commit to).
    #[arg(long, requires = "share")]
    config: Option<PathBuf>,
    /// The share (with `--config`).
    #[arg(long, requires = "config")]
    share: Option<String>,
}

impl RepoArgs {
    fn open(&self) -> Result<Repo, GotError> {
        let (Some(config), Some(share)) = (&self.config, &self.share) else {
            return Repo::open(&self.repo);
        };
        let reg =
            cellar::registry::Registry::open(config).map_err(|e| GotError::Usage(e.to_string()))?;
        let spec =
            reg.share(share).ok_or_else(|| GotError::Usage(format!("no share named {share:?}")))?;
        let volume = reg
            .volume(&spec.volume)
            .ok_or_else(|| GotError::Usage(format!("volume {} is not open", spec.volume)))?
            .clone();
        let salt = reg
            .volume_salt(&spec.volume)
            .ok_or_else(|| GotError::Usage(format!("volume {} has no salt", spec.volume)))?;
        Ok(Repo { volume, salt })
    }
}

impl Repo {
    fn open(dir: &Path) -> Result<Self, GotError> {
        let d = DirVolume::open(dir, Arc::new(OsEntropy))?;
        Ok(Self { salt: d.secret.ref_salt(), volume: d.volume })
    }
    fn fs(&self) -> Fs<'_> {
        Fs::new(self.volume.store.as_ref(), self.salt)
    }
    fn head(&self) -> Result<Option<Ref>, GotError> {
        let value = self.volume.cell.read().map_err(VolumeError::from)?;
        Ok(snapshot::head_from_cell(&value)?)
    }
    fn need_head(&self) -> Result<Ref, GotError> {
        self.head()?.ok_or_else(|| GotError::Usage("the repository has no commits yet".into()))
    }
    /// Publishes `new` if the head is still `old` (one CAS: all or nothing).
    fn publish(&self, old: Option<&Ref>, new: &Ref) -> Result<(), GotError> {
        let expected = old.map(|r| r.to_bytes().to_vec()).unwrap_or_default();
        let cas = self.volume.cell.cas(&expected, &new.to_bytes()).map_err(VolumeError::from)?;
        if cas.swapped { Ok(()) } else { Err(GotError::Raced) }
    }
    /// `HEAD`, `HEAD~N` or a ref.
    fn resolve(&self, spec: &str) -> Result<Ref, GotError> {
        let back = match spec.strip_prefix("HEAD") {
            Some("") => 0,
            Some(n) => n
                .strip_prefix('~')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| GotError::Usage(format!("bad commit {spec:?}")))?,
            None => {
                return spec
                    .parse::<Ref>()
                    .map_err(|e| GotError::Usage(format!("bad commit {spec:?}: {e}")));
            }
        };
        let store = self.volume.store.as_ref();
        let hist = snapshot::history(store, &self.need_head()?, back + 1)?;
        hist.get(back)
            .map(|(r, _)| *r)
            .ok_or_else(|| GotError::Usage(format!("{spec}: the history is shorter")))
    }
    /// `COMMIT:PATH` or `PATH` → (tree, path).
    fn target(&self, t: Option<&str>) -> Result<(Ref, FsPath), GotError> {
        let (commit, path) = match t {
            None => ("HEAD", "/"),
            Some(t) => t.rsplit_once(':').unwrap_or(("HEAD", t)),
        };
        Ok((self.fs().tree_of(&self.resolve(commit)?)?, FsPath::new(path)?))
    }
}

fn execute(cmd: GotCommand) -> Result<(), GotError> {
    match cmd {
        GotCommand::Init { dir } => {
            DirVolume::init(&dir, Arc::new(OsEntropy))?;
            println!("initialised repository {} (mark main)", dir.display());
        }
        GotCommand::Commit { repo, message, path } => commit(&Repo::open(&repo)?, &message, &path)?,
        GotCommand::Log { repo, limit } => log(&repo.open()?, limit)?,
        GotCommand::Ls { repo, target } => ls(&repo.open()?, target.as_deref())?,
        GotCommand::Cat { repo, target } => cat(&repo.open()?, &target)?,
        GotCommand::Diff { repo, a, b } => diff(&Repo::open(&repo)?, &a, &b)?,
        GotCommand::Checkout { repo, commit, dest } => {
            let r = Repo::open(&repo)?;
            let tree = r.fs().tree_of(&r.resolve(&commit)?)?;
            let rep = export_tree(&r.fs(), &tree, &FsPath::root(), &dest)?;
            println!(
                "{} files, {} dirs, {} symlinks, {} bytes",
                rep.files, rep.dirs, rep.symlinks, rep.bytes
            );
        }
        GotCommand::Push { repo, remote } => push(&Repo::open(&repo)?, &Repo::open(&remote)?)?,
        GotCommand::Pull { repo, remote } => pull(&Repo::open(&repo)?, &Repo::open(&remote)?)?,
        GotCommand::Gc { repo } => {
            let out = volume::cleanup(&Repo::open(&repo)?.volume, &FsSnapshotReachability)?;
            println!("kept {} blobs, deleted {} blobs", out.blobs_kept, out.blobs_deleted);
        }
        GotCommand::Scrub { repo } => scrub(&Repo::open(&repo)?)?,
    }
    Ok(())
}

fn commit(r: &Repo, message: &str, path: &Path) -> Result<(), GotError> {
    // Posting blobs is expansion: a concurrent gc must not delete them mid-commit (VOL-2).
    let _hold = r.volume.modes.begin(Mode::Expand)?;
    let fs = r.fs();
    let old = r.head()?;
    let (tree, rep) = import_tree(&fs, path)?;
    let head = fs.commit(&tree, old.as_ref(), AUTHOR, message)?;
    r.publish(old.as_ref(), &head)?;
    for skipped in &rep.skipped {
        eprintln!("cellar: skipped {} (not a file, directory or symlink)", skipped.display());
    }
    println!("{head}");
    println!(
        "{} files, {} dirs, {} symlinks, {} bytes",
        rep.files, rep.dirs, rep.symlinks, rep.bytes
    );
    Ok(())
}

fn log(r: &Repo, limit: usize) -> Result<(), GotError> {
    let Some(head) = r.head()? else { return Ok(()) };
    let mut out = std::io::stdout().lock();
    for (c, s) in snapshot::history(r.volume.store.as_ref(), &head, limit)? {
        let merge = if s.parents.len() > 1 { " (merge)" } else { "" };
        writeln!(out, "{c}\n  #{}{merge} {}", s.lamport, s.message).map_err(GotError::Output)?;
    }
    Ok(())
}

fn ls(r: &Repo, target: Option<&str>) -> Result<(), GotError> {
    let (tree, path) = r.target(target)?;
    let fs = r.fs();
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

fn cat(r: &Repo, target: &str) -> Result<(), GotError> {
    let (tree, path) = r.target(Some(target))?;
    let fs = r.fs();
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

fn diff(r: &Repo, a: &str, b: &str) -> Result<(), GotError> {
    let fs = r.fs();
    let (ta, tb) = (fs.tree_of(&r.resolve(a)?)?, fs.tree_of(&r.resolve(b)?)?);
    let mut out = std::io::stdout().lock();
    for c in fs.diff(&ta, &tb)? {
        let tag = match c.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
        };
        writeln!(out, "{tag} {}", c.path).map_err(GotError::Output)?;
    }
    Ok(())
}

fn push(local: &Repo, remote: &Repo) -> Result<(), GotError> {
    let head = local.need_head()?;
    let store = local.volume.store.as_ref();
    let fast_forward = |src: &[u8], dst: &[u8]| -> Option<Vec<u8>> {
        let ok = match snapshot::head_from_cell(dst) {
            Ok(None) => true,
            Ok(Some(d)) => snapshot::is_ancestor(store, &d, &head).unwrap_or(false),
            Err(_) => false,
        };
        ok.then(|| src.to_vec())
    };
    match volume::sync(&local.volume, &remote.volume, Some(&FsSnapshotReachability), &fast_forward)?
    {
        SyncOutcome::Published { blobs_copied, .. } => {
            println!("pushed {head} ({blobs_copied} blobs copied)")
        }
        SyncOutcome::Declined { .. } => {
            return Err(GotError::Usage(
                "the remote has commits this repository lacks: pull first".into(),
            ));
        }
    }
    Ok(())
}

fn pull(local: &Repo, remote: &Repo) -> Result<(), GotError> {
    let theirs = remote.need_head()?;
    // Copy their blobs in (publishing only a fast forward); a merge follows if needed.
    let rstore = remote.volume.store.as_ref();
    let ff = |src: &[u8], dst: &[u8]| -> Option<Vec<u8>> {
        match snapshot::head_from_cell(dst) {
            Ok(None) => Some(src.to_vec()),
            Ok(Some(d)) => {
                snapshot::is_ancestor(rstore, &d, &theirs).unwrap_or(false).then(|| src.to_vec())
            }
            Err(_) => None,
        }
    };
    let synced = volume::sync(&remote.volume, &local.volume, Some(&FsSnapshotReachability), &ff)?;
    if let SyncOutcome::Published { .. } = synced {
        println!("fast-forwarded to {theirs}");
        return Ok(());
    }
    let _hold = local.volume.modes.begin(Mode::Expand)?;
    let ours = local.need_head()?;
    let (head, conflicts) = local.fs().merge_heads(&ours, &theirs, AUTHOR)?;
    if head != ours {
        local.publish(Some(&ours), &head)?;
    }
    for c in &conflicts {
        let copy = c.copy.as_ref().map(|p| format!(" (theirs at {p})")).unwrap_or_default();
        eprintln!("cellar: conflict {:?} at {}{copy}", c.kind, c.path);
    }
    println!("{head}");
    Ok(())
}

fn scrub(r: &Repo) -> Result<(), GotError> {
    let Some(head) = r.head()? else { return Ok(()) };
    let fs = r.fs();
    let (mut nodes, mut blobs, mut damaged) = (0, 0, 0);
    for (c, s) in snapshot::history(r.volume.store.as_ref(), &head, usize::MAX)? {
        let Some(tree) = s.root else { continue };
        let rep = fs.scrub(&tree)?;
        nodes += rep.nodes;
        blobs += rep.blobs;
        for d in &rep.damage {
            let at = d.path.as_ref().map_or_else(|| "a tree node".to_owned(), ToString::to_string);
            eprintln!("cellar: commit {c}: blob {} ({at}) is damaged: {}", d.cid, d.detail);
        }
        damaged += rep.damage.len();
    }
    println!("{nodes} tree nodes, {blobs} data blobs verified");
    if damaged > 0 { Err(GotError::Damaged(damaged)) } else { Ok(()) }
}
