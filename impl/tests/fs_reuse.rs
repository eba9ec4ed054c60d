//! FS-26: a commit against its parent takes unchanged files from the parent's tree unread, and
//! reads every file whose size, mode, owner or mtime changed. The result always holds exactly
//! the host's bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::fs::host::{export_tree, import_tree_since};
use cellar::fs::{ChunkerParams, Fs, FsPath};
use cellar::storage::store::MemStore;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

const SALT: [u8; 32] = [4; 32];
const TINY: ChunkerParams = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };

fn write(dir: &Path, name: &str, data: &[u8], mtime: SystemTime) {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
}

fn same_bytes(fs: &Fs<'_>, root: &cellar::storage::refs::Ref, host: &Path) {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x");
    export_tree(fs, root, &FsPath::root(), &dest).unwrap();
    for e in std::fs::read_dir(host).unwrap() {
        let e = e.unwrap();
        let want = std::fs::read(e.path()).unwrap();
        let got = std::fs::read(dest.join(e.file_name())).unwrap();
        assert_eq!(got, want, "{:?}", e.file_name());
    }
}

#[test]
fn unchanged_files_are_reused_and_changed_ones_read_fs26() {
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let src = tempfile::tempdir().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for i in 0..6 {
        write(src.path(), &format!("f{i}"), &vec![i as u8; 300 + i * 37], t0);
    }
    let (first, rep) = import_tree_since(&fs, src.path(), None, 1, &mut |_| {}).unwrap();
    assert_eq!((rep.files, rep.reused), (6, 0));
    // f1: new bytes, same size, new mtime. f2: one byte longer, mtime put back as it was (a
    // size change alone must be seen). f3: same bytes, mtime changed (read again; same bytes).
    write(src.path(), "f1", &vec![0xee; 300 + 37], t0 + Duration::from_secs(5));
    write(src.path(), "f2", &vec![2u8; 300 + 2 * 37 + 1], t0);
    write(src.path(), "f3", &vec![3u8; 300 + 3 * 37], t0 + Duration::from_secs(9));
    // f4: only its mode changed (chmod leaves the mtime): read again, the new mode recorded.
    let f4 = src.path().join("f4");
    std::fs::set_permissions(&f4, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (second, rep) = import_tree_since(&fs, src.path(), Some(&first), 1, &mut |_| {}).unwrap();
    assert_eq!((rep.files, rep.reused), (6, 2), "f0, f5 unchanged");
    same_bytes(&fs, &second, src.path());
    let info = fs.lookup(&second, &FsPath::new("/f4").unwrap()).unwrap().unwrap();
    assert_eq!(info.attrs().mode & 0o777, 0o600, "f4's new mode");
    // Nothing changed: everything reused, the same contents.
    let (third, rep) = import_tree_since(&fs, src.path(), Some(&second), 1, &mut |_| {}).unwrap();
    assert_eq!(rep.reused, 6);
    same_bytes(&fs, &third, src.path());
}

#[test]
#[cfg(feature = "planted-bugs")]
fn planted_reuse_ignores_size_is_caught_fs26() {
    let _bug = cellar::bugs::plant("fs:reuse-ignores-size").unwrap();
    let caught = std::panic::catch_unwind(unchanged_files_are_reused_and_changed_ones_read_fs26);
    assert!(caught.is_err(), "a file whose size changed was taken from the parent unread");
}
