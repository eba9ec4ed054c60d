//! Runs the `channel_handshake` fuzz target's seed corpus (`fuzz/corpus/channel_handshake/`) as
//! an ordinary test (specs/channel.md CH-2..CH-7), driving the channel exactly as the target
//! does: `ok-*` seeds must be taken without an error, `err-*` seeds must fail the channel, and no
//! file may panic. Files libFuzzer adds (hash names) are only checked for not panicking.
//!
//! Regenerate the named seeds: `cargo test -p cellar --test corpus_channel -- --ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::record::{FLAG_LAST, TAG_BYTES, put_record};
use cellar::net::channel::{Channel, ChannelConfig, ChannelError, ChannelPsk, StaticKeys};
use std::path::PathBuf;
use std::sync::Arc;

/// The fuzz target's PSK (`fuzz/fuzz_targets/channel_handshake.rs` — keep equal).
const PSK: [u8; 32] = [0x42; 32];

fn entropy(seed: u64) -> Arc<dyn Entropy> {
    Arc::new(DetEntropy::new(seed))
}

fn keys(seed: u64) -> StaticKeys {
    StaticKeys::generate(entropy(seed)).unwrap()
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/channel_handshake")
}

/// What the fuzz target does with one input: `Ok` if every piece was taken.
fn drive(data: &[u8]) -> Result<usize, ChannelError> {
    let Some((&mode, rest)) = data.split_first() else { return Ok(0) };
    let psk = ChannelPsk::from_bytes(PSK);
    let cfg = ChannelConfig::default();
    let mut r = Channel::responder(&keys(2), &psk, entropy(12), cfg, 0).unwrap();
    if mode & 1 == 1 {
        let mut i = Channel::initiator(&keys(1), &psk, entropy(11), cfg, 0).unwrap();
        r.receive(&i.take_output(), 0).unwrap();
        i.receive(&r.take_output(), 0).unwrap();
        r.receive(&i.take_output(), 0).unwrap();
    }
    let mut events = 0;
    for chunk in rest.chunks(usize::from(mode >> 1) + 1) {
        events += r.receive(chunk, 1)?.len();
    }
    Ok(events)
}

/// The fixed initiator's first message, and (after the handshake) its records of `messages`.
fn flights(psk: [u8; 32], messages: &[&[u8]]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let psk = ChannelPsk::from_bytes(psk);
    let cfg = ChannelConfig::default();
    let mut i = Channel::initiator(&keys(1), &psk, entropy(11), cfg, 0).unwrap();
    let m1 = i.take_output();
    let mut r = Channel::responder(&keys(2), &psk, entropy(12), cfg, 0).unwrap();
    if r.receive(&m1, 0).is_err() {
        return (m1, Vec::new());
    }
    i.receive(&r.take_output(), 0).unwrap();
    let _ = i.take_output();
    let records = messages
        .iter()
        .map(|m| {
            i.send(m).unwrap();
            i.take_output()
        })
        .collect();
    (m1, records)
}

fn with_mode(mode: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode];
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The named seeds: file name and bytes.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (m1, recs) = flights(PSK, &[b"abc", b"", &[7; 70_000]]);
    let (m1_wrong_psk, _) = flights([0x43; 32], &[]);
    let mut flipped = m1.clone();
    flipped[10] ^= 0x04;
    let mut forged_body = vec![FLAG_LAST];
    forged_body.extend_from_slice(b"forged");
    forged_body.extend_from_slice(&[0; TAG_BYTES]);
    let mut forged = Vec::new();
    put_record(&mut forged, &forged_body).unwrap();
    vec![
        ("ok-hs-first-message-bytewise", with_mode(0, &[&m1])),
        ("ok-hs-first-message-whole", with_mode(254, &[&m1])),
        ("ok-hs-first-message-half", with_mode(254, &[&m1[..m1.len() / 2]])),
        ("ok-tr-one-record", with_mode(1, &[&recs[0]])),
        ("ok-tr-three-messages", with_mode(255, &[&recs[0], &recs[1], &recs[2]])),
        ("err-hs-wrong-psk", with_mode(254, &[&m1_wrong_psk])),
        ("err-hs-flipped", with_mode(254, &[&flipped])),
        ("err-hs-zero-record", with_mode(0, &[&[0, 0, 1]])),
        ("err-hs-garbage", with_mode(6, &[&[0, 5, 1, 2, 3, 4, 5]])),
        ("err-hs-two-first-messages", with_mode(254, &[&m1, &m1])),
        ("err-tr-handshake-replayed", with_mode(1, &[&m1])),
        ("err-tr-forged-record", with_mode(1, &[&forged])),
        ("err-tr-reordered", with_mode(255, &[&recs[1], &recs[0]])),
        ("err-tr-replayed", with_mode(255, &[&recs[0], &recs[0]])),
        ("err-tr-short-record", with_mode(1, &[&[0, 3, 1, 2, 3]])),
    ]
}

#[test]
#[ignore = "writes the seed corpus; run with --ignored to regenerate"]
fn regenerate_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

#[test]
fn named_seeds_are_checked_in_and_current() {
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(corpus_dir().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; regenerate the corpus (see module docs)"));
        assert_eq!(on_disk, bytes, "{name} differs from its generator; regenerate the corpus");
    }
}

#[test]
fn every_corpus_file_is_taken_or_refused_as_named() {
    let mut files = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let got = drive(&std::fs::read(&path).unwrap());
        if name.starts_with("ok-") {
            assert!(got.is_ok(), "{name}: {got:?}");
        } else if name.starts_with("err-") {
            assert!(got.is_err(), "{name}: {got:?}");
        }
        files += 1;
    }
    assert!(files >= seeds().len(), "the seed corpus lost files: {files}");
    assert_eq!(drive(&seeds()[4].1), Ok(3), "three messages after the handshake");
}
