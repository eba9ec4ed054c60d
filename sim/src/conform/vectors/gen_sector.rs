//! Vectors for the sector engine's disk formats and its socket protocol.

use super::mutate::{pseudo, standard, trailing, truncations};
use super::{Builder, Op};
use crate::conform::kinds::Kind;
use cellar::sector::format::{self, Kind as RecordKind, RecordHeader, Superblock, ZoneHeader};
use cellar::sector::proto::{
    CasItem, CasReply, ErrorKind, ErrorReply, Expected, KeyRange, Record, Request, RequestFrame,
    Response, ResponseFrame, StatReply, WriteOptions, ZoneStat, encode_request_frame,
    encode_response_frame,
};
use serde_json::json;

/// Every builder of this module.
pub fn all() -> Vec<Builder> {
    vec![superblock(), zone_header(), record_header(), commit_payload(), requests(), responses()]
}

fn recrc(mut s: Vec<u8>, crc_at: usize) -> Vec<u8> {
    let crc = crc32c::crc32c(&s[..crc_at]);
    s[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    s
}

fn superblock() -> Builder {
    let mut b = Builder::new(
        "sector.superblock",
        Op::Decode,
        "specs/sector.md#21-superblock-one-sector-two-identical-copies--sec-3",
    );
    let sb =
        Superblock { zone_sector_count: 256, zone_count: 16, device_sector_count: 2 + 256 * 16 };
    b.valid("copy 0 of a 16-zone device", &[], &sb.encode(0));
    b.valid("copy 1 of the same device", &[], &sb.encode(1));
    let small = Superblock { zone_sector_count: 8, zone_count: 2, device_sector_count: 18 };
    b.valid("the smallest geometry: 2 zones of 8 sectors", &["Edge"], &small.encode(0));
    let big = Superblock {
        zone_sector_count: 65_536,
        zone_count: 65_535,
        device_sector_count: u64::from(u32::MAX) - 1,
    };
    b.valid("the largest zones, the largest device", &["Edge"], &big.encode(0));
    let good = sb.encode(0);
    let patch = |at: usize, v: &[u8]| {
        let mut s = good.clone();
        s[at..at + v.len()].copy_from_slice(v);
        recrc(s, 4092)
    };
    b.invalid("magic CELLSECU", &["BadMagic"], &patch(7, b"U"), Kind::BadMagic);
    for v in [1u32, 3] {
        b.invalid(
            &format!("format version {v}"),
            &["BadVersion"],
            &patch(8, &v.to_le_bytes()),
            Kind::UnsupportedVersion,
        );
    }
    b.invalid(
        "sector size 512",
        &["InvalidValue"],
        &patch(12, &512u32.to_le_bytes()),
        Kind::InvalidValue,
    );
    b.invalid(
        "zones of 7 sectors",
        &["InvalidValue"],
        &patch(16, &7u32.to_le_bytes()),
        Kind::InvalidValue,
    );
    b.invalid(
        "zones of 65537 sectors",
        &["InvalidValue"],
        &patch(16, &65_537u32.to_le_bytes()),
        Kind::InvalidValue,
    );
    b.invalid("one zone", &["InvalidValue"], &patch(20, &1u32.to_le_bytes()), Kind::InvalidValue);
    b.invalid(
        "device shorter than its zones",
        &["InvalidValue"],
        &patch(24, &100u64.to_le_bytes()),
        Kind::InvalidValue,
    );
    b.invalid(
        "device of 2^32 - 1 sectors",
        &["Oversize"],
        &patch(24, &u64::from(u32::MAX).to_le_bytes()),
        Kind::InvalidValue,
    );
    let mut nz = good.clone();
    nz[100] = 1;
    b.invalid(
        "a byte of the zero area set, CRC not recomputed",
        &["BadChecksum"],
        &nz,
        Kind::BadChecksum,
    );
    b.acceptable(
        "a byte of the zero area set, CRC recomputed (covered by the CRC only)",
        &["Lenient"],
        &recrc(nz, 4092),
    );
    b.invalid("an all-zero sector", &["BadMagic"], &vec![0; 4096], Kind::BadMagic);
    for l in [0usize, 36, 4095] {
        b.invalid(&format!("{l} bytes"), &["Truncated"], &good[..l], Kind::Truncated);
    }
    super::mutate::flips(&mut b, "a superblock", &good[..40], 10);
    b
}

fn zone_header() -> Builder {
    let mut b = Builder::new(
        "sector.zone_header",
        Op::Decode,
        "specs/sector.md#31-zone-header-first-sector-of-the-zone",
    );
    let enc = |z: ZoneHeader, free: bool| {
        let s = if free { z.encode_free() } else { z.encode() };
        s[..32].to_vec()
    };
    for free in [false, true] {
        b.params(json!({"free": free}));
        let kind = if free { "free header" } else { "zone header" };
        for z in [
            ZoneHeader { zone: 0, epoch: 1 },
            ZoneHeader { zone: 7, epoch: 1234 },
            ZoneHeader { zone: u32::MAX, epoch: u32::MAX },
        ] {
            b.valid(&format!("{kind} of zone {} epoch {}", z.zone, z.epoch), &[], &enc(z, free));
        }
        let good = enc(ZoneHeader { zone: 3, epoch: 9 }, free);
        b.invalid(
            &format!("{kind} read as the other kind"),
            &["BadMagic"],
            &enc(ZoneHeader { zone: 3, epoch: 9 }, !free),
            Kind::BadMagic,
        );
        let mut v = good.clone();
        v[8] = 1;
        b.invalid(
            &format!("{kind} version 1"),
            &["BadVersion"],
            &recrc(v, 28),
            Kind::UnsupportedVersion,
        );
        let mut e = good.clone();
        e[16..20].fill(0);
        b.invalid(&format!("{kind} epoch 0"), &["InvalidValue"], &recrc(e, 28), Kind::InvalidValue);
        let mut z = good.clone();
        z[24] = 1;
        b.acceptable(
            &format!("{kind}: a byte of the zero field set, CRC recomputed"),
            &["Lenient"],
            &recrc(z, 28),
        );
        b.invalid(&format!("{kind}: 31 bytes"), &["Truncated"], &good[..31], Kind::Truncated);
        let mut c = good.clone();
        c[29] ^= 4;
        b.invalid(&format!("{kind}: CRC bit flipped"), &["BadChecksum"], &c, Kind::BadChecksum);
        super::mutate::flips(&mut b, kind, &good, 32);
    }
    b.params(json!({"free": false}));
    b.invalid("an all-zero sector: a zone never used", &["BadMagic"], &[0; 32], Kind::BadMagic);
    b
}

fn header(kind: RecordKind, flags: u8) -> RecordHeader {
    RecordHeader {
        kind,
        flags,
        key: 0x0102_0304_0506_0708,
        seq: 99,
        zone_epoch: 3,
        payload_len: 5000,
        next: 8,
        txn: 0,
        value_len: 9000,
        payload_crc: 0xdead_beef,
        durable_mark: (3 << 32) | 17,
        sector: 0x0000_0001_0000_0203,
    }
}

fn record_header() -> Builder {
    let mut b = Builder::new(
        "sector.record_header",
        Op::Decode,
        "specs/sector.md#41-record-header-80-bytes",
    );
    b.valid("Put, compressed, with a next pointer", &[], &header(RecordKind::Put, 1 | 16).encode());
    b.valid("Put with every flag", &["Edge"], &header(RecordKind::Put, 31).encode());
    let tomb = RecordHeader {
        payload_len: 0,
        value_len: 0,
        next: 0,
        payload_crc: 0,
        ..header(RecordKind::Tombstone, 0)
    };
    b.valid("Tombstone as the engine writes it", &[], &tomb.encode());
    b.valid("Tombstone of a CAS (TXN)", &[], &RecordHeader { flags: 4, txn: 120, ..tomb }.encode());
    let commit = RecordHeader { key: 0, payload_len: 36, payload_crc: 0x1234, ..tomb };
    b.valid(
        "Commit of two members",
        &[],
        &RecordHeader { kind: RecordKind::Commit, ..commit }.encode(),
    );
    let seal = RecordHeader { kind: RecordKind::Seal, key: 0, ..tomb };
    b.valid("Seal", &[], &seal.encode());
    let mark =
        RecordHeader { kind: RecordKind::Mark, seq: 0, durable_mark: (7 << 32) | 40, ..seal };
    b.valid("Mark: the flush witness, seq 0 (SEC-18)", &[], &mark.encode());
    b.valid(
        "first record after open of a fresh device: durable mark 0x00000000ffffffff",
        &["Edge"],
        &RecordHeader { durable_mark: 0xFFFF_FFFF, ..header(RecordKind::Put, 0) }.encode(),
    );
    b.valid(
        "a record at sector 0 (never written by an engine: superblock) decodes",
        &["Edge"],
        &RecordHeader { sector: 0, ..header(RecordKind::Put, 0) }.encode(),
    );
    b.valid(
        "a record at the largest sector",
        &["Edge"],
        &RecordHeader { sector: u64::MAX, ..header(RecordKind::Put, 0) }.encode(),
    );
    b.acceptable(
        "Tombstone with COMPRESSED (no writer sets it; readers ignore it)",
        &["Lenient"],
        &RecordHeader { flags: 1, ..tomb }.encode(),
    );
    b.acceptable(
        "Commit with HAS_NEXT",
        &["Lenient"],
        &RecordHeader { kind: RecordKind::Commit, flags: 16, ..commit }.encode(),
    );
    b.acceptable(
        "Tombstone with a payload length",
        &["Lenient"],
        &RecordHeader { payload_len: 4, ..tomb }.encode(),
    );
    let good = header(RecordKind::Put, 1).encode().to_vec();
    let patch = |at: usize, v: u8| {
        let mut h = good.clone();
        h[at] = v;
        recrc(h, 76)
    };
    b.invalid("magic REC2", &["BadMagic"], &patch(3, b'2'), Kind::BadMagic);
    for k in [0u8, 6, 255] {
        b.invalid(&format!("kind {k}"), &["UnknownVariant"], &patch(4, k), Kind::UnknownVariant);
    }
    for f in [32u8, 64, 128] {
        b.invalid(
            &format!("unknown flag {f}"),
            &["InvalidValue"],
            &patch(5, f),
            Kind::InvalidValue,
        );
    }
    for at in [6usize, 7, 72, 75] {
        b.invalid(
            &format!("reserved byte {at} set"),
            &["InvalidValue"],
            &patch(at, 1),
            Kind::InvalidValue,
        );
    }
    let mut c = good.clone();
    c[77] ^= 2;
    b.invalid("header CRC bit flipped", &["BadChecksum"], &c, Kind::BadChecksum);
    b.invalid(
        "unknown kind and unknown flag: the flag is checked first",
        &["InvalidValue"],
        &recrc([&good[..4], &[9, 64], &good[6..]].concat(), 76),
        Kind::InvalidValue,
    );
    standard(&mut b, "a Put header", &good, 80);
    b
}

fn commit_payload() -> Builder {
    let mut b = Builder::new("sector.commit_payload", Op::Decode, "specs/sector.md#42-kinds");
    b.valid("no members", &["Edge"], &format::encode_commit(&[]));
    b.valid("one member", &[], &format::encode_commit(&[(7, 100)]));
    b.valid("three members", &[], &format::encode_commit(&[(1, 10), (u64::MAX, 11), (0, 12)]));
    let two = format::encode_commit(&[(5, 50), (6, 51)]);
    b.invalid(
        "count 3, two members",
        &["InvalidValue"],
        &[&[3u8, 0, 0, 0][..], &two[4..]].concat(),
        Kind::InvalidValue,
    );
    b.invalid(
        "count 1, two members",
        &["InvalidValue"],
        &[&[1u8, 0, 0, 0][..], &two[4..]].concat(),
        Kind::InvalidValue,
    );
    b.invalid(
        "count 2^32 - 1",
        &["Oversize"],
        &[&[0xffu8; 4][..], &two[4..]].concat(),
        Kind::InvalidValue,
    );
    truncations(&mut b, "a two-member commit", &two);
    trailing(&mut b, "a two-member commit", &two);
    b
}

fn opts() -> WriteOptions {
    WriteOptions {
        compressed: true,
        compact: false,
        revertible: true,
        expected: Some(Expected::Version(77)),
        flush: true,
        next: Some(9),
    }
}

fn request_samples() -> Vec<(&'static str, Request)> {
    vec![
        ("Read", Request::Read { key: 42 }),
        ("Read of the largest key", Request::Read { key: u64::MAX }),
        (
            "ReadRange of two ranges",
            Request::ReadRange {
                ranges: vec![KeyRange { first: 1, last: 10 }, KeyRange::single(300)],
            },
        ),
        ("ReadRange of no ranges", Request::ReadRange { ranges: vec![] }),
        ("ReadFollow", Request::ReadFollow { key: 5, records_max: 4096 }),
        (
            "Write with every option",
            Request::Write { key: 1, value: b"hello".to_vec(), options: opts() },
        ),
        (
            "Write with default options",
            Request::Write { key: 2, value: vec![], options: WriteOptions::default() },
        ),
        (
            "Append",
            Request::Append { key: 3, value: vec![0xab; 200], options: WriteOptions::default() },
        ),
        (
            "Delete expecting absence",
            Request::Delete { key: 4, expected: Some(Expected::Absent), flush: false },
        ),
        ("Delete unconditional, flushed", Request::Delete { key: 4, expected: None, flush: true }),
        ("Compare", Request::Compare { key: 6, expected: Expected::Version((7 << 32) | 12) }),
        (
            "Cas of a put and a delete",
            Request::Cas {
                items: vec![
                    CasItem { key: 1, expected: Expected::Absent, new_value: Some(b"x".to_vec()) },
                    CasItem { key: 2, expected: Expected::Version(3), new_value: None },
                ],
                flush: true,
            },
        ),
        ("Flush", Request::Flush),
        ("Verify", Request::Verify { key: 8 }),
        ("Revert", Request::Revert { key: 9 }),
        ("Commit", Request::Commit { key: 10 }),
        ("Stat", Request::Stat),
    ]
}

fn requests() -> Builder {
    let mut b =
        Builder::new("sector.request_frame", Op::Decode, "specs/sector-protocol.md#messages");
    let mut frames = Vec::new();
    for (i, (name, r)) in request_samples().into_iter().enumerate() {
        let f = encode_request_frame(&RequestFrame { id: i as u64 * 1000, request: r })
            .unwrap_or_default();
        b.valid(name, &[], &f);
        frames.push(f);
    }
    let f = encode_request_frame(&RequestFrame { id: u64::MAX - 1, request: Request::Flush })
        .unwrap_or_default();
    b.valid("the largest usable id", &["Edge"], &f);
    let raw = |body: &[u8]| [&(body.len() as u32).to_le_bytes()[..], body].concat();
    b.invalid(
        "the reserved id 2^64 - 1",
        &["InvalidValue"],
        &raw(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 8]),
        Kind::InvalidValue,
    );
    for tag in [13u8, 100, 127] {
        b.invalid(
            &format!("request tag {tag}"),
            &["UnknownVariant"],
            &raw(&[1, tag, 0, 0, 0, 0]),
            Kind::UnknownVariant,
        );
    }
    b.invalid("an empty body", &["Truncated"], &raw(&[]), Kind::Truncated);
    b.invalid("an id without a message", &["Truncated"], &raw(&[5]), Kind::Truncated);
    b.invalid(
        "Flush followed by a byte inside the frame",
        &["TrailingBytes"],
        &raw(&[1, 8, 0]),
        Kind::TrailingBytes,
    );
    b.invalid(
        "Delete with flush byte 2",
        &["InvalidValue"],
        &raw(&[1, 5, 4, 0, 2]),
        Kind::InvalidValue,
    );
    b.invalid(
        "Delete with option byte 2",
        &["InvalidValue"],
        &raw(&[1, 5, 4, 2, 0]),
        Kind::InvalidValue,
    );
    b.invalid("Expected tag 2", &["UnknownVariant"], &raw(&[1, 6, 4, 2]), Kind::UnknownVariant);
    b.invalid("an id varint of 11 bytes", &["InvalidValue"], &raw(&[0xff; 11]), Kind::InvalidValue);
    b.acceptable(
        "Read of key 42 with an overlong key varint aa 00",
        &["NonCanonical"],
        &raw(&[1, 0, 0xaa, 0x00]),
    );
    b.acceptable("id 1 as an overlong varint 81 00", &["NonCanonical"], &raw(&[0x81, 0x00, 8]));
    b.invalid(
        "length prefix 16 MiB + 1",
        &["Oversize"],
        &(16u32 * 1024 * 1024 + 1).to_le_bytes(),
        Kind::TooLarge,
    );
    b.invalid("length prefix 2^32 - 1", &["Oversize"], &[0xff; 4], Kind::TooLarge);
    b.invalid(
        "a value of 9 bytes announced, 2 present",
        &["Truncated"],
        &raw(&[1, 3, 1, 9, 1, 2]),
        Kind::Truncated,
    );
    for f in frames.iter().take(6) {
        standard(&mut b, "a request frame", f, 8);
    }
    b
}

