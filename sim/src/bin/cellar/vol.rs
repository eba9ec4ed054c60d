//! `cellar vol ...`: volumes in directories (`cellar::storage::volume::DirVolume`).
//!
//! Values are file trees (`cellar::storage::files`): `put` posts a file and prints its root ref,
//! `publish` points the cell at a ref, `get` reads a ref back, `sync` mirrors one volume's value
//! into another, `cleanup` deletes blobs the cell cannot reach. Every failure is one line on
//! stderr and a non-zero exit status: 1 for errors, 3 for a mode conflict (retry later).

use cellar::env::OsEntropy;
use cellar::storage::files::{self, FileTreeReach};
use cellar::storage::refs::Ref;
use cellar::storage::store::list_all;
use cellar::storage::volume::{self, DirVolume, Mode, SyncOutcome, VolumeError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status for a mode conflict: the operation may succeed if retried later.
pub const EXIT_MODE_CONFLICT: u8 = 3;

/// Subcommands of `cellar vol`.
#[derive(clap::Subcommand, Debug)]
pub enum VolCommand {
    /// Create a new, empty volume in DIR.
    Init {
        /// Directory to create the volume in (created if absent; must not hold a volume).
        dir: PathBuf,
    },
    /// Post FILE's contents encrypted into DIR's store and print the root ref (unpublished:
    /// a cleanup deletes it unless it is published).
    Put {
        /// The volume.
        dir: PathBuf,
        /// The file to store (`-` for standard input).
        file: PathBuf,
    },
    /// Write the plaintext of REF to standard output (verified before any byte is written).
    Get {
        /// The volume.
        dir: PathBuf,
        /// A ref, as printed by `put`.
        r#ref: String,
    },
    /// Point DIR's cell at REF (compare-and-swap); every blob REF needs must be present.
    Publish {
        /// The volume.
        dir: PathBuf,
        /// A ref, as printed by `put`.
        r#ref: String,
    },
    /// Show the cell value, the blob count and the bytes stored.
    Show {
        /// The volume.
        dir: PathBuf,
    },
    /// Make DST's store hold what SRC's value needs, then set DST's cell to SRC's value.
    Sync {
        /// Source volume.
        src: PathBuf,
        /// Destination volume.
        dst: PathBuf,
    },
    /// Delete every blob of DIR that its cell value cannot reach.
    Cleanup {
        /// The volume.
        dir: PathBuf,
    },
}

/// Runs a `cellar vol` subcommand.
pub fn run(cmd: VolCommand) -> ExitCode {
    match execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar: error: {e}");
            match e {
                CliError::Volume(VolumeError::ModeConflict { .. }) => {
                    ExitCode::from(EXIT_MODE_CONFLICT)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    File(#[from] files::FileError),
    #[error("malformed ref {input:?}: {detail}")]
    BadRef { input: String, detail: String },
    #[error("{path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("cell changed concurrently; publish again")]
    Raced,
}

fn open(dir: &Path) -> Result<DirVolume, CliError> {
    Ok(DirVolume::open(dir, Arc::new(OsEntropy))?)
}

fn parse_ref(s: &str) -> Result<Ref, CliError> {
    s.trim()
        .parse::<Ref>()
        .map_err(|e| CliError::BadRef { input: s.to_owned(), detail: e.to_string() })
}

fn execute(cmd: VolCommand) -> Result<(), CliError> {
    match cmd {
        VolCommand::Init { dir } => {
            DirVolume::init(&dir, Arc::new(OsEntropy))?;
            println!("initialised volume {}", dir.display());
        }
        VolCommand::Put { dir, file } => println!("{}", put(&open(&dir)?, &file)?),
        VolCommand::Get { dir, r#ref } => get(&open(&dir)?, &parse_ref(&r#ref)?)?,
        VolCommand::Publish { dir, r#ref } => publish(&open(&dir)?, &parse_ref(&r#ref)?)?,
        VolCommand::Show { dir } => show(&open(&dir)?)?,
        VolCommand::Sync { src, dst } => sync(&open(&src)?, &open(&dst)?)?,
        VolCommand::Cleanup { dir } => {
            let out = volume::cleanup(&open(&dir)?.volume, &FileTreeReach)?;
            println!("kept {} blobs, deleted {} blobs", out.blobs_kept, out.blobs_deleted);
        }
    }
    Ok(())
}

fn put(vol: &DirVolume, file: &Path) -> Result<Ref, CliError> {
    // Posting blobs is expansion: a concurrent cleanup could delete them mid-put (VOL-2).
    let _hold = vol.volume.modes.begin(Mode::Expand)?;
    let input_err = |source| CliError::Input { path: file.to_path_buf(), source };
    let mut input: Box<dyn std::io::Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(file).map_err(input_err)?))
    };
    let salt = vol.secret.ref_salt();
    Ok(files::put(vol.volume.store.as_ref(), &salt, &mut input)?)
}

fn get(vol: &DirVolume, r: &Ref) -> Result<(), CliError> {
    // Buffer and verify everything first, so a corrupt blob never yields partial output.
    let mut buf = Vec::new();
    files::get(vol.volume.store.as_ref(), r, &mut buf)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&buf).and_then(|()| out.flush()).map_err(CliError::Output)
}

fn publish(vol: &DirVolume, r: &Ref) -> Result<(), CliError> {
    let v = &vol.volume;
    let current = v.cell.read().map_err(VolumeError::from)?;
    // VOL-2 and VOL-3 are checked by the volume: Expand held, every blob present.
    let outcome = v.publish(&current, &r.to_bytes(), &FileTreeReach)?;
    if !outcome.swapped {
        return Err(CliError::Raced);
    }
    println!("published {r}");
    Ok(())
}

fn describe(value: &[u8]) -> String {
    if value.is_empty() {
        return "(empty)".into();
    }
    match Ref::from_bytes(value) {
        Ok(r) => r.to_string(),
        Err(_) => format!("(not a ref: {} bytes)", value.len()),
    }
}

fn show(vol: &DirVolume) -> Result<(), CliError> {
    let v = &vol.volume;
    let value = v.cell.read().map_err(VolumeError::from)?;
    let hashes = list_all(v.store.as_ref()).map_err(VolumeError::from)?;
    let mut bytes = 0u64;
    let mut unreadable = 0u64;
    for h in &hashes {
        match v.store.get(h) {
            Ok(b) => bytes += b.len() as u64,
            Err(_) => unreadable += 1,
        }
    }
    println!("volume: {}", vol.dir.display());
    println!("cell:   {}", describe(&value));
    println!("blobs:  {}", hashes.len());
    println!("bytes:  {bytes}");
    if unreadable > 0 {
        println!("corrupt or unreadable blobs: {unreadable}");
    }
    Ok(())
}

fn sync(src: &DirVolume, dst: &DirVolume) -> Result<(), CliError> {
    // Mirror: publish the source value unless the destination already holds it.
    let decide = |s: &[u8], d: &[u8]| (s != d).then(|| s.to_vec());
    let out = volume::sync(&src.volume, &dst.volume, Some(&FileTreeReach), &decide)?;
    match out {
        SyncOutcome::Published { value, blobs_copied } => {
            println!("copied {blobs_copied} blobs; published {}", describe(&value));
        }
        SyncOutcome::Declined { blobs_copied } => {
            println!("copied {blobs_copied} blobs; destination already up to date");
        }
    }
    Ok(())
}
