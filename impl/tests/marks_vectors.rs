//! Marks test vectors (`specs/vectors/marks.json`, `specs/marks.md` MARK-1..MARK-3, and the
//! mark values of file trees, `specs/fs.md` FS-23/FS-24).
//!
//! Pinned: which names are valid, the bytes of mark records (and why damaged ones are refused),
//! space cell values, history values, commit messages carrying their time, and the map root of a
//! small space built under a fixed salt (prolly tree, KV-1..KV-8). The file on disk must equal
//! what this test produces; regenerate after a deliberate format change with
//! `CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test marks_vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::fs::{History, commit_message, split_commit_message};
use cellar::marks::{
    MarkInfo, MarkName, Space, VolumeSpace, decode_mark, decode_space_value, encode_mark,
    encode_space_value,
};
use cellar::storage::cell::MemCell;
use cellar::storage::refs::Ref;
use cellar::storage::store::MemStore;
use cellar::storage::volume::Volume;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

const REGEN_COMMAND: &str = "CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test marks_vectors";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct VectorFile {
    schema: String,
    format: String,
    spec: String,
    regenerate: String,
    names: Vec<NameVector>,
    records: Vec<RecordVector>,
    bad_records: Vec<BadRecord>,
    space_values: Vec<SpaceValue>,
    history_values: Vec<HistoryValue>,
    commit_messages: Vec<MessageVector>,
    spaces: Vec<SpaceVector>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct NameVector {
    name: String,
    valid: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct RecordVector {
    created_ns: i64,
    salt_hex: String,
    value_hex: String,
    record_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct BadRecord {
    comment: String,
    record_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SpaceValue {
    map_root: Option<String>,
    value_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct HistoryValue {
    head: Option<String>,
    horizon: u64,
    value_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct MessageVector {
    text: String,
    time_ms: Option<i64>,
    message: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SpaceVector {
    comment: String,
    map_salt_hex: String,
    marks: Vec<RecordVector>,
    mark_names: Vec<String>,
    map_root: String,
}

fn record(created_ns: i64, salt: [u8; 32], value: Vec<u8>) -> RecordVector {
    let info = MarkInfo { created_ns, salt, value };
    let bytes = encode_mark(&info).unwrap();
    assert_eq!(decode_mark(&bytes).unwrap(), info, "MARK-2 round trip");
    RecordVector {
        created_ns,
        salt_hex: hex::encode(info.salt),
        value_hex: hex::encode(&info.value),
        record_hex: hex::encode(bytes),
    }
}

fn generate() -> VectorFile {
    let names = [
        "main",
        "v1.2",
        "feature_x-2",
        "origin/main",
        "a/b/c",
        "",
        "a b",
        "main:x",
        "m~1",
        ".hidden",
        "-flag",
        "a//b",
        "trailing/",
        "caf\u{e9}",
    ]
    .into_iter()
    .map(|n| NameVector { name: n.to_owned(), valid: MarkName::new(n).is_ok() })
    .chain([
        NameVector { name: "x".repeat(64), valid: true },
        NameVector { name: "x".repeat(65), valid: false },
    ])
    .collect();
    let head = Ref::from_array(&[0xab; 64]);
    let records = vec![
        record(0, [0; 32], Vec::new()),
        record(1_700_000_000_000_000_000, [0x11; 32], head.to_bytes().to_vec()),
        record(-1, [0xff; 32], History { head: Some(head), horizon: 5 }.encode()),
    ];
    let good = hex::decode(&records[1].record_hex).unwrap();
    let mut bad_version = good.clone();
    bad_version[0] = 2;
    let mut long_len = good.clone();
    long_len[41..43].copy_from_slice(&1025u16.to_be_bytes());
    let mut trailing = good.clone();
    trailing.push(0);
    let bad_records = [
        ("fewer than 43 bytes", good[..42].to_vec()),
        ("version 2", bad_version),
        ("value_len over 1024", long_len),
        ("value shorter than value_len", good[..good.len() - 1].to_vec()),
        ("a byte after the value", trailing),
    ]
    .into_iter()
    .map(|(c, b)| {
        assert!(decode_mark(&b).is_err(), "{c}");
        BadRecord { comment: c.to_owned(), record_hex: hex::encode(b) }
    })
    .collect();
    let space_values = [None, Some(head)]
        .into_iter()
        .map(|r| {
            let v = encode_space_value(r.as_ref());
            assert_eq!(decode_space_value(&v).unwrap(), r);
            SpaceValue { map_root: r.map(|r| r.to_string()), value_hex: hex::encode(v) }
        })
        .collect();
    let history_values = [
        History::default(),
        History::at(head),
        History { head: Some(head), horizon: 1 },
        History { head: Some(head), horizon: u64::MAX },
    ]
    .into_iter()
    .map(|h| {
        let v = h.encode();
        assert_eq!(History::decode(&v).unwrap(), h);
        HistoryValue {
            head: h.head.map(|r| r.to_string()),
            horizon: h.horizon,
            value_hex: hex::encode(v),
        }
    })
    .collect();
    let commit_messages =
        [("first", Some(1_700_000_000_123)), ("two\nlines", Some(-1)), ("no time", None)]
            .into_iter()
            .map(|(t, ms)| {
                let message = commit_message(t, ms);
                assert_eq!(split_commit_message(&message), (t, ms));
                MessageVector { text: t.to_owned(), time_ms: ms, message }
            })
            .collect();
    VectorFile {
        schema: "schema/marks-v1.schema.json".into(),
        format: "cellar marks test vectors v1".into(),
        spec: "specs/marks.md".into(),
        regenerate: REGEN_COMMAND.into(),
        names,
        records,
        bad_records,
        space_values,
        history_values,
        commit_messages,
        spaces: vec![small_space()],
    }
}

/// Three marks created through `VolumeSpace` under a fixed map salt: the map root is a
/// function of the (name, record) pairs and the salt (KV-4).
fn small_space() -> SpaceVector {
    let salt = [0x5a; 32];
    let space =
        VolumeSpace::new(Volume::new(Arc::new(MemCell::new()), Arc::new(MemStore::new())), salt);
    let marks = [("main", 10, [1u8; 32]), ("dev", 20, [2; 32]), ("release-1.0", 30, [3; 32])];
    for (n, t, s) in marks {
        space.create(&MarkName::new(n).unwrap(), s, t).unwrap();
    }
    let root = space.map_root().unwrap().unwrap();
    let listed = space.list().unwrap();
    SpaceVector {
        comment: "create main, dev, release-1.0 (empty values); names listed in byte order".into(),
        map_salt_hex: hex::encode(salt),
        marks: listed.iter().map(|(_, i)| record(i.created_ns, i.salt, i.value.clone())).collect(),
        mark_names: listed.iter().map(|(n, _)| n.to_string()).collect(),
        map_root: root.to_string(),
    }
}

#[test]
fn marks_vectors_match_the_file() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/marks.json");
    let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("CELLAR_REGEN_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with {REGEN_COMMAND}", path.display()));
    assert!(on_disk == text, "specs/vectors/marks.json is stale: regenerate with {REGEN_COMMAND}");
}
