//! The OpenAPI document, generated from the handlers' annotations.
//! `openapi/openapi.json` is its committed copy; a test keeps them equal.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::routes;
use crate::eval::classes::{ClassMetrics, MultiReport};
use crate::service::answer::{
    Attention, Beat, BeatAttention, ModelInfo, PredictResponse, RecordInfo, Reference, Segment,
    SignalPlot, Summary, Timing,
};
use crate::service::heartbeats::{HeartbeatResponse, HeartbeatTiming, RowLabel};
use crate::service::Analysis;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The service's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "ecg-serve", description = "ECG classification: upload a recording (WFDB, EDF or CSV), get segment labels, probabilities, attention weights, and every beat with its AAMI class (N, S, V, F, Q); or upload heartbeat rows (the Kaggle mitbih_*.csv layout) and get one class per row.", license(name = "MIT OR Apache-2.0")),
    paths(routes::predict, routes::viewer, routes::live, routes::ready, routes::info, routes::metrics),
    components(schemas(Analysis, PredictResponse, HeartbeatResponse, RowLabel, HeartbeatTiming, RecordInfo, ModelInfo, Summary, Segment, Attention, Beat, BeatAttention, Reference, MultiReport, ClassMetrics, Timing, SignalPlot, ErrorBody, routes::ReadyBody, routes::PredictUpload)),
    modifiers(&BearerAuth),
    tags((name = "inference", description = "Classify recordings"), (name = "operations", description = "Health, info and metrics"))
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `openapi/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}
