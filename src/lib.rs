//! ecg-serve: classify ECG recordings.
//!
//! The library holds everything the binaries share, in layers that each do one
//! thing:
//! - [`signal`]: reading recordings (WFDB, CSV, an upload's parts) into
//!   millivolts, resampling, band-pass filtering, R-peak detection, RR features
//!   and windows, as pure functions;
//! - [`model`]: the model card (typed by kind) and [`model::model_inputs`], the
//!   one function that builds each model's input tensors, for server and trainer;
//! - [`engine`]: running an ONNX model (ONNX Runtime, CPU or CUDA) on a batch;
//! - [`service`]: the transport-free analysis pipeline ([`service::Analyser`]) and
//!   the engine pools it runs the models on;
//! - [`server`]: the HTTP layer over the service;
//! - [`batch`]: `ecg-serve analyze`, the same service over folders of records;
//! - [`eval`]: scoring beats and detections against reference annotations;
//! - `train` (feature `train`): the trainer behind `ecg-train`.
//!
//! The binaries in `src/bin/` only parse flags and call into here.

pub mod batch;
pub mod engine;
pub mod eval;
pub mod model;
pub mod server;
pub mod service;
pub mod signal;
#[cfg(feature = "train")]
pub mod train;
