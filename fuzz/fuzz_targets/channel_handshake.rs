//! Fuzz target: the secure channel's handshake and record decoder (`cellar::net::channel`,
//! specs/channel.md CH-2..CH-7) on arbitrary bytes never panic.
//!
//! Input: `mode ‖ bytes`. Bit 0 of `mode` picks the phase: 0 feeds `bytes` to a fresh responder
//! (the handshake), 1 to a responder whose handshake with a fixed initiator has finished (the
//! transport records). The rest of `mode` sets the piece size (`mode >> 1` + 1 bytes per
//! `receive`), so record boundaries fall everywhere. Keys and entropy are fixed
//! (`impl/tests/corpus_channel.rs` — keep equal), so the seed corpus in
//! `fuzz/corpus/channel_handshake/` holds real handshake messages and records.
//! Run: `cargo +nightly fuzz run channel_handshake`.
#![no_main]

use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::{Channel, ChannelConfig, ChannelEvent, ChannelPsk, StaticKeys};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

const PSK: [u8; 32] = [0x42; 32];

fn entropy(seed: u64) -> Arc<dyn Entropy> {
    Arc::new(DetEntropy::new(seed))
}

fn keys(seed: u64) -> StaticKeys {
    StaticKeys::generate(entropy(seed)).expect("keys generate")
}

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let psk = ChannelPsk::from_bytes(PSK);
    let cfg = ChannelConfig::default();
    let mut r = Channel::responder(&keys(2), &psk, entropy(12), cfg, 0).expect("responder");
    if mode & 1 == 1 {
        let mut i = Channel::initiator(&keys(1), &psk, entropy(11), cfg, 0).expect("initiator");
        r.receive(&i.take_output(), 0).expect("message 1");
        i.receive(&r.take_output(), 0).expect("message 2");
        r.receive(&i.take_output(), 0).expect("message 3");
        assert!(r.is_open());
    }
    let piece = usize::from(mode >> 1) + 1;
    for chunk in rest.chunks(piece) {
        match r.receive(chunk, 1) {
            Ok(events) => {
                // CH-3: nothing is delivered before the handshake; CH-6: messages are bounded.
                for e in events {
                    if let ChannelEvent::Message(m) = e {
                        assert!(mode & 1 == 1, "a message before any handshake");
                        assert!(m.len() <= cellar::net::channel::MESSAGE_SIZE_MAX_BYTES);
                    }
                }
            }
            Err(_) => {
                // CH-7: a failed channel stays failed.
                assert!(r.is_failed());
                assert!(r.receive(b"x", 1).is_err());
                return;
            }
        }
    }
});
