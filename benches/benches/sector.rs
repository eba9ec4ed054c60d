//! Sector engine benchmarks (issue 3, deliverable 11): the raw baseline, the engine, redb and
//! fjall through one trait ([`KvBench`]), in one run, on one file system, with the same
//! durability (every write batch durable before it counts).
//!
//! Run: `cargo bench -p cellar-benches --bench sector` (filter with a trailing argument, e.g.
//! `-- read_cold`). Environment:
//! - `CELLAR_BENCH_DIR`: where the stores live (default: the system temp dir). Keep every
//!   contender on the same file system: that is what makes the ratios meaningful.
//! - `CELLAR_BENCH_RECOVERY_MIB`: engine device size for the recovery workload (default 1024);
//!   the peers get the same number of 4 KiB values.
//! - `CELLAR_BENCH_KEYS`: 4 KiB keys preloaded for the other workloads (default 16384 = 64 MiB).
//!
//! Cold reads drop the OS page cache of every file of the contender with
//! `posix_fadvise(DONTNEED)` before each batch (not O_DIRECT: redb and fjall cannot use it, and
//! one method for all keeps the comparison fair). The peers' own caches are set to 4 MiB so they
//! cannot hold the 64 MiB data set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::env::SplitMix64;
use cellar_benches::engine::SectorEngine;
use cellar_benches::kv::{
    Fjall, KvBench, Raw, Redb, SEQ_KEY_BASE, SEQ_VALUE_BYTES, VALUE_BYTES, drop_caches,
    read_sequentially,
};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use std::time::Duration;