fn response_samples() -> Vec<(&'static str, Response)> {
    let rec = Record { key: 1, version: (2 << 32) | 5, value: b"v".to_vec(), next: Some(2) };
    vec![
        ("Record present", Response::Record(Some(rec.clone()))),
        ("Record absent", Response::Record(None)),
        ("Records", Response::Records(vec![rec.clone(), Record { next: None, ..rec }])),
        ("Written", Response::Written { version: (9 << 32) | 300 }),
        ("Deleted", Response::Deleted { existed: true }),
        ("Compared", Response::Compared { matches: false }),
        ("Cas applied", Response::Cas(CasReply::Applied { versions: vec![Some(5), None] })),
        ("Cas conflict", Response::Cas(CasReply::Conflict { index: 1, key: 2, current: None })),
        ("Flushed", Response::Flushed),
        ("Verified", Response::Verified { version: 4 }),
        ("Done", Response::Done),
        (
            "Stat",
            Response::Stat(StatReply {
                keys: 3,
                corrupt_keys: 0,
                live_bytes: 12_288,
                index_bytes: 48,
                free_zones: 14,
                zones: vec![ZoneStat {
                    zone: 0,
                    used_bytes: 16_384,
                    records: 4,
                    live_records: 3,
                    dead_percent: 25,
                }],
            }),
        ),
        (
            "Error NotFound",
            Response::Error(ErrorReply::new(ErrorKind::NotFound, "key 7 not found")),
        ),
        (
            "Error MalformedFrame",
            Response::Error(ErrorReply::new(ErrorKind::MalformedFrame, "bad")),
        ),
    ]
}

