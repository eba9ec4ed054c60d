//! File-tree test vectors (`specs/vectors/fs.json`, `specs/fs.md` FS-1, FS-3, FS-4, FS-6..FS-8, FS-12).
//!
//! Chunk boundaries are computed twice: by a from-scratch chunker written here from the text of
//! FS-6/FS-7 against the `blake3` crate (not `cellar::fs::chunker`) and by `cellar::fs`; they
//! must agree. Inputs are regenerated from a described formula, so another implementation can
//! rebuild them: `input(seed, n)` = the first `n` bytes of BLAKE3 XOF output in `derive_key` mode
//! with context "cellar 2026 fs vector input v1" over `seed` as u64 little-endian. Records, keys,
//! and the root refs of two small trees are pinned too. The file on disk must equal what this
//! test produces.
//!
//! Regenerate after a deliberate format change:
//! `CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test fs_vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::fs::record::{decode_extent, decode_info, encode_extent, encode_info};
use cellar::fs::{Attrs, Chunker, ChunkerParams, Extent, Fs, FsPath, Importer, Info, Kind};
use cellar::storage::refs::Ref;
use cellar::storage::store::MemStore;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const REGEN_COMMAND: &str = "CELLAR_REGEN_VECTORS=1 cargo test -p cellar --test fs_vectors";
const INPUT_CONTEXT: &str = "cellar 2026 fs vector input v1";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct VectorFile {
    format: String,
    spec: String,
    regenerate: String,
    input_formula: String,
    gear: Vec<Gear>,
    chunks: Vec<Chunks>,
    mean_chunk_bytes: MeanChunk,
    keys: Vec<KeyVector>,
    infos: Vec<RecordVector>,
    extents: Vec<RecordVector>,
    blobs: Vec<BlobVector>,
    trees: Vec<TreeVector>,
    links: Vec<LinkVector>,
}

/// FS-12: a hard link's records — the number a first link of `path` allocates in a tree that
/// has no inode yet, its link entry, inode key (at offset 0 and 4096) and back-reference key.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct LinkVector {
    path: String,
    inode_hex: String,
    link_entry_hex: String,
    inode_info_key_hex: String,
    inode_extent_key_hex: String,
    backref_key_hex: String,
}

fn link_vector(path: &str) -> LinkVector {
    let fp = FsPath::new(path).unwrap();
    let mut h = blake3::Hasher::new_derive_key("cellar 2026 fs inode number v1");
    h.update(fp.encoded());
    h.update(&0u32.to_be_bytes());
    let n = u64::from_be_bytes(h.finalize().as_bytes()[..8].try_into().unwrap());
    // The implementation allocates the same number.
    let store = MemStore::new();
    let fs = Fs::new(&store, [0; 32]);
    let r = fs.mkfs(attrs(0o755, 0)).unwrap();
    let r = fs.mkdir(&r, &FsPath::new("/x").unwrap(), attrs(0o755, 0)).unwrap();
    let mut r = r;
    let mut at = FsPath::root();
    for name in fp.names().collect::<Vec<_>>().split_last().unwrap().1 {
        at = at.join(name).unwrap();
        r = fs.mkdir(&r, &at, attrs(0o755, 0)).unwrap();
    }
    r = fs.create(&r, &fp, attrs(0o644, 0)).unwrap();
    r = fs.link(&r, &fp, &FsPath::new("/x/y").unwrap()).unwrap();
    assert_eq!(fs.inode_of(&r, &fp).unwrap(), Some(n), "FS-12 allocation");
    LinkVector {
        path: path.into(),
        inode_hex: format!("{n:016x}"),
        link_entry_hex: hex::encode(cellar::fs::record::encode_link(n)),
        inode_info_key_hex: hex::encode(cellar::fs::inode_key(n, 0)),
        inode_extent_key_hex: hex::encode(cellar::fs::inode_key(n, 4096)),
        backref_key_hex: hex::encode(cellar::fs::backref_key(n, &fp)),
    }
}

