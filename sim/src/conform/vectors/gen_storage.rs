//! Vectors for refs, cells, the volume directory and file trees.

use super::mutate::{pseudo, standard, truncations};
use super::{Builder, Op};
use crate::conform::kinds::{Kind, hex};
use cellar::storage::cell::{encode_file_cell, seal_counted_with_nonce, seal_with_nonce};
use cellar::storage::files::{INDEX_VERSION, IndexNode};
use cellar::storage::refs::{self, Ref};
use cellar::storage::volume::encode_volume_header;
use serde_json::json;

/// Every builder of this module.
pub fn all() -> Vec<Builder> {
    vec![
        ref_binary(),
        ref_text(),
        ref_post(),
        ref_open(),
        cell_file(),
        cell_sealed(),
        volume_header(),
        volume_keys(),
        file_index(),
        file_tree(),
    ]
}

fn sample_refs() -> Vec<(&'static str, [u8; 64])> {
    let mut p = [0u8; 64];
    p.copy_from_slice(&pseudo("ref", 64));
    vec![("all zero", [0; 64]), ("all ff", [0xff; 64]), ("pseudo-random", p)]
}

fn ref_binary() -> Builder {
    let mut b =
        Builder::new("ref.binary", Op::Decode, "specs/refs.md#ref-6-binary-postcard-encoding");
    for (name, r) in sample_refs() {
        b.valid(&format!("{name} ref"), &["Edge"], &r);
    }
    let r = pseudo("ref", 64);
    for len in [0usize, 1, 32, 63, 65, 128, 142] {
        let mut m = r.clone();
        m.resize(len, 0x61);
        b.invalid(&format!("{len} bytes"), &["Truncated"], &m, Kind::BadLength);
    }
    b
}

fn ref_text() -> Builder {
    let mut b = Builder::new("ref.text", Op::Decode, "specs/refs.md#ref-5-text-form");
    for (name, r) in sample_refs() {
        b.valid(&format!("{name} ref"), &["Edge"], Ref::from_array(&r).to_string().as_bytes());
    }
    let mut r = [0u8; 64];
    r.copy_from_slice(&pseudo("ref", 64));
    let text = Ref::from_array(&r).to_string();
    let cases: Vec<(String, String, Kind, &str)> = vec![
        (
            "upper-case hex".into(),
            text.to_uppercase().replacen("CELLAR:REF:V1:", "cellar:ref:v1:", 1),
            Kind::BadChar,
            "InvalidValue",
        ),
        (
            "upper-case prefix".into(),
            text.replacen("cellar", "CELLAR", 1),
            Kind::BadPrefix,
            "InvalidValue",
        ),
        ("version v2".into(), text.replacen(":v1:", ":v2:", 1), Kind::BadPrefix, "BadVersion"),
        (
            "no prefix".into(),
            text["cellar:ref:v1:".len()..].to_owned(),
            Kind::BadPrefix,
            "InvalidValue",
        ),
        ("leading space".into(), format!(" {text}"), Kind::BadPrefix, "InvalidValue"),
        ("trailing newline".into(), format!("{text}\n"), Kind::BadChar, "TrailingBytes"),
        ("trailing hex digit".into(), format!("{text}0"), Kind::BadLength, "TrailingBytes"),
        (
            "a 'g' in the hex".into(),
            format!("{}g{}", &text[..20], &text[21..]),
            Kind::BadChar,
            "InvalidValue",
        ),
        ("empty".into(), String::new(), Kind::BadPrefix, "Truncated"),
        ("prefix only".into(), "cellar:ref:v1:".into(), Kind::BadLength, "Truncated"),
        (
            "binary form's 64 hex digits only".into(),
            format!("cellar:ref:v1:{}", &text[14..78]),
            Kind::BadLength,
            "Truncated",
        ),
    ];
    for (comment, t, kind, flag) in cases {
        b.invalid(&comment, &[flag], t.as_bytes(), kind);
    }
    let mut bad_utf8 = text.clone().into_bytes();
    bad_utf8[30] = 0xff;
    b.invalid("a non-UTF-8 byte after the prefix", &["InvalidValue"], &bad_utf8, Kind::BadChar);
    truncations(&mut b, "text ref", text.as_bytes());
    b
}

