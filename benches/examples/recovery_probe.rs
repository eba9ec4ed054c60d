//! Crash recovery against a raw sequential read of the same device file, cold caches.
//!
//! ```sh
//! CELLAR_BENCH_DIR=/tmp/cbench cargo run --release -p cellar-benches --example recovery_probe
//! ```
//!
//! Fills a 1 GiB engine device to 80 % with 4 KiB values (as the criterion recovery group),
//! then alternates (a warm-up pair, then nine pairs): caches dropped, crash recovery timed; caches dropped, the device file read
//! sequentially in 4 MiB `pread`s, timed. Prints each and the medians.

use cellar_benches::engine::SectorEngine;
use cellar_benches::kv::{KvBench, drop_caches, read_sequentially};
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let base = std::env::var("CELLAR_BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    let mib: u64 = std::env::var("CELLAR_BENCH_RECOVERY_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir_in(base)?;
    let device_bytes = mib << 20;
    let values = device_bytes / 8192 * 8 / 10;
    let mut e = SectorEngine::create(dir.path(), device_bytes, false)?;
    let value = vec![0x5a_u8; 4096];
    let mut k = 0;
    while k < values {
        let n = (values - k).min(256);
        let items: Vec<(u64, &[u8])> = (k..k + n).map(|i| (i, &value[..])).collect();
        e.write_batch(&items)?;
        k += n;
    }
    eprintln!("loaded {values} x 4 KiB");
    let path = dir.path().join("engine.dev");
    let (mut rec, mut raw) = (Vec::new(), Vec::new());
    for round in 0..10 {
        drop_caches(dir.path())?;
        let t = Instant::now();
        let found = e.reopen_after_crash()?;
        let r = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(found, values);
        drop_caches(dir.path())?;
        let t = Instant::now();
        read_sequentially(&path)?;
        let d = t.elapsed().as_secs_f64() * 1e3;
        if round == 0 {
            continue; // a warm-up pair: the load's writes may still be on their way out
        }
        eprintln!("crash recovery {r:.1} ms, raw sequential read of {mib} MiB {d:.1} ms");
        rec.push(r);
        raw.push(d);
    }
    let mut warm = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        e.reopen_after_crash()?;
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    warm.sort_by(f64::total_cmp);
    println!(
        "crash recovery with the device file in the page cache: {:.1} ms (median of 3)",
        warm[1]
    );
    rec.sort_by(f64::total_cmp);
    raw.sort_by(f64::total_cmp);
    let (r, d) = (rec[rec.len() / 2], raw[raw.len() / 2]);
    println!(
        "median of {}: crash recovery {r:.1} ms, raw read {d:.1} ms, ratio {:.2}x",
        rec.len(),
        d / r
    );
    Ok(())
}
