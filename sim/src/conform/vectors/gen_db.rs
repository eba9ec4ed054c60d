//! Vectors for vector clocks, prolly-tree nodes, key states, snapshots and gossip messages.

use super::mutate::{pseudo, standard};
use super::{Builder, Op};
use crate::conform::kinds::Kind;
use cellar::db::gossip::{Message, encode_message};
use cellar::db::kv::{Entry, NODE_VERSION, Node, encode_node};
use cellar::db::merge::{KeyState, MergePolicy, NodeId, VectorClock, merge, write};
use cellar::db::snapshot::Snapshot;
use cellar::{Hash, Ref};

/// Every builder of this module.
pub fn all() -> Vec<Builder> {
    vec![clock(), node(), key_state(), snapshot(), gossip()]
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A clock's bytes as written, canonical or not.
fn raw_clock(pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(pairs.len() as u64, &mut out);
    for (n, c) in pairs {
        varint(*n, &mut out);
        varint(*c, &mut out);
    }
    out
}

fn clock_of(pairs: &[(u32, u64)]) -> VectorClock {
    VectorClock::from_entries(pairs.iter().map(|(n, c)| (NodeId(*n), *c)))
}

fn clock() -> Builder {
    let mut b = Builder::new("kv.clock", Op::Decode, "specs/kv.md#kv-9-value-format");
    b.valid("the zero clock", &["Edge"], &raw_clock(&[]));
    b.valid("one entry", &[], &raw_clock(&[(0, 1)]));
    b.valid("three entries", &[], &raw_clock(&[(1, 5), (2, 300), (70_000, 1)]));
    b.valid("largest node and count", &["Edge"], &raw_clock(&[(u64::from(u32::MAX), u64::MAX)]));
    let many: Vec<(u64, u64)> = (0..1024).map(|i| (i, 1)).collect();
    b.valid("1024 entries: the most", &["Edge"], &raw_clock(&many));
    let too_many: Vec<(u64, u64)> = (0..1025).map(|i| (i, 1)).collect();
    b.invalid("1025 entries", &["Oversize"], &raw_clock(&too_many), Kind::TooLarge);
    b.invalid("a zero count", &["NonCanonical"], &raw_clock(&[(1, 0)]), Kind::NonCanonical);
    b.invalid(
        "nodes out of order",
        &["NonCanonical"],
        &raw_clock(&[(2, 1), (1, 1)]),
        Kind::NonCanonical,
    );
    b.invalid("a node twice", &["NonCanonical"], &raw_clock(&[(1, 1), (1, 2)]), Kind::NonCanonical);
    b.invalid("node 2^32", &["InvalidValue"], &raw_clock(&[(1 << 32, 1)]), Kind::InvalidValue);
    b.acceptable("count 1 as an overlong varint 81 00", &["NonCanonical"], &[1, 1, 0x81, 0x00]);
    standard(&mut b, "a two-entry clock", &raw_clock(&[(1, 5), (2, 300)]), 8);
    b
}

fn node_bytes(level: u8, entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let entries =
        entries.iter().map(|(k, v)| Entry { key: k.to_vec(), value: v.to_vec() }).collect();
    postcard::to_allocvec(&Node { version: NODE_VERSION, level, entries }).unwrap_or_default()
}

fn node() -> Builder {
    let mut b = Builder::new("kv.node", Op::Decode, "specs/kv.md#kv-1-node-layout");
    b.valid("the leaf {a: v, b: v} of KV-1", &[], &node_bytes(0, &[(b"a", b"v"), (b"b", b"v")]));
    b.valid("a leaf with an empty key and value", &["Edge"], &node_bytes(0, &[(b"", b"")]));
    let r1 = pseudo("child 1", 64);
    let r2 = pseudo("child 2", 64);
    b.valid("an internal node of two children", &[], &node_bytes(1, &[(b"a", &r1), (b"m", &r2)]));
    b.valid("level 40: the highest", &["Edge"], &node_bytes(40, &[(b"k", &r1)]));
    let big_key = vec![b'k'; 4096];
    b.valid("a 4096-byte key: the largest", &["Edge"], &node_bytes(0, &[(&big_key, b"v")]));
    let mut v2 = node_bytes(0, &[(b"a", b"v")]);
    v2[0] = 2;
    b.invalid("version 2", &["BadVersion"], &v2, Kind::UnsupportedVersion);
    b.invalid("level 41", &["InvalidValue"], &node_bytes(41, &[(b"k", &r1)]), Kind::InvalidValue);
    b.invalid("no entries", &["InvalidValue"], &node_bytes(0, &[]), Kind::InvalidValue);
    b.invalid(
        "keys out of order",
        &["InvalidValue"],
        &node_bytes(0, &[(b"b", b""), (b"a", b"")]),
        Kind::InvalidValue,
    );
    b.invalid(
        "a key twice",
        &["InvalidValue"],
        &node_bytes(0, &[(b"a", b""), (b"a", b"")]),
        Kind::InvalidValue,
    );
    let long_key = vec![b'k'; 4097];
    b.invalid(
        "a 4097-byte key",
        &["Oversize"],
        &node_bytes(0, &[(&long_key, b"v")]),
        Kind::TooLarge,
    );
    b.invalid(
        "an internal value of 63 bytes",
        &["InvalidValue"],
        &node_bytes(1, &[(b"a", &r1[..63])]),
        Kind::InvalidValue,
    );
    b.invalid(
        "keys out of order and a key too long: sizes are checked first",
        &["Oversize"],
        &node_bytes(0, &[(b"b", b""), (&long_key, b"")]),
        Kind::TooLarge,
    );
    b.acceptable(
        "value length 1 as an overlong varint 81 00",
        &["NonCanonical"],
        &[1, 0, 1, 1, b'a', 0x81, 0x00, b'v'],
    );
    let leaf = encode_node(&Node {
        version: 1,
        level: 0,
        entries: vec![
            Entry { key: b"a".to_vec(), value: b"1".to_vec() },
            Entry { key: b"b".to_vec(), value: vec![] },
        ],
    })
    .unwrap_or_default();
    standard(&mut b, "the leaf of kv.json", &leaf, 10);
    b
}

fn states() -> Vec<(&'static str, KeyState)> {
    let a = write(&KeyState::default(), NodeId(1), Some(b"alice".to_vec()));
    let b = write(&KeyState::default(), NodeId(2), Some(b"bob".to_vec()));
    let both = merge(&MergePolicy::KeepBoth, &a, &b);
    let deleted = write(&both, NodeId(3), None);
    vec![
        ("one write", a),
        ("two concurrent writes kept as siblings", both),
        ("a delete over siblings", deleted),
    ]
}

fn key_state() -> Builder {
    let mut b = Builder::new("kv.key_state", Op::Decode, "specs/kv.md#kv-9-value-format");
    for (name, s) in states() {
        b.valid(name, &[], &s.encode().unwrap_or_default());
    }
    // Hand-made: clock {1:1}, versions [(Some("x"), writer 1, {1:1})].
    let version = |value: &[u8], writer: u8, clock: &[u8]| [value, &[writer], clock].concat();
    let c11 = raw_clock(&[(1, 1)]);
    let some_x = [1u8, 1, b'x'];
    let state = |clock: &[u8], versions: &[Vec<u8>]| {
        let mut out = clock.to_vec();
        out.push(versions.len() as u8);
        for v in versions {
            out.extend_from_slice(v);
        }
        out
    };
    b.valid("hand-made: one version", &[], &state(&c11, &[version(&some_x, 1, &c11)]));
    b.invalid("no versions", &["InvalidValue"], &state(&c11, &[]), Kind::InvalidValue);
    let c2 = raw_clock(&[(1, 1), (2, 1)]);
    let v1 = version(&some_x, 1, &raw_clock(&[(1, 1)]));
    let v2 = version(&[1, 1, b'y'], 2, &raw_clock(&[(2, 1)]));
    b.valid(
        "hand-made: two siblings in precedence order",
        &[],
        &state(&c2, &[v1.clone(), v2.clone()]),
    );
    b.invalid(
        "two siblings out of precedence order",
        &["InvalidValue"],
        &state(&c2, &[v2, v1.clone()]),
        Kind::InvalidValue,
    );
    b.invalid(
        "a version clock not covered by the key clock",
        &["InvalidValue"],
        &state(&c11, &[version(&some_x, 1, &raw_clock(&[(1, 2)]))]),
        Kind::InvalidValue,
    );
    b.invalid(
        "a non-canonical key clock",
        &["NonCanonical"],
        &state(&raw_clock(&[(1, 0)]), std::slice::from_ref(&v1)),
        Kind::NonCanonical,
    );
    b.invalid(
        "a non-canonical version clock",
        &["NonCanonical"],
        &state(&c11, &[version(&some_x, 1, &raw_clock(&[(2, 1), (1, 1)]))]),
        Kind::NonCanonical,
    );
    b.invalid(
        "value option byte 2",
        &["InvalidValue"],
        &state(&c11, &[version(&[2, 1, b'x'], 1, &c11)]),
        Kind::InvalidValue,
    );
    let tomb = version(&[0], 1, &c11);
    b.valid("a tombstone (value None)", &[], &state(&c11, &[tomb]));
    let sixty_five: Vec<Vec<u8>> =
        (0..65u64).map(|i| version(&[1, 1, b'v'], 1, &raw_clock(&[(1, i + 1)]))).collect();
    b.valid("64 versions (the bound)", &[], &state(&raw_clock(&[(1, 64)]), &sixty_five[..64]));
    b.invalid(
        "65 versions",
        &["Oversize"],
        &state(&raw_clock(&[(1, 65)]), &sixty_five),
        Kind::InvalidValue,
    );
    standard(&mut b, "a one-version state", &state(&c11, &[v1]), 10);
    b
}

fn snap(
    parents: usize,
    message: &str,
    lamport: u64,
    author: u32,
    clock: &[(u32, u64)],
) -> Snapshot {
    Snapshot {
        version: 1,
        root: Some(Ref::from_array(&[0x11; 64])),
        parents: (0..parents).map(|i| Ref::from_array(&[i as u8; 64])).collect(),
        clock: clock_of(clock),
        author: NodeId(author),
        message: message.to_owned(),
        lamport,
    }
}

fn snapshot() -> Builder {
    let mut b = Builder::new("kv.snapshot", Op::Decode, "specs/kv.md#kv-12-snapshot-format");
    let enc = |s: &Snapshot| postcard::to_allocvec(s).unwrap_or_default();
    b.valid("a first commit", &[], &enc(&snap(0, "first", 1, 1, &[(1, 1)])));
    b.valid("a commit", &[], &enc(&snap(1, "add alice", 2, 1, &[(1, 2)])));
    b.valid("a merge", &[], &enc(&snap(2, "merge", 5, 2, &[(1, 2), (2, 3)])));
    b.valid(
        "an empty tree",
        &["Edge"],
        &enc(&Snapshot { root: None, ..snap(0, "", 1, 0, &[(0, 1)]) }),
    );
    b.valid("16 parents: the most", &["Edge"], &enc(&snap(16, "octopus", 9, 1, &[(1, 9)])));
    b.invalid("17 parents", &["Oversize"], &enc(&snap(17, "m", 9, 1, &[(1, 9)])), Kind::TooLarge);
    b.invalid(
        "a 4097-byte message",
        &["Oversize"],
        &enc(&snap(1, &"m".repeat(4097), 2, 1, &[(1, 2)])),
        Kind::TooLarge,
    );
    b.invalid(
        "lamport 0",
        &["InvalidValue"],
        &enc(&snap(0, "m", 0, 1, &[(1, 1)])),
        Kind::InvalidValue,
    );
    b.invalid(
        "author's clock entry 0",
        &["InvalidValue"],
        &enc(&snap(0, "m", 1, 2, &[(1, 1)])),
        Kind::InvalidValue,
    );
    let mut v2 = enc(&snap(0, "m", 1, 1, &[(1, 1)]));
    v2[0] = 2;
    b.invalid("version 2", &["BadVersion"], &v2, Kind::UnsupportedVersion);
    let mut bad_utf8 = enc(&snap(0, "mm", 1, 1, &[(1, 1)]));
    let at = bad_utf8.len() - 2;
    bad_utf8[at] = 0xff;
    b.invalid("a message that is not UTF-8", &["InvalidValue"], &bad_utf8, Kind::InvalidValue);
    let mut opt = enc(&snap(0, "m", 1, 1, &[(1, 1)]));
    opt[1] = 2;
    b.invalid("root option byte 2", &["InvalidValue"], &opt, Kind::InvalidValue);
    standard(&mut b, "a first commit", &enc(&snap(0, "first", 1, 1, &[(1, 1)])), 24);
    b
}

fn gossip() -> Builder {
    let mut b = Builder::new("gossip.message", Op::Decode, "specs/gossip-wire.md#gw-1-framing");
    let head = Ref::from_array(&[0x22; 64]);
    let msgs = [
        ("Announce", Message::Announce { head, clock: clock_of(&[(0, 3), (2, 1)]) }),
        ("Announce with the zero clock", Message::Announce { head, clock: VectorClock::new() }),
        ("Want of two CIDs", Message::Want { cids: vec![Hash([1; 32]), Hash([2; 32])] }),
        ("Want of none", Message::Want { cids: vec![] }),
        ("Objects of two blobs", Message::Objects { blobs: vec![b"blob".to_vec(), vec![]] }),
    ];
    let mut announce = Vec::new();
    for (name, m) in msgs {
        let bytes = encode_message(&m).unwrap_or_default();
        b.valid(name, &[], &bytes);
        if announce.is_empty() {
            announce = bytes;
        }
    }
    b.invalid("version 2", &["BadVersion"], &[2, 1, 0], Kind::UnsupportedVersion);
    b.invalid("version 0", &["BadVersion"], &[0, 1, 0], Kind::UnsupportedVersion);
    b.invalid(
        "version 2 and a bad body: the body is decoded first",
        &["UnknownVariant"],
        &[2, 9],
        Kind::UnknownVariant,
    );
    b.invalid("message tag 3", &["UnknownVariant"], &[1, 3, 0], Kind::UnknownVariant);
    b.invalid("a byte after Want of none", &["TrailingBytes"], &[1, 1, 0, 0], Kind::TrailingBytes);
    let mut nc = vec![1u8, 0];
    nc.extend_from_slice(&[0x22; 64]);
    nc.extend_from_slice(&raw_clock(&[(2, 1), (1, 1)]));
    b.invalid("Announce with a non-canonical clock", &["NonCanonical"], &nc, Kind::NonCanonical);
    let mut want = vec![1u8, 1];
    varint(4097, &mut want);
    want.extend(std::iter::repeat_n(0u8, 4097 * 32));
    b.invalid("Want of 4097 CIDs", &["Oversize"], &want, Kind::TooLarge);
    b.invalid(
        "Want announcing 3 CIDs, holding 1",
        &["Truncated"],
        &[&[1u8, 1, 3][..], &[9; 32]].concat(),
        Kind::Truncated,
    );
    b.acceptable(
        "Want of none with an overlong count 80 00",
        &["NonCanonical"],
        &[1, 1, 0x80, 0x00],
    );
    standard(&mut b, "an Announce", &announce, 24);
    b
}
