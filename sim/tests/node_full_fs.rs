//! A `cellar node` whose `--data` directory is on a small tmpfs that fills up in the middle of
//! a commit (issue 16, the gossip node's data directory): `cellar kv commit` fails with one
//! line naming a path under the data directory and saying the device is full, the node's cell
//! keeps its old head (byte for byte) and the node keeps serving it, no temporary file is left
//! once the next commit succeeds, and the same commit succeeds once space is freed.
//!
//! `kv set` only edits the node's working tree in memory; `kv commit` is the request that
//! writes blobs to `DATA/store` and the new head to `DATA/cell`, so it is the one that meets
//! the full file system. Needs root to mount the tmpfs, like `impl/tests/full_fs.rs`: without
//! it the test prints one `skipping` line and passes; `.ci/run` runs it as root and fails if
//! it skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(test: &str, options: &str) -> Option<Tmpfs> {
        if !cfg!(target_os = "linux") {
            println!("skipping {test}: tmpfs mounts need Linux");
            skip_outside_ci(test);
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("cellar-node-fs-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out =
            Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(&dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr);
                println!("skipping {test}: mount -t tmpfs not permitted ({})", why.trim());
                let _ = std::fs::remove_dir(&dir);
                skip_outside_ci(test);
                None
            }
            Err(e) => {
                println!("skipping {test}: cannot run mount ({e})");
                let _ = std::fs::remove_dir(&dir);
                skip_outside_ci(test);
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fills the file system holding `dir` with `dir/filler`, then frees `leave_bytes` of it.
fn fill(dir: &Path, leave_bytes: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => size += n as u64,
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    f.set_len(size.saturating_sub(leave_bytes)).unwrap();
    f.sync_all().unwrap();
    path
}

/// Every file under `dir` whose name marks it temporary.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            out.extend(temp_files(&path));
        } else if name.starts_with(".tmp") || name.ends_with(".tmp") || name.contains(".tmp.") {
            out.push(path);
        }
    }
    out
}

fn kv(addr: &str, secret: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["kv", "--node", addr])
        .args(args)
        .env("CELLAR_SECRET", secret)
        .output()
        .unwrap()
}

fn kv_ok(addr: &str, secret: &str, args: &[&str]) -> String {
    let out = kv(addr, secret, args);
    assert!(out.status.success(), "kv {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A 16 KB value (the largest `kv set` takes), different for every `i`.
fn big(i: usize) -> String {
    (0..16_000).map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8)).collect()
}

#[test]
fn node_data_directory_full() {
    let Some(fs) = Tmpfs::mount("node_data", "size=4m") else { return };
    let outside = tempfile::tempdir().unwrap();
    let secret = hex::encode([0x3c; 32]);
    let secret_file = outside.path().join("group.secret");
    std::fs::write(&secret_file, &secret).unwrap();
    let data = fs.dir.join("n0");
    let addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let _node = Node(
        Command::new(env!("CARGO_BIN_EXE_cellar"))
            .args(["node", "--id", "0", "--listen", &addr, "--data"])
            .arg(&data)
            .arg("--secret-file")
            .arg(&secret_file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while kv(&addr, &secret, &["status"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the node never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    kv_ok(&addr, &secret, &["set", "/a", "first"]);
    kv_ok(&addr, &secret, &["commit", "one"]);
    let cell = data.join("cell");
    let head_before = std::fs::read(&cell).unwrap();

    // 12 values of 16 KB are ~190 KB of blobs; 64 KiB are left, so the commit runs out of
    // space part way through writing them.
    let filler = fill(&fs.dir, 64 * 1024);
    for i in 0..12 {
        kv_ok(&addr, &secret, &["set", &format!("/big/{i}"), &big(i)]);
    }
    let out = kv(&addr, &secret, &["commit", "two"]);
    assert!(!out.status.success(), "a commit on a full data directory must fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(&data.display().to_string()), "names a path under --data: {err}");
    assert!(err.contains("No space left on device"), "says the device is full: {err}");
    assert_eq!(std::fs::read(&cell).unwrap(), head_before, "the cell keeps its old head");
    assert_eq!(kv_ok(&addr, &secret, &["get", "/a"]).trim(), "first");
    let log = kv_ok(&addr, &secret, &["log"]);
    assert_eq!(log.lines().count(), 1, "still one snapshot: {log}");

    // Space freed: the same commit (the working tree was kept) succeeds and is published.
    std::fs::remove_file(filler).unwrap();
    kv_ok(&addr, &secret, &["commit", "two"]);
    assert_ne!(std::fs::read(&cell).unwrap(), head_before, "the new head is in the cell");
    for i in [0, 11] {
        assert_eq!(kv_ok(&addr, &secret, &["get", &format!("/big/{i}")]).trim(), big(i));
    }
    assert_eq!(temp_files(&data), Vec::<PathBuf>::new(), "no temporary file left behind");
    assert_eq!(kv_ok(&addr, &secret, &["log"]).lines().count(), 2);
}

/// A skipped full-disk test passes without checking anything: acceptable on a developer's
/// machine, never in CI (`.ci/run` sets `CI` and runs as root, so the mount must work there).
fn skip_outside_ci(test: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI is set but {test} could not mount a tmpfs");
}
