//! Fuzz target `dat`: see `ecg_serve::signal::fuzzing::dat`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ecg_serve::signal::fuzzing::dat(data));
