//! The bytes of a space (`specs/marks.md` MARK-2, MARK-3): the mark record stored in the map
//! under the mark's name, and the space cell's value naming the map.
//!
//! ```text
//! mark  = version:u8 (=1) ‖ created_ns:i64-BE ‖ salt[32] ‖ value_len:u16-BE ‖ value[value_len]
//! space = ε (no marks)  |  version:u8 (=1) ‖ map_root:Ref (64 bytes)
//! ```
//!
//! Never: decode a record with trailing bytes or a value over the limit; encode what the
//! decoder would refuse.

use super::MarkError;
use crate::storage::refs::{REF_SIZE_BYTES, Ref};

/// Mark record format version (MARK-2).
pub const MARK_RECORD_VERSION: u8 = 1;
/// Space cell value format version (MARK-3).
pub const SPACE_VALUE_VERSION: u8 = 1;
/// Largest value a mark's volume may hold (its cell's limit, CELL-3).
pub const MARK_VALUE_SIZE_MAX_BYTES: usize = 1024;
/// Size of a mark record without its value.
pub const MARK_RECORD_FIXED_SIZE_BYTES: usize = 1 + 8 + 32 + 2;
/// Size of a non-empty space cell value.
pub const SPACE_VALUE_SIZE_BYTES: usize = 1 + REF_SIZE_BYTES;

/// What a space knows about one mark (MARK-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkInfo {
    /// When it was created, in nanoseconds since the Unix epoch (a fork's own creation time).
    pub created_ns: i64,
    /// The salt its data is written under: convergent encryption and chunk boundaries. A fork
    /// copies it, so a fork's writes deduplicate against its origin's.
    pub salt: [u8; 32],
    /// The mark volume's cell value (for a file-tree history: empty, or the head and its
    /// retention horizon, `specs/fs.md` FS-23).
    pub value: Vec<u8>,
}

impl MarkInfo {
    /// A new mark with an empty value.
    pub fn new(salt: [u8; 32], created_ns: i64) -> Self {
        Self { created_ns, salt, value: Vec::new() }
    }
}

/// Encodes a mark record (MARK-2).
pub fn encode_mark(info: &MarkInfo) -> Result<Vec<u8>, MarkError> {
    if info.value.len() > MARK_VALUE_SIZE_MAX_BYTES {
        return Err(MarkError::ValueTooLarge { size_bytes: info.value.len() });
    }
    let mut out = Vec::with_capacity(MARK_RECORD_FIXED_SIZE_BYTES + info.value.len());
    out.push(MARK_RECORD_VERSION);
    out.extend_from_slice(&info.created_ns.to_be_bytes());
    out.extend_from_slice(&info.salt);
    out.extend_from_slice(&(info.value.len() as u16).to_be_bytes());
    out.extend_from_slice(&info.value);
    Ok(out)
}

/// Decodes a mark record (MARK-2), refusing every malformed one.
pub fn decode_mark(bytes: &[u8]) -> Result<MarkInfo, MarkError> {
    let bad = |detail: String| MarkError::Corrupt { detail };
    if bytes.len() < MARK_RECORD_FIXED_SIZE_BYTES {
        return Err(bad(format!("mark record of {} bytes is truncated", bytes.len())));
    }
    if bytes[0] != MARK_RECORD_VERSION {
        return Err(bad(format!("mark record version {} is not supported", bytes[0])));
    }
    let mut created = [0u8; 8];
    created.copy_from_slice(&bytes[1..9]);
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&bytes[9..41]);
    let len = usize::from(u16::from_be_bytes([bytes[41], bytes[42]]));
    if len > MARK_VALUE_SIZE_MAX_BYTES {
        return Err(bad(format!("mark value of {len} bytes exceeds {MARK_VALUE_SIZE_MAX_BYTES}")));
    }
    let value = &bytes[MARK_RECORD_FIXED_SIZE_BYTES..];
    if value.len() != len {
        return Err(bad(format!("mark value holds {} bytes, its length says {len}", value.len())));
    }
    Ok(MarkInfo { created_ns: i64::from_be_bytes(created), salt, value: value.to_vec() })
}

/// Encodes a space cell value (MARK-3): empty for the empty map.
pub fn encode_space_value(map_root: Option<&Ref>) -> Vec<u8> {
    match map_root {
        None => Vec::new(),
        Some(r) => {
            let mut out = Vec::with_capacity(SPACE_VALUE_SIZE_BYTES);
            out.push(SPACE_VALUE_VERSION);
            out.extend_from_slice(&r.to_bytes());
            out
        }
    }
}

/// Decodes a space cell value (MARK-3) to the map's root.
pub fn decode_space_value(value: &[u8]) -> Result<Option<Ref>, MarkError> {
    match value.len() {
        0 => Ok(None),
        SPACE_VALUE_SIZE_BYTES if value[0] == SPACE_VALUE_VERSION => {
            Ok(Some(Ref::from_bytes(&value[1..])?))
        }
        SPACE_VALUE_SIZE_BYTES => Err(MarkError::Corrupt {
            detail: format!("space value version {} is not supported", value[0]),
        }),
        REF_SIZE_BYTES => Err(MarkError::Corrupt {
            detail: "the cell holds a bare 64-byte ref, not a space (a single-mark repository \
                     from an older cellar?)"
                .into(),
        }),
        n => Err(MarkError::Corrupt { detail: format!("space value of {n} bytes") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_records_round_trip_and_refuse_damage() {
        let info = MarkInfo { created_ns: -5, salt: [7; 32], value: vec![1, 2, 3] };
        let bytes = encode_mark(&info).unwrap();
        assert_eq!(bytes.len(), MARK_RECORD_FIXED_SIZE_BYTES + 3);
        assert_eq!(&bytes[..9], &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb]);
        assert_eq!(decode_mark(&bytes).unwrap(), info);
        for cut in 0..bytes.len() {
            assert!(decode_mark(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_mark(&long).is_err(), "trailing byte");
        let mut v2 = bytes;
        v2[0] = 2;
        assert!(decode_mark(&v2).is_err(), "version");
        let big = MarkInfo { value: vec![0; MARK_VALUE_SIZE_MAX_BYTES + 1], ..info };
        assert!(matches!(encode_mark(&big), Err(MarkError::ValueTooLarge { .. })));
    }

    #[test]
    fn space_values_round_trip() {
        assert_eq!(decode_space_value(&encode_space_value(None)).unwrap(), None);
        let r = Ref::from_array(&[9; 64]);
        let v = encode_space_value(Some(&r));
        assert_eq!(v.len(), 65);
        assert_eq!(decode_space_value(&v).unwrap(), Some(r));
        assert!(decode_space_value(&v[1..]).is_err(), "a bare ref is not a space");
        assert!(decode_space_value(&[2; 65]).is_err());
        assert!(decode_space_value(&[1; 3]).is_err());
    }
}
