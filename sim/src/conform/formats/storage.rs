//! Storage formats: refs (`specs/refs.md`), file and sealed cells (`specs/cells.md`), the
//! volume directory and file trees (`specs/volume-dir.md`), decoded by the implementation.

use super::json;
use crate::conform::kinds::{Failure, Kind, Outcome, hex};
use cellar::storage::cell::{CellError, decode_file_cell, encode_file_cell, open_counted};
use cellar::storage::files::{self, INDEX_VERSION, IndexError, IndexNode};
use cellar::storage::refs::{self, ParseRefError, Ref, RefError};
use cellar::storage::secret::VolumeSecret;
use cellar::storage::store::MemStore;
use cellar::storage::volume::{VolumeHeaderError, decode_volume_header, encode_volume_header};
use serde_json::{Value, json};

/// Default `max_size_bytes` of a file cell (cells.md §1).
const CELL_SIZE_MAX_BYTES_DEFAULT: u64 = 4096;
/// Bytes a cell file frame adds at most (cells.md §3.2).
const FILE_CELL_OVERHEAD_MAX_BYTES: u64 = 19;

fn ref_json(r: &Ref) -> Value {
    json!({"cid": hex(&r.cid.0), "dek": hex(&r.dek)})
}

fn ref_from_json(v: &Value) -> Outcome<Ref> {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&json::array::<32>(v, "cid")?);
    b[32..].copy_from_slice(&json::array::<32>(v, "dek")?);
    Ok(Ref::from_array(&b))
}

/// Decodes `bytes` as `format`; `None` if the format is not one of this module's.
pub fn decode(format: &str, params: &Value, bytes: &[u8]) -> Option<Outcome<Value>> {
    Some(match format {
        "ref.binary" => Ref::from_bytes(bytes)
            .map(|r| ref_json(&r))
            .map_err(|e| Failure::new(Kind::BadLength, e.to_string())),
        "ref.text" => ref_text(bytes),
        "cell.file" => cell_file(params, bytes),
        "cell.sealed" => json::array::<32>(params, "key").and_then(|key| {
            open_counted(&key, bytes)
                .map(|(counter, p)| json!({"counter": counter, "plaintext": hex(&p)}))
                .map_err(|e| sealed_kind(&e))
        }),
        "volume.header" => decode_volume_header(bytes)
            .map(|s| json!({"secret": hex(&s)}))
            .map_err(|e| Failure::new(volume_kind(&e), e.to_string())),
        "file.index" => {
            files::decode_index(bytes).map(|n| index_json(&n)).map_err(|e| index_kind(&e))
        }
        _ => return None,
    })
}

/// Encodes the JSON form `value` as `format`; `None` if the format is not one of this
/// module's or has no canonical encoding.
pub fn encode(format: &str, _params: &Value, value: &Value) -> Option<Outcome<Vec<u8>>> {
    Some(match format {
        "ref.binary" => ref_from_json(value).map(|r| r.to_bytes().to_vec()),
        "ref.text" => ref_from_json(value).map(|r| r.to_string().into_bytes()),
        "cell.file" => json::bytes(value, "value").and_then(|v| {
            encode_file_cell(&v).map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))
        }),
        "volume.header" => json::array::<32>(value, "secret").map(|s| encode_volume_header(&s)),
        "file.index" => index_from_json(value).and_then(|n| {
            postcard::to_allocvec(&n).map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))
        }),
        _ => return None,
    })
}

/// Evaluates `function` on `input`; `None` if it is not one of this module's.
pub fn derive(function: &str, input: &Value) -> Option<Outcome<Value>> {
    Some(match function {
        "ref.post" => ref_post(input),
        "ref.open" => ref_open(input),
        "volume.keys" => json::array::<32>(input, "secret").map(|s| {
            let secret = VolumeSecret::from_bytes(s);
            json!({"cell_key": hex(&secret.cell_key()), "ref_salt": hex(&secret.ref_salt())})
        }),
        "file.tree" => file_tree(input),
        _ => return None,
    })
}

fn ref_text(bytes: &[u8]) -> Outcome<Value> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| Failure::new(Kind::BadChar, e.to_string()))?;
    let r: Ref = text.parse().map_err(|e: ParseRefError| {
        let kind = match e {
            ParseRefError::MissingPrefix { .. } => Kind::BadPrefix,
            ParseRefError::BadChar { .. } => Kind::BadChar,
            _ => Kind::BadLength,
        };
        Failure::new(kind, e.to_string())
    })?;
    Ok(ref_json(&r))
}

fn ref_post(input: &Value) -> Outcome<Value> {
    let salt = json::array::<32>(input, "salt")?;
    let plaintext = json::bytes(input, "plaintext")?;
    let (r, ct) = refs::encrypt(&salt, &plaintext)
        .map_err(|e| Failure::new(Kind::TooLarge, e.to_string()))?;
    Ok(json!({"ref": hex(&r.to_bytes()), "ciphertext": hex(&ct)}))
}

