//! The commit scheme for multi-key CAS (`specs/sector.md` §5.3, SEC-8): the members are written
//! as records flagged `TXN` carrying the commit record's seq, followed by one commit record that
//! lists every (key, seq); all of them contiguous in one zone and submitted as one device write.
//! Recovery applies the members only if the commit record and every member it lists are valid,
//! so a crash leaves all of the CAS or none of it.
//!
//! Never splits a transaction across zones (the commit record must die with its members).

use super::engine::Engine;
use super::format::{self, FLAG_TXN, Kind, RECORD_HEADER_SIZE_BYTES, RecordHeader};
use super::write::{Batch, tombstone};
use super::zones::Room;
use super::{BlockDevice, CasNew, CasOp, SECTOR_SIZE_BYTES, SectorError};
use crate::bugs;

/// Sectors a CAS of `ops` occupies: every member (a sector each at least) and the commit record
/// listing them, contiguous in one zone. Known before any seq is taken, so a delete-only CAS
/// can reclaim that much room first (SEC-16).
pub(crate) fn txn_sectors(ops: &[CasOp]) -> u32 {
    let members: usize = ops.iter().map(|op| member_header(0, op, 0).footprint_bytes()).sum();
    let commit_payload_bytes = 4 + 16 * ops.len();
    let commit = (RECORD_HEADER_SIZE_BYTES + commit_payload_bytes).div_ceil(SECTOR_SIZE_BYTES);
    u32::try_from(members / SECTOR_SIZE_BYTES + commit).unwrap_or(u32::MAX)
}

/// Writes the members of an already-checked CAS and its commit record; installs them.
/// Returns each member's new sector (`None` for deletes). `room` is the CAS's class (SEC-16).
pub(crate) fn write_txn<D: BlockDevice>(
    e: &mut Engine<D>,
    ops: &[CasOp],
    room: Room,
) -> Result<Vec<Option<u32>>, SectorError> {
    let max = e.value_size_max_bytes();
    for op in ops {
        if let CasNew::Put(v) = &op.new
            && v.len() > max
        {
            return Err(SectorError::TooLarge {
                what: "value",
                size: v.len() as u64,
                max: max as u64,
            });
        }
    }
    if bugs::active("sector:cas-not-atomic") {
        return write_members_unlinked(e, ops, room);
    }
    let mut headers: Vec<RecordHeader> =
        ops.iter().map(|op| member_header(e.take_seq(), op, 0)).collect();
    let commit_seq = e.take_seq();
    for h in &mut headers {
        h.txn = commit_seq;
    }
    let members: Vec<(u64, u64)> = headers.iter().map(|h| (h.key, h.seq)).collect();
    let commit_payload = format::encode_commit(&members);
    let commit = RecordHeader {
        kind: Kind::Commit,
        payload_len: commit_payload.len() as u32,
        payload_crc: crc32c::crc32c(&commit_payload),
        ..tombstone(0, commit_seq, 0, 0)
    };
    let total: usize =
        headers.iter().map(RecordHeader::footprint_bytes).sum::<usize>() + commit.footprint_bytes();
    let n = (total / SECTOR_SIZE_BYTES) as u32;
    debug_assert_eq!(n, txn_sectors(ops), "SEC-16: the room reclaimed is the room used");
    let mut batch = Batch::default();
    e.check_floor(room)?;
    let base = e.place(&mut batch, n, room)?;
    let epoch = e.head_epoch();
    let mut bytes = Vec::with_capacity(total);
    let mut sectors = Vec::with_capacity(ops.len());
    let mut tombs = Vec::new();
    let mut at = base;
    let payloads = ops.iter().map(|op| match &op.new {
        CasNew::Put(v) => v.as_slice(),
        CasNew::Delete => &[],
    });
    for (h, payload) in headers
        .iter_mut()
        .zip(payloads)
        .chain(std::iter::once((&mut commit.clone(), commit_payload.as_slice())))
    {
        h.zone_epoch = epoch;
        h.durable_mark = e.durable_mark;
        h.sector = at; // SEC-17
        let fp = h.footprint_bytes();
        bytes.extend_from_slice(&h.encode());
        bytes.extend_from_slice(payload);
        bytes.resize(bytes.len() + fp - RECORD_HEADER_SIZE_BYTES - payload.len(), 0);
        let fp_sectors = (fp / SECTOR_SIZE_BYTES) as u32;
        e.note_record(at, fp_sectors, h);
        if h.kind == Kind::Put {
            sectors.push(Some(at as u32));
        } else if h.kind == Kind::Tombstone {
            sectors.push(None);
            tombs.push((h.key, at));
        }
        at += u64::from(fp_sectors);
    }
    debug_assert_eq!(at, base + u64::from(n), "SEC-8: members and commit are contiguous");
    batch.ops.push((base, bytes));
    batch.submit(&mut e.dev)?;
    for (op, s) in ops.iter().zip(&sectors) {
        e.install(op.key, s.map(u64::from), false);
    }
    for (key, sector) in tombs {
        e.note_tombstone(key, sector);
    }
    Ok(sectors)
}

fn member_header(seq: u64, op: &CasOp, flags: u8) -> RecordHeader {
    match &op.new {
        CasNew::Put(v) => RecordHeader {
            kind: Kind::Put,
            payload_len: v.len() as u32,
            value_len: v.len() as u32,
            payload_crc: crc32c::crc32c(v),
            ..tombstone(op.key, seq, flags | FLAG_TXN, 0)
        },
        CasNew::Delete => tombstone(op.key, seq, flags | FLAG_TXN, 0),
    }
}

/// Planted bug `sector:cas-not-atomic`: members written as independent records, no commit
/// record, one device write each — a crash can keep some and lose others.
fn write_members_unlinked<D: BlockDevice>(
    e: &mut Engine<D>,
    ops: &[CasOp],
    room: Room,
) -> Result<Vec<Option<u32>>, SectorError> {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let mut h = member_header(e.take_seq(), op, 0);
        h.flags &= !FLAG_TXN;
        let payload: &[u8] = match &op.new {
            CasNew::Put(v) => v,
            CasNew::Delete => &[],
        };
        let mut batch = Batch::default();
        let s = e.append_record(&mut batch, h, payload, room)?;
        batch.submit(&mut e.dev)?;
        let put = matches!(op.new, CasNew::Put(_));
        e.install(op.key, put.then_some(s), false);
        if !put {
            e.note_tombstone(op.key, s);
        }
        out.push(put.then_some(s as u32));
    }
    Ok(out)
}
