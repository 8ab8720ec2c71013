//! ecg-serve: classify ECG recordings.
//!
//! The library holds everything the binaries share: [`signal`] turns a recording
//! (WFDB or CSV) into clean, correctly scaled samples, beat positions and model
//! windows; [`eval`] scores what we find against reference annotations. The
//! binaries in `src/bin/` only parse flags and call into here, so the trainer and
//! the server cannot prepare data differently.

pub mod core;
pub mod engine;
pub mod eval;
pub mod model;
pub mod server;
pub mod signal;
#[cfg(feature = "train")]
pub mod train;