const SALT_A: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

fn plaintexts() -> Vec<(String, Vec<u8>)> {
    vec![
        ("empty".into(), vec![]),
        ("one byte".into(), b"a".to_vec()),
        ("64 bytes".into(), (0u8..64).collect()),
        ("1000 pseudo-random bytes".into(), pseudo("plaintext", 1000)),
        ("5000 bytes of one value".into(), vec![0x5a; 5000]),
    ]
}

fn ref_post() -> Builder {
    let mut b =
        Builder::new("ref.post", Op::Derive, "specs/refs.md#ref-2-dek-derivation-convergent");
    for salt in [SALT_A, [0xee; 32]] {
        for (name, p) in plaintexts() {
            let input = json!({"salt": hex(&salt), "plaintext": hex(&p)});
            b.derive(&format!("{name} under salt {:02x}..", salt[0]), &[], input, None);
        }
    }
    b
}

fn ref_open() -> Builder {
    let mut b = Builder::new(
        "ref.open",
        Op::Derive,
        "specs/refs.md#ref-4-reading-cid-then-tag-corruption-is-an-error-never-data",
    );
    for (name, p) in plaintexts() {
        let Ok((r, ct)) = refs::encrypt(&SALT_A, &p) else { continue };
        let open = |r: &Ref, ct: &[u8]| json!({"ref": hex(&r.to_bytes()), "ciphertext": hex(ct)});
        b.derive(&name, &[], open(&r, &ct), None);
        let mut flipped = ct.clone();
        flipped[0] ^= 1;
        b.derive(
            &format!("{name}: ciphertext bit flipped"),
            &["Auth", "BitFlip"],
            open(&r, &flipped),
            Some(Kind::AuthFailed),
        );
        let recid = Ref { cid: cellar::Hash::of(&flipped), dek: r.dek };
        b.derive(
            &format!("{name}: bit flipped, CID recomputed: only the tag catches it"),
            &["Auth", "BitFlip"],
            open(&recid, &flipped),
            Some(Kind::AuthFailed),
        );
        let mut bad_dek = r;
        bad_dek.dek[31] ^= 0x80;
        b.derive(
            &format!("{name}: DEK bit flipped"),
            &["Auth", "BitFlip"],
            open(&bad_dek, &ct),
            Some(Kind::AuthFailed),
        );
        let cut = &ct[..ct.len() - 1];
        b.derive(
            &format!("{name}: last byte cut"),
            &["Auth", "Truncated"],
            open(&r, cut),
            Some(Kind::AuthFailed),
        );
    }
    for n in [0usize, 1, 15] {
        let ct = pseudo("short", n);
        let r = Ref { cid: cellar::Hash::of(&ct), dek: [1; 32] };
        let input = json!({"ref": hex(&r.to_bytes()), "ciphertext": hex(&ct)});
        b.derive(
            &format!("{n}-byte ciphertext under its own CID: shorter than a tag"),
            &["Truncated"],
            input,
            Some(Kind::Truncated),
        );
    }
    b
}

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

