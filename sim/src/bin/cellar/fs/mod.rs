//! The Got-style commands over file trees and marks (`specs/fs.md`, `specs/marks.md`):
//! `cellar init`, `commit`, `log`, `ls`, `cat`, `diff`, `checkout`, `mark`, `merge`, `push`,
//! `pull`, `gc`, `scrub`.
//!
//! A repository is a directory holding one volume (`cellar vol`'s layout) that holds a *space*
//! (`cellar::marks::VolumeSpace`): its sealed cell names an encrypted map mark name → mark
//! record, and its store holds every mark's blobs. A mark's value is a file-tree history
//! (`cellar::fs::History`: the head commit and a retention horizon). Handlers only parse, call
//! the library and print.
//!
//! Every write holds Expand on the repository and publishes with one compare-and-swap of the
//! space cell at the end, so nothing half-committed is ever visible; `gc` holds Contract, so it
//! and a writer refuse each other (exit 3) instead of racing (VOL-2). Bad input gets one line
//! naming the problem and exit 1; damage found by `scrub` is exit 1 too. Progress bars go to
//! stderr, only when it is a terminal.

mod gc;
mod history;
mod marks;
mod progress;
mod repo;

use cellar::storage::volume::VolumeError;
use std::path::PathBuf;
use std::process::ExitCode;

