//! Load test of a real `cellar sector serve` (issue 16, PROTO-9/PROTO-13 under load): 64
//! concurrent clients over the Unix socket (loopback only), each with its own 32 keys, mixing
//! reads (60%), writes (30%) and flushes (10%) of values of 100..4000 bytes for a bounded time.
//! Every read is checked against the value the client last wrote to that key (each client's
//! requests are sequential, so it must see its own writes), and at the end every key is read
//! back once more. Prints throughput, p50/p99 latency per operation and the server's peak RSS
//! (`VmHWM`).
//!
//! Runs for `CELLAR_LOAD_SECS` seconds (default 3, which `cargo test` and CI use). The figures
//! in `docs/benchmarks-sector.md` come from:
//! `CELLAR_LOAD_SECS=20 cargo test --release -p cellar-sim --test sector_load -- --nocapture`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::proto::{SectorClient, WriteOptions};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cellar");
const CLIENTS: u64 = 64;
const KEYS_PER_CLIENT: u64 = 32;
/// Bound on the run, whatever `CELLAR_LOAD_SECS` says.
const SECS_MAX: u64 = 120;

struct Served(Child);
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Op {
    Read,
    Write,
    Flush,
}

/// xorshift64*: each client's own deterministic sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn value(key: u64, n: u64, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| (i as u64 ^ n ^ key) as u8).collect();
    v[..8].copy_from_slice(&n.to_le_bytes());
    v
}

/// One client's run: latencies (µs) per operation; panics on a wrong value.
fn client(socket: &Path, id: u64, until: Instant) -> Vec<(Op, u64)> {
    let mut c = SectorClient::connect(socket).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    let mut last: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut lat = Vec::new();
    let mut n = 0u64;
    while Instant::now() < until {
        let key = id * 1000 + rng.next() % KEYS_PER_CLIENT;
        let roll = rng.next() % 10;
        let started = Instant::now();
        let op = if roll < 6 {
            let got = c.read(key).unwrap().map(|r| r.value);
            assert_eq!(got.as_ref(), last.get(&key), "client {id} key {key}: read after write");
            Op::Read
        } else if roll < 9 {
            n += 1;
            let v = value(key, n, 100 + (rng.next() % 3900) as usize);
            c.write(key, v.clone(), WriteOptions::default()).unwrap();
            last.insert(key, v);
            Op::Write
        } else {
            c.flush().unwrap();
            Op::Flush
        };
        lat.push((op, started.elapsed().as_micros() as u64));
    }
    c.flush().unwrap();
    for (key, v) in &last {
        assert_eq!(c.read(*key).unwrap().unwrap().value, *v, "client {id} key {key} at the end");
    }
    lat
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn kib(status: &str, field: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn sector_server_under_64_clients() {
    let secs: u64 =
        std::env::var("CELLAR_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let secs = secs.clamp(1, SECS_MAX);
    let dir = tempfile::tempdir().unwrap();
    let (dev, socket) = (dir.path().join("dev.img"), dir.path().join("s.sock"));
    let out = Command::new(BIN)
        .args(["sector", "format", "--size", "256MiB", "--path"])
        .arg(&dev)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = Served(
        Command::new(BIN)
            .args(["sector", "serve", "--path"])
            .arg(&dev)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while SectorClient::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let socket = socket.clone();
            std::thread::spawn(move || client(&socket, id, until))
        })
        .collect();
    let mut all: Vec<(Op, u64)> = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
    let (hwm, rss) = (kib(&status, "VmHWM:"), kib(&status, "VmRSS:"));

    println!(
        "sector load: {CLIENTS} clients, {secs} s, {} ops, {:.0} ops/s; server peak RSS {} MiB \
         (now {} MiB)",
        all.len(),
        all.len() as f64 / elapsed,
        hwm / 1024,
        rss / 1024
    );
    for op in [Op::Read, Op::Write, Op::Flush] {
        let mut l: Vec<u64> = all.iter().filter(|(o, _)| *o == op).map(|(_, us)| *us).collect();
        assert!(!l.is_empty(), "no {op:?} ran");
        l.sort_unstable();
        println!(
            "  {op:?}: {} ops, p50 {} µs, p99 {} µs",
            l.len(),
            percentile(&l, 0.50),
            percentile(&l, 0.99)
        );
    }
    let mut l: Vec<u64> = all.iter().map(|(_, us)| *us).collect();
    l.sort_unstable();
    println!("  all: p50 {} µs, p99 {} µs", percentile(&l, 0.50), percentile(&l, 0.99));
    assert!(all.len() as u64 >= CLIENTS * 10, "every client made progress");
}