fn ref_open(input: &Value) -> Outcome<Value> {
    let r = Ref::from_array(&json::array::<64>(input, "ref")?);
    let ct = json::bytes(input, "ciphertext")?;
    match refs::decrypt(&r, &ct) {
        Ok(p) => Ok(json!({"plaintext": hex(&p)})),
        // REF-4's order: CID, then length, then tag.
        Err(e @ RefError::Corrupt { .. }) => {
            let kind = if blake3::hash(&ct).as_bytes() != &r.cid.0 {
                Kind::AuthFailed
            } else if ct.len() < refs::TAG_SIZE_BYTES {
                Kind::Truncated
            } else {
                Kind::AuthFailed
            };
            Err(Failure::new(kind, e.to_string()))
        }
        Err(e) => Err(Failure::new(Kind::InvalidValue, e.to_string())),
    }
}

fn cell_file(params: &Value, bytes: &[u8]) -> Outcome<Value> {
    let max = json::uint_or(params, "max_size_bytes", CELL_SIZE_MAX_BYTES_DEFAULT)?;
    if bytes.len() as u64 > max.saturating_add(FILE_CELL_OVERHEAD_MAX_BYTES) {
        return Err(Failure::new(Kind::TooLarge, format!("cell file of {} bytes", bytes.len())));
    }
    let value = decode_file_cell(bytes).map_err(|e| cell_kind(&e))?;
    if value.len() as u64 > max {
        return Err(Failure::new(Kind::TooLarge, format!("value of {} bytes", value.len())));
    }
    Ok(json!({"value": hex(&value)}))
}

/// The kind of a file cell decoding error, from the check that failed (cells.md §3.2).
fn cell_kind(e: &CellError) -> Failure {
    let m = e.to_string();
    let kind = if m.contains("shorter than") || m.contains("end of buffer") {
        Kind::Truncated
    } else if m.contains("CRC32C") {
        Kind::BadChecksum
    } else if m.contains("bad magic") {
        Kind::BadMagic
    } else if m.contains("unknown version") {
        Kind::UnsupportedVersion
    } else if m.contains("trailing bytes") {
        Kind::TrailingBytes
    } else {
        Kind::InvalidValue
    };
    Failure::new(kind, m)
}

fn sealed_kind(e: &CellError) -> Failure {
    let m = e.to_string();
    let kind = if m.contains("shorter than") || m.contains("does not decode") {
        Kind::Truncated
    } else if m.contains("unknown version") {
        Kind::UnsupportedVersion
    } else {
        Kind::AuthFailed
    };
    Failure::new(kind, m)
}

fn volume_kind(e: &VolumeHeaderError) -> Kind {
    match e {
        VolumeHeaderError::TooLarge(_) => Kind::TooLarge,
        VolumeHeaderError::Truncated => Kind::Truncated,
        VolumeHeaderError::Checksum => Kind::BadChecksum,
        VolumeHeaderError::TrailingBytes(_) => Kind::TrailingBytes,
        VolumeHeaderError::BadMagic => Kind::BadMagic,
        VolumeHeaderError::Version(_) => Kind::UnsupportedVersion,
        _ => Kind::InvalidValue,
    }
}

fn index_kind(e: &IndexError) -> Failure {
    let kind = match e {
        IndexError::Truncated => Kind::Truncated,
        IndexError::TrailingBytes(_) => Kind::TrailingBytes,
        IndexError::Version(_) => Kind::UnsupportedVersion,
        IndexError::TooManyChildren(_) => Kind::TooLarge,
        _ => Kind::InvalidValue,
    };
    Failure::new(kind, e.to_string())
}

fn index_json(n: &IndexNode) -> Value {
    let children: Vec<String> = n.children.iter().map(|r| hex(&r.to_bytes())).collect();
    json!({"level": n.level, "size_bytes": n.size_bytes, "children": children})
}

fn index_from_json(v: &Value) -> Outcome<IndexNode> {
    let mut children = Vec::new();
    for c in json::list(v, "children")? {
        let h = c.as_str().ok_or_else(|| Failure::new(Kind::InvalidValue, "child is not hex"))?;
        children.push(Ref::from_array(&crate::conform::kinds::unhex_array::<64>(h)?));
    }
    Ok(IndexNode {
        version: INDEX_VERSION,
        level: json::uint_as(v, "level")?,
        size_bytes: json::uint(v, "size_bytes")?,
        children,
    })
}

fn file_tree(input: &Value) -> Outcome<Value> {
    let salt = json::array::<32>(input, "salt")?;
    let max = json::uint_as::<usize>(input, "max_blob_size_bytes")?;
    let content = json::bytes(input, "content")?;
    let store = MemStore::with_max_blob_size(max);
    let root = files::put(&store, &salt, &mut content.as_slice())
        .map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))?;
    let blobs = cellar::storage::store::list_all(&store)
        .map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))?
        .len();
    Ok(json!({"root": hex(&root.to_bytes()), "blobs": blobs}))
}
