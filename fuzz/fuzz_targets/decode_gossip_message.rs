//! Fuzz `cellar::db::gossip::decode_message`: arbitrary bytes never panic, and whatever decodes is
//! within the limits (GW-2, GW-3) and round-trips through the encoder.
#![no_main]

use cellar::db::gossip::{
    Message, OBJECTS_BLOBS_MAX, WANT_CIDS_MAX, decode_message, encode_message,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    let Ok(message) = decode_message(data) else { return };
    match &message {
        Message::Want { cids } => assert!(cids.len() <= WANT_CIDS_MAX),
        Message::Objects { blobs } => assert!(blobs.len() <= OBJECTS_BLOBS_MAX),
        Message::Announce { .. } => {}
    }
    let bytes = encode_message(&message).expect("a decoded message re-encodes");
    assert_eq!(decode_message(&bytes).ok(), Some(message));
});
