//! Real devices (SEC-1, SEC-2): the engine on a file through `FileDevice` and, when the kernel
//! allows it, through io_uring; O_DIRECT where the file system supports it. A kernel or file
//! system that refuses io_uring or O_DIRECT must give a typed error, never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::device::DeviceError;
use cellar::sector::*;

fn cfg() -> EngineConfig {
    EngineConfig::default().zone_size_bytes(64 * 1024)
}

fn exercise<D: BlockDevice>(dev: D) -> D {
    let mut e = Engine::format(dev, cfg()).unwrap();
    let big = vec![3u8; 50_000];
    e.write(1, &big, WriteOptions::default()).unwrap();
    let ops: Vec<_> = (10..20u64)
        .map(|k| CasOp { key: k, expected: Expect::Absent, new: CasNew::Put(vec![k as u8; 1000]) })
        .collect();
    assert!(matches!(e.cas(&ops).unwrap(), CasResult::Committed(_)));
    e.flush().unwrap();
    let r = e.read_range(&[KeyRange::Span { start: 0, end: 100 }]).unwrap();
    assert_eq!(r.len(), 11);
    let mut e = Engine::open(e.into_device(), cfg()).unwrap();
    assert_eq!(e.read(1).unwrap().unwrap().value, big);
    assert_eq!(e.read(15).unwrap().unwrap().value, vec![15u8; 1000]);
    e.into_device()
}

#[test]
fn file_device_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    let dev = FileDevice::create(&path, 2 + 8 * 16).unwrap();
    drop(exercise(dev));
    let dev = FileDevice::open(&path, false).unwrap();
    let mut e = Engine::open(dev, cfg()).unwrap();
    assert_eq!(e.read(1).unwrap().unwrap().value.len(), 50_000);
}

#[test]
fn file_device_direct_io_works_or_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    drop(FileDevice::create(&path, 2 + 8 * 16).unwrap());
    match FileDevice::open(&path, true) {
        Ok(dev) => match Engine::format(dev, cfg()) {
            Ok(e) => drop(exercise(e.into_device())),
            Err(SectorError::Device(DeviceError::Io(err))) => {
                eprintln!("O_DIRECT I/O refused: {err}")
            }
            Err(other) => panic!("unexpected: {other}"),
        },
        Err(DeviceError::Io(err)) => eprintln!("O_DIRECT open refused: {err}"),
        Err(other) => panic!("unexpected: {other}"),
    }
}

#[cfg(all(feature = "io-uring", target_os = "linux"))]
#[test]
fn uring_device_works_or_falls_back() {
    use cellar::sector::device::{UringDevice, open_best};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    drop(FileDevice::create(&path, 2 + 8 * 16).unwrap());
    match UringDevice::open(&path, false) {
        Ok(dev) => {
            eprintln!("io_uring available: exercising UringDevice");
            drop(exercise(dev));
        }
        Err(DeviceError::Unsupported(why)) => eprintln!("io_uring refused, falling back: {why}"),
        Err(other) => panic!("unexpected: {other}"),
    }
    drop(exercise(open_best(&path, false).unwrap()));
}

/// Without O_DIRECT the io_uring device serves what the page cache holds by
/// `preadv2(RWF_NOWAIT)` and sends only the rest through the ring (`device/uring.rs`): a batch
/// of sectors, every other one cached, reads back exactly what was written, as does a batch
/// wholly cached and one wholly cold.
#[cfg(all(feature = "io-uring", target_os = "linux"))]
#[test]
fn uring_batches_read_cached_and_uncached_sectors_alike() {
    use cellar::sector::device::{ReadOp, UringDevice, WriteOp};
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    let sectors = 256_u64;
    drop(FileDevice::create(&path, sectors).unwrap());
    let Ok(mut dev) = UringDevice::open(&path, false) else {
        eprintln!("io_uring refused: nothing to check");
        return;
    };
    let data: Vec<Vec<u8>> =
        (0..sectors).map(|s| vec![(s * 7 + 1) as u8; SECTOR_SIZE_BYTES]).collect();
    let writes: Vec<WriteOp<'_>> = (data.iter().enumerate())
        .map(|(s, d)| WriteOp { first_sector: s as u64, data: d })
        .collect();
    dev.write_batch(&writes).unwrap();
    dev.flush().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let drop_cache = || {
        // SAFETY: the descriptor is open for the call; fadvise only reads its arguments.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    };
    let read_all = |dev: &mut UringDevice| {
        let mut bufs = vec![vec![0u8; SECTOR_SIZE_BYTES]; sectors as usize];
        let mut ops: Vec<ReadOp<'_>> = (bufs.iter_mut().enumerate())
            .map(|(s, buf)| ReadOp { first_sector: s as u64, buf })
            .collect();
        dev.read_batch(&mut ops).unwrap();
        for (s, buf) in bufs.iter().enumerate() {
            assert_eq!(buf, &data[s], "sector {s}");
        }
    };
    drop_cache();
    for s in (0..sectors).step_by(2) {
        let mut buf = vec![0u8; SECTOR_SIZE_BYTES];
        dev.read_batch(&mut [ReadOp { first_sector: s, buf: &mut buf }]).unwrap();
        assert_eq!(buf, data[s as usize]);
    }
    read_all(&mut dev); // half cached
    read_all(&mut dev); // all cached
    drop_cache();
    read_all(&mut dev); // all cold
}

/// §11: `create` writes every block (a flush never allocates), `open` sees that, and `trim`
/// keeps the blocks of such a file; a sparse file's trim punches holes.
#[test]
fn created_files_are_preallocated_and_trim_keeps_their_blocks() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let allocated = |p: &std::path::Path| std::fs::metadata(p).unwrap().blocks() * 512;
    let sectors = 2 + 8 * 16;
    let len = sectors * SECTOR_SIZE_BYTES as u64;

    let full = dir.path().join("full");
    let mut dev = FileDevice::create(&full, sectors).unwrap();
    assert!(dev.is_preallocated() && allocated(&full) >= len, "{} of {len}", allocated(&full));
    dev.trim(18, 16).unwrap();
    assert!(allocated(&full) >= len, "trim punched a preallocated file");
    drop(dev);
    let dev = FileDevice::open(&full, false).unwrap();
    assert!(dev.is_preallocated(), "open sees the preallocation");
    drop(exercise(dev));

    let thin = dir.path().join("thin");
    let mut dev = FileDevice::create_sparse(&thin, sectors).unwrap();
    assert!(!dev.is_preallocated() && allocated(&thin) < len);
    let data = vec![7u8; 16 * SECTOR_SIZE_BYTES];
    dev.write_batch(&[device::WriteOp { first_sector: 18, data: &data }]).unwrap();
    dev.flush().unwrap();
    let written = allocated(&thin);
    dev.trim(18, 16).unwrap();
    assert!(allocated(&thin) < written, "trim punches holes in a sparse file");
}
