//! Recovery (`specs/sector.md` §8, SEC-7, SEC-8): rebuilds the index from the zones when a
//! device is opened.
//!
//! 1. Superblock: either valid copy suffices (SEC-3).
//! 2. Zone headers: zones with a valid header are in use, ordered by epoch; free headers keep
//!    the epochs of freed zones. The next epoch exceeds every epoch of any header (and of any
//!    record in a zone whose header is damaged), so no epoch is ever handed out twice (SEC-4).
//!    A clean shutdown's checkpoint (SEC-19, `checkpoint.rs`) that every header still agrees
//!    with replaces steps 3 to 6; one that is stale, torn or damaged is reported and ignored.
//! 3. Scan: every zone is read and parsed record by record ([`scan`]).
//! 4. Classify: the durable mark `M` is the largest `durable_mark` of any record whose header
//!    checks. A damaged spot below `M` was flushed, so it is corruption: reported, skipped, and
//!    a damaged record's key is marked corrupt (SEC-6). The first damaged spot at or above `M`
//!    in a zone is a torn tail: the zone is cut there (SEC-7).
//! 5. Resolve: per key the highest seq wins; CAS members count only if their commit record and
//!    all its members are valid (SEC-8).
//! 6. Persist the cut: a seal record is written at every cut and flushed, so later recoveries
//!    never read what lies beyond it (SEC-7).
//!
//! Never panics on any device content (fuzzed by `recover_from_image`), never installs a record
//! whose CRC failed.

use super::checkpoint_format::{CheckpointHeader, HeaderSeen};
use super::device::{BlockDevice, ReadOp};
use super::engine::Engine;
use super::format::{
    self, FLAG_PACKED, FLAG_TXN, FormatError, Kind, RECORD_HEADER_SIZE_BYTES, RecordHeader,
    Superblock, ZoneHeader,
};
use super::index::Index;
use super::repair::{repair_header, repair_zone_header};
use super::write::{Batch, lone_header_sector, seal};
use super::zones::position;
use super::{EngineConfig, RecoveryReport};
use super::{Key, SECTOR_SIZE_BYTES, SectorError};
use crate::bugs;
use std::collections::HashMap;

/// Zones read per device batch during the scan, and the most bytes of them (at least one
/// zone): while one batch is parsed the next is prefetched, so reading and parsing overlap.
const SCAN_BATCH_ZONES_MAX: usize = 8;
const SCAN_BATCH_BYTES_MAX: usize = 32 << 20;

/// Zones whose two header-pass sectors are read per device batch (step 2): 32 MiB of buffers,
/// one batch up to a 4 GiB device with the default 1 MiB zones.
const HEADER_BATCH_ZONES_MAX: usize = 4096;

/// One parsed spot of a zone.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A record whose header checks; `payload_ok` says whether its payload does too.
    Rec { sector: u64, h: RecordHeader, payload_ok: bool, payload: Option<Vec<u8>> },
    /// A sector that holds no valid record of this zone epoch (`blank`: all zeros).
    Bad { sector: u64, blank: bool },
}

/// Result of scanning a run of sectors.
pub(crate) struct Scan {
    pub(crate) items: Vec<Item>,
    /// Largest seq in any decodable header (any epoch): the next seq must exceed it.
    pub(crate) seq_max: u64,
    /// Largest zone epoch named by any decodable header.
    pub(crate) epoch_max: u32,
    /// The sector where a seal stopped the scan, if one did.
    pub(crate) sealed_at: Option<u64>,
    /// That seal's durable mark (SEC-18: recovery's seals witness what it accepted).
    pub(crate) seal_mark: u64,
    /// First sector of a record that did not fit in the buffer (compaction reads in chunks).
    pub(crate) incomplete_at: Option<u64>,
}

