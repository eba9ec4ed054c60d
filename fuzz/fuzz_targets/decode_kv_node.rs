//! Fuzz `cellar::db::kv::decode_node`: arbitrary bytes never panic, and whatever decodes is a valid
//! node (KV-2) that re-encodes and decodes back to itself.
#![no_main]

use cellar::db::kv::{decode_node, encode_node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    let Ok(node) = decode_node(data) else { return };
    assert!(!node.entries.is_empty(), "KV-2: no empty nodes");
    assert!(node.entries.windows(2).all(|w| w[0].key < w[1].key), "KV-2: sorted");
    let bytes = encode_node(&node).expect("a decoded node re-encodes");
    assert_eq!(decode_node(&bytes).ok(), Some(node));
});
