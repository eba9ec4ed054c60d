//! Issue 13's acceptance, as a new user would run it: `cellar sector format` a 1 GiB device,
//! `cellar sector serve` it, 100,000 puts with a flush every 100, `kill -9` the server, serve
//! again: every flushed key reads back (SEC-2, SEC-7); a put after the last flush comes back
//! whole or not at all. Then a clean SIGTERM (which writes the checkpoint, SEC-19) and a restart,
//! timed, that must load it and read every flushed key back. Prints both restart times
//! (crash recovery and clean reopen; `docs/benchmarks-sector.md`).
//!
//! `CELLAR_KILL9_PUTS` overrides the number of puts (default 100,000 in a release build, 15 s
//! here with `fdatasync` ≈ 6.5 ms; 20,000 in a debug build, which `cargo test` in CI runs):
//! `cargo test --release -p cellar-sim --test sector_kill9 -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

mod sector_common;

use cellar::sector::proto::WriteOptions;
use sector_common::{ok, serve};
use std::time::Instant;

const FLUSH_EVERY: u64 = 100;
const AFTER_LAST_FLUSH: u64 = 37;

/// Key `k`'s value: 100..400 bytes, naming its key.
fn value(k: u64) -> Vec<u8> {
    let len = 100 + (k.wrapping_mul(2_654_435_761) % 300) as usize;
    let mut v = vec![(k % 251) as u8; len];
    v[..8].copy_from_slice(&k.to_le_bytes());
    v
}

#[test]
fn flushed_puts_survive_kill_9_and_a_clean_restart_is_quick() {
    let puts: u64 = std::env::var("CELLAR_KILL9_PUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 20_000 } else { 100_000 });
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    let sock = dir.path().join("s.sock");
    ok(&["format", "--path", dev.to_str().unwrap(), "--size", "1GiB"], b"");

    let server = serve(&dev, &sock);
    let mut c = server.client();
    let started = Instant::now();
    for k in 0..puts {
        c.write(k, value(k), WriteOptions::default()).unwrap();
        if (k + 1) % FLUSH_EVERY == 0 {
            c.flush().unwrap();
        }
    }
    let flushed = puts / FLUSH_EVERY * FLUSH_EVERY;
    for k in puts..puts + AFTER_LAST_FLUSH {
        c.write(k, value(k), WriteOptions::default()).unwrap();
    }
    let load = started.elapsed();
    drop(c);
    drop(server); // SIGKILL (std's `Child::kill`), then reaped

    let t = Instant::now();
    let server = serve(&dev, &sock);
    let crash_restart = t.elapsed();
    let mut c = server.client();
    for k in 0..flushed {
        let got = c.read(k).unwrap().map(|r| r.value);
        assert_eq!(got, Some(value(k)), "flushed key {k} after kill -9");
    }
    for k in flushed..puts + AFTER_LAST_FLUSH {
        let got = c.read(k).unwrap().map(|r| r.value);
        assert!(got.is_none() || got == Some(value(k)), "unflushed key {k}: whole or absent");
    }
    drop(c);
    let (status, stderr) = server.stop();
    assert!(status.success(), "clean stop: {status:?} {stderr}");
    assert!(stderr.contains("written"), "SEC-19: SIGTERM writes the checkpoint: {stderr}");

    let t = Instant::now();
    let server = serve(&dev, &sock);
    let clean_restart = t.elapsed();
    let mut c = server.client();
    for k in 0..flushed {
        let got = c.read(k).unwrap().map(|r| r.value);
        assert_eq!(got, Some(value(k)), "flushed key {k} after SIGTERM and the checkpoint");
    }
    drop(c);
    let (status, stderr) = server.stop();
    assert!(status.success());
    assert!(
        stderr.contains("loaded the clean-shutdown checkpoint"),
        "SEC-19: the clean restart loads the checkpoint instead of scanning: {stderr}"
    );
    println!(
        "{puts} puts (flush every {FLUSH_EVERY}) in {:.2} s; restart after kill -9 {:.0} ms, \
         after SIGTERM {:.0} ms (1 GiB device)",
        load.as_secs_f64(),
        crash_restart.as_secs_f64() * 1000.0,
        clean_restart.as_secs_f64() * 1000.0
    );
}