/// Parses `buf` (whose first byte is sector `first_sector`) as records of a zone of `epoch`.
/// `keep_payload` keeps payloads (compaction needs them; recovery only for commit records).
/// `repair`: a header with one damaged byte is repaired to name its key (recovery, SEC-18);
/// compaction does not, and leaves such a zone alone (its drain check, SEC-17).
pub(crate) fn scan(
    buf: &[u8],
    first_sector: u64,
    epoch: u32,
    keep_payload: bool,
    repair: bool,
) -> Scan {
    let mut out = Scan {
        items: Vec::new(),
        seq_max: 0,
        epoch_max: 0,
        sealed_at: None,
        seal_mark: 0,
        incomplete_at: None,
    };
    let sectors = buf.len() / SECTOR_SIZE_BYTES;
    let (mut s, mut off) = (0usize, 0usize);
    while s < sectors {
        let base = s * SECTOR_SIZE_BYTES + off;
        let sector = first_sector + s as u64;
        let bytes = buf.get(base..).unwrap_or(&[]);
        // SEC-6: a header with one damaged byte is repaired to name its key; the record is then
        // a damaged one, never served (`repair.rs`).
        let decoded = match RecordHeader::decode(bytes) {
            Ok(h) => Some((h, false)),
            Err(e) if repair => repair_header(&e, bytes, epoch, sector).map(|h| (h, true)),
            Err(_) => None,
        };
        if let Some((h, repaired)) = decoded {
            out.seq_max = out.seq_max.max(h.seq);
            out.epoch_max = out.epoch_max.max(h.zone_epoch);
            let packed = h.flags & FLAG_PACKED != 0;
            let fp = h.footprint_bytes();
            // SEC-17: a record found at another sector than the one it names is not an item
            // (a misdirected write, or the stale content of a sector whose write went astray).
            let placed = h.sector == sector || bugs::active("sector:ignore-record-address");
            let framed = h.zone_epoch == epoch
                && placed
                && if packed { off + fp <= SECTOR_SIZE_BYTES } else { off == 0 };
            if framed {
                let end = base + RECORD_HEADER_SIZE_BYTES + h.payload_len as usize;
                let Some(payload) = buf.get(base + RECORD_HEADER_SIZE_BYTES..end) else {
                    out.incomplete_at = Some(sector);
                    return out;
                };
                if h.kind == Kind::Seal {
                    out.sealed_at = Some(sector);
                    out.seal_mark = h.durable_mark;
                    return out;
                }
                let payload_ok = !repaired && h.check_payload(payload).is_ok();
                let keep = keep_payload || h.kind == Kind::Commit;
                out.items.push(Item::Rec {
                    sector,
                    h,
                    payload_ok,
                    payload: keep.then(|| payload.to_vec()),
                });
                if packed {
                    off += fp;
                    if off + RECORD_HEADER_SIZE_BYTES > SECTOR_SIZE_BYTES {
                        (s, off) = (s + 1, 0);
                    }
                } else {
                    s += fp / SECTOR_SIZE_BYTES;
                }
                continue;
            }
        }
        let padding = off > 0 && bytes.iter().take(RECORD_HEADER_SIZE_BYTES).all(|b| *b == 0);
        if !padding {
            let blank = buf
                .get(s * SECTOR_SIZE_BYTES..(s + 1) * SECTOR_SIZE_BYTES)
                .is_some_and(|b| b.iter().all(|x| *x == 0));
            out.items.push(Item::Bad { sector, blank });
        }
        (s, off) = (s + 1, 0);
    }
    out
}

/// A candidate for a key's newest record.
#[derive(Debug, Clone, Copy)]
struct Cand {
    seq: u64,
    sector: u64,
    /// Log position (epoch, sector): between a record and its relocated copy (equal seqs) the
    /// older one wins.
    pos: u64,
    put: bool,
    corrupt: bool,
}