fn cell_file() -> Builder {
    let mut b = Builder::new("cell.file", Op::Decode, "specs/cells.md#32-cell-file-layout");
    b.params(json!({"max_size_bytes": 4096}));
    for (name, v) in [
        ("empty value", vec![]),
        ("the value hi", b"hi".to_vec()),
        ("127-byte value: one-byte length", vec![7; 127]),
        ("128-byte value: two-byte length", vec![8; 128]),
        ("a 64-byte ref", pseudo("ref", 64)),
        ("4096-byte value: the maximum", pseudo("cell", 4096)),
    ] {
        if let Ok(f) = encode_file_cell(&v) {
            b.valid(name, &["Edge"], &f);
        }
    }
    let frame = |magic: &[u8], version: u8, len: &[u8], value: &[u8], extra: &[u8]| {
        with_crc([magic, &[version], len, value, extra].concat())
    };
    b.invalid("magic CLCG", &["BadMagic"], &frame(b"CLCG", 1, &[2], b"hi", &[]), Kind::BadMagic);
    b.invalid(
        "version 2",
        &["BadVersion"],
        &frame(b"CLCF", 2, &[2], b"hi", &[]),
        Kind::UnsupportedVersion,
    );
    b.invalid(
        "version 0",
        &["BadVersion"],
        &frame(b"CLCF", 0, &[2], b"hi", &[]),
        Kind::UnsupportedVersion,
    );
    b.invalid(
        "a byte between the frame and the CRC",
        &["TrailingBytes"],
        &frame(b"CLCF", 1, &[2], b"hi", &[0]),
        Kind::TrailingBytes,
    );
    b.invalid(
        "length 3 with 2 value bytes",
        &["Truncated"],
        &frame(b"CLCF", 1, &[3], b"hi", &[]),
        Kind::Truncated,
    );
    b.invalid(
        "length varint that never ends",
        &["InvalidValue"],
        &frame(b"CLCF", 1, &[0xff; 10], b"", &[]),
        Kind::InvalidValue,
    );
    b.acceptable(
        "length 2 as an overlong varint 82 00",
        &["NonCanonical"],
        &frame(b"CLCF", 1, &[0x82, 0], b"hi", &[]),
    );
    let mut bad_crc = frame(b"CLCF", 1, &[2], b"hi", &[]);
    bad_crc[9] ^= 0x10;
    b.invalid("CRC byte flipped", &["BadChecksum"], &bad_crc, Kind::BadChecksum);
    b.invalid(
        "an empty file (an absent file is the empty value)",
        &["Truncated"],
        &[],
        Kind::Truncated,
    );
    let small = encode_file_cell(b"hi").unwrap_or_default();
    standard(&mut b, "the cell file of hi", &small, 96);
    b.params(json!({"max_size_bytes": 4}));
    b.invalid(
        "5-byte value in a cell of maximum 4",
        &["Oversize"],
        &encode_file_cell(b"12345").unwrap_or_default(),
        Kind::TooLarge,
    );
    b.invalid(
        "file longer than maximum + 19 bytes",
        &["Oversize"],
        &encode_file_cell(&[1; 20]).unwrap_or_default(),
        Kind::TooLarge,
    );
    b.valid(
        "4-byte value in a cell of maximum 4",
        &["Edge"],
        &encode_file_cell(b"1234").unwrap_or_default(),
    );
    b
}

const CELL_KEY: [u8; 32] = [0x42; 32];

