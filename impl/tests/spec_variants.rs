//! The variant tables of `specs/` (ENC-3: a `#### enum NAME` heading, then `| tag | variant |
//! …` rows) agree with the code: every variant the table lists is encoded with the table's tag,
//! and the tag after the last one is refused by the decoder, so the code knows no variant the
//! table lacks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use cellar::Hash;
use cellar::db::gossip::Message;
use cellar::db::merge::VectorClock;
use cellar::sector::format::{Kind, RecordHeader};
use cellar::sector::proto::{
    CasReply, ErrorKind, ErrorReply, Expected, Request, Response, StatReply, WriteOptions,
};
use cellar::storage::refs::Ref;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

/// Enum name → (spec file, [(tag, variant)]).
type Tables = BTreeMap<String, (String, Vec<(u64, String)>)>;

/// Every `#### enum NAME` table in the specs.
fn spec_tables() -> Tables {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(name) = line.strip_prefix("#### enum ") else { continue };
            let mut rows = Vec::new();
            while let Some(l) = lines.peek() {
                let l = l.trim();
                if l.is_empty() && rows.is_empty() {
                    lines.next();
                    continue;
                }
                if !l.starts_with('|') {
                    break;
                }
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                if let Ok(tag) = cells[0].parse::<u64>() {
                    rows.push((tag, cells[1].trim_matches('`').to_owned()));
                }
                lines.next();
            }
            assert!(!rows.is_empty(), "{file}: enum {name} has an empty table");
            let prev = out.insert(name.trim().to_owned(), (file.clone(), rows));
            assert!(prev.is_none(), "enum {name} is tabled twice");
        }
    }
    out
}

/// Checks one table against `(variant, encoding)` samples whose first byte is the tag, and
/// that the decoder refuses the tag after the last.
fn check<T: DeserializeOwned>(tables: &Tables, name: &str, samples: &[(&str, Vec<u8>)]) {
    let (file, rows) = tables.get(name).unwrap_or_else(|| panic!("no table for enum {name}"));
    let listed: Vec<&str> = rows.iter().map(|(_, v)| v.as_str()).collect();
    let sampled: Vec<&str> = samples.iter().map(|(v, _)| *v).collect();
    assert_eq!(listed, sampled, "{file}: enum {name}: the table's variants (left) vs the code's");
    for ((tag, variant), (_, bytes)) in rows.iter().zip(samples) {
        assert_eq!(
            u64::from(bytes[0]),
            *tag,
            "{file}: enum {name}: {variant} is encoded with tag {} but the table says {tag}",
            bytes[0]
        );
        let mut probe = vec![u8::try_from(*tag).unwrap()];
        probe.resize(256, 0);
        assert!(
            postcard::take_from_bytes::<T>(&probe).is_ok(),
            "{file}: enum {name}: tag {tag} ({variant}) is not a variant of the code"
        );
    }
    let next = u8::try_from(rows.len()).unwrap();
    let mut probe = vec![next];
    probe.resize(256, 0);
    assert!(
        postcard::take_from_bytes::<T>(&probe).is_err(),
        "{file}: enum {name}: the code decodes tag {next}, which the table does not list"
    );
}

fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).unwrap()
}

#[test]
fn sector_protocol_tables_match_the_code() {
    let t = spec_tables();
    let opts = WriteOptions::default();
    let requests = [
        ("Read", Request::Read { key: 1 }),
        ("ReadRange", Request::ReadRange { ranges: vec![] }),
        ("ReadFollow", Request::ReadFollow { key: 1, records_max: 2 }),
        ("Write", Request::Write { key: 1, value: vec![], options: opts }),
        ("Append", Request::Append { key: 1, value: vec![], options: opts }),
        ("Delete", Request::Delete { key: 1, expected: None, flush: false }),
        ("Compare", Request::Compare { key: 1, expected: Expected::Absent }),
        ("Cas", Request::Cas { items: vec![], flush: false }),
        ("Flush", Request::Flush),
        ("Verify", Request::Verify { key: 1 }),
        ("Revert", Request::Revert { key: 1 }),
        ("Commit", Request::Commit { key: 1 }),
        ("Stat", Request::Stat),
    ];
    let requests: Vec<_> = requests.iter().map(|(n, r)| (*n, enc(r))).collect();
    check::<Request>(&t, "Request", &requests);

    let stat = StatReply {
        keys: 0,
        corrupt_keys: 0,
        live_bytes: 0,
        index_bytes: 0,
        free_zones: 0,
        zones: vec![],
    };
    let responses = [
        ("Record", Response::Record(None)),
        ("Records", Response::Records(vec![])),
        ("Written", Response::Written { version: 1 }),
        ("Deleted", Response::Deleted { existed: true }),
        ("Compared", Response::Compared { matches: true }),
        ("Cas", Response::Cas(CasReply::Applied { versions: vec![] })),
        ("Flushed", Response::Flushed),
        ("Verified", Response::Verified { version: 1 }),
        ("Done", Response::Done),
        ("Stat", Response::Stat(stat)),
        ("Error", Response::Error(ErrorReply::new(ErrorKind::Io, "x"))),
    ];
    let responses: Vec<_> = responses.iter().map(|(n, r)| (*n, enc(r))).collect();
    check::<Response>(&t, "Response", &responses);

    let expected = [("Absent", enc(&Expected::Absent)), ("Version", enc(&Expected::Version(3)))];
    check::<Expected>(&t, "Expected", &expected);

    let cas = [
        ("Applied", enc(&CasReply::Applied { versions: vec![None] })),
        ("Conflict", enc(&CasReply::Conflict { index: 0, key: 1, current: None })),
    ];
    check::<CasReply>(&t, "CasReply", &cas);

    use ErrorKind::*;
    let kinds = [
        ("MalformedFrame", MalformedFrame),
        ("FrameTooLarge", FrameTooLarge),
        ("InvalidRequest", InvalidRequest),
        ("NotFound", NotFound),
        ("VersionMismatch", VersionMismatch),
        ("Corrupt", Corrupt),
        ("NoSpace", NoSpace),
        ("Io", Io),
        ("ShuttingDown", ShuttingDown),
        ("Busy", Busy),
        ("Unsupported", Unsupported),
        ("Internal", Internal),
    ];
    let kinds: Vec<_> = kinds.iter().map(|(n, k)| (*n, enc(k))).collect();
    check::<ErrorKind>(&t, "ErrorKind", &kinds);
}

