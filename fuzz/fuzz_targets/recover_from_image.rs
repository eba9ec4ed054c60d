//! Fuzz target: arbitrary device bytes never panic recovery and never yield a record whose CRC
//! fails (`specs/sector.md`, SEC-5, SEC-6). Seed corpus: `fuzz/corpus/recover_from_image/`,
//! also run by `impl/tests/sector_fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cellar_fuzz::plant_from_env(), |data: &[u8]| {
    cellar::sector::fuzzing::recover_from_image(data);
});
