//! The service: everything between an upload's files and its answer, with no
//! transport in it (the HTTP layer in [`crate::server`] parses, admits, calls
//! [`Analyser::analyse`] and formats; a batch runner could call it the same way).
//!
//! - [`pipeline`]: [`Analyser::analyse`], which owns the order of the work:
//!   decode, lead, inputs ([`crate::model::model_inputs_owned`]: beats, filter,
//!   features), both models, assembly; one hop to a blocking thread per request.
//! - [`pool`]: the engine pools that run each model on its own OS threads behind
//!   a bounded queue, with admission control.
//! - [`heartbeats`]: an upload of heartbeat rows (the Kaggle format),
//!   recognised by its shape and labelled row by row by the heartbeat model.
//! - [`answer`]: the answer's types (serialisable, with their schemas for the
//!   API document) and how model outputs become them.

pub mod answer;
pub mod heartbeats;
pub mod pipeline;
pub mod pool;

pub use answer::{Include, PredictResponse};
pub use heartbeats::HeartbeatResponse;
pub use pipeline::{Analyser, Analysis, AnalysisRequest, ServiceError};
pub use pool::{run_batches, Admission, EnginePool, PoolError, PoolOptions, Readiness};
