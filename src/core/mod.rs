//! The service core: turning uploaded parts into a recording ([`upload`]), the
//! engine pool that runs models on their own threads behind a bounded queue
//! ([`pool`]), and the analysis that prepares input and assembles answers
//! ([`analysis`]), and the SVG picture of an answer ([`render`]). It knows no HTTP: the server maps its errors to statuses.

pub mod analysis;
pub mod pool;
pub mod render;
pub mod upload;