fn links_tree(salt: [u8; 32]) -> TreeVector {
    let store = MemStore::new();
    let fs = Fs::new(&store, salt);
    let p = |s: &str| FsPath::new(s).unwrap();
    let mut r = fs.mkfs(attrs(0o755, 0)).unwrap();
    r = fs.create(&r, &p("/f"), attrs(0o644, 5)).unwrap();
    r = fs.write(&r, &p("/f"), 0, b"abc").unwrap();
    r = fs.mkdir(&r, &p("/d"), attrs(0o755, 6)).unwrap();
    r = fs.link(&r, &p("/f"), &p("/d/g")).unwrap();
    r = fs.link(&r, &p("/d/g"), &p("/h")).unwrap();
    r = fs.write(&r, &p("/h"), 3, b"def").unwrap();
    TreeVector {
        name: "links".into(),
        salt_hex: hex::encode(salt),
        recipe: "uid=gid=1000 everywhere; mkfs(0o755, mtime 0); create /f (0o644, 5 ns); write \
                 'abc' at 0; mkdir /d (0o755, 6 ns); link /f -> /d/g; link /d/g -> /h; write 'def' \
                 at 3 of /h"
            .into(),
        root_ref_hex: hex::encode(r.to_bytes()),
        blobs: store.len(),
    }
}

/// FS-27: a data blob's plaintext and what it decodes to (its length and BLAKE3 hash), or the
/// error a reader must give.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct BlobVector {
    what: String,
    plaintext_hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_blake3_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn blob_vector(what: &str, plaintext: Vec<u8>) -> BlobVector {
    use cellar::fs::blob::{BlobError, decode};
    let (bytes_len, bytes_blake3_hex, error) = match decode(&plaintext) {
        Ok(b) => (Some(b.len()), Some(blake3::hash(&b).to_hex().to_string()), None),
        Err(BlobError::Empty) => (None, None, Some("empty".to_owned())),
        Err(BlobError::UnknownTag(_)) => (None, None, Some("unknown_tag".to_owned())),
        Err(_) => (None, None, Some("bad_frame".to_owned())),
    };
    BlobVector {
        what: what.into(),
        plaintext_hex: hex::encode(plaintext),
        bytes_len,
        bytes_blake3_hex,
        error,
    }
}

