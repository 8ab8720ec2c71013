//! HTTP handlers: parse the request, call the service, write the answer. Nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::formats;
use super::params::{Checked, PredictParams};
use super::AppState;
use crate::model::ModelCard;
use crate::service::{Admission, Analysis, AnalysisRequest, Readiness};
use crate::signal::upload::{UploadPart, ACCEPTED};

/// The multipart form of `/predict` (file pickers in Swagger UI): one of a
/// WFDB pair, a `.dat` alone or a CSV, each with an optional `.atr`. Written
/// by hand because the three shapes are a `oneOf` of closed objects, which is
/// what the server takes (a request of any other shape is refused with 400).
pub struct PredictUpload;

impl utoipa::PartialSchema for PredictUpload {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        let file = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .description(Some(description))
                .build()
        };
        let hea = ("hea", "WFDB header (.hea).");
        let dat = (
            "dat",
            "WFDB signal file (.dat), with its .hea or alone (layout in query parameters).",
        );
        let csv = (
            "file",
            "A CSV recording (one column per lead, optional time column).",
        );
        let edf = (
            "edf",
            "An EDF or EDF+ file (.edf): its ECG signals, EDF+ annotations passed through as `events`. A part `file` that starts like an EDF file is read as one.",
        );
        let atr = (
            "atr",
            "Reference annotations (.atr), optional: the answer then scores itself against them.",
        );
        let shape = |title: &str, required: &[(&str, &str)]| {
            let mut o = ObjectBuilder::new()
                .schema_type(Type::Object)
                .title(Some(title))
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            for (name, description) in required {
                o = o.property(*name, file(description)).required(*name);
            }
            o.property(atr.0, file(atr.1)).build()
        };
        // A header that names several signal files (PTB's .dat + .xyz) takes
        // each as a further part by its file name: said in the operation's
        // description, not here (the closed shapes are what schemathesis
        // holds the server to).
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(shape("WFDB pair", &[hea, dat]))
                .item(shape(".dat alone", &[dat]))
                .item(shape("EDF", &[edf]))
                .item(shape("CSV", &[csv]))
                .build(),
        ))
    }
}

impl ToSchema for PredictUpload {}

async fn read_parts(
    multipart: Result<Multipart, MultipartRejection>,
    limit_mb: usize,
) -> Result<Vec<UploadPart>, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::Unsupported(format!(
            "the body must be multipart/form-data ({e}); send {}",
            ACCEPTED
        ))
    })?;
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge { limit_mb })
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("malformed multipart body: {e}"),
                    "body",
                ))
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let bytes = match field.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge { limit_mb })
            }
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("cannot read part `{name}`: {e}"),
                    &name,
                ))
            }
        };
        parts.push(UploadPart {
            field: name,
            file_name,
            content_type,
            bytes,
        });
    }
    Ok(parts)
}

/// Classify a recording.
///
/// Upload a WFDB pair (`hea` + `dat`; a header that names several signal files,
/// as PTB's `.dat` + `.xyz`, takes each as a part by its file name), a `.dat` alone (layout in query parameters;
/// MIT-BIH defaults are reported in `warnings`), an `.edf` (EDF or EDF+: its ECG
/// signals, each at its own rate; EDF+ annotations come back as `events`), or a
/// `.csv` (rate from `fs` or its time column). Any sampling rate is resampled to
/// the model's. The answer holds a
/// label, probabilities and attention weights per 10 s segment, and every detected
/// beat (at the upload's own sampling rate) with its AAMI class and probabilities,
/// beat counts and ectopic burden. Add a part `atr` (WFDB annotations) to get
/// `reference`: our detection and classification scored against it. `format=csv`
/// (or `Accept: text/csv`) answers with the beat table as CSV, `format=svg` with a
/// picture of `start_s`..`end_s` (default: the most abnormal segment).
///
/// A `.csv` of heartbeat rows instead (the Kaggle `mitbih_train.csv` layout of
/// Kachuee et al. 2018: no header, 187 values in [0, 1] per row, or 188 with
/// the class 0-4 = N S V F Q last) is recognised by its shape and labelled row
/// by row by the heartbeat model (`ecg-heartbeat`): `predictions` holds one
/// label with probabilities per row, and `agreement` the fraction of rows whose
/// label matches the file's class, when it gives one.
#[utoipa::path(
    post,
    path = "/predict",
    tag = "inference",
    params(PredictParams),
    request_body(content = PredictUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "A recording: labels, probabilities, attention and labelled beats (JSON, `PredictResponse`), the beat table (`format=csv`) or a picture (`format=svg`). Heartbeat rows (one CSV of 187 values in [0, 1] per row, or 188 with the class 0-4 last, no header; recognised by that shape): one label with probabilities per row (JSON, `HeartbeatResponse`; `format=csv`: `row,label,p_N,...`)", body = Analysis,
            content(
                (Analysis = "application/json"),
                (String = "text/csv", example = "sample,time_s,label,p_N,p_S,p_V,p_F,p_Q\n77,0.2139,N,0.5296,0.4695,0.0006,0.0003,0.0000\n"),
                (String = "image/svg+xml")
            )),
        (status = 400, description = "Malformed request (no file, duplicate parts, bad multipart)", body = ErrorBody,
            example = json!({"error": "no file in the upload; send a WFDB pair (.hea + .dat), a .dat alone (layout in query parameters), or a .csv; optionally a .atr", "error_type": "bad_request", "detail": {}})),
        (status = 401, description = "Missing or wrong API key (when one is configured)", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Not multipart, or a file type we do not read", body = ErrorBody),
        (status = 422, description = "Unreadable or invalid recording: which file, which field, what was expected", body = ErrorBody,
            example = json!({"error": "100.dat: file is shorter than the header says: 650000 samples x 2 signals in format 212 need 1950000 bytes, the file has 1000", "error_type": "invalid_signal", "detail": {"file": "100.dat"}})),
        (status = 429, description = "Inference queue full; retry", body = ErrorBody),
        (status = 503, description = "Model not ready, or the request timed out", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn predict(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PredictParams>, QueryRejection>,
    request_headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let accept = request_headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let (params, checked, card, _admission) = match admit(&state, query, accept) {
        Ok(admitted) => admitted,
        Err(e) => {
            // Read the upload to its end (without decoding it) before refusing:
            // answering mid-upload would reach the client as a connection reset.
            discard(multipart).await;
            return Err(e);
        }
    };
    let request = AnalysisRequest {
        parts: read_parts(multipart, state.config.max_body_mb).await?,
        read: checked.read,
        lead: checked.lead,
        include: checked.include,
        warnings: checked.warnings,
        received,
    };
    let limit_s = state.config.request_timeout_s;
    let analysis = state.analyser.analyse(request);
    let response = tokio::time::timeout(Duration::from_secs(limit_s), analysis)
        .await
        .map_err(|_| ApiError::Timeout(limit_s))??;
    formats::respond(response, (checked.output, &params), &card, received)
}

/// The checks before an upload is read: query, readiness, and a place in the
/// service (429 at once when `sessions + queue_size` requests are in it).
fn admit(
    state: &Arc<AppState>,
    query: Result<Query<PredictParams>, QueryRejection>,
    accept: Option<&str>,
) -> Result<(PredictParams, Checked, Arc<ModelCard>, Admission), ApiError> {
    let Query(params) = query?;
    let checked = params.check(accept)?;
    let pool = &state.analyser.segment;
    let card = pool.card().ok_or_else(|| match state.readiness() {
        Readiness::Failed(reason) => {
            ApiError::NotReady(format!("the model is not ready: {reason}"))
        }
        _ => ApiError::NotReady("the model is still loading".into()),
    })?;
    if !matches!(state.readiness(), Readiness::Ready { .. }) {
        return Err(ApiError::NotReady("the model is still loading".into()));
    }
    Ok((params, checked, card, pool.admit()?))
}

/// Reads and drops the rest of an upload (the body limit still applies).
async fn discard(multipart: Result<Multipart, MultipartRejection>) {
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
}

/// Any path we do not serve: a JSON 404 like every other error.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route {}; see /swagger-ui/ or /openapi.json for the API",
        uri.path()
    ))
}