#[test]
fn gossip_message_table_matches_the_code() {
    let t = spec_tables();
    let head = Ref::from_array(&[7; 64]);
    let messages = [
        ("Announce", enc(&Message::Announce { head, clock: VectorClock::new() })),
        ("Want", enc(&Message::Want { cids: vec![Hash::ZERO] })),
        ("Objects", enc(&Message::Objects { blobs: vec![vec![1]] })),
    ];
    check::<Message>(&t, "Message", &messages);
}

#[test]
fn record_kind_table_matches_the_code() {
    let t = spec_tables();
    let (file, rows) = t.get("RecordKind").expect("sector.md tables enum RecordKind");
    let kinds = [Kind::Put, Kind::Tombstone, Kind::Commit, Kind::Seal, Kind::Mark];
    let header = |kind: Kind| RecordHeader {
        kind,
        flags: 0,
        key: 0,
        seq: 1,
        zone_epoch: 1,
        payload_len: 0,
        next: 0,
        txn: 0,
        value_len: 0,
        payload_crc: 0,
        durable_mark: 0,
        sector: 2,
    };
    assert_eq!(rows.len(), kinds.len(), "{file}: RecordKind rows vs the code's kinds");
    for ((tag, variant), kind) in rows.iter().zip(kinds) {
        assert_eq!(format!("{kind:?}"), *variant, "{file}: RecordKind tag {tag}");
        let bytes = header(kind).encode();
        assert_eq!(u64::from(bytes[4]), *tag, "{file}: RecordKind {variant}");
    }
    // The byte after the last tag (and 0) are refused.
    for bad in [0u8, u8::try_from(rows.len() + 1).unwrap()] {
        let mut bytes = header(Kind::Put).encode();
        bytes[4] = bad;
        let crc = crc32c::crc32c(&bytes[..76]);
        bytes[76..80].copy_from_slice(&crc.to_le_bytes());
        assert!(RecordHeader::decode(&bytes).is_err(), "{file}: kind byte {bad} accepted");
    }
}

#[test]
fn node_protocol_tables_match_the_code() {
    use cellar::db::gossip::frame::NetFrame;
    use cellar::db::gossip::service::{KvRequest, KvResponse};
    let t = spec_tables();
    let frames = [
        ("Gossip", enc(&NetFrame::Gossip { reply_to: "a:1".into(), message: vec![1] })),
        ("Request", enc(&NetFrame::Request(KvRequest::Status))),
    ];
    check::<NetFrame>(&t, "NetFrame", &frames);
    let s = || "/k".to_owned();
    let requests = [
        ("Set", KvRequest::Set(s(), vec![1])),
        ("Get", KvRequest::Get(s())),
        ("List", KvRequest::List(s(), true)),
        ("Delete", KvRequest::Delete(s())),
        ("Commit", KvRequest::Commit(s())),
        ("Rollback", KvRequest::Rollback),
        ("Log", KvRequest::Log(3)),
        ("Status", KvRequest::Status),
    ];
    let requests: Vec<_> = requests.iter().map(|(n, r)| (*n, enc(r))).collect();
    check::<KvRequest>(&t, "KvRequest", &requests);
    let responses = [
        ("Ok", KvResponse::Ok),
        ("Value", KvResponse::Value(None, vec![])),
        ("Keys", KvResponse::Keys(vec![])),
        ("Committed", KvResponse::Committed(s())),
        ("Log", KvResponse::Log(vec![])),
        ("Status", KvResponse::Status(vec![])),
        ("Error", KvResponse::Error(s())),
    ];
    let responses: Vec<_> = responses.iter().map(|(n, r)| (*n, enc(r))).collect();
    check::<KvResponse>(&t, "KvResponse", &responses);
}

#[test]
fn every_spec_table_is_checked() {
    let checked = [
        "Request",
        "Response",
        "Expected",
        "CasReply",
        "ErrorKind",
        "Message",
        "RecordKind",
        "NetFrame",
        "KvRequest",
        "KvResponse",
    ];
    for (name, (file, _)) in spec_tables() {
        assert!(
            checked.contains(&name.as_str()),
            "{file}: enum {name} has a table but no test checks it against the code"
        );
    }
}
