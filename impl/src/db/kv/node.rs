//! The node format of the prolly tree (`specs/kv.md`, KV-1, KV-2): postcard-encoded, validated
//! on every decode so a damaged or hostile node is a typed error, never data.

use super::{KEY_SIZE_MAX_BYTES, LEVEL_MAX, VALUE_SIZE_MAX_BYTES};
use crate::storage::refs::REF_SIZE_BYTES;
use serde::{Deserialize, Serialize};

/// The node format version (KV-1). Part of every node's bytes, hence of every root ref.
pub const NODE_VERSION: u8 = 1;

/// One entry: in a leaf (level 0) a key and its value; in an internal node the first key of a
/// child subtree and the child's 64-byte ref.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key (leaf) or the child's first key (internal).
    #[serde(with = "byte_string")]
    pub key: Vec<u8>,
    /// The value (leaf) or the child's ref bytes (internal).
    #[serde(with = "byte_string")]
    pub value: Vec<u8>,
}

/// `Vec<u8>` as postcard `bytes` (varint length, raw bytes): the same layout postcard gives a
/// `Vec<u8>`, decoded in one copy instead of one call per byte.
mod byte_string {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// A decoded, validated node (KV-2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Must be [`NODE_VERSION`].
    pub version: u8,
    /// 0 for leaves; a child's level is its parent's minus one.
    pub level: u8,
    /// Non-empty, keys strictly increasing.
    pub entries: Vec<Entry>,
}

/// Why node bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// postcard could not decode the bytes, or bytes were left over.
    #[error("node does not decode: {0}")]
    Decode(String),
    /// Unknown format version.
    #[error("node format version {0} is not {NODE_VERSION}")]
    Version(u8),
    /// Level above [`LEVEL_MAX`].
    #[error("node level {0} exceeds the maximum {LEVEL_MAX}")]
    Level(u8),
    /// A node with no entries.
    #[error("node has no entries")]
    Empty,
    /// Keys not strictly increasing.
    #[error("node keys are not strictly increasing at entry {0}")]
    Unsorted(usize),
    /// A key or value over its limit, or an internal entry whose value is not a ref.
    #[error("node entry {index} has a bad size: {detail}")]
    EntrySize {
        /// Which entry.
        index: usize,
        /// What was wrong.
        detail: String,
    },
}

/// Decodes and validates node bytes (KV-2). The fuzz target `decode_kv_node` calls this.
pub fn decode_node(bytes: &[u8]) -> Result<Node, NodeError> {
    let (node, rest): (Node, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| NodeError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(NodeError::Decode(format!("{} trailing bytes", rest.len())));
    }
    validate(&node)?;
    Ok(node)
}

/// Encodes a node (validating first, so the encoder can never write what the decoder refuses).
pub fn encode_node(node: &Node) -> Result<Vec<u8>, NodeError> {
    validate(node)?;
    postcard::to_allocvec(node).map_err(|e| NodeError::Decode(e.to_string()))
}

fn validate(node: &Node) -> Result<(), NodeError> {
    if node.version != NODE_VERSION {
        return Err(NodeError::Version(node.version));
    }
    if node.level > LEVEL_MAX {
        return Err(NodeError::Level(node.level));
    }
    if node.entries.is_empty() {
        return Err(NodeError::Empty);
    }
    for (index, e) in node.entries.iter().enumerate() {
        let bad = |detail: String| NodeError::EntrySize { index, detail };
        if e.key.len() > KEY_SIZE_MAX_BYTES {
            return Err(bad(format!("key of {} bytes", e.key.len())));
        }
        if node.level == 0 && e.value.len() > VALUE_SIZE_MAX_BYTES {
            return Err(bad(format!("value of {} bytes", e.value.len())));
        }
        if node.level > 0 && e.value.len() != REF_SIZE_BYTES {
            return Err(bad(format!("child ref of {} bytes", e.value.len())));
        }
    }
    // Planted bug kv:node-order-unchecked: entries out of order (or repeated) are accepted.
    let unsorted = node.entries.windows(2).position(|w| w[0].key >= w[1].key);
    if let Some(i) = unsorted.filter(|_| !crate::bugs::active("kv:node-order-unchecked")) {
        return Err(NodeError::Unsorted(i + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(keys: &[&[u8]]) -> Node {
        let entries =
            keys.iter().map(|k| Entry { key: k.to_vec(), value: b"v".to_vec() }).collect();
        Node { version: NODE_VERSION, level: 0, entries }
    }

    #[test]
    fn round_trip_and_byte_layout_kv1() {
        let n = leaf(&[b"a", b"b"]);
        let bytes = encode_node(&n).unwrap();
        // version, level, count, (klen, k, vlen, v)*
        assert_eq!(bytes, [1, 0, 2, 1, b'a', 1, b'v', 1, b'b', 1, b'v']);
        assert_eq!(decode_node(&bytes).unwrap(), n);
    }

    #[test]
    fn refuses_bad_nodes_kv2() {
        assert_eq!(encode_node(&leaf(&[b"b", b"a"])), Err(NodeError::Unsorted(1)));
        assert_eq!(encode_node(&leaf(&[b"a", b"a"])), Err(NodeError::Unsorted(1)));
        assert_eq!(encode_node(&leaf(&[])), Err(NodeError::Empty));
        let mut bytes = encode_node(&leaf(&[b"a"])).unwrap();
        bytes.push(0);
        assert!(matches!(decode_node(&bytes), Err(NodeError::Decode(_))));
        assert!(matches!(decode_node(&[2, 0, 1, 0, 0]), Err(NodeError::Version(2))));
        assert!(matches!(decode_node(&[1, 1, 1, 0, 1, 0]), Err(NodeError::EntrySize { .. })));
        assert!(matches!(decode_node(&[1, 200, 1, 0, 0]), Err(NodeError::Level(200))));
        assert!(decode_node(&[]).is_err());
    }
}