fn blobs() -> Vec<BlobVector> {
    use cellar::fs::blob::{TAG_ZSTD, encode};
    let text: Vec<u8> = b"hello, cellar ".iter().copied().cycle().take(4096).collect();
    let zstd = encode(&text);
    assert_eq!(zstd[0], TAG_ZSTD, "FS-27: repetitive text is compressed");
    let mut bomb = vec![TAG_ZSTD];
    bomb.extend_from_slice(&zstd::bulk::compress(&vec![0u8; (2 << 20) + 1], 3).unwrap());
    let mut limit = vec![TAG_ZSTD];
    limit.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 2 << 20], 3).unwrap());
    vec![
        blob_vector("tag 0: the bytes 'hello\\n'", encode(b"hello\n")),
        blob_vector("tag 1: 4096 bytes of 'hello, cellar ' repeated, zstd level 3", zstd),
        blob_vector("tag 1: 2 MiB of zeros (the largest content)", limit),
        blob_vector("tag 1: 2 MiB + 1 zero bytes (over the limit)", bomb),
        blob_vector("tag 1: not a zstd frame", vec![TAG_ZSTD, 1, 2, 3]),
        blob_vector("tag 1: a frame holding no bytes", {
            let mut v = vec![TAG_ZSTD];
            v.extend_from_slice(&zstd::bulk::compress(&[], 3).unwrap());
            v
        }),
        blob_vector("tag 2", vec![2, 0]),
        blob_vector("no tag", vec![]),
    ]
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Gear {
    salt_hex: String,
    first_entries_hex: Vec<String>,
    table_blake3_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Chunks {
    salt_hex: String,
    input: String,
    input_len_bytes: usize,
    min_bytes: usize,
    avg_bits: u32,
    max_bytes: usize,
    chunk_lengths: Vec<usize>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct MeanChunk {
    salt_hex: String,
    input: String,
    chunks: usize,
    mean_bytes: usize,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct KeyVector {
    path: String,
    offset: u64,
    key_hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct RecordVector {
    what: String,
    hex: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct TreeVector {
    name: String,
    salt_hex: String,
    recipe: String,
    root_ref_hex: String,
    blobs: usize,
}

fn input(seed: u64, n: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new_derive_key(INPUT_CONTEXT);
    h.update(&seed.to_le_bytes());
    let mut out = vec![0u8; n];
    h.finalize_xof().fill(&mut out);
    out
}

/// FS-7 from the text: 2048 bytes of derive_key XOF, little-endian u64 words.
fn reference_table(salt: &[u8; 32]) -> Vec<u64> {
    let mut h = blake3::Hasher::new_derive_key("cellar 2026 fs gear table v1");
    h.update(salt);
    let mut bytes = vec![0u8; 2048];
    h.finalize_xof().fill(&mut bytes);
    bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// FS-6 from the text.
fn reference_cut(g: &[u64], d: &[u8], min: usize, bits: u32, max: usize) -> usize {
    let n = d.len();
    if n <= min {
        return n;
    }
    let limit = n.min(max);
    let normal = limit.min(1 << bits);
    let mask_s = !(u64::MAX >> (bits + 2));
    let mask_l = !(u64::MAX >> (bits - 2));
    let mut h: u64 = 0;
    for i in min..limit {
        h = (h << 1).wrapping_add(g[d[i] as usize]);
        let mask = if i < normal { mask_s } else { mask_l };
        if h & mask == 0 {
            return i + 1;
        }
    }
    limit
}

fn chunks(salt: [u8; 32], name: &str, data: &[u8], p: ChunkerParams) -> Chunks {
    let g = reference_table(&salt);
    let mut want = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = reference_cut(&g, rest, p.min_bytes, p.avg_bits, p.max_bytes);
        want.push(n);
        rest = &rest[n..];
    }
    let c = Chunker::new(&salt, p);
    assert_eq!(c.chunk_lengths(data), want, "FS-6: reference and implementation agree on {name}");
    let mut streamed = Vec::new();
    let mut reader = data;
    let mut s = c.stream(&mut reader);
    while let Some(chunk) = s.next_chunk().unwrap() {
        streamed.push(chunk.len());
    }
    assert_eq!(streamed, want, "FS-6: streaming cuts the same chunks");
    Chunks {
        salt_hex: hex::encode(salt),
        input: name.into(),
        input_len_bytes: data.len(),
        min_bytes: p.min_bytes,
        avg_bits: p.avg_bits,
        max_bytes: p.max_bytes,
        chunk_lengths: want,
    }
}

fn attrs(mode: u32, mtime_ns: i64) -> Attrs {
    Attrs { mode, uid: 1000, gid: 1000, mtime_ns }
}

fn small_tree(salt: [u8; 32]) -> TreeVector {
    let store = MemStore::new();
    let fs = Fs::new(&store, salt);
    let p = |s: &str| FsPath::new(s).unwrap();
    let mut r = fs.mkfs(attrs(0o755, 0)).unwrap();
    r = fs.mkdir(&r, &p("/docs"), attrs(0o755, 1_000_000_000)).unwrap();
    r = fs.create(&r, &p("/docs/readme.txt"), attrs(0o644, 2_000_000_000)).unwrap();
    r = fs.write(&r, &p("/docs/readme.txt"), 0, b"hello\n").unwrap();
    r = fs.symlink(&r, &p("/link"), b"docs/readme.txt", attrs(0o777, 3)).unwrap();
    r = fs.create(&r, &p("/big"), attrs(0o600, -1)).unwrap();
    r = fs.write(&r, &p("/big"), 0, &input(1, 5 << 20)).unwrap();
    r = fs.truncate(&r, &p("/big"), 3 << 20).unwrap();
    TreeVector {
        name: "ops".into(),
        salt_hex: hex::encode(salt),
        recipe: "uid=gid=1000 everywhere; mkfs(0o755, mtime 0); mkdir /docs (0o755, 1e9 ns); \
                 create /docs/readme.txt (0o644, 2e9 ns); write 'hello\\n' at 0; symlink /link -> \
                 docs/readme.txt (0o777, 3 ns); create /big (0o600, -1 ns); write input(1, 5 MiB) \
                 at 0; truncate /big to 3 MiB"
            .into(),
        root_ref_hex: hex::encode(r.to_bytes()),
        blobs: store.len(),
    }
}

fn import_tree(salt: [u8; 32]) -> (TreeVector, Vec<RecordVector>) {
    let store = MemStore::new();
    let fs = Fs::new(&store, salt);
    let p = |s: &str| FsPath::new(s).unwrap();
    let mut imp = Importer::new_tree(&fs, attrs(0o755, 0)).unwrap();
    imp.file(&p("/a"), attrs(0o644, 1), &mut &input(2, 100)[..]).unwrap();
    imp.dir(&p("/d"), attrs(0o755, 2)).unwrap();
    imp.file(&p("/d/b"), attrs(0o644, 3), &mut &input(3, 200)[..]).unwrap();
    imp.file(&p("/d/c"), attrs(0o644, 4), &mut &input(4, 5000)[..]).unwrap();
    let r = imp.finish().unwrap();
    let ext = |path: &str, end: u64| {
        let v = fs.kv().get(Some(&r), &p(path).key(end)).unwrap().unwrap();
        RecordVector {
            what: format!("imported extent of {path} ending at {end}"),
            hex: hex::encode(v),
        }
    };
    let shared = vec![ext("/a", 100), ext("/d/b", 200), ext("/d/c", 5000)];
    // FS-8: /a and /d/b are small: one pack; /d/c is one 5000-byte chunk of its own.
    let blob = |v: &RecordVector| decode_extent(&hex::decode(&v.hex).unwrap()).unwrap();
    assert_eq!(blob(&shared[0]).blob, blob(&shared[1]).blob, "FS-8: small files share a pack");
    assert_eq!((blob(&shared[1]).offset, blob(&shared[2]).offset), (100, 0));
    let tree = TreeVector {
        name: "import".into(),
        salt_hex: hex::encode(salt),
        recipe: "Importer::new_tree(0o755, mtime 0, uid=gid=1000); file /a = input(2, 100) \
                 (0o644, 1 ns); dir /d (0o755, 2 ns); file /d/b = input(3, 200) (0o644, 3 ns); \
                 file /d/c = input(4, 5000) (0o644, 4 ns)"
            .into(),
        root_ref_hex: hex::encode(r.to_bytes()),
        blobs: store.len(),
    };
    (tree, shared)
}

fn info_vec(what: &str, info: Info) -> RecordVector {
    let bytes = encode_info(&info).unwrap();
    assert_eq!(decode_info(&bytes).unwrap(), info);
    RecordVector { what: what.into(), hex: hex::encode(bytes) }
}

fn generate() -> VectorFile {
    let salts = [[0u8; 32], [0x11u8; 32]];
    let gear = salts
        .iter()
        .map(|s| {
            let t = reference_table(s);
            assert_eq!(cellar::fs::chunker::gear_table(s).to_vec(), t, "FS-7");
            let bytes: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();
            Gear {
                salt_hex: hex::encode(s),
                first_entries_hex: t[..4].iter().map(|w| format!("{w:016x}")).collect(),
                table_blake3_hex: blake3::hash(&bytes).to_hex().to_string(),
            }
        })
        .collect();
    let spec = ChunkerParams::SPEC;
    let tiny = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };
    let pattern: Vec<u8> = (0..3usize << 20).map(|i| (i % 251) as u8).collect();
    let mut all = Vec::new();
    for s in salts {
        all.push(chunks(s, "input(1, 6 MiB)", &input(1, 6 << 20), spec));
        all.push(chunks(s, "input(2, 3000)", &input(2, 3000), spec));
        all.push(chunks(s, "zeros(5 MiB)", &vec![0u8; 5 << 20], spec));
        all.push(chunks(s, "byte i = i mod 251, 3 MiB", &pattern, spec));
        all.push(chunks(s, "input(3, 1000)", &input(3, 1000), tiny));
    }
    let big = input(9, 64 << 20);
    let n = Chunker::new(&salts[1], spec).chunk_lengths(&big).len();
    let mean_chunk_bytes = MeanChunk {
        salt_hex: hex::encode(salts[1]),
        input: "input(9, 64 MiB)".into(),
        chunks: n,
        mean_bytes: big.len() / n,
    };
    let keys = [("/", 0u64), ("/docs/a.txt", 4096), ("/docs/a.txt", 0), ("/d/e", (1 << 48) - 1)]
        .iter()
        .map(|(path, offset)| KeyVector {
            path: (*path).into(),
            offset: *offset,
            key_hex: hex::encode(FsPath::new(path).unwrap().key(*offset)),
        })
        .collect();
    let mut dir = Info::new(Kind::Dir, attrs(0o755, 1_000_000_000));
    dir.size = 3;
    let mut file = Info::new(Kind::File, attrs(0o4644, -1));
    file.size = (1 << 48) - 1;
    let mut link = Info::new(Kind::Symlink, Attrs { mode: 0o777, uid: 0, gid: 0, mtime_ns: 7 });
    link.target = b"../t".to_vec();
    link.size = 4;
    let infos = vec![
        info_vec("directory 0o755 uid=gid=1000 mtime 1 s, 3 entries", dir),
        info_vec("file 0o4644 uid=gid=1000 mtime -1 ns, size 2^48-1", file),
        info_vec("symlink 0o777 uid=gid=0 mtime 7 ns -> ../t", link),
    ];
    let mut ref_bytes = [0u8; 64];
    ref_bytes.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let e =
        Extent { blob: Ref::from_array(&ref_bytes), offset: 4096, length: 1 << 20, encoded: false };
    let bytes = encode_extent(&e).unwrap();
    assert_eq!(decode_extent(&bytes).unwrap(), e);
    let v2 = Extent { encoded: true, ..e };
    let v2_bytes = encode_extent(&v2).unwrap();
    assert_eq!(decode_extent(&v2_bytes).unwrap(), v2);
    let (import, mut extents) = import_tree(salts[1]);
    extents.insert(
        0,
        RecordVector {
            what: "ref bytes 00 01 .. 3f, offset 4096, length 1 MiB".into(),
            hex: hex::encode(bytes),
        },
    );
    extents.insert(
        1,
        RecordVector {
            what:
                "version 2 (encoded blob, FS-27): ref bytes 00 01 .. 3f, offset 4096, length 1 MiB"
                    .into(),
            hex: hex::encode(v2_bytes),
        },
    );
    VectorFile {
        format: "cellar fs test vectors v1".into(),
        spec: "specs/fs.md".into(),
        regenerate: REGEN_COMMAND.into(),
        input_formula: format!(
            "input(seed, n) = first n bytes of BLAKE3 XOF, derive_key mode, context \
             {INPUT_CONTEXT:?}, key material = seed as u64 little-endian"
        ),
        gear,
        chunks: all,
        mean_chunk_bytes,
        keys,
        infos,
        extents,
        blobs: blobs(),
        trees: vec![small_tree(salts[1]), import, links_tree(salts[1])],
        links: vec![link_vector("/f"), link_vector("/docs/a.txt")],
    }
}

#[test]
fn fs_vectors_match_the_file() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/fs.json");
    let generated = generate();
    if std::env::var_os("CELLAR_REGEN_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
    }
    let on_disk: VectorFile =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(on_disk, generated, "specs/vectors/fs.json is stale: {REGEN_COMMAND}");
    // The examples written out in specs/fs.md.
    assert_eq!(on_disk.keys[1].key_hex, "00646f637300612e7478740000000000001000");
    assert_eq!(
        on_disk.infos[0].hex,
        "0102000001ed000003e8000003e8000000003b9aca0000000000000000030000"
    );
}
