//! Per-call cost of the file devices on a file system, page cache warm: one 4 KiB read, a
//! batch of 32 reads, one 4 KiB write, through `FileDevice` (`pread`/`pwrite`), `UringDevice`
//! and whatever `open_best` picks there.
//!
//! ```sh
//! cargo run --release -p cellar-benches --example device_probe -- /tmp      # the disk's fs
//! cargo run --release -p cellar-benches --example device_probe -- /dev/shm  # tmpfs
//! ```

use cellar::sector::device::{BlockDevice, ReadOp, UringDevice, WriteOp, open_best};
use cellar::sector::{FileDevice, SECTOR_SIZE_BYTES};
use std::time::Instant;

const SECTORS: u64 = 16_384;
const ROUNDS: u64 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args().nth(1).unwrap_or_else(|| "/tmp".into());
    let dir = tempfile::tempdir_in(&base)?;
    let path = dir.path().join("probe.dev");
    drop(FileDevice::create(&path, SECTORS)?);
    let mut devs: Vec<(&str, Box<dyn BlockDevice>)> =
        vec![("FileDevice", Box::new(FileDevice::open(&path, false)?))];
    if let Ok(d) = UringDevice::open(&path, false) {
        devs.push(("UringDevice", Box::new(d)));
    }
    devs.push(("open_best", open_best(&path, false)?));
    let data = vec![1u8; SECTOR_SIZE_BYTES];
    for (name, d) in &mut devs {
        let mut buf = vec![0u8; SECTOR_SIZE_BYTES];
        let t = Instant::now();
        for i in 0..ROUNDS {
            let first_sector = (i * 7919) % SECTORS;
            d.read_batch(&mut [ReadOp { first_sector, buf: &mut buf }])?;
        }
        let read1 = t.elapsed().as_secs_f64() / ROUNDS as f64 * 1e6;
        let mut bufs = vec![vec![0u8; SECTOR_SIZE_BYTES]; 32];
        let t = Instant::now();
        for i in 0..ROUNDS / 10 {
            let mut ops: Vec<ReadOp<'_>> = (bufs.iter_mut().enumerate())
                .map(|(j, buf)| ReadOp { first_sector: (i * 7919 + j as u64 * 31) % SECTORS, buf })
                .collect();
            d.read_batch(&mut ops)?;
        }
        let read32 = t.elapsed().as_secs_f64() / (ROUNDS / 10) as f64 * 1e6;
        let t = Instant::now();
        for i in 0..ROUNDS {
            d.write_batch(&[WriteOp { first_sector: (i * 7919) % SECTORS, data: &data }])?;
        }
        let write1 = t.elapsed().as_secs_f64() / ROUNDS as f64 * 1e6;
        println!(
            "{base} {name}: read 1: {read1:.1} µs, read batch of 32: {read32:.1} µs, write 1: {write1:.1} µs"
        );
    }
    Ok(())
}
