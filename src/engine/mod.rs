//! Model engines: the synchronous code that runs a model on a batch of windows.
//!
//! [`ort`] wraps ONNX Runtime: finding and loading its shared library (never a
//! panicking init), building sessions with an explicit thread count and
//! execution provider, and running a batch. It knows nothing of HTTP; the server
//! puts engines on their own threads, and the trainer uses one to check that an
//! exported model matches the network it was trained as.

pub mod ort;

pub use self::ort::{
    available_cpus, softmax, EngineError, ModelOutputs, OrtModel, Provider, Runtime, SharedThreads,
};