/// The higher seq wins. On a tie (a record and its relocated copy) a sound one beats a
/// corrupt one, else the original (lower log position) wins, whatever the order records are
/// offered in (CAS members come last): so the copies a compaction cycle made before a crash
/// are dead, and the zone they went to is freed without moving anything (SEC-16).
fn offer(best: &mut HashMap<Key, Cand>, key: Key, c: Cand) {
    let better = |old: &Cand| {
        (c.seq, !c.corrupt, std::cmp::Reverse(c.pos))
            > (old.seq, !old.corrupt, std::cmp::Reverse(old.pos))
    };
    if best.get(&key).is_none_or(better) {
        best.insert(key, c);
    }
}

fn read_superblock<D: BlockDevice>(dev: &mut D) -> Result<(Superblock, u8), SectorError> {
    if dev.sector_count() < format::SUPERBLOCK_COPIES {
        return Err(SectorError::NotFormatted("device smaller than two sectors".into()));
    }
    let mut a = vec![0u8; SECTOR_SIZE_BYTES];
    let mut b = vec![0u8; SECTOR_SIZE_BYTES];
    dev.read_batch(&mut [
        ReadOp { first_sector: 0, buf: &mut a },
        ReadOp { first_sector: 1, buf: &mut b },
    ])?;
    // SEC-3: either valid copy suffices; two valid copies must agree.
    let (ra, rb) = (Superblock::decode(&a), Superblock::decode(&b));
    let sb = match (&ra, &rb) {
        (Ok(x), Ok(y)) if x != y => {
            return Err(SectorError::NotFormatted("the two superblock copies disagree".into()));
        }
        (Err(e), _) | (_, Err(e)) if bugs::active("sector:superblock-needs-both-copies") => {
            return Err(SectorError::NotFormatted(format!("a superblock copy is damaged: {e}")));
        }
        (Ok(x), _) | (_, Ok(x)) => *x,
        (Err(e), Err(_)) => {
            return Err(SectorError::NotFormatted(format!("no valid superblock: {e}")));
        }
    };
    if dev.sector_count() < sb.device_sector_count {
        return Err(SectorError::Geometry(format!(
            "device has {} sectors, superblock says {}",
            dev.sector_count(),
            sb.device_sector_count
        )));
    }
    Ok((sb, u8::from(ra.is_ok()) + u8::from(rb.is_ok())))
}

/// What the header pass (step 2) found: zones in use sorted by epoch, the largest epoch a free
/// or checkpoint header keeps (SEC-4), every zone's header as read, and the checkpoint headers.
pub(crate) struct Headers {
    pub(crate) used: Vec<(u32, u32)>,
    pub(crate) free_epoch_max: u32,
    pub(crate) seen: Vec<HeaderSeen>,
    pub(crate) checkpoints: Vec<CheckpointHeader>,
}

/// Reads every zone header, with the zone's first data sector in the same read (step 2).
pub(crate) fn read_zone_headers<D: BlockDevice>(
    dev: &mut D,
    sb: &Superblock,
    report: &mut RecoveryReport,
) -> Result<Headers, SectorError> {
    let mut h = Headers {
        used: Vec::new(),
        free_epoch_max: 0,
        seen: Vec::with_capacity(sb.zone_count as usize),
        checkpoints: Vec::new(),
    };
    for start in (0..sb.zone_count).step_by(HEADER_BATCH_ZONES_MAX) {
        let chunk = start..sb.zone_count.min(start.saturating_add(HEADER_BATCH_ZONES_MAX as u32));
        let mut bufs = vec![vec![0u8; 2 * SECTOR_SIZE_BYTES]; chunk.len()];
        let mut ops: Vec<ReadOp<'_>> = (chunk.clone().zip(bufs.iter_mut()))
            .map(|(z, buf)| ReadOp { first_sector: sb.zone_first_sector(z), buf })
            .collect();
        dev.read_batch(&mut ops)?;
        for (z, two) in chunk.zip(&bufs) {
            let seen = classify_header(z, two, sb, report, &mut h)?;
            h.seen.push(seen);
        }
    }
    h.used.sort_unstable();
    Ok(h)
}