/// `cell.sealed`: both versions of a sealed cell's inner value (cells.md §4.1 version 1, §4.5
/// version 2 with its counter, CELL-5, CELL-6). The one description of the format's bytes:
/// `impl/tests/sealed_rollback.rs::vectors_hold` re-seals every valid vector of this file.
fn cell_sealed() -> Builder {
    let mut b = Builder::new(
        "cell.sealed",
        Op::Decode,
        "specs/cells.md#46-opening-either-version-vector-format-cellsealed",
    );
    b.params(json!({"key": hex(&CELL_KEY)}));
    b.valid("the empty raw value: a cell never written (counter 0)", &["Edge"], &[]);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&pseudo("nonce", 24));
    let samples = [
        ("empty plaintext", vec![]),
        ("hi", b"hi".to_vec()),
        ("a 64-byte ref", pseudo("ref", 64)),
        ("4096 bytes", pseudo("cell", 4096)),
    ];
    let (mut v1_hi, mut v1_ref) = (Vec::new(), Vec::new());
    for (name, p) in &samples {
        if let Ok(s) = seal_with_nonce(&CELL_KEY, &nonce, p) {
            b.valid(&format!("version 1, {name} (counter 0)"), &[], &s);
            match *name {
                "hi" => v1_hi = s,
                "a 64-byte ref" => v1_ref = s,
                _ => {}
            }
        }
    }
    let mut v2_hi = Vec::new();
    for (name, p) in &samples {
        for counter in [1u64, 2, 1 << 32] {
            if name.starts_with("4096") && counter != 1 {
                continue;
            }
            if let Ok(s) = seal_counted_with_nonce(&CELL_KEY, &nonce, counter, p) {
                b.valid(&format!("version 2, {name}, counter {counter}"), &[], &s);
                if *name == "hi" && counter == 2 {
                    v2_hi = s;
                }
            }
        }
    }
    for counter in [0u64, u64::MAX] {
        if let Ok(s) = seal_counted_with_nonce(&CELL_KEY, &nonce, counter, b"hi") {
            b.valid(&format!("version 2, hi, counter {counter}"), &["Edge"], &s);
        }
    }
    b.invalid("40 bytes: shorter than any seal", &["Truncated"], &pseudo("x", 40), Kind::Truncated);
    let mut short = pseudo("x", 48);
    short[0] = 2;
    b.invalid("version 2, 48 bytes: shorter than 49", &["Truncated"], &short, Kind::Truncated);
    for v in [0u8, 3, 0xff] {
        let mut m = v1_ref.clone();
        m[0] = v;
        b.invalid(&format!("version {v}"), &["BadVersion"], &m, Kind::UnsupportedVersion);
    }
    let mut m = v1_ref.clone();
    m[0] = 2;
    b.invalid("a version-1 seal relabelled version 2", &["Auth"], &m, Kind::AuthFailed);
    let mut m = v2_hi.clone();
    m[0] = 1;
    b.invalid("a version-2 seal relabelled version 1", &["Auth"], &m, Kind::AuthFailed);
    standard(&mut b, "the version-1 seal of hi", &v1_hi, 43);
    standard(&mut b, "the version-2 seal of hi (counter 2)", &v2_hi, 51);
    b.params(json!({"key": hex(&[0x43; 32])}));
    b.invalid("version 1 sealed under another key", &["Auth"], &v1_hi, Kind::AuthFailed);
    b.invalid("version 2 sealed under another key", &["Auth"], &v2_hi, Kind::AuthFailed);
    // The rollback vectors of specs/cells.md §4.5: key 03…03, nonce 05…05.
    let (key, nonce) = ([3u8; 32], [5u8; 24]);
    b.params(json!({"key": hex(&key)}));
    if let Ok(s) = seal_with_nonce(&key, &nonce, b"abc") {
        b.valid("key 03…03, nonce 05…05: version 1, abc", &[], &s);
    }
    for (counter, p) in [(1u64, &b"abc"[..]), (7, b""), (u64::MAX, b"abc")] {
        if let Ok(s) = seal_counted_with_nonce(&key, &nonce, counter, p) {
            let what = if p.is_empty() { "empty" } else { "abc" };
            b.valid(
                &format!("key 03…03, nonce 05…05: version 2, {what}, counter {counter}"),
                &[],
                &s,
            );
        }
    }
    b
}

fn volume_header() -> Builder {
    let mut b = Builder::new(
        "volume.header",
        Op::Decode,
        "specs/volume-dir.md#vd-2-volume-header-volume-file",
    );
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&pseudo("secret", 32));
    for s in [[0u8; 32], [0xff; 32], secret] {
        b.valid("a volume header", &[], &encode_volume_header(&s));
    }
    let good = encode_volume_header(&secret);
    let body = &good[..41];
    let mut m = body.to_vec();
    m[0] = b'D';
    b.invalid("magic DELLARVL", &["BadMagic"], &with_crc(m), Kind::BadMagic);
    let mut m = body.to_vec();
    m[8] = 2;
    b.invalid("version 2", &["BadVersion"], &with_crc(m), Kind::UnsupportedVersion);
    let m = [&body[..8], &[0x81, 0x00], &body[9..]].concat();
    b.acceptable("version 1 as an overlong varint 81 00", &["NonCanonical"], &with_crc(m));
    b.invalid(
        "a byte between the secret and the CRC",
        &["TrailingBytes"],
        &with_crc([body, &[0]].concat()),
        Kind::TrailingBytes,
    );
    b.invalid(
        "secret cut short, CRC recomputed",
        &["Truncated"],
        &with_crc(body[..40].to_vec()),
        Kind::Truncated,
    );
    let mut c = good.clone();
    c[44] ^= 1;
    b.invalid("CRC bit flipped", &["BadChecksum"], &c, Kind::BadChecksum);
    b.invalid("3 bytes", &["Truncated"], &good[..3], Kind::Truncated);
    let mut big = good.clone();
    big.resize(4097, 0);
    b.invalid("4097 bytes", &["Oversize"], &big, Kind::TooLarge);
    standard(&mut b, "the header", &good, 45);
    b
}

