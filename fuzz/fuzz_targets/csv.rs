//! Fuzz target `csv`: see `ecg_serve::signal::fuzzing::csv`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ecg_serve::signal::fuzzing::csv(data));
