//! Device round trips per read (`specs/sector.md` §7; issue 13 item 4, "cold single reads
//! ≥ 0.8× raw (one round trip)"): the first batch reads two sectors of every record, so a record
//! of up to two sectors (a 4 KiB value and its header) costs one device batch and a longer one
//! two. The speculative sector never turns a sound read into an error. (It never reaches into
//! the next zone either: records never use a zone's last sector, SEC-18.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cellar::sector::*;

const ZONE_SECTORS: u64 = 8;
const ZONES: u64 = 16;
/// Sectors before the first zone (the two superblock copies, §2).
const SUPERBLOCKS: u64 = 2;

/// A memory device that logs every read batch and fails any read touching `bad`.
struct Watched {
    inner: MemDevice,
    batches: Vec<Vec<(u64, u64)>>,
    bad: Option<u64>,
}

impl BlockDevice for Watched {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read_batch(&mut self, reads: &mut [ReadOp<'_>]) -> Result<(), DeviceError> {
        let spans: Vec<(u64, u64)> = reads
            .iter()
            .map(|r| (r.first_sector, (r.buf.len() / SECTOR_SIZE_BYTES) as u64))
            .collect();
        self.batches.push(spans.clone());
        if let Some(b) = self.bad
            && spans.iter().any(|(f, n)| (*f..f + n).contains(&b))
        {
            return Err(DeviceError::Io(std::io::Error::other(format!("latent error at {b}"))));
        }
        self.inner.read_batch(reads)
    }
    fn write_batch(&mut self, writes: &[WriteOp<'_>]) -> Result<(), DeviceError> {
        self.inner.write_batch(writes)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.inner.flush()
    }
    fn trim(&mut self, first_sector: u64, sector_count: u64) -> Result<(), DeviceError> {
        self.inner.trim(first_sector, sector_count)
    }
}

fn engine() -> Engine<Watched> {
    let dev = Watched {
        inner: MemDevice::new(SUPERBLOCKS + ZONES * ZONE_SECTORS),
        batches: Vec::new(),
        bad: None,
    };
    let cfg = EngineConfig::default().zone_size_bytes(ZONE_SECTORS as usize * SECTOR_SIZE_BYTES);
    Engine::format(dev, cfg).unwrap()
}

/// The read batches `read(key)` issues, after checking the value.
fn batches_for(e: &mut Engine<Watched>, key: u64, want: &[u8]) -> Vec<Vec<(u64, u64)>> {
    e.device_mut().batches.clear();
    let got = e.read(key).unwrap().expect("present");
    assert_eq!(got.value, want, "key {key}");
    std::mem::take(&mut e.device_mut().batches)
}

#[test]
fn a_record_of_up_to_two_sectors_is_one_round_trip_and_a_longer_one_two() {
    let mut e = engine();
    let sizes =
        [(1_u64, 100_usize, 1_usize), (2, 4016, 1), (3, 4096, 1), (4, 8000, 1), (5, 8200, 2)];
    for (key, len, _) in sizes {
        e.write(key, &vec![key as u8; len], WriteOptions::default()).unwrap();
    }
    e.flush().unwrap();
    for (key, len, trips) in sizes {
        let b = batches_for(&mut e, key, &vec![key as u8; len]);
        assert_eq!(b.len(), trips, "a {len}-byte value: {b:?}");
    }
    // A batch of 4 KiB values: one device batch for all of them.
    e.device_mut().batches.clear();
    let got = e.read_range(&[KeyRange::Span { start: 1, end: 5 }]).unwrap();
    assert_eq!(got.len(), 5);
    let b = std::mem::take(&mut e.device_mut().batches);
    assert_eq!(b.len(), 2, "first sectors of all five, then the rest of the 8200-byte one: {b:?}");
    assert_eq!(b[0].len(), 5);
    assert_eq!(b[1].len(), 1);
}

#[test]
fn a_device_error_in_the_sector_after_a_short_record_does_not_fail_its_read() {
    let mut e = engine();
    e.write(1, b"short", WriteOptions::default()).unwrap();
    e.write(2, &[2; 4096], WriteOptions::default()).unwrap();
    e.flush().unwrap();
    let s1 = u64::from(e.version(1).unwrap().sector());
    let s2 = u64::from(e.version(2).unwrap().sector());
    assert_eq!(s2, s1 + 1, "the 4 KiB value follows the short one");
    // The sector after key 1's record is unreadable: key 1 reads, key 2 (which owns it) fails.
    e.device_mut().bad = Some(s2);
    assert_eq!(e.read(1).unwrap().unwrap().value, b"short");
    assert!(matches!(e.read(2), Err(SectorError::Device(_))), "key 2's own sector");
    // The same in a batch: the whole batch is read again exactly, and still fails for key 2
    // only because key 2's sector is its own.
    assert!(e.read_range(&[KeyRange::One(1), KeyRange::One(2)]).is_err());
    e.device_mut().bad = Some(s2 + 1); // key 2's second sector
    assert!(matches!(e.read(2), Err(SectorError::Device(_))), "never half a value");
    assert_eq!(e.read(1).unwrap().unwrap().value, b"short");
}
