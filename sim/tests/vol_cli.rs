//! `cellar vol` end to end, as separate processes (specs/volume.md VOL-1, VOL-2, VOL-4).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::env::OsEntropy;
use cellar::storage::files::FileTreeReach;
use cellar::storage::volume::{DirVolume, check_vol1};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

fn cellar(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cellar"));
    c.args(args);
    c
}

fn run(args: &[&str]) -> Output {
    cellar(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so the test needs no randomness source.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put_and_publish(dir: &str, file: &Path) -> String {
    let r = ok(&["vol", "put", dir, path(file)]).trim().to_owned();
    ok(&["vol", "publish", dir, &r]);
    r
}

#[test]
fn ten_mib_round_trip_and_corruption_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let file = tmp.path().join("data");
    let data = pattern(10 * 1024 * 1024 + 17, 7);
    std::fs::write(&file, &data).unwrap();
    ok(&["vol", "init", path(&a)]);
    let r = put_and_publish(path(&a), &file);
    let out = run(&["vol", "get", path(&a), &r]);
    assert!(out.status.success());
    assert!(out.stdout == data, "byte-for-byte round trip");
    assert!(ok(&["vol", "show", path(&a)]).contains(&r));

    // Flip one byte of every blob file in turn: each flip must make `get` fail.
    let mut blobs = Vec::new();
    for fan in std::fs::read_dir(a.join("store")).unwrap() {
        for f in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            blobs.push(f.unwrap().path());
        }
    }
    assert!(blobs.len() >= 4, "10 MiB spans several blobs plus an index");
    for blob in &blobs {
        let orig = std::fs::read(blob).unwrap();
        let mut bad = orig.clone();
        let i = bad.len() / 2;
        bad[i] ^= 0x01;
        std::fs::write(blob, &bad).unwrap();
        let out = run(&["vol", "get", path(&a), &r]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "corrupt blob must not be returned"
        );
        assert!(err.contains("corrupt"), "error names the corruption: {err}");
        std::fs::write(blob, &orig).unwrap();
    }
}

#[test]
fn bad_input_gets_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let missing = tmp.path().join("missing");
    let out = run(&["vol", "show", path(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    ok(&["vol", "init", path(&a)]);
    let out = run(&["vol", "init", path(&a)]);
    assert_eq!(out.status.code(), Some(1), "re-init refused");
    for bad in ["", "nonsense", "cellar:ref:v1:00"] {
        let out = run(&["vol", "get", path(&a), bad]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("malformed ref"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}

/// VOL-4: a holder that dies (SIGKILL) releases its mode; while alive it blocks the other mode.
#[test]
fn killed_holder_does_not_block_the_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    ok(&["vol", "init", path(&b)]);
    // `put -` holds Expand while it waits for standard input. Our probing cleanups may win the
    // race to the volume before the holder does; then the holder exits 3 and is started again.
    let spawn_holder = || {
        let mut h = cellar(&["vol", "put", path(&b), "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        h.stdin.as_mut().unwrap().write_all(b"partial").unwrap();
        h
    };
    let mut holder = spawn_holder();
    let mut conflict = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Some(status) = holder.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut holder.stderr.take().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(3), "the holder failed: {err}");
            holder = spawn_holder();
        }
        let out = run(&["vol", "cleanup", path(&b)]);
        if out.status.code() == Some(3) {
            conflict = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(conflict, "VOL-2: cleanup refused while the put holds expand");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = ok(&["vol", "cleanup", path(&b)]);
    assert!(out.contains("deleted"), "VOL-4: the dead holder's mode was released");
}

/// Syncs and cleanups as separate, concurrent processes, many rounds; VOL-1 after every round.
#[test]
fn concurrent_sync_and_cleanup_processes_keep_vol1() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&["vol", "init", path(&a)]);
    ok(&["vol", "init", path(&b)]);
    let rounds = 24;
    let (mut conflicts, mut syncs, mut cleanups) = (0, 0, 0);
    for round in 0..rounds {
        let file = tmp.path().join(format!("f{round}"));
        std::fs::write(&file, pattern(1000 + round * 37, round as u64 + 1)).unwrap();
        put_and_publish(path(&a), &file);
        // Garbage in b, so the cleanup has something to delete.
        ok(&["vol", "put", path(&b), path(&file)]);
        // Alternate who starts first, so both sides win some rounds.
        let sync_cmd = ["vol", "sync", path(&a), path(&b)];
        let cleanup_cmd = ["vol", "cleanup", path(&b), ""];
        let order = if round % 2 == 0 {
            [&sync_cmd[..], &cleanup_cmd[..3], &sync_cmd[..]]
        } else {
            [&cleanup_cmd[..3], &sync_cmd[..], &sync_cmd[..]]
        };
        let mut children =
            order.map(|args| (args[1], cellar(args).stdout(Stdio::null()).spawn().unwrap()));
        for (i, (what, child)) in children.iter_mut().enumerate() {
            match child.wait().unwrap().code() {
                Some(0) if *what == "cleanup" => cleanups += 1,
                Some(0) => syncs += 1,
                Some(3) => conflicts += 1,
                other => panic!("round {round}: process {i} exited {other:?}"),
            }
        }
        let vol = DirVolume::open(&b, Arc::new(OsEntropy)).unwrap();
        assert_eq!(check_vol1(&vol.volume, &FileTreeReach).unwrap(), None, "VOL-1, round {round}");
    }
    // Whatever the races did, both operations still work and VOL-1 still holds afterwards.
    ok(&["vol", "sync", path(&a), path(&b)]);
    ok(&["vol", "cleanup", path(&b)]);
    let vol = DirVolume::open(&b, Arc::new(OsEntropy)).unwrap();
    assert_eq!(check_vol1(&vol.volume, &FileTreeReach).unwrap(), None, "VOL-1 after the rounds");
    assert!(syncs + cleanups > 0);
    eprintln!("{rounds} rounds: {syncs} syncs, {cleanups} cleanups, {conflicts} mode conflicts");
}