fn responses() -> Builder {
    let mut b =
        Builder::new("sector.response_frame", Op::Decode, "specs/sector-protocol.md#messages");
    let mut first = Vec::new();
    for (i, (name, r)) in response_samples().into_iter().enumerate() {
        let f =
            encode_response_frame(&ResponseFrame { id: i as u64, response: r }).unwrap_or_default();
        b.valid(name, &[], &f);
        if first.is_empty() {
            first = f;
        }
    }
    let none = encode_response_frame(&ResponseFrame {
        id: u64::MAX,
        response: Response::Error(ErrorReply::new(ErrorKind::FrameTooLarge, "x")),
    })
    .unwrap_or_default();
    b.valid("a reply with the reserved id (unattributable)", &["Edge"], &none);
    let raw = |body: &[u8]| [&(body.len() as u32).to_le_bytes()[..], body].concat();
    b.invalid("response tag 11", &["UnknownVariant"], &raw(&[1, 11]), Kind::UnknownVariant);
    b.invalid("ErrorKind tag 12", &["UnknownVariant"], &raw(&[1, 10, 12, 0]), Kind::UnknownVariant);
    b.invalid("CasReply tag 2", &["UnknownVariant"], &raw(&[1, 5, 2]), Kind::UnknownVariant);
    b.invalid("Deleted with bool byte 2", &["InvalidValue"], &raw(&[1, 3, 2]), Kind::InvalidValue);
    b.invalid(
        "an error message that is not UTF-8",
        &["InvalidValue"],
        &raw(&[1, 10, 3, 1, 0xff]),
        Kind::InvalidValue,
    );
    let _ = pseudo("unused", 0);
    standard(&mut b, "a Record response", &first, 16);
    b
}
