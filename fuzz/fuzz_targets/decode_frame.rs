//! Fuzz target `decode_frame` (PROTO-1..PROTO-5): any bytes decode to request frames or typed
//! `FrameError`s, never a panic; decoded frames re-encode to the same request; the resync rule
//! never walks outside the input. Seed corpus: `fuzz/corpus/decode_frame/` (also run by
//! `impl/tests/corpus_frame.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    if let Err(broken) = cellar::sector::proto::codec::check_frame_stream(data) {
        panic!("decode_frame property broken: {broken}");
    }
});