/// File-tree repository commands.
#[derive(clap::Subcommand, Debug)]
pub enum GotCommand {
    /// Create a repository in DIR holding one empty mark, `main`.
    Init {
        /// The repository directory.
        dir: PathBuf,
        /// Whether data blobs are compressed: `zstd` (where it saves at least 1/16) or `none`
        /// (stored sizes then depend on lengths only; faster on data that does not compress).
        /// Kept in DIR/compression; every writer of the repository follows it (FS-27).
        #[arg(long, default_value = "zstd", value_parser = ["zstd", "none"])]
        compression: String,
    },
    /// Snapshot the host directory (or file) PATH as the next commit of a mark.
    Commit {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// The mark to commit to.
        #[arg(long, default_value = "main")]
        mark: String,
        /// The commit message.
        #[arg(long, short = 'm')]
        message: String,
        /// Read every file. By default a file whose size, mode, owner and mtime equal those of
        /// the same path in the mark's head is taken from the head unread (FS-26).
        #[arg(long)]
        reread: bool,
        /// Threads that compress, encrypt and post data blobs (default: one per core, at most
        /// 4; 1: all on the reading thread). The commit is the same either way (FS-16).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// The directory or file to snapshot.
        path: PathBuf,
    },
    /// The history of a mark, newest first.
    Log {
        #[command(flatten)]
        repo: RepoArgs,
        /// The mark (default: `main`, or the share's mark with `--share`).
        #[arg(long)]
        mark: Option<String>,
        /// At most this many commits.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
    },
    /// List a directory: `COMMIT[:PATH]` (a mark, `MARK~N`, `HEAD`, a ref) or `/PATH` in `main`
    /// (with `--share`, in the share's mark).
    Ls {
        #[command(flatten)]
        repo: RepoArgs,
        /// `COMMIT[:PATH]`, `/PATH` (in `main`) or nothing (the root of `main`).
        target: Option<String>,
    },
    /// Write a file of a commit to stdout: `COMMIT:PATH` or `/PATH` (in `main`).
    Cat {
        #[command(flatten)]
        repo: RepoArgs,
        /// `COMMIT:PATH` or `/PATH`.
        target: String,
    },
    /// The paths added (A), removed (D) and modified (M) from commit A to commit B.
    Diff {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// A commit: a mark, `MARK~N`, `HEAD`, `HEAD~N` or a ref.
        a: String,
        /// A commit: a mark, `MARK~N`, `HEAD`, `HEAD~N` or a ref.
        b: String,
    },
    /// Write a commit's tree into DEST (absent or empty): `checkout [COMMIT] DEST`.
    Checkout {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// Which commit (the same as a first positional argument).
        #[arg(long)]
        commit: Option<String>,
        /// `[COMMIT] DEST`: the commit (default `main`) and the destination directory.
        #[arg(num_args = 1..=2, required = true, value_name = "[COMMIT] DEST")]
        args: Vec<String>,
    },
    /// Marks: list, create, fork, delete, rename.
    Mark {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".", global = true)]
        repo: PathBuf,
        /// What to do.
        #[command(subcommand)]
        cmd: MarkCommand,
    },
    /// Merge commit B (a mark or any commit) into the mark A: fast forward, or a merge commit
    /// (a path changed on both sides keeps both versions, the second under a conflict name).
    Merge {
        /// The repository.
        #[arg(long, short = 'r', default_value = ".")]
        repo: PathBuf,
        /// The mark that receives the merge.
        a: String,
        /// The commit merged into it.
        b: String,
    },
    /// Copy a mark into the repository REMOTE (fast forward only; created there if absent).
    Push {
        #[command(flatten)]
        repo: RepoArgs,
        /// The other repository.
        remote: PathBuf,
        /// The mark.
        #[arg(default_value = "main")]
        mark: String,
    },
    /// Bring REMOTE's mark in: fast forward, or a merge commit (conflicts kept side by side).
    Pull {
        #[command(flatten)]
        repo: RepoArgs,
        /// The other repository.
        remote: PathBuf,
        /// The mark.
        #[arg(default_value = "main")]
        mark: String,
        /// Switch on a planted bug (builds with the `planted-bugs` feature only).
        #[arg(long, hide = true)]
        bug: Option<String>,
    },
    /// Delete every blob no mark needs; with a retention policy, first prune old commits' trees
    /// (their snapshots stay, so history, pushes and merges keep working).
    Gc {
        #[command(flatten)]
        repo: RepoArgs,
        /// Switch on a planted bug (builds with the `planted-bugs` feature only).
        #[arg(long, hide = true)]
        bug: Option<String>,
        /// Keep the trees of the newest N commits of each mark.
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Keep commits made within this long before now: `1y2m3w4d5h` (y, m = 30 days, w, d, h,
        /// s).
        #[arg(long, value_name = "DURATION")]
        keep_within: Option<String>,
        /// Keep commits made at or after DATE (UTC): `YYYY-MM-DD[THH:MM[:SS]]` or `@UNIX_SECONDS`.
        #[arg(long, value_name = "DATE")]
        keep_newer: Option<String>,
    },
    /// Re-read and verify every blob every mark keeps; report damage (exit 1 if any).
    Scrub {
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// Where a reading command finds its repository: a directory, or a share of `cellar.toml`.
#[derive(clap::Args, Debug)]
pub struct RepoArgs {
    /// The repository.
    #[arg(long, short = 'r', default_value = ".")]
    repo: PathBuf,
    /// Read the share `--share` of this configuration file instead: its volume's space, with
    /// the share's mark as the default (what `cellar mount` and `cellar serve` commit to).
    #[arg(long, requires = "share")]
    config: Option<PathBuf>,
    /// The share (with `--config`).
    #[arg(long, requires = "config")]
    share: Option<String>,
}

impl RepoArgs {
    fn open(&self) -> Result<repo::Repo, GotError> {
        match (&self.config, &self.share) {
            (Some(config), Some(share)) => repo::Repo::open_share(config, share),
            _ => repo::Repo::open(&self.repo),
        }
    }
}

/// `cellar mark …`.
#[derive(clap::Subcommand, Debug)]
pub enum MarkCommand {
    /// Every mark: name, commits, head, creation time.
    List,
    /// A new, empty mark with a fresh salt.
    Create {
        /// Its name.
        name: String,
    },
    /// A new mark with FROM's salt and head.
    Fork {
        /// The mark to fork.
        from: String,
        /// The new mark.
        to: String,
    },
    /// Remove a mark (its data goes at the next `gc`).
    Delete {
        /// The mark.
        name: String,
    },
    /// Rename a mark.
    Rename {
        /// The mark.
        from: String,
        /// Its new name.
        to: String,
    },
}

/// Everything a command can fail with; each prints as one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GotError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Mark(#[from] cellar::marks::MarkError),
    #[error(transparent)]
    Fs(#[from] cellar::fs::FsError),
    #[error(transparent)]
    Commit(#[from] cellar::fs::CommitError),
    #[error(transparent)]
    Host(#[from] cellar::fs::host::HostError),
    #[error(transparent)]
    Snapshot(#[from] cellar::db::snapshot::SnapshotError),
    #[error("{0}")]
    Usage(String),
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("mark {0} moved during the operation; run it again")]
    Raced(String),
    #[error("{0} damaged blob(s) found")]
    Damaged(usize),
    #[error("{path}: {detail}")]
    Setting { path: String, detail: String },
}

impl GotError {
    fn is_mode_conflict(&self) -> bool {
        use cellar::marks::MarkError;
        matches!(
            self,
            GotError::Volume(VolumeError::ModeConflict { .. })
                | GotError::Mark(MarkError::Volume(VolumeError::ModeConflict { .. }))
        )
    }
}

/// Runs one file-tree command.
pub fn run(cmd: GotCommand) -> ExitCode {
    match execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            eprintln!("cellar: error: {line}");
            if e.is_mode_conflict() {
                ExitCode::from(crate::vol::EXIT_MODE_CONFLICT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn execute(cmd: GotCommand) -> Result<(), GotError> {
    use repo::Repo;
    match cmd {
        GotCommand::Init { dir, compression } => repo::init(&dir, &compression),
        GotCommand::Commit { repo, mark, message, reread, jobs, path } => {
            let jobs = jobs.unwrap_or_else(history::default_jobs);
            history::commit(&Repo::open(&repo)?, &mark, &message, &path, reread, jobs)
        }
        GotCommand::Log { repo, mark, limit } => {
            let r = repo.open()?;
            let mark = mark.unwrap_or_else(|| r.default_mark.clone());
            history::log(&r, &mark, limit)
        }
        GotCommand::Ls { repo, target } => history::ls(&repo.open()?, target.as_deref()),
        GotCommand::Cat { repo, target } => history::cat(&repo.open()?, &target),
        GotCommand::Diff { repo, a, b } => history::diff(&Repo::open(&repo)?, &a, &b),
        GotCommand::Checkout { repo, commit, args } => {
            let (spec, dest) = match (commit.as_ref(), args.as_slice()) {
                (None, [dest]) => ("main".to_owned(), dest),
                (Some(c), [dest]) | (None, [c, dest]) => (c.clone(), dest),
                _ => {
                    return Err(GotError::Usage(
                        "give the commit either with --commit or as the first argument".into(),
                    ));
                }
            };
            history::checkout(&Repo::open(&repo)?, &spec, std::path::Path::new(dest))
        }
        GotCommand::Mark { repo, cmd } => marks::mark(&Repo::open(&repo)?, cmd),
        GotCommand::Merge { repo, a, b } => history::merge(&Repo::open(&repo)?, &a, &b),
        GotCommand::Push { repo, remote, mark } => {
            marks::push(&repo.open()?, &Repo::open(&remote)?, &mark)
        }
        GotCommand::Pull { repo, remote, mark, bug } => {
            let _planted = plant(bug.as_deref())?;
            marks::pull(&repo.open()?, &Repo::open(&remote)?, &mark)
        }
        GotCommand::Gc { repo, bug, keep_last, keep_within, keep_newer } => {
            let _planted = plant(bug.as_deref())?;
            let policy = gc::policy(keep_last, keep_within.as_deref(), keep_newer.as_deref())?;
            gc::gc(&repo.open()?, &policy)
        }
        GotCommand::Scrub { repo } => gc::scrub(&repo.open()?),
    }
}

/// Switches on the planted bug `name` for this (the main) thread; refused by a build without
/// the `planted-bugs` feature. Only tests use it, to see their checks fail.
fn plant(name: Option<&str>) -> Result<Option<cellar::bugs::Planted>, GotError> {
    name.map(cellar::bugs::plant).transpose().map_err(|e| GotError::Usage(e.to_string()))
}
