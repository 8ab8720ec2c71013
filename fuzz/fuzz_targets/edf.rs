//! Fuzz target `edf`: see `ecg_serve::signal::fuzzing::edf`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ecg_serve::signal::fuzzing::edf(data));