fn volume_keys() -> Builder {
    let mut b = Builder::new(
        "volume.keys",
        Op::Derive,
        "specs/volume-dir.md#vd-3-keys-derived-from-the-secret",
    );
    for (name, s) in [
        ("zero secret", vec![0u8; 32]),
        ("ff secret", vec![0xff; 32]),
        ("pseudo-random secret", pseudo("secret", 32)),
    ] {
        b.derive(name, &[], json!({"secret": hex(&s)}), None);
    }
    b
}

fn index(level: u8, size_bytes: u64, children: usize) -> Vec<u8> {
    let children = (0..children).map(|i| {
        let mut r = [0u8; 64];
        r.copy_from_slice(&pseudo(&format!("child {i}"), 64));
        Ref::from_array(&r)
    });
    let node =
        IndexNode { version: INDEX_VERSION, level, size_bytes, children: children.collect() };
    postcard::to_allocvec(&node).unwrap_or_default()
}

fn file_index() -> Builder {
    let mut b = Builder::new(
        "file.index",
        Op::Decode,
        "specs/volume-dir.md#vd-5-file-trees-the-blobs-a-vol-put-ref-points-to",
    );
    b.valid("level 0, one empty chunk", &["Edge"], &index(0, 0, 1));
    b.valid("level 0, three chunks", &[], &index(0, 12_000_000, 3));
    b.valid("level 1, two nodes", &[], &index(1, 300, 2));
    b.valid("level 7: the deepest", &["Edge"], &index(7, u64::MAX, 1));
    let mut v2 = index(0, 5, 1);
    v2[0] = 2;
    b.invalid("version 2", &["BadVersion"], &v2, Kind::UnsupportedVersion);
    b.invalid("level 8", &["InvalidValue"], &index(8, 5, 1), Kind::InvalidValue);
    b.invalid("no children", &["InvalidValue"], &index(0, 0, 0), Kind::InvalidValue);
    b.invalid(
        "count says 2, one child follows",
        &["Truncated"],
        &[&index(0, 5, 1)[..3], &[2], &index(0, 5, 1)[4..]].concat(),
        Kind::Truncated,
    );
    let mut big = vec![1u8, 0, 0];
    big.extend_from_slice(&[0x81, 0x20]); // 4097 children announced; the data is not there
    b.invalid("4097 children announced, none present", &["Truncated"], &big, Kind::Truncated);
    b.acceptable(
        "size 5 as an overlong varint 85 00",
        &["NonCanonical"],
        &[&[1u8, 0, 0x85, 0x00][..], &index(0, 5, 1)[3..]].concat(),
    );
    standard(&mut b, "a one-child index", &index(0, 5, 1), 24);
    b
}

fn file_tree() -> Builder {
    let mut b = Builder::new(
        "file.tree",
        Op::Derive,
        "specs/volume-dir.md#vd-5-file-trees-the-blobs-a-vol-put-ref-points-to",
    );
    let cases: Vec<(usize, Vec<u8>, &str)> = vec![
        (4 * 1024 * 1024, vec![], "empty file, 4 MiB blobs"),
        (4 * 1024 * 1024, b"hello".to_vec(), "5 bytes, 4 MiB blobs"),
        (256, vec![], "empty file, 256-byte blobs"),
        (256, pseudo("f", 240), "exactly one 240-byte chunk"),
        (256, pseudo("f", 241), "one chunk and one byte"),
        (256, pseudo("f", 480), "exactly two chunks: no empty chunk after them"),
        (256, pseudo("f", 5000), "21 chunks, fan-out 2: five index levels"),
        (300, pseudo("g", 2000), "chunk size 284, fan-out 3"),
        (1024, pseudo("i", 20_000), "chunk size 1008, fan-out 14"),
    ];
    for (max, content, name) in cases {
        let input =
            json!({"salt": hex(&SALT_A), "max_blob_size_bytes": max, "content": hex(&content)});
        b.derive(name, &[], input, None);
    }
    b
}