/// Page/block cache of the peers.
const PEER_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Engine device size for the ordinary workloads: room for every overwrite of one run, so the
/// background compactor works without ever blocking a write.
const ENGINE_DEVICE_BYTES: u64 = 8 << 30;
/// Raw baseline's ring for 1 MiB sequential writes.
const RAW_SEQ_RING_BYTES: u64 = 256 << 20;
/// Distinct keys the sequential writes cycle through (so the engine can reclaim them).
const SEQ_KEYS: u64 = 64;
/// Preload batch size.
const LOAD_BATCH: usize = 256;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn base_dir() -> PathBuf {
    std::env::var_os("CELLAR_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Distinct random keys below `key_count`; the same sequence for every contender.
fn distinct_keys(rng: &mut SplitMix64, n: usize, key_count: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(n);
    while out.len() < n {
        let k = rng.below(key_count);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

struct Contender {
    bench: Box<dyn KvBench>,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Engine,
    Redb,
    Fjall,
}
const KINDS: [Kind; 4] = [Kind::Raw, Kind::Engine, Kind::Redb, Kind::Fjall];

fn make(kind: Kind, keys: u64, engine_bytes: u64, compactor: bool) -> Contender {
    let dir = tempfile::tempdir_in(base_dir()).expect("bench dir");
    let bench: Box<dyn KvBench> = match kind {
        Kind::Raw => Box::new(Raw::create(dir.path(), keys, RAW_SEQ_RING_BYTES).expect("raw")),
        Kind::Engine => {
            Box::new(SectorEngine::create(dir.path(), engine_bytes, compactor).expect("engine"))
        }
        Kind::Redb => Box::new(Redb::create(dir.path(), PEER_CACHE_BYTES).expect("redb")),
        Kind::Fjall => Box::new(Fjall::create(dir.path(), PEER_CACHE_BYTES as u64).expect("fjall")),
    };
    Contender { bench, _dir: dir }
}

/// Writes keys `0..keys` with 4 KiB values in durable batches.
fn load(c: &mut Contender, keys: u64) {
    let value = vec![0x5au8; VALUE_BYTES];
    let mut k = 0;
    while k < keys {
        let end = (k + LOAD_BATCH as u64).min(keys);
        let items: Vec<(u64, &[u8])> = (k..end).map(|k| (k, value.as_slice())).collect();
        c.bench.write_batch(&items).expect("load");
        k = end;
    }
}

fn contenders(keys: u64) -> Vec<Contender> {
    KINDS
        .iter()
        .map(|kind| {
            let mut c = make(*kind, keys, ENGINE_DEVICE_BYTES, true);
            load(&mut c, keys);
            c
        })
        .collect()
}

fn bench_writes(cr: &mut Criterion, cs: &mut [Contender], keys: u64) {
    let value = vec![0xa5u8; VALUE_BYTES];
    for batch in [1usize, 16, 256] {
        let mut g = cr.benchmark_group(format!("write_4k_batch_{batch}"));
        g.throughput(Throughput::Bytes((batch * VALUE_BYTES) as u64));
        for c in cs.iter_mut() {
            let mut rng = SplitMix64::new(batch as u64);
            g.bench_function(BenchmarkId::from_parameter(c.bench.name()), |b| {
                b.iter(|| {
                    let ks = distinct_keys(&mut rng, batch, keys);
                    let items: Vec<(u64, &[u8])> = ks.iter().map(|k| (*k, &value[..])).collect();
                    c.bench.write_batch(&items).expect("write");
                })
            });
        }
        g.finish();
    }
}

fn bench_reads(cr: &mut Criterion, cs: &mut [Contender], keys: u64) {
    for (cold, label) in [(true, "read_cold"), (false, "read_warm")] {
        for batch in [1usize, 32] {
            let mut g = cr.benchmark_group(format!("{label}_4k_batch_{batch}"));
            g.throughput(Throughput::Bytes((batch * VALUE_BYTES) as u64));
            for c in cs.iter_mut() {
                let mut rng = SplitMix64::new(7 + batch as u64);
                if !cold {
                    // Warm: read everything once so the page cache holds it.
                    let all: Vec<u64> = (0..keys).collect();
                    for chunk in all.chunks(32) {
                        c.bench.read_batch(chunk).expect("warm");
                    }
                }
                let dir = c.bench.dir().to_path_buf();
                g.bench_function(BenchmarkId::from_parameter(c.bench.name()), |b| {
                    b.iter_batched(
                        || {
                            if cold {
                                drop_caches(&dir).expect("drop caches");
                            }
                            distinct_keys(&mut rng, batch, keys)
                        },
                        |ks| {
                            let n = c.bench.read_batch(&ks).expect("read");
                            assert_eq!(n, batch * VALUE_BYTES, "every key present");
                        },
                        BatchSize::PerIteration,
                    )
                });
            }
            g.finish();
        }
    }
}

fn bench_seq_and_cas(cr: &mut Criterion, cs: &mut [Contender], keys: u64) {
    let big = vec![0x3cu8; SEQ_VALUE_BYTES];
    let mut g = cr.benchmark_group("seq_write_1m");
    g.throughput(Throughput::Bytes(SEQ_VALUE_BYTES as u64));
    for c in cs.iter_mut() {
        let mut i = 0u64;
        g.bench_function(BenchmarkId::from_parameter(c.bench.name()), |b| {
            b.iter(|| {
                i += 1;
                c.bench.write_batch(&[(SEQ_KEY_BASE + i % SEQ_KEYS, &big[..])]).expect("seq");
            })
        });
    }
    g.finish();

    let value = vec![0x11u8; VALUE_BYTES];
    let mut g = cr.benchmark_group("cas_4_keys");
    g.throughput(Throughput::Elements(1));
    for c in cs.iter_mut() {
        let mut rng = SplitMix64::new(99);
        g.bench_function(BenchmarkId::from_parameter(c.bench.name()), |b| {
            b.iter(|| {
                let ks = distinct_keys(&mut rng, 4, keys);
                assert!(c.bench.cas(&ks, &value).expect("cas"));
            })
        });
    }
    g.finish();
}

/// Recovery: a store holding as many 4 KiB values as fill the engine's device, closed and
/// reopened on a cold cache. The engine twice: a clean close and reopen (its checkpoint) and a
/// crash recovery (`engine_crash`: the scan).
fn bench_recovery(cr: &mut Criterion) {
    let device_mib = env_u64("CELLAR_BENCH_RECOVERY_MIB", 1024);
    let device_bytes = device_mib << 20;
    // A 4 KiB value takes 2 sectors in the engine (80-byte header); fill 80% of the device,
    // leaving the compaction reserve and partly used zones room.
    let values = device_bytes / (2 * VALUE_BYTES as u64) * 8 / 10;
    let mut g = cr.benchmark_group(format!("recovery_{device_mib}mib"));
    g.sample_size(10);
    for kind in KINDS {
        let mut state: Option<Contender> = None;
        let name = make_name(kind);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            let c = state.get_or_insert_with(|| {
                let mut c = make(kind, values, device_bytes, false);
                load(&mut c, values);
                c
            });
            let dir = c.bench.dir().to_path_buf();
            b.iter_batched(
                || drop_caches(&dir).expect("drop caches"),
                |()| {
                    let found = c.bench.reopen().expect("reopen");
                    assert!(found >= values / 2, "recovered {found} of {values}");
                },
                BatchSize::PerIteration,
            )
        });
        if kind == Kind::Engine {
            // The engine's crash recovery (a scan of every zone in use) beside its clean reopen
            // (the checkpoint, SEC-19), on the same device.
            g.bench_function(BenchmarkId::from_parameter("engine_crash"), |b| {
                let c = state.as_mut().expect("loaded above");
                let dir = c.bench.dir().to_path_buf();
                b.iter_batched(
                    || drop_caches(&dir).expect("drop caches"),
                    |()| {
                        let found = c.bench.reopen_after_crash().expect("reopen");
                        assert!(found >= values / 2, "recovered {found} of {values}");
                    },
                    BatchSize::PerIteration,
                )
            });
            // Issue 13's yardstick for crash recovery: a raw sequential read of the engine's
            // whole device file (4 MiB `pread`s), on the same cold cache.
            g.bench_function(BenchmarkId::from_parameter("device_read"), |b| {
                let c = state.as_ref().expect("loaded above");
                let dir = c.bench.dir().to_path_buf();
                let path = dir.join("engine.dev");
                b.iter_batched(
                    || drop_caches(&dir).expect("drop caches"),
                    |()| read_sequentially(&path).expect("read the device"),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

fn make_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Raw => "raw",
        Kind::Engine => "engine",
        Kind::Redb => "redb",
        Kind::Fjall => "fjall",
    }
}

fn main() {
    let mut cr = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let keys = env_u64("CELLAR_BENCH_KEYS", 16_384);
    let mut cs = contenders(keys);
    for c in &cs {
        eprintln!("loaded {} with {keys} x 4 KiB", c.bench.name());
    }
    bench_writes(&mut cr, &mut cs, keys);
    bench_reads(&mut cr, &mut cs, keys);
    bench_seq_and_cas(&mut cr, &mut cs, keys);
    drop(cs);
    bench_recovery(&mut cr);
    cr.final_summary();
}