/// Step 2 for one zone `z`: `two` holds its header sector and its first data sector.
fn classify_header(
    z: u32,
    two: &[u8],
    sb: &Superblock,
    report: &mut RecoveryReport,
    out: &mut Headers,
) -> Result<HeaderSeen, SectorError> {
    let (buf, first_data) = two.split_at(SECTOR_SIZE_BYTES);
    let data_sector = sb.zone_first_sector(z) + 1;
    // SEC-19: a checkpoint zone holds no records; its epoch bounds the next like a free
    // header's (SEC-4).
    if let Some(c) = CheckpointHeader::decode(buf).ok().filter(|c| c.zone == z) {
        out.free_epoch_max = out.free_epoch_max.max(c.epoch);
        out.checkpoints.push(c);
        return Ok(HeaderSeen::Checkpoint(c.epoch));
    }
    let seen = match (ZoneHeader::decode(buf), ZoneHeader::decode_free(buf)) {
        (Ok(h), _) if h.zone == z => {
            out.used.push((h.epoch, z));
            HeaderSeen::InUse(h.epoch)
        }
        (_, Ok(h)) if h.zone == z => {
            out.free_epoch_max = out.free_epoch_max.max(h.epoch);
            HeaderSeen::Free(h.epoch)
        }
        (Err(FormatError::BadMagic), _)
            if buf.iter().all(|b| *b == 0)
                && (!RecordHeader::names_its_sector(first_data, data_sector)
                    || bugs::active("sector:blank-header-is-fresh")) =>
        {
            HeaderSeen::Blank
        }
        _ if bugs::active("sector:damaged-zone-header-fails-open") => {
            return Err(SectorError::NotFormatted(format!("zone {z}: damaged header")));
        }
        _ => {
            // Reported either way; one damaged byte is repaired, so the zone's records are
            // still read (SEC-6: its keys' older values are not served in their place) and a
            // free header still bounds the epochs (SEC-4). A blank header over a record is a
            // lost header, not a fresh zone (format blanks both sectors, and a header is
            // durable before its zone's first record is written): its records bound the
            // epochs like any damaged header's.
            report.corrupt_zone_headers.push(z);
            match repair_zone_header(buf, z) {
                Some((h, false)) => out.used.push((h.epoch, z)),
                Some((h, true)) => out.free_epoch_max = out.free_epoch_max.max(h.epoch),
                None => {}
            }
            HeaderSeen::Damaged
        }
    };
    Ok(seen)
}

/// Step 3: reads and parses every zone in use, a batch of zones per device read. The next
/// batch is prefetched before this one is parsed (a hint: the device reads it meanwhile), and
/// one set of buffers serves every batch.
fn scan_zones<D: BlockDevice>(
    dev: &mut D,
    sb: &Superblock,
    used: &[(u32, u32)],
) -> Result<Vec<(u32, u32, Scan)>, SectorError> {
    let data_sectors = u64::from(sb.zone_sector_count) - 1;
    let zone_bytes = data_sectors as usize * SECTOR_SIZE_BYTES;
    let batch = (SCAN_BATCH_BYTES_MAX / zone_bytes.max(1))
        .clamp(1, SCAN_BATCH_ZONES_MAX)
        .min(used.len().max(1));
    let mut bufs: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; zone_bytes]).collect();
    let mut scans: Vec<(u32, u32, Scan)> = Vec::with_capacity(used.len());
    let chunks: Vec<&[(u32, u32)]> = used.chunks(batch).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ops: Vec<ReadOp<'_>> = chunk
            .iter()
            .zip(bufs.iter_mut())
            .map(|((_, z), buf)| ReadOp { first_sector: sb.zone_first_sector(*z) + 1, buf })
            .collect();
        dev.read_batch(&mut ops)?;
        for (_, z) in chunks.get(i + 1).copied().unwrap_or_default() {
            dev.prefetch(sb.zone_first_sector(*z) + 1, data_sectors);
        }
        for ((epoch, z), buf) in chunk.iter().zip(&bufs) {
            scans.push((*epoch, *z, scan(buf, sb.zone_first_sector(*z) + 1, *epoch, false, true)));
        }
    }
    Ok(scans)
}