/// A known path with a method it does not take: a JSON 405.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}; see /swagger-ui/ for the methods",
        uri.path()
    ))
}

/// The viewer page (one self-contained HTML file, embedded in the binary).
const VIEWER: &str = include_str!("viewer/index.html");

/// The ECG viewer: upload a recording, see the filtered trace, segment labels,
/// attention and labelled beats.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "The viewer page", body = String, content_type = "text/html")))]
pub async fn viewer() -> axum::response::Html<&'static str> {
    axum::response::Html(VIEWER)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "alive"}))))]
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// Readiness of `/health/ready`.
#[derive(Serialize, ToSchema)]
pub struct ReadyBody {
    #[schema(example = "ready")]
    pub status: String,
    /// Why the service is not ready, when it is not.
    pub reason: Option<String>,
    /// The execution provider in use, when ready.
    pub provider: Option<String>,
}

/// Readiness: 200 once the model is loaded and warmed up, else 503 with the reason.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "Model loaded and warm", body = ReadyBody),
              (status = 503, description = "Loading, or failed (reason given)", body = ReadyBody)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (status, body) = match state.readiness() {
        Readiness::Ready { provider } => (
            StatusCode::OK,
            ReadyBody {
                status: "ready".into(),
                reason: None,
                provider: Some(provider.to_string()),
            },
        ),
        Readiness::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            ReadyBody {
                status: "loading".into(),
                reason: Some("the model is loading".into()),
                provider: None,
            },
        ),
        Readiness::Failed(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ReadyBody {
                status: "failed".into(),
                reason: Some(r),
                provider: None,
            },
        ),
    };
    (status, Json(body)).into_response()
}

/// Service and model information: the model card, labels, rates, limits, version.
#[utoipa::path(get, path = "/info", tag = "operations",
    responses((status = 200, description = "Service, model card and limits", body = Object)))]
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let c = &state.config;
    let card = state.analyser.card();
    Json(json!({
        "service": { "name": "ecg-serve", "version": env!("CARGO_PKG_VERSION"), "git_sha": env!("ECG_GIT_SHA") },
        "readiness": format!("{:?}", state.readiness()),
        "model": card.as_deref(),
        "labels": card.as_ref().map(|c| c.labels.clone()),
        "heartbeat_model": state.analyser.heartbeat.as_ref().map(|pool| match pool.card() {
            Some(c) => json!({ "name": c.name, "version": c.version, "sha256": c.sha256, "labels": c.labels }),
            None => json!({ "readiness": format!("{:?}", pool.readiness()) }),
        }),
        "model_rate_hz": card.as_ref().map(|c| c.kind.sample_rate_hz()),
        "limits": {
            "max_body_bytes": c.max_body_mb * 1024 * 1024,
            "max_duration_s": c.max_duration_s,
            "queue_size": c.queue_size,
            "sessions": c.sessions,
            "threads": c.shared_threads(),
            "intra_threads": c.intra_threads,
            "max_batch": c.windows_per_run(),
            "request_timeout_s": c.request_timeout_s,
        },
        "accepted_inputs": ACCEPTED,
        "auth": if c.api_key.is_some() { "bearer" } else { "none" },
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    metrics::gauge!("ecg_queue_depth").set(state.analyser.segment.queue_depth() as f64);
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}
