//! Sector protocol frames (`specs/sector-protocol.md`): length prefix, id, message — decoded by
//! `cellar::sector::proto`, with the error kind of the first failing check of the spec's order.

use crate::conform::kinds::{Failure, Kind, Outcome, hex, postcard_kind};
use cellar::sector::proto::{
    CasItem, CasReply, ErrorReply, Expected, FRAME_BODY_BYTES_MAX, KeyRange, Record, Request,
    Response, StatReply, WriteOptions, codec,
};
use serde_json::{Value, json};

/// Decodes `bytes` as `format`; `None` if the format is not one of this module's.
pub fn decode(format: &str, bytes: &[u8]) -> Option<Outcome<Value>> {
    Some(match format {
        "sector.request_frame" => frame(bytes, true),
        "sector.response_frame" => frame(bytes, false),
        _ => return None,
    })
}

/// The spec's order of checks (sector-protocol.md, "Decoding a frame").
fn frame(bytes: &[u8], request: bool) -> Outcome<Value> {
    let Some(prefix) = bytes.get(..4) else {
        return Err(Failure::new(Kind::Truncated, "no length prefix"));
    };
    let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if length > FRAME_BODY_BYTES_MAX {
        return Err(Failure::new(Kind::TooLarge, format!("length {length}")));
    }
    let end = 4 + length as usize;
    let Some(body) = bytes.get(4..end) else {
        return Err(Failure::new(Kind::Truncated, format!("{} of {end} bytes", bytes.len())));
    };
    if bytes.len() > end {
        return Err(Failure::new(Kind::TrailingBytes, "bytes after the frame"));
    }
    let (id, rest) = postcard::take_from_bytes::<u64>(body)
        .map_err(|e| postcard_kind(&e, Kind::InvalidValue))?;
    let value = if request {
        let (m, tail) = postcard::take_from_bytes::<Request>(rest)
            .map_err(|e| postcard_kind(&e, Kind::UnknownVariant))?;
        trailing(tail)?;
        // The verdict is the implementation's: its decoder must agree.
        codec::decode_frame(bytes).map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))?;
        json!({"id": id, "request": request_json(&m)})
    } else {
        let (m, tail) = postcard::take_from_bytes::<Response>(rest)
            .map_err(|e| postcard_kind(&e, Kind::UnknownVariant))?;
        trailing(tail)?;
        codec::decode_response_frame(bytes)
            .map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))?;
        json!({"id": id, "response": response_json(&m)})
    };
    Ok(value)
}

fn trailing(tail: &[u8]) -> Outcome<()> {
    if tail.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(Kind::TrailingBytes, format!("{} bytes after the message", tail.len())))
    }
}

fn expected_json(e: &Expected) -> Value {
    match e {
        Expected::Absent => json!({"type": "Absent"}),
        Expected::Version(v) => json!({"type": "Version", "value": v}),
    }
}

fn options_json(o: &WriteOptions) -> Value {
    json!({
        "compressed": o.compressed, "compact": o.compact, "revertible": o.revertible,
        "expected": o.expected.as_ref().map(expected_json), "flush": o.flush, "next": o.next,
    })
}

fn range_json(r: &KeyRange) -> Value {
    json!({"first": r.first, "last": r.last})
}

fn item_json(i: &CasItem) -> Value {
    json!({"key": i.key, "expected": expected_json(&i.expected),
           "new_value": i.new_value.as_ref().map(|v| hex(v))})
}

/// JSON form of a request (ENC-4).
pub fn request_json(r: &Request) -> Value {
    match r {
        Request::Read { key } => json!({"type": "Read", "key": key}),
        Request::ReadRange { ranges } => {
            json!({"type": "ReadRange", "ranges": ranges.iter().map(range_json).collect::<Vec<_>>()})
        }
        Request::ReadFollow { key, records_max } => {
            json!({"type": "ReadFollow", "key": key, "records_max": records_max})
        }
        Request::Write { key, value, options } => {
            json!({"type": "Write", "key": key, "value": hex(value), "options": options_json(options)})
        }
        Request::Append { key, value, options } => {
            json!({"type": "Append", "key": key, "value": hex(value), "options": options_json(options)})
        }
        Request::Delete { key, expected, flush } => json!({"type": "Delete", "key": key,
            "expected": expected.as_ref().map(expected_json), "flush": flush}),
        Request::Compare { key, expected } => {
            json!({"type": "Compare", "key": key, "expected": expected_json(expected)})
        }
        Request::Cas { items, flush } => json!({"type": "Cas",
            "items": items.iter().map(item_json).collect::<Vec<_>>(), "flush": flush}),
        Request::Flush => json!({"type": "Flush"}),
        Request::Verify { key } => json!({"type": "Verify", "key": key}),
        Request::Revert { key } => json!({"type": "Revert", "key": key}),
        Request::Commit { key } => json!({"type": "Commit", "key": key}),
        Request::Stat => json!({"type": "Stat"}),
        _ => json!({"type": "Unknown"}),
    }
}

fn record_json(r: &Record) -> Value {
    json!({"key": r.key, "version": r.version, "value": hex(&r.value), "next": r.next})
}

fn stat_json(s: &StatReply) -> Value {
    let zones: Vec<Value> = s
        .zones
        .iter()
        .map(|z| {
            json!({"zone": z.zone, "used_bytes": z.used_bytes, "records": z.records,
                        "live_records": z.live_records, "dead_percent": z.dead_percent})
        })
        .collect();
    json!({"keys": s.keys, "corrupt_keys": s.corrupt_keys, "live_bytes": s.live_bytes,
           "index_bytes": s.index_bytes, "free_zones": s.free_zones, "zones": zones})
}

fn cas_json(c: &CasReply) -> Value {
    match c {
        CasReply::Applied { versions } => json!({"type": "Applied", "versions": versions}),
        CasReply::Conflict { index, key, current } => {
            json!({"type": "Conflict", "index": index, "key": key, "current": current})
        }
    }
}

fn error_json(e: &ErrorReply) -> Value {
    let kind = serde_json::to_value(e.kind).unwrap_or(Value::Null);
    json!({"kind": kind, "message": e.message})
}

/// JSON form of a response (ENC-4).
pub fn response_json(r: &Response) -> Value {
    match r {
        Response::Record(rec) => json!({"type": "Record", "value": rec.as_ref().map(record_json)}),
        Response::Records(recs) => {
            json!({"type": "Records", "value": recs.iter().map(record_json).collect::<Vec<_>>()})
        }
        Response::Written { version } => json!({"type": "Written", "version": version}),
        Response::Deleted { existed } => json!({"type": "Deleted", "existed": existed}),
        Response::Compared { matches } => json!({"type": "Compared", "matches": matches}),
        Response::Cas(c) => json!({"type": "Cas", "value": cas_json(c)}),
        Response::Flushed => json!({"type": "Flushed"}),
        Response::Verified { version } => json!({"type": "Verified", "version": version}),
        Response::Done => json!({"type": "Done"}),
        Response::Stat(s) => json!({"type": "Stat", "value": stat_json(s)}),
        Response::Error(e) => json!({"type": "Error", "value": error_json(e)}),
        _ => json!({"type": "Unknown"}),
    }
}