/// Opens `dev`: see the module docs.
pub(crate) fn recover<D: BlockDevice>(
    mut dev: D,
    cfg: EngineConfig,
) -> Result<Engine<D>, SectorError> {
    let (sb, copies) = read_superblock(&mut dev)?;
    let mut report =
        RecoveryReport { superblock_copies_valid: copies, ..RecoveryReport::default() };
    let headers = read_zone_headers(&mut dev, &sb, &mut report)?;
    // SEC-19: a clean shutdown's checkpoint, if it still describes the device, replaces the
    // scan; anything else about it is reported and the scan runs as if it were not there.
    if cfg.checkpoint_load {
        match super::checkpoint::load(&mut dev, &sb, &headers) {
            Ok(Some(loaded)) => return Ok(loaded.install(dev, sb, cfg, report)),
            Ok(None) => {}
            Err(reason) => report.checkpoint_refused = Some(reason),
        }
    }
    let Headers { used, free_epoch_max, .. } = headers;
    report.zones_in_use = used.len() as u32;
    let scans = scan_zones(&mut dev, &sb, &used)?;
    // Zones whose header is damaged are ignored, but their records still bound the epochs and
    // seqs handed out next (epoch 0 matches no record, so the scan accepts none of them).
    let damaged: Vec<(u32, u32)> = (report.corrupt_zone_headers.iter())
        .filter(|z| !used.iter().any(|(_, u)| u == *z))
        .map(|z| (0, *z))
        .collect();
    let damaged_scans = scan_zones(&mut dev, &sb, &damaged)?;
    let mark = scans
        .iter()
        .flat_map(|(_, _, s)| s.items.iter())
        .filter_map(|i| match i {
            Item::Rec { h, .. } => Some(h.durable_mark),
            Item::Bad { .. } => None,
        })
        .chain(scans.iter().map(|(_, _, s)| s.seal_mark))
        .max()
        .unwrap_or(0);
    let mut e = Engine::blank(dev, sb, cfg, report);
    let mut seq_max = damaged_scans.iter().map(|(_, _, s)| s.seq_max).max().unwrap_or(0);
    let mut epoch_max = used.iter().map(|(ep, _)| *ep).max().unwrap_or(0).max(free_epoch_max);
    for (_, _, s) in &damaged_scans {
        epoch_max = epoch_max.max(s.epoch_max);
    }
    let mut accepted: Vec<(u32, Vec<Item>, u64, bool)> = Vec::with_capacity(scans.len());
    for (epoch, z, s) in scans {
        seq_max = seq_max.max(s.seq_max);
        epoch_max = epoch_max.max(s.epoch_max);
        e.zones[z as usize].epoch = epoch;
        let sealed = s.sealed_at.is_some();
        let (items, end, cut) = classify(&mut e, z, epoch, s, mark);
        if sealed && !cut {
            // The seal ends the zone's data: a record, never live (SEC-13, SEC-16).
            e.zones[z as usize].records += 1;
            e.zones[z as usize].sealed = true;
        }
        accepted.push((z, items, end, cut));
    }
    e.next_seq = seq_max + 1;
    // SEC-4: a zone's header is durable before any record of its epoch is written, and a freed
    // zone's header keeps its epoch, so every epoch ever handed out is at most the largest
    // epoch of any header (in use, free, or damaged and then bounded by its records). Handing
    // out the next one can never make a stale record current.
    e.next_epoch = epoch_max.checked_add(1).ok_or(SectorError::DeviceFull)?;
    resolve(&mut e, &accepted);
    persist_cuts(&mut e, &accepted)?;
    // SEC-16: recovery takes no zone (seals go into the cut zones' own sectors), so a device
    // that was full opens with exactly its free zones, and deletes find their reserve.
    e.free_zones = e.free_zone_count();
    Ok(e)
}

