//! `cellar demo`: a short tour of the storage layer (the main job is `cellar verify`): two
//! volumes in a scratch directory: put a file, publish, sync, clean up, read it back, and check
//! VOL-1 on both sides.

use cellar::env::OsEntropy;
use cellar::storage::files::{self, FileTreeReach};
use cellar::storage::volume::{self, DirVolume, Mode, SyncOutcome, check_vol1};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `cellar demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Size of the demo file in bytes (default 9 MiB: three blobs and an index).
    #[arg(long, default_value_t = 9 * 1024 * 1024)]
    size_bytes: usize,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> ExitCode {
    match demo(args.size_bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar: demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(size_bytes: usize) -> Result<(), Box<dyn std::error::Error>> {
    let scratch = std::env::temp_dir().join(format!("cellar-demo-{}", std::process::id()));
    let result = demo_in(&scratch, size_bytes);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn demo_in(scratch: &std::path::Path, size_bytes: usize) -> Result<(), Box<dyn std::error::Error>> {
    let entropy = Arc::new(OsEntropy);
    let a = DirVolume::init(&scratch.join("a"), entropy.clone())?;
    let b = DirVolume::init(&scratch.join("b"), entropy)?;
    println!("1. created volumes a and b in {}", scratch.display());

    let data: Vec<u8> =
        (0..size_bytes).map(|i| (i as u32).wrapping_mul(2654435761) as u8).collect();
    let root = {
        // Posting is expansion too: hold Expand so no cleanup runs between put and publish.
        let _hold = a.volume.modes.begin(Mode::Expand)?;
        let r = files::put(a.volume.store.as_ref(), &a.secret.ref_salt(), &mut data.as_slice())?;
        if !a.volume.publish(&[], &r.to_bytes(), &FileTreeReach)?.swapped {
            return Err("volume a's cell changed during the demo".into());
        }
        r
    };
    println!("2. put {size_bytes} bytes into a and published {root}");

    b.volume.store.post(b"an unreachable blob")?;
    let decide = |s: &[u8], d: &[u8]| (s != d).then(|| s.to_vec());
    let out = volume::sync(&a.volume, &b.volume, Some(&FileTreeReach), &decide)?;
    let SyncOutcome::Published { blobs_copied, .. } = out else {
        return Err("sync declined".into());
    };
    println!("3. synced a -> b: copied {blobs_copied} blobs, published");

    let cleaned = volume::cleanup(&b.volume, &FileTreeReach)?;
    println!("4. cleaned b: kept {}, deleted {}", cleaned.blobs_kept, cleaned.blobs_deleted);

    let mut back = Vec::new();
    files::get(b.volume.store.as_ref(), &root, &mut back)?;
    if back != data {
        return Err("read-back differs from what was put".into());
    }
    for (name, v) in [("a", &a), ("b", &b)] {
        if let Some(h) = check_vol1(&v.volume, &FileTreeReach)? {
            return Err(format!("VOL-1 violated on {name}: {h} missing").into());
        }
    }
    println!("5. read back {} bytes from b: identical; VOL-1 holds on a and b", back.len());
    Ok(())
}
