//! Helpers shared by the adapter tests (`adapters.rs`, `adapters_links.rs`): in-memory mark
//! volumes, shares over them, and reads of what a commit published.
#![allow(dead_code, reason = "each test file uses a different subset")]

use cellar::adapters::{Caller, ShareFs, ShareOptions, open_mark};
use cellar::db::merge::NodeId;
use cellar::env::Clock;
use cellar::fs::{Compression, Fs, FsPath, History};
use cellar::marks::{MarkInfo, MarkName, VolumeSpace};
use cellar::storage::cell::MemCell;
use cellar::storage::store::{ALL_HASHES, MemStore, Store};
use cellar::storage::volume::Volume;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const SALT: [u8; 32] = [7; 32];
pub const SPACE_SALT: [u8; 32] = [9; 32];
pub const ME: Caller = Caller { uid: 1000, gid: 1000 };

pub struct TickClock(pub AtomicU64);
impl Clock for TickClock {
    fn now_ms(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1_700_000_000_000
    }
}

/// A space volume with the mark `main`'s volume, as `cellar mount` opens a share (ADP-1).
pub fn volume() -> Volume {
    let space_vol = Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new()));
    let space = VolumeSpace::new(space_vol, SPACE_SALT);
    mark_volume(&space, "main")
}

pub fn mark_volume(space: &VolumeSpace, mark: &str) -> Volume {
    let name = MarkName::new(mark).unwrap();
    let opened = open_mark(space, &name, &MarkInfo::new(SALT, 1), false).unwrap();
    assert_eq!(opened.info.salt, SALT);
    opened.volume
}

pub fn share(vol: &Volume, dir: &tempfile::TempDir, name: &str, author: u32) -> ShareFs {
    share_with(vol, dir, name, author, Compression::Zstd)
}

pub fn share_with(
    vol: &Volume,
    dir: &tempfile::TempDir,
    name: &str,
    author: u32,
    compression: Compression,
) -> ShareFs {
    let opts = ShareOptions {
        read_only: false,
        spill_dir: dir.path().join(name),
        author: NodeId(author),
        clock: Arc::new(TickClock(AtomicU64::new(0))),
        root_owner: (0, 0),
        label: format!("test {name}"),
        refresh_ms: 0,
        compression,
    };
    ShareFs::open(vol.clone(), SALT, opts).unwrap()
}

pub fn blobs(vol: &Volume) -> usize {
    vol.store.list(ALL_HASHES, usize::MAX).unwrap().len()
}

/// Reads `path` from the head in the mark's value, as `cellar cat` does.
pub fn committed(vol: &Volume, path: &str) -> Option<Vec<u8>> {
    let head = History::decode(&vol.cell.read().unwrap()).unwrap().head?;
    let fs = Fs::new(vol.store.as_ref(), SALT);
    let tree = fs.tree_of(&head).unwrap();
    let p = FsPath::new(path).unwrap();
    let info = fs.lookup(&tree, &p).unwrap()?;
    Some(fs.read(&tree, &p, 0, info.size).unwrap())
}

pub fn file(s: &ShareFs, parent: u64, name: &str, data: &[u8]) -> u64 {
    let a = s.create(parent, name.as_bytes(), 0o644, ME).unwrap();
    assert_eq!(s.write(a.ino, 0, data).unwrap() as usize, data.len());
    a.ino
}