/// Splits a zone's items into accepted ones and reports damage (step 4). Returns the accepted
/// items, the first sector after them, and whether the zone was cut (needs a seal).
fn classify<D: BlockDevice>(
    e: &mut Engine<D>,
    z: u32,
    epoch: u32,
    s: Scan,
    mark: u64,
) -> (Vec<Item>, u64, bool) {
    let mut kept = Vec::new();
    let mut end = e.sb.zone_first_sector(z) + 1;
    for item in s.items {
        let (sector, damaged, blank) = match &item {
            Item::Bad { sector, blank } => (*sector, true, *blank),
            Item::Rec { sector, payload_ok, .. } => (*sector, !payload_ok, false),
        };
        if damaged && position(epoch, sector) >= mark {
            // SEC-7: at or past the durable mark nothing was flushed: a torn tail, cut here.
            if !blank {
                e.report.torn_tails.push((z, sector));
            }
            // The whole sector goes, with any packed records before the damage in it: they
            // share its position, so none was flushed either, and the seal then covers the
            // damage (kept before a seal, a later recovery would meet it below the mark).
            kept.retain(|i| !matches!(i, Item::Rec { sector: s, .. } if *s == sector));
            let end =
                kept.iter().filter_map(item_end).max().unwrap_or(e.sb.zone_first_sector(z) + 1);
            return (kept, end, true);
        }
        if damaged {
            // SEC-6: below the durable mark this was flushed: corruption, reported.
            e.report.corrupt_sectors.push(sector);
        }
        if let Some(item_end) = item_end(&item) {
            end = end.max(item_end);
        }
        kept.push(item);
    }
    let zone_end = e.sb.zone_first_sector(z + 1);
    match s.sealed_at {
        Some(at) => (kept, at + 1, false),
        None => (kept, end, end < zone_end),
    }
}

/// The first sector after a record (a packed record ends inside its sector: one sector).
fn item_end(item: &Item) -> Option<u64> {
    let Item::Rec { h, sector, .. } = item else { return None };
    Some(sector + h.footprint_bytes().div_ceil(SECTOR_SIZE_BYTES) as u64)
}

/// Step 5: the newest valid record per key wins; CAS members only with their complete commit.
fn resolve<D: BlockDevice>(e: &mut Engine<D>, accepted: &[(u32, Vec<Item>, u64, bool)]) {
    let records: usize = accepted.iter().map(|(_, items, _, _)| items.len()).sum();
    let mut best: HashMap<Key, Cand> = HashMap::with_capacity(records);
    let mut members: HashMap<u64, Vec<(Key, Cand)>> = HashMap::new();
    let mut commits: HashMap<u64, Vec<(Key, u64)>> = HashMap::new();
    for (z, items, end, _) in accepted {
        let zone = &mut e.zones[*z as usize];
        zone.used_sectors = (end - e.sb.zone_first_sector(*z)) as u32;
        zone.put_seq_min = u64::MAX;
        let mut last_sector = None;
        for item in items {
            let Item::Rec { sector, h, payload_ok, payload } = item else { continue };
            e.report.records_scanned += 1;
            zone.count(h);
            if h.kind == Kind::Tombstone && last_sector != Some(*sector) {
                zone.tomb_sectors += 1; // SEC-16: a sector a tombstone opened (§9)
            }
            last_sector = Some(*sector);
            let c = Cand {
                seq: h.seq,
                sector: *sector,
                pos: position(zone.epoch, *sector),
                put: h.kind == Kind::Put,
                corrupt: !payload_ok,
            };
            match h.kind {
                Kind::Put | Kind::Tombstone => {
                    if h.flags & FLAG_TXN != 0 {
                        members.entry(h.txn).or_default().push((h.key, c));
                    } else {
                        offer(&mut best, h.key, c);
                    }
                }
                Kind::Commit => {
                    if let Some(list) = payload
                        .as_deref()
                        .filter(|_| *payload_ok)
                        .and_then(|p| format::decode_commit(p).ok())
                    {
                        commits.insert(h.seq, list);
                    }
                }
                Kind::Seal | Kind::Mark => {}
            }
        }
    }
    apply_txns(e, &mut best, members, &commits);
    // Presized: the table is built once, without growing on the way.
    e.index = Index::with_capacity(best.values().filter(|c| c.put && !c.corrupt).count());
    for (key, c) in best {
        if c.corrupt {
            e.corrupt.insert(
                key,
                (c.sector, format!("sector {}: payload CRC failed at recovery", c.sector)),
            );
            e.report.corrupt_keys.push(key);
        } else if c.put {
            e.index.insert(key, c.sector as u32);
            if let Some(z) = e.zone_of(c.sector) {
                e.zones[z as usize].live += 1;
            }
        } else {
            // The winning tombstone; a copy of it a crashed compaction left in a newer zone
            // lost the tie and is dead (SEC-16).
            e.note_tombstone(key, c.sector);
        }
    }
    e.report.corrupt_keys.sort_unstable();
}

