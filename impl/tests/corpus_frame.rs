//! Runs the `decode_frame` fuzz target's seed corpus (`fuzz/corpus/decode_frame/`) as an
//! ordinary test (PROTO-1..PROTO-5).
//!
//! Every file must pass `check_frame_stream` (what the fuzz target asserts). Files whose name
//! starts with an outcome (`ok-`, `undecodable-`, `truncated-`, `toolarge-`) must also decode
//! their first frame to that outcome, so a decoder that grows lenient (accepts trailing bytes,
//! say) fails here. Files libFuzzer adds (hash names) are only checked for the properties.
//!
//! Regenerate the named seeds: `cargo test -p cellar --test corpus_frame -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::proto::codec::{FrameError, check_frame_stream};
use cellar::sector::proto::{
    CasItem, Expected, FRAME_BODY_BYTES_MAX, KeyRange, Request, RequestFrame, WriteOptions,
    decode_frame, encode_request_frame,
};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_frame")
}

fn outcome(bytes: &[u8]) -> &'static str {
    match decode_frame(bytes) {
        Ok(_) => "ok",
        Err(FrameError::Undecodable { .. }) => "undecodable",
        Err(FrameError::Truncated { .. }) => "truncated",
        Err(FrameError::TooLarge { .. }) => "toolarge",
        Err(_) => "other",
    }
}

#[test]
fn seed_corpus_decodes_as_named() {
    let named = check_corpus().unwrap();
    assert!(named >= 20, "the seed corpus lost files: {named} named seeds");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_accept_trailing_bytes_fails_the_corpus() {
    let _bug = cellar::bugs::plant("sector_proto:accept-trailing-bytes").unwrap();
    let err = check_corpus().unwrap_err();
    assert!(err.contains("undecodable-trailing-byte"), "{err}");
}

/// Checks every corpus file; returns how many named seeds there were.
fn check_corpus() -> Result<u32, String> {
    let mut named = 0;
    let mut entries: Vec<_> =
        std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        check_frame_stream(&bytes).map_err(|e| format!("{name}: {e}"))?;
        if let Some((expect, _)) = name.split_once('-')
            && ["ok", "undecodable", "truncated", "toolarge"].contains(&expect)
        {
            let got = outcome(&bytes);
            if got != expect {
                return Err(format!("{name}: decodes as {got}"));
            }
            named += 1;
        }
    }
    Ok(named)
}

fn frame(id: u64, request: Request) -> Vec<u8> {
    encode_request_frame(&RequestFrame { id, request }).unwrap()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let opts = WriteOptions {
        compressed: true,
        compact: true,
        revertible: true,
        expected: Some(Expected::Version(7)),
        flush: true,
        next: Some(43),
    };
    let write = frame(1, Request::Write { key: 42, value: vec![0xab; 100], options: opts });
    let cas = frame(
        9,
        Request::Cas {
            items: vec![
                CasItem { key: 1, expected: Expected::Absent, new_value: Some(b"a".to_vec()) },
                CasItem { key: 2, expected: Expected::Version(3), new_value: None },
            ],
            flush: true,
        },
    );
    let mut two = frame(3, Request::Flush);
    two.extend(frame(4, Request::Stat));
    let mut trailing = frame(5, Request::Read { key: 1 });
    trailing.push(0);
    let len = u32::try_from(trailing.len() - 4).unwrap();
    trailing[..4].copy_from_slice(&len.to_le_bytes());
    let mut resync = vec![2, 0, 0, 0, 6, 250];
    resync.extend(frame(7, Request::Flush));
    vec![
        ("ok-read", frame(0, Request::Read { key: 0 })),
        ("ok-read-max-key", frame(u64::MAX - 1, Request::Read { key: u64::MAX })),
        (
            "ok-read-range",
            frame(
                2,
                Request::ReadRange {
                    ranges: vec![KeyRange::single(5), KeyRange { first: 10, last: 20 }],
                },
            ),
        ),
        ("ok-read-follow", frame(2, Request::ReadFollow { key: 5, records_max: 8 })),
        ("ok-write-options", write.clone()),
        (
            "ok-write-empty",
            frame(1, Request::Write { key: 1, value: vec![], options: WriteOptions::default() }),
        ),
        ("ok-append", frame(1, Request::Append { key: 1, value: b"xyz".to_vec(), options: opts })),
        ("ok-delete", frame(1, Request::Delete { key: 1, expected: None, flush: true })),
        ("ok-compare", frame(1, Request::Compare { key: 1, expected: Expected::Version(1) })),
        ("ok-cas", cas.clone()),
        ("ok-flush-then-stat", two),
        ("ok-verify", frame(1, Request::Verify { key: 3 })),
        ("ok-revert", frame(1, Request::Revert { key: 3 })),
        ("ok-commit", frame(1, Request::Commit { key: 3 })),
        ("undecodable-empty-body", vec![0, 0, 0, 0]),
        ("undecodable-bad-variant-then-resync", resync),
        ("undecodable-trailing-byte", trailing),
        ("undecodable-reserved-id", {
            let mut b = vec![11, 0, 0, 0];
            b.extend([0xff; 9]);
            b.extend([0x01, 8]); // u64::MAX varint, then Flush (variant 8)
            b
        }),
        ("undecodable-broken-varint", vec![2, 0, 0, 0, 0xff, 0xff]),
        ("undecodable-bad-bool", {
            let mut b = frame(1, Request::Delete { key: 1, expected: None, flush: true });
            let last = b.len() - 1;
            b[last] = 2;
            b
        }),
        ("truncated-prefix", vec![5, 0]),
        ("truncated-body", write[..write.len() - 10].to_vec()),
        ("truncated-cas", cas[..cas.len() - 1].to_vec()),
        ("toolarge-prefix", (FRAME_BODY_BYTES_MAX + 1).to_le_bytes().to_vec()),
        ("toolarge-max-u32", vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
    ]
}

#[test]
#[ignore = "regenerates the seed corpus files"]
fn regenerate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        assert_eq!(outcome(&bytes), name.split_once('-').unwrap().0, "{name}");
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn seeds_match_their_names() {
    for (name, bytes) in seeds() {
        assert_eq!(outcome(&bytes), name.split_once('-').unwrap().0, "{name}");
    }
}
