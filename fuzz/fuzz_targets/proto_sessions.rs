//! Fuzz target `proto_sessions` (PROTO-1, PROTO-3..PROTO-5): the sector protocol's sans-IO
//! sessions (`ServerSession`, `ClientSession`) read any byte stream the same whether it arrives
//! whole or in the pieces the input asks for, never panic, and the server's own answers are
//! frames a client can read; after closing (PROTO-3) the server takes nothing more. The input's
//! layout: `cellar::sector::proto::session_check`. Seed corpus: `fuzz/corpus/proto_sessions/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    if let Err(broken) = cellar::sector::proto::session_check::check_session_stream(data) {
        panic!("proto_sessions property broken: {broken}");
    }
});
