//! Issue 16's acceptance "as a user would" (SEC-16, `specs/sector.md` §5.5), against the real
//! binary: `cellar sector format` a 32 MiB device, `cellar sector serve` it, write 4 KB values
//! until the server answers `NoSpace`, delete every key (every delete must succeed), and within
//! a few seconds new writes succeed again; then the same with the server restarted (SIGTERM,
//! start again) between the fill and the deletes and between the deletes and the writes.
//!
//! The ~7,600 writes and deletes go through the library client over the server's socket (one
//! process per request would take minutes in debug builds); format, `stat`, one `put` and one
//! `delete` go through the CLI, as a script would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::proto::{ErrorKind, SectorClient, WriteOptions};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

/// A "4 KB" value: one 4 KiB sector with the record header.
const VALUE_BYTES: usize = 4000;
/// How long a drained device may take to accept writes again (the background compactor).
const RECOVERY_MAX: Duration = Duration::from_secs(10);

mod sector_common;
use sector_common::{Served, cellar, ok, serve};

/// SIGTERM; the server must flush and exit 0 (PROTO-10), a full device included.
fn terminate(server: Served) {
    let (status, err) = server.stop();
    assert!(status.success(), "serve exit on a full device: {err}");
}

fn value(key: u64, round: u8) -> Vec<u8> {
    let mut v = vec![round ^ (key as u8); VALUE_BYTES];
    v[..8].copy_from_slice(&key.to_le_bytes());
    v
}

/// Writes keys `0..` until `NoSpace`; returns how many were written. Any other error fails.
fn fill(c: &mut SectorClient, round: u8) -> u64 {
    for key in 0.. {
        match c.write(key, value(key, round), WriteOptions::default()) {
            Ok(_) => {}
            Err(e) if e.server_kind() == Some(ErrorKind::NoSpace) => {
                c.flush().unwrap();
                return key;
            }
            Err(e) => panic!("write {key}: {e}"),
        }
    }
    unreachable!()
}

/// Deletes keys `0..n - 1` (the caller deleted `n - 1` through the CLI), each of which must
/// succeed and must have existed (SEC-16).
fn drain(c: &mut SectorClient, n: u64) {
    for key in 0..n - 1 {
        match c.delete(key, None, false) {
            Ok(existed) => assert!(existed, "key {key} was written, so it exists"),
            Err(e) => panic!("SEC-16: delete of key {key} of {n} refused on a full device: {e}"),
        }
    }
    c.flush().unwrap();
}

/// New writes must succeed again within [`RECOVERY_MAX`] (the compactor reclaims the drained
/// zones in the background); then a quarter of the device is written back and read.
fn writes_accepted_again(c: &mut SectorClient, base: u64) -> Duration {
    let started = Instant::now();
    loop {
        match c.write(base, value(base, 9), WriteOptions::default()) {
            Ok(_) => break,
            Err(e) if e.server_kind() == Some(ErrorKind::NoSpace) => {
                assert!(started.elapsed() < RECOVERY_MAX, "still NoSpace after draining: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("write after draining: {e}"),
        }
    }
    let took = started.elapsed();
    for key in base..base + 2000 {
        c.write(key, value(key, 9), WriteOptions::default()).unwrap();
    }
    c.flush().unwrap();
    assert_eq!(c.read(base + 1999).unwrap().unwrap().value, value(base + 1999, 9));
    took
}

fn format(dir: &Path) -> (PathBuf, PathBuf) {
    let dev = dir.join("dev.img");
    let out = ok(&["format", "--path", dev.to_str().unwrap(), "--size", "32MiB"], b"");
    assert!(out.contains("formatted"), "{out}");
    (dev, dir.join("s.sock"))
}

#[test]
fn full_device_drains_and_takes_writes_again() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, socket) = format(dir.path());
    let srv = serve(&dev, &socket);
    let mut c = srv.client();
    let n = fill(&mut c, 1);
    assert!(n > 5000, "a 32 MiB device holds more than 5000 values of 4 KB, took {n}");
    // The CLI sees the same refusal, as one line naming it.
    let out = cellar(&["put", "--socket", srv.sock(), &n.to_string()], &value(n, 1));
    assert!(!out.status.success(), "a write to a full device is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("space"), "{err}");
    // The last key deleted through the CLI, the rest through the client.
    ok(&["delete", "--socket", srv.sock(), &(n - 1).to_string()], b"");
    drain(&mut c, n);
    let took = writes_accepted_again(&mut c, 1_000_000);
    eprintln!("{n} values written until NoSpace; writes accepted again {took:?} after draining");
    let stat = ok(&["stat", "--socket", srv.sock()], b"");
    assert!(stat.contains("keys 2000"), "{stat}");
    terminate(srv);
}

#[test]
fn full_device_drains_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (dev, socket) = format(dir.path());
    let srv = serve(&dev, &socket);
    let n = fill(&mut srv.client(), 2);
    terminate(srv);
    // Recovery of a full device, then every delete.
    let srv = serve(&dev, &socket);
    assert!(ok(&["stat", "--socket", srv.sock()], b"").contains(&format!("keys {n}")));
    ok(&["delete", "--socket", srv.sock(), &(n - 1).to_string()], b"");
    drain(&mut srv.client(), n);
    terminate(srv);
    let srv = serve(&dev, &socket);
    let took = writes_accepted_again(&mut srv.client(), 1_000_000);
    eprintln!("{n} values; after two restarts writes accepted again within {took:?}");
    ok(&["put", "--socket", srv.sock(), "7", "--flush"], b"after the restarts");
    assert_eq!(ok(&["get", "--socket", srv.sock(), "7"], b""), "after the restarts");
    terminate(srv);
}