/// SEC-8: all members the commit record lists, or nothing. Members it does not list are
/// orphans of an older, torn transaction whose commit seq was never durable and has been handed
/// out again after a recovery: they are never applied.
fn apply_txns<D: BlockDevice>(
    e: &mut Engine<D>,
    best: &mut HashMap<Key, Cand>,
    members: HashMap<u64, Vec<(Key, Cand)>>,
    commits: &HashMap<u64, Vec<(Key, u64)>>,
) {
    for (txn, ms) in members {
        let listed: Vec<(Key, Cand)> = match commits.get(&txn) {
            Some(list) => ms.iter().filter(|(k, c)| list.contains(&(*k, c.seq))).copied().collect(),
            None => Vec::new(),
        };
        let complete = commits.get(&txn).is_some_and(|list| list.len() == listed.len());
        if !complete || listed.len() != ms.len() {
            e.report.txns_rolled_back += 1;
        }
        if complete {
            for (k, c) in listed {
                offer(best, k, c);
            }
        }
    }
}

/// Step 6: seals every cut zone and flushes, so the cut is permanent (SEC-7). Every record on
/// the device is durable afterwards, so the durable mark covers every zone in use.
fn persist_cuts<D: BlockDevice>(
    e: &mut Engine<D>,
    accepted: &[(u32, Vec<Item>, u64, bool)],
) -> Result<(), SectorError> {
    let mut batch = Batch::default();
    // SEC-18: once flushed, everything recovery accepted is durable: the seals witness it (a
    // flush's Mark may have been lost to the power cut), so damage to it found by a later
    // recovery is corruption, not a torn tail.
    let top = position(e.next_epoch - 1, u64::from(u32::MAX));
    for (z, _, end, cut) in accepted {
        // Planted bug sector:no-seal-at-cut: the cut is not made permanent, so a later recovery
        // (with a higher durable mark) reads the damage as corruption and the records beyond
        // it as data (SEC-7).
        if !cut || *end >= e.sb.zone_first_sector(z + 1) || bugs::active("sector:no-seal-at-cut") {
            continue;
        }
        let zone = &mut e.zones[*z as usize];
        e.next_seq += 1;
        let witness = if bugs::active("sector:no-flush-mark") { 0 } else { top };
        let h = RecordHeader { sector: *end, ..seal(e.next_seq - 1, zone.epoch, witness) };
        batch.ops.push((*end, lone_header_sector(&h)));
        zone.count(&h);
        zone.used_sectors += 1;
        zone.cut = true; // SEC-16: its sectors after the seal are lost until it is compacted
    }
    let any = !batch.ops.is_empty();
    batch.submit(&mut e.dev)?;
    if any {
        e.dev.flush()?;
    }
    e.durable_mark = top;
    e.written_mark = top;
    Ok(())
}
