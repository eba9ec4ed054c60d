//! Runs the `recover_from_image` fuzz target's seed corpus as an ordinary test, plus
//! deterministic single-byte and single-sector mutations of every seed (SEC-5, SEC-6).
//! `REGENERATE_SECTOR_CORPUS=1 cargo test -p cellar --test sector_fuzz_corpus -- --ignored`
//! rewrites the seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::{CrashMode, FaultDevice};
use cellar::sector::fuzzing::recover_from_image;
use cellar::sector::*;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/recover_from_image")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn seed_corpus_recovers_without_violations() {
    let seeds = seeds();
    assert!(seeds.len() >= 3, "corpus missing");
    for (name, data) in &seeds {
        recover_from_image(data);
        // The seeds are real images: they open and hold keys, so the target gets past the
        // superblock and exercises the scan.
        let e = Engine::open(MemDevice::from_image(data.clone()), cfg()).unwrap();
        assert!(e.keys().len() >= 5, "seed {name} holds too few keys");
    }
}

#[test]
fn mutated_seeds_recover_without_violations() {
    for (_, data) in seeds() {
        let mut x: u64 = 0x1234_5678;
        for _ in 0..200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut d = data.clone();
            let at = (x >> 16) as usize % d.len();
            d[at] ^= 1 << ((x >> 8) % 8);
            recover_from_image(&d);
        }
        // Whole sectors zeroed or duplicated.
        for s in 0..data.len() / SECTOR_SIZE_BYTES {
            let mut d = data.clone();
            d[s * SECTOR_SIZE_BYTES..(s + 1) * SECTOR_SIZE_BYTES].fill(0);
            recover_from_image(&d);
        }
        recover_from_image(&data[..data.len() / 2]);
        recover_from_image(&[]);
    }
}

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(32 * 1024)
}

fn image(torn: Option<u64>, compact: bool) -> Vec<u8> {
    let mut e = Engine::format(FaultDevice::new(MemDevice::new(2 + 8 * 8)), cfg()).unwrap();
    for k in 0..12u64 {
        let v = vec![k as u8; 100 + 700 * k as usize];
        e.write(
            k,
            &v,
            WriteOptions {
                compact,
                compressed: k % 3 == 0,
                next: Some(k + 1),
                ..Default::default()
            },
        )
        .unwrap();
        if k == 5 {
            e.flush().unwrap();
        }
    }
    let ops = vec![
        CasOp { key: 1, expected: Expect::Any, new: CasNew::Put(b"cas".to_vec()) },
        CasOp { key: 2, expected: Expect::Any, new: CasNew::Delete },
    ];
    e.cas(&ops).unwrap();
    let mode = torn.map_or(CrashMode::DropUnflushed, |seed| CrashMode::Torn { seed });
    e.into_device().crash(mode).unwrap().image().to_vec()
}

#[test]
#[ignore = "rewrites the seed corpus"]
fn regenerate_corpus() {
    if std::env::var_os("REGENERATE_SECTOR_CORPUS").is_none() {
        return;
    }
    std::fs::create_dir_all(corpus_dir()).unwrap();
    let seeds = [
        ("clean", image(None, false)),
        ("packed", image(None, true)),
        ("torn", image(Some(3), false)),
        ("torn-packed", image(Some(11), true)),
    ];
    for (name, img) in seeds {
        std::fs::write(corpus_dir().join(format!("{name}.img")), img).unwrap();
    }
}
