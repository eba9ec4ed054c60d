//! Sector engine formats (`specs/sector.md` §2–§4): superblock, zone header, record header,
//! commit payload — decoded by `cellar::sector::format`.

use super::json;
use crate::conform::kinds::{Failure, Kind, Outcome};
use cellar::sector::format::{
    self, FormatError, Kind as RecordKind, RecordHeader, Superblock, ZoneHeader,
};
use serde_json::{Value, json};

fn kind_of(e: &FormatError) -> Failure {
    let kind = match e {
        FormatError::BadMagic => Kind::BadMagic,
        FormatError::Crc { .. } => Kind::BadChecksum,
        FormatError::Truncated => Kind::Truncated,
        FormatError::Field { field: "format_version", .. } => Kind::UnsupportedVersion,
        FormatError::Field { field: "kind", .. } => Kind::UnknownVariant,
        _ => Kind::InvalidValue,
    };
    Failure::new(kind, e.to_string())
}

fn kind_name(k: RecordKind) -> &'static str {
    match k {
        RecordKind::Put => "Put",
        RecordKind::Tombstone => "Tombstone",
        RecordKind::Commit => "Commit",
        RecordKind::Seal => "Seal",
        RecordKind::Mark => "Mark",
    }
}

fn kind_from_name(s: &str) -> Outcome<RecordKind> {
    Ok(match s {
        "Put" => RecordKind::Put,
        "Tombstone" => RecordKind::Tombstone,
        "Commit" => RecordKind::Commit,
        "Seal" => RecordKind::Seal,
        "Mark" => RecordKind::Mark,
        other => return Err(Failure::new(Kind::UnknownVariant, format!("record kind {other}"))),
    })
}

/// JSON form of a record header (sector.md §4.1).
pub fn header_json(h: &RecordHeader) -> Value {
    json!({
        "kind": kind_name(h.kind), "flags": h.flags, "key": h.key, "seq": h.seq,
        "zone_epoch": h.zone_epoch, "payload_len": h.payload_len, "next": h.next, "txn": h.txn,
        "durable_mark": h.durable_mark, "value_len": h.value_len, "payload_crc": h.payload_crc,
        "sector": h.sector,
    })
}

fn header_from_json(v: &Value) -> Outcome<RecordHeader> {
    Ok(RecordHeader {
        kind: kind_from_name(&json::string(v, "kind")?)?,
        flags: json::uint_as(v, "flags")?,
        key: json::uint(v, "key")?,
        seq: json::uint(v, "seq")?,
        zone_epoch: json::uint_as(v, "zone_epoch")?,
        payload_len: json::uint_as(v, "payload_len")?,
        next: json::uint(v, "next")?,
        txn: json::uint(v, "txn")?,
        durable_mark: json::uint(v, "durable_mark")?,
        value_len: json::uint_as(v, "value_len")?,
        payload_crc: json::uint_as(v, "payload_crc")?,
        sector: json::uint(v, "sector")?,
    })
}

fn copy_of(bytes: &[u8]) -> u64 {
    bytes.get(32..36).map_or(0, |b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
}

/// Decodes `bytes` as `format`; `None` if the format is not one of this module's.
pub fn decode(format: &str, params: &Value, bytes: &[u8]) -> Option<Outcome<Value>> {
    Some(match format {
        "sector.superblock" => Superblock::decode(bytes).map_err(|e| kind_of(&e)).map(|sb| {
            json!({
                "zone_sector_count": sb.zone_sector_count, "zone_count": sb.zone_count,
                "device_sector_count": sb.device_sector_count, "copy": copy_of(bytes),
            })
        }),
        "sector.zone_header" => {
            let free = params.get("free").and_then(Value::as_bool).unwrap_or(false);
            let r = if bytes.len() < 32 {
                Err(FormatError::Truncated)
            } else if free {
                ZoneHeader::decode_free(bytes)
            } else {
                ZoneHeader::decode(bytes)
            };
            r.map_err(|e| kind_of(&e)).map(|z| json!({"zone": z.zone, "epoch": z.epoch}))
        }
        "sector.record_header" => {
            RecordHeader::decode(bytes).map_err(|e| kind_of(&e)).and_then(|h| match bytes.len() {
                80 => Ok(header_json(&h)),
                n => Err(Failure::new(Kind::TrailingBytes, format!("{n} bytes, not 80"))),
            })
        }
        "sector.commit_payload" => commit_payload(bytes),
        _ => return None,
    })
}

fn commit_payload(bytes: &[u8]) -> Outcome<Value> {
    let members = format::decode_commit(bytes).map_err(|e| kind_of(&e))?;
    let members: Vec<Value> = members.iter().map(|(k, s)| json!({"key": k, "seq": s})).collect();
    Ok(json!({"members": members}))
}

/// Encodes the JSON form `value` as `format`; `None` if not one of this module's.
pub fn encode(format: &str, params: &Value, value: &Value) -> Option<Outcome<Vec<u8>>> {
    Some(match format {
        "sector.superblock" => (|| {
            let sb = Superblock {
                zone_sector_count: json::uint_as(value, "zone_sector_count")?,
                zone_count: json::uint_as(value, "zone_count")?,
                device_sector_count: json::uint(value, "device_sector_count")?,
            };
            Ok(sb.encode(json::uint_as(value, "copy")?))
        })(),
        "sector.zone_header" => (|| {
            let z = ZoneHeader {
                zone: json::uint_as(value, "zone")?,
                epoch: json::uint_as(value, "epoch")?,
            };
            let free = params.get("free").and_then(Value::as_bool).unwrap_or(false);
            let sector = if free { z.encode_free() } else { z.encode() };
            Ok(sector.get(..32).unwrap_or(&sector).to_vec())
        })(),
        "sector.record_header" => header_from_json(value).map(|h| h.encode().to_vec()),
        "sector.commit_payload" => (|| {
            let mut members = Vec::new();
            for m in json::list(value, "members")? {
                members.push((json::uint(m, "key")?, json::uint(m, "seq")?));
            }
            Ok(format::encode_commit(&members))
        })(),
        _ => return None,
    })
}
